// The study view at /study/<uid>: the study's slide (SM) next to the same patient's radiology
// (CR/DX/CT/MR/US…), from this study or the patient's others (QIDO-RS by Patient ID), with
// the other studies listed. The panes are dicom-microscopy-viewer (slide.js) and Cornerstone3D
// (radiology.js); annotations attach through ./annotations/index.js.
import { attachAnnotations } from './annotations/index.js'
import {
  RADIOLOGY, TAG, client, formatDate, loadConfig, onUnauthorized, showUser, status, thumbnail, value, values,
} from './common.js'
import * as slide from './slide.js'

// Cornerstone3D is most of this page's code: fetched and parsed only once a radiology
// series is to be shown, so the slide does not wait for it (an esbuild chunk).
let radiology = null
const loadRadiology = async () => {
  radiology ??= await import('./radiology.js')
  return radiology
}

// This bundle's folder, /viewer/static/<build>: DMV's worker and the codecs live below it.
const STATIC = new URL('.', import.meta.url).pathname.replace(/\/$/, '')
const MAX_SLIDE_SERIES = 32 // SM series whose metadata is read to find the slides
const SERIES_FIELDS = ['0008103E', '00200011', '00080021', '00201209'].join(',')
const STUDY_FIELDS = ['00081030', '00080061', '00100030', '00201208'].join(',')

const desk = { slides: [], radiology: [], shown: null, viewport: null, annotations: null }
window.desk = desk // for the browser tests and the curious

function studyUID() {
  const match = window.location.pathname.match(/^\/study\/([^/]+)/)
  if (match) return decodeURIComponent(match[1])
  return new URLSearchParams(window.location.search).get('study')
}

function el(id) {
  return document.getElementById(id)
}

function entry(list, text, detail, image) {
  const item = document.createElement('li')
  const button = document.createElement('button')
  button.type = 'button'
  if (image) button.append(image)
  const words = document.createElement('span')
  words.className = 'words'
  const title = document.createElement('strong')
  title.textContent = text
  const small = document.createElement('small')
  small.textContent = detail
  words.append(title, small)
  button.append(words)
  item.append(button)
  list.append(item)
  return button
}

function select(list, button) {
  for (const other of list.querySelectorAll('button')) other.classList.remove('active')
  button.classList.add('active')
}

async function patientStudies(dicomweb, study) {
  const patient = value(study, TAG.PatientID)
  const uid = value(study, TAG.StudyInstanceUID)
  if (!patient) return [study]
  const found = await dicomweb.searchForStudies({
    queryParams: { PatientID: patient, includefield: STUDY_FIELDS },
  })
  const others = found.filter((s) => value(s, TAG.StudyInstanceUID) !== uid)
  others.sort((a, b) => String(value(b, TAG.StudyDate) || '').localeCompare(String(value(a, TAG.StudyDate) || '')))
  return [study, ...others]
}

function showOthers(studies) {
  const list = el('others')
  list.replaceChildren()
  for (const other of studies.slice(1)) {
    const uid = value(other, TAG.StudyInstanceUID)
    const item = document.createElement('li')
    const link = document.createElement('a')
    link.href = `/study/${encodeURIComponent(uid)}`
    link.textContent = `${formatDate(value(other, TAG.StudyDate)) || 'no date'} · ${values(other, TAG.ModalitiesInStudy)}`
    link.title = value(other, TAG.StudyDescription) || uid
    item.append(link)
    list.append(item)
  }
  if (studies.length < 2) {
    const item = document.createElement('li')
    item.className = 'none'
    item.textContent = 'none'
    list.append(item)
  }
}

async function seriesOf(dicomweb, studies) {
  const all = await Promise.all(studies.map(async (study) => {
    const uid = value(study, TAG.StudyInstanceUID)
    const series = await dicomweb.searchForSeries({
      studyInstanceUID: uid, queryParams: { includefield: SERIES_FIELDS },
    })
    return series.map((s) => ({ study, series: s, uid: value(s, TAG.SeriesInstanceUID), studyUID: uid }))
  }))
  return all.flat()
}

async function findSlides(dmv, dicomweb, series) {
  const sm = series.filter((s) => value(s.series, TAG.Modality) === 'SM').slice(0, MAX_SLIDE_SERIES)
  const metadata = await Promise.all(sm.map((s) => dicomweb.retrieveSeriesMetadata({
    studyInstanceUID: s.studyUID, seriesInstanceUID: s.uid,
  })))
  const images = metadata.flatMap((items) => slide.images(dmv, items))
  return slide.slides(images)
}

function showSlide(dmv, dicomweb, config, found, onError) {
  if (desk.shown) {
    for (const viewer of [desk.shown.viewer, desk.shown.label, desk.shown.overview]) viewer?.cleanup?.()
  }
  desk.shown = slide.show(dmv, dicomweb, found, {
    slide: el('slide'),
    label: el('label'),
    overview: el('overview'),
    paths: el('paths'),
    labelPanel: el('label-panel'),
    overviewPanel: el('overview-panel'),
    pathsPanel: el('paths-panel'),
  }, onError)
  const first = found.volume[0]
  desk.annotations = attachAnnotations({
    viewer: desk.shown.viewer,
    client: dicomweb,
    studyUID: first.StudyInstanceUID,
    seriesUID: first.SeriesInstanceUID,
    metadata: found.volume,
    root: config.dicomweb,
    container: el('annotations'),
  })
  document.body.dataset.slide = first.SeriesInstanceUID
}

// The newest series asked for wins: a series chosen while another still loads (the first one
// shown on opening, say) must not be drawn over by the older one when that finishes later, so
// each request is numbered and the viewport is set up by one request at a time.
let radiologyAsked = 0
let radiologyDrawn = Promise.resolve()

async function showRadiology(dicomweb, config, item, onError) {
  const asked = ++radiologyAsked
  status('loading radiology…')
  const metadata = await dicomweb.retrieveSeriesMetadata({
    studyInstanceUID: item.studyUID, seriesInstanceUID: item.uid,
  })
  const { show } = await loadRadiology()
  const turn = radiologyDrawn.then(async () => {
    if (asked !== radiologyAsked) return
    desk.viewport = await show(STATIC, config.dicomweb, metadata, el('xray'), onError)
    document.body.dataset.radiology = item.uid
    status('')
  })
  radiologyDrawn = turn.catch(() => {})
  await turn
}

function header(study) {
  const parts = [
    value(study, TAG.PatientName) || '(no name)',
    value(study, TAG.PatientID) ? `ID ${value(study, TAG.PatientID)}` : '',
    value(study, TAG.PatientBirthDate) ? `born ${formatDate(value(study, TAG.PatientBirthDate))}` : '',
    `study ${formatDate(value(study, TAG.StudyDate))} ${value(study, TAG.StudyDescription) || ''}`,
  ]
  el('patient').textContent = parts.filter(Boolean).join(' · ')
  document.title = `wsiarchive: ${value(study, TAG.PatientName) || value(study, TAG.StudyInstanceUID)}`
}

async function main() {
  const config = await loadConfig()
  showUser(config)
  const unauthorized = onUnauthorized(config)
  const onError = (error) => {
    unauthorized(error)
    console.error(error)
    return error
  }
  const dicomweb = client(config)
  const uid = studyUID()
  if (!uid) {
    status('no study given', true)
    return
  }
  status('loading…')
  const [study] = await dicomweb.searchForStudies({
    queryParams: { StudyInstanceUID: uid, includefield: STUDY_FIELDS },
  })
  if (!study) {
    status(`no study ${uid} (or not yours to see)`, true)
    return
  }
  header(study)
  const studies = await patientStudies(dicomweb, study)
  showOthers(studies)
  const series = await seriesOf(dicomweb, studies)

  // Radiology: this study's first, then the patient's other studies'.
  desk.radiology = series.filter((s) => RADIOLOGY.has(value(s.series, TAG.Modality)))
  const radList = el('radiology')
  radList.replaceChildren()
  el('xray-empty').hidden = desk.radiology.length > 0
  el('xray-hint').hidden = desk.radiology.length === 0
  let firstRadiology = null
  for (const item of desk.radiology) {
    const where = item.studyUID === uid ? 'this study' : formatDate(value(item.study, TAG.StudyDate))
    const button = entry(
      radList,
      `${value(item.series, TAG.Modality)} ${value(item.series, TAG.SeriesDescription) || ''}`,
      `${where} · ${value(item.series, TAG.NumberOfSeriesRelatedInstances) ?? '?'} instance(s)`,
      thumbnail(`${config.dicomweb}/studies/${item.studyUID}/series/${item.uid}`, 'series thumbnail'),
    )
    button.dataset.series = item.uid
    button.addEventListener('click', () => {
      select(radList, button)
      showRadiology(dicomweb, config, item, onError).catch((error) => status(`radiology: ${error.message || error.status}`, true))
    })
    firstRadiology ??= button
  }

  const dmv = slide.library()
  slide.locateWorker(STATIC)
  desk.slides = await findSlides(dmv, dicomweb, series)
  const slideList = el('slides')
  slideList.replaceChildren()
  el('slide-empty').hidden = desk.slides.length > 0
  let firstSlide = null
  for (const found of desk.slides) {
    const image = found.volume[0]
    const where = image.StudyInstanceUID === uid ? 'this study' : 'another study'
    const button = entry(
      slideList,
      image.ContainerIdentifier || image.SeriesDescription || 'slide',
      `${where} · ${found.volume.length} level(s)${found.label.length ? ' · label' : ''}`,
      thumbnail(`${config.dicomweb}/studies/${image.StudyInstanceUID}/series/${image.SeriesInstanceUID}`, 'slide thumbnail'),
    )
    button.dataset.series = image.SeriesInstanceUID
    button.addEventListener('click', () => {
      select(slideList, button)
      showSlide(dmv, dicomweb, config, found, onError)
    })
    if (!firstSlide || (image.StudyInstanceUID === uid && firstSlide.dataset.elsewhere)) {
      firstSlide = button
      if (image.StudyInstanceUID !== uid) button.dataset.elsewhere = 'yes'
    }
  }
  firstSlide?.click()
  firstRadiology?.click()
  if (!firstRadiology) status('')
}

main().catch((error) => status(`failed: ${error.message || error.status || error}`, true))
