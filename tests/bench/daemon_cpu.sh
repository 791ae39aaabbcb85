#!/usr/bin/env bash
# The daemon's own CPU (user space; BPF program time is not charged to it), not part of ctest.
# For each repetition and each load (idle; busy = `weights` on every CPU plus BENCH_SPAWN processes
# started per second), starts anorak at its defaults and reports its CPU time:
#   - CPU seconds at /-/ready and at ready + BENCH_SETTLE seconds (start-up: the first unwind tables
#     and process table are built for the processes running at start)
#   - the steady rate over the next BENCH_WINDOW seconds, in ms of CPU per second and % of one CPU
# then the median and the spread (min-max) of each over the repetitions, and the node's process creation
# rate over the window (from /proc/stat; other users of a shared machine count too).
# With BENCH_BASELINE (another anorak binary, e.g. main's build), that one runs at the same time on
# BENCH_PORT+1 and is reported as load "<load>-base": both profile the whole node, so on a shared,
# loaded machine they see the same load, and their difference is the change's.
#
# CPU time is the process's CPU clock (clock_gettime of clock_getcpuclockid(PID)): the scheduler's
# nanoseconds on CPU summed over all its threads, those that exited included. utime+stime of
# /proc/PID/stat counts the same in 10 ms ticks (0.33 ms/s over 30 s, as much as the whole idle rate);
# the first field of /proc/PID/schedstat is in ns but is the main thread's alone, and a sum over
# /proc/PID/task/*/schedstat loses the threads that exited in the window.
#
#   bash tests/bench/daemon_cpu.sh                        # root, a built build/
#   BENCH_REPS=1 BENCH_WINDOW=20 bash tests/bench/daemon_cpu.sh       # quick
#   BENCH_BASELINE=/path/to/main/build/anorak bash tests/bench/daemon_cpu.sh   # old and new at once
# Environment: ANORAK_BUILD_DIR (default build), BENCH_REPS (3), BENCH_WINDOW (60), BENCH_SETTLE (10),
# BENCH_LOADS ("idle busy"), BENCH_SPAWN (processes started per second when busy, 20),
# BENCH_ANORAK_FLAGS (extra daemon flags), BENCH_PORT (19761), BENCH_BASELINE (none),
# BENCH_OUT (/var/tmp/anorak-bench).
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
BASELINE=${BENCH_BASELINE:-}
OUT=${BENCH_OUT:-/var/tmp/anorak-bench}
ANORAK=$BUILD/anorak
WEIGHTS=$BUILD/tests/workload/weights

[ "$(id -u)" = 0 ] || { echo "daemon_cpu: must run as root" >&2; exit 1; }
[ -x "$ANORAK" ] || { echo "daemon_cpu: $ANORAK not built" >&2; exit 1; }
[ -z "$BASELINE" ] || [ -x "$BASELINE" ] || { echo "daemon_cpu: baseline $BASELINE not executable" >&2; exit 1; }
[ -x "$WEIGHTS" ] || cmake --build "$BUILD" --target weights >/dev/null
command -v curl >/dev/null || { echo "daemon_cpu: curl missing" >&2; exit 1; }
mkdir -p "$OUT"

pids_to_kill=()
cleanup() { for p in "${pids_to_kill[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# CPU nanoseconds of PID, all threads (the process CPU clock's id is ~pid << 3 | CPUCLOCK_SCHED).
cpu_ns() { python3 -c 'import sys, time; p = int(sys.argv[1]); print(time.clock_gettime_ns((~p << 3) | 2))' "$1"; }
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

# Starts anorak binary $1 on port $2 (log $3) and waits for /-/ready; sets apid, t_start, t_ready.
start_daemon() {
	# shellcheck disable=SC2086 # extra flags split on purpose
	"$1" --web.listen-address=127.0.0.1:$2 --log.level=warn ${BENCH_ANORAK_FLAGS:-} >"$3" 2>&1 &
	apid=$!
	pids_to_kill+=("$apid")
	t_start=$(now)
	for _ in $(seq 1200); do
		curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$2/-/ready" && { t_ready=$(now); return; }
		kill -0 "$apid" 2>/dev/null || break
		sleep 0.05
	done
	echo "daemon_cpu: $1 not ready (see $3)" >&2
	exit 1
}

results=$OUT/daemon_cpu.txt
: >"$results"
echo "daemon_cpu: $(nproc) CPUs, $REPS repetitions, loads: $LOADS, settle ${SETTLE}s, window ${WINDOW}s" \
	"${BASELINE:+, baseline $BASELINE at the same time}" >&2
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
		# name, pid, start and ready time of each daemon measured in this window
		names=("$load") bins=("$ANORAK") ports=("$PORT")
		# The first started runs through the second's start-up: the order alternates between repetitions.
		if [ -n "$BASELINE" ] && [ $((rep % 2)) = 0 ]; then
			names=("$load-base" "$load") bins=("$BASELINE" "$ANORAK") ports=($((PORT + 1)) "$PORT")
		elif [ -n "$BASELINE" ]; then
			names+=("$load-base") bins+=("$BASELINE") ports+=($((PORT + 1)))
		fi
		apids=() starts=() readys=() c_ready=() c_settle=() c1=()
		for i in "${!names[@]}"; do
			start_daemon "${bins[$i]}" "${ports[$i]}" "$OUT/daemon_cpu-${names[$i]}-$rep.log"
			apids+=("$apid") starts+=("$t_start") readys+=("$t_ready")
			c_ready+=("$(cpu_ns "$apid")")
		done
		sleep_until "$(awk -v t="$t_ready" -v s="$SETTLE" 'BEGIN { printf "%.3f", t + s }')"
		for i in "${!names[@]}"; do c_settle+=("$(cpu_ns "${apids[$i]}")"); done
		f0=$(forks)
		t0=$(now)
		sleep "$WINDOW"
		for i in "${!names[@]}"; do c1+=("$(cpu_ns "${apids[$i]}")"); done
		f1=$(forks)
		t1=$(now)
		for i in "${!names[@]}"; do
			kill -TERM "${apids[$i]}"
			wait "${apids[$i]}" || echo "daemon_cpu: ${bins[$i]} exited $?" >&2
		done
		for p in "${load_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
		for i in "${!names[@]}"; do
			line=$(awk -v l="${names[$i]}" -v r="$rep" -v ts="${starts[$i]}" -v tr="${readys[$i]}" \
				-v cr="${c_ready[$i]}" -v cs="${c_settle[$i]}" -v c1="${c1[$i]}" -v t0="$t0" -v t1="$t1" \
				-v f="$((f1 - f0))" 'BEGIN {
				rate = (c1 - cs) / 1e6 / (t1 - t0)
				printf "%s %d %.2f %.3f %.3f %.4f %.1f %.1f\n", l, r, tr - ts, cr / 1e9, cs / 1e9, rate, t1 - t0, f / (t1 - t0) }')
			echo "$line" >>"$results"
			echo "daemon_cpu: $line (load rep ready_s cpu_ready_s cpu_settle_s ms_per_s window_s forks_per_s)" >&2
		done
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
print("anorak's own CPU (CPU clock, all threads), median (min-max) over the repetitions; steady over %s s" % window)
hdr = "%-9s %4s  %-20s %-20s %-22s %-22s %-24s %-20s" % ("load", "reps", "wall to ready s", "CPU at ready s",
      "CPU at ready+%ss s" % settle, "steady ms CPU/s", "steady % of one CPU", "node forks/s")
print(hdr)
print("-" * len(hdr))
for load, r in rows.items():
    print("%-9s %4d  %-20s %-20s %-22s %-22s %-24s %-20s" % (load, len(r), cell([x[0] for x in r], "%.2f"),
          cell([x[1] for x in r], "%.3f"), cell([x[2] for x in r], "%.3f"), cell([x[3] for x in r], "%.3f"),
          cell([x[3] / 10 for x in r], "%.4f"), cell([x[4] for x in r], "%.0f")))
EOF
