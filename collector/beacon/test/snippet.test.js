// The snippet: calls made before the beacon loads are queued and replayed,
// the e-commerce helpers name Segment's events, and what the README and
// the demo shop paste is the built snippet.
'use strict'
const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { clock, names, Page } = require('../fake/helpers')
const { SNIPPET } = require('../fake/browser')

const HELPERS = {
  promotionViewed: 'Promotion Viewed',
  promotionClicked: 'Promotion Clicked',
  productListViewed: 'Product List Viewed',
  productClicked: 'Product Clicked',
  productViewed: 'Product Viewed',
  productAdded: 'Product Added',
  productRemoved: 'Product Removed',
  cartViewed: 'Cart Viewed',
  checkoutStarted: 'Checkout Started',
  checkoutStepCompleted: 'Checkout Step Completed',
  paymentInfoEntered: 'Payment Info Entered',
  orderCompleted: 'Order Completed',
  productsSearched: 'Products Searched',
  productAddedToWishlist: 'Product Added to Wishlist',
  signedUp: 'Signed Up',
  loggedIn: 'Logged In',
  inquiryStarted: 'Inquiry Started'
}
const CORE = ['page', 'track', 'identify', 'reset', 'consent', 'anonymousId']

function loaded(t, setup) {
  const page = new Page()
  t.after(() => page.close())
  page.snippet()
  if (setup) setup(page)
  page.loadBeacon()
  return page
}

test('calls made before the beacon loads are replayed in order', async (t) => {
  const c = clock(t)
  const page = loaded(t, (p) => {
    assert.equal(p.scriptTag.src, '/s.js')
    assert.equal(p.scriptTag.async, true)
    p.run(`
      shoptrail.identify('c-7', { role: 'engineer' })
      shoptrail.productViewed({ product_id: 'p1' })
      shoptrail.track('Custom', { a: 1 })`)
    assert.equal(p.requests.length, 0)
  })
  await c.tick(1000)
  assert.deepEqual(names(page.sent), ['page', 'identify', 'Product Viewed', 'Custom'])
  assert.deepEqual(page.sent[2].properties, { product_id: 'p1' })
  assert.ok(page.sent.slice(1).every((m) => m.userId == 'c-7'))
  assert.equal(page.st.length, 0, 'the queue is empty')
})

test('the snippet defines the core methods and one helper per e-commerce event', async (t) => {
  const c = clock(t)
  const page = loaded(t)
  const methods = page.run(`Object.keys(shoptrail).filter(k => typeof shoptrail[k] == 'function')`)
  assert.deepEqual([...methods].sort(), [...CORE, ...Object.keys(HELPERS)].sort())
  for (const m of Object.keys(HELPERS)) page.call(m, { via: m })
  // Ten go at once; the rest a second after that batch's answer.
  await c.tick(1000)
  await c.tick(1000)
  const tracked = page.sent.filter((m) => m.type == 'track')
  assert.deepEqual(
    tracked.map((m) => [m.properties.via, m.event]),
    Object.entries(HELPERS)
  )
})

test('every core method of the snippet is replaced by the beacon', (t) => {
  const page = loaded(t)
  // A stub left behind would queue calls that nobody reads.
  const stubs = page.run(`Object.keys(shoptrail).filter(k => /\\.push\\(/.test(String(shoptrail[k])))`)
  assert.deepEqual([...stubs], [])
})

test('a second snippet or a second beacon changes nothing', async (t) => {
  const c = clock(t)
  const page = loaded(t)
  page.snippet({ writeKey: 'other' })
  assert.equal(page.scriptTag.src, '/s.js')
  page.loadBeacon()
  await c.tick(1000)
  assert.deepEqual(names(page.sent), ['page'], 'one page view')
  assert.equal(page.requests[0].body.writeKey, 'wk_test')
})

test('README and the demo shop paste the built snippet', () => {
  const head = SNIPPET.slice(0, SNIPPET.indexOf('(window,document,') + '(window,document,'.length)
  const root = path.join(__dirname, '..')
  const files = ['README.md', ...fs.readdirSync(path.join(root, 'demo')).filter((f) => f.endsWith('.html')).map((f) => 'demo/' + f)]
  assert.ok(files.length >= 7, 'README and six demo pages')
  for (const f of files) assert.ok(fs.readFileSync(path.join(root, f), 'utf8').includes(head), f + ' has the current snippet')
})
