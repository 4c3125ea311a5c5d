'use strict'
const { Page, Profile, idle } = require('./browser')

const T0 = Date.parse('2026-03-04T05:06:07.000Z')

// clock starts node:test's fake timers (setTimeout, setInterval, Date) at T0
// for the test t; they are restored when t ends.
function clock(t) {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: T0 })
  return {
    // tick advances the fake time and lets promise callbacks run.
    async tick(ms) {
      t.mock.timers.tick(ms)
      await idle()
    }
  }
}

// open loads a page with the snippet and the beacon, and closes it (its
// timers) when t ends.
function open(t, opts = {}) {
  const page = new Page(opts)
  page.open(opts.options)
  t.after(() => page.close())
  return page
}

// names lists "type:event-or-name" of messages, for compact assertions.
const names = (messages) => messages.map((m) => (m.type === 'track' ? m.event : m.type))

module.exports = { T0, clock, open, names, Page, Profile, idle }
