// Launching Debian's Chromium for the browser tests, through playwright-core
// (pinned in package.json; it downloads no browser of its own).
'use strict'
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const CHROMIUM = process.env.SHOPTRAIL_CHROMIUM || '/usr/bin/chromium'

// The flags every run uses: headless, no sandbox (CI runs as root), and
// nothing that talks to Google's services on its own.
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync'
]

// requireChromium throws a clear error when the browser is missing.
function requireChromium() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install -y chromium), or SHOPTRAIL_CHROMIUM set to a Chromium binary`
    )
  }
}

// launch starts Chromium with a fresh profile directory. With proxy (a
// "host:port"), every request, loopback ones too, goes through that proxy.
// It returns the Playwright browser context; close() also removes the
// profile.
async function launch({ proxy } = {}) {
  requireChromium()
  const { chromium } = require('playwright-core')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoptrail-e2e-'))
  const args = [...ARGS, `--user-data-dir=${dir}`]
  if (proxy) args.push(`--proxy-server=http://${proxy}`, '--proxy-bypass-list=<-loopback>')
  let context
  try {
    // launchPersistentContext takes the profile directory itself; the flag
    // above only documents it in the process list.
    context = await chromium.launchPersistentContext(dir, {
      executablePath: CHROMIUM,
      headless: true,
      args: args.filter((a) => !a.startsWith('--user-data-dir=')),
      viewport: { width: 1280, height: 720 }
    })
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true })
    throw e
  }
  const close = context.close.bind(context)
  context.close = async () => {
    await close().catch(() => {})
    fs.rmSync(dir, { recursive: true, force: true })
  }
  return context
}

// until polls f every 20 ms until it returns a truthy value, and fails
// after ms with what.
async function until(f, what, ms = 10000) {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await f()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

module.exports = { CHROMIUM, ARGS, launch, requireChromium, until }
