// The built files: within the size budget, and what the sources build to.
'use strict'
const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const dist = (name) => fs.readFileSync(path.join(__dirname, '..', 'dist', name), 'utf8')

test('dist/beacon.min.js is at most 2,000 bytes gzipped', async () => {
  const { BUDGET, gzipSize } = await import('../build.mjs')
  assert.equal(BUDGET, 2000)
  const size = gzipSize(dist('beacon.min.js'))
  assert.ok(size <= BUDGET, `${size} bytes gzipped`)
})

test('dist/ is what src/ builds to', async () => {
  const { build } = await import('../build.mjs')
  const files = await build()
  for (const [name, code] of Object.entries(files)) assert.equal(dist(name), code, `dist/${name} is stale: npm run build`)
})

test('the beacon has no dependencies', () => {
  const pkg = require('../package.json')
  assert.equal(pkg.dependencies, undefined)
  for (const [name, version] of Object.entries(pkg.devDependencies)) assert.match(version, /^\d+\.\d+\.\d+$/, `${name} pinned`)
  assert.doesNotMatch(dist('beacon.min.js'), /\brequire\(|\bimport\b/)
})
