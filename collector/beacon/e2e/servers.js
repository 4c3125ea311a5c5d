// Small servers for the browser tests: a shop that serves the demo pages
// (filled in the way beacon.DemoHandler fills them) or pages of a test, and
// a collector that records the batches it is sent and answers as the real
// one does: 200 {"success":true}, CORS for the shop's origin with
// credentials.
'use strict'
const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')

const ROOT = path.join(__dirname, '..')
const read = (f) => fs.readFileSync(path.join(ROOT, f), 'utf8')

// jsString is a JavaScript string literal safe inside <script>, as Go's
// encoding/json writes it.
const jsString = (s) => JSON.stringify(s).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026')

// fillDemo fills a demo page's placeholders.
function fillDemo(html, { endpoint, writeKey }) {
  return html
    .split('"%SHOPTRAIL_WRITE_KEY%"')
    .join(jsString(writeKey))
    .split('"%SHOPTRAIL_ENDPOINT%"')
    .join(jsString(endpoint))
    .split('<!--shop.css-->')
    .join('<style>\n' + read('demo/shop.css') + '</style>')
}

// snippetTag is the loading snippet with src and options, in <script>.
function snippetTag(options, src = 's.js') {
  const s = read('dist/snippet.min.js').trim()
  return `<script>${s.slice(0, s.indexOf('(window,document,'))}(window,document,${jsString(src)},${JSON.stringify(options)});</script>`
}

function listen(server) {
  return new Promise((resolve, reject) => {
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const url = `http://127.0.0.1:${server.address().port}`
      resolve({
        url,
        close: () =>
          new Promise((r) => {
            server.closeAllConnections()
            server.close(() => r())
          })
      })
    })
  })
}

// startShop serves the demo shop (its pages post to endpoint with writeKey)
// plus pages, a map of path to HTML, and the beacon at /s.js.
async function startShop({ endpoint = '/v1/batch', writeKey = 'wk_e2e', pages = {} } = {}) {
  const files = {
    '/s.js': ['text/javascript', read('dist/beacon.min.js')],
    '/shop.js': ['text/javascript', read('demo/shop.js')]
  }
  for (const f of fs.readdirSync(path.join(ROOT, 'demo')))
    if (f.endsWith('.html')) files['/' + f] = ['text/html', fillDemo(read('demo/' + f), { endpoint, writeKey })]
  files['/'] = files['/index.html']
  for (const [p, html] of Object.entries(pages)) files[p] = ['text/html', html]
  const server = http.createServer((req, res) => {
    const f = files[new URL(req.url, 'http://x').pathname]
    if (!f) return res.writeHead(404).end('not found')
    res.writeHead(200, { 'Content-Type': f[0] + '; charset=utf-8', 'Cache-Control': 'no-cache' }).end(f[1])
  })
  return listen(server)
}

// startCollector records every batch posted to it. answer(body, req) may
// return { status, json, headers } (default 200 {"success":true}); hold(body)
// true keeps the response back until release() (a request in flight).
async function startCollector({ answer, hold } = {}) {
  const batches = []
  const held = []
  const server = http.createServer((req, res) => {
    const origin = req.headers.origin
    const cors = origin ? { 'Access-Control-Allow-Origin': origin, 'Access-Control-Allow-Credentials': 'true', Vary: 'Origin' } : {}
    if (req.method === 'OPTIONS') return res.writeHead(204, cors).end()
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      let body
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      } catch (e) {
        return res.writeHead(400, cors).end('{"error":"bad json"}')
      }
      batches.push({ path: req.url, body, contentType: req.headers['content-type'], cookie: req.headers.cookie || '' })
      const a = (answer && answer(body, req)) || {}
      const send = () =>
        res
          .writeHead(a.status || 200, { 'Content-Type': 'application/json', ...cors, ...a.headers })
          .end(JSON.stringify(a.json || { success: true }))
      if (hold && hold(body)) held.push(send)
      else send()
    })
  })
  const s = await listen(server)
  return {
    ...s,
    batches,
    messages: () => batches.flatMap((b) => b.body.batch),
    release: () => held.splice(0).forEach((send) => send())
  }
}

module.exports = { startShop, startCollector, snippetTag, fillDemo, jsString }
