#!/usr/bin/env bash
# Says whether the real-Grafana tests (dashboards push/pull, every panel's
# query through Grafana, screenshots) can run. They need the relocatable
# Grafana build: $SHOPTRAIL_GRAFANA_DIST (its .tar.zst, a folder holding one,
# or an unpacked Grafana) or ../shared/grafana beside the repository (the
# same lookup as internal/devstack.FindGrafanaDist). The tests unpack it into
# .cache/grafana themselves. Without it they are skipped, and this script
# says so plainly; with CI=true its absence is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
# Without $SHOPTRAIL_GRAFANA_DIST: shared/grafana beside the repository or
# beside any folder above it, then /work/shared/grafana.
if [ -n "${SHOPTRAIL_GRAFANA_DIST:-}" ]; then
	candidates=("$SHOPTRAIL_GRAFANA_DIST")
else
	candidates=()
	d=$(dirname "$PWD")
	while :; do
		candidates+=("$d/shared/grafana")
		[ "$d" = / ] && break
		d=$(dirname "$d")
	done
	candidates+=(/work/shared/grafana)
fi
found=
for dist in "${candidates[@]}"; do
	if [ -f "$dist" ] && [[ "$dist" == *.tar.zst ]]; then found=$dist
	elif [ -x "$dist/bin/grafana" ]; then found=$dist
	elif compgen -G "$dist/grafana-*.tar.zst" >/dev/null; then found=$(ls "$dist"/grafana-*.tar.zst | tail -n 1)
	fi
	[ -n "$found" ] && break
done
dist=${SHOPTRAIL_GRAFANA_DIST:-../shared/grafana}
if [ -n "$found" ]; then
	echo ">> real-Grafana tests run with $found"
	exit 0
fi
msg="the real-Grafana tests (dashboards push/pull, panel queries through Grafana, screenshots) did NOT run: no Grafana build at $dist (set SHOPTRAIL_GRAFANA_DIST to the grafana-*.tar.zst or an unpacked Grafana 10 with the ClickHouse plugin)"
if [ "${CI:-}" = true ]; then
	echo "FAIL: $msg" >&2
	exit 1
fi
echo ">> NOTE: $msg"
