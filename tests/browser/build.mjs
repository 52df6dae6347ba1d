// Bundles the annotation test page's script (tests/browser/annotate.js with
// web/src/annotations/ and dicomweb-client) into tests/browser/dist/, with the esbuild of web/.
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const here = dirname(fileURLToPath(import.meta.url))
const web = join(here, '..', '..', 'web')
const require = createRequire(join(web, 'package.json'))
const esbuild = require('esbuild')

await esbuild.build({
  entryPoints: [join(here, 'annotate.js')],
  bundle: true,
  format: 'iife',
  target: 'es2020',
  outfile: join(here, 'dist', 'annotate.bundle.js'),
  nodePaths: [join(web, 'node_modules')],
  logLevel: 'warning',
})
