"""Which capture backend runs, and why (said at start-up).

`capture.backend: auto` picks DPDK for ports a DPDK driver owns (virtual
devices, PCI ports bound to vfio-pci/uio), AF_XDP for kernel interfaces when
BPF is allowed here, and the kernel-socket loop otherwise. A backend forced
in the config that cannot work here fails at start with the reason and the fix.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from appliance.config import Config
from appliance.errors import ConfigError, EnvironmentProblem

DPDK_DRIVERS = ("vfio-pci", "uio_pci_generic", "igb_uio")
PCI_ADDR = re.compile(r"^(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")


def pci_driver(addr: str, sysfs: str = "/sys") -> str | None:
    full = addr if addr.count(":") == 2 else f"0000:{addr}"
    link = Path(sysfs) / "bus" / "pci" / "devices" / full / "driver"
    return os.path.basename(os.readlink(link)) if link.is_symlink() else None


def dpdk_owns(port, sysfs: str = "/sys") -> tuple[bool, str]:
    if port.vdev:
        return True, f"{port.name} is a DPDK virtual device"
    if PCI_ADDR.match(port.name):
        driver = pci_driver(port.name, sysfs)
        if driver in DPDK_DRIVERS:
            return True, f"{port.name} is bound to {driver}"
        return False, f"{port.name} is bound to {driver or 'no driver'}, not a DPDK driver (see `logcaster ports`)"
    return False, f"{port.name} is not a PCI address or vdev"


def bpf_problem(sysfs: str = "/sys") -> str | None:
    """Why XDP cannot be used here, or None."""
    if os.geteuid() != 0:
        return "XDP needs root (CAP_BPF and CAP_NET_ADMIN)"
    try:
        import bcc  # noqa: F401
    except ImportError:
        return "bcc is not installed (Debian package python3-bpfcc; run `make setup`)"
    build = Path(f"/lib/modules/{os.uname().release}/build")
    if not build.exists():
        return f"no kernel headers at {build} for bcc (run `make setup`)"
    return None


def choose_backend(cfg: Config, sysfs: str = "/sys"):
    """(backend instance, reason) for this config on this machine."""
    wanted = cfg.capture.backend
    ports = cfg.capture.ports
    if wanted in ("dpdk", "auto"):
        owned = [dpdk_owns(p, sysfs) for p in ports]
        if all(ok for ok, _ in owned):
            from appliance.capture.dpdk import DpdkBackend

            return DpdkBackend(cfg, idle_spin_us=cfg.dpdk.idle_spin_us, idle_sleep_us=cfg.dpdk.idle_sleep_us), "; ".join(why for _, why in owned)
        if wanted == "dpdk":
            reason = next(why for ok, why in owned if not ok)
            raise ConfigError(f"capture.backend: dpdk cannot capture here: {reason}")
    kernel_ifaces = all((Path(sysfs) / "class" / "net" / p.name).exists() for p in ports)
    if wanted in ("afxdp", "auto") and kernel_ifaces:
        problem = bpf_problem(sysfs)
        if problem is None:
            from appliance.capture.afxdp import AfXdpBackend

            a = cfg.afxdp
            backend = AfXdpBackend(cfg, xdp_mode=a.xdp_mode, zerocopy=a.zerocopy, hugepages=a.hugepages,
                                   need_wakeup=a.need_wakeup, deny=a.deny, idle_spin_us=a.idle_spin_us,
                                   idle_sleep_ms=a.idle_sleep_ms)
            return backend, f"{', '.join(p.name for p in ports)}: kernel interface(s), BPF allowed"
        if wanted == "afxdp":
            raise EnvironmentProblem(f"capture.backend: afxdp cannot run here: {problem}")
    elif wanted == "afxdp":
        missing = next(p.name for p in ports if not (Path(sysfs) / "class" / "net" / p.name).exists())
        raise ConfigError(f"capture.backend: afxdp: no network interface {missing!r} here")
    from appliance.capture.sockets import SocketBackend

    why = "forced in the config" if wanted == "socket" else "neither DPDK nor XDP can take these ports here"
    return SocketBackend(cfg, rcvbuf=cfg.socket.rcvbuf), why
