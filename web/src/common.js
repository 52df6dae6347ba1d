// What both pages share: the runtime configuration, the DICOMweb client, login on 401, and
// reading DICOM JSON (PS3.18 §F.2).
import { api } from 'dicomweb-client'

const CONFIG_URL = '/viewer/config.json'

/** The server's runtime configuration: {dicomweb, login, loginUrl, logoutUrl, user}. */
export async function loadConfig() {
  const response = await fetch(CONFIG_URL, { credentials: 'same-origin' })
  if (!response.ok) throw new Error(`${CONFIG_URL}: ${response.status}`)
  return response.json()
}

/** Send the browser to the login page, to come back here afterwards. */
export function login(config) {
  const here = window.location.pathname + window.location.search
  window.location.assign(`${config.loginUrl}?next=${encodeURIComponent(here)}`)
}

/** A 401 means no (or an expired) session: log in when the server offers a login. */
export function onUnauthorized(config) {
  let sent = false
  return (error) => {
    if (error && error.status === 401 && config.login && !sent) {
      sent = true
      login(config)
    }
  }
}

/** A dicomweb-client over the archive's DICOMweb root (the session cookie goes along). */
export function client(config) {
  return new api.DICOMwebClient({
    url: config.dicomweb,
    errorInterceptor: onUnauthorized(config),
  })
}

/** The first value of *tag* (eight hex digits) in a DICOM JSON dataset. */
export function value(dataset, tag) {
  const element = dataset && dataset[tag]
  if (!element || !element.Value || element.Value.length === 0) return undefined
  const first = element.Value[0]
  if (first && typeof first === 'object' && 'Alphabetic' in first) return first.Alphabetic
  return first
}

/** Every value of *tag*, joined by backslash (e.g. Modalities in Study). */
export function values(dataset, tag) {
  const element = dataset && dataset[tag]
  return element && element.Value ? element.Value.join('\\') : ''
}

/** The modalities the radiology pane shows (PS3.3 C.7.3.1.1.1). */
export const RADIOLOGY = new Set(['CR', 'DX', 'CT', 'MR', 'US', 'MG', 'XA', 'RF', 'PT', 'NM', 'OT', 'IO', 'PX'])

export const TAG = {
  StudyDate: '00080020',
  StudyTime: '00080030',
  AccessionNumber: '00080050',
  Modality: '00080060',
  ModalitiesInStudy: '00080061',
  StudyDescription: '00081030',
  SeriesDescription: '0008103E',
  PatientName: '00100010',
  PatientID: '00100020',
  PatientBirthDate: '00100030',
  StudyInstanceUID: '0020000D',
  SeriesInstanceUID: '0020000E',
  SeriesNumber: '00200011',
  InstanceNumber: '00200013',
  NumberOfStudyRelatedInstances: '00201208',
  NumberOfSeriesRelatedInstances: '00201209',
  SOPClassUID: '00080016',
  SOPInstanceUID: '00080018',
  NumberOfFrames: '00280008',
  ImageType: '00080008',
  ImagePositionPatient: '00200032',
}

/** A DICOM DA value (YYYYMMDD) as YYYY-MM-DD. */
export function formatDate(text) {
  return text && text.length === 8 ? `${text.slice(0, 4)}-${text.slice(4, 6)}-${text.slice(6)}` : text || ''
}

/** A thumbnail <img> of a DICOMweb resource (PS3.18 §9.6: …/thumbnail), loaded with the
 *  session cookie; a resource without one (no image) shows an empty frame. */
export function thumbnail(url, alt) {
  const image = document.createElement('img')
  image.className = 'thumbnail'
  image.alt = alt
  image.loading = 'lazy'
  image.src = `${url}/thumbnail?viewport=128,128`
  image.addEventListener('error', () => image.classList.add('missing'))
  return image
}

/** The header's login state: who is logged in, and a logout link (or a login link). */
export function showUser(config) {
  const slot = document.getElementById('user')
  if (!slot) return
  slot.replaceChildren()
  if (config.user) {
    const name = document.createElement('span')
    name.className = 'who'
    name.textContent = config.user
    slot.append(name)
  }
  if (config.login && config.user) {
    const out = document.createElement('a')
    out.href = config.logoutUrl
    out.id = 'logout'
    out.textContent = 'Log out'
    slot.append(out)
  } else if (config.login) {
    const link = document.createElement('a')
    link.href = '#'
    link.id = 'login'
    link.textContent = 'Log in'
    link.addEventListener('click', (event) => {
      event.preventDefault()
      login(config)
    })
    slot.append(link)
  }
}

/** Show a message in the page's status line. */
export function status(text, error = false) {
  const line = document.getElementById('status')
  if (!line) return
  line.textContent = text
  line.classList.toggle('error', error)
}
