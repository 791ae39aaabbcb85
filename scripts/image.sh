#!/usr/bin/env bash
# Builds anorak's container image with podman from the Containerfile and tags it anorak:<version> (the
# CMake project version) and anorak:latest. Needs root and podman (scripts/install-deps.sh --image).
#
#   scripts/image.sh [--save FILE] [--podman-options]
#     --podman-options  build nothing: print the options podman needs here to run a container, as two
#                  lines "global: ..." (before the command) and "run: ..." (after it)
#     --save FILE  also write the image, named docker.io/library/anorak:<version> (what the kubelet
#                  resolves the DaemonSet's anorak:<version> to), as an OCI archive for
#                  `ctr -n k8s.io images import FILE` or `docker load -i FILE` on a node
#
# The base, debian:bookworm-slim, is pulled when a registry is reachable. Where none is, it is made
# from Debian's packages (debootstrap --variant=minbase bookworm, trimmed like the official slim image,
# podman import), so the Containerfile is the same everywhere. Options podman needs on this host are
# found by trying a container: another OCI runtime (runc) when the default refuses the host's cgroup
# layout, explicit ulimits when the host forbids raising limits, the host's network when the default
# one cannot reach the Debian mirror.
#
# Environment: JOBS (default 2) for the compile in the build stage; DEBIAN_MIRROR for debootstrap
# (default: the host's apt source for Debian, else http://deb.debian.org/debian).
set -euo pipefail

BASE=debian:bookworm-slim
JOBS=${JOBS:-2}
save=
print_options=0

while [ $# -gt 0 ]; do
	case "$1" in
	--podman-options) print_options=1; shift ;;
	--save) [ $# -ge 2 ] || { echo "image.sh: --save needs a FILE" >&2; exit 2; }; save=$(realpath -m "$2"); shift 2 ;;
	-h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "image.sh: unknown option $1 (use --save FILE, --podman-options)" >&2; exit 2 ;;
	esac
done
cd "$(dirname "$0")/.."

command -v podman >/dev/null || { echo "image.sh: podman missing: scripts/install-deps.sh --image" >&2; exit 1; }
VERSION=$(sed -n 's/^project(anorak VERSION \([0-9][0-9.]*\).*/\1/p' CMakeLists.txt)
[ -n "$VERSION" ] || { echo "image.sh: no project version in CMakeLists.txt" >&2; exit 1; }
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$REVISION" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	REVISION=$REVISION-dirty
fi
SOURCE=$(git config --get remote.origin.url 2>/dev/null || true)
SOURCE=${SOURCE:-unknown}

log() { echo "image.sh: $*" >&2; }

# The first URI of the host's apt sources whose path ends in the given suffix (deb822 or one-line).
apt_uri() {
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
		grep -oE '(https?|file)://[^ ]+' | grep -E "$1/?\$" | head -n 1 || true
}

# A bookworm base from Debian's packages, with what the official slim image leaves out excluded from
# dpkg (documentation, man pages, locales), so packages installed on top stay as small.
make_base() {
	command -v debootstrap >/dev/null ||
		{ log "no registry reachable and debootstrap missing: scripts/install-deps.sh --image"; exit 1; }
	local mirror=${DEBIAN_MIRROR:-$(apt_uri /debian)} security root
	mirror=${mirror:-http://deb.debian.org/debian}
	security=$(apt_uri /debian-security)
	root=$(mktemp -d /var/tmp/anorak-base.XXXXXX)
	trap 'rm -rf "$root"' EXIT
	log "making $BASE with debootstrap from $mirror"
	debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 ||
		{ tail -n 20 "$root.log" >&2; rm -f "$root.log"; log "debootstrap failed"; exit 1; }
	rm -f "$root.log"
	cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<-'EOF'
	path-exclude /usr/share/doc/*
	path-include /usr/share/doc/*/copyright
	path-exclude /usr/share/man/*
	path-exclude /usr/share/info/*
	path-exclude /usr/share/groff/*
	path-exclude /usr/share/lintian/*
	path-exclude /usr/share/locale/*
	path-include /usr/share/locale/locale.alias
	EOF
	find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
	find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
	rm -rf "$root"/usr/share/{man,info,groff,lintian}/* "$root"/var/cache/apt/*.bin \
		"$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log
	{
		echo "deb $mirror bookworm main"
		echo "deb $mirror bookworm-updates main"
		[ -z "$security" ] || echo "deb $security bookworm-security main"
	} >"$root/etc/apt/sources.list"
	tar -C "$root" --numeric-owner -c . | podman import --quiet --change 'CMD ["bash"]' - "$BASE" >/dev/null
	rm -rf "$root"
	trap - EXIT
}

# Docker before 25 loads only archives with a manifest.json (docker save's format). Listing the OCI
# archive's own config and layer blobs there makes one file both loaders read, as docker save writes
# it since 25: ctr and podman read index.json, docker load either.
add_docker_manifest() {
	local archive=$1 name=$2 dir manifest digests layers=() d
	dir=$(mktemp -d)
	tar -C "$dir" -xf "$archive" index.json
	manifest=$(grep -o '"digest":"sha256:[0-9a-f]*"' "$dir/index.json" | head -n 1 | sed 's/.*sha256:\([0-9a-f]*\)"/\1/')
	tar -C "$dir" -xf "$archive" "blobs/sha256/$manifest"
	# The manifest's digests in order: its config, then its layers from the bottom up.
	mapfile -t digests < <(grep -o '"digest":"sha256:[0-9a-f]*"' "$dir/blobs/sha256/$manifest" |
		sed 's/.*sha256:\([0-9a-f]*\)"/\1/')
	for d in "${digests[@]:1}"; do layers+=("\"blobs/sha256/$d\""); done
	printf '[{"Config":"blobs/sha256/%s","RepoTags":["%s"],"Layers":[%s]}]\n' "${digests[0]}" "$name" \
		"$(IFS=,; echo "${layers[*]}")" >"$dir/manifest.json"
	tar -C "$dir" -rf "$archive" manifest.json
	rm -rf "$dir"
}

if ! podman image exists "$BASE"; then
	if timeout 300 podman pull -q "docker.io/library/$BASE" >/dev/null 2>&1; then
		log "pulled $BASE"
	else
		log "cannot pull docker.io/library/$BASE"
		make_base
	fi
fi

# podman's options for this host: the first runtime and limits under which a container starts, then
# the default network unless only the host's reaches the base's apt mirror (a TCP connect, by bash).
# Explicit limits are the ones podman's processes have: the caller's open-file limits, and for
# processes at most 32768 (podman lowers its own RLIMIT_NPROC to that; runc cannot give more).
cap() { if [ "$1" = unlimited ] || [ "$1" -gt 32768 ]; then echo 32768; else echo "$1"; fi; }
limits=(--ulimit "nofile=$(ulimit -Sn):$(ulimit -Hn)" --ulimit "nproc=$(cap "$(ulimit -Su)"):$(cap "$(ulimit -Hu)")")
found=0
for runtime in "" runc; do
	[ -z "$runtime" ] || command -v "$runtime" >/dev/null || continue
	global=(${runtime:+--runtime "$runtime"})
	for extra_limits in no yes; do
		extra=()
		[ $extra_limits = no ] || extra=("${limits[@]}")
		if podman "${global[@]}" run --rm "${extra[@]}" "$BASE" true >/dev/null 2>&1; then
			found=1
			break 2
		fi
	done
done
[ $found = 1 ] || { log "podman cannot run a container of $BASE here (tried runtimes default, runc; ulimits)"; exit 1; }
reach_mirror='u=$(grep -rhoE "https?://[^/ ]+" /etc/apt/sources.list /etc/apt/sources.list.d 2>/dev/null | head -n 1)
p=80; [ "${u%%://*}" = https ] && p=443
timeout 10 bash -c "exec 3<>/dev/tcp/${u#*://}/$p"'
net_opt=()
if ! podman "${global[@]}" run --rm "${extra[@]}" "$BASE" bash -c "$reach_mirror" >/dev/null 2>&1; then
	net_opt=(--network=host)
	podman "${global[@]}" run --rm "${extra[@]}" "${net_opt[@]}" "$BASE" bash -c "$reach_mirror" >/dev/null 2>&1 ||
		{ log "a container of $BASE reaches its apt mirror on no network (default, host)"; exit 1; }
fi
log "podman options:${runtime:+ --runtime $runtime}${extra[*]:+ ${extra[*]}}${net_opt[*]:+ ${net_opt[*]}}"
if [ $print_options = 1 ]; then
	echo "global: ${global[*]}"
	echo "run: ${extra[*]}"
	exit 0
fi

log "building anorak:$VERSION (revision $REVISION)"
nice podman "${global[@]}" build "${extra[@]}" "${net_opt[@]}" -f Containerfile \
	--build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" --build-arg "SOURCE=$SOURCE" \
	--build-arg "JOBS=$JOBS" -t "anorak:$VERSION" -t anorak:latest .
log "anorak:$VERSION: $(podman image inspect --format '{{.Size}}' "anorak:$VERSION") bytes"

if [ -n "$save" ]; then
	podman tag "anorak:$VERSION" "docker.io/library/anorak:$VERSION"
	rm -f "$save"
	podman save --format oci-archive -o "$save" "docker.io/library/anorak:$VERSION"
	add_docker_manifest "$save" "docker.io/library/anorak:$VERSION"
	log "saved docker.io/library/anorak:$VERSION to $save ($(stat -c %s "$save") bytes)"
fi
