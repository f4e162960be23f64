"""Network PCI devices and their drivers, like dpdk-devbind.py: list them,
bind one to a DPDK driver (vfio-pci, uio_pci_generic, igb_uio), give it back
to its kernel driver, or unbind it.

A device whose interface carries the default route is never touched, even
with --force; one whose interface is up or has routes is touched only with
--force, and the refusal names the routes. A driver that is not loaded is
loaded (modprobe) first, or the error names the module; a bind the new
driver does not complete gives the device back to the driver it had. The
sysfs and procfs roots are parameters so every write is tested against a
fake tree; all writes go through `write_attr`, module loads through
`load_module`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from appliance.errors import ConfigError, EnvironmentProblem

DPDK_DRIVERS = ("vfio-pci", "uio_pci_generic", "igb_uio")
PCI_ADDR = re.compile(r"^(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
SYSFS_ROOT = "/sys"
PROC_ROOT = "/proc"
PCI_CLASS_NETWORK = 0x02
IFF_UP = 0x1
_DRIVER_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Port:
    pci: str
    vendor: str | None              # "1af4"
    device: str | None              # "1000"
    driver: str | None
    interfaces: tuple[str, ...]     # kernel interfaces (none while a DPDK driver holds it)
    up: tuple[str, ...]             # those of `interfaces` that are administratively up
    default_route: tuple[str, ...]  # those of `interfaces` that carry the default route
    numa_node: int | None

    @property
    def dpdk(self) -> bool:
        return self.driver in DPDK_DRIVERS

    def as_dict(self) -> dict:
        return {**asdict(self), "dpdk": self.dpdk}


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def write_attr(path: Path, text: str) -> None:
    """Write one sysfs attribute (tests replace this to play the kernel)."""
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as exc:
        raise EnvironmentProblem(f"writing {text.strip() or 'an empty line'!r} to {path}", errno=exc.errno) from exc


def full_pci(addr: str) -> str:
    if not PCI_ADDR.match(addr):
        raise ConfigError(f"{addr!r} is not a PCI address (like 0000:00:04.0)")
    return addr.lower() if addr.count(":") == 2 else f"0000:{addr.lower()}"


def default_route_ifaces(proc_root: str | Path = PROC_ROOT) -> frozenset[str]:
    """Interfaces with a default route: destination 00000000 in <proc>/net/route
    (IPv4), ::/0 in <proc>/net/ipv6_route (IPv6; the kernel's unreachable
    default on lo aside)."""
    path = Path(proc_root) / "net/route"
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError as exc:
        raise EnvironmentProblem(f"cannot read the routing table {path}", errno=exc.errno) from exc
    out = {f[0] for f in (line.split() for line in lines) if len(f) > 1 and f[1] == "00000000"}
    try:
        v6 = (Path(proc_root) / "net/ipv6_route").read_text().splitlines()
    except OSError:                     # no IPv6 here
        v6 = []
    out |= {f[9] for f in (line.split() for line in v6)
            if len(f) == 10 and f[0] == "0" * 32 and f[1] == "00" and f[9] != "lo"}
    return frozenset(out)


def routes_via(ifaces: tuple[str, ...], proc_root: str | Path = PROC_ROOT) -> list[str]:
    """The routes (IPv4 and IPv6, as `ip route` writes them) that leave by
    one of `ifaces`; IPv6 link-local and multicast, which every interface
    that is up has, left out."""
    if not ifaces:
        return []
    out = []
    try:
        lines = (Path(proc_root) / "net/route").read_text().splitlines()[1:]
    except OSError as exc:
        raise EnvironmentProblem(f"cannot read the routing table {Path(proc_root) / 'net/route'}",
                                 errno=exc.errno) from exc
    for f in (line.split() for line in lines):
        if len(f) > 7 and f[0] in ifaces:
            dst = ipaddress.IPv4Address(bytes.fromhex(f[1])[::-1])
            bits = bin(int.from_bytes(bytes.fromhex(f[7])[::-1], "big")).count("1")
            out.append(f"{'default' if not bits else f'{dst}/{bits}'} dev {f[0]}")
    try:
        v6 = (Path(proc_root) / "net/ipv6_route").read_text().splitlines()
    except OSError:
        v6 = []
    for f in (line.split() for line in v6):
        if len(f) == 10 and f[9] in ifaces:
            net = ipaddress.IPv6Network((bytes.fromhex(f[0]), int(f[1], 16)), strict=False)
            if not (net.is_link_local or net.is_multicast):
                out.append(f"{'default' if net.prefixlen == 0 else net} dev {f[9]}")
    return out


def load_module(name: str) -> str | None:
    """modprobe `name`; None when it loaded, else what modprobe said."""
    try:
        proc = subprocess.run(["modprobe", name], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if proc.returncode == 0 else (proc.stderr.strip() or f"exit code {proc.returncode}")


def loaded_dpdk_drivers(sysfs_root: str | Path = SYSFS_ROOT) -> tuple[str, ...]:
    drivers = Path(sysfs_root) / "bus/pci/drivers"
    return tuple(d for d in DPDK_DRIVERS if (drivers / d).is_dir())


def _driver(device: Path) -> str | None:
    link = device / "driver"
    return os.path.basename(os.readlink(link)) if link.is_symlink() else None


def _iface_dirs(device: Path) -> list[Path]:
    # virtio-net hangs its interface off a virtioN child of the PCI function.
    return sorted([*device.glob("net/*"), *device.glob("virtio*/net/*")], key=lambda p: p.name)


def interfaces_of(addr: str, sysfs_root: str | Path = SYSFS_ROOT) -> tuple[str, ...]:
    """The kernel interfaces of the PCI device at `addr` (none while a DPDK driver holds it)."""
    return tuple(p.name for p in _iface_dirs(Path(sysfs_root) / "bus/pci/devices" / full_pci(addr)))


def _is_network(device: Path) -> bool:
    text = _read(device / "class")
    try:
        return text is not None and int(text, 16) >> 16 == PCI_CLASS_NETWORK
    except ValueError:
        return False


def _port(device: Path, routes: frozenset[str]) -> Port:
    ifaces = _iface_dirs(device)
    names = tuple(p.name for p in ifaces)
    up = tuple(p.name for p in ifaces if int(_read(p / "flags") or "0", 16) & IFF_UP)
    node = _read(device / "numa_node")
    vendor, dev = _read(device / "vendor"), _read(device / "device")
    return Port(pci=device.name, vendor=vendor.removeprefix("0x") if vendor else None,
                device=dev.removeprefix("0x") if dev else None, driver=_driver(device), interfaces=names,
                up=up, default_route=tuple(n for n in names if n in routes),
                numa_node=int(node) if node and int(node) >= 0 else None)


def list_ports(sysfs_root: str | Path = SYSFS_ROOT, proc_root: str | Path = PROC_ROOT) -> list[Port]:
    """Every network-class PCI function, sorted by address."""
    devices = Path(sysfs_root) / "bus/pci/devices"
    routes = default_route_ifaces(proc_root)
    found = sorted(devices.iterdir(), key=lambda p: p.name) if devices.is_dir() else []
    return [_port(d, routes) for d in found if _is_network(d)]


def get_port(addr: str, sysfs_root: str | Path = SYSFS_ROOT, proc_root: str | Path = PROC_ROOT) -> Port:
    pci = full_pci(addr)
    device = Path(sysfs_root) / "bus/pci/devices" / pci
    if not device.exists():
        raise ConfigError(f"no PCI device {pci} (see `logcaster ports list`)")
    if not _is_network(device):
        raise ConfigError(f"{pci} is not a network device (PCI class {_read(device / 'class')})")
    return _port(device, default_route_ifaces(proc_root))


def _check_may_change(port: Port, force: bool, doing: str, proc_root: str | Path = PROC_ROOT) -> None:
    if port.default_route:
        raise EnvironmentProblem(f"refusing to {doing} {port.pci}: its interface {', '.join(port.default_route)} "
                                 f"carries the default route (this machine's own link; --force does not apply)")
    if force:
        return
    routes = routes_via(port.interfaces, proc_root)
    if port.up or routes:
        why = [f"interface {', '.join(port.up)} is up"] if port.up else []
        if routes:
            why.append(f"routes leave by it: {'; '.join(routes)}")
        first = (port.up or port.interfaces)[0]
        raise EnvironmentProblem(f"refusing to {doing} {port.pci}: {', '.join(why)} (`ip link set {first} down` "
                                 f"and remove its routes first, or --force)")


def unbind(addr: str, *, force: bool = False, sysfs_root: str | Path = SYSFS_ROOT,
           proc_root: str | Path = PROC_ROOT) -> str:
    """Detach the device from its driver. Returns what was done."""
    port = get_port(addr, sysfs_root, proc_root)
    _check_may_change(port, force, "unbind", proc_root)
    if port.driver is None:
        return f"{port.pci} has no driver: nothing to do"
    device = Path(sysfs_root) / "bus/pci/devices" / port.pci
    write_attr(device / "driver/unbind", port.pci)
    if _driver(device) is not None:
        raise EnvironmentProblem(f"{port.pci} is still bound to {_driver(device)} after unbind (see dmesg)")
    return f"{port.pci} unbound from {port.driver}"


def bind(addr: str, driver: str, *, force: bool = False, group: str | None = None,
         sysfs_root: str | Path = SYSFS_ROOT, proc_root: str | Path = PROC_ROOT, dev_root: str | Path = "/dev") -> str:
    """Bind the device to `driver` (a DPDK driver, or a kernel driver to give
    it back): load the driver's module if needed, unbind, driver_override,
    drivers_probe, clear the override. When the driver does not take the
    device, it goes back to the driver it had (and the error says so).
    `group`: bound to a DPDK driver, the files DPDK opens for it are made
    readable and writable by that group (the service's: it does not run as
    root; see grant_group)."""
    if not _DRIVER_NAME.match(driver):
        raise ConfigError(f"{driver!r} is not a driver name")
    port = get_port(addr, sysfs_root, proc_root)
    _check_may_change(port, force, f"bind to {driver}", proc_root)
    drivers = Path(sysfs_root) / "bus/pci/drivers"
    if not (drivers / driver).is_dir():
        problem = load_module(driver)
        if not (drivers / driver).is_dir():
            said = f"modprobe {driver}: {problem}" if problem else f"modprobe {driver} loaded no driver {driver}"
            raise EnvironmentProblem(f"driver {driver} is not loaded and could not be ({said})")
    if port.driver == driver:
        return f"{port.pci} is already bound to {driver}: nothing to do"
    device = Path(sysfs_root) / "bus/pci/devices" / port.pci
    _probe(device, port.pci, driver, sysfs_root, unbind_from=port.driver)
    now = _driver(device)
    if now != driver:
        back = ""
        if port.driver is not None and now != port.driver:     # give it back to the driver it had
            try:
                _probe(device, port.pci, port.driver, sysfs_root, unbind_from=now)
            except EnvironmentProblem:
                pass
            back = (f"; given back to {port.driver}" if _driver(device) == port.driver
                    else f"; giving it back to {port.driver} failed too")
        raise EnvironmentProblem(f"{driver} did not take {port.pci} (it had {now or 'no driver'} then; see dmesg"
                                 + ("; vfio-pci needs an IOMMU (a VM: q35 with intel-iommu)" if driver == "vfio-pci"
                                    else "") + ")" + back)
    was = f" (was {port.driver})" if port.driver else ""
    granted = ""
    if group and driver in DPDK_DRIVERS:
        files = grant_group(port.pci, group, sysfs_root=sysfs_root, dev_root=dev_root)
        granted = f"; group {group} may use it ({', '.join(files)})"
    return f"{port.pci} bound to {driver}{was}{granted}"


def device_files(addr: str, sysfs_root: str | Path = SYSFS_ROOT, dev_root: str | Path = "/dev") -> list[Path]:
    """What DPDK opens for a device bound to a DPDK driver (measured in the
    test VM as a non-root service, tests/system/test_vm.py): uio: /dev/uioN
    and the device's config and resource* files in sysfs; vfio-pci:
    /dev/vfio/<IOMMU group>."""
    device = Path(sysfs_root) / "bus/pci/devices" / full_pci(addr)
    driver = _driver(device)
    if driver in ("uio_pci_generic", "igb_uio"):
        uio = sorted((device / "uio").glob("uio*"))
        return ([Path(dev_root) / u.name for u in uio] + [device / "config"]
                + sorted(p for p in device.glob("resource*") if p.name != "resource"))
    if driver == "vfio-pci":
        group = device / "iommu_group"
        return [Path(dev_root) / "vfio" / os.path.basename(os.readlink(group))] if group.is_symlink() else []
    return []


def grant_group(addr: str, group: str, *, sysfs_root: str | Path = SYSFS_ROOT, dev_root: str | Path = "/dev") -> list[str]:
    """chgrp `group` and g+rw on device_files(): what lets the service user
    (not root) drive the port. Lasts until the device is unbound or the
    machine restarts, as the binding does."""
    import grp

    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f"--group {group}: no such group") from None
    done = []
    for path in device_files(addr, sysfs_root, dev_root):
        try:
            os.chown(path, -1, gid)
            os.chmod(path, (os.stat(path).st_mode & 0o7777) | 0o060)
        except OSError as exc:
            raise EnvironmentProblem(f"giving group {group} the use of {path}", errno=exc.errno) from exc
        done.append(path.name if path.parent.name != "vfio" else str(path))
    return done


def _probe(device: Path, pci: str, driver: str, sysfs_root: str | Path, *, unbind_from: str | None) -> None:
    """Unbind from the current driver, then offer the device to `driver` only."""
    if unbind_from is not None:
        write_attr(device / "driver/unbind", pci)
    write_attr(device / "driver_override", driver)
    try:
        write_attr(Path(sysfs_root) / "bus/pci/drivers_probe", pci)
    finally:
        write_attr(device / "driver_override", "\n")
