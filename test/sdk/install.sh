#!/usr/bin/env bash
# install.sh installs the SDKs the tests drive (package-lock.json pins
# them) into test/sdk/node_modules, with npm ci, only when node_modules is
# missing or older than the lock file. make test runs it; the browser
# tests also need collector/beacon's packages (playwright-core), which
# collector/beacon/ci.sh installs the same way.
set -euo pipefail
cd "$(dirname "$0")"
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
command -v node >/dev/null || { echo "test/sdk: node is missing: install Node.js 20 or later" >&2; exit 1; }
lock=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.shoptrail-lock-sha256
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock" ]; then
	echo "test/sdk: npm ci (analytics-next, RudderStack browser and node SDKs, analytics-node, esbuild)"
	npm ci --no-audit --no-fund --loglevel=error
	echo "$lock" >"$stamp"
fi
