#!/usr/bin/env bash
# Installs what building, running and testing shoptrail needs on a fresh
# Debian machine, non-interactively and idempotently: each step checks first
# and does nothing when its part is already there.
#   scripts/deps.sh            what `make run` needs: the ClickHouse server (go
#                              build fetches the Go modules it compiles)
#   scripts/deps.sh test       also what only the tests need: ZooKeeper, Debian's
#                              chromium, Prometheus, every Go module, chDB (`browser`: the same)
set -euo pipefail
cd "$(dirname "$0")/.."

CHDB_VERSION=26.5.3 # npm @chdb/lib-linux-x64-gnu: current ClickHouse in-process, for SQL checks

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=
apt_install() {
	local missing=()
	for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "deps: apt-get install ${missing[*]}"
	if [ -z "$apt_updated" ]; then sudo_ apt-get update -qq; apt_updated=1; fi
	sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

apt_install clickhouse-server clickhouse-client
case "${1:-}" in
test | browser) ;;
*) exit 0 ;; # make run: nothing that only the tests use
esac
apt_install zookeeper # the ClickHouse cluster test (processor/clickhouse/clustertest) runs it on loopback
apt_install chromium  # the browser tests of the beacon and of the SDKs
apt_install prometheus # the Pipeline health dashboard's test (shoptrail dev scrapes the services with it)

if ! go list -m all >/dev/null 2>&1; then echo "deps: go mod download"; fi
go mod download

if [ ! -f .cache/chdb/libchdb.so ] || [ "$(cat .cache/chdb/VERSION 2>/dev/null)" != "$CHDB_VERSION" ]; then
	echo "deps: npm pack @chdb/lib-linux-x64-gnu@$CHDB_VERSION (about 170 MB)"
	tmp=$(mktemp -d)
	(cd "$tmp" && npm pack --silent "@chdb/lib-linux-x64-gnu@$CHDB_VERSION" >/dev/null && tar xzf ./*.tgz package/libchdb.so)
	mkdir -p .cache/chdb
	mv "$tmp/package/libchdb.so" .cache/chdb/libchdb.so
	echo "$CHDB_VERSION" > .cache/chdb/VERSION
	rm -rf "$tmp"
fi
