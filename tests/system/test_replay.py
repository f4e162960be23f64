"""`logcaster replay` feeding a running appliance through a TAP, end to end:
into the TAP of a DPDK net_tap port (frames leave by the interface), and into
a TAP that AF_XDP captures (frames written into the TAP). Every frame is
delivered and the replay's sent count equals the appliance's received count.
Plus its guard rails: the default-route interface is refused always, an
interface LogCaster did not create unless --force.

Everything runs in a network namespace of the test's own with IPv6 off, so
the kernel sends nothing of its own on the TAP (no router solicitations)
and the counts compare exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from netns import Appliance, ip, link_exists, netns, read_jsonl_sink, unique_name
from appliance.sample import write_pcap

pytestmark = [pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
N = 4000
PPS = 40000


def replay(ns: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "appliance.cli.main", "replay", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.fixture
def quiet_ns():
    """A namespace where new interfaces get no IPv6 (no chatter on a TAP)."""
    with netns(unique_name("lcrp")) as ns:
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
                       check=True, timeout=10)
        yield ns


@pytest.fixture(scope="module")
def pcap(tmp_path_factory) -> Path:
    """The demo's sample (RFC 5424/3164 and vendor dialects; IPv4, IPv6, VLAN; UDP 514)."""
    return write_pcap(tmp_path_factory.mktemp("replay") / "sample.pcap", N)


def config(tmp_path: Path, port: dict, backend: str, prefix: str) -> dict:
    return {"capture": {"backend": backend, "udp_ports": [514], "ports": [port]},
            "dpdk": {"in_memory": True, "file_prefix": prefix, "log_level": "error"},
            "sinks": [{"type": "jsonl", "path": str(tmp_path / "jsonl")}], "stats_interval_s": 0.2}


def check_books(app: Appliance, result: dict, tmp_path: Path) -> None:
    assert result == {**result, "frames": N, "sent": N, "errors": 0}
    assert app.wait_delivered(N, 60) >= N, app.output
    assert app.stop() == 0, app.output
    st = app.stats()
    assert st["received"] == result["sent"] == N, f"replay sent {result['sent']}, the appliance received {st['received']}"
    assert st["delivered"] == st["records"] == N and st["accounting_ok"] and st["lost"] == 0
    assert len(read_jsonl_sink(tmp_path / "jsonl")) == N


@pytest.mark.dpdk
def test_replay_into_a_dpdk_net_tap_port(tmp_path, quiet_ns, pcap):
    tap = unique_name("lcrt")
    cfg = config(tmp_path, {"name": "net_tap0", "vdev": f"net_tap0,iface={tap}", "link_timeout_ms": 0}, "dpdk",
                 unique_name("lcrp"))
    with Appliance(cfg, tmp_path, ns=quiet_ns) as app:
        app.wait_ready()
        # the TAP is net_tap's, marked as LogCaster's: no --force needed
        res = replay(quiet_ns, str(pcap), "--iface", tap, "--pps", str(PPS), "--json")
        assert res.returncode == 0, res.stderr
        assert f"sent {N:,} of {N:,} frames" in res.stderr
        check_books(app, json.loads(res.stdout), tmp_path)


@pytest.mark.xdp
def test_replay_into_a_tap_that_afxdp_captures(tmp_path, quiet_ns, pcap):
    tap = unique_name("lcrx")
    made = replay(quiet_ns, str(pcap), "--tap", tap, "--keep", "--limit", "1", "--topspeed")  # makes the TAP
    assert made.returncode == 0, made.stderr
    try:
        ip("link", "set", tap, "up", ns=quiet_ns)
        cfg = config(tmp_path, {"name": tap}, "afxdp", unique_name("lcrp"))
        with Appliance(cfg, tmp_path, ns=quiet_ns) as app:
            app.wait_ready()
            res = replay(quiet_ns, str(pcap), "--tap", tap, "--pps", str(PPS), "--json")
            assert res.returncode == 0, res.stderr
            assert f"into TAP {tap} (existing)" in res.stderr
            check_books(app, json.loads(res.stdout), tmp_path)
    finally:
        ip("link", "del", tap, ns=quiet_ns, check=False)


def test_guard_rails(tmp_path, quiet_ns, pcap):
    # the machine's default-route interface: refused, --force or not, before anything is opened
    route = subprocess.run(["ip", "-j", "route", "show", "default"], capture_output=True, text=True, check=True)
    own = json.loads(route.stdout)[0]["dev"]
    res = subprocess.run([sys.executable, "-m", "appliance.cli.main", "replay", str(pcap), "--iface", own,
                          "--force", "--topspeed"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "carries the default route" in res.stderr
    # an interface LogCaster did not create: only with --force
    a, b = unique_name("lcva"), unique_name("lcvb")
    ip("link", "add", a, "type", "veth", "peer", "name", b, ns=quiet_ns)
    ip("link", "set", a, "up", ns=quiet_ns)
    ip("link", "set", b, "up", ns=quiet_ns)
    res = replay(quiet_ns, str(pcap), "--iface", a, "--topspeed")
    assert res.returncode == 2 and "LogCaster did not create it" in res.stderr
    res = replay(quiet_ns, str(pcap), "--iface", a, "--topspeed", "--force", "--loop", "3", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["sent"] == 3 * N
    # a TAP replay makes is gone afterwards unless --keep
    tap = unique_name("lcrg")
    res = replay(quiet_ns, str(pcap), "--tap", tap, "--limit", "10", "--topspeed")
    assert res.returncode == 0 and not link_exists(tap, quiet_ns), res.stderr
    # bad input: a missing file (3), both targets (2)
    assert replay(quiet_ns, str(tmp_path / "none.pcap"), "--tap", tap).returncode == 3
    assert replay(quiet_ns, str(pcap), "--tap", tap, "--iface", a).returncode == 2
