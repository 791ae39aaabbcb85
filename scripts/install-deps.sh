#!/usr/bin/env bash
# Installs what anorak needs on Debian 12, as root. Idempotent: when every package is already installed
# it does not touch apt at all (fast, and works offline).
#
#   scripts/install-deps.sh [--build] [--test] [--bench] [--image]
#     --build  build dependencies (the default when no option is given)
#     --test   build + test + image dependencies (cmocka, Go and google/pprof for the checker,
#              promtool, ...; podman for the container image test)
#     --bench  benchmark tools (BCC, perf, Debian's kernel headers for BCC, wrk)
#     --image  container image tools for scripts/image.sh (podman, runc, debootstrap)
set -euo pipefail

BUILD_DEPS=(cmake make gcc clang llvm pkg-config libbpf-dev bpftool libelf-dev libcurl4-openssl-dev
	libprotobuf-c-dev protobuf-c-compiler libcivetweb-dev zlib1g-dev libsnappy-dev libjson-c-dev
	libyaml-dev libpcre2-dev libssl-dev libcrypt-dev libdebuginfod-dev)
TEST_DEPS=(libcmocka-dev golang-go golang-github-google-pprof-dev prometheus protobuf-compiler
	libclang-rt-14-dev python3 curl python3-yaml python3-jsonschema wrk debuginfod gdb)
BENCH_DEPS=(bpfcc-tools linux-perf linux-headers-amd64 wrk time)
# podman builds and runs the image; runc for hosts whose cgroup layout crun refuses; debootstrap makes
# the Debian base where no registry is reachable.
IMAGE_DEPS=(podman runc debootstrap)

want_build=0 want_test=0 want_bench=0 want_image=0
for arg in "$@"; do
	case "$arg" in
	--build) want_build=1 ;;
	--test) want_build=1; want_test=1; want_image=1 ;;
	--bench) want_bench=1 ;;
	--image) want_image=1 ;;
	-h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "install-deps.sh: unknown option $arg (use --build, --test, --bench, --image)" >&2; exit 2 ;;
	esac
done
[ $# -eq 0 ] && want_build=1

pkgs=()
[ $want_build = 1 ] && pkgs+=("${BUILD_DEPS[@]}")
[ $want_test = 1 ] && pkgs+=("${TEST_DEPS[@]}")
[ $want_bench = 1 ] && pkgs+=("${BENCH_DEPS[@]}")
[ $want_image = 1 ] && pkgs+=("${IMAGE_DEPS[@]}")

missing=()
for p in "${pkgs[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = installed ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#pkgs[@]} packages already installed"
else
	if [ "$(id -u)" != 0 ]; then
		echo "install-deps: missing packages ${missing[*]}, and not root: run as root" >&2
		exit 1
	fi
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Packages with services (prometheus) must not start them: there is no systemd here, and a
	# Prometheus server would take ports. policy-rc.d answering 101 makes invoke-rc.d skip the start.
	own_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		own_policy=1
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
	if [ $own_policy = 1 ]; then
		rm -f /usr/sbin/policy-rc.d
		trap - EXIT
	fi
fi

# Whatever policy was in place, make sure no Prometheus or node exporter server from the packages runs
# or starts at boot (only promtool is wanted).
if [ $want_test = 1 ]; then
	for svc in prometheus prometheus-node-exporter; do
		[ -x /etc/init.d/$svc ] || continue
		if [ "$(id -u)" = 0 ]; then
			if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
				systemctl disable --now "$svc" >/dev/null 2>&1 || true
			else
				/etc/init.d/$svc stop >/dev/null 2>&1 || true
				update-rc.d "$svc" disable >/dev/null 2>&1 || true
			fi
		fi
	done
	for comm in prometheus prometheus-node; do
		# Only the packaged daemons (by exact executable), never anything else of that name.
		for pid in $(pgrep -x "$comm" 2>/dev/null || true); do
			exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
			case "$exe" in
			/usr/bin/prometheus|/usr/bin/prometheus-node-exporter)
				echo "install-deps: stopping packaged $exe (pid $pid)"
				kill "$pid" 2>/dev/null || true ;;
			esac
		done
	done
	command -v promtool >/dev/null || { echo "install-deps: promtool missing after install" >&2; exit 1; }
fi
