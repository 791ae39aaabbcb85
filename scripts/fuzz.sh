#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c, clang with ASan + UBSan) in build-fuzz/, replays
# every committed input of each target once, then fuzzes each for FUZZ_SECONDS on top of them. Exits
# non-zero when a target crashes, leaks, times out or breaks one of its checks; the input that did it is
# kept in build-fuzz/fuzz-artifacts/ and replayed with the full report.
#
#   scripts/fuzz.sh [target...]        e.g. scripts/fuzz.sh fuzz_elf fuzz_pprof
#
# Committed inputs: tests/fuzz/corpus/<name>/ holds hand-made seeds and regressions (never rewritten);
# tests/fuzz/grown/<name>/ holds what long local runs grew, minimized. New inputs of a run collect in
# build-fuzz/fuzz-corpus/<name>/, so later runs start where the last one stopped.
#
# Environment: FUZZ_SECONDS (default 10, per target), FUZZ_BUILD_DIR (default build-fuzz), JOBS
# (default 2, for the build), FUZZ_BUILD=0 to use an existing build, FUZZ_MERGE=1 to fold the run's
# inputs into tests/fuzz/grown/<name>/ afterwards (libFuzzer's -merge=1 keeps only inputs that add
# coverage; at most FUZZ_GROWN_MAX_KB, default 4096, per target). A campaign after a parser changed:
#   FUZZ_SECONDS=600 FUZZ_MERGE=1 scripts/fuzz.sh fuzz_elf
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECONDS_PER_TARGET=${FUZZ_SECONDS:-10}
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
JOBS=${JOBS:-2}
GROWN_MAX_KB=${FUZZ_GROWN_MAX_KB:-4096}
MAX_LEN=65536

if [ "${FUZZ_BUILD:-1}" != 0 ]; then
	cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DANORAK_TESTS=OFF -DANORAK_FUZZ=ON >/dev/null
	cmake --build "$BUILD" -j "$JOBS"
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for src in tests/fuzz/fuzz_*.c; do
		targets+=("$(basename "$src" .c)")
	done
fi

# The committed inputs of a target, and files built or kept elsewhere in the tree.
committed_inputs() {
	local name=$1
	echo "$ROOT/tests/fuzz/corpus/$name"
	[ -d "$ROOT/tests/fuzz/grown/$name" ] && echo "$ROOT/tests/fuzz/grown/$name"
	case "$name" in
	elf | ehframe_stream) echo "$BUILD/tests/fuzz/seeds/elf" ;;
	k8s_pod) echo "$ROOT/tests/fixtures/k8s" ;;
	esac
}

# libFuzzer's own leak check stays on; the daemon's code must not leak on any input.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# close_fd_mask=3: the parsers' log lines would dominate the run; the report still comes out.
FUZZ_FLAGS=(-timeout=10 -rss_limit_mb=2048 -max_len=$MAX_LEN -close_fd_mask=3 -print_final_stats=1)

# The failing input's report, with the parsers' output this time.
report_failure() {
	local t=$1 bin=$2 log=$3 artifact
	echo "--- $t: last lines of $log" >&2
	tail -n 60 "$log" >&2
	artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
	if [ -n "$artifact" ] && [ -f "$artifact" ]; then
		echo "--- $t: replaying $artifact with the parsers' output" >&2
		"$bin" -runs=1 "$artifact" 2>&1 | tail -n 80 >&2 || true
	fi
}

# Folds the committed and the newly found inputs into a minimal set, then drops the hand-made seeds
# from it (they stay in tests/fuzz/corpus/): what is left replaces tests/fuzz/grown/<name>/.
merge_grown() {
	local name=$1 bin=$2 work=$3 log=$4 merged kb
	merged=$(mktemp -d)
	"$bin" -merge=1 -max_len=$MAX_LEN -close_fd_mask=3 "$merged" $(committed_inputs "$name") "$work" \
		>>"$log" 2>&1
	for seed in "$ROOT/tests/fuzz/corpus/$name"/*; do
		rm -f "$merged/$(sha1sum <"$seed" | cut -d' ' -f1)"
	done
	kb=$(du -sk --apparent-size "$merged" | cut -f1)
	if [ "$kb" -gt "$GROWN_MAX_KB" ]; then
		echo "fuzz.sh: $name: the merged corpus is ${kb} KiB, over FUZZ_GROWN_MAX_KB=$GROWN_MAX_KB; not kept" >&2
		rm -rf "$merged"
		return 1
	fi
	rm -rf "$ROOT/tests/fuzz/grown/$name"
	mkdir -p "$ROOT/tests/fuzz/grown"
	mv "$merged" "$ROOT/tests/fuzz/grown/$name"
	chmod 755 "$ROOT/tests/fuzz/grown/$name"
	echo "fuzz.sh: $name: tests/fuzz/grown/$name holds $(ls "$ROOT/tests/fuzz/grown/$name" | wc -l) inputs, ${kb} KiB"
}

failed=()
mkdir -p "$BUILD/fuzz-artifacts" "$BUILD/fuzz-logs"
printf '%-18s %8s %10s %9s %7s %7s %7s  %s\n' target replayed execs exec/s cov ft corpus result
for t in "${targets[@]}"; do
	bin="$BUILD/tests/fuzz/$t"
	name=${t#fuzz_}
	work="$BUILD/fuzz-corpus/$name"
	log="$BUILD/fuzz-logs/$t.log"
	[ -x "$bin" ] || { echo "fuzz.sh: no such target $t ($bin)" >&2; exit 2; }
	mkdir -p "$work"
	mapfile -t inputs < <(committed_inputs "$name")
	replayed=$(find "${inputs[@]}" -type f | wc -l)

	set +e
	"$bin" -runs=0 "${FUZZ_FLAGS[@]}" -artifact_prefix="$BUILD/fuzz-artifacts/$t-replay-" \
		"${inputs[@]}" >"$log" 2>&1
	rc=$?
	if [ $rc -eq 0 ]; then
		"$bin" -max_total_time="$SECONDS_PER_TARGET" "${FUZZ_FLAGS[@]}" \
			-artifact_prefix="$BUILD/fuzz-artifacts/$t-" "$work" "${inputs[@]}" >>"$log" 2>&1
		rc=$?
	fi
	set -e
	done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
	corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$done_line")
	result=ok
	[ $rc -ne 0 ] && result="FAILED (exit $rc)"
	printf '%-18s %8s %10s %9s %7s %7s %7s  %s\n' "$t" "$replayed" "${execs:--}" "${rate:--}" "${cov:--}" \
		"${ft:--}" "${corp:--}" "$result"
	if [ $rc -ne 0 ]; then
		failed+=("$t")
		report_failure "$t" "$bin" "$log"
	elif [ "${FUZZ_MERGE:-0}" = 1 ]; then
		merge_grown "$name" "$bin" "$work" "$log" || failed+=("$t (merge)")
	fi
done

if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz.sh: FAILED: ${failed[*]}" >&2
	exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets replayed their committed inputs and ran ${SECONDS_PER_TARGET}s each without a finding"
