// Annotations on a slide in a dicom-microscopy-viewer VolumeImageViewer: a toolbar to draw,
// saving as a Comprehensive 3D SR (TID 1500, as Slim writes) through STOW-RS, loading every SR
// and Microscopy Bulk Simple Annotations object of the slide, and polling QIDO so that
// annotations others save appear within seconds.
//
// Why SR for what a person draws: it is what Slim writes and reads as ROIs (one TID 1410 group,
// with a tracking UID, per ROI), so ours show in Slim and Slim's here; Bulk Simple Annotations
// (Sup 222) are for machine output of many shapes of one kind, and are shown, not written.
//
// The page must load dicom-microscopy-viewer's UMD bundle (global dicomMicroscopyViewer, or
// pass `dmv`) and set window.PUBLIC_LIB_URL to where its dist/dynamic-import/ is served (its
// data loader worker and wasm codecs; its default is ./static/js/).
import * as dcmjs from 'dcmjs'

import { buildReport, COMPREHENSIVE_3D_SR, part10, readReport } from './sr.js'

export const MICROSCOPY_BULK_SIMPLE_ANNOTATIONS = '1.2.840.10008.5.1.4.1.1.91.1'
const POLL_MS = 2000
const TOOLS = [
  ['point', 'Point'],
  ['line', 'Line'],
  ['polygon', 'Polygon'],
  ['box', 'Rectangle'],
  ['circle', 'Ellipse'], // DMV turns a drawn circle into a SCOORD3D ELLIPSE
]
const STYLE = {
  stroke: { color: [255, 200, 0, 1], width: 2 },
  fill: { color: [255, 255, 255, 0.15] },
  image: { circle: { radius: 4, fill: { color: [255, 200, 0, 1] } } },
}

const firstValue = (json, tag) => {
  const element = json && json[tag]
  return element && element.Value ? element.Value[0] : undefined
}

// DICOM JSON to dcmjs's naturalized form, without values given by reference.
function naturalize(json) {
  if (json.SOPInstanceUID) return json // already natural (a DMV metadata object)
  const plain = {}
  for (const [tag, element] of Object.entries(json)) {
    if (element && !('BulkDataURI' in element) && !('InlineBinary' in element)) {
      plain[tag] = element
    }
  }
  return dcmjs.data.DicomMetaDictionary.naturalizeDataset(plain)
}

function scoord3d(dmv, { graphicType, points, frameOfReferenceUID }) {
  const kinds = {
    POINT: dmv.scoord3d.Point,
    POLYLINE: dmv.scoord3d.Polyline,
    POLYGON: dmv.scoord3d.Polygon,
    ELLIPSE: dmv.scoord3d.Ellipse,
    MULTIPOINT: dmv.scoord3d.MultiPoint,
  }
  const Kind = kinds[graphicType]
  if (!Kind) return null
  const coordinates = graphicType === 'POINT' ? points[0] : points
  return new Kind({ coordinates, frameOfReferenceUID })
}

/**
 * Attach the annotation tools and the live annotation layer to *viewer*.
 *
 * @param {object} options
 * @param {object} options.viewer - dicom-microscopy-viewer VolumeImageViewer
 * @param {object} options.client - dicomweb-client DICOMwebClient of the archive
 * @param {string} options.studyUID
 * @param {string} options.seriesUID - the slide's series
 * @param {object[]} options.metadata - the slide's instances' metadata (DICOM JSON or DMV)
 * @param {string} options.root - the DICOMweb root URL (QIDO polling with If-None-Match)
 * @param {HTMLElement} options.container - where the toolbar goes
 * @param {object} [options.dmv] - the dicomMicroscopyViewer namespace (default: the global)
 * @param {number} [options.pollInterval] - ms between polls (0: no polling)
 * @param {string} [options.observer] - the person named in the SR's observation context
 */
export function attachAnnotations({
  viewer,
  client,
  studyUID,
  seriesUID,
  metadata,
  root,
  container,
  dmv = globalThis.dicomMicroscopyViewer,
  pollInterval = POLL_MS,
  observer = 'ANONYMOUS',
}) {
  const images = metadata.map(naturalize)
  const frameOfReferenceUID = images.map((i) => i.FrameOfReferenceUID).find(Boolean)
  const seen = new Set() // SOP Instance UIDs of annotation objects loaded (or written) here
  const saved = new Set() // ROI UIDs already stored
  const listeners = new Set()
  const state = { loaded: 0, errors: [], polls: 0, stopped: false }
  let busy = null

  const emit = (what, detail) => listeners.forEach((listener) => listener(what, detail))
  const fail = (what, error) => {
    state.errors.push(`${what}: ${error && error.message ? error.message : error}`)
    emit('error', { what, error })
  }

  // -- toolbar ------------------------------------------------------------------------------
  const bar = document.createElement('div')
  bar.className = 'wsi-annotation-toolbar'
  bar.setAttribute('role', 'toolbar')
  const status = document.createElement('span')
  status.className = 'wsi-annotation-status'
  const buttons = {}
  const button = (name, label, onClick) => {
    const element = document.createElement('button')
    element.type = 'button'
    element.dataset.tool = name
    element.textContent = label
    element.addEventListener('click', onClick)
    bar.appendChild(element)
    buttons[name] = element
    return element
  }
  const setActive = (name) => {
    for (const [key, element] of Object.entries(buttons)) {
      element.setAttribute('aria-pressed', String(key === name))
    }
  }
  for (const [geometryType, label] of TOOLS) {
    button(geometryType, label, () => draw(geometryType))
  }
  button('pan', 'Pan', () => {
    viewer.deactivateDrawInteraction()
    setActive('pan')
  })
  button('save', 'Save', () => save())
  bar.appendChild(status)
  container.appendChild(bar)

  function draw(geometryType) {
    viewer.activateDrawInteraction({ geometryType, styleOptions: STYLE })
    setActive(geometryType)
  }

  // -- saving ---------------------------------------------------------------------------------
  const unsaved = () => viewer.getAllROIs().filter((roi) => !saved.has(roi.uid))

  /** STOW-RS the ROIs drawn since the last save as one Comprehensive 3D SR. */
  async function save() {
    const rois = unsaved()
    if (rois.length === 0) return null
    const report = buildReport({ rois, images, observer })
    seen.add(report.SOPInstanceUID)
    try {
      await client.storeInstances({ datasets: [part10(report)] })
    } catch (error) {
      seen.delete(report.SOPInstanceUID)
      fail('save', error)
      throw error
    }
    rois.forEach((roi) => saved.add(roi.uid))
    status.textContent = `saved ${rois.length}`
    emit('saved', { sopInstanceUID: report.SOPInstanceUID, count: rois.length })
    return report.SOPInstanceUID
  }

  // -- loading --------------------------------------------------------------------------------
  async function loadReport(instance) {
    const buffer = await client.retrieveInstance({
      studyInstanceUID: studyUID,
      seriesInstanceUID: instance.series,
      sopInstanceUID: instance.uid,
    })
    let added = 0
    for (const region of readReport(buffer, frameOfReferenceUID)) {
      const shape = scoord3d(dmv, region)
      const uid = region.trackingUID
      if (!shape || (uid && viewer.getROI(uid))) continue
      const options = { scoord3d: shape, properties: { trackingUID: uid, source: instance.uid } }
      if (uid) options.uid = uid // DMV checks the key's presence, not its value
      const roi = new dmv.roi.ROI(options)
      viewer.addROI(roi, STYLE)
      saved.add(roi.uid)
      added += 1
    }
    return added
  }

  async function loadBulk(instance) {
    const [json] = await client.retrieveInstanceMetadata({
      studyInstanceUID: studyUID,
      seriesInstanceUID: instance.series,
      sopInstanceUID: instance.uid,
    })
    const annotations = new dmv.metadata.MicroscopyBulkSimpleAnnotations({ metadata: json })
    const referenced = (annotations.ReferencedSeriesSequence || [])[0]
    if (referenced && referenced.SeriesInstanceUID !== seriesUID) return 0
    viewer.addAnnotationGroups(annotations)
    for (const group of annotations.AnnotationGroupSequence) {
      viewer.showAnnotationGroup(group.AnnotationGroupUID)
    }
    return annotations.AnnotationGroupSequence.length
  }

  // QIDO-RS of the study's SR and ANN instances (PS3.18 §10.6), one query per modality (a
  // list of values is not matched by every server), conditional when the server gives ETags.
  const etags = {}
  async function search(modality) {
    const url = `${root}/studies/${studyUID}/instances?Modality=${modality}&includefield=00080016`
    const headers = { Accept: 'application/dicom+json', ...(client.headers || {}) }
    if (etags[url]) headers['If-None-Match'] = etags[url]
    const response = await fetch(url, { headers, credentials: 'same-origin' })
    if (response.status === 304) return []
    if (response.status === 204) return []
    if (!response.ok) throw new Error(`QIDO answered ${response.status}`)
    etags[url] = response.headers.get('ETag')
    return await response.json()
  }

  /** Load every annotation object of the study not loaded yet. */
  async function refresh() {
    if (busy) return busy
    busy = (async () => {
      state.polls += 1
      const found = [...(await search('SR')), ...(await search('ANN'))]
      let added = 0
      for (const json of found) {
        const uid = firstValue(json, '00080018')
        const sopClass = firstValue(json, '00080016')
        const series = firstValue(json, '0020000E')
        if (!uid || seen.has(uid)) continue
        if (sopClass !== COMPREHENSIVE_3D_SR && sopClass !== MICROSCOPY_BULK_SIMPLE_ANNOTATIONS) {
          continue
        }
        seen.add(uid)
        const instance = { uid, series, sopClass }
        try {
          const count =
            sopClass === COMPREHENSIVE_3D_SR ? await loadReport(instance) : await loadBulk(instance)
          added += count
          state.loaded += 1
          emit('loaded', { ...instance, count })
        } catch (error) {
          seen.delete(uid) // tried again at the next poll
          fail(`load ${uid}`, error)
        }
      }
      if (added) status.textContent = `${viewer.getAllROIs().length} annotations`
      return added
    })().finally(() => {
      busy = null
    })
    return busy
  }

  let timer = null
  const poll = () => {
    if (state.stopped) return
    refresh()
      .catch((error) => fail('poll', error))
      .finally(() => {
        if (!state.stopped && pollInterval > 0) timer = setTimeout(poll, pollInterval)
      })
  }
  poll()

  return {
    toolbar: bar,
    state,
    draw,
    save,
    refresh,
    unsaved,
    on(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    stop() {
      state.stopped = true
      clearTimeout(timer)
      viewer.deactivateDrawInteraction()
      bar.remove()
    },
  }
}
