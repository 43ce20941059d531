#!/usr/bin/env bash
# Veil host bootstrap. Idempotent: on a ready machine it checks and does nothing.
#
# Usage: bash scripts/setup.sh [--with-postgres] [--with-bench] [--with-browser]
#
#   1. Debian packages docker.io, redis-server, mmdebstrap (+ postgresql with
#      --with-postgres; + nginx, caddy, wrk with --with-bench, for bench/gateway.py;
#      + chromium with --with-browser, for the web UI tests in tests/ui, driven by
#      Playwright: Debian's build, no browser download), installed only when missing
#      (apt-get update only then).
#      The system redis/postgres services are NOT used: the platform starts its
#      own instances, so a service the package auto-started is stopped again.
#   2. dockerd running (started in the background, log /var/log/veil/dockerd.log).
#   3. uv (pip install uv when missing), then `uv sync --frozen` in the repo root.
#   4. Runtime base images (python, node, go) built when missing
#      (runtimes/base_images.sh all; about 3 minutes once, nothing when present).
#
# Environment: VEIL_DOCKERD_LOG (default /var/log/veil/dockerd.log), and the
# VEIL_*_BASE_IMAGE / VEIL_DEBIAN_* variables read by runtimes/base_images.sh.
set -euo pipefail

log() { printf '[veil setup] %s\n' "$*"; }
warn() { printf '[veil setup] WARNING: %s\n' "$*" >&2; }
die() {
    printf '[veil setup] ERROR: %s\n' "$*" >&2
    exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }
is_root() { [[ "$(id -u)" == 0 ]]; }
has_systemd() { [[ -d /run/systemd/system ]] && have systemctl; }

REPO_ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
DOCKERD_LOG="${VEIL_DOCKERD_LOG:-/var/log/veil/dockerd.log}"
WITH_POSTGRES=0
WITH_BENCH=0
WITH_BROWSER=0
START_NS=$(date +%s%N)
# dockerd, service and friends live in sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

for arg in "$@"; do
    case "$arg" in
        --with-postgres) WITH_POSTGRES=1 ;;
        --with-bench) WITH_BENCH=1 ;;
        --with-browser) WITH_BROWSER=1 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *) die "unknown option '$arg' (see: bash scripts/setup.sh --help)" ;;
    esac
done

# ---- 1. Debian packages -------------------------------------------------------

# Presence is judged by the binaries the platform needs, so an equivalent
# install (e.g. Docker's own docker-ce packages) is accepted as it is.
pkg_present() {
    case "$1" in
        docker.io) have dockerd && have docker ;;
        redis-server) have redis-server ;;
        mmdebstrap) have mmdebstrap ;;
        postgresql) compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
            && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null ;;
        python3-pip) have uv || python3 -m pip --version >/dev/null 2>&1 ;;
        nginx | caddy | wrk) have "$1" ;;
        chromium) [[ -x /usr/bin/chromium ]] ;; # the path tests/ui launches
        *) return 1 ;;
    esac
}

# Stop (and keep from starting at boot) a system service that a package we
# just installed may have started: the platform runs its own redis/postgres
# and the system ones would squat ports 6379/5432.
quiesce_service() {
    local svc="$1"
    if has_systemd; then
        if systemctl is-active --quiet "$svc" 2>/dev/null || systemctl is-enabled --quiet "$svc" 2>/dev/null; then
            log "stopping and disabling the system $svc service (the platform runs its own instance)"
            systemctl disable --now "$svc" >/dev/null 2>&1 \
                || warn "could not stop $svc: run 'systemctl disable --now $svc' so it does not hold its port"
        fi
    elif [[ -x "/etc/init.d/$svc" ]]; then
        if service "$svc" status >/dev/null 2>&1; then
            log "stopping the system $svc service (the platform runs its own instance)"
            service "$svc" stop >/dev/null 2>&1 \
                || warn "could not stop $svc: run 'service $svc stop' so it does not hold its port"
        fi
        if have update-rc.d; then update-rc.d "$svc" disable >/dev/null 2>&1 || true; fi
    fi
}

ensure_packages() {
    local -a wanted=(docker.io redis-server mmdebstrap) missing=()
    local p
    if [[ $WITH_POSTGRES == 1 ]]; then wanted+=(postgresql); fi
    if [[ $WITH_BENCH == 1 ]]; then wanted+=(nginx caddy wrk); fi
    if [[ $WITH_BROWSER == 1 ]]; then wanted+=(chromium); fi
    # pip is only needed to install uv when uv is missing.
    if ! have uv && have python3; then wanted+=(python3-pip); fi
    for p in "${wanted[@]}"; do
        pkg_present "$p" || missing+=("$p")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "packages present: ${wanted[*]}"
        return 0
    fi
    # Without systemd, nothing mounts cgroups for dockerd but cgroupfs-mount.
    if [[ " ${missing[*]} " == *" docker.io "* ]] && ! has_systemd; then missing+=(cgroupfs-mount); fi

    is_root || die "missing packages: ${missing[*]}. Installing them needs root: rerun as root (sudo bash scripts/setup.sh) or run 'sudo apt-get install ${missing[*]}' first."
    have apt-get || die "missing packages: ${missing[*]}, and apt-get is not available: this script supports Debian/Ubuntu hosts; install them with your package manager and rerun."

    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
    log "installing ${missing[*]} (apt-get update first) ..."
    apt-get -o DPkg::Lock::Timeout=120 update -qq \
        || die "apt-get update failed (output above): check the network and /etc/apt/sources.list*, then rerun."
    apt-get -o DPkg::Lock::Timeout=120 install -y -q --no-install-recommends "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed (output above): fix the apt problem (try 'apt-get -f install'), then rerun."
    for p in "${missing[@]}"; do
        case "$p" in
            redis-server) quiesce_service redis-server ;;
            postgresql) quiesce_service postgresql ;;
            nginx | caddy) quiesce_service "$p" ;; # the bench starts its own, on free ports
        esac
    done
    log "installed ${missing[*]}"
}

# ---- 2. dockerd -----------------------------------------------------------------

dockerd_log_tail() {
    if [[ -r "$DOCKERD_LOG" ]]; then
        printf '[veil setup] last 20 lines of %s:\n' "$DOCKERD_LOG" >&2
        tail -n 20 "$DOCKERD_LOG" >&2
    fi
}

ensure_dockerd() {
    local pid="" i
    if docker info >/dev/null 2>&1; then
        log "dockerd is running"
        return 0
    fi
    if ! is_root; then
        if [[ -S /var/run/docker.sock ]]; then
            die "docker info failed: either dockerd is not answering or you may not use /var/run/docker.sock. Add yourself to the 'docker' group, or run as root: sudo bash scripts/setup.sh"
        fi
        die "dockerd is not running and starting it needs root: sudo bash scripts/setup.sh"
    fi
    mkdir -p "$(dirname -- "$DOCKERD_LOG")"

    if [[ -r /var/run/docker.pid ]] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        pid="$(cat /var/run/docker.pid)"
        log "dockerd (pid $pid) is starting, waiting for it ..."
    elif has_systemd && systemctl cat docker.service >/dev/null 2>&1; then
        log "starting docker.service ..."
        systemctl start docker.service \
            || die "systemctl start docker.service failed: see 'journalctl -u docker.service -n 50'"
    else
        if ! mountpoint -q /sys/fs/cgroup 2>/dev/null && have cgroupfs-mount; then
            log "mounting cgroups (cgroupfs-mount)"
            cgroupfs-mount || warn "cgroupfs-mount failed; dockerd may not start"
        fi
        log "starting dockerd in the background (log: $DOCKERD_LOG) ..."
        printf '\n==== %s: started by scripts/setup.sh ====\n' "$(date -Is)" >>"$DOCKERD_LOG"
        # setsid + nohup: dockerd keeps running after this script and its session end.
        setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
        pid=$!
    fi

    for ((i = 0; i < 60; i++)); do
        if docker info >/dev/null 2>&1; then
            log "dockerd is up${pid:+ (pid $pid)}"
            return 0
        fi
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            sleep 0.5
            docker info >/dev/null 2>&1 && { log "dockerd is up"; return 0; }
            dockerd_log_tail
            die "dockerd exited right after starting (log above, full log $DOCKERD_LOG). Fix the cause and rerun."
        fi
        sleep 0.5
    done
    dockerd_log_tail
    die "dockerd did not answer 'docker info' within 30 s (log above, full log $DOCKERD_LOG). Fix the cause, stop the stuck dockerd${pid:+ (kill $pid)} and rerun."
}

# ---- 3. uv + project environment -----------------------------------------------

ensure_uv() {
    local -a pip_args=(install --quiet uv)
    local stdlib
    if have uv; then return 0; fi
    have python3 || die "uv is missing and so is python3: install python3 and python3-pip (apt-get install python3-pip), then rerun."
    python3 -m pip --version >/dev/null 2>&1 \
        || die "uv is missing and pip is not available: apt-get install python3-pip (as root), then rerun."
    # Debian's own python refuses pip installs (PEP 668) without this flag.
    stdlib="$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')"
    if [[ -e "$stdlib/EXTERNALLY-MANAGED" ]]; then pip_args+=(--break-system-packages); fi
    log "installing uv (python3 -m pip ${pip_args[*]}) ..."
    python3 -m pip "${pip_args[@]}" || die "pip install uv failed (output above): install uv by hand (e.g. pipx install uv) and rerun."
    hash -r
    if ! have uv && [[ -x "$HOME/.local/bin/uv" ]]; then export PATH="$HOME/.local/bin:$PATH"; fi
    have uv || die "uv was installed but is not on PATH: add pip's script directory to PATH and rerun."
    log "installed $(uv --version)"
}

sync_project() {
    cd -- "$REPO_ROOT"
    # uv trusts only its bundled Mozilla roots unless told otherwise; outgoing
    # TLS may be intercepted by a proxy whose CA only the system bundle has.
    if [[ -z "${SSL_CERT_FILE:-}" && -r /etc/ssl/certs/ca-certificates.crt ]]; then
        export SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
    fi
    # Compiled once here: where PYTHONDONTWRITEBYTECODE is set (as on CI machines),
    # every process would otherwise compile its libraries from source on each start,
    # which more than doubles a service's import time. Python still reads .pyc files.
    uv sync --frozen --quiet --compile-bytecode \
        || die "'uv sync --frozen' failed in $REPO_ROOT (output above). It needs Python 3.11 and PyPI; if uv.lock is out of date, run 'uv lock' and commit it."
    uv run --frozen --no-sync python -m compileall -q -j 0 \
        analytics bench executor gateway launcher runtimes shared testkit >/dev/null \
        || die "compiling the project's Python files failed (python -m compileall, output above)."
    log "python environment in sync ($REPO_ROOT/.venv)"
}

# ---- main -----------------------------------------------------------------------

ensure_packages
ensure_dockerd
ensure_uv
sync_project
bash "$REPO_ROOT/runtimes/base_images.sh" all || die "building the runtime base images failed (output above)."
log "ready in $(( ($(date +%s%N) - START_NS) / 1000000 )) ms"
