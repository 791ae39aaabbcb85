#!/usr/bin/env bash
# The daemon's own CPU (user space; BPF program time is not charged to it), not part of ctest.
# For each repetition and each load (idle; busy = `weights` on every CPU plus BENCH_SPAWN processes
# started per second), starts anorak at its defaults and reports utime+stime from /proc/PID/stat:
#   - CPU seconds at /-/ready and at ready + BENCH_SETTLE seconds (start-up: the first unwind tables
#     and process table are built for the processes running at start)
#   - the steady rate over the next BENCH_WINDOW seconds, in ms of CPU per second and % of one CPU
# then the median and the spread (min-max) of each over the repetitions, and the node's process creation
# rate over the window (from /proc/stat; other users of a shared machine count too).
#
#   bash tests/bench/daemon_cpu.sh                        # root, a built build/
#   BENCH_REPS=1 BENCH_WINDOW=20 bash tests/bench/daemon_cpu.sh       # quick
# Environment: ANORAK_BUILD_DIR (default build), BENCH_REPS (3), BENCH_WINDOW (60), BENCH_SETTLE (10),
# BENCH_LOADS ("idle busy"), BENCH_SPAWN (processes started per second when busy, 20),
# BENCH_ANORAK_FLAGS (extra daemon flags), BENCH_PORT (19761), BENCH_OUT (/var/tmp/anorak-bench).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${ANORAK_BUILD_DIR:-build}
case "$BUILD" in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
REPS=${BENCH_REPS:-3}
WINDOW=${BENCH_WINDOW:-60}
SETTLE=${BENCH_SETTLE:-10}
LOADS=${BENCH_LOADS:-idle busy}
SPAWN=${BENCH_SPAWN:-20}
PORT=${BENCH_PORT:-19761}
OUT=${BENCH_OUT:-/var/tmp/anorak-bench}
ANORAK=$BUILD/anorak
WEIGHTS=$BUILD/tests/workload/weights

[ "$(id -u)" = 0 ] || { echo "daemon_cpu: must run as root" >&2; exit 1; }
[ -x "$ANORAK" ] || { echo "daemon_cpu: $ANORAK not built" >&2; exit 1; }
[ -x "$WEIGHTS" ] || cmake --build "$BUILD" --target weights >/dev/null
command -v curl >/dev/null || { echo "daemon_cpu: curl missing" >&2; exit 1; }
mkdir -p "$OUT"

pids_to_kill=()
cleanup() { for p in "${pids_to_kill[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

TCK=$(getconf CLK_TCK)
# utime+stime of PID in clock ticks.
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
sec() { awk -v t="$1" -v k="$TCK" 'BEGIN { printf "%.2f", t / k }'; }
now() { date +%s.%N; }
# Processes created on the node since boot: the steady rate depends on how many are started (and sampled).
forks() { awk '/^processes /{ print $2 }' /proc/stat; }
sleep_until() { sleep "$(awk -v e="$1" -v n="$(now)" 'BEGIN { d = e - n; print (d > 0 ? d : 0) }')"; }

# Starts SPAWN short processes per second until killed (each a fork+exec the daemon sees start and end).
spawner() {
	local gap
	gap=$(awk -v s="$SPAWN" 'BEGIN { print 1 / s }')
	while :; do /bin/true; sleep "$gap"; done
}

results=$OUT/daemon_cpu.txt
: >"$results"
echo "daemon_cpu: $(nproc) CPUs, $REPS repetitions, loads: $LOADS, settle ${SETTLE}s, window ${WINDOW}s" >&2
for rep in $(seq "$REPS"); do
	for load in $LOADS; do
		load_pids=()
		if [ "$load" = busy ]; then
			"$WEIGHTS" -t "$(nproc)" -d $((SETTLE + WINDOW + 60)) >/dev/null &
			load_pids+=($!)
			spawner &
			load_pids+=($!)
			pids_to_kill+=("${load_pids[@]}")
			sleep 1
		fi
		# shellcheck disable=SC2086 # extra flags split on purpose
		"$ANORAK" --web.listen-address=127.0.0.1:$PORT --log.level=warn ${BENCH_ANORAK_FLAGS:-} \
			>"$OUT/daemon_cpu-$load-$rep.log" 2>&1 &
		apid=$!
		pids_to_kill+=("$apid")
		t_start=$(now)
		ready=""
		for _ in $(seq 1200); do
			curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/-/ready" && { ready=1; break; }
			kill -0 "$apid" 2>/dev/null || break
			sleep 0.05
		done
		[ -n "$ready" ] || { echo "daemon_cpu: anorak not ready (see $OUT/daemon_cpu-$load-$rep.log)" >&2; exit 1; }
		t_ready=$(now)
		c_ready=$(ticks "$apid")
		sleep_until "$(awk -v t="$t_ready" -v s="$SETTLE" 'BEGIN { printf "%.3f", t + s }')"
		c_settle=$(ticks "$apid")
		f0=$(forks)
		t0=$(now)
		sleep "$WINDOW"
		c1=$(ticks "$apid")
		f1=$(forks)
		t1=$(now)
		kill -TERM "$apid"
		wait "$apid" || echo "daemon_cpu: anorak exited $?" >&2
		for p in "${load_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
		line=$(awk -v l="$load" -v r="$rep" -v ts="$t_start" -v tr="$t_ready" -v cr="$c_ready" \
			-v cs="$c_settle" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v k="$TCK" -v f="$((f1 - f0))" 'BEGIN {
			rate = (c1 - cs) / k / (t1 - t0) * 1000
			printf "%s %d %.2f %.2f %.2f %.3f %.1f %.1f\n", l, r, tr - ts, cr / k, cs / k, rate, t1 - t0, f / (t1 - t0) }')
		echo "$line" >>"$results"
		echo "daemon_cpu: $line (load rep ready_s cpu_ready_s cpu_settle_s ms_per_s window_s forks_per_s)" >&2
	done
done

python3 - "$results" "$SETTLE" "$WINDOW" <<'EOF'
import statistics, sys
path, settle, window = sys.argv[1], sys.argv[2], sys.argv[3]
rows = {}
for line in open(path):
    load, _, ready, cr, cs, rate, _, fk = line.split()
    rows.setdefault(load, []).append((float(ready), float(cr), float(cs), float(rate), float(fk)))
def cell(vals, fmt):
    return (fmt + " (" + fmt + "-" + fmt + ")") % (statistics.median(vals), min(vals), max(vals))
print()
print("anorak's own CPU (utime+stime), median (min-max) over the repetitions; steady over %s s" % window)
hdr = "%-5s %4s  %-20s %-20s %-22s %-22s %-24s %-20s" % ("load", "reps", "wall to ready s", "CPU at ready s",
      "CPU at ready+%ss s" % settle, "steady ms CPU/s", "steady % of one CPU", "node forks/s")
print(hdr)
print("-" * len(hdr))
for load, r in rows.items():
    print("%-5s %4d  %-20s %-20s %-22s %-22s %-24s %-20s" % (load, len(r), cell([x[0] for x in r], "%.2f"),
          cell([x[1] for x in r], "%.2f"), cell([x[2] for x in r], "%.2f"), cell([x[3] for x in r], "%.3f"),
          cell([x[3] / 10 for x in r], "%.4f"), cell([x[4] for x in r], "%.0f")))
EOF
