#!/usr/bin/env bash
# shellcheck disable=SC2016  # mmdebstrap hooks are single-quoted on purpose ($1 = chroot)
# Build Veil's local runtime base images from Debian packages, without any
# image registry: mmdebstrap (apt) piped into `docker import`.
#
# Usage: runtimes/base_images.sh [python|node|go|all]...   (default: python)
#
# An image whose name already exists is skipped, unless it was built by this
# script from an older recipe (label veil.base.recipe differs) or
# VEIL_BASE_REBUILD=1 is set. Images not built by this script (e.g. an official
# python image retagged under the configured name) are always left alone.
#
# Environment:
#   VEIL_PYTHON_BASE_IMAGE  default veil/python-base:bookworm
#   VEIL_NODE_BASE_IMAGE    default veil/node-base:bookworm
#   VEIL_GO_BASE_IMAGE      default veil/go-base:bookworm
#   VEIL_DEBIAN_SUITE       default bookworm
#   VEIL_DEBIAN_MIRROR      optional mirror URI (default: deb.debian.org + updates + security)
#   VEIL_BASE_CA_BUNDLE     CA bundle copied into the images after the apt step,
#                           default the host's /etc/ssl/certs/ca-certificates.crt
#                           (outgoing TLS may be intercepted by a proxy whose CA
#                           only the host bundle has)
#   VEIL_BASE_REBUILD=1     rebuild even if the image exists
set -euo pipefail

log() { printf '[veil base-images] %s\n' "$*"; }
die() {
    printf '[veil base-images] ERROR: %s\n' "$*" >&2
    exit 1
}

SUITE="${VEIL_DEBIAN_SUITE:-bookworm}"
MIRROR="${VEIL_DEBIAN_MIRROR:-}"
CA_BUNDLE="${VEIL_BASE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
STD_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# mmdebstrap options for every image. Keep images small: docs (except
# copyright files), man pages, translations and lintian overrides are never
# unpacked.
MMDEBSTRAP_OPTS=(
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-include=/usr/share/locale/locale.alias'
    --dpkgopt='path-exclude=/usr/share/lintian/*'
    --aptopt='Acquire::Languages "none"'
)
# Set up merged-/usr with symlinks and usr-is-merged instead of the usrmerge
# package, which would drag perl (~50 MB) into every image.
MERGED_USR_HOOKS=/usr/share/mmdebstrap/hooks/merged-usr
if [[ -d "$MERGED_USR_HOOKS" ]]; then MMDEBSTRAP_OPTS+=(--hook-dir="$MERGED_USR_HOOKS"); fi

# Hooks shared by every runtime. They run inside mmdebstrap after all packages
# are installed ($1 = the chroot directory).
# - the non-root user `app` (uid/gid 10001, no login shell, no home), written
#   directly so the image needs neither `passwd` nor `adduser`;
# - the CA bundle, copied AFTER apt: the ca-certificates package regenerates
#   /etc/ssl/certs/ca-certificates.crt when it is installed;
# - cleanup of apt lists/caches and logs.
COMMON_HOOKS=(
    --customize-hook='echo "app:x:10001:10001:veil app:/nonexistent:/usr/sbin/nologin" >> "$1/etc/passwd"'
    --customize-hook='echo "app:x:10001:" >> "$1/etc/group"'
    --customize-hook='if [ -e "$1/etc/shadow" ]; then echo "app:!:19000:0:99999:7:::" >> "$1/etc/shadow"; fi'
    --customize-hook='if [ -e "$1/etc/gshadow" ]; then echo "app:!::" >> "$1/etc/gshadow"; fi'
    --customize-hook='cp "$VEIL_CA_SRC" "$1/etc/ssl/certs/ca-certificates.crt" && chmod 0644 "$1/etc/ssl/certs/ca-certificates.crt"'
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old "$1"/var/log/apt/* "$1"/var/log/dpkg.log "$1"/var/log/alternatives.log'
)

# ---- per-runtime recipes ------------------------------------------------------
# Each recipe_<rt> fills: IMAGE, INCLUDE (comma list), HOOKS (array), CHANGES (array).

recipe_python() {
    IMAGE="${VEIL_PYTHON_BASE_IMAGE:-veil/python-base:bookworm}"
    INCLUDE=python3,python3-venv,python3-pip,ca-certificates
    # The venv lives in the image so builds only `pip install` into it.
    HOOKS=(--customize-hook='chroot "$1" python3 -m venv /opt/venv')
    CHANGES=(
        --change "ENV PATH=/opt/venv/bin:$STD_PATH"
        --change 'ENV VIRTUAL_ENV=/opt/venv'
        --change 'ENV LANG=C.UTF-8'
        --change 'WORKDIR /'
        --change 'CMD ["python3"]'
    )
}

recipe_node() {
    IMAGE="${VEIL_NODE_BASE_IMAGE:-veil/node-base:bookworm}"
    INCLUDE=nodejs,npm,ca-certificates
    HOOKS=()
    CHANGES=(
        --change "ENV PATH=$STD_PATH"
        --change 'ENV LANG=C.UTF-8'
        --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt'
        --change 'WORKDIR /'
        --change 'CMD ["node"]'
    )
}

recipe_go() {
    IMAGE="${VEIL_GO_BASE_IMAGE:-veil/go-base:bookworm}"
    INCLUDE=golang-go,ca-certificates
    # A build cache of the whole standard library, compiled exactly as
    # runtimes/go/Dockerfile compiles (CGO_ENABLED=0, -trimpath, GOCACHE path), so
    # the first Go deploy on a host needs no ~20 s standard-library compile.
    HOOKS=(--customize-hook='chroot "$1" env CGO_ENABLED=0 GOCACHE=/opt/veil/go-cache GOFLAGS= go build -trimpath std')
    CHANGES=(
        --change "ENV PATH=/usr/lib/go/bin:$STD_PATH"
        --change 'ENV LANG=C.UTF-8'
        --change 'ENV CGO_ENABLED=0'
        --change 'WORKDIR /'
        --change 'CMD ["go", "version"]'
    )
}

ALL_RUNTIMES=(python node go)

# ---- build ------------------------------------------------------------------

# load_recipe RT: sets IMAGE, INCLUDE, HOOKS, CHANGES and RECIPE (fingerprint of
# the recipe, stored as a label so an image from an older recipe is rebuilt).
load_recipe() {
    "recipe_$1"
    RECIPE="$(printf '%s\n' "$SUITE" "$MIRROR" "$INCLUDE" "${MMDEBSTRAP_OPTS[@]}" \
        "${HOOKS[@]}" "${COMMON_HOOKS[@]}" "${CHANGES[@]}" | sha256sum | cut -c1-16)"
}

# needs_build RT [quiet] (after load_recipe): 0 if the image must be built, 1 to skip.
needs_build() {
    local existing say=log
    if [[ "${2:-}" == quiet ]]; then say=:; fi
    existing="$(docker image inspect -f '{{index .Config.Labels "veil.base.recipe"}}' "$IMAGE" 2>/dev/null)" \
        || return 0
    if [[ "${VEIL_BASE_REBUILD:-0}" == 1 ]]; then
        $say "$1: $IMAGE present, rebuilding (VEIL_BASE_REBUILD=1)"
        return 0
    fi
    if [[ -n "$existing" && "$existing" != "<no value>" && "$existing" != "$RECIPE" ]]; then
        $say "$1: $IMAGE was built from an older recipe ($existing), rebuilding"
        return 0
    fi
    return 1
}

build_image() {
    local rt="$1" start id old size elapsed
    local -a args
    old="$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
    log "$rt: building $IMAGE from Debian $SUITE packages ($INCLUDE) ..."
    args=(--variant=apt --include="$INCLUDE" "${MMDEBSTRAP_OPTS[@]}" "${HOOKS[@]}" "${COMMON_HOOKS[@]}" "$SUITE" -)
    if [[ -n "$MIRROR" ]]; then args+=("$MIRROR"); fi

    start=$(date +%s.%N)
    # Import untagged first and tag only when both ends of the pipe succeeded,
    # so a failed mmdebstrap never leaves a truncated image under the real name.
    id=""
    if ! id="$(VEIL_CA_SRC="$CA_BUNDLE" mmdebstrap "${args[@]}" \
        | docker import --message "veil $rt base ($SUITE)" \
            --change "LABEL veil.base.runtime=$rt veil.base.recipe=$RECIPE veil.base.suite=$SUITE" \
            "${CHANGES[@]}" -)"; then
        if [[ -n "$id" ]]; then docker image rm -f "$id" >/dev/null 2>&1 || true; fi
        die "$rt: building $IMAGE failed (see the mmdebstrap/docker output above). Check that the Debian mirror is reachable (apt-get update) and dockerd is running, then rerun: $0 $rt"
    fi
    docker tag "$id" "$IMAGE"
    # Drop the image this one replaces (fails harmlessly if something still uses it).
    if [[ -n "$old" && "$old" != "$id" ]]; then docker image rm "$old" >/dev/null 2>&1 || true; fi
    elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    size=$(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{ printf "%.0f", $1 / 1e6 }')
    log "$rt: built $IMAGE in ${elapsed} s (${size} MB)"
}

main() {
    local -a wanted=()
    local arg rt locked=0
    for arg in "$@"; do
        case "$arg" in
            all) wanted+=("${ALL_RUNTIMES[@]}") ;;
            python | node | go) wanted+=("$arg") ;;
            -h | --help)
                sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
                return 0
                ;;
            *) die "unknown runtime '$arg' (expected: python, node, go or all)" ;;
        esac
    done
    [[ ${#wanted[@]} -gt 0 ]] || wanted=(python)

    command -v docker >/dev/null 2>&1 || die "docker CLI not found: run scripts/setup.sh first"
    docker info >/dev/null 2>&1 \
        || die "cannot talk to dockerd (docker info failed): run scripts/setup.sh (as root) first"

    for rt in "${wanted[@]}"; do
        load_recipe "$rt"
        if ! needs_build "$rt"; then
            log "$rt: $IMAGE present, skipping"
            continue
        fi
        if [[ $locked == 0 ]]; then
            command -v mmdebstrap >/dev/null 2>&1 \
                || die "mmdebstrap not found: apt-get install mmdebstrap (or run scripts/setup.sh)"
            [[ -r "$CA_BUNDLE" ]] || die "CA bundle $CA_BUNDLE is not readable (set VEIL_BASE_CA_BUNDLE)"
            # Serialise concurrent builders (e.g. setup.sh and CI at once).
            exec 9>"${TMPDIR:-/tmp}/veil-base-images.lock"
            flock 9
            locked=1
            # Another builder may have finished while we waited.
            if ! needs_build "$rt" quiet; then
                log "$rt: $IMAGE present, skipping"
                continue
            fi
        fi
        build_image "$rt"
    done
}

main "$@"
