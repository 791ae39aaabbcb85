#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c, clang with ASan + UBSan) in build-fuzz/ and runs
# each for FUZZ_SECONDS on its seed corpus. Exits non-zero when a target crashes, leaks, times out or
# breaks one of its checks; the input that did it is kept in build-fuzz/fuzz-artifacts/ and replayed
# with the full report. Inputs that found new coverage accumulate in build-fuzz/fuzz-corpus/, so
# later runs start from there (the seeds in tests/fuzz/corpus/ are never written).
#
#   scripts/fuzz.sh [target...]        e.g. scripts/fuzz.sh fuzz_elf fuzz_pprof
#
# Environment: FUZZ_SECONDS (default 10, per target), FUZZ_BUILD_DIR (default build-fuzz), JOBS
# (default 2, for the build), FUZZ_BUILD=0 to use an existing build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECONDS_PER_TARGET=${FUZZ_SECONDS:-10}
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
JOBS=${JOBS:-2}

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

# Seeds beyond tests/fuzz/corpus/<name>/: files built or kept elsewhere in the tree.
extra_seeds() {
	case "$1" in
	fuzz_elf) echo "$BUILD/tests/fuzz/seeds/elf" ;;
	fuzz_k8s_pod) echo "$ROOT/tests/fixtures/k8s" ;;
	esac
}

# libFuzzer's own leak check stays on; the daemon's code must not leak on any input.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

failed=()
mkdir -p "$BUILD/fuzz-artifacts" "$BUILD/fuzz-logs"
printf '%-18s %10s %9s %7s %7s %7s  %s\n' target execs exec/s cov ft corpus result
for t in "${targets[@]}"; do
	bin="$BUILD/tests/fuzz/$t"
	name=${t#fuzz_}
	corpus="$BUILD/fuzz-corpus/$name"
	log="$BUILD/fuzz-logs/$t.log"
	[ -x "$bin" ] || { echo "fuzz.sh: no such target $t ($bin)" >&2; exit 2; }
	mkdir -p "$corpus"
	seeds=("$ROOT/tests/fuzz/corpus/$name")
	extra=$(extra_seeds "$t")
	[ -n "$extra" ] && seeds+=("$extra")
	# close_fd_mask=3: the parsers' log lines would dominate the run; the report still comes out.
	set +e
	"$bin" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
		-close_fd_mask=3 -print_final_stats=1 -artifact_prefix="$BUILD/fuzz-artifacts/$t-" \
		"$corpus" "${seeds[@]}" >"$log" 2>&1
	rc=$?
	set -e
	done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
	corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$done_line")
	result=ok
	[ $rc -ne 0 ] && result="FAILED (exit $rc)"
	printf '%-18s %10s %9s %7s %7s %7s  %s\n' "$t" "${execs:--}" "${rate:--}" "${cov:--}" "${ft:--}" \
		"${corp:--}" "$result"
	if [ $rc -ne 0 ]; then
		failed+=("$t")
		echo "--- $t: last lines of $log" >&2
		tail -n 60 "$log" >&2
		artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
		if [ -n "$artifact" ] && [ -f "$artifact" ]; then
			echo "--- $t: replaying $artifact with the parsers' output" >&2
			"$bin" -runs=1 "$artifact" 2>&1 | tail -n 80 >&2 || true
		fi
	fi
done

if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz.sh: FAILED: ${failed[*]}" >&2
	exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets ran ${SECONDS_PER_TARGET}s each without a finding"
