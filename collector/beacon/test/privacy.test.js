// Privacy: the consent switch, Do-Not-Track and Global Privacy Control, and
// the promise never to read form fields.
'use strict'
const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { clock, open, names, Profile } = require('../fake/helpers')

// nothingLeft asserts that a page stored nothing and sent nothing.
function nothingLeft(page) {
  assert.equal(page.cookieWrites || 0, 0, 'no cookie written')
  assert.equal(page.profile.localStorage.items.size, 0, 'nothing in localStorage')
  for (const s of page.profile.tabs.values()) assert.equal(s.items.size, 0, 'nothing in sessionStorage')
  assert.equal(page.requests.length + page.beacons.length, 0, 'nothing sent')
}

test('consent: false stores and sends nothing until consent(true)', async (t) => {
  const c = clock(t)
  const profile = new Profile()
  profile.localStorage.setItem('st', JSON.stringify({ a: 'old-id', q: [] }))
  profile.localStorage.items.clear() // a first visit
  const page = open(t, { profile, options: { writeKey: 'wk', consent: false } })
  page.call('productViewed', { product_id: 'p1' })
  await c.tick(10000)
  page.hide()
  nothingLeft(page)

  page.document.hidden = false
  page.call('consent', true)
  const id = page.call('anonymousId')
  assert.equal(page.cookie().value, id)
  await c.tick(1000)
  assert.deepEqual(names(page.sent), ['page', 'Product Viewed'], 'what happened before consent is sent now')
  assert.ok(page.sent.every((m) => m.anonymousId == id))
})

test('consent given before the beacon loaded is replayed in order', async (t) => {
  const c = clock(t)
  const profile = new Profile()
  profile.cookies.set('st_aid', { value: 'returning', attrs: {} })
  const page = open(t, { profile, options: { writeKey: 'wk', consent: false } })
  // (open ran the snippet and loaded the beacon; do it again by hand)
  page.close()
  const p = new (require('../fake/browser').Page)({ profile, options: { writeKey: 'wk', consent: false } })
  t.after(() => p.close())
  p.snippet()
  p.run(`shoptrail.track('Before Consent'); shoptrail.consent(true)`)
  p.loadBeacon()
  await c.tick(1000)
  assert.deepEqual(names(p.sent), ['page', 'Before Consent'])
  assert.ok(p.sent.every((m) => m.anonymousId == 'returning'), 'the stored id, read once consent came')
})

test('consent(false) withdraws: stored ids are deleted and nothing more is sent', async (t) => {
  const c = clock(t)
  const page = open(t)
  await c.tick(1000)
  assert.equal(page.requests.length, 1)
  page.call('track', 'Pending')
  page.call('consent', false)
  assert.equal(page.cookie().value, '', 'the id cookie is emptied')
  assert.equal(page.profile.localStorage.getItem('st'), null)
  assert.equal(page.profile.session('tab1').getItem('st'), null)
  page.call('track', 'After')
  await c.tick(60000)
  page.hide()
  assert.equal(page.requests.length, 1)
  assert.equal(page.beacons.length, 0)
  assert.equal(page.profile.localStorage.getItem('st'), null)

  // A later page of a site that asks for consent: a new visitor.
  page.close()
  const next = open(t, { profile: page.profile, options: { writeKey: 'wk', consent: false } })
  next.call('consent', true)
  assert.notEqual(next.call('anonymousId'), page.sent[0].anonymousId)
})

for (const [name, nav] of [
  ['Do-Not-Track', { doNotTrack: '1' }],
  ['Global Privacy Control', { globalPrivacyControl: true }]
]) {
  test(`respectDNT honours ${name}: nothing stored, nothing sent, even with consent`, async (t) => {
    const c = clock(t)
    const page = open(t, { ...nav, options: { writeKey: 'wk', respectDNT: true } })
    page.call('track', 'Product Added')
    page.call('identify', 'c-1', { company: 'Acme' })
    page.call('consent', true)
    await c.tick(10000)
    page.close()
    nothingLeft(page)
    assert.deepEqual(page.errors, [])
  })

  test(`without respectDNT, ${name} is not a reason to stop`, async (t) => {
    const c = clock(t)
    const page = open(t, { ...nav })
    await c.tick(1000)
    assert.equal(page.requests.length, 1)
  })
}

test('the beacon reads no form field', () => {
  // It reads data-* attributes and link targets only; nothing that holds
  // what a visitor typed.
  const src = fs.readFileSync(path.join(__dirname, '..', 'src', 'beacon.js'), 'utf8').replace(/\/\/.*|\/\*[\s\S]*?\*\//g, '')
  assert.doesNotMatch(src, /\bvalue\b|\binput|textarea|\bselect|\bforms?\b|FormData|innerText|textContent|innerHTML/i)
})
