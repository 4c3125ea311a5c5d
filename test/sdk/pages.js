// The shop page of the browser tests: served from its own origin (so every
// call to the collector is a cross-origin request with CORS, as on a real
// shop), with the browser SDKs bundled from their npm packages by esbuild.
'use strict'
const http = require('node:http')
const esbuild = require('esbuild')

// ENTRIES are the bundles' sources: each puts an SDK's entry point on window.
const ENTRIES = {
  '/analytics-next.js': `import { AnalyticsBrowser } from '@segment/analytics-next'; window.AnalyticsBrowser = AnalyticsBrowser`,
  // "/bundled": the plugins (XhrQueue, BeaconQueue, ...) are in the bundle;
  // the default entry would load them from RudderStack's CDN.
  '/rudder.js': `import { RudderAnalytics } from '@rudderstack/analytics-js/bundled'; window.RudderAnalytics = RudderAnalytics`
}

async function bundle(contents) {
  const out = await esbuild.build({
    stdin: { contents, resolveDir: __dirname, loader: 'js' },
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2020',
    write: false,
    logLevel: 'error'
  })
  return out.outputFiles[0].text
}

// startShop serves /<name>.html for each page in pages (HTML bodies) and
// the SDK bundles, on a free loopback port.
async function startShop(pages) {
  const files = {}
  for (const [p, src] of Object.entries(ENTRIES)) files[p] = ['text/javascript', await bundle(src)]
  for (const [p, html] of Object.entries(pages)) files[p] = ['text/html', html]
  const server = http.createServer((req, res) => {
    const f = files[new URL(req.url, 'http://x').pathname]
    if (!f) return res.writeHead(404).end('not found')
    res.writeHead(200, { 'Content-Type': f[0] + '; charset=utf-8', 'Cache-Control': 'no-cache' }).end(f[1])
  })
  await new Promise((resolve, reject) => {
    server.on('error', reject)
    // "localhost", not 127.0.0.1: another origin than the collector's.
    server.listen(0, '127.0.0.1', resolve)
  })
  return {
    url: `http://localhost:${server.address().port}`,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections()
        server.close(() => r())
      })
  }
}

module.exports = { startShop }
