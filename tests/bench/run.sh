#!/usr/bin/env bash
# Overhead benchmark (not part of ctest): anorak vs `perf record -a -g` vs BCC's profile, at 19, 99 and
# 997 Hz, each over one run of BENCH_SECONDS (default 30) with the `weights` workload busy on every CPU.
# All three profilers run at the same time, over the same window; for each:
#   - BPF ns/sample: run_time_ns / run_cnt of its perf_event BPF programs (kernel.bpf_stats_enabled=1,
#     read with bpftool at the start and end of the window) - anorak and BCC only, perf has none
#   - samples: BPF run_cnt (anorak, BCC) or perf's own count
#   - CPU seconds of the profiler's processes over the window (utime+stime from /proc/PID/stat;
#     perf and BCC from /usr/bin/time -v over their whole run, start-up included) and peak RSS (VmHWM)
# plus the pprof encoding rate of exporter/encode/pprof.c (tests/bench/encode_bench.c) and the time anorak
# takes to answer ?seconds=N beyond N. The cost of a Go binary's unwind rows: tests/bench/unwind_go_bench.c.
#
#   bash tests/bench/run.sh                 # needs root, a built build/ (bash scripts/test.sh or run.sh)
#   BENCH_SECONDS=5 BENCH_FREQS="99" bash tests/bench/run.sh     # quick
# Environment: ANORAK_BUILD_DIR (default build), BENCH_SECONDS, BENCH_FREQS, BENCH_TOOLS (default
# "anorak perf bcc"), BENCH_OUT (raw results directory, default /var/tmp/anorak-bench),
# BENCH_WORKLOAD (default weights; weights_nofp has no frame pointers; gowork runs the Go workload's
# weights mode, two goroutines unwound from .gopclntab), BENCH_ANORAK_FLAGS (extra daemon flags, e.g.
# --unwind.table-memory=0 for frame pointers only).
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
WEIGHTS=$BUILD/tests/workload/${BENCH_WORKLOAD:-weights}
PORT=${BENCH_PORT:-19760}

[ "$(id -u)" = 0 ] || { echo "bench: must run as root" >&2; exit 1; }
bash scripts/install-deps.sh --bench >/dev/null
for t in bpftool /usr/bin/time python3; do
	command -v "$t" >/dev/null || { echo "bench: $t missing" >&2; exit 1; }
done
[ -x "$WEIGHTS" ] || cmake --build "$BUILD" --target "${BENCH_WORKLOAD:-weights}" >/dev/null
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
results=$OUT/results.txt
: > "$results"
echo "bench: $NCPU CPUs, ${SECS}s per frequency, tools: $TOOLS, raw output in $OUT" >&2
for hz in $FREQS; do
	echo "bench: $hz Hz ..." >&2
	case "$WEIGHTS" in
	*/gowork*) "$WEIGHTS" $((SECS + 40)) weights >/dev/null & ;;
	*) "$WEIGHTS" -t "$NCPU" -d $((SECS + 40)) >/dev/null & ;;
	esac
	wpid=$!
	pids_to_kill+=("$wpid")

	apid=""
	if has anorak; then
		# shellcheck disable=SC2086 # extra flags split on purpose
		"$ANORAK" --sampling.frequency="$hz" --web.listen-address=127.0.0.1:$PORT --log.level=warn ${BENCH_ANORAK_FLAGS:-} \
			>"$OUT/anorak-$hz.log" 2>&1 &
		apid=$!
		pids_to_kill+=("$apid")
		for _ in $(seq 300); do
			curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/-/ready" && break
			sleep 0.1
		done
	fi
	bpid=""
	if has bcc; then
		# Ended by the SIGINT sent after the window (a background job starts with SIGINT ignored: env
		# restores it); the duration only has to outlast the window and the reads after it, which take
		# seconds on a busy host.
		/usr/bin/time -v -o "$OUT/bcc-$hz.time" env --default-signal=INT /usr/sbin/profile-bpfcc -F "$hz" \
			-af $((SECS + 30)) \
			>"$OUT/bcc-$hz.out" 2>"$OUT/bcc-$hz.err" &
		btpid=$!
		pids_to_kill+=("$btpid")
		for _ in $(seq 300); do bpid=$(pgrep -P "$btpid" | head -n1 || true); [ -n "$bpid" ] && break; sleep 0.1; done
		wait_bpf "$bpid" || echo "bench: BCC profile did not attach (see $OUT/bcc-$hz.err)" >&2
	fi
	ptpid=""; ppid_=""
	if has perf; then
		/usr/bin/time -v -o "$OUT/perf-$hz.time" perf record -a -g -F "$hz" -o "$OUT/perf-$hz.data" \
			-- sleep "$((SECS + 1))" >"$OUT/perf-$hz.out" 2>&1 &
		ptpid=$!
		pids_to_kill+=("$ptpid")
		for _ in $(seq 100); do ppid_=$(pgrep -P "$ptpid" | head -n1 || true); [ -n "$ppid_" ] && break; sleep 0.05; done
	fi

	# The window.
	a0=(0 0); b0=(0 0); ac0=0; bc0=0; pc0=0
	# Each tool's counters are read with a timestamp right before, so its rate has its own window.
	at0=0; bt0=0; at1=0; bt1=0
	[ -n "$apid" ] && { at0=$(date +%s.%N); a0=($(bpf_stats "$apid")); ac0=$(cpu_s "$apid"); }
	[ -n "$bpid" ] && { bt0=$(date +%s.%N); b0=($(bpf_stats "$bpid")); bc0=$(cpu_s "$bpid"); }
	[ -n "${ppid_:-}" ] && pc0=$(cpu_s "$ppid_")
	t0=$(date +%s.%N)
	enc="n/a"
	if [ -n "$apid" ]; then
		# A scrape over the whole window: how long beyond SECS the answer takes (drain + symbolize + encode).
		curl -fs --max-time $((SECS + 60)) -o "$OUT/anorak-$hz.pb.gz" \
			-w '%{time_total} %{size_download}\n' "http://127.0.0.1:$PORT/debug/pprof/profile?seconds=$SECS" \
			>"$OUT/anorak-$hz.curl" || echo "failed" >"$OUT/anorak-$hz.curl"
		enc=$(awk -v s="$SECS" '{ if ($1 == "failed") print "failed"; else printf "%.3fs/%dKB", $1 - s, $2 / 1024 }' "$OUT/anorak-$hz.curl")
	fi
	now=$(date +%s.%N)
	left=$(python3 -c "print(max(0.0, $SECS - ($now - $t0)))")
	sleep "$left"
	t1=$(date +%s.%N)
	a1=(0 0); b1=(0 0); ac1=0; ahwm=0
	[ -n "$apid" ] && { at1=$(date +%s.%N); a1=($(bpf_stats "$apid")); ac1=$(cpu_s "$apid"); ahwm=$(hwm_kb "$apid"); }
	bc1=0; bhwm=0; pc1=0; phwm=0
	[ -n "$bpid" ] && { bt1=$(date +%s.%N); b1=($(bpf_stats "$bpid")); bc1=$(cpu_s "$bpid"); bhwm=$(hwm_kb "$bpid"); }
	# perf may have just finished its `sleep`: then its totals come from /usr/bin/time.
	[ -n "${ppid_:-}" ] && { pc1=$(cpu_s "$ppid_" 2>/dev/null || echo 0); phwm=$(hwm_kb "$ppid_" 2>/dev/null || echo 0); }
	win=$(python3 -c "print($t1 - $t0)")

	if [ -n "$apid" ]; then
		kill -TERM "$apid"; wait "$apid" || echo "bench: anorak exited $?" >&2
		echo "anorak $hz $(python3 -c "print($at1 - $at0)") $((a1[1] - a0[1])) $((a1[0] - a0[0])) $(python3 -c "print($ac1 - $ac0)") $ahwm $enc" >>"$results"
	fi
	if [ -n "$ptpid" ]; then
		wait "$ptpid" || true
		pn=$(sed -n 's/.*(\([0-9]*\) samples).*/\1/p' "$OUT/perf-$hz.out" | tail -n1)
		# CPU from the window start to its exit (writing perf.data included), start-up excluded.
		read -r pc pr < <(time_v "$OUT/perf-$hz.time")
		pc=$(python3 -c "print(max(0.0, $pc - $pc0))")
		echo "perf $hz $((SECS + 1)) ${pn:-0} 0 $pc $pr n/a" >>"$results"
		rm -f "$OUT/perf-$hz.data"
	fi
	if [ -n "$bpid" ]; then
		kill -INT "$bpid" 2>/dev/null || true
		wait "$btpid" || true
		# BCC aggregates and prints at exit: CPU from the window start to its exit, compile excluded.
		read -r bc br < <(time_v "$OUT/bcc-$hz.time")
		bc=$(python3 -c "print(max(0.0, $bc - $bc0))")
		echo "bcc $hz $(python3 -c "print($bt1 - $bt0)") $((b1[1] - b0[1])) $((b1[0] - b0[0])) $bc $br n/a" >>"$results"
	fi
	kill "$wpid" 2>/dev/null || true
	wait "$wpid" 2>/dev/null || true
done

# --- table -----------------------------------------------------------------------------------------
python3 - "$results" "$NCPU" "$SECS" "$enc_line" <<'EOF'
import sys
path, ncpu, secs, enc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows = {}
for line in open(path):
    tool, hz, win, n, ns, cpu, rss, extra = line.split()
    rows[(int(hz), tool)] = dict(win=float(win), n=int(n), ns=int(ns), cpu=float(cpu), rss=int(rss), extra=extra)
print()
print("Profiler overhead, %d CPUs busy with `weights`, %d s window per frequency" % (ncpu, secs))
print("(CPU: utime+stime of each profiler's process from the window start until it answered/exited,")
print(" start-up and BCC's compile excluded; RSS: peak, VmHWM or /usr/bin/time -v)")
hdr = "%5s  %-7s %9s %10s %11s %8s %8s %9s %9s %9s  %s" % (
    "Hz", "tool", "samples", "samples/s", "BPF ns/smp", "CPU s", "CPU %", "RSS MiB", "CPU/ano", "RSS/ano", "scrape extra/size")
print(hdr)
print("-" * len(hdr))
for hz in sorted({k[0] for k in rows}):
    base = rows.get((hz, "anorak"))
    for tool in ("anorak", "perf", "bcc"):
        r = rows.get((hz, tool))
        if not r:
            continue
        rate = r["n"] / r["win"] if r["win"] else 0
        nsps = "%.0f" % (r["ns"] / r["n"]) if r["ns"] and r["n"] else "n/a"
        cpu_pct = 100.0 * r["cpu"] / r["win"] if r["win"] else 0
        rc = "%.2fx" % (r["cpu"] / base["cpu"]) if base and base["cpu"] > 0 else "-"
        rr = "%.2fx" % (r["rss"] / base["rss"]) if base and base["rss"] > 0 else "-"
        print("%5d  %-7s %9d %10.0f %11s %8.2f %7.2f%% %9.1f %9s %9s  %s" % (
            hz, tool, r["n"], rate, nsps, r["cpu"], cpu_pct, r["rss"] / 1024.0, rc, rr, r["extra"]))
    a, b = rows.get((hz, "anorak")), rows.get((hz, "bcc"))
    if a and b and a["n"] and b["n"] and a["ns"] and b["ns"]:
        print("%5s  BPF ns/sample anorak/BCC = %.2f" % ("", (a["ns"] / a["n"]) / (b["ns"] / b["n"])))
print()
print("expected samples/s at each Hz: Hz x %d CPUs (perf counts every CPU, idle included)" % ncpu)
print("pprof encoding (encode_bench, best of 3): " + enc)
EOF
