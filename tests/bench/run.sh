#!/usr/bin/env bash
# Overhead benchmark (not part of ctest): anorak vs `perf record -a -g` vs BCC's profile, at 19, 99 and
# 997 Hz, each over one run of BENCH_SECONDS (default 30) with a workload busy on every CPU, for each
# workload of BENCH_WORKLOAD, BENCH_REPS times. Repetitions interleave: the first run of every
# (workload, Hz), then the second of every one, and so on, so drift on a shared host hits all alike.
# All three profilers run at the same time, over the same window; for each:
#   - BPF ns/sample: run_time_ns / run_cnt of its perf_event BPF programs (kernel.bpf_stats_enabled=1,
#     read with bpftool at the start and end of the window) - anorak and BCC only, perf has none
#   - samples: BPF run_cnt (anorak, BCC) or perf's own count
#   - CPU seconds of the profiler's processes over the window (utime+stime from /proc/PID/stat;
#     perf and BCC from /usr/bin/time -v over their whole run, start-up included) and peak RSS (VmHWM)
# plus the pprof encoding rate of exporter/encode/pprof.c (tests/bench/encode_bench.c) and the time anorak
# takes to answer ?seconds=N beyond N. The cost of a Go binary's unwind rows: tests/bench/unwind_go_bench.c.
# It prints every run, then per workload and Hz the median and the min-max over the repetitions, the
# anorak/BCC ratio of BPF ns/sample taken within each run (tests/bench/summary.py; rerun it on a kept
# results file: python3 tests/bench/summary.py /var/tmp/anorak-bench/results.txt).
#
#   bash tests/bench/run.sh                 # needs root, a built build/ (bash scripts/test.sh or run.sh)
#   BENCH_SECONDS=5 BENCH_REPS=1 BENCH_FREQS="99" BENCH_WORKLOAD=weights bash tests/bench/run.sh  # quick
# Environment: ANORAK_BUILD_DIR (default build), BENCH_SECONDS, BENCH_FREQS, BENCH_REPS (default 3),
# BENCH_TOOLS (default "anorak perf bcc"), BENCH_OUT (raw results directory, default
# /var/tmp/anorak-bench), BENCH_WORKLOAD (a list, default "weights weights_nofp": weights has frame
# pointers, weights_nofp none; gowork runs the Go workload's weights mode, two goroutines unwound from
# .gopclntab), BENCH_ANORAK_FLAGS (extra daemon flags, e.g. --unwind.table-memory=0 for frame
# pointers only).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${ANORAK_BUILD_DIR:-build}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SECS=${BENCH_SECONDS:-30}
FREQS=${BENCH_FREQS:-19 99 997}
TOOLS=${BENCH_TOOLS:-anorak perf bcc}
OUT=${BENCH_OUT:-/var/tmp/anorak-bench}
NCPU=$(nproc)
ANORAK=$BUILD/anorak
REPS=${BENCH_REPS:-3}
WORKLOADS=${BENCH_WORKLOAD:-weights weights_nofp}
PORT=${BENCH_PORT:-19760}

[ "$(id -u)" = 0 ] || { echo "bench: must run as root" >&2; exit 1; }
bash scripts/install-deps.sh --bench >/dev/null
for t in bpftool /usr/bin/time python3; do
	command -v "$t" >/dev/null || { echo "bench: $t missing" >&2; exit 1; }
done
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_REPS must be a positive count, not '$REPS'" >&2; exit 1; }
for wl in $WORKLOADS; do
	[ -x "$BUILD/tests/workload/$wl" ] || cmake --build "$BUILD" --target "$wl" >/dev/null ||
		{ echo "bench: workload $wl could not be built" >&2; exit 1; }
done
has() { case " $TOOLS " in *" $1 "*) return 0 ;; esac; return 1; }
if has anorak && [ ! -x "$ANORAK" ]; then
	echo "bench: $ANORAK not built; running without it" >&2
	TOOLS=${TOOLS//anorak/}
fi
if has bcc; then
	export BCC_KERNEL_SOURCE=${BCC_KERNEL_SOURCE:-$(bash tests/bench/bcc-headers.sh)}
fi
mkdir -p "$OUT"

pids_to_kill=()
old_stats=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
	for p in "${pids_to_kill[@]}"; do kill "$p" 2>/dev/null || true; done
	sysctl -q -w kernel.bpf_stats_enabled="$old_stats" || true
}
trap cleanup EXIT
sysctl -q -w kernel.bpf_stats_enabled=1

# Sum of run_time_ns and run_cnt of the perf_event BPF programs process PID holds (found through the
# prog_id: lines of its fds' fdinfo, so it works without bpftool's pid iterator).
bpf_stats() {
	bpftool prog show --json 2>/dev/null | python3 -c '
import json, os, sys
pid = sys.argv[1]; ids = set()
try:
    for fd in os.listdir("/proc/%s/fdinfo" % pid):
        try:
            for line in open("/proc/%s/fdinfo/%s" % (pid, fd)):
                if line.startswith("prog_id:"):
                    ids.add(int(line.split()[1]))
        except OSError:
            pass
except OSError:
    pass
ns = cnt = 0
for p in json.load(sys.stdin):
    if p.get("type") == "perf_event" and p.get("id") in ids:
        ns += p.get("run_time_ns", 0); cnt += p.get("run_cnt", 0)
print(ns, cnt)' "$1"
}
# utime+stime (seconds) and VmHWM (KiB) of PID.
# Both print 0 for a process that is gone.
cpu_s() {
	python3 -c '
import os, sys
try:
    f = open("/proc/%s/stat" % sys.argv[1]).read().rsplit(")", 1)[1].split()
    print((int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK"))
except (OSError, IndexError, ValueError):
    print(0)' "$1"
}
hwm_kb() { awk '/^VmHWM:/{h=$2} END{print h+0}' "/proc/$1/status" 2>/dev/null || echo 0; }
# Waits until process PID holds a BPF program (BCC compiles first: up to 90 s).
wait_bpf() {
	local end=$((SECONDS + 90))
	while [ $SECONDS -lt $end ]; do
		[ -d "/proc/$1" ] || return 1
		grep -qs '^prog_id:' /proc/"$1"/fdinfo/* && { sleep 0.5; return 0; }
		sleep 0.2
	done
	return 1
}
# From /usr/bin/time -v output: "CPU_SECONDS RSS_KB".
time_v() { awk -F': ' '/User time/{u=$2} /System time/{s=$2} /Maximum resident/{r=$2} END{printf "%.2f %d\n", u+s, r}' "$1"; }

# --- encoding rate ------------------------------------------------------------------------------
enc_line="n/a"
EB=$BUILD/tests/encode_bench
if [ -x "$EB" ] || cmake --build "$BUILD" --target encode_bench >"$OUT/encode_bench.log" 2>&1; then
	enc_line=$("$EB" -r 3 2>&1 || echo "failed")
else
	enc_line="build failed (see $OUT/encode_bench.log)"
fi

# --- profiler runs --------------------------------------------------------------------------------
# One run: workload WL busy on every CPU, the profilers started at HZ, their counters read over the
# window, one line per tool appended to $results: tool workload hz rep window samples bpf_ns cpu_s rss_kb
# extra. Raw files are named after TAG (workload-hz-rrep).
start_workload() {
	local bin=$BUILD/tests/workload/$1
	case "$1" in
	gowork*) "$bin" $((SECS + 40)) weights >/dev/null & ;;
	*) "$bin" -t "$NCPU" -d $((SECS + 40)) >/dev/null & ;;
	esac
	wpid=$!
	pids_to_kill+=("$wpid")
}

start_anorak() {
	# shellcheck disable=SC2086 # extra flags split on purpose
	"$ANORAK" --sampling.frequency="$hz" --web.listen-address=127.0.0.1:$PORT --log.level=warn ${BENCH_ANORAK_FLAGS:-} \
		>"$OUT/anorak-$tag.log" 2>&1 &
	apid=$!
	pids_to_kill+=("$apid")
	for _ in $(seq 300); do
		curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/-/ready" && break
		sleep 0.1
	done
}

start_bcc() {
	# Ended by the SIGINT sent after the window (a background job starts with SIGINT ignored: env
	# restores it); the duration only has to outlast the window and the reads after it, which take
	# seconds on a busy host.
	/usr/bin/time -v -o "$OUT/bcc-$tag.time" env --default-signal=INT /usr/sbin/profile-bpfcc -F "$hz" \
		-af $((SECS + 30)) \
		>"$OUT/bcc-$tag.out" 2>"$OUT/bcc-$tag.err" &
	btpid=$!
	pids_to_kill+=("$btpid")
	for _ in $(seq 300); do bpid=$(pgrep -P "$btpid" | head -n1 || true); [ -n "$bpid" ] && break; sleep 0.1; done
	wait_bpf "$bpid" || echo "bench: BCC profile did not attach (see $OUT/bcc-$tag.err)" >&2
}

start_perf() {
	/usr/bin/time -v -o "$OUT/perf-$tag.time" perf record -a -g -F "$hz" -o "$OUT/perf-$tag.data" \
		-- sleep "$((SECS + 1))" >"$OUT/perf-$tag.out" 2>&1 &
	ptpid=$!
	pids_to_kill+=("$ptpid")
	for _ in $(seq 100); do ppid_=$(pgrep -P "$ptpid" | head -n1 || true); [ -n "$ppid_" ] && break; sleep 0.05; done
}

# The window: each tool's counters are read with a timestamp right before, so its rate has its own
# window; anorak is scraped over the whole window meanwhile.
measure_window() {
	local t0 now left
	a0=(0 0); b0=(0 0); ac0=0; bc0=0; pc0=0; at0=0; bt0=0
	[ -n "$apid" ] && { at0=$(date +%s.%N); read -ra a0 < <(bpf_stats "$apid"); ac0=$(cpu_s "$apid"); }
	[ -n "$bpid" ] && { bt0=$(date +%s.%N); read -ra b0 < <(bpf_stats "$bpid"); bc0=$(cpu_s "$bpid"); }
	[ -n "$ppid_" ] && pc0=$(cpu_s "$ppid_")
	t0=$(date +%s.%N)
	enc="n/a"
	if [ -n "$apid" ]; then
		# How long beyond SECS the answer takes (drain + symbolize + encode).
		curl -fs --max-time $((SECS + 60)) -o "$OUT/anorak-$tag.pb.gz" \
			-w '%{time_total} %{size_download}\n' "http://127.0.0.1:$PORT/debug/pprof/profile?seconds=$SECS" \
			>"$OUT/anorak-$tag.curl" || echo "failed" >"$OUT/anorak-$tag.curl"
		enc=$(awk -v s="$SECS" '{ if ($1 == "failed") print "failed"; else printf "%.3fs/%dKB", $1 - s, $2 / 1024 }' "$OUT/anorak-$tag.curl")
	fi
	now=$(date +%s.%N)
	left=$(python3 -c "print(max(0.0, $SECS - ($now - $t0)))")
	sleep "$left"
	a1=(0 0); b1=(0 0); ac1=0; ahwm=0; bt1=0; at1=0
	[ -n "$apid" ] && { at1=$(date +%s.%N); read -ra a1 < <(bpf_stats "$apid"); ac1=$(cpu_s "$apid"); ahwm=$(hwm_kb "$apid"); }
	[ -n "$bpid" ] && { bt1=$(date +%s.%N); read -ra b1 < <(bpf_stats "$bpid"); }
	return 0
}

# Stops the profilers and appends their lines to $results.
record() {
	local row="$wl $hz $rep" pn pc pr bc br
	if [ -n "$apid" ]; then
		# A daemon that died in the window read as zeros: its run is left out, the others go on.
		kill -TERM "$apid" 2>/dev/null || true
		if wait "$apid"; then
			echo "anorak $row $(python3 -c "print($at1 - $at0)") $((a1[1] - a0[1])) $((a1[0] - a0[0])) $(python3 -c "print($ac1 - $ac0)") $ahwm $enc" >>"$results"
		else
			failed+=("anorak exited $? in run $tag (see $OUT/anorak-$tag.log)")
			echo "bench: ${failed[-1]}; its figures are left out" >&2
		fi
	fi
	if [ -n "$ptpid" ]; then
		wait "$ptpid" || true
		pn=$(sed -n 's/.*(\([0-9]*\) samples).*/\1/p' "$OUT/perf-$tag.out" | tail -n1)
		# CPU from the window start to its exit (writing perf.data included), start-up excluded.
		read -r pc pr < <(time_v "$OUT/perf-$tag.time")
		pc=$(python3 -c "print(max(0.0, $pc - $pc0))")
		echo "perf $row $((SECS + 1)) ${pn:-0} 0 $pc $pr n/a" >>"$results"
		rm -f "$OUT/perf-$tag.data"
	fi
	if [ -n "$bpid" ]; then
		kill -INT "$bpid" 2>/dev/null || true
		wait "$btpid" || true
		# BCC aggregates and prints at exit: CPU from the window start to its exit, compile excluded.
		read -r bc br < <(time_v "$OUT/bcc-$tag.time")
		bc=$(python3 -c "print(max(0.0, $bc - $bc0))")
		echo "bcc $row $(python3 -c "print($bt1 - $bt0)") $((b1[1] - b0[1])) $((b1[0] - b0[0])) $bc $br n/a" >>"$results"
	fi
}

run_one() {
	wl=$1 hz=$2 rep=$3 tag=$1-$2-r$3
	apid="" bpid="" btpid="" ptpid="" ppid_=""
	echo "bench: run $rep/$REPS, $wl at $hz Hz ..." >&2
	start_workload "$wl"
	has anorak && start_anorak
	has bcc && start_bcc
	has perf && start_perf
	measure_window
	record
	kill "$wpid" 2>/dev/null || true
	wait "$wpid" 2>/dev/null || true
}

failed=()
results=$OUT/results.txt
: > "$results"
echo "bench: $NCPU CPUs, ${SECS}s per run, $REPS repetitions of each workload ($WORKLOADS) at each of" \
	"$FREQS Hz, interleaved; tools: $TOOLS; raw output in $OUT" >&2
for rep in $(seq "$REPS"); do
	for wl in $WORKLOADS; do
		for hz in $FREQS; do
			run_one "$wl" "$hz" "$rep"
		done
	done
done

# --- tables ----------------------------------------------------------------------------------------
python3 tests/bench/summary.py --cpus "$NCPU" --seconds "$SECS" --encode "$enc_line" "$results"
if [ ${#failed[@]} -gt 0 ]; then
	printf 'bench: FAILED: %s\n' "${failed[@]}" >&2
	exit 1
fi
