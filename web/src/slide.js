// The slide pane: dicom-microscopy-viewer (window.dicomMicroscopyViewer, its UMD bundle) over
// the archive's DICOMweb, the way Slim drives it (src/components/SlideViewer/utils/
// viewerUtils.ts): the VOLUME (and THUMBNAIL) images of one slide form the pyramid of a
// VolumeImageViewer; LABEL and OVERVIEW images get their own still viewers (rendered
// resource, PS3.18 §9.5). Colour goes through each optical path's ICC profile (DMV's default,
// kept on), and a slide with several optical paths (channels) gets a toggle per path.

const VL_WSI = '1.2.840.10008.5.1.4.1.1.77.1.6'
const FLAVOR = { VOLUME: 'VOLUME', THUMBNAIL: 'THUMBNAIL', LABEL: 'LABEL', OVERVIEW: 'OVERVIEW' }

/** The DMV library (loaded by study.html before this module). */
export function library() {
  const dmv = window.dicomMicroscopyViewer
  if (!dmv) throw new Error('dicom-microscopy-viewer did not load')
  return dmv
}

/** Where DMV's UMD bundle looks for its worker (dataLoader.worker.min.js): its own folder. */
export function locateWorker(staticBase) {
  window.PUBLIC_URL = '/'
  window.PUBLIC_LIB_URL = `${staticBase}/dmv/`
}

/** Every VL WSI image of the given series' metadata, as DMV image metadata. */
export function images(dmv, seriesMetadata) {
  return seriesMetadata
    .filter((item) => item['00080016']?.Value?.[0] === VL_WSI)
    .map((item) => new dmv.metadata.VLWholeSlideMicroscopyImage({ metadata: item }))
}

const flavor = (image) => (image.ImageType || [])[2]
const zOffset = (image) =>
  Number(image.TotalPixelMatrixOriginSequence?.[0]?.ZOffsetInSlideCoordinateSystem ?? 0)

/** DMV draws one focal plane of a slide: of a Z stack (the converter writes one pyramid per
 *  plane, each with its Z offset), the VOLUME images of the middle plane, and every
 *  THUMBNAIL. */
function onePlane(volume) {
  const levels = volume.filter((image) => flavor(image) === FLAVOR.VOLUME)
  const planes = [...new Set(levels.map(zOffset))].sort((a, b) => a - b)
  if (planes.length < 2) return volume
  const middle = planes[Math.floor((planes.length - 1) / 2)]
  return volume.filter((image) => flavor(image) !== FLAVOR.VOLUME || zOffset(image) === middle)
}

/** The slides among *all* images: one per container (slide) and frame of reference. */
export function slides(all) {
  const found = new Map()
  for (const image of all) {
    const key = `${image.StudyInstanceUID}|${image.ContainerIdentifier || ''}`
    if (!found.has(key)) found.set(key, { volume: [], label: [], overview: [] })
    const slide = found.get(key)
    const kind = flavor(image)
    if (kind === FLAVOR.LABEL) slide.label.push(image)
    else if (kind === FLAVOR.OVERVIEW) slide.overview.push(image)
    else if (kind === FLAVOR.VOLUME || kind === FLAVOR.THUMBNAIL) slide.volume.push(image)
  }
  return [...found.values()]
    .filter((slide) => slide.volume.length > 0)
    .map((slide) => ({ ...slide, volume: onePlane(slide.volume) }))
}

function still(dmv, Viewer, client, image, container, onError) {
  const viewer = new Viewer({
    client,
    metadata: image,
    resizeFactor: 1,
    includeIccProfile: true,
    orientation: Viewer === dmv.viewer.LabelImageViewer ? 'vertical' : 'horizontal',
    errorInterceptor: onError,
  })
  viewer.render({ container })
  return viewer
}

const MAX_SHOWN_PATHS = 4 // channels blended at first; the others wait for their toggle

/** DMV leaves a slide's monochrome optical paths (fluorescence channels) hidden: show the
 *  first few in their default colours (from the illumination), as Slim does. */
function showPaths(viewer) {
  const paths = viewer.getAllOpticalPaths()
  if (paths.some((path) => viewer.isOpticalPathVisible(path.identifier))) return
  for (const path of paths.slice(0, MAX_SHOWN_PATHS)) {
    viewer.showOpticalPath(path.identifier, viewer.getOpticalPathDefaultStyle(path.identifier))
  }
}

function pathToggles(viewer, list) {
  list.replaceChildren()
  const paths = viewer.getAllOpticalPaths()
  if (paths.length < 2) return false
  for (const path of paths) {
    const id = path.identifier
    const item = document.createElement('li')
    const label = document.createElement('label')
    const box = document.createElement('input')
    box.type = 'checkbox'
    box.dataset.path = id
    box.checked = viewer.isOpticalPathActive(id) && viewer.isOpticalPathVisible(id)
    box.addEventListener('change', () => {
      if (box.checked) {
        viewer.activateOpticalPath(id)
        viewer.showOpticalPath(id)
      } else {
        viewer.hideOpticalPath(id)
        viewer.deactivateOpticalPath(id)
      }
    })
    label.append(box, ` ${path.description || id}`)
    item.append(label)
    list.append(item)
  }
  return true
}

/**
 * Show *slide* ({volume, label, overview} images) in the page. Returns the viewers.
 * elements: {slide, label, overview, paths, labelPanel, overviewPanel, pathsPanel}
 */
export function show(dmv, client, slide, elements, onError) {
  elements.slide.replaceChildren()
  const viewer = new dmv.viewer.VolumeImageViewer({
    client,
    metadata: slide.volume,
    controls: ['overview', 'position'],
    // As Slim: free zoom and fit-to-extent even with THUMBNAIL levels in the pyramid.
    useTileGridResolutions: false,
    errorInterceptor: onError,
  })
  viewer.render({ container: elements.slide })
  const shown = { viewer, label: null, overview: null }
  elements.label.replaceChildren()
  elements.overview.replaceChildren()
  elements.labelPanel.hidden = slide.label.length === 0
  elements.overviewPanel.hidden = slide.overview.length === 0
  if (slide.label.length > 0) {
    shown.label = still(dmv, dmv.viewer.LabelImageViewer, client, slide.label[0], elements.label, onError)
  }
  if (slide.overview.length > 0) {
    shown.overview = still(
      dmv, dmv.viewer.OverviewImageViewer, client, slide.overview[0], elements.overview, onError,
    )
  }
  showPaths(viewer)
  elements.pathsPanel.hidden = !pathToggles(viewer, elements.paths)
  return shown
}
