// build.mjs makes dist/beacon.min.js and dist/snippet.min.js from src/ with
// the terser version pinned in package-lock.json, and fails when the beacon
// is larger than its budget gzipped. The output depends on nothing but the
// sources and terser's version: rebuilding a commit yields the same bytes.
import fs from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import { fileURLToPath } from 'node:url'
import { minify } from 'terser'

const dir = path.dirname(fileURLToPath(import.meta.url))
const BUDGET = 2000 // bytes, gzipped at level 9

const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'))
const src = fs.readFileSync(path.join(dir, 'src/beacon.js'), 'utf8')
const version = (src.match(/const VERSION = '([^']+)'/) || [])[1]
if (version !== pkg.version) {
  console.error(`src/beacon.js has VERSION ${version}, package.json has ${pkg.version}: make them equal`)
  process.exit(1)
}

const options = {
  ecma: 2021,
  compress: { passes: 3, unsafe_arrows: true, pure_getters: true },
  mangle: true,
  format: { comments: false }
}

const beacon = await minify(src, options)
const out = beacon.code + '\n'
fs.mkdirSync(path.join(dir, 'dist'), { recursive: true })
fs.writeFileSync(path.join(dir, 'dist/beacon.min.js'), out)

const snippet = await minify(fs.readFileSync(path.join(dir, 'src/snippet.js'), 'utf8'), {
  ecma: 5,
  // Keep the script URL and the options as the IIFE's last arguments,
  // where a site edits them.
  compress: { passes: 2, negate_iife: true, reduce_vars: false, inline: false },
  mangle: true,
  format: { comments: false }
})
fs.writeFileSync(path.join(dir, 'dist/snippet.min.js'), snippet.code + '\n')

const gz = zlib.gzipSync(out, { level: 9 }).length
console.log(`dist/beacon.min.js: ${out.length} bytes, ${gz} bytes gzipped (budget ${BUDGET})`)
console.log(`dist/snippet.min.js: ${snippet.code.length} bytes`)
if (gz > BUDGET) {
  console.error(`dist/beacon.min.js is ${gz - BUDGET} bytes over its gzipped budget of ${BUDGET}`)
  process.exit(1)
}
