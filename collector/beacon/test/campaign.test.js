// Campaigns: utm_* parameters and ad click ids of the landing URL, and the
// referrer, in context.campaign and context.page as Segment sends them.
'use strict'
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { clock, open, Profile, idle } = require('../fake/helpers')

// landing returns the context of the first message of a page opened at url.
async function landing(t, url, referrer = '') {
  const page = open(t, { url, referrer })
  t.mock.timers.tick(1000)
  await idle()
  return page.sent[0].context
}

test('utm parameters become context.campaign, utm_campaign its name', async (t) => {
  clock(t)
  const ctx = await landing(
    t,
    'https://shop.example/?utm_source=baidu&utm_medium=cpc&utm_campaign=spring%20sale&utm_term=resistor&utm_content=banner-1&utm_id=7&x=1',
    'https://www.baidu.com/s?wd=resistor'
  )
  assert.deepEqual(ctx.campaign, {
    source: 'baidu',
    medium: 'cpc',
    name: 'spring sale',
    term: 'resistor',
    content: 'banner-1',
    id: '7'
  })
  assert.equal(ctx.page.referrer, 'https://www.baidu.com/s?wd=resistor')
  assert.equal(ctx.page.search, '?utm_source=baidu&utm_medium=cpc&utm_campaign=spring%20sale&utm_term=resistor&utm_content=banner-1&utm_id=7&x=1')
})

test('ad click ids are kept with their kind', async (t) => {
  clock(t)
  const f = async (param, value = 'Cj0KCQ-abc_123') => {
    const ctx = await landing(t, `https://shop.example/p?${param}=${value}`)
    return ctx.campaign
  }
  for (const kind of ['gclid', 'wbraid', 'gbraid', 'dclid', 'msclkid', 'fbclid', 'ttclid', 'twclid', 'li_fat_id', 'yclid', 'bd_vid', 'qclid', 'gdt_vid', 'clickid'])
    assert.deepEqual(await f(kind), { clickIdKind: kind, clickId: 'Cj0KCQ-abc_123' }, kind)
})

test('the first click id in the URL wins; utm parameters go along', async (t) => {
  clock(t)
  const ctx = await landing(t, 'https://shop.example/?bd_vid=111&utm_source=baidu&gclid=222')
  assert.deepEqual(ctx.campaign, { clickIdKind: 'bd_vid', clickId: '111', source: 'baidu' })
})

test('other parameters are no click ids', async (t) => {
  clock(t)
  const ctx = await landing(t, 'https://shop.example/?id=1&video=2&click=3&product_id=4&q=clid')
  assert.deepEqual(ctx.campaign, {})
})

test('the campaign belongs to the landing page load only', async (t) => {
  const c = clock(t)
  const profile = new Profile()
  const p1 = open(t, { profile, url: 'https://shop.example/?utm_source=newsletter&gclid=g1' })
  p1.call('productViewed', { product_id: 'p1' })
  await c.tick(1000)
  assert.ok(p1.sent.every((m) => m.context.campaign.source == 'newsletter' && m.context.campaign.clickId == 'g1'))
  p1.close()
  const p2 = open(t, { profile, url: 'https://shop.example/cart', referrer: 'https://shop.example/?utm_source=newsletter&gclid=g1' })
  await c.tick(1000)
  assert.deepEqual(p2.sent[0].context.campaign, {})
  assert.equal(p2.sent[0].context.page.referrer, 'https://shop.example/?utm_source=newsletter&gclid=g1')
})
