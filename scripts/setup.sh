#!/usr/bin/env bash
# Fresh-machine setup for LogCaster (Debian 12, as root). Idempotent: every
# step checks before it acts, so `make test` / `make demo` can run it each time.
#   - Debian packages (build tools, DPDK, libxdp/libbpf, bcc, clang, libpcap, ...)
#   - kernel headers for bcc when the running kernel has none
#   - 2 MiB hugepages reserved and hugetlbfs mounted
#   - a venv from Debian's python3 with --system-site-packages (bcc is Debian-only)
#   - the project installed editable, which builds the cffi modules
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
HUGEPAGES_2M="${LOGCASTER_HUGEPAGES:-512}"   # 1 GiB of 2 MiB pages
HUGE_MOUNT="${LOGCASTER_HUGE_MOUNT:-/dev/hugepages}"

APT_PACKAGES=(
    build-essential pkg-config git make
    python3 python3-venv python3-dev python3-bpfcc bpfcc-tools
    libdpdk-dev dpdk libxdp-dev libbpf-dev xdp-tools
    clang llvm libclang-rt-14-dev
    libpcap-dev tcpreplay iproute2 ethtool iputils-ping
    rsyslog
)

log() { printf '[setup] %s\n' "$*"; }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup.sh: run as root (apt, hugepages and kernel headers need it)" >&2
        exit 1
    fi
}

install_packages() {
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
        # Debian starts rsyslog on install; LogCaster runs its own instance in
        # benchmarks and needs UDP/514 free, so keep the system one stopped.
        if command -v systemctl >/dev/null && systemctl is-active -q rsyslog 2>/dev/null; then
            systemctl stop rsyslog || true
        fi
    fi
}

# bcc compiles XDP programs against /lib/modules/$(uname -r)/{build,source}.
# No Debian package matches a custom kernel; the newest 6.1 headers work.
install_kernel_headers() {
    local kdir="/lib/modules/$(uname -r)"
    if [ -e "$kdir/build/include/generated/autoconf.h" ] || [ -e "$kdir/build/include/linux/kconfig.h" ]; then
        return
    fi
    if ! ls -d /usr/src/linux-headers-6.1.0-*-amd64 >/dev/null 2>&1; then
        log "installing Debian kernel headers (linux-headers-amd64) for bcc"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-headers-amd64
    fi
    local arch common
    arch="$(ls -d /usr/src/linux-headers-6.1.0-*-amd64 | sort -V | tail -n1)"
    common="${arch%-amd64}-common"
    mkdir -p "$kdir"
    ln -sfn "$arch" "$kdir/build"
    ln -sfn "$common" "$kdir/source"
    log "linked $kdir/build -> $arch, source -> $common"
}

setup_hugepages() {
    local nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
    if [ -w "$nr" ] && [ "$(cat "$nr")" -lt "$HUGEPAGES_2M" ]; then
        echo "$HUGEPAGES_2M" > "$nr"
        log "reserved $(cat "$nr") hugepages of 2 MiB (asked for $HUGEPAGES_2M)"
    fi
    if ! mountpoint -q "$HUGE_MOUNT"; then
        mkdir -p "$HUGE_MOUNT"
        mount -t hugetlbfs -o pagesize=2M nodev "$HUGE_MOUNT"
        log "mounted hugetlbfs on $HUGE_MOUNT"
    fi
}

setup_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating venv $VENV from /usr/bin/python3 (--system-site-packages for bcc)"
        /usr/bin/python3 -m venv --system-site-packages "$VENV"
        "$VENV/bin/pip" install -q --upgrade pip
    fi
    # Rebuild only when a source of the package changed since the last install.
    local stamp="$VENV/.logcaster-installed"
    if [ ! -f "$stamp" ] || [ -n "$(find "$ROOT/pyproject.toml" "$ROOT/setup.py" "$ROOT/dpdk_shim" -newer "$stamp" -print -quit)" ] \
        || ! "$VENV/bin/python" -c 'import dpdk_shim._core' 2>/dev/null; then
        log "installing logcaster (editable) and building the cffi modules"
        (cd "$ROOT" && "$VENV/bin/pip" install -q -e '.[test]')
        touch "$stamp"
    fi
}

need_root
install_packages
install_kernel_headers
setup_hugepages
setup_venv
log "ready: $VENV"
