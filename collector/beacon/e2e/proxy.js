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
// { port, batches, close() }; batches holds { url, body } of each POST
// whose body is a JSON object with a batch array.
function startProxy() {
  const batches = []
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
      if (req.method === 'POST') {
        try {
          const json = JSON.parse(body.toString('utf8'))
          if (Array.isArray(json.batch)) batches.push({ url: target.href, body: json })
        } catch (e) {
          // not a batch
        }
      }
      const headers = { ...req.headers }
      delete headers['proxy-connection']
      const up = http.request(
        { host: target.hostname.replace(/^\[|\]$/g, ''), port: target.port || 80, method: req.method, path: target.pathname + target.search, headers },
        (upRes) => {
          res.writeHead(upRes.statusCode, upRes.headers)
          upRes.pipe(res)
        }
      )
      up.on('error', (e) => {
        if (!res.headersSent) res.writeHead(502)
        res.end('proxy: ' + e.message)
      })
      up.end(body)
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
