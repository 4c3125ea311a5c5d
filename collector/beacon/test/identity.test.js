// Identity: the anonymous id in a first-party cookie with a localStorage
// fallback, identify, reset, and the id the collector's own cookie
// remembers (adopted when the beacon had to make a new one).
'use strict'
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { clock, open, names, Profile, idle } = require('../fake/helpers')

test('the anonymous id lives in a first-party cookie and in localStorage', async (t) => {
  const c = clock(t)
  const profile = new Profile()
  const p1 = open(t, { profile })
  const id = p1.call('anonymousId')
  assert.match(id, /^[0-9a-z]{10,}$/)
  const cookie = p1.cookie()
  assert.equal(cookie.value, id)
  assert.equal(cookie.attrs.path, '/')
  assert.equal(cookie.attrs['max-age'], '34560000', '400 days, the longest browsers keep')
  assert.equal(cookie.attrs.domain, undefined, "the shop's own host")
  assert.equal(p1.stored().a, id)
  p1.close()

  const p2 = open(t, { profile, url: 'https://shop.example/p/1' })
  assert.equal(p2.call('anonymousId'), id, 'the next page keeps it')
  await c.tick(1000)
  assert.ok(p2.sent.every((m) => m.anonymousId == id))
})

test('localStorage keeps the id when cookies are refused or wiped', async (t) => {
  clock(t)
  const profile = new Profile()
  profile.cookiesBlocked = true
  const p1 = open(t, { profile })
  const id = p1.call('anonymousId')
  assert.equal(p1.cookie(), undefined)
  assert.ok(p1.cookieWrites > 0, 'it tried')
  p1.close()
  const p2 = open(t, { profile })
  assert.equal(p2.call('anonymousId'), id)
  p2.close()

  // A cookie that expired (Safari caps script cookies at 7 days) while
  // localStorage stayed: the id comes back, and the cookie too.
  profile.cookiesBlocked = false
  profile.cookies.clear()
  const p3 = open(t, { profile })
  assert.equal(p3.call('anonymousId'), id)
  assert.equal(p3.cookie().value, id)
})

test('the cookie wins over localStorage', async (t) => {
  clock(t)
  const profile = new Profile()
  profile.cookies.set('st_aid', { value: 'fromcookie', attrs: {} })
  profile.localStorage.setItem('st', JSON.stringify({ a: 'fromstorage' }))
  const page = open(t, { profile })
  assert.equal(page.call('anonymousId'), 'fromcookie')
  assert.equal(page.stored().a, 'fromcookie')
})

test('identify links the anonymous id to the customer, with traits', async (t) => {
  const c = clock(t)
  const profile = new Profile()
  const p1 = open(t, { profile })
  const aid = p1.call('anonymousId')
  p1.call('track', 'Before')
  const traits = { company: 'Acme GmbH', industry: 'automotive', customerType: 'enterprise', role: 'purchaser', level: 'gold' }
  p1.call('identify', 'c-42', traits)
  p1.call('loggedIn')
  await c.tick(1000)
  const [page, before, identify, loggedIn] = p1.sent
  assert.deepEqual(names([page, before, identify, loggedIn]), ['page', 'Before', 'identify', 'Logged In'])
  assert.equal(before.userId, undefined)
  assert.equal(identify.anonymousId, aid)
  assert.equal(identify.userId, 'c-42')
  assert.deepEqual(identify.traits, traits)
  assert.equal(loggedIn.userId, 'c-42')
  assert.equal(loggedIn.anonymousId, aid)
  p1.close()

  const p2 = open(t, { profile })
  await c.tick(1000)
  assert.equal(p2.sent[0].userId, 'c-42', 'remembered on the next page')
  assert.equal(p2.sent[0].anonymousId, aid)
})

test('identify turns a numeric customer id into a string', async (t) => {
  const c = clock(t)
  const page = open(t)
  page.call('identify', 42)
  await c.tick(1000)
  assert.equal(page.sent[1].userId, '42')
  assert.equal(page.sent[1].traits, undefined)
})

test('reset forgets the customer and starts a new anonymous id', async (t) => {
  const c = clock(t)
  const profile = new Profile()
  const p1 = open(t, { profile })
  const aid = p1.call('anonymousId')
  p1.call('identify', 'c-42')
  p1.call('track', 'Signed Out')
  p1.call('reset')
  const fresh = p1.call('anonymousId')
  p1.call('track', 'After')
  await c.tick(1000)
  assert.notEqual(fresh, aid)
  const [, identify, out, after] = p1.sent
  assert.deepEqual([identify.anonymousId, identify.userId], [aid, 'c-42'])
  assert.deepEqual([out.anonymousId, out.userId], [aid, 'c-42'], 'messages before the reset keep their ids')
  assert.deepEqual([after.anonymousId, after.userId], [fresh, undefined])
  assert.equal(p1.cookie().value, fresh)
  p1.close()
  const p2 = open(t, { profile })
  assert.equal(p2.call('anonymousId'), fresh)
  await c.tick(1000)
  assert.equal(p2.sent[0].userId, undefined)
})

test('a new id is adopted from the collector, which remembers the visitor', async (t) => {
  const c = clock(t)
  const profile = new Profile()
  const seen = []
  const respond = (req) => {
    seen.push(req.body)
    return { status: 200, body: { success: true, anonymousId: req.body.anonymousIdNew ? 'remembered' : undefined } }
  }
  const p1 = open(t, { profile, respond })
  const made = p1.call('anonymousId')
  p1.call('track', 'Early')
  await c.tick(1000)
  assert.equal(seen[0].anonymousIdNew, true, 'the id was made on this page')
  assert.ok(seen[0].batch.every((m) => m.anonymousId == made))
  assert.equal(p1.call('anonymousId'), 'remembered')
  assert.equal(p1.cookie().value, 'remembered')
  assert.equal(p1.stored().a, 'remembered')
  p1.call('track', 'Later')
  await c.tick(1000)
  assert.notEqual(seen[1].anonymousIdNew, true, 'the collector has answered')
  assert.equal(seen[1].batch[0].anonymousId, 'remembered')
  p1.close()

  // A returning visitor: the id is not new, whatever the collector says.
  const p2 = open(t, { profile, respond })
  await c.tick(1000)
  assert.notEqual(seen[2].anonymousIdNew, true)
})

test('messages queued for the collector take the adopted id', async (t) => {
  const c = clock(t)
  let release
  const page = open(t, {
    respond: () =>
      new Promise((r) => (release = () => r({ status: 200, body: { success: true, anonymousId: 'remembered' } })))
  })
  await c.tick(1000)
  page.call('track', 'Meanwhile')
  release()
  await idle()
  await c.tick(1000)
  assert.equal(page.requests[1].body.batch[0].event, 'Meanwhile')
  assert.equal(page.requests[1].body.batch[0].anonymousId, 'remembered')
})
