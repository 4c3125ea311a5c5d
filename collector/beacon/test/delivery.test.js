// Delivery: the message format, batching by count and interval, sendBeacon
// on page hide, retry with backoff from the bounded localStorage queue,
// no retry on 4xx, dedupe by messageId, sequence numbers and transports.
'use strict'
const { test } = require('node:test')
const assert = require('node:assert/strict')
const pkg = require('../package.json')
const { T0, clock, open, names, Page, Profile, idle } = require('../fake/helpers')

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

test('a page view is a Segment message in a Segment batch', async (t) => {
  const c = clock(t)
  const page = open(t, {
    url: 'https://shop.example/products?q=resistor#top',
    referrer: 'https://www.baidu.com/',
    title: 'Products',
    options: { writeKey: 'wk_1', endpoint: 'https://t.shop.example/v1/batch' }
  })
  assert.equal(page.requests.length, 0, 'batched, not sent at once')
  await c.tick(1000)
  assert.equal(page.requests.length, 1)
  const { url, init, body } = page.requests[0]
  assert.equal(url, 'https://t.shop.example/v1/batch')
  assert.equal(init.method, 'POST')
  assert.equal(typeof init.body, 'string', 'a string body goes as text/plain: no CORS preflight')
  assert.equal(init.headers, undefined, 'no header that would need a preflight')
  assert.equal(init.keepalive, true)
  assert.equal(init.credentials, 'include', 'the collector may keep its own cookie')
  assert.equal(body.writeKey, 'wk_1')
  assert.match(body.sentAt, ISO)
  assert.equal(body.sentAt, new Date(T0 + 1000).toISOString())
  assert.equal(body.batch.length, 1)
  const m = body.batch[0]
  assert.equal(m.type, 'page')
  assert.match(m.messageId, /^[0-9a-z]{10,}$/)
  assert.equal(m.anonymousId, page.cookie().value)
  assert.equal(m.userId, undefined)
  assert.equal(m.timestamp, new Date(T0).toISOString())
  assert.equal(m.properties, undefined)
  assert.deepEqual(m.context.page, {
    url: 'https://shop.example/products?q=resistor',
    path: '/products',
    referrer: 'https://www.baidu.com/',
    title: 'Products',
    search: '?q=resistor'
  })
  assert.equal(m.context.userAgent, 'Mozilla/5.0 (fake) FakeBrowser/1.0')
  assert.equal(m.context.locale, 'de-DE')
  assert.equal(m.context.timezone, Intl.DateTimeFormat().resolvedOptions().timeZone)
  assert.deepEqual(m.context.library, { name: 'shoptrail-beacon', version: pkg.version })
  assert.deepEqual(m.context.campaign, {})
  assert.equal(m.context.delivery.seq, 1)
  assert.equal(m.context.delivery.transport, 'fetch')
  assert.match(m.context.delivery.tab, /^[0-9a-z]{4,10}$/)
})

test('the endpoint defaults to /v1/batch of the page itself', async (t) => {
  const c = clock(t)
  const page = open(t, { options: { writeKey: 'wk' } })
  await c.tick(1000)
  assert.equal(page.requests[0].url, '/v1/batch')
})

test('batches: ten messages go at once, fewer after a second', async (t) => {
  const c = clock(t)
  const page = open(t)
  for (let i = 0; i < 8; i++) page.call('track', 'E' + i)
  await c.tick(500)
  assert.equal(page.requests.length, 0, '9 messages wait')
  page.call('track', 'E8')
  await idle()
  assert.equal(page.requests.length, 1, 'the 10th sends the batch')
  assert.equal(page.requests[0].body.batch.length, 10)
  assert.deepEqual(names(page.requests[0].body.batch), ['page', 'E0', 'E1', 'E2', 'E3', 'E4', 'E5', 'E6', 'E7', 'E8'])

  page.call('track', 'Late')
  await c.tick(999)
  assert.equal(page.requests.length, 1)
  await c.tick(1)
  assert.equal(page.requests.length, 2)
  assert.deepEqual(names(page.requests[1].body.batch), ['Late'])
})

test('one request at a time: messages made meanwhile go in the next', async (t) => {
  const c = clock(t)
  let release
  const page = open(t, {
    respond: () => new Promise((r) => (release = () => r({ status: 200, body: { success: true } })))
  })
  await c.tick(1000)
  assert.equal(page.requests.length, 1)
  for (let i = 0; i < 12; i++) page.call('track', 'E' + i)
  await c.tick(5000)
  assert.equal(page.requests.length, 1, 'still waiting for the first answer')
  release()
  await idle()
  assert.equal(page.requests.length, 2)
  assert.equal(page.requests[1].body.batch.length, 12)
})

test('sequence numbers count every message of a tab, across its pages', async (t) => {
  const c = clock(t)
  const profile = new Profile()
  const p1 = open(t, { profile })
  p1.call('track', 'A')
  await c.tick(1000)
  p1.close()
  const p2 = open(t, { profile, url: 'https://shop.example/cart' })
  p2.call('track', 'B')
  await c.tick(1000)
  const all = [...p1.sent, ...p2.sent]
  assert.deepEqual(
    all.map((m) => m.context.delivery.seq),
    [1, 2, 3, 4]
  )
  assert.equal(new Set(all.map((m) => m.context.delivery.tab)).size, 1, 'one tab')

  // Another tab of the same browser counts on its own.
  const other = open(t, { profile, tab: 'tab2' })
  await c.tick(1000)
  const m = other.sent[0]
  assert.equal(m.context.delivery.seq, 1)
  assert.notEqual(m.context.delivery.tab, all[0].context.delivery.tab)
  assert.equal(m.anonymousId, all[0].anonymousId, 'same visitor')
})

test('retries 5xx with exponential backoff, keeping the messages stored', async (t) => {
  const c = clock(t)
  const statuses = [503, 500, 502, 200]
  const page = open(t, { respond: () => ({ status: statuses.shift(), body: { success: false } }) })
  page.call('track', 'Order Completed', { order_id: 'o1' })
  await c.tick(1000)
  assert.equal(page.requests.length, 1)
  assert.deepEqual(names(page.stored().q), ['page', 'Order Completed'], 'stored while undelivered')

  await c.tick(999)
  assert.equal(page.requests.length, 1, 'first retry after 1 s')
  await c.tick(1)
  assert.equal(page.requests.length, 2)
  await c.tick(1999)
  assert.equal(page.requests.length, 2, 'second retry after 2 s more')
  await c.tick(1)
  assert.equal(page.requests.length, 3)
  await c.tick(4000)
  assert.equal(page.requests.length, 4, 'third retry after 4 s more, and it succeeds')
  assert.deepEqual(page.stored().q, [], 'delivered messages leave the store')
  await c.tick(120000)
  assert.equal(page.requests.length, 4, 'nothing more to send')

  // The same messages each time: the collector drops duplicates by id.
  const ids = page.requests.map((r) => r.body.batch.map((m) => m.messageId).join())
  assert.equal(new Set(ids).size, 1)
  assert.deepEqual(
    page.requests.map((r) => r.body.batch[0].context.delivery.transport),
    ['fetch', 'retry', 'retry', 'retry']
  )
  assert.ok(page.requests.every((r, i) => i == 0 || r.body.sentAt > page.requests[i - 1].body.sentAt))
})

test('backoff is capped at a minute and 429 is retried too', async (t) => {
  const c = clock(t)
  let n = 0
  const page = open(t, { respond: () => ({ status: ++n < 10 ? 429 : 200, body: {} }) })
  await c.tick(1000)
  const times = []
  while (page.requests.length < 10) {
    const before = page.requests.length
    let waited = 0
    while (page.requests.length == before) {
      await c.tick(1000)
      waited += 1000
      assert.ok(waited <= 60000, 'a retry within a minute')
    }
    times.push(waited)
  }
  assert.deepEqual(times, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000])
})

test('a 4xx is not retried: the batch is dropped', async (t) => {
  const c = clock(t)
  const page = open(t, { respond: () => ({ status: 400, body: { error: 'invalid' } }) })
  await c.tick(1000)
  assert.equal(page.requests.length, 1)
  assert.deepEqual(page.stored().q, [])
  await c.tick(300000)
  assert.equal(page.requests.length, 1)
})

test('offline: retried with backoff, kept through the page hide, sent by the next page', async (t) => {
  const c = clock(t)
  const profile = new Profile()
  const p1 = open(t, { profile, respond: () => ({ network: true }) })
  p1.call('track', 'Product Added', { product_id: 'p1' })
  await c.tick(1000)
  await c.tick(1000)
  assert.equal(p1.requests.length, 2, 'failed and retried')
  p1.navigator.onLine = false
  p1.call('track', 'Cart Viewed')
  p1.close()
  assert.equal(p1.beacons.length, 0, 'no sendBeacon while offline: it would be lost')
  assert.deepEqual(names(profile.localStorage.json('st').q), ['page', 'Product Added', 'Cart Viewed'])

  const p2 = open(t, { profile, url: 'https://shop.example/cart' })
  await c.tick(1000)
  assert.equal(p2.requests.length, 1)
  const batch = p2.requests[0].body.batch
  assert.deepEqual(names(batch), ['page', 'Product Added', 'Cart Viewed', 'page'])
  assert.deepEqual(
    batch.map((m) => m.context.delivery.transport),
    ['retry', 'retry', 'fetch', 'fetch'],
    'tried before: retry; never tried: a first send'
  )
  const before = p1.requests[0].body.batch.map((m) => m.messageId)
  assert.deepEqual(
    batch.slice(0, 2).map((m) => m.messageId),
    before,
    'same message ids'
  )
  assert.deepEqual(profile.localStorage.json('st').q, [])
})

test('the stored queue keeps the newest 100 messages', async (t) => {
  const c = clock(t)
  const page = open(t, { respond: () => ({ status: 503 }) })
  for (let i = 0; i < 150; i++) page.call('track', 'E' + i)
  await c.tick(1000)
  const q = page.stored().q
  assert.equal(q.length, 100)
  assert.equal(q[0].event, 'E50')
  assert.equal(q[99].event, 'E149')
})

test('page hide sends what waits with sendBeacon, once', async (t) => {
  const c = clock(t)
  const page = open(t, { options: { writeKey: 'wk', endpoint: 'https://t.shop.example/e' } })
  page.call('track', 'Promotion Clicked', { promotion_id: 'b1' })
  page.hide()
  assert.equal(page.requests.length, 0)
  assert.equal(page.beacons.length, 1)
  const { url, body } = page.beacons[0]
  assert.equal(url, 'https://t.shop.example/e')
  assert.equal(body.writeKey, 'wk')
  assert.match(body.sentAt, ISO)
  assert.deepEqual(names(body.batch), ['page', 'Promotion Clicked'])
  assert.ok(body.batch.every((m) => m.context.delivery.transport == 'beacon'))
  assert.deepEqual(page.stored().q, [], 'handed to the browser')
  page.close()
  await c.tick(5000)
  assert.equal(page.beacons.length, 1, 'nothing twice')
  assert.equal(page.requests.length, 0)
})

test('page hide leaves a message in flight to its fetch', async (t) => {
  const c = clock(t)
  const page = open(t, { respond: () => new Promise(() => {}) })
  await c.tick(1000)
  assert.equal(page.requests.length, 1, 'the page view is in flight')
  page.call('track', 'Checkout Started')
  page.close()
  assert.deepEqual(names(page.beacons[0].body.batch), ['Checkout Started'])
  assert.deepEqual(names(page.stored().q), ['page'], 'kept until its answer comes, or for the next page')
})

test('a refused sendBeacon keeps the messages for a retry', async (t) => {
  const c = clock(t)
  const page = open(t, { beacon: false })
  page.hide()
  assert.equal(page.beacons.length, 1)
  assert.deepEqual(names(page.stored().q), ['page'])
  // The tab comes back: the fetch resends it.
  page.document.hidden = false
  page.call('track', 'Back')
  await c.tick(1000)
  assert.deepEqual(
    page.requests[0].body.batch.map((m) => m.context.delivery.transport),
    ['retry', 'fetch']
  )
})

test('messages are copies: later changes by the page do not alter them', async (t) => {
  const c = clock(t)
  const page = open(t)
  page.run(`var p = { product_id: 'p1', price: 3 }; shoptrail.track('Product Added', p); p.price = 4`)
  await c.tick(1000)
  assert.equal(page.sent[1].properties.price, 3)
})
