// The buyer's journey through the demo shop, in Chromium, against a shop
// and a recording collector on loopback (the real collector's version runs
// from Go once the stack serves the demo shop).
'use strict'
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { runJourney, EXPECTED, name } = require('./journey')
const { startShop, startCollector } = require('./servers')
const { requireChromium } = require('./browser')

test('a buyer clicks through the demo shop; every event arrives, the last with the tab closing', async (t) => {
  requireChromium()
  // The collector keeps its answer to the thank-you page's batch back: with
  // that request in flight, what the page makes later can only leave by
  // sendBeacon when the tab closes.
  const collector = await startCollector({ hold: (b) => b.batch.some((m) => m.event === 'Order Completed') })
  t.after(() => collector.close())
  const shop = await startShop({ endpoint: collector.url + '/v1/batch', writeKey: 'wk_journey' })
  t.after(() => shop.close())

  const r = await runJourney({ baseURL: shop.url, log: () => {} })
  collector.release()

  // What the browser sent (seen by the proxy) is what the collector got.
  const got = collector.messages()
  assert.deepEqual(
    [...new Set(got.map((m) => m.messageId))].sort(),
    [...r.messageIds].sort()
  )
  // In order, one message each, numbered 1..n in one tab: nothing lost.
  const byId = new Map(got.map((m) => [m.messageId, m]))
  const messages = r.messageIds.map((id) => byId.get(id))
  assert.deepEqual(messages.map(name), EXPECTED)
  assert.deepEqual(
    messages.map((m) => m.context.delivery.seq),
    EXPECTED.map((_, i) => i + 1)
  )
  assert.equal(new Set(messages.map((m) => m.context.delivery.tab)).size, 1)

  // One visitor, who became a customer at checkout.
  assert.ok(messages.every((m) => m.anonymousId === r.anonymousId))
  const identify = messages.find((m) => m.type === 'identify')
  assert.equal(identify.userId, 'c-buyer-acme-example')
  assert.deepEqual(identify.traits, { company: 'Acme Robotics GmbH', customerType: 'enterprise', role: 'purchaser' })
  assert.equal(r.userId, 'c-buyer-acme-example')
  assert.ok(messages.slice(messages.indexOf(identify)).every((m) => m.userId === r.userId))
  assert.ok(messages.slice(0, messages.indexOf(identify)).every((m) => m.userId === undefined))

  // The hero banner was seen and clicked; the one below the fold was not seen.
  const promo = messages.filter((m) => /^Promotion/.test(m.event))
  assert.deepEqual(
    promo.map((m) => [m.event, m.properties.promotion_id, m.properties.position]),
    [
      ['Promotion Viewed', 'spring-opamps', 'home_hero'],
      ['Promotion Clicked', 'spring-opamps', 'home_hero']
    ]
  )

  // The order and what the shop's code sent with it.
  const order = messages.find((m) => m.event === 'Order Completed')
  assert.equal(order.properties.products[0].product_id, 'lm358')
  assert.equal(order.properties.products[0].quantity, 25)
  assert.equal(order.properties.currency, 'USD')
  assert.equal(messages.find((m) => m.event === 'Product Added').properties.quantity, 25)

  // The last events left with the page-hide flush.
  const last = messages.at(-1)
  assert.equal(last.event, 'Inquiry Started')
  assert.equal(last.context.delivery.transport, 'beacon')
  assert.ok(
    messages.every((m) => ['fetch', 'beacon'].includes(m.context.delivery.transport)),
    'no retries on a healthy collector'
  )

  // Batches were text/plain Segment batches with the write key.
  for (const b of collector.batches) {
    assert.equal(b.path, '/v1/batch')
    assert.match(b.contentType, /^text\/plain/)
    assert.equal(b.body.writeKey, 'wk_journey')
    assert.ok(!Number.isNaN(Date.parse(b.body.sentAt)))
  }
  assert.equal(messages[0].context.page.path, '/')
  assert.equal(messages[0].context.library.name, 'shoptrail-beacon')
})
