// The annotation test page: a VolumeImageViewer on the slide named by ?study=&series=, with
// the annotations module attached the way the study page attaches it.
import { api } from 'dicomweb-client'

import { attachAnnotations } from '../../web/src/annotations/index.js'

const WSI = '1.2.840.10008.5.1.4.1.1.77.1.6'

async function main() {
  const dmv = window.dicomMicroscopyViewer
  const params = new URLSearchParams(location.search)
  const root = `${location.origin}/dicomweb`
  const studyUID = params.get('study')
  const seriesUID = params.get('series')
  const client = new api.DICOMwebClient({ url: root })
  const metadata = await client.retrieveSeriesMetadata({
    studyInstanceUID: studyUID,
    seriesInstanceUID: seriesUID,
  })
  const slide = metadata.filter((m) => m['00080016'].Value[0] === WSI)
  const images = slide.map((m) => new dmv.metadata.VLWholeSlideMicroscopyImage({ metadata: m }))
  const errors = []
  const viewer = new dmv.viewer.VolumeImageViewer({
    client,
    metadata: images,
    errorInterceptor: (error) => errors.push(String(error && error.message)),
  })
  viewer.render({ container: document.getElementById('viewport') })
  const annotations = attachAnnotations({
    viewer,
    client,
    studyUID,
    seriesUID,
    metadata: slide,
    root,
    container: document.getElementById('tools'),
    dmv,
    pollInterval: Number(params.get('poll') || 2000),
  })
  Object.assign(window, { viewer, annotations, viewerErrors: errors })
  window.ready = true
}

main().catch((error) => {
  window.startError = String(error && error.stack)
})
