#!/usr/bin/env node
// journey.js clicks through the demo shop in Debian's Chromium the way a
// buyer does, and tells which events the collector must now have:
//
//   SHOPTRAIL_E2E_BASE_URL=http://127.0.0.1:8081 node e2e/journey.js
//
// SHOPTRAIL_E2E_LANDING_QUERY (e.g. "?utm_source=newsletter&gclid=x") is
// added to the first page's URL, so a campaign landing can be checked.
//
// home page (a page view, the hero banner's impression) -> click the banner
// -> product page -> add to cart -> cart -> checkout (identify) -> place the
// order -> thank-you page -> start a chat (Inquiry Started) and close the
// tab at once, so that the last events leave with the page-hide flush.
//
// Every request goes through a recording proxy (e2e/proxy.js), so the
// journey knows each message the browser sent, by fetch or sendBeacon.
// It prints one JSON object on stdout (progress goes to stderr):
//
//   { "anonymousId": "...", "userId": "c-buyer-acme-example",
//     "messageIds": ["..."],             every message sent, in order
//     "events": [{ "messageId", "type", "event", "transport", "seq",
//                  "transports" }],   transports: of every copy sent
//     "expected": ["page", "Promotion Viewed", ...] }
//
// so that a Go test can check ClickHouse for exactly those message ids.
'use strict'
const { launch, until } = require('./browser')
const { startProxy } = require('./proxy')

// EXPECTED is what the journey makes the beacon send, in order (a page
// view is "page", a track its event name).
const EXPECTED = [
  'page',
  'Promotion Viewed',
  'Promotion Clicked',
  'page',
  'Product Viewed',
  'Product Added',
  'page',
  'Cart Viewed',
  'page',
  'Checkout Started',
  'identify',
  'Checkout Step Completed',
  'page',
  'Order Completed',
  'Inquiry Started'
]

const name = (m) => (m.type === 'track' ? m.event : m.type)

// runJourney runs the journey against the demo shop at baseURL and returns
// the result printed by the command.
//
// With holdOrder, the proxy holds the thank-you page's first fetch (the one
// carrying Order Completed) until the tab has closed: while it is in
// flight the beacon sends nothing else by fetch, so Inquiry Started can
// only leave by sendBeacon as the tab closes, however slow the machine
// (without it, a flush timer firing before the close sends it by fetch).
async function runJourney({ baseURL, landingQuery = '', holdOrder = false, log = (s) => process.stderr.write(s + '\n') }) {
  const base = baseURL.replace(/\/+$/, '') + '/'
  const isOrderFetch = (b) => b.batch.some((m) => m.event === 'Order Completed' && m.context.delivery.transport === 'fetch')
  const proxy = await startProxy({ hold: holdOrder ? isOrderFetch : undefined })
  const context = await launch({ proxy: `127.0.0.1:${proxy.port}` })
  const sent = (event) => proxy.messages().some((m) => name(m) === event)
  try {
    const page = await context.newPage()
    log('home page')
    await page.goto(base + landingQuery, { waitUntil: 'load' })
    await until(() => sent('Promotion Viewed'), 'the hero banner impression')

    log('banner click -> product page')
    await Promise.all([page.waitForURL(/product\.html/), page.click('#hero')])
    await page.waitForSelector('#add')
    await page.fill('#qty', '25')
    await page.click('#add')
    await until(() => sent('Product Added'), 'Product Added')

    log('cart -> checkout')
    await Promise.all([page.waitForURL(/cart\.html/), page.click('#tocart')])
    await page.waitForSelector('#lines tr')
    await Promise.all([page.waitForURL(/checkout\.html/), page.click('#checkout')])
    await page.waitForSelector('#place')

    log('place the order -> thank-you page')
    await Promise.all([page.waitForURL(/thanks\.html/), page.click('#place')])
    await page.waitForFunction(() => document.getElementById('oid').textContent !== '')
    const anonymousId = await page.evaluate(() => shoptrail.anonymousId())

    if (holdOrder) await until(() => proxy.held(), 'the order batch held at the proxy', 30000)
    log('start a chat and close the tab')
    await page.evaluate(() => shoptrail.inquiryStarted({ channel: 'chat' }))
    await page.close({ runBeforeUnload: true })
    await until(() => sent('Inquiry Started'), 'the events sent while the tab closed')
    await proxy.release()

    const messages = proxy.messages()
    const seen = new Set()
    const events = []
    const transports = new Map() // every way each message was sent (a retry is another copy)
    for (const m of messages) {
      const tr = transports.get(m.messageId) || []
      tr.push(m.context.delivery.transport)
      transports.set(m.messageId, tr)
      if (seen.has(m.messageId)) continue // a retry of the same message
      seen.add(m.messageId)
      events.push({ messageId: m.messageId, type: m.type, event: m.event, transport: m.context.delivery.transport, seq: m.context.delivery.seq })
    }
    for (const e of events) e.transports = transports.get(e.messageId)
    events.sort((a, b) => a.seq - b.seq)
    const userId = (messages.find((m) => m.userId) || {}).userId
    return { anonymousId, userId, messageIds: events.map((e) => e.messageId), events, expected: EXPECTED, messages }
  } finally {
    await proxy.release()
    await context.close()
    await proxy.close()
  }
}

module.exports = { runJourney, EXPECTED, name }

if (require.main === module) {
  const baseURL = process.env.SHOPTRAIL_E2E_BASE_URL
  if (!baseURL) {
    process.stderr.write('journey: set SHOPTRAIL_E2E_BASE_URL to the demo shop, e.g. http://127.0.0.1:8081\n')
    process.exit(2)
  }
  runJourney({ baseURL, landingQuery: process.env.SHOPTRAIL_E2E_LANDING_QUERY || '', holdOrder: true }).then(
    (r) => {
      delete r.messages
      process.stdout.write(JSON.stringify(r, null, 2) + '\n')
    },
    (e) => {
      process.stderr.write('journey: ' + (e.stack || e) + '\n')
      process.exit(1)
    }
  )
}
