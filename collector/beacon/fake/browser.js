// A small fake browser for the beacon's unit tests: each page runs the real
// dist/snippet.min.js and dist/beacon.min.js in its own vm context, with
// fakes of what the beacon touches (document.cookie, localStorage,
// sessionStorage, fetch, navigator.sendBeacon, IntersectionObserver,
// history, location, listeners). A Profile is the browser's state shared by
// pages: cookies, localStorage and the sessionStorage of each tab.
//
// Timers come from the test's global setTimeout/setInterval/Date, so that
// node:test's mock.timers drives them; every page clears its own timers
// when it closes.
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const vm = require('node:vm')

const DIST = path.join(__dirname, '..', 'dist')
const BEACON = fs.readFileSync(path.join(DIST, 'beacon.min.js'), 'utf8')
const SNIPPET = fs.readFileSync(path.join(DIST, 'snippet.min.js'), 'utf8')
const OPTIONS_AT = SNIPPET.indexOf('(window,document,')

// snippet returns the minified snippet with the beacon URL and options given.
function snippet(options, src = '/s.js') {
  return SNIPPET.slice(0, OPTIONS_AT) + `(window,document,${JSON.stringify(src)},${JSON.stringify(options)});`
}

class Storage {
  constructor() {
    this.items = new Map()
    this.broken = false // throws like a browser that blocks storage
  }
  check() {
    if (this.broken) throw new Error('SecurityError: storage is blocked')
  }
  getItem(k) {
    this.check()
    return this.items.has(k) ? this.items.get(k) : null
  }
  setItem(k, v) {
    this.check()
    this.items.set(k, String(v))
  }
  removeItem(k) {
    this.check()
    this.items.delete(k)
  }
  json(k) {
    const v = this.items.get(k)
    return v == null ? v : JSON.parse(v)
  }
}

class Profile {
  constructor() {
    this.cookies = new Map() // name -> {value, attrs}
    this.cookiesBlocked = false // document.cookie writes are ignored
    this.cookiesThrow = false // document.cookie throws (sandboxed frame)
    this.localStorage = new Storage()
    this.tabs = new Map() // tab name -> sessionStorage
  }
  session(tab) {
    if (!this.tabs.has(tab)) this.tabs.set(tab, new Storage())
    return this.tabs.get(tab)
  }
}

// Element is a DOM element as far as the beacon looks at one.
class Element {
  constructor(tagName, { dataset = {}, href, parent } = {}) {
    this.tagName = tagName.toUpperCase()
    this.dataset = { ...dataset }
    this.parent = parent || null
    if (href !== undefined) {
      const u = new URL(href)
      this.href = u.href
      this.host = u.protocol.startsWith('http') ? u.host : ''
    }
  }
  matches(sel) {
    if (sel === '[data-promotion-id]') return this.dataset.promotionId !== undefined
    if (sel === 'a') return this.tagName === 'A'
    throw new Error('fake browser: unsupported selector ' + sel)
  }
  closest(sel) {
    for (let el = this; el; el = el.parent) if (el.matches(sel)) return el
    return null
  }
}

class Listeners {
  constructor() {
    this.map = new Map()
  }
  addEventListener(type, f) {
    if (!this.map.has(type)) this.map.set(type, [])
    this.map.get(type).push(f)
  }
  dispatchEvent(type, event = {}) {
    // Like a browser: an exception in one listener is reported, not thrown
    // to whoever dispatched; the page collects them as uncaught errors.
    for (const f of this.map.get(type) || []) {
      try {
        f({ type, ...event })
      } catch (e) {
        this.errors.push(e)
      }
    }
  }
}

// Page is one page load in a tab of a profile.
class Page {
  constructor({
    profile = new Profile(),
    tab = 'tab1',
    url = 'https://shop.example/',
    referrer = '',
    title = 'Home',
    options = { writeKey: 'wk_test' },
    respond, // (request) => response spec, see fetch below
    beacon = true, // sendBeacon result (false: the browser refused)
    online = true,
    doNotTrack,
    globalPrivacyControl,
    intersectionObserver = true,
    language = 'de-DE'
  } = {}) {
    this.profile = profile
    this.requests = [] // every fetch: {url, init, body}
    this.beacons = [] // every sendBeacon: {url, body}
    this.errors = [] // exceptions that reached the page
    this.timers = new Set()
    this.intervals = new Set()
    this.observers = []
    this.elements = []
    this.respond = respond || (() => ({ status: 200, body: { success: true } }))
    this.url = new URL(url)
    const page = this

    const win = new Listeners()
    const doc = new Listeners()
    win.errors = doc.errors = this.errors
    this.win = win
    this.doc = doc

    const location = {
      get href() {
        return page.url.href
      },
      get pathname() {
        return page.url.pathname
      },
      get search() {
        return page.url.search
      },
      get host() {
        return page.url.host
      },
      get hostname() {
        return page.url.hostname
      },
      get protocol() {
        return page.url.protocol
      },
      get origin() {
        return page.url.origin
      }
    }
    const navigate = (u) => {
      if (u != null) page.url = new URL(u, page.url)
    }
    const history = {
      pushState: (state, unused, u) => navigate(u),
      replaceState: (state, unused, u) => navigate(u)
    }
    this.history = history

    const document = {
      referrer,
      title,
      hidden: false,
      head: { appendChild: (el) => (page.scriptTag = el) },
      documentElement: {},
      createElement: (tag) => new Element(tag),
      querySelectorAll: (sel) => page.elements.filter((el) => el.matches(sel)),
      addEventListener: (type, f) => doc.addEventListener(type, f),
      get cookie() {
        if (profile.cookiesThrow) throw new Error('SecurityError: cookies are blocked')
        return [...profile.cookies].map(([k, c]) => `${k}=${c.value}`).join('; ')
      },
      set cookie(v) {
        if (profile.cookiesThrow) throw new Error('SecurityError: cookies are blocked')
        page.cookieWrites = (page.cookieWrites || 0) + 1
        if (profile.cookiesBlocked) return
        const [pair, ...attrs] = v.split(';')
        const i = pair.indexOf('=')
        const name = pair.slice(0, i).trim()
        const a = {}
        for (const attr of attrs) {
          const [k, val = ''] = attr.split('=')
          a[k.trim().toLowerCase()] = val.trim()
        }
        if (a['max-age'] !== undefined && +a['max-age'] <= 0) profile.cookies.delete(name)
        else profile.cookies.set(name, { value: pair.slice(i + 1), attrs: a })
      }
    }
    this.document = document

    const navigator = {
      userAgent: 'Mozilla/5.0 (fake) FakeBrowser/1.0',
      language,
      onLine: online,
      doNotTrack,
      globalPrivacyControl,
      sendBeacon: (u, body) => {
        page.beacons.push({ url: u, body: typeof body === 'string' ? JSON.parse(body) : body })
        return typeof beacon === 'function' ? beacon(u, body) : beacon
      }
    }
    this.navigator = navigator

    class IntersectionObserver {
      constructor(callback, options) {
        this.callback = callback
        this.options = options
        this.targets = new Set()
        page.observers.push(this)
      }
      observe(el) {
        this.targets.add(el)
      }
      unobserve(el) {
        this.targets.delete(el)
      }
    }

    const fetch = (u, init) => {
      const request = { url: u, init, body: JSON.parse(init.body) }
      page.requests.push(request)
      let spec
      try {
        spec = page.respond(request)
      } catch (e) {
        return Promise.reject(e)
      }
      if (spec instanceof Promise) return spec.then(makeResponse)
      if (spec.network) return Promise.reject(new TypeError('Failed to fetch'))
      return Promise.resolve(makeResponse(spec))
    }
    const makeResponse = (spec) => ({
      status: spec.status,
      ok: spec.status >= 200 && spec.status < 300,
      headers: { get: (k) => (spec.headers || {})[k.toLowerCase()] || null },
      json: () => (spec.body === undefined ? Promise.reject(new SyntaxError('no JSON')) : Promise.resolve(spec.body))
    })

    const sandbox = {
      document,
      navigator,
      location,
      history,
      localStorage: undefined,
      sessionStorage: undefined,
      fetch,
      URLSearchParams,
      crypto: globalThis.crypto,
      console,
      addEventListener: (type, f) => win.addEventListener(type, f),
      setTimeout: (f, ms, ...a) => {
        const id = setTimeout(() => {
          page.timers.delete(id)
          f(...a)
        }, ms)
        page.timers.add(id)
        return id
      },
      clearTimeout: (id) => {
        page.timers.delete(id)
        clearTimeout(id)
      },
      setInterval: (f, ms, ...a) => {
        const id = setInterval(f, ms, ...a)
        page.intervals.add(id)
        return id
      }
    }
    if (intersectionObserver) sandbox.IntersectionObserver = IntersectionObserver
    Object.defineProperty(sandbox, 'Date', { get: () => globalThis.Date })
    Object.defineProperty(sandbox, 'localStorage', { get: () => profile.localStorage })
    Object.defineProperty(sandbox, 'sessionStorage', { get: () => profile.session(tab) })
    sandbox.window = sandbox
    this.window = vm.createContext(sandbox)
    this.options = options
  }

  // run evaluates code in the page, like a <script>; an exception it throws
  // is one the host page would see.
  run(code) {
    try {
      return vm.runInContext(code, this.window)
    } catch (e) {
      this.errors.push(e)
    }
  }

  // snippet runs the loading snippet (the beacon is not loaded yet).
  snippet(options = this.options) {
    this.run(snippet(options))
    return this
  }

  // loadBeacon runs the beacon, as when the snippet's script tag has loaded.
  loadBeacon() {
    this.document.currentScript = this.scriptTag
    this.run(BEACON)
    this.document.currentScript = null
    return this
  }

  // open runs the snippet and loads the beacon.
  open(options) {
    return this.snippet(options).loadBeacon()
  }

  get st() {
    return this.window.shoptrail
  }

  // call calls an API method as page code does.
  call(method, ...args) {
    return this.run(`shoptrail[${JSON.stringify(method)}](...${JSON.stringify(args)})`)
  }

  addElement(tag, opts) {
    const el = new Element(tag, opts)
    this.elements.push(el)
    return el
  }

  click(target) {
    this.doc.dispatchEvent('click', { target })
  }

  intersect(el, ratio) {
    for (const o of this.observers)
      if (o.targets.has(el)) o.callback([{ target: el, intersectionRatio: ratio, isIntersecting: ratio > 0 }], o)
  }

  // hide switches to another tab; close unloads the page.
  hide() {
    this.document.hidden = true
    this.doc.dispatchEvent('visibilitychange')
  }
  close() {
    this.hide()
    this.win.dispatchEvent('pagehide')
    for (const id of this.timers) clearTimeout(id)
    for (const id of this.intervals) clearInterval(id)
  }

  // messages returns every message sent, by fetch and by sendBeacon, in order.
  get sent() {
    return [...this.requests, ...this.beacons].flatMap((r) => r.body.batch)
  }

  cookie(name = 'st_aid') {
    return this.profile.cookies.get(name)
  }

  stored() {
    return this.profile.localStorage.json('st')
  }
}

// idle lets pending promise callbacks (fetch responses) run.
async function idle() {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r))
}

module.exports = { Page, Profile, Element, snippet, idle, BEACON, SNIPPET }
