// A recording HTTP proxy for the browser journey: Chromium sends every
// request through it (loopback ones too), it forwards them unchanged and
// keeps the Segment batches the page posted, whatever the transport (fetch,
// sendBeacon) and even after the tab closed. It forwards to loopback
// addresses only: a browser test reaches nothing else.
'use strict'
const http = require('node:http')
const net = require('node:net')

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\]|::1)$/

// startProxy listens on 127.0.0.1 (a free port) and resolves to
// { port, batches, held(), release(), close() }; batches holds { url, body }
// of each POST whose body is a JSON object with a batch array. With hold (a
// function of a batch body), the first batch it matches is recorded but
// not forwarded until release(): a test that needs later messages to leave
// a given way (the beacon sends nothing else by fetch while one fetch is
// in flight) holds a request instead of hoping for a timing.
function startProxy({ hold } = {}) {
  const batches = []
  let holding = null // the held batch's forward, once held
  let released = false
  const server = http.createServer((req, res) => {
    let target
    try {
      target = new URL(req.url)
    } catch (e) {
      res.writeHead(400).end('proxy: absolute URL expected')
      return
    }
    if (!LOOPBACK.test(target.hostname) || target.protocol !== 'http:') {
      res.writeHead(403).end('proxy: loopback http only')
      return
    }
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      let held = false
      if (req.method === 'POST') {
        try {
          const json = JSON.parse(body.toString('utf8'))
          if (Array.isArray(json.batch)) {
            batches.push({ url: target.href, body: json })
            held = hold && !holding && !released && hold(json)
          }
        } catch (e) {
          // not a batch
        }
      }
      // forward sends the request on; it resolves once the upstream
      // answer has been passed back (or failed), whether or not the
      // browser still listens.
      const forward = () =>
        new Promise((resolve) => {
          const headers = { ...req.headers }
          delete headers['proxy-connection']
          const up = http.request(
            { host: target.hostname.replace(/^\[|\]$/g, ''), port: target.port || 80, method: req.method, path: target.pathname + target.search, headers },
            (upRes) => {
              if (!res.destroyed) res.writeHead(upRes.statusCode, upRes.headers)
              upRes.on('end', resolve)
              upRes.on('error', resolve)
              upRes.pipe(res)
            }
          )
          up.on('error', (e) => {
            if (!res.headersSent && !res.destroyed) res.writeHead(502)
            res.end('proxy: ' + e.message)
            resolve()
          })
          up.end(body)
        })
      if (held) holding = forward
      else forward()
    })
  })
  // HTTPS (CONNECT) is tunnelled to loopback only, unrecorded.
  server.on('connect', (req, socket, head) => {
    const [host, port] = req.url.split(/:(?=\d+$)/)
    if (!LOOPBACK.test(host)) {
      socket.end('HTTP/1.1 403 Forbidden\r\n\r\n')
      return
    }
    const up = net.connect(+port, host, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      up.write(head)
      up.pipe(socket).pipe(up)
    })
    up.on('error', () => socket.destroy())
    socket.on('error', () => up.destroy())
  })
  return new Promise((resolve, reject) => {
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: server.address().port,
        batches,
        held: () => !!holding,
        // release forwards the held batch (and lets any later one pass);
        // it resolves once the collector has answered it.
        release: () => {
          released = true
          const f = holding
          holding = null
          return f ? f() : Promise.resolve()
        },
        messages: () => batches.flatMap((b) => b.body.batch),
        close: () =>
          new Promise((r) => {
            server.closeAllConnections()
            server.close(() => r())
          })
      })
    )
  })
}

module.exports = { startProxy }
