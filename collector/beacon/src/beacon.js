/*
 * shoptrail beacon: a tiny Segment-compatible website tracker.
 *
 * The readable source of dist/beacon.min.js (npm run build; README.md
 * documents the snippet, the API and every option). It is loaded by the
 * snippet, which also defines the e-commerce helpers; it batches Segment
 * messages and posts them as text/plain (no CORS preflight) to the
 * endpoint option, "/v1/batch" of the page's own origin by default.
 *
 * Rules this file keeps:
 *  - no exception reaches the host page: start-up runs in a try, and every
 *    callback (API method, listener, timer, observer, promise) is wrapped;
 *  - nothing is stored and nothing is sent while consent is missing (when
 *    the site asks for it) or when Do-Not-Track / GPC is honoured;
 *  - form fields are never read: only data-* attributes and link targets.
 *
 * Storage: cookie "st_aid" (anonymous id), localStorage "st" (JSON: a =
 * anonymous id, u = user id, q = messages not yet delivered), sessionStorage
 * "st" ("<tab id> <last seq>"). The collector's own httpOnly id cookie must
 * have another name.
 *
 * Written for size (the budget is 2,000 bytes gzipped): terse, but every
 * name says what it holds.
 */
;((w, d, n, loc) => {
  try {
    const VERSION = '1.0.0'
    const PROMO = '[data-promotion-id]'
    const FLUSH_AT = 10 // messages: a batch is sent when this many wait
    const FLUSH_INTERVAL = 1e3 // ms: or when the oldest waited this long
    const MAX_QUEUE = 100 // undelivered messages kept; beyond, the oldest are dropped

    const safe =
      (f) =>
      (...a) => {
        try {
          return f(...a)
        } catch (e) {}
      }
    const on = (target, type, f) => target.addEventListener(type, safe(f), true)
    // About 100 random bits in 20-odd characters. Segment ids are opaque
    // strings, and crypto.randomUUID is missing on plain-http pages.
    const newId = () => Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2)
    const iso = () => new Date().toISOString()
    const here = () => loc.href.split('#')[0]

    // The snippet leaves an array of queued calls with the options in .o;
    // that same object becomes the API, so references to it stay valid.
    const api = w.shoptrail || []
    if (api.loaded) return
    // Options (README.md documents each).
    const {
      writeKey,
      endpoint = '/v1/batch',
      autoPage = 1,
      autoPromo = 1,
      autoLinks = 1,
      consent = true,
      respectDNT
    } = api.o
    const dnt = respectDNT && (n.doNotTrack == 1 || n.globalPrivacyControl)

    let granted = consent
    let ok // storing and sending are allowed: consent and no Do-Not-Track
    let aid = newId() // anonymous id; provisional until storing is allowed
    let fresh // aid was made on this page and the collector has not answered yet
    let uid // user id
    let tab = newId().slice(0, 10)
    let seq = 0
    let q = [] // undelivered messages, oldest first
    let busy // a fetch is in flight
    let timer
    let fails = 0 // failed requests in a row, for the backoff
    let lastUrl
    let referrer = d.referrer

    // store gets (v undefined), sets, or removes (v falsy) the key "st" of
    // localStorage (area "local") or sessionStorage ("session").
    const store = (area, v) => {
      try {
        area = w[area + 'Storage']
        return v === undefined ? area.getItem('st') : v ? area.setItem('st', v) : area.removeItem('st')
      } catch (e) {}
    }
    // cookie reads the id cookie, or writes it (empty when consent is
    // withdrawn: the next visit cannot tell this browser from a new one).
    // (document.cookie throws in sandboxed frames.)
    const cookie = safe((v) =>
      v === undefined ? d.cookie.match(/st_aid=([^;]+)/)?.[1] : (d.cookie = `st_aid=${v};path=/;max-age=34560000`)
    )
    const save = () =>
      ok && (store('local', JSON.stringify({ a: aid, u: uid, q })), store('session', tab + ' ' + seq), cookie(aid))

    // adopt switches to another anonymous id, in undelivered messages too.
    const adopt = (id) => {
      q.forEach((m) => m.anonymousId == aid && (m.anonymousId = id))
      aid = id
      save()
    }

    const push = (m) => {
      q.push(m)
      q.splice(0, q.length - MAX_QUEUE)
    }

    const drop = (batch) => {
      q = q.filter((m) => !batch.includes(m))
      save()
    }

    // enable loads identity, tab and undelivered messages once storing is
    // allowed; messages made before keep their place and get the stored id.
    const enable = () => {
      if (ok || dnt || !granted) return
      ok = 1
      const stored = safe(JSON.parse)(store('local')) || {}
      const id = cookie() || stored.a
      const t = store('session')?.split(' ')
      fresh = !id
      uid ||= stored.u
      if (t) [tab, seq] = t
      // What earlier pages could not deliver. A page still open in another
      // tab may be sending some of it: the collector drops duplicate ids.
      stored.q?.forEach(push)
      adopt(id || aid)
      schedule()
    }

    const campaign = {}
    const ctx = {
      campaign,
      userAgent: n.userAgent,
      locale: n.language,
      timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
      library: { name: 'shoptrail-beacon', version: VERSION }
    }
    // The landing URL's campaign, as Segment's analytics.js reads it (every
    // utm_* parameter, utm_campaign as name), and the first ad click id:
    // gclid, dclid, fbclid, ttclid, twclid, yclid, qclid (360), msclkid,
    // wbraid, gbraid, bd_vid (Baidu), gdt_vid (Tencent Ads), li_fat_id,
    // clickid (Ocean Engine / Douyin) and other *clid parameters.
    new URLSearchParams(loc.search).forEach((v, k) => {
      if (/^utm_/.test(k)) campaign[k == 'utm_campaign' ? 'name' : k.slice(4)] = v
      else if (!campaign.clickId && /cl(ic)?k?id$|braid$|_vid$|^li_fat_id$/.test(k))
        (campaign.clickIdKind = k), (campaign.clickId = v)
    })

    const page = () => ({ url: here(), path: loc.pathname, referrer, title: d.title, search: loc.search })

    // spa makes the page view of a single-page app's new URL, before any
    // other message of that page.
    const spa = () => autoPage && lastUrl != here() && ((referrer = lastUrl), methods.page())

    const message = (type, fields) => {
      if (dnt) return
      spa()
      // A copy: later changes to the caller's objects do not alter the
      // message, and one that cannot be encoded fails here, not every flush.
      push(
        JSON.parse(
          JSON.stringify({
            type,
            messageId: newId(),
            anonymousId: aid,
            userId: uid,
            timestamp: iso(),
            context: { ...ctx, page: page(), delivery: { tab, seq: ++seq } },
            ...fields
          })
        )
      )
      save()
      schedule()
    }

    const schedule = () =>
      ok &&
      !busy &&
      q[0] &&
      (!fails && q.length >= FLUSH_AT ? flush() : (timer ||= setTimeout(flush, FLUSH_INTERVAL)))

    // flush posts the oldest undelivered messages with fetch. flush(1), when
    // the page is hidden or goes away, sends those never tried with
    // sendBeacon; failed ones stay stored for a later page to retry.
    const flush = safe((beacon) => {
      if (!beacon) clearTimeout(timer), (timer = 0)
      // Offline, a fetch fails and is retried; sendBeacon would lose it.
      if (!ok || busy > !!beacon || (beacon && !n.onLine)) return
      // The messages to send, each marked with how this copy goes.
      const batch = q.filter(({ context: { delivery: dl } }) => {
        if (!beacon || !dl.transport) return (dl.transport = dl.transport ? 'retry' : beacon ? 'beacon' : 'fetch')
      })
      if (!batch[0]) return
      const body = JSON.stringify({ batch, sentAt: iso(), writeKey, anonymousIdNew: fresh })
      save()
      if (beacon) return n.sendBeacon(endpoint, body) && drop(batch)
      const done = (retry) => {
        busy = 0
        if (retry) {
          timer = setTimeout(flush, Math.min(6e4, 500 * 2 ** ++fails))
        } else {
          fails = 0
          drop(batch)
          schedule()
        }
      }
      fetch(endpoint, { method: 'POST', body, keepalive: body.length < 6e4, credentials: 'include' })
        .then(
          (r) => {
            done(r.status > 499 || r.status == 429)
            if (r.ok) return (fresh = 0), r.json().then((j) => j.anonymousId && adopt(j.anonymousId))
          },
          () => done(1)
        )
        .catch(() => {})
      busy = 1 // only now: a fetch that throws must not block the queue
    })

    const props = ({ dataset: s }) => ({
      promotion_id: s.promotionId,
      name: s.promotionName,
      creative: s.creative,
      position: s.position
    })

    const track = (event, properties) => message('track', { event, properties })
    const methods = {
      page: (name, properties) => {
        lastUrl = here()
        message('page', { name, properties })
      },
      track,
      identify: (userId, traits) => {
        if (userId) uid = '' + userId
        message('identify', { traits })
      },
      // reset forgets the user (log out): a new anonymous id, no user id.
      reset: () => {
        uid = fresh = undefined
        aid = newId()
        save()
      },
      // consent(true) allows cookies, storage and sending; consent(false)
      // withdraws it and deletes what was stored and what was not sent.
      consent: (yes) => {
        granted = yes
        if (yes) return enable()
        ok = 0
        q = []
        cookie('')
        store('local', 0)
        store('session', 0)
      },
      anonymousId: () => aid
    }
    for (const k in methods) api[k] = safe(methods[k])
    api.loaded = VERSION
    w.shoptrail = api

    enable()

    autoPage && methods.page()

    // Replay the calls the snippet queued.
    for (const c of api.splice(0)) api[c[0]]?.(...c.slice(1))

    on(w, 'pagehide', () => flush(1))
    on(d, 'visibilitychange', () => d.hidden && flush(1))
    on(d, 'click', ({ target: t }) => {
      const promo = autoPromo && t.closest(PROMO)
      const a = autoLinks && t.closest('a')
      if (promo) track('Promotion Clicked', props(promo))
      if (a?.host && a.host != loc.host) track('Outbound Link Clicked', { url: a.href })
    })

    // Banner impressions: once per element, when half of it is visible.
    const io =
      autoPromo &&
      new IntersectionObserver(
        safe((entries) => {
          for (const { target, intersectionRatio } of entries)
            if (intersectionRatio >= 0.5 && !target.stSeen) {
              target.stSeen = 1
              track('Promotion Viewed', props(target))
            }
        }),
        { threshold: 0.5 }
      )
    // Twice a second: a page view when a single-page app changed the URL
    // (path or query) without an event since, and banners added to the page.
    const poll = () => {
      spa()
      io && d.querySelectorAll(PROMO).forEach((el) => io.observe(el))
    }
    poll()
    setInterval(safe(poll), 500)
  } catch (e) {}
})(window, document, navigator, location)
