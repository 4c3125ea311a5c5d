// The beacon in Chromium, on a tiny page served from loopback, posting to a
// recording collector on another port (cross-origin, same site: CORS with
// credentials, as with a collector on a subdomain of the shop).
'use strict'
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { launch, until, requireChromium } = require('./browser')
const { startShop, startCollector, snippetTag } = require('./servers')

const name = (m) => (m.type === 'track' ? m.event : m.type)

// tiny returns a small page that loads the beacon with options.
const tiny = (options, body = '') => `<!doctype html><html><head><meta charset="utf-8"><title>Tiny</title>
${snippetTag(options)}</head><body style="margin:0">
<h1>Tiny shop</h1>
<button id="add" onclick="shoptrail.productAdded({product_id: 'p1', quantity: 2})">Add</button>
<a id="out" href="http://127.0.0.1:9/elsewhere">Elsewhere</a>
${body}
</body></html>`

// setup starts a collector and a shop with the tiny page, and Chromium.
async function setup(t, { collector: copts, options = {}, body } = {}) {
  requireChromium()
  const collector = await startCollector(copts)
  t.after(() => collector.close())
  const opts = { writeKey: 'wk_tiny', endpoint: collector.url + '/v1/batch', ...options }
  const shop = await startShop({ pages: { '/tiny.html': tiny(opts, body) } })
  t.after(() => shop.close())
  const context = await launch()
  t.after(() => context.close())
  const page = await context.newPage()
  return { collector, shop, context, page, url: shop.url + '/tiny.html' }
}

const sent = (collector, n) => () => collector.messages().length >= n && collector.messages()

test('events reach the collector; the one made as the tab closes goes by sendBeacon', async (t) => {
  // The first batch gets no answer: the fetch stays in flight, so the next
  // events wait and can only leave with the page-hide flush.
  const { collector, page, url, context } = await setup(t, { collector: { hold: (b) => b.batch[0].type === 'page' } })
  await page.goto(url)
  await until(sent(collector, 1), 'the page view')
  await page.click('#add')
  await page.evaluate(() => shoptrail.track('Tab Closing'))
  await page.close({ runBeforeUnload: true })
  const messages = await until(sent(collector, 3), 'the events sent while the tab closed')
  collector.release()
  assert.deepEqual(messages.map(name), ['page', 'Product Added', 'Tab Closing'])
  assert.deepEqual(
    messages.map((m) => m.context.delivery.transport),
    ['fetch', 'beacon', 'beacon']
  )
  assert.deepEqual(
    messages.map((m) => m.context.delivery.seq),
    [1, 2, 3]
  )
  const [fetched, beaconed] = collector.batches
  assert.match(fetched.contentType, /^text\/plain/)
  assert.match(beaconed.contentType, /^text\/plain/, 'sendBeacon with a string: text/plain, no preflight')
  assert.equal(beaconed.body.writeKey, 'wk_tiny')
  assert.equal(messages[0].context.userAgent.length > 0, true)
  assert.equal(messages[0].context.page.title, 'Tiny')
  // The anonymous id is in a first-party cookie of the shop.
  const cookies = await context.cookies()
  const aid = cookies.find((c) => c.name === 'st_aid')
  assert.equal(aid.value, messages[0].anonymousId)
  assert.equal(aid.domain, '127.0.0.1')
  assert.ok(aid.expires * 1000 > Date.now() + 300 * 86400e3, 'kept for months')
})

test('a banner counts when half of it is visible, once', async (t) => {
  const { collector, page, url } = await setup(t, {
    body: `<div style="height:1500px"></div>
      <a id="banner" href="#" data-promotion-id="b1" data-promotion-name="Banner one" data-creative="c1" data-position="bottom"
        style="display:block;height:200px;background:#1f5eff"></a><div style="height:1500px"></div>`
  })
  await page.goto(url)
  await until(sent(collector, 1), 'the page view')
  // 30% of the banner in the viewport (720 px high): not yet.
  await page.evaluate(() => window.scrollTo(0, 1500 + 60 - 720))
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))))
  await page.evaluate(() => shoptrail.track('Marker'))
  await until(() => collector.messages().some((m) => m.event === 'Marker'), 'the marker')
  assert.ok(!collector.messages().some((m) => m.event === 'Promotion Viewed'), 'not at 30%')
  // All of it, away, and back: one impression.
  await page.evaluate(() => window.scrollTo(0, 1500 + 200 - 720 + 100))
  await until(() => collector.messages().some((m) => m.event === 'Promotion Viewed'), 'the impression')
  await page.evaluate(() => window.scrollTo(0, 0))
  await page.evaluate(() => window.scrollTo(0, 1500 + 200 - 720 + 100))
  await page.click('#banner')
  await until(() => collector.messages().some((m) => m.event === 'Promotion Clicked'), 'the click')
  const promo = collector.messages().filter((m) => /^Promotion/.test(m.event))
  assert.deepEqual(
    promo.map((m) => m.event),
    ['Promotion Viewed', 'Promotion Clicked']
  )
  assert.deepEqual(promo[0].properties, { promotion_id: 'b1', name: 'Banner one', creative: 'c1', position: 'bottom' })
})

test('single-page app navigations and outbound links are tracked', async (t) => {
  const { collector, page, url } = await setup(t)
  await page.goto(url + '?utm_source=newsletter&gclid=abc')
  await page.evaluate(() => history.pushState({}, '', '/catalog?cat=ic'))
  await until(() => collector.messages().filter((m) => m.type === 'page').length == 2, 'the second page view')
  // The outbound link's page cannot load (port 9): the click is what counts.
  await page.click('#out', { noWaitAfter: true })
  await until(() => collector.messages().some((m) => m.event === 'Outbound Link Clicked'), 'the outbound click')
  const pages = collector.messages().filter((m) => m.type === 'page')
  assert.equal(pages[1].context.page.path, '/catalog')
  assert.equal(pages[1].context.page.referrer, url + '?utm_source=newsletter&gclid=abc')
  assert.deepEqual(pages[0].context.campaign, { source: 'newsletter', clickIdKind: 'gclid', clickId: 'abc' })
  assert.deepEqual(pages[1].context.campaign, pages[0].context.campaign, 'the landing campaign, for the whole page load')
  const out = collector.messages().find((m) => m.event === 'Outbound Link Clicked')
  assert.equal(out.properties.url, 'http://127.0.0.1:9/elsewhere')
})

test('a 503 is retried with the same message ids', async (t) => {
  let n = 0
  const { collector, page, url } = await setup(t, {
    collector: { answer: () => (++n === 1 ? { status: 503, json: { error: 'overloaded' }, headers: { 'Retry-After': '1' } } : {}) }
  })
  await page.goto(url)
  await until(() => collector.batches.length >= 2, 'the retry', 15000)
  const [first, second] = collector.batches.map((b) => b.body.batch)
  assert.deepEqual(
    second.map((m) => m.messageId),
    first.map((m) => m.messageId)
  )
  assert.equal(first[0].context.delivery.transport, 'fetch')
  assert.equal(second[0].context.delivery.transport, 'retry')
  assert.equal(await page.evaluate(() => localStorage.getItem('st')).then((s) => JSON.parse(s).q.length), 0)
})

test('offline, events wait; back online, they are sent', async (t) => {
  const { collector, page, url, context } = await setup(t)
  await page.goto(url)
  await until(sent(collector, 1), 'the page view')
  await context.setOffline(true)
  await page.click('#add')
  // The beacon tried (it marks a message with its transport before the
  // fetch) and failed: the message is still stored.
  const stored = await until(async () => {
    const s = JSON.parse(await page.evaluate(() => localStorage.getItem('st')))
    return s.q.length && s.q[0].context.delivery.transport && s
  }, 'a failed attempt')
  assert.deepEqual(stored.q.map(name), ['Product Added'], 'kept in localStorage')
  assert.equal(collector.messages().length, 1, 'nothing reached the collector offline')
  await context.setOffline(false)
  const messages = await until(sent(collector, 2), 'the event after going online', 70000)
  assert.equal(messages[1].event, 'Product Added')
  assert.equal(messages[1].context.delivery.transport, 'retry')
})

test('the id the collector remembers is adopted by a visitor without one', async (t) => {
  const { collector, page, url, context } = await setup(t, {
    collector: { answer: (b) => (b.anonymousIdNew ? { json: { success: true, anonymousId: 'remembered-by-collector' } } : {}) }
  })
  await page.goto(url)
  await until(sent(collector, 1), 'the page view')
  assert.equal(collector.batches[0].body.anonymousIdNew, true)
  await until(() => page.evaluate(() => shoptrail.anonymousId() === 'remembered-by-collector'), 'the adopted id')
  await page.click('#add')
  const messages = await until(sent(collector, 2), 'the next event')
  assert.equal(messages[1].anonymousId, 'remembered-by-collector')
  assert.notEqual(collector.batches[1].body.anonymousIdNew, true)
  const cookies = await context.cookies()
  assert.equal(cookies.find((c) => c.name === 'st_aid').value, 'remembered-by-collector')
})
