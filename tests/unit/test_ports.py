"""`logcaster ports` against a fake sysfs: listing, every refusal, and the
exact sysfs writes of bind/unbind. Nothing here touches the real /sys."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from appliance import ports as pt
from appliance.cli import exitcodes
from appliance.cli.main import main
from appliance.errors import ConfigError, EnvironmentProblem

ROUTE = "0000:00:03.0"   # eth0, default route
UP = "0000:00:04.0"      # ens4, up, e1000e
DOWN = "0000:00:05.0"    # ens5, down, e1000e
BRIDGE = "0000:00:01.0"  # not a network device


class FakePci:
    """A fake sysfs with 3 NICs and a host bridge, plus /proc/net/route."""

    def __init__(self, tmp_path: Path, drivers=("virtio-pci", "e1000e", "vfio-pci", "uio_pci_generic")):
        self.sys = tmp_path / "sys"
        self.proc = tmp_path / "proc"
        self.writes: list[tuple[str, str]] = []
        for name in drivers:
            d = self.sys / "bus/pci/drivers" / name
            d.mkdir(parents=True)
            (d / "bind").write_text("")
            (d / "unbind").write_text("")
        (self.sys / "bus/pci/drivers_probe").write_text("")
        self.device(ROUTE, "virtio-pci", iface="eth0", up=True, virtio=True)
        self.device(UP, "e1000e", iface="ens4", up=True)
        self.device(DOWN, "e1000e", iface="ens5", up=False, numa_node=1)
        self.device(BRIDGE, None, pci_class="0x060000")
        (self.proc / "net").mkdir(parents=True)
        (self.proc / "net/route").write_text(
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
            "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
            "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
            "ens4\t000A0A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")

    def dev(self, addr: str) -> Path:
        return self.sys / "devices/pci0000:00" / addr

    def device(self, addr, driver, *, iface=None, up=False, virtio=False, numa_node=-1, pci_class="0x020000"):
        dev = self.dev(addr)
        dev.mkdir(parents=True)
        for name, text in (("class", pci_class), ("vendor", "0x8086"), ("device", "0x10d3"),
                           ("numa_node", str(numa_node)), ("driver_override", "(null)")):
            (dev / name).write_text(text + "\n")
        link = self.sys / "bus/pci/devices" / addr
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(dev, link.parent))
        self.point(addr, driver)
        if iface:
            net = (dev / "virtio0" if virtio else dev) / "net" / iface
            net.mkdir(parents=True)
            (net / "flags").write_text("0x1003\n" if up else "0x1002\n")

    def point(self, addr: str, driver: str | None) -> None:
        """Re-point the device's driver symlink, as the kernel would."""
        link = self.dev(addr) / "driver"
        if link.is_symlink():
            link.unlink()
        if driver:
            link.symlink_to(os.path.relpath(self.sys / "bus/pci/drivers" / driver, link.parent))

    def driver(self, addr: str) -> str | None:
        link = self.dev(addr) / "driver"
        return os.path.basename(os.readlink(link)) if link.is_symlink() else None

    def install(self, monkeypatch, probe_works: bool = True, refuse: tuple[str, ...] = (),
                modules: tuple[str, ...] = ()) -> FakePci:
        """Play the kernel: writes move the driver links (no driver takes a
        device when not probe_works; those in `refuse` never do); `modules`
        are the driver modules modprobe can load (nothing runs for real)."""
        real = pt.write_attr
        self.loaded: list[str] = []

        def load(name: str) -> str | None:
            self.loaded.append(name)
            if name not in modules:
                return f"modprobe: FATAL: Module {name} not found in directory /lib/modules/6.1.0-99-amd64"
            d = self.sys / "bus/pci/drivers" / name
            d.mkdir(parents=True)
            (d / "bind").write_text("")
            (d / "unbind").write_text("")
            return None

        def write(path: Path, text: str) -> None:
            rel = str(Path(path).resolve().relative_to(self.sys.resolve()))
            real(path, text)          # the real code writes the plain fake file
            self.writes.append((rel, text))
            if rel.endswith("/unbind"):
                self.point(text, None)
            elif rel == "bus/pci/drivers_probe" and probe_works:
                wanted = (self.dev(text) / "driver_override").read_text().strip()
                if wanted in refuse:
                    return
                self.point(text, wanted)
                if wanted in pt.DPDK_DRIVERS:   # a DPDK driver takes the netdev away
                    for net in self.dev(text).glob("**/net"):
                        for child in net.iterdir():
                            (child / "flags").unlink()
                            child.rmdir()

        monkeypatch.setattr(pt, "write_attr", write)
        monkeypatch.setattr(pt, "load_module", load)
        return self

    @property
    def roots(self) -> dict:
        return {"sysfs_root": str(self.sys), "proc_root": str(self.proc)}

    def cli(self, *args: str) -> list[str]:
        return ["ports", "--sysfs-root", str(self.sys), "--proc-root", str(self.proc), *args]


@pytest.fixture
def fake(tmp_path, monkeypatch) -> FakePci:
    return FakePci(tmp_path).install(monkeypatch)


# -- list ------------------------------------------------------------------

def test_list_finds_the_three_nics_with_state(fake):
    ports = {p.pci: p for p in pt.list_ports(**fake.roots)}
    assert sorted(ports) == [ROUTE, UP, DOWN]  # the bridge is not a network device
    assert ports[ROUTE].interfaces == ("eth0",) and ports[ROUTE].default_route == ("eth0",)
    assert ports[ROUTE].driver == "virtio-pci" and ports[ROUTE].numa_node is None
    assert ports[UP].up == ("ens4",) and ports[UP].default_route == ()
    assert ports[DOWN].up == () and ports[DOWN].numa_node == 1 and not ports[DOWN].dpdk
    assert pt.loaded_dpdk_drivers(fake.sys) == ("vfio-pci", "uio_pci_generic")


def test_list_cli_table_and_json(fake, capsys):
    assert main(fake.cli("list")) == exitcodes.OK
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["PCI", "ID", "DRIVER", "INTERFACE", "NODE", "STATE"]
    assert out[1].split() == [ROUTE, "8086:10d3", "virtio-pci", "eth0", "-", "default", "route,", "up"]
    assert out[2].split() == [UP, "8086:10d3", "e1000e", "ens4", "-", "up"]
    assert out[3].split() == [DOWN, "8086:10d3", "e1000e", "ens5", "1", "down"]
    assert out[4] == "DPDK drivers loaded: vfio-pci, uio_pci_generic"
    assert main(fake.cli("list", "--json")) == exitcodes.OK
    data = json.loads(capsys.readouterr().out)
    assert [p["pci"] for p in data["ports"]] == [ROUTE, UP, DOWN]
    assert data["ports"][0]["default_route"] == ["eth0"] and data["dpdk_drivers_loaded"] == ["vfio-pci",
                                                                                           "uio_pci_generic"]


def test_list_says_modprobe_when_no_dpdk_driver_is_loaded(tmp_path, monkeypatch, capsys):
    fake = FakePci(tmp_path, drivers=("virtio-pci", "e1000e"))
    assert main(fake.cli("list")) == exitcodes.OK
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("DPDK drivers loaded: none") and "modprobe vfio-pci" in last


# -- refusals (no write at all) ---------------------------------------------

@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("action", ["unbind", "bind-dpdk", "bind-kernel"])
def test_never_touches_the_default_route_even_with_force(fake, action, force):
    with pytest.raises(EnvironmentProblem, match="eth0 carries the default route"):
        if action == "unbind":
            pt.unbind(ROUTE, force=force, **fake.roots)
        else:
            pt.bind(ROUTE, "vfio-pci" if action == "bind-dpdk" else "virtio-pci", force=force, **fake.roots)
    assert fake.writes == [] and fake.driver(ROUTE) == "virtio-pci"


def test_default_route_refusal_exits_4_with_one_line(fake, capsys):
    assert main(fake.cli("bind", "00:03.0", "--driver", "vfio-pci", "--force")) == exitcodes.ENVIRONMENT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing" in err and "default route" in err
    assert fake.writes == []


def test_refuses_an_up_interface_without_force(fake):
    with pytest.raises(EnvironmentProblem, match="ens4 is up"):
        pt.bind(UP, "vfio-pci", **fake.roots)
    with pytest.raises(EnvironmentProblem, match="ens4 is up"):
        pt.unbind(UP, **fake.roots)
    assert fake.writes == []


@pytest.mark.parametrize("addr, why", [("0000:00:09.0", "no PCI device 0000:00:09.0"),
                                       (BRIDGE, "not a network device"),
                                       ("eth0", "not a PCI address"),
                                       ("../../x", "not a PCI address")])
def test_refuses_missing_or_non_network_devices(fake, addr, why):
    with pytest.raises(ConfigError, match=why):
        pt.bind(addr, "vfio-pci", **fake.roots)
    with pytest.raises(ConfigError, match=why):
        pt.unbind(addr, **fake.roots)
    assert fake.writes == []


def test_missing_device_exits_2(fake, capsys):
    assert main(fake.cli("unbind", "0000:00:09.0")) == exitcodes.USAGE
    assert "no PCI device" in capsys.readouterr().err


def test_a_driver_that_is_not_loaded_is_loaded_or_named(tmp_path, monkeypatch):
    fake = FakePci(tmp_path, drivers=("virtio-pci", "e1000e")).install(monkeypatch, modules=("uio_pci_generic",))
    assert pt.bind(DOWN, "uio_pci_generic", **fake.roots) == f"{DOWN} bound to uio_pci_generic (was e1000e)"
    assert fake.loaded == ["uio_pci_generic"] and fake.driver(DOWN) == "uio_pci_generic"
    fake.writes.clear()
    with pytest.raises(EnvironmentProblem, match=r"driver igb_uio is not loaded and could not be "
                                                 r"\(modprobe igb_uio: modprobe: FATAL: Module igb_uio not found"):
        pt.bind(DOWN, "igb_uio", **fake.roots)
    with pytest.raises(ConfigError, match="not a driver name"):
        pt.bind(DOWN, "../vfio-pci", **fake.roots)
    assert fake.writes == [] and fake.driver(DOWN) == "uio_pci_generic"


def test_routes_are_named_and_refused_without_force(fake):
    """ens5 is down but a route still leaves by it (IPv4 and IPv6)."""
    with open(fake.proc / "net/route", "a") as f:
        f.write("ens5\t000012C6\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n")
    (fake.proc / "net/ipv6_route").write_text(
        "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 "
        "00000000000000000000000000000000 00000100 00000001 00000000 00000001 ens5\n"
        "20010db8001800000000000000000000 40 00000000000000000000000000000000 00 "
        "00000000000000000000000000000000 00000100 00000001 00000000 00000001 ens5\n")
    with pytest.raises(EnvironmentProblem) as e:
        pt.bind(DOWN, "vfio-pci", **fake.roots)
    assert "routes leave by it: 198.18.0.0/16 dev ens5; 2001:db8:18::/64 dev ens5" in str(e.value)
    assert "fe80" not in str(e.value) and "is up" not in str(e.value)
    assert fake.writes == []
    assert pt.bind(DOWN, "vfio-pci", force=True, **fake.roots).endswith("bound to vfio-pci (was e1000e)")


# -- bind / unbind ----------------------------------------------------------

def test_bind_to_dpdk_then_give_back_then_unbind(fake, capsys):
    dev = f"devices/pci0000:00/{DOWN}"
    assert main(fake.cli("bind", DOWN, "--driver", "vfio-pci")) == exitcodes.OK
    assert capsys.readouterr().out.strip() == f"{DOWN} bound to vfio-pci (was e1000e)"
    assert fake.writes == [("bus/pci/drivers/e1000e/unbind", DOWN), (f"{dev}/driver_override", "vfio-pci"),
                           ("bus/pci/drivers_probe", DOWN), (f"{dev}/driver_override", "\n")]
    assert (fake.sys / "bus/pci/drivers/e1000e/unbind").read_text() == DOWN
    assert (fake.sys / "bus/pci/drivers_probe").read_text() == DOWN
    assert (fake.dev(DOWN) / "driver_override").read_text() == "\n"
    port = next(p for p in pt.list_ports(**fake.roots) if p.pci == DOWN)
    assert port.driver == "vfio-pci" and port.dpdk and port.interfaces == ()

    fake.writes.clear()
    assert pt.bind(DOWN, "e1000e", **fake.roots) == f"{DOWN} bound to e1000e (was vfio-pci)"
    assert fake.writes == [("bus/pci/drivers/vfio-pci/unbind", DOWN), (f"{dev}/driver_override", "e1000e"),
                           ("bus/pci/drivers_probe", DOWN), (f"{dev}/driver_override", "\n")]
    assert fake.driver(DOWN) == "e1000e"

    fake.writes.clear()
    assert pt.unbind(DOWN, **fake.roots) == f"{DOWN} unbound from e1000e"
    assert fake.writes == [("bus/pci/drivers/e1000e/unbind", DOWN)] and fake.driver(DOWN) is None
    fake.writes.clear()
    assert "nothing to do" in pt.unbind(DOWN, **fake.roots) and fake.writes == []

    # from no driver: no unbind write
    assert pt.bind(DOWN, "uio_pci_generic", **fake.roots) == f"{DOWN} bound to uio_pci_generic"
    assert [w[0] for w in fake.writes] == [f"{dev}/driver_override", "bus/pci/drivers_probe",
                                           f"{dev}/driver_override"]


def test_force_takes_an_up_interface_and_already_bound_is_a_no_op(fake):
    assert pt.bind(UP, "vfio-pci", force=True, **fake.roots) == f"{UP} bound to vfio-pci (was e1000e)"
    assert fake.driver(UP) == "vfio-pci" and len(fake.writes) == 4
    fake.writes.clear()
    assert "already bound" in pt.bind(UP, "vfio-pci", **fake.roots) and fake.writes == []


def test_a_failed_bind_gives_the_device_back(tmp_path, monkeypatch):
    """vfio-pci does not take the device (no IOMMU): it goes back to e1000e."""
    fake = FakePci(tmp_path).install(monkeypatch, refuse=("vfio-pci",))
    with pytest.raises(EnvironmentProblem, match=r"vfio-pci did not take .* no driver then.*IOMMU.*; "
                                                 r"given back to e1000e"):
        pt.bind(DOWN, "vfio-pci", **fake.roots)
    assert fake.driver(DOWN) == "e1000e"
    assert fake.writes[-1] == (f"devices/pci0000:00/{DOWN}/driver_override", "\n")
    assert [w for w in fake.writes if w[0].endswith("driver_override")] == [
        (f"devices/pci0000:00/{DOWN}/driver_override", "vfio-pci"), (f"devices/pci0000:00/{DOWN}/driver_override", "\n"),
        (f"devices/pci0000:00/{DOWN}/driver_override", "e1000e"), (f"devices/pci0000:00/{DOWN}/driver_override", "\n")]


def test_when_no_driver_takes_it_the_error_says_so(tmp_path, monkeypatch):
    fake = FakePci(tmp_path).install(monkeypatch, probe_works=False)
    with pytest.raises(EnvironmentProblem, match="vfio-pci did not take .* no driver then.*giving it back to e1000e "
                                                 "failed too"):
        pt.bind(DOWN, "vfio-pci", **fake.roots)
    assert fake.writes[-1] == (f"devices/pci0000:00/{DOWN}/driver_override", "\n")


def test_unreadable_routing_table_refuses(fake):
    (fake.proc / "net/route").unlink()
    with pytest.raises(EnvironmentProblem, match="routing table"):
        pt.unbind(DOWN, **fake.roots)
    assert fake.writes == []


def test_auto_takes_dpdk_while_bound_and_afxdp_on_the_interface_once_given_back(fake):
    """A PCI address in the config: DPDK while a DPDK driver holds the
    device, AF_XDP on its kernel interface when the kernel has it back."""
    from appliance import probe
    from appliance.capture.select import choose_backend
    from appliance.config import from_dict

    cfg = from_dict({"capture": {"backend": "auto", "ports": [DOWN]}, "sinks": ["null"]})
    (fake.sys / "modules/6.1.0-99-amd64/build").mkdir(parents=True)     # kernel headers for bcc
    host = probe.probe(caps=-1, importer=lambda name: None, shim=lambda name: None, memlock=-1,
                       modules_root=fake.sys / "modules", kernel_release="6.1.0-99-amd64")
    assert host.bpf_problem() is None
    backend, why = choose_backend(cfg, sysfs=str(fake.sys), host=host)
    assert backend.name == "afxdp" and backend.cfg.capture.ports[0].name == "ens5", why
    assert why.startswith(f"{DOWN} is ens5: kernel interface")
    pt.bind(DOWN, "uio_pci_generic", **fake.roots)
    backend, why = choose_backend(cfg, sysfs=str(fake.sys), host=host)
    assert backend.name == "dpdk" and why == f"{DOWN} is bound to uio_pci_generic"


def test_bind_with_a_group_lets_that_group_use_the_device(fake, tmp_path):
    """What DPDK opens for a uio-bound device (/dev/uioN, config, resource*;
    measured in the test VM) is given to the service's group, nothing else."""
    import grp

    dev_root = tmp_path / "dev"
    dev_root.mkdir()
    (dev_root / "uio0").write_text("")
    device = fake.dev(DOWN)
    (device / "uio/uio0").mkdir(parents=True)
    for name in ("config", "resource", "resource0", "resource1"):
        (device / name).write_text("")
        (device / name).chmod(0o600)
    (dev_root / "uio0").chmod(0o600)
    group = grp.getgrgid(os.getgid() if os.getuid() else 65534).gr_name
    out = pt.bind(DOWN, "uio_pci_generic", group=group, dev_root=dev_root, **fake.roots)
    assert out.endswith(f"group {group} may use it (uio0, config, resource0, resource1)")
    for path in (dev_root / "uio0", device / "config", device / "resource0", device / "resource1"):
        assert path.stat().st_gid == grp.getgrnam(group).gr_gid and path.stat().st_mode & 0o777 == 0o660, path
    assert (device / "resource").stat().st_mode & 0o777 == 0o600, "the read-only summary file is left alone"
    with pytest.raises(ConfigError, match="no such group"):
        pt.grant_group(DOWN, "lc-no-such-group", sysfs_root=fake.sys, dev_root=dev_root)
