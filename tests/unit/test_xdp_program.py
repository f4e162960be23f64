"""What of the AF_XDP side can be checked without root: argument checks of
the loader and the backend (they come before any privileged call), the
counter layout shared by xdp_syslog.c and loader.py, the privilege check,
and the shim's argument checks. Loading the program, sockets and traffic:
tests/system/test_afxdp.py."""

from __future__ import annotations

import errno
import re

import pytest

from appliance.config import from_dict
from ebpf import loader
from ebpf.loader import XdpError


def _defines(prefix: str) -> dict[str, int]:
    text = loader.SOURCE.read_text()
    return {m.group(1): int(m.group(2)) for m in re.finditer(rf"#define\s+({prefix}\w*)\s+(\d+)", text)}


def test_counter_indices_match_the_program():
    c = _defines("LC_C_")
    assert [name for name, _ in sorted(c.items(), key=lambda kv: kv[1])] == \
        ["LC_C_" + n.upper() for n in loader.COUNTERS]
    assert _defines("LC_NCOUNTERS")["LC_NCOUNTERS"] == len(loader.COUNTERS)


def test_config_indices_match_the_program():
    c = _defines("LC_CFG_")
    assert (c["LC_CFG_DENY_ENABLED"], c["LC_CFG_BUDGET_ENABLED"]) == \
        (loader._CFG_DENY_ENABLED, loader._CFG_BUDGET_ENABLED)


def test_budget_is_described_as_configured():
    from appliance.config import BudgetConfig, BudgetOverride

    assert loader.describe_budget(BudgetConfig()) == "budget off"
    assert loader.describe_budget(BudgetConfig(rate=1000.0, table_size=4096)) == \
        "budget 1000/s burst 1000 per source, dropped at the NIC (up to 4096 sources tracked)"
    assert loader.describe_budget(BudgetConfig(overrides=(BudgetOverride("198.18.0.0/24", 5.0, 2),))) == \
        "budget only for override prefixes, 1 override, dropped at the NIC (up to 65536 sources tracked)"


def test_program_function_is_named_for_stale_detection():
    assert re.search(rf"^int {loader.PROG_NAME}\(struct xdp_md \*ctx\)", loader.SOURCE.read_text(), re.M)
    assert len(loader.PROG_NAME) < 16, "the kernel keeps 15 characters of a program name"


@pytest.mark.parametrize("ports", [[], [0], [70000], list(range(1, 18))])
def test_bad_port_lists_are_refused_before_anything_is_loaded(ports):
    with pytest.raises(XdpError) as e:
        loader.compile_program(ports)
    assert e.value.errno == errno.EINVAL


def test_deny_list_is_parsed_per_family():
    v4, v6 = loader._deny_networks(["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "10.1.2.3/16"])
    assert [str(n) for n in v4] == ["10.0.0.0/8", "192.0.2.7/32", "10.1.0.0/16"]
    assert [str(n) for n in v6] == ["2001:db8::/32"]
    with pytest.raises(XdpError) as e:
        loader._deny_networks(["not-a-prefix"])
    assert e.value.errno == errno.EINVAL


def test_bad_mode_and_missing_interface():
    with pytest.raises(XdpError) as e:
        loader.XdpProgram("lo", [514], mode="turbo")
    assert e.value.errno == errno.EINVAL
    with pytest.raises(XdpError) as e:
        loader.XdpProgram("lcnosuchif0", [514])
    assert e.value.errno == errno.ENODEV and "no such interface" in str(e.value)


def test_missing_capabilities_are_named(tmp_path):
    """The loader asks appliance/probe.py; what is missing comes back named,
    as an ENVIRONMENT error (exit code 4), with the fix."""
    from appliance import probe
    from appliance.errors import ENVIRONMENT

    (tmp_path / "modules/6.1.0-99-amd64/build").mkdir(parents=True)     # headers present: only caps differ

    def host(caps):
        return probe.probe(caps=caps, euid=1000, importer=lambda name: None, shim=lambda name: None,
                           modules_root=tmp_path / "modules", sysfs_root=tmp_path / "sys",
                           kernel_release="6.1.0-99-amd64")

    with pytest.raises(XdpError) as e:
        loader.check_privileges(host=host(0))
    assert e.value.errno == errno.EPERM and e.value.category == ENVIRONMENT
    assert all(cap in str(e.value) for cap in ("CAP_NET_ADMIN", "CAP_BPF", "CAP_PERFMON"))
    assert "AmbientCapabilities" in str(e.value)
    loader.check_privileges(host=host((1 << probe.CAP_NET_ADMIN) | (1 << probe.CAP_BPF) | (1 << probe.CAP_PERFMON)))


def _cfg(**capture):
    return from_dict({"capture": {"backend": "afxdp", "ports": ["veth0"], **capture}, "sinks": ["null"]})


def test_backend_is_built_from_the_config():
    from appliance.capture.afxdp import AfXdpBackend

    cfg = from_dict({"capture": {"backend": "afxdp", "ports": ["veth0"]}, "sinks": ["null"],
                     "afxdp": {"xdp_mode": "generic", "zerocopy": "off", "idle_sleep_ms": 3}})
    assert AfXdpBackend(cfg).opts == cfg.afxdp
    assert AfXdpBackend(_cfg()).udp_ports == (514,), "no port configured: syslog's"
    assert AfXdpBackend(_cfg(udp_ports=[5514, 514])).udp_ports == (5514, 514)


def test_shim_checks_its_arguments():
    import dpdk_shim

    xsk = dpdk_shim.load("_xsk")        # also the ABI check against the headers
    ffi, lib = xsk.ffi, xsk.lib
    err = ffi.new("char[]", 256)
    out = ffi.new("struct lc_xsk_umem **")
    for fill, nframes, frame in ((3000, 4096, 4096), (2048, 1024, 4096), (2048, 2048, 1000)):
        conf = ffi.new("struct lc_xsk_umem_conf *", {"fill_size": fill, "nframes": nframes, "frame_size": frame})
        assert lib.lc_xsk_umem_create(conf, out, ffi.NULL, err, 256) == -errno.EINVAL
        assert b"geometry" in ffi.string(err)
    rx = ffi.new("struct lc_xsk_rx_conf *")
    assert lib.lc_xsk_run(rx) == -errno.EINVAL
    assert lib.lc_xsk_stop(rx) == 0 and rx.stop_requested == 1
