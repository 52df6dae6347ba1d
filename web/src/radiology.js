// The radiology pane: a Cornerstone3D stack viewport over WADO-RS frames (PS3.18 §10.4), the
// way OHIF reads them: series metadata from the archive, one imageId per frame
// (wadors:<root>/studies/…/instances/…/frames/n), decoded by the dicom-image-loader's worker.
// Primary drag: window/level; wheel: frame/slice scrolling; right drag: zoom; middle: pan.
import {
  Enums, RenderingEngine, init as coreInit, utilities,
} from '@cornerstonejs/core'
import { init as loaderInit, wadors } from '@cornerstonejs/dicom-image-loader'
import {
  Enums as ToolEnums, PanTool, StackScrollTool, ToolGroupManager, WindowLevelTool, ZoomTool,
  addTool, init as toolsInit,
} from '@cornerstonejs/tools'

import { TAG, value } from './common.js'

const ENGINE = 'wsiarchive-desk'
const VIEWPORT = 'radiology'
const TOOLS = 'radiology-tools'

let started = null

/** Start Cornerstone3D once: the codecs' wasm lives under <static>/codecs. */
async function start(staticBase, onError) {
  if (started) return started
  await coreInit()
  utilities.setWasmBasePath(`${staticBase}/codecs/`)
  loaderInit({
    maxWebWorkers: Math.max(1, Math.min(2, navigator.hardwareConcurrency || 1)),
    errorInterceptor: onError,
  })
  toolsInit()
  for (const tool of [WindowLevelTool, StackScrollTool, ZoomTool, PanTool]) addTool(tool)
  const tools = ToolGroupManager.createToolGroup(TOOLS)
  for (const tool of [WindowLevelTool, StackScrollTool, ZoomTool, PanTool]) tools.addTool(tool.toolName)
  const { MouseBindings } = ToolEnums
  tools.setToolActive(WindowLevelTool.toolName, { bindings: [{ mouseButton: MouseBindings.Primary }] })
  tools.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }] })
  tools.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] })
  tools.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: MouseBindings.Wheel }] })
  const engine = new RenderingEngine(ENGINE)
  started = { engine, tools }
  return started
}

function number(dataset, tag, fallback = 0) {
  const found = Number(value(dataset, tag))
  return Number.isFinite(found) ? found : fallback
}

/** The imageIds of a series' metadata: every frame of every instance, in instance order
 *  (and by position along the normal for a CT/MR stack without instance numbers). */
export function imageIds(root, metadata) {
  const instances = metadata.slice().sort((a, b) => {
    const byNumber = number(a, TAG.InstanceNumber) - number(b, TAG.InstanceNumber)
    if (byNumber !== 0) return byNumber
    const pa = a[TAG.ImagePositionPatient]?.Value?.[2] ?? 0
    const pb = b[TAG.ImagePositionPatient]?.Value?.[2] ?? 0
    return pa - pb
  })
  const ids = []
  for (const instance of instances) {
    const study = value(instance, TAG.StudyInstanceUID)
    const series = value(instance, TAG.SeriesInstanceUID)
    const sop = value(instance, TAG.SOPInstanceUID)
    const base = `wadors:${root}/studies/${study}/series/${series}/instances/${sop}/frames/`
    const frames = Math.max(1, number(instance, TAG.NumberOfFrames, 1))
    // The loader keeps a multi-frame instance's metadata once, under frame 1.
    wadors.metaDataManager.add(`${base}1`, instance)
    for (let frame = 1; frame <= frames; frame += 1) ids.push(`${base}${frame}`)
  }
  return ids
}

/** Show a series (its DICOM JSON metadata) in *element*; returns the stack viewport. */
export async function show(staticBase, root, metadata, element, onError) {
  const { engine, tools } = await start(staticBase, onError)
  if (!engine.getViewport(VIEWPORT)) {
    engine.enableElement({ viewportId: VIEWPORT, type: Enums.ViewportType.STACK, element })
    tools.addViewport(VIEWPORT, ENGINE)
    element.addEventListener('contextmenu', (event) => event.preventDefault())
    element.addEventListener(Enums.Events.STACK_NEW_IMAGE, (event) => {
      const counter = document.getElementById('xray-frame')
      const total = engine.getViewport(VIEWPORT).getImageIds().length
      if (counter) counter.textContent = total > 1 ? `frame ${event.detail.imageIdIndex + 1} / ${total}` : ''
    })
    new ResizeObserver(() => engine.resize(true, true)).observe(element)
  }
  const viewport = engine.getViewport(VIEWPORT)
  const ids = imageIds(root, metadata)
  await viewport.setStack(ids, 0)
  viewport.render()
  return viewport
}
