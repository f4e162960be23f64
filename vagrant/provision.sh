#!/usr/bin/env bash
# The test VM's provisioning, one script for both VMs: the Vagrant box
# (vagrant/Vagrantfile) and the QEMU guest of `make vm-test`
# (vagrant/guest.py, tests/system/test_vm.py). What an operator does on a
# box with a spare NIC, as root, in the guest:
#
#   vagrant/provision.sh [--nic PCI|auto] [--driver uio_pci_generic|vfio-pci]
#                        [--hugepages N] [--wheelhouse DIR] [--no-start]
#
#   1. scripts/install.sh: packages (when missing), the service user, the
#      app in /opt/logcaster, units, N hugepages reserved (default 512)
#   2. the capture NIC (auto: the virtio NIC that does not carry the default
#      route): its interface taken down, bound to the DPDK driver with
#      `logcaster ports bind` (default uio_pci_generic: no IOMMU in a plain
#      VM; vfio-pci with a virtual IOMMU)
#   3. /etc/logcaster/logcaster.yaml: the installed template, capturing with
#      the dpdk backend on that port
#   4. the service started, when systemd runs and not --no-start
# Prints the NIC's PCI address on its last line (`nic: ADDR`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LC_LOG_TAG=provision
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

NIC=auto
DRIVER=uio_pci_generic
HUGEPAGES=512
INSTALL_ARGS=()
START=1
while [ $# -gt 0 ]; do
    case "$1" in
        --nic) NIC="${2:?}"; shift 2 ;;
        --driver) DRIVER="${2:?}"; shift 2 ;;
        --hugepages) HUGEPAGES="${2:?}"; shift 2 ;;
        --wheelhouse) INSTALL_ARGS+=(--wheelhouse "${2:?}"); shift 2 ;;
        --no-start) START=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "provision.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
lc_need_root
LOGCASTER=/opt/logcaster/venv/bin/logcaster

bash "$ROOT/scripts/install.sh" --hugepages "$HUGEPAGES" --no-start "${INSTALL_ARGS[@]}"

if [ "$NIC" = auto ]; then
    NIC="$("$LOGCASTER" ports list --json | /usr/bin/python3 -c '
import json, sys
ports = json.load(sys.stdin)["ports"]
spare = [p["pci"] for p in ports if p["vendor"] == "1af4" and not p["default_route"]]
if not spare:
    sys.exit("provision.sh: no virtio NIC without the default route (the capture NIC) in `logcaster ports list`")
print(spare[-1])')"
fi
lc_log "capture NIC: $NIC"
for iface in $("$LOGCASTER" ports list --json | /usr/bin/python3 -c '
import json, sys
print(" ".join(i for p in json.load(sys.stdin)["ports"] if p["pci"] == sys.argv[1] for i in p["up"]))' "$NIC"); do
    ip link set "$iface" down
    lc_log "took $iface down (the kernel gives it up to DPDK)"
done
# Its MAC, for the hosts that send to it (DPDK answers no ARP: vagrant/smoke.sh sets a neighbour entry)
MAC="$(cat /sys/bus/pci/devices/"$NIC"/net/*/address /sys/bus/pci/devices/"$NIC"/virtio*/net/*/address 2>/dev/null \
       | head -n1 || true)"
[ -z "$MAC" ] || echo "$MAC" > /var/lib/logcaster/capture-nic.mac
"$LOGCASTER" ports bind "$NIC" --driver "$DRIVER" --group logcaster

# What the service needs beyond its unit for a PCI port, measured in the test
# VM (tests/system/test_vm.py, docs/PRIVILEGES.md): under uio, physical
# addresses (CAP_SYS_ADMIN), the virtio PMD's I/O ports (CAP_SYS_RAWIO and
# the iopl system call), and writing the device's sysfs files (so /sys
# stays writable: no ProtectKernelTunables). vfio-pci needs none of it.
DROPIN=/etc/systemd/system/logcaster.service.d/dpdk-pci.conf
if [ "$DRIVER" = uio_pci_generic ]; then
    mkdir -p "$(dirname "$DROPIN")"
    printf '%s\n' "# Written by vagrant/provision.sh: a DPDK port on a PCI device under uio_pci_generic." \
        "[Service]" "AmbientCapabilities=CAP_SYS_ADMIN CAP_SYS_RAWIO" \
        "CapabilityBoundingSet=CAP_SYS_ADMIN CAP_SYS_RAWIO" "SystemCallFilter=@raw-io" \
        "ProtectKernelTunables=no" > "$DROPIN"
    chmod 0644 "$DROPIN"
else
    rm -f "$DROPIN"
fi

/usr/bin/python3 - "$ROOT/scripts/logcaster.yaml" "$NIC" > /etc/logcaster/logcaster.yaml.new <<'EOF'
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
cfg["capture"] = {"backend": "dpdk", "ports": [{"name": sys.argv[2]}], "udp_ports": [514]}
print("# The installed template (scripts/logcaster.yaml), capturing on the VM's spare NIC with DPDK;")
print("# written by vagrant/provision.sh.")
print(yaml.safe_dump(cfg, sort_keys=False), end="")
EOF
install -m 0640 -o root -g logcaster /etc/logcaster/logcaster.yaml.new /etc/logcaster/logcaster.yaml
rm -f /etc/logcaster/logcaster.yaml.new

if [ "$START" = 1 ] && [ -d /run/systemd/system ]; then
    systemctl restart logcaster
    lc_log "started logcaster.service"
fi
echo "nic: $NIC"
