#!/usr/bin/env bash
# Installs the test dependencies, builds anorak in build/ and runs every test (unit + integration),
# then builds again with AddressSanitizer/UBSan in build-asan/ and runs the unit tests and, unless
# ANORAK_ASAN_INTEGRATION=0, the integration tests against the instrumented daemon.
# Exits non-zero when anything fails. Needs root (BPF) for the integration tests.
#
# Environment: JOBS (default 2), ANORAK_BUILD_DIR (default build), ANORAK_ASAN_BUILD_DIR (default
# build-asan), ANORAK_ASAN=0 to skip the sanitizer build, ANORAK_ASAN_INTEGRATION=0 to run only its
# unit tests. Then the fuzz targets run for a few seconds each (scripts/fuzz.sh; ANORAK_FUZZ=0 skips),
# and last the container image test (ctest -L image: builds the image with podman and runs it as the
# DaemonSet does; ANORAK_IMAGE=0 skips).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

JOBS=${JOBS:-2}
BUILD=${ANORAK_BUILD_DIR:-build}
ASAN_BUILD=${ANORAK_ASAN_BUILD_DIR:-build-asan}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
case "$ASAN_BUILD" in /*) ;; *) ASAN_BUILD=$ROOT/$ASAN_BUILD ;; esac

bash scripts/install-deps.sh --test

# CI-friendly settings: everything the build writes stays in the build directories, no prompts, no
# colors, no VCS stamping by Go (a fresh clone may not satisfy git's safe.directory).
export GOCACHE="$BUILD/.gocache"
export GOTMPDIR="$BUILD/.gotmp"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export GOTOOLCHAIN=local GOPROXY=off GOTELEMETRY=off
mkdir -p "$GOCACHE" "$GOTMPDIR"
export HOME="${HOME:-$BUILD}"
export CTEST_OUTPUT_ON_FAILURE=1
export CLICOLOR=0 NO_COLOR=1 TERM=dumb
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

failed=()
step() { echo; echo "=== test.sh: $* ==="; }

step "configure and build $BUILD/ (RelWithDebInfo)"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DANORAK_TESTS=ON
cmake --build "$BUILD" -j "$JOBS"

step "ctest (unit + integration + config) in $BUILD/"
if ! ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS" --timeout 300 -LE image; then
	failed+=("tests in $BUILD/")
fi

if [ "${ANORAK_ASAN:-1}" != 0 ]; then
	step "configure and build $ASAN_BUILD/ (ASan + UBSan)"
	export GOCACHE="$ASAN_BUILD/.gocache" GOTMPDIR="$ASAN_BUILD/.gotmp"
	mkdir -p "$GOCACHE" "$GOTMPDIR"
	cmake -S . -B "$ASAN_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DANORAK_SANITIZE=ON -DANORAK_TESTS=ON
	cmake --build "$ASAN_BUILD" -j "$JOBS"
	export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:exitcode=86:strict_string_checks=1:detect_stack_use_after_return=1"
	export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87"
	export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp"
	step "ctest -L unit in $ASAN_BUILD/"
	if ! ctest --test-dir "$ASAN_BUILD" --output-on-failure -j "$JOBS" -L unit --timeout 300; then
		failed+=("unit tests in $ASAN_BUILD/")
	fi
	if [ "${ANORAK_ASAN_INTEGRATION:-1}" != 0 ]; then
		step "ctest -L integration in $ASAN_BUILD/"
		if ! ctest --test-dir "$ASAN_BUILD" --output-on-failure -L integration --timeout 300; then
			failed+=("integration tests in $ASAN_BUILD/")
		fi
	fi
fi

if [ "${ANORAK_FUZZ:-1}" != 0 ]; then
	step "fuzz targets, ${FUZZ_SECONDS:-10}s each (scripts/fuzz.sh) in build-fuzz/"
	if ! FUZZ_BUILD_DIR="${ANORAK_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}" JOBS="$JOBS" bash scripts/fuzz.sh; then
		failed+=("fuzz targets")
	fi
fi

# Last, alone: the container image is built (scripts/image.sh) and run as the DaemonSet runs it.
if [ "${ANORAK_IMAGE:-1}" != 0 ]; then
	step "ctest -L image in $BUILD/ (container image, podman)"
	if ! ctest --test-dir "$BUILD" --output-on-failure -L image; then
		failed+=("container image test in $BUILD/")
	fi
fi

echo
if [ ${#failed[@]} -gt 0 ]; then
	printf 'test.sh: FAILED: %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "test.sh: all tests passed"
