#!/usr/bin/env bash
# ci.sh builds and tests the website beacon; the Makefile runs it. On a fresh
# Debian machine with Node.js 20 it needs network access to the npm registry
# once (npm ci), and Debian's chromium for the browser tests.
#
#   1. npm ci, only when node_modules is missing or older than package-lock.json
#   2. npm run build, and a check that it reproduced the committed dist/
#   3. the unit tests:    node --test test/
#   4. the browser tests: node --test e2e/   (Chromium at /usr/bin/chromium,
#      or SHOPTRAIL_CHROMIUM; SHOPTRAIL_SKIP_BROWSER=1 skips them, loudly)
set -euo pipefail
cd "$(dirname "$0")"
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

command -v node >/dev/null || { echo "ci.sh: node is missing: install Node.js 20 or later" >&2; exit 1; }
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
	echo "ci.sh: Node.js $(node --version) is too old: 20 or later is needed" >&2
	exit 1
fi

lock=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.shoptrail-lock-sha256
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock" ]; then
	echo "ci.sh: npm ci (node_modules missing or stale)"
	npm ci --no-audit --no-fund --loglevel=error
	echo "$lock" >"$stamp"
fi

echo "ci.sh: npm run build (must reproduce the committed dist/)"
committed=$(mktemp -d)
trap 'rm -rf "$committed"' EXIT
cp dist/beacon.min.js dist/snippet.min.js "$committed"/
npm run --silent build
for f in beacon.min.js snippet.min.js; do
	if ! cmp -s "$committed/$f" "dist/$f"; then
		echo "ci.sh: dist/$f differs from what src/ builds to: commit the rebuilt file (npm run build)" >&2
		exit 1
	fi
done

echo "ci.sh: unit tests"
node --test test/

chromium=${SHOPTRAIL_CHROMIUM:-/usr/bin/chromium}
if [ "${SHOPTRAIL_SKIP_BROWSER:-}" = 1 ]; then
	echo "ci.sh: SKIPPING the browser tests (SHOPTRAIL_SKIP_BROWSER=1)" >&2
	exit 0
fi
if [ ! -x "$chromium" ]; then
	echo "ci.sh: $chromium is missing: the browser tests need Debian's chromium (apt-get install -y chromium)" >&2
	exit 1
fi
echo "ci.sh: browser tests ($("$chromium" --version 2>/dev/null | head -1))"
node --test e2e/
