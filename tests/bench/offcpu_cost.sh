#!/bin/sh
# Cost per context switch of the off-CPU profile: `perf bench sched pipe` (two tasks pinned to one CPU
# pass a token through pipes, two context switches per op) with no profiler, with anorak at
# --offcpu.probability=0 (the default: only the CPU sampler), at 0.01 and at 1; the runs alternate,
# ROUNDS times, and the median of each is printed with anorak's own CPU time during its runs and the
# mean run time of the sched_switch program per call (kernel.bpf_stats_enabled is turned on for the
# benchmark and restored after).
#
#   tests/bench/offcpu_cost.sh [BUILD_DIR] [ROUNDS] [LOOPS]
set -eu
BUILD=${1:-build}
ROUNDS=${2:-5}
LOOPS=${3:-200000}
ANORAK=$BUILD/anorak
CPU=${BENCH_CPU:-1}
PORT=19777
command -v perf >/dev/null || { echo "offcpu_cost: perf is not installed" >&2; exit 1; }
[ -x "$ANORAK" ] || { echo "offcpu_cost: $ANORAK is not built" >&2; exit 1; }
OUT=$(mktemp -d)
STATS=$(cat /proc/sys/kernel/bpf_stats_enabled)
trap 'echo "$STATS" >/proc/sys/kernel/bpf_stats_enabled; rm -rf "$OUT"' EXIT
echo 1 >/proc/sys/kernel/bpf_stats_enabled

usecs_per_op() {
	taskset -c "$CPU" perf bench sched pipe -l "$LOOPS" | awk '/usecs\/op/ { print $1 }'
}

cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# Mean ns per call of the sched_switch program (0 when it is not loaded).
switch_prog_ns() {
	bpftool prog show name offcpu_switch 2>/dev/null |
		awk '{ for (i = 1; i < NF; i++) { if ($i == "run_time_ns") t = $(i + 1); if ($i == "run_cnt") n = $(i + 1) } }
		     END { print n ? t / n : 0 }'
}

run_with() { # probability|none -> "usecs_per_op daemon_cpu_seconds prog_ns_per_call"
	if [ "$1" = none ]; then
		echo "$(usecs_per_op) 0 0"
		return
	fi
	"$ANORAK" --web.listen-address=127.0.0.1:$PORT --offcpu.probability="$1" >"$OUT/log" 2>&1 &
	pid=$!
	until curl -sf "http://127.0.0.1:$PORT/-/ready" >/dev/null 2>&1; do sleep 0.2; done
	t0=$(cpu_ticks $pid)
	u=$(usecs_per_op)
	t1=$(cpu_ticks $pid)
	ns=$(switch_prog_ns)
	kill $pid
	wait $pid || true
	echo "$u $(echo "$t0 $t1" | awk -v hz="$(getconf CLK_TCK)" '{ print ($2 - $1) / hz }') $ns"
}

for r in $(seq "$ROUNDS"); do
	for p in none 0 0.01 1; do
		echo "$p $(run_with $p)" >>"$OUT/runs"
	done
done

printf "%-12s %14s %20s %18s %16s\n" probability "usecs/switch" "overhead ns/switch" "anorak cpu s/run" \
	"prog ns/call"
base=$(awk '$1 == "none" { print $2 }' "$OUT/runs" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
for p in none 0 0.01 1; do
	awk -v p="$p" '$1 == p { print $2, $3, $4 }' "$OUT/runs" | sort -n |
		awk -v p="$p" -v base="$base" '{ u[NR] = $1; c[NR] = $2; b[NR] = $3 } END {
			m = int((NR + 1) / 2)
			printf "%-12s %14.3f %20.0f %18.2f %16.0f\n", p, u[m] / 2, (u[m] - base) * 1000 / 2, c[m], b[m] }'
done
