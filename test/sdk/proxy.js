// A reverse proxy in front of the real collector: the SDKs are pointed at
// it as their host. It forwards every request unchanged (preflights
// included, so the collector's own CORS answers are what the browser
// sees), records each ingest request with the messages it carried and the
// status it got, and answers chosen requests itself with a 429 or 503 —
// decided by the request's position, never by timing — so that the SDKs'
// retries are exercised deterministically.
'use strict'
const http = require('node:http')
const zlib = require('node:zlib')

// messagesOf returns the Segment messages of a recorded body: a batch, or
// one message.
function messagesOf(body) {
  if (!body || typeof body !== 'object') return []
  if (Array.isArray(body.batch)) return body.batch
  if (body.type || body.event || body.anonymousId || body.userId) return [body]
  return []
}

// startProxy listens on 127.0.0.1 (a free port) in front of target (the
// collector's URL). fault(req, n) is asked for every POST carrying events
// (n counts them from 0) and may return { status, retryAfter } to answer
// it without forwarding. It resolves to { url, requests, messages(),
// delivered(), close() }.
function startProxy(target, { fault } = {}) {
  const up = new URL(target)
  const requests = []
  let posts = 0
  const server = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks)
      let body
      try {
        const plain = /gzip/i.test(req.headers['content-encoding'] || '') ? zlib.gunzipSync(raw) : raw
        body = JSON.parse(plain.toString('utf8'))
      } catch (e) {
        body = undefined
      }
      const rec = { method: req.method, path: req.url, headers: req.headers, body, messages: messagesOf(body), status: 0, faulted: false }
      const carriesEvents = req.method === 'POST' && rec.messages.length > 0
      if (carriesEvents || req.method === 'POST') requests.push(rec)
      const f = carriesEvents && fault ? fault(rec, posts++) : null
      if (f) {
        // Answered as the collector answers a 429 or 503, CORS included.
        const origin = req.headers.origin
        const h = { 'Content-Type': 'application/json', 'Retry-After': String(f.retryAfter || 1) }
        if (origin) Object.assign(h, { 'Access-Control-Allow-Origin': origin, 'Access-Control-Allow-Credentials': 'true', 'Access-Control-Expose-Headers': 'Retry-After, X-Shoptrail-Error', Vary: 'Origin' })
        rec.status = f.status
        rec.faulted = true
        res.writeHead(f.status, h).end(JSON.stringify({ success: false, error: 'injected by the test proxy' }))
        return
      }
      const headers = { ...req.headers, host: up.host }
      const fwd = http.request({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers }, (upRes) => {
        rec.status = upRes.statusCode
        const out = []
        upRes.on('data', (c) => out.push(c))
        upRes.on('end', () => {
          rec.answer = Buffer.concat(out).toString('utf8')
          res.writeHead(upRes.statusCode, upRes.headers).end(rec.answer)
        })
      })
      fwd.on('error', (e) => {
        rec.status = 502
        if (!res.headersSent) res.writeHead(502)
        res.end('proxy: ' + e.message)
      })
      fwd.end(raw)
    })
  })
  return new Promise((resolve, reject) => {
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        requests,
        // every message any request carried, retries included
        messages: () => requests.flatMap((r) => r.messages),
        // the messages of requests the collector answered 200
        delivered: () => requests.filter((r) => r.status === 200 && !r.faulted).flatMap((r) => r.messages),
        close: () =>
          new Promise((r) => {
            server.closeAllConnections()
            server.close(() => r())
          })
      })
    )
  })
}

module.exports = { startProxy, messagesOf }
