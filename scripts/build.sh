#!/usr/bin/env bash
# build.sh OUT LDFLAGS builds bin/shoptrail and shows progress: the first
# build compiles some hundreds of packages (ClickHouse, Kafka and Prometheus
# clients, ...) and takes minutes on a small machine; later builds come
# from Go's cache in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bin/shoptrail}
ldflags=${2:-}
GO=${GO:-go}

# go build -v names each package as it compiles it (none when all are
# cached): count them against what the binary depends on.
total=$($GO list -deps ./cmd/shoptrail 2>/dev/null | wc -l || echo 0)
n=0
start=$(date +%s)
tty=0
[ -t 1 ] && tty=1
set +e
$GO build -v -ldflags "$ldflags" -o "$out" ./cmd/shoptrail 2>&1 | {
	while IFS= read -r line; do
		case "$line" in
		*" "* | "#"*) echo "$line" ;; # a compiler message, not a package name
		*)
			n=$((n + 1))
			if [ "$n" = 1 ]; then echo "   compiling (the first build takes a few minutes; later ones seconds)"; fi
			if [ "$tty" = 1 ]; then
				printf '\r   [%3d/%d] %-70.70s' "$n" "$total" "$line"
			elif [ $((n % 25)) = 0 ]; then
				echo "   [$n/$total] $line ($(($(date +%s) - start)) s)"
			fi
			;;
		esac
	done
	[ "$tty" = 1 ] && [ "$n" -gt 0 ] && printf '\r%-80s\r' ""
	[ "$n" -gt 0 ] && echo "   compiled $n packages in $(($(date +%s) - start)) s"
	true
}
rc=${PIPESTATUS[0]}
exit "$rc"
