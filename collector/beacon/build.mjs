// build.mjs makes dist/beacon.min.js and dist/snippet.min.js from src/ with
// the terser version pinned in package-lock.json, prints the beacon's size
// and fails when it is over its budget gzipped. The output depends on
// nothing but the sources and terser's version: rebuilding a commit yields
// the same bytes (ci.sh checks that the committed files are what the
// sources build to).
//
//   node build.mjs           write dist/
//   node build.mjs --check   write nothing; fail when dist/ is stale
import fs from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import { fileURLToPath } from 'node:url'
import { minify } from 'terser'

const dir = path.dirname(fileURLToPath(import.meta.url))

// BUDGET is the most dist/beacon.min.js may weigh, gzipped at level 9.
export const BUDGET = 2000

// gzipSize is the beacon's size as a server sends it compressed.
export const gzipSize = (code) => zlib.gzipSync(code, { level: 9 }).length

// build returns the contents of dist/beacon.min.js and dist/snippet.min.js.
export async function build() {
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'))
  const src = fs.readFileSync(path.join(dir, 'src/beacon.js'), 'utf8')
  const version = (src.match(/const VERSION = '([^']+)'/) || [])[1]
  if (version !== pkg.version) {
    throw new Error(`src/beacon.js has VERSION ${version}, package.json has ${pkg.version}: make them equal`)
  }
  const beacon = await minify(src, {
    ecma: 2021,
    compress: { passes: 3, unsafe_arrows: true, pure_getters: true },
    mangle: true,
    format: { comments: false }
  })
  const snippet = await minify(fs.readFileSync(path.join(dir, 'src/snippet.js'), 'utf8'), {
    ecma: 5,
    // Keep the script URL and the options as the IIFE's last arguments,
    // where a site edits them.
    compress: { passes: 2, negate_iife: true, reduce_vars: false, inline: false },
    mangle: true,
    format: { comments: false }
  })
  return { 'beacon.min.js': beacon.code + '\n', 'snippet.min.js': snippet.code + '\n' }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes('--check')
  const files = await build()
  let stale = 0
  for (const [name, code] of Object.entries(files)) {
    const file = path.join(dir, 'dist', name)
    if (check) {
      const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : ''
      if (old !== code) {
        console.error(`dist/${name} is not what src/ builds to: run npm run build and commit it`)
        stale++
      }
    } else {
      fs.mkdirSync(path.dirname(file), { recursive: true })
      fs.writeFileSync(file, code)
    }
  }
  const beacon = files['beacon.min.js']
  const gz = gzipSize(beacon)
  console.log(`dist/beacon.min.js: ${beacon.length} bytes, ${gz} bytes gzipped (budget ${BUDGET})`)
  console.log(`dist/snippet.min.js: ${files['snippet.min.js'].length} bytes`)
  if (gz > BUDGET) {
    console.error(`dist/beacon.min.js is ${gz - BUDGET} bytes over its gzipped budget`)
    process.exit(1)
  }
  if (stale) process.exit(1)
}
