// Builds the archive's browser viewer (web/src) into web/dist, served at / by `wsiarchive serve`.
//
// Everything a page loads is written under dist/static/<build id>/, the id being a hash of the
// sources and the lock file: the server lets browsers keep those files for a year, and a new
// build is a new path. Nothing is loaded from a CDN at run time:
//   <id>/study.js, <id>/list.js       our own code (esbuild bundles, with dicomweb-client and
//                                    Cornerstone3D)
//   <id>/decodeImageFrameWorker.js   Cornerstone3D's decoding worker (its init() asks for it
//                                    next to the bundle, new URL('./…', import.meta.url))
//   <id>/codecs/*.wasm               the worker's codecs (found through wasmBasePath)
//   <id>/dmv/                        dicom-microscopy-viewer's prebuilt UMD bundle, its worker
//                                    and wasm codecs (ICC colour included), as published
// plus dist/index.html and dist/study.html (the pages) and dist/manifest.json ({build}).
import { build } from 'esbuild'
import { createHash } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import {
  copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync,
} from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const src = join(here, 'src')
const dist = join(here, 'dist')
const modules = join(here, 'node_modules')
const STATIC_PREFIX = '/viewer/static' // dicomweb/viewer.py serves dist/static here

function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    return entry.isDirectory() ? files(path) : [path]
  })
}

// The build id: the sources, this script and the pinned dependencies.
const digest = createHash('sha256')
for (const path of [...files(src).sort(), join(here, 'build.mjs'), join(here, 'package-lock.json')]) {
  digest.update(relative(here, path)).update('\0').update(readFileSync(path))
}
const id = digest.digest('hex').slice(0, 16)
const out = join(dist, 'static', id)

rmSync(dist, { recursive: true, force: true })
mkdirSync(out, { recursive: true })

const loader = join(modules, '@cornerstonejs', 'dicom-image-loader', 'dist', 'esm')
await build({
  entryPoints: {
    list: join(src, 'list.js'),
    study: join(src, 'study.js'),
    decodeImageFrameWorker: join(loader, 'decodeImageFrameWorker.js'),
  },
  outdir: out,
  bundle: true,
  splitting: true, // study.js imports radiology.js (Cornerstone3D) on demand: a chunk
  chunkNames: '[name]-[hash]',
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  minify: true,
  sourcemap: 'linked',
  legalComments: 'linked',
  // The emscripten codecs test for Node at run time and import its modules only there.
  external: ['fs', 'path', 'module', 'url', 'worker_threads', 'crypto'],
  alias: { xmlbuilder2: join(src, 'shims', 'xmlbuilder2.js') },
  logLevel: 'warning',
})

// Cornerstone3D's codecs (wasm), by the names its decoders ask wasmBasePath for.
const codecs = join(out, 'codecs')
mkdirSync(codecs)
for (const codec of ['codec-charls', 'codec-libjpeg-turbo-8bit', 'codec-openjpeg', 'codec-openjph', 'codec-libjxl']) {
  const folder = join(modules, '@cornerstonejs', codec, 'dist')
  if (!existsSync(folder)) continue
  for (const name of readdirSync(folder)) {
    if (name.endsWith('.wasm')) copyFileSync(join(folder, name), join(codecs, name))
  }
}

// dicom-microscopy-viewer as published: its UMD bundle finds its wasm next to itself
// (webpack publicPath auto) and its worker at PUBLIC_LIB_URL/dataLoader.worker.min.js.
const dmvDist = join(modules, 'dicom-microscopy-viewer', 'dist')
const dmv = join(out, 'dmv')
mkdirSync(dmv)
for (const name of readdirSync(dmvDist)) {
  const path = join(dmvDist, name)
  if (statSync(path).isFile()) copyFileSync(path, join(dmv, name))
}
// The bundle starts its worker as a module worker, where the UMD worker beside it finds no
// `this`: the dynamic-import build's worker (rooted at `self`) and its wasm codecs, found
// next to it by name, serve instead.
const dynamic = join(dmvDist, 'dynamic-import')
for (const name of readdirSync(dynamic)) {
  if (name.startsWith('dataLoader.worker.min.js') || name.endsWith('.wasm')) {
    copyFileSync(join(dynamic, name), join(dmv, name))
  }
}

copyFileSync(join(src, 'style.css'), join(out, 'style.css'))

// The pages, pointing at this build.
for (const page of ['index.html', 'study.html']) {
  const text = readFileSync(join(src, 'pages', page), 'utf8').replaceAll('%STATIC%', `${STATIC_PREFIX}/${id}`)
  writeFileSync(join(dist, page), text)
}

// gzip siblings of the text and wasm files, sent to browsers that accept gzip.
for (const path of files(out)) {
  if (/\.(js|css|wasm|map|txt)$/.test(path) && statSync(path).size > 1024) {
    writeFileSync(`${path}.gz`, gzipSync(readFileSync(path), { level: 9 }))
  }
}

writeFileSync(join(dist, 'manifest.json'), JSON.stringify({ build: id, static: `${STATIC_PREFIX}/${id}` }, null, 1))
console.log(`web/dist: build ${id}`)
