#!/usr/bin/env bash
# The history ring's memory over a long run (not part of ctest): runs anorak at a high frequency with a
# small --storage.max-bytes while the `weights` workload and whatever else runs on the host give it
# stacks, reads anorak_history_bytes and the daemon's RSS every few seconds, and prints the peaks
# against the bound.
#
#   bash tests/bench/history_memory.sh        # needs root and a built build/
# Environment: ANORAK_BUILD_DIR (default build), MEM_SECONDS (default 600), MEM_MAX_BYTES (default
# 8MiB), MEM_HZ (default 997), MEM_PORT (default 19761), MEM_FLAGS (more daemon flags, e.g.
# --unwind.table-memory=0 to leave the unwind tables out).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${ANORAK_BUILD_DIR:-build}
SECS=${MEM_SECONDS:-600}
MAX=${MEM_MAX_BYTES:-8MiB}
HZ=${MEM_HZ:-997}
PORT=${MEM_PORT:-19761}
read -r -a EXTRA <<<"${MEM_FLAGS:-}"
[ "$(id -u)" = 0 ] || { echo "history_memory: must run as root" >&2; exit 1; }

"$BUILD/anorak" --web.listen-address=127.0.0.1:$PORT --sampling.frequency=$HZ --storage.max-bytes=$MAX \
	--log.level=warn "${EXTRA[@]}" &
pid=$!
"$BUILD/tests/workload/weights" -t 2 -d "$SECS" >/dev/null &
wl=$!
trap 'kill $pid $wl 2>/dev/null || true' EXIT
sleep 2
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
peak=0 peak_rss=0 samples=0 first_rss=0 rss=0
end=$((SECONDS + SECS))
while [ $SECONDS -lt $end ]; do
	b=$(metric anorak_history_bytes); b=${b%.*}
	rss=$(awk '/VmRSS/ { print $2 * 1024 }' /proc/$pid/status)
	[ -n "$b" ] && [ "$b" -gt "$peak" ] && peak=$b
	[ "$rss" -gt "$peak_rss" ] && peak_rss=$rss
	[ "$first_rss" -gt 0 ] || first_rss=$rss
	samples=$((samples + 1))
	sleep 5
done
limit=$(metric anorak_history_max_bytes); limit=${limit%.*}
echo "history_memory seconds=$SECS hz=$HZ max_bytes=$limit peak_history_bytes=$peak" \
	"windows=$(metric anorak_history_windows) samples=$(metric anorak_history_samples)" \
	"evictions_size=$(metric 'anorak_history_evictions_total{reason="size"}')" \
	"first_rss_bytes=$first_rss last_rss_bytes=$rss peak_rss_bytes=$peak_rss readings=$samples"
[ "$peak" -le "$limit" ] || { echo "history_memory: the ring went over its bound" >&2; exit 1; }
