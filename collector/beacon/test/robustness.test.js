// Nothing inside the tracker reaches the host page: broken storage, cookies
// that throw, a fetch that throws, missing browser APIs, odd arguments.
'use strict'
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { clock, open, names, Page, Profile, idle } = require('../fake/helpers')

test('blocked storage and cookies: still tracking, no error', async (t) => {
  const c = clock(t)
  const profile = new Profile()
  profile.localStorage.broken = true
  profile.session('tab1').broken = true
  profile.cookiesThrow = true
  const page = open(t, { profile })
  page.call('track', 'Product Added')
  await c.tick(1000)
  page.close()
  assert.deepEqual(page.errors, [])
  assert.deepEqual(names(page.sent), ['page', 'Product Added'])
  assert.match(page.sent[0].anonymousId, /^[0-9a-z]{10,}$/)
})

test('corrupt stored state is ignored', async (t) => {
  const c = clock(t)
  const profile = new Profile()
  profile.localStorage.setItem('st', '{not json')
  const page = open(t, { profile })
  await c.tick(1000)
  assert.deepEqual(page.errors, [])
  assert.deepEqual(names(page.sent), ['page'])
})

test('a fetch that throws does not block the queue', async (t) => {
  const c = clock(t)
  let calls = 0
  const page = open(t, {
    respond: () => {
      if (++calls == 1) throw new TypeError('keepalive not supported')
      return { status: 200, body: { success: true } }
    }
  })
  await c.tick(1000)
  await c.tick(1000)
  assert.equal(calls, 2, 'retried')
  assert.deepEqual(names(page.requests[1].body.batch), ['page'])
  assert.deepEqual(page.errors, [])
})

test('a response that is not JSON is fine', async (t) => {
  const c = clock(t)
  const page = open(t, { respond: () => ({ status: 200 }) })
  page.call('track', 'A')
  await c.tick(1000)
  page.call('track', 'B')
  await c.tick(1000)
  assert.equal(page.requests.length, 2)
  assert.deepEqual(page.errors, [])
})

test('odd arguments and a message that cannot be encoded throw nothing', async (t) => {
  const c = clock(t)
  const page = open(t)
  page.run(`
    const loop = {}; loop.self = loop
    shoptrail.track('Loop', loop)
    shoptrail.track()
    shoptrail.track(null, 5)
    shoptrail.identify()
    shoptrail.identify({ traits: 'only' })
    shoptrail.page(7, 'x')
    shoptrail.productAdded(undefined)
    shoptrail.track('After')`)
  await c.tick(1000)
  assert.deepEqual(page.errors, [])
  assert.ok(!names(page.sent).includes('Loop'), 'the circular message was dropped')
  assert.equal(names(page.sent).at(-1), 'After', 'and did not block the others')
})

test('without IntersectionObserver, sendBeacon or the snippet: no error', async (t) => {
  const c = clock(t)
  const page = new Page({ intersectionObserver: false })
  t.after(() => page.close())
  page.navigator.sendBeacon = undefined
  page.open()
  page.addElement('div', { dataset: { promotionId: 'x' } })
  await c.tick(1000)
  page.call('track', 'Bye')
  page.close()
  assert.deepEqual(page.errors, [])
  assert.deepEqual(names(page.sent), ['page'])
  assert.deepEqual(names(page.stored().q), ['Bye'], 'kept for the next page')

  // The beacon without the snippet (no options): inert, silent.
  const bare = new Page()
  t.after(() => bare.close())
  bare.loadBeacon()
  await c.tick(2000)
  assert.deepEqual(bare.errors, [])
  assert.equal(bare.requests.length, 0)
})

test('exceptions in listeners and observers are swallowed', async (t) => {
  const c = clock(t)
  const page = open(t)
  page.click({}) // a target without closest()
  page.click(null)
  page.intersect({}, 1) // not observed: nothing
  page.observers[0].callback([{ target: null, intersectionRatio: 1 }])
  page.observers[0].callback(null)
  page.history.pushState(null, '', '/x')
  page.document.title = undefined
  await c.tick(1000)
  page.close()
  await idle()
  assert.deepEqual(page.errors, [])
})
