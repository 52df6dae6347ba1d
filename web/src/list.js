// The study list at /: a QIDO-RS search for studies (PS3.18 §10.6) by patient name, patient
// ID, accession number, study date range and modality, each row with the study's thumbnail.
import {
  TAG, client, formatDate, loadConfig, showUser, status, thumbnail, value, values,
} from './common.js'

const FIELDS = ['PatientName', 'PatientID', 'AccessionNumber', 'from', 'to', 'ModalitiesInStudy']
const INCLUDE = ['00081030', '00201208', '00080061', '00100030'] // description, instances, …
const LIMIT = 200

/** QIDO query parameters of the form (PS3.18 §8.3.4: wildcards, DA ranges). */
export function query(form) {
  const data = new FormData(form)
  const params = { includefield: INCLUDE.join(','), limit: LIMIT }
  for (const key of ['PatientName', 'PatientID', 'AccessionNumber']) {
    let text = String(data.get(key) || '').trim()
    if (!text) continue
    if (key === 'PatientName' && !/[*?]/.test(text)) text += '*' // a name is typed partly
    params[key] = text
  }
  const from = String(data.get('from') || '').replaceAll('-', '')
  const to = String(data.get('to') || '').replaceAll('-', '')
  if (from || to) params.StudyDate = from === to ? from : `${from}-${to}`
  const modality = String(data.get('ModalitiesInStudy') || '')
  if (modality) params.ModalitiesInStudy = modality
  return params
}

function row(config, study) {
  const uid = value(study, TAG.StudyInstanceUID)
  const tr = document.createElement('tr')
  tr.className = 'study'
  tr.dataset.uid = uid
  const cell = (text) => {
    const td = document.createElement('td')
    td.textContent = text ?? ''
    tr.append(td)
    return td
  }
  cell('').append(thumbnail(`${config.dicomweb}/studies/${uid}`, 'study thumbnail'))
  const name = cell('')
  const link = document.createElement('a')
  link.href = `/study/${encodeURIComponent(uid)}`
  link.textContent = value(study, TAG.PatientName) || '(no name)'
  name.append(link)
  cell(value(study, TAG.PatientID))
  cell(formatDate(value(study, TAG.StudyDate)))
  cell(value(study, TAG.AccessionNumber))
  cell(values(study, TAG.ModalitiesInStudy))
  cell(value(study, TAG.StudyDescription))
  cell(value(study, TAG.NumberOfStudyRelatedInstances))
  tr.addEventListener('click', (event) => {
    if (event.target.closest('a')) return
    window.location.assign(link.href)
  })
  return tr
}

async function search(config, dicomweb, form) {
  const params = query(form)
  status('searching…')
  const body = document.querySelector('#studies tbody')
  body.replaceChildren()
  try {
    const studies = await dicomweb.searchForStudies({ queryParams: params })
    body.replaceChildren(...studies.map((study) => row(config, study)))
    status(`${studies.length} ${studies.length === 1 ? 'study' : 'studies'}`)
  } catch (error) {
    body.replaceChildren()
    status(`search failed (${error.status || error.message})`, true)
  }
}

async function main() {
  const config = await loadConfig()
  showUser(config)
  const dicomweb = client(config)
  const form = document.getElementById('search')
  const here = new URLSearchParams(window.location.search)
  for (const key of FIELDS) {
    if (here.has(key)) form.elements[key].value = here.get(key)
  }
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    const kept = new URLSearchParams()
    for (const key of FIELDS) {
      const text = form.elements[key].value
      if (text) kept.set(key, text)
    }
    const search_ = kept.toString()
    window.history.replaceState(null, '', search_ ? `/?${search_}` : '/')
    search(config, dicomweb, form)
  })
  // ?study=<uid> is the study view's other address.
  if (here.has('study')) {
    window.location.replace(`/study/${encodeURIComponent(here.get('study'))}`)
    return
  }
  await search(config, dicomweb, form)
}

main().catch((error) => status(String(error), true))
