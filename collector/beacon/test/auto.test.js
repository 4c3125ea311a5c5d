// Automatic tracking: page views (single-page apps too), banner impressions
// and clicks, outbound links; each can be switched off.
'use strict'
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { clock, open, names } = require('../fake/helpers')

const banner = (page, id = 'spring', parent) =>
  page.addElement('div', {
    dataset: { promotionId: id, promotionName: 'Spring sale', creative: 'hero.jpg', position: 'home_top' },
    parent
  })

test('a page view on load; single-page app navigations make more', async (t) => {
  const c = clock(t)
  const page = open(t, { url: 'https://shop.example/', referrer: 'https://www.google.com/' })
  page.history.pushState({}, '', '/products?cat=ic')
  page.document.title = 'ICs'
  await c.tick(500)
  page.history.replaceState({ scrolled: 1 }, '', '/products?cat=ic') // same URL: nothing
  page.history.replaceState({}, '', '/products?cat=ic#reviews') // a fragment: nothing
  await c.tick(500)
  const [home, products] = page.sent
  assert.deepEqual(names(page.sent), ['page', 'page'])
  assert.equal(home.context.page.referrer, 'https://www.google.com/')
  assert.equal(products.context.page.path, '/products')
  assert.equal(products.context.page.search, '?cat=ic')
  assert.equal(products.context.page.title, 'ICs')
  assert.equal(products.context.page.referrer, 'https://shop.example/', 'the previous page')
})

test('an event right after a navigation comes after its page view', async (t) => {
  const c = clock(t)
  const page = open(t)
  page.history.pushState({}, '', '/p/42')
  page.call('productViewed', { product_id: '42' })
  await c.tick(1000)
  assert.deepEqual(names(page.sent), ['page', 'page', 'Product Viewed'])
  assert.equal(page.sent[1].context.page.path, '/p/42')
})

test('autoPage: false makes no page view of its own', async (t) => {
  const c = clock(t)
  const page = open(t, { options: { writeKey: 'wk', autoPage: false } })
  page.history.pushState({}, '', '/other')
  page.call('page', 'Product', { category: 'ICs' })
  await c.tick(1000)
  assert.deepEqual(names(page.sent), ['page'])
  assert.equal(page.sent[0].name, 'Product')
  assert.deepEqual(page.sent[0].properties, { category: 'ICs' })
})

test('a banner is counted once, when half of it is visible', async (t) => {
  const c = clock(t)
  const page = open(t)
  const el = banner(page)
  await c.tick(500) // the page looks for banners twice a second
  page.intersect(el, 0.3)
  page.intersect(el, 0.49)
  await c.tick(1000)
  assert.deepEqual(names(page.sent), ['page'])
  page.intersect(el, 0.5)
  page.intersect(el, 0)
  page.intersect(el, 1)
  await c.tick(1000)
  assert.deepEqual(names(page.sent), ['page', 'Promotion Viewed'])
  assert.deepEqual(page.sent[1].properties, {
    promotion_id: 'spring',
    name: 'Spring sale',
    creative: 'hero.jpg',
    position: 'home_top'
  })
  assert.equal(page.observers[0].options.threshold, 0.5)
})

test('banners added later are found; each is counted on its own', async (t) => {
  const c = clock(t)
  const page = open(t)
  const a = banner(page, 'a')
  await c.tick(500)
  const b = banner(page, 'b')
  page.intersect(b, 1)
  assert.equal(page.sent.length, 0)
  await c.tick(500)
  page.intersect(a, 1)
  page.intersect(b, 1)
  await c.tick(1000)
  assert.deepEqual(
    page.sent.filter((m) => m.event).map((m) => m.properties.promotion_id),
    ['a', 'b']
  )
})

test('banner clicks and outbound links are tracked', async (t) => {
  const c = clock(t)
  const page = open(t, { url: 'https://shop.example/' })
  const link = page.addElement('a', { href: 'https://shop.example/sale' })
  const img = page.addElement('img', { parent: banner(page, 'spring', link) })
  page.click(img)
  const out = page.addElement('a', { href: 'https://www.datasheets.example/lm358.pdf' })
  page.click(page.addElement('span', { parent: out }))
  page.click(page.addElement('a', { href: 'https://shop.example/cart' })) // internal
  page.click(page.addElement('a', { href: 'mailto:sales@shop.example' }))
  page.click(page.addElement('a', {})) // no href
  page.click(page.addElement('button'))
  await c.tick(1000)
  assert.deepEqual(names(page.sent), ['page', 'Promotion Clicked', 'Outbound Link Clicked'])
  assert.equal(page.sent[1].properties.promotion_id, 'spring')
  assert.deepEqual(page.sent[2].properties, { url: 'https://www.datasheets.example/lm358.pdf' })
  assert.deepEqual(page.errors, [])
})

test('autoPromo: false and autoLinks: false switch those off', async (t) => {
  const c = clock(t)
  const page = open(t, { options: { writeKey: 'wk', autoPromo: false, autoLinks: false } })
  const el = banner(page)
  await c.tick(500)
  assert.equal(page.observers.length, 0)
  page.click(el)
  page.click(page.addElement('a', { href: 'https://elsewhere.example/' }))
  await c.tick(1000)
  assert.deepEqual(names(page.sent), ['page'])
})
