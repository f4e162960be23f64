"""Which capture backend runs, and why (said at start-up).

`capture.backend: auto` picks DPDK for ports a DPDK driver owns (virtual
devices, PCI ports bound to vfio-pci/uio), AF_XDP for kernel interfaces (a
PCI address whose device a kernel driver holds means its interface) when
this host allows it (appliance/probe.py decides: capabilities, bcc, kernel
headers, locked memory, the built module), and the kernel-socket loop
otherwise. A backend forced in the config that cannot work here fails at
start with the reason and the fix.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from appliance import probe
from appliance.config import Config
from appliance.errors import ConfigError, EnvironmentProblem
from appliance.ports import DPDK_DRIVERS, PCI_ADDR, interfaces_of


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


def kernel_interface(name: str, sysfs: str = "/sys") -> str | None:
    """The kernel interface a port name means: the interface itself, or the
    (first) interface of a PCI device a kernel driver holds; None if none."""
    if (Path(sysfs) / "class" / "net" / name).exists():
        return name
    if PCI_ADDR.match(name) and pci_driver(name, sysfs) not in (*DPDK_DRIVERS, None):
        found = interfaces_of(name, sysfs)
        return found[0] if found else None
    return None


def choose_backend(cfg: Config, sysfs: str = "/sys", host: probe.Host | None = None):
    """(backend instance, reason) for this config on this machine; `host`
    replaces the probe of this machine (tests)."""
    wanted = cfg.capture.backend
    ports = cfg.capture.ports
    if wanted in ("dpdk", "auto"):
        owned = [dpdk_owns(p, sysfs) for p in ports]
        if all(ok for ok, _ in owned):
            from appliance.capture.dpdk import DpdkBackend

            return DpdkBackend(cfg), "; ".join(why for _, why in owned)
        if wanted == "dpdk":
            reason = next(why for ok, why in owned if not ok)
            raise ConfigError(f"capture.backend: dpdk cannot capture here: {reason}")
    ifaces = [kernel_interface(p.name, sysfs) for p in ports]
    problem = None
    if wanted in ("afxdp", "auto") and all(ifaces):
        problem = (host or probe.probe()).bpf_problem()
        if problem is None:
            from appliance.capture.afxdp import AfXdpBackend

            named = [p.name if p.name == i else f"{p.name} is {i}" for p, i in zip(ports, ifaces)]
            on_ifaces = dataclasses.replace(cfg, capture=dataclasses.replace(cfg.capture, ports=tuple(
                dataclasses.replace(p, name=i) for p, i in zip(ports, ifaces))))
            return AfXdpBackend(on_ifaces), f"{', '.join(named)}: kernel interface(s), AF_XDP allowed here"
        if wanted == "afxdp":
            raise EnvironmentProblem(f"capture.backend: afxdp cannot run here: {problem}")
    elif wanted == "afxdp":
        missing = next(p.name for p, i in zip(ports, ifaces) if not i)
        raise ConfigError(f"capture.backend: afxdp: no network interface {missing!r} here")
    from appliance.capture.sockets import SocketBackend

    if wanted == "socket":
        why = "forced in the config"
    elif problem:
        why = f"AF_XDP is not possible here: {problem}"
    else:
        why = "neither DPDK nor XDP can take these ports here"
    return SocketBackend(cfg, sysfs=sysfs), why
