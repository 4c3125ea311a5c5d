#!/usr/bin/env node
// run.js drives the real Segment-compatible SDKs, installed from npm,
// against a collector, and prints what each scenario sent so that a Go
// test (cmd/shoptrail/sdk_e2e_test.go) can find every call in ClickHouse
// exactly once:
//
//   SHOPTRAIL_SDK_COLLECTOR=http://127.0.0.1:8080 SHOPTRAIL_SDK_WRITE_KEY=dev node run.js [scenario...]
//
// The browser SDKs run in Debian's headless Chromium on a shop page of
// their own origin; every SDK talks to the collector through a proxy
// (proxy.js) that records each request and answers chosen ones with a 429
// or a 503 by their position, so that retries are exercised without
// racing timers. A scenario fails here when the SDK did not deliver a call
// (to the collector, answered 200), when a request failed in the browser
// (a CORS refusal shows as one), or when a retry did not happen.
//
// Output, one JSON object on stdout (progress on stderr):
//   { "scenarios": [{ "name", "anonymousId",
//                     "calls": [{ "n", "type", "event", "userId" }] }] }
// where n is the number every call carries in its properties (or traits).
'use strict'
const path = require('node:path')
const { launch, until } = require(path.join(__dirname, '..', '..', 'collector', 'beacon', 'e2e', 'browser'))
const { startProxy } = require('./proxy')
const { startShop } = require('./pages')

const log = (s) => process.stderr.write('sdk: ' + s + '\n')

// consoleLines are the browser's console messages, shown when a scenario
// fails.
const consoleLines = []

const nOf = (m) => (m.properties && m.properties.n) || (m.traits && m.traits.n) || (m.context && m.context.traits && m.context.traits.n)

// deliveredAll waits until every call's n was delivered (answered 200 by
// the collector) and returns those messages.
async function deliveredAll(proxy, calls, what, ms = 30000) {
  await until(
    () => {
      const got = new Set(proxy.delivered().map(nOf))
      return calls.every((c) => got.has(c.n))
    },
    what,
    ms
  ).catch((e) => {
    const seen = proxy.requests.map((r) => `${r.method} ${r.path} -> ${r.status}${r.faulted ? ' (proxy)' : ''}: n=${r.messages.map(nOf)} ${r.status !== 200 ? r.answer || '' : ''}`)
    throw new Error(`${e.message}; requests seen:\n  ${seen.join('\n  ')}\nbrowser console:\n  ${consoleLines.slice(-30).join('\n  ')}`)
  })
  return proxy.delivered()
}

// retried checks that the messages of every faulted request were sent
// again and delivered.
function retried(proxy, name) {
  const faulted = proxy.requests.filter((r) => r.faulted)
  if (faulted.length === 0) throw new Error(`${name}: no request was answered 429/503 by the proxy`)
  const delivered = new Set(proxy.delivered().map(nOf))
  for (const r of faulted)
    for (const m of r.messages)
      if (!delivered.has(nOf(m))) throw new Error(`${name}: call n=${nOf(m)}, answered ${r.status}, was never retried`)
  return faulted.map((r) => r.status)
}

// browserPage opens page on shop, collecting failed requests and console
// errors (a CORS refusal is both).
async function browserPage(context, url) {
  const page = await context.newPage()
  const failed = []
  page.on('requestfailed', (r) => failed.push(`${r.method()} ${r.url()}: ${r.failure() && r.failure().errorText}`))
  page.on('console', (m) => {
    if (m.type() === 'error' && /CORS|Access-Control/i.test(m.text())) failed.push('console: ' + m.text())
    consoleLines.push(`${m.type()}: ${m.text()}`.slice(0, 300))
  })
  page.on('pageerror', (e) => consoleLines.push('page error: ' + String(e).slice(0, 300)))
  await page.goto(url, { waitUntil: 'load' })
  return { page, failed }
}

function noFailures(name, failed) {
  if (failed.length) throw new Error(`${name}: requests failed in the browser:\n  ${failed.join('\n  ')}`)
}

const shopPage = (script, body = '') => `<!doctype html><html><head><meta charset="utf-8"><title>SDK test shop</title></head><body>${body}<script src="${script}"></script></body></html>`

// analyticsNextLoad is the page code that loads analytics.js from npm with
// its settings inline (no request to Segment's CDN), pointed at host.
function analyticsNextLoad(host, writeKey, deliveryStrategy) {
  const segment = { apiKey: writeKey, apiHost: host + '/v1', protocol: 'http' }
  if (deliveryStrategy) segment.deliveryStrategy = deliveryStrategy
  return `window.analytics = AnalyticsBrowser.load(
    { writeKey: ${JSON.stringify(writeKey)},
      cdnSettings: { integrations: { 'Segment.io': ${JSON.stringify(segment)} }, metrics: { sampleRate: 1, flushTimer: 300 } } },
    { integrations: { 'Segment.io': ${JSON.stringify(segment)} } })`
}

const SCENARIOS = {
  // analytics.js, one request per call; the 2nd request (Product Viewed)
  // is answered 429 (Retry-After: 1) and the 4th (identify) 503, and both
  // are retried.
  async 'analytics-next single'({ collector, writeKey, context, shop }) {
    const proxy = await startProxy(collector, { fault: (r, n) => (n === 1 ? { status: 429 } : n === 3 ? { status: 503 } : null) })
    try {
      const host = proxy.url.replace('http://', '')
      const { page, failed } = await browserPage(context, shop.url + '/segment.html')
      await page.evaluate(analyticsNextLoad(host, writeKey))
      await page.evaluate(() => window.analytics.ready())
      const calls = [
        { n: 1, type: 'page', event: '' },
        { n: 2, type: 'track', event: 'Product Viewed' },
        { n: 3, type: 'identify', event: '', userId: 'u-next-1' },
        { n: 4, type: 'track', event: 'Order Completed', userId: 'u-next-1' },
        { n: 5, type: 'track', event: 'Sample Requested', userId: 'u-next-1' }
      ]
      // One at a time, each delivered before the next: the request order,
      // and so which ones the proxy answers 429/503, is fixed.
      await page.evaluate(() => analytics.page('Catalog', { n: 1 }))
      await deliveredAll(proxy, calls.slice(0, 1), 'page')
      await page.evaluate(() => analytics.track('Product Viewed', { n: 2, product_id: 'p-1', price: 12.5 }))
      await deliveredAll(proxy, calls.slice(0, 2), 'Product Viewed, after a 429')
      await page.evaluate(() => analytics.identify('u-next-1', { n: 3, plan: 'pro' }))
      await deliveredAll(proxy, calls.slice(0, 3), 'identify, after a 503')
      await page.evaluate(() => analytics.track('Order Completed', { n: 4, order_id: 'o-next-1', revenue: 99.5, currency: 'usd' }))
      await deliveredAll(proxy, calls.slice(0, 4), 'Order Completed')
      await page.evaluate(() => analytics.track('Sample Requested', { n: 5 }))
      await deliveredAll(proxy, calls, 'every call')
      const statuses = retried(proxy, 'analytics-next single')
      // Its telemetry goes to /v1/m and is answered 200.
      await until(() => proxy.requests.some((r) => r.path.endsWith('/m')), 'analytics.js telemetry (/v1/m)', 15000)
      const badMetrics = proxy.requests.filter((r) => r.path.endsWith('/m') && r.status !== 200)
      if (badMetrics.length) throw new Error(`/v1/m answered ${badMetrics.map((r) => r.status)}`)
      const anonymousId = await page.evaluate(() => analytics.instance.user().anonymousId())
      const retries = proxy.requests.filter((r) => r.headers['x-retry-count']).length
      noFailures('analytics-next single', failed.filter((f) => !/ 42[9]|503/.test(f)))
      await page.close()
      log(`analytics-next single: ${calls.length} calls, answered ${statuses} once and retried (${retries} with X-Retry-Count)`)
      return { anonymousId, calls }
    } finally {
      await proxy.close()
    }
  },

  // analytics.js in batching mode. First page: batches of 3, the first
  // answered 503 and retried (on the SDK's next flush, 300 ms). Second page
  // of the same visitor: a 60 s timer and room for 10, so the two events
  // can only leave by the flush at page hide, when the tab closes.
  async 'analytics-next batching'({ collector, writeKey, context, shop }) {
    const proxy = await startProxy(collector, { fault: (r, n) => (n === 0 ? { status: 503 } : null) })
    try {
      const host = proxy.url.replace('http://', '')
      const calls = [1, 2, 3, 4, 5].map((n) => ({ n, type: 'track', event: 'Product Added' }))
      const first = await browserPage(context, shop.url + '/segment.html')
      await first.page.evaluate(analyticsNextLoad(host, writeKey, { strategy: 'batching', config: { size: 3, timeout: 300 } }))
      await first.page.evaluate(() => window.analytics.ready())
      await first.page.evaluate(() => {
        for (let n = 1; n <= 3; n++) analytics.track('Product Added', { n, product_id: 'p-' + n, quantity: n })
      })
      await deliveredAll(proxy, calls.slice(0, 3), 'the first batch, after a 503')
      const statuses = retried(proxy, 'analytics-next batching')
      const anonymousId = await first.page.evaluate(() => analytics.instance.user().anonymousId())
      noFailures('analytics-next batching', first.failed.filter((f) => !/503/.test(f)))
      await first.page.close()

      const second = await browserPage(context, shop.url + '/segment.html')
      await second.page.evaluate(analyticsNextLoad(host, writeKey, { strategy: 'batching', config: { size: 10, timeout: 60000 } }))
      await second.page.evaluate(() => window.analytics.ready())
      // track() resolves once the event is in the dispatcher's buffer.
      await second.page.evaluate(() =>
        Promise.all([4, 5].map((n) => analytics.track('Product Added', { n, product_id: 'p-' + n, quantity: n })))
      )
      if (proxy.messages().some((m) => nOf(m) >= 4)) throw new Error('events 4-5 left before page hide')
      if ((await second.page.evaluate(() => analytics.instance.user().anonymousId())) !== anonymousId) throw new Error('the second page has another anonymous id')
      noFailures('analytics-next batching', second.failed)
      await second.page.close({ runBeforeUnload: true })
      await deliveredAll(proxy, calls, 'the events flushed at page hide')
      const last = proxy.requests.find((r) => r.status === 200 && r.messages.some((m) => nOf(m) === 5))
      if (!last.path.endsWith('/b')) throw new Error(`the page-hide flush went to ${last.path}, want /v1/b`)
      log(`analytics-next batching: ${calls.length} calls in ${proxy.requests.filter((r) => r.messages.length).length} requests, ${statuses} retried, the last two at page hide`)
      return { anonymousId, calls }
    } finally {
      await proxy.close()
    }
  },

  // RudderStack's browser SDK v3 (XHR, one request per event): the 1st
  // request (page) is answered 429, the 3rd (Product Viewed) 503; its own retry queue sends them
  // again. page() before identify carries "userId": "".
  async 'rudderstack browser'({ collector, writeKey, context, shop }) {
    const proxy = await startProxy(collector, { fault: (r, n) => (n === 0 ? { status: 429 } : n === 2 ? { status: 503 } : null) })
    try {
      const { page, failed } = await browserPage(context, shop.url + '/rudder.html')
      await page.evaluate(rudderLoad(proxy.url, writeKey, {}))
      await page.waitForFunction(() => window.rudderReady === true)
      const calls = [
        { n: 1, type: 'page', event: '' },
        { n: 2, type: 'track', event: 'Product Viewed' },
        { n: 3, type: 'identify', event: '', userId: 'u-rudder-1' },
        { n: 4, type: 'track', event: 'Checkout Started', userId: 'u-rudder-1' }
      ]
      await page.evaluate(() => rudderanalytics.page('shop', 'Catalog', { n: 1 }))
      await deliveredAll(proxy, calls.slice(0, 1), 'page, after a 429')
      await page.evaluate(() => rudderanalytics.track('Product Viewed', { n: 2, product_id: 'p-9' }))
      await deliveredAll(proxy, calls.slice(0, 2), 'Product Viewed, after a 503')
      await page.evaluate(() => rudderanalytics.identify('u-rudder-1', { n: 3, plan: 'b2b' }))
      await deliveredAll(proxy, calls.slice(0, 3), 'identify')
      await page.evaluate(() => rudderanalytics.track('Checkout Started', { n: 4, checkout_id: 'c-1' }))
      await deliveredAll(proxy, calls, 'every call')
      const statuses = retried(proxy, 'rudderstack browser')
      const first = proxy.messages().find((m) => nOf(m) === 1)
      const anonymousId = await page.evaluate(() => rudderanalytics.getAnonymousId())
      noFailures('rudderstack browser', failed.filter((f) => !/429|503/.test(f)))
      await page.close()
      log(`rudderstack browser: ${calls.length} calls, ${statuses} retried; the first page() sent userId ${JSON.stringify(first.userId)}`)
      return { anonymousId, calls }
    } finally {
      await proxy.close()
    }
  },

  // RudderStack's browser SDK in beacon mode: sendBeacon to
  // /beacon/v1/batch?writeKey=..., the write key in the query string.
  async 'rudderstack beacon'({ collector, writeKey, context, shop }) {
    const proxy = await startProxy(collector)
    try {
      const { page, failed } = await browserPage(context, shop.url + '/rudder.html')
      await page.evaluate(rudderLoad(proxy.url, writeKey, { useBeacon: true, beaconQueueOptions: { flushQueueInterval: 200 } }))
      await page.waitForFunction(() => window.rudderReady === true)
      const calls = [
        { n: 1, type: 'page', event: '' },
        { n: 2, type: 'track', event: 'Product Added' },
        { n: 3, type: 'track', event: 'Cart Viewed' }
      ]
      await page.evaluate(() => {
        rudderanalytics.page('shop', 'Product', { n: 1 })
        rudderanalytics.track('Product Added', { n: 2, product_id: 'p-2', price: 3 })
        rudderanalytics.track('Cart Viewed', { n: 3 })
      })
      await deliveredAll(proxy, calls, 'the beacons')
      const paths = new Set(proxy.requests.filter((r) => r.messages.length).map((r) => r.path.replace(/\?.*/, '')))
      if (paths.size !== 1 || !paths.has('/beacon/v1/batch')) throw new Error(`beacon mode posted to ${[...paths]}, want /beacon/v1/batch`)
      const anonymousId = await page.evaluate(() => rudderanalytics.getAnonymousId())
      noFailures('rudderstack beacon', failed)
      await page.close()
      log(`rudderstack beacon: ${calls.length} calls by sendBeacon to /beacon/v1/batch?writeKey=`)
      return { anonymousId, calls }
    } finally {
      await proxy.close()
    }
  },

  // No SDK: a page's own sendBeacon (write key in the query string, a
  // text/plain string body: no preflight), a Jitsu-style fetch to
  // /api/s/track with X-Write-Key (a preflight), and a sendBeacon from the
  // pagehide handler as the tab closes.
  async 'plain sendBeacon and Jitsu-style'({ collector, writeKey, context, shop }) {
    const proxy = await startProxy(collector)
    try {
      const { page, failed } = await browserPage(context, shop.url + '/plain.html')
      const anonymousId = 'anon-plain-' + Date.now()
      const calls = [
        { n: 1, type: 'page', event: '' },
        { n: 2, type: 'track', event: 'Banner Clicked' },
        { n: 3, type: 'track', event: 'Inquiry Started' },
        { n: 4, type: 'track', event: 'Page Left' }
      ]
      const args = { url: proxy.url, writeKey, anonymousId }
      const queued = await page.evaluate(({ url, writeKey, anonymousId }) => {
        const beacon = (batch) => navigator.sendBeacon(url + '/v1/batch?writeKey=' + encodeURIComponent(writeKey), JSON.stringify({ batch }))
        addEventListener('pagehide', () => beacon([{ type: 'track', event: 'Page Left', anonymousId, userId: '', properties: { n: 4 } }]))
        return beacon([
          { type: 'page', name: 'Home', anonymousId, userId: '', properties: { n: 1 } },
          { type: 'track', event: 'Banner Clicked', anonymousId, properties: { n: 2 } }
        ])
      }, args)
      if (!queued) throw new Error('sendBeacon refused the batch')
      await deliveredAll(proxy, calls.slice(0, 2), 'the sendBeacon batch')
      const status = await page.evaluate(async ({ url, writeKey, anonymousId }) => {
        const r = await fetch(url + '/api/s/track', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', 'X-Write-Key': writeKey },
          body: JSON.stringify({ type: 'track', event: 'Inquiry Started', anonymousId, properties: { n: 3 } })
        })
        return r.status
      }, args)
      if (status !== 200) throw new Error(`/api/s/track answered ${status}`)
      noFailures('plain sendBeacon and Jitsu-style', failed)
      await page.close({ runBeforeUnload: true })
      await deliveredAll(proxy, calls, 'the sendBeacon at page hide')
      log(`plain sendBeacon and Jitsu-style: ${calls.length} calls (sendBeacon ?writeKey=, /api/s/track with X-Write-Key, sendBeacon at page hide)`)
      return { anonymousId, calls }
    } finally {
      await proxy.close()
    }
  },

  // @segment/analytics-node, batches of 3; the first batch is answered 503.
  async 'analytics-node'({ collector, writeKey }) {
    const proxy = await startProxy(collector, { fault: (r, n) => (n === 0 ? { status: 503 } : null) })
    try {
      const { Analytics } = require('@segment/analytics-node')
      const a = new Analytics({ writeKey, host: proxy.url, flushAt: 3, flushInterval: 200, maxRetries: 5 })
      const anonymousId = 'anon-node-' + Date.now()
      const calls = [
        { n: 1, type: 'track', event: 'Order Completed', userId: 'u-node-1' },
        { n: 2, type: 'identify', event: '', userId: 'u-node-1' },
        { n: 3, type: 'page', event: '', userId: 'u-node-1' },
        { n: 4, type: 'track', event: 'Order Refunded', userId: 'u-node-1' }
      ]
      a.track({ anonymousId, userId: 'u-node-1', event: 'Order Completed', properties: { n: 1, order_id: 'o-node-1', revenue: 42 } })
      a.identify({ anonymousId, userId: 'u-node-1', traits: { n: 2, plan: 'pro' } })
      a.page({ anonymousId, userId: 'u-node-1', name: 'Invoice', properties: { n: 3 } })
      a.track({ anonymousId, userId: 'u-node-1', event: 'Order Refunded', properties: { n: 4, order_id: 'o-node-1' } })
      await a.closeAndFlush({ timeout: 20000 })
      await deliveredAll(proxy, calls, 'analytics-node calls')
      const statuses = retried(proxy, 'analytics-node')
      log(`analytics-node: ${calls.length} calls, ${statuses} retried`)
      return { anonymousId, calls }
    } finally {
      await proxy.close()
    }
  },

  // @rudderstack/rudder-sdk-node, batches of 2; the first is answered 503.
  async 'rudder-sdk-node'({ collector, writeKey }) {
    const proxy = await startProxy(collector, { fault: (r, n) => (n === 0 ? { status: 503 } : null) })
    try {
      const Analytics = require('@rudderstack/rudder-sdk-node')
      const a = new Analytics(writeKey, { dataPlaneUrl: proxy.url, flushAt: 2, flushInterval: 200, retryCount: 5 })
      const anonymousId = 'anon-rnode-' + Date.now()
      const calls = [
        { n: 1, type: 'track', event: 'Product Added', userId: 'u-rnode-1' },
        { n: 2, type: 'identify', event: '', userId: 'u-rnode-1' },
        { n: 3, type: 'track', event: 'Order Completed', userId: 'u-rnode-1' }
      ]
      a.track({ anonymousId, userId: 'u-rnode-1', event: 'Product Added', properties: { n: 1, sku: 'sku-1', quantity: 2 } })
      a.identify({ anonymousId, userId: 'u-rnode-1', traits: { n: 2, company: 'Acme' } })
      a.track({ anonymousId, userId: 'u-rnode-1', event: 'Order Completed', properties: { n: 3, order_id: 'o-rnode-1', total: 7 } })
      await a.flush()
      await deliveredAll(proxy, calls, 'rudder-sdk-node calls')
      const statuses = retried(proxy, 'rudder-sdk-node')
      log(`rudder-sdk-node: ${calls.length} calls, ${statuses} retried`)
      return { anonymousId, calls }
    } finally {
      await proxy.close()
    }
  }
}

// rudderLoad is the page code that loads RudderStack's SDK v3 from npm with
// its source configuration given inline (no request to RudderStack's
// control plane), sending to dataPlaneUrl.
function rudderLoad(dataPlaneUrl, writeKey, extra) {
  const opts = {
    logLevel: 'ERROR',
    polyfillIfRequired: false,
    queueOptions: { minRetryDelay: 200, maxRetryDelay: 1000 },
    ...extra
  }
  return `(() => {
    const ra = new RudderAnalytics()
    window.rudderanalytics = ra
    ra.load(${JSON.stringify(writeKey)}, ${JSON.stringify(dataPlaneUrl)}, {
      ...${JSON.stringify(opts)},
      getSourceConfig: () => ({ source: { id: 'shop', name: 'shop', workspaceId: 'shop', enabled: true, config: {}, destinations: [] } }),
      onLoaded: () => { window.rudderReady = true }
    })
  })()`
}

async function main() {
  const collector = process.env.SHOPTRAIL_SDK_COLLECTOR
  const writeKey = process.env.SHOPTRAIL_SDK_WRITE_KEY || 'dev'
  if (!collector) {
    process.stderr.write('run.js: set SHOPTRAIL_SDK_COLLECTOR to the collector, e.g. http://127.0.0.1:8080\n')
    process.exit(2)
  }
  const names = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(SCENARIOS)
  const shop = await startShop({
    '/segment.html': shopPage('/analytics-next.js'),
    '/rudder.html': shopPage('/rudder.js'),
    '/plain.html': '<!doctype html><html><head><meta charset="utf-8"><title>plain</title></head><body>no SDK</body></html>'
  })
  const scenarios = []
  try {
    for (const name of names) {
      if (!SCENARIOS[name]) throw new Error(`no scenario ${JSON.stringify(name)}: ${Object.keys(SCENARIOS).join(', ')}`)
      log(name)
      // A fresh browser profile per scenario: a new visitor each time.
      const context = SCENARIOS[name].length && !/node/.test(name) ? await launch() : null
      try {
        const r = await SCENARIOS[name]({ collector, writeKey, context, shop })
        scenarios.push({ name, ...r })
      } finally {
        if (context) await context.close()
      }
    }
  } finally {
    await shop.close()
  }
  process.stdout.write(JSON.stringify({ scenarios }, null, 2) + '\n')
}

main().catch((e) => {
  process.stderr.write('run.js: ' + (e.stack || e) + '\n')
  process.exit(1)
})
