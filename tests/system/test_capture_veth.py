"""Live capture with DPDK's net_af_packet PMD on a veth: a real UDP sender in
one network namespace, the appliance in another, and every datagram sent
comes out of the jsonl sink exactly once, field for field what
`logcaster decode` makes of the same datagrams offline.

Both namespaces (and the veth pair between them) belong to the test and are
deleted afterwards, also when the test fails. The kernel of the capture
namespace sees the datagrams too and may answer with ICMP port unreachable:
those frames count as not_syslog, as do its IPv6 neighbour/router chatter.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from netns import (Appliance, Link, assert_delivered_once, decode_pcap, dpdk_config, ip, lcid, link_info, mac_of, netns, netns_exists,
                   read_jsonl_sink, require_tools, syslog_payloads, unique_name, veth_pair, write_pcap)

pytestmark = [pytest.mark.root, pytest.mark.dpdk]

N = 3000                    # syslog datagrams to UDP 5514
V6_EVERY = 10               # every 10th over IPv6
DECOYS = 20                 # datagrams to UDP 5515: not a kept port
SPORT_V4, SPORT_V6 = 40514, 40516
CAPTURE_V4, SENDER_V4 = "198.18.0.1", "198.18.0.2"
CAPTURE_V6, SENDER_V6 = "2001:db8:18::1", "2001:db8:18::2"

# Runs in the sender namespace: sends each line of the plan file (family, dport,
# hex payload) from a real UDP socket, pausing 5 ms every 10 datagrams: at most
# 2k/s, in bursts far smaller than the af_packet ring (512 frames). Bounded by
# the plan: about 1.5 s.
SENDER = r"""
import json, socket, sys, time
plan = [json.loads(line) for line in open(sys.argv[1])]
v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
v4.bind((sys.argv[2], int(sys.argv[3])))
v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
v6.bind((sys.argv[4], int(sys.argv[5])))
sent = 0
for family, dport, payload in plan:
    if family == 6:
        v6.sendto(bytes.fromhex(payload), (sys.argv[6], dport))
    else:
        v4.sendto(bytes.fromhex(payload), (sys.argv[7], dport))
    sent += 1
    if sent % 10 == 0:
        time.sleep(0.005)
print(f"sent {sent}")
"""


@pytest.fixture
def veth_link():
    """Namespaces lcs-<pid> (sender) and lcc-<pid> (capture), a veth between
    them with 198.18.0.2/24 + 2001:db8:18::2/64 (sender) and 198.18.0.1/24 +
    2001:db8:18::1/64 (capture), and permanent neighbour entries both ways, so
    no datagram waits on (or is dropped behind) ARP/ND resolution."""
    require_tools("ip")
    pid = os.getpid()
    sender_ns, capture_ns = f"lcs-{pid}", f"lcc-{pid}"
    with netns(sender_ns), netns(capture_ns):
        link = Link(sender_ns, capture_ns, unique_name("lcvs"), unique_name("lcvc"))
        with veth_pair(link.sender_if, sender_ns, link.capture_if, capture_ns):
            for ns, dev, v4, v6 in ((sender_ns, link.sender_if, SENDER_V4, SENDER_V6),
                                    (capture_ns, link.capture_if, CAPTURE_V4, CAPTURE_V6)):
                ip("addr", "add", f"{v4}/24", "dev", dev, ns=ns)
                ip("addr", "add", f"{v6}/64", "dev", dev, "nodad", ns=ns)
            for ns, dev, peer_ns, peer_dev, v4, v6 in (
                    (sender_ns, link.sender_if, capture_ns, link.capture_if, CAPTURE_V4, CAPTURE_V6),
                    (capture_ns, link.capture_if, sender_ns, link.sender_if, SENDER_V4, SENDER_V6)):
                mac = mac_of(peer_dev, peer_ns)
                for addr in (v4, v6):
                    ip("neigh", "replace", addr, "lladdr", mac, "dev", dev, "nud", "permanent", ns=ns)
            yield link
    assert not netns_exists(sender_ns) and not netns_exists(capture_ns), "a namespace outlived the test"


def _send(link: Link, plan_file) -> subprocess.CompletedProcess:
    """Run SENDER in the sender namespace over the plan file."""
    return subprocess.run(
        ["ip", "netns", "exec", link.sender_ns, sys.executable, "-c", SENDER, str(plan_file),
         SENDER_V4, str(SPORT_V4), SENDER_V6, str(SPORT_V6), CAPTURE_V6, CAPTURE_V4],
        capture_output=True, text=True, timeout=60)


def _plan() -> list[tuple[int, int, bytes]]:
    """(IP version, UDP destination port, payload): N syslog datagrams, then decoys."""
    plan = [(6 if i % V6_EVERY == V6_EVERY - 1 else 4, 5514, p) for i, p in enumerate(syslog_payloads(N))]
    plan += [(4, 5515, f"<14>other port lcid={N + i}".encode()) for i in range(DECOYS)]
    return plan


def _frame(family: int, dport: int, payload: bytes) -> bytes:
    """The frame the capture side receives for one datagram of the plan."""
    if family == 6:
        l3 = IPv6(src=SENDER_V6, dst=CAPTURE_V6) / UDP(sport=SPORT_V6, dport=dport)
    else:
        l3 = IP(src=SENDER_V4, dst=CAPTURE_V4) / UDP(sport=SPORT_V4, dport=dport)
    return bytes(Ether(src="02:00:00:00:18:02", dst="02:00:00:00:18:01") / l3 / payload)


def _backend_config(backend: str, link: Link, sink, prefix: str) -> dict:
    if backend == "dpdk":
        vdev_index = os.getpid() % 1000
        port = {"name": f"net_af_packet{vdev_index}",
                "vdev": f"net_af_packet{vdev_index},iface={link.capture_if},qpairs=1"}
    elif backend == "socket":  # a dual-stack UDP socket on the capture side
        port = {"name": "::"}
    else:  # afxdp / auto: the kernel interface itself
        port = {"name": link.capture_if}
    cfg = dpdk_config(port, sink, file_prefix=prefix)
    cfg["capture"]["backend"] = backend
    return cfg


@pytest.mark.parametrize("backend, runs", [("dpdk", "dpdk"), ("afxdp", "afxdp"), ("auto", "afxdp"),
                                          ("socket", "socket")],
                         ids=["dpdk-af_packet", "afxdp", "auto-picks-afxdp", "socket"])
def test_veth_capture_delivers_every_datagram_once(veth_link, tmp_path, backend, runs):
    """net_af_packet (DPDK), AF_XDP or the kernel-socket loop on the capture
    side: every datagram sent from the other namespace lands once, with the
    fields `decode` gives; for AF_XDP the interface keeps working for
    everything else meanwhile."""
    plan = _plan()
    plan_file = tmp_path / "plan.jsonl"
    plan_file.write_text("".join(json.dumps([f, d, p.hex()]) + "\n" for f, d, p in plan))
    expected = {lcid(r): r for r in decode_pcap(write_pcap(tmp_path / "expected.pcap",
                                                           [_frame(*x) for x in plan]), 5514)}
    assert sorted(expected) == list(range(N)), "the offline decode of the plan is off"

    sink = tmp_path / "sink"
    cfg = _backend_config(backend, veth_link, sink, prefix=f"lcveth-{os.getpid()}")
    with Appliance(cfg, tmp_path, ns=veth_link.capture_ns) as app:
        app.wait_ready()
        sender = _send(veth_link, plan_file)
        assert sender.returncode == 0, f"sender failed: {sender.stdout}{sender.stderr}"
        assert sender.stdout.strip() == f"sent {len(plan)}"
        # ARP/ICMP (and everything but syslog) still reach the capture side's kernel.
        ping = subprocess.run(["ip", "netns", "exec", veth_link.sender_ns, "ping", "-c", "2", "-W", "2",
                               "-i", "0.2", CAPTURE_V4], capture_output=True, text=True, timeout=30)
        delivered = app.wait_delivered(N, timeout=20)
        capture_if_after = link_info(veth_link.capture_if, veth_link.capture_ns)
        rc = app.stop()

    context = f"\nappliance output:\n{app.output}\ncapture side after sending:\n{capture_if_after}"
    assert rc == 0, context
    assert f"backend: {runs} (" in app.output
    if runs != "dpdk":
        assert ping.returncode == 0, f"ping across the veth failed while capturing: {ping.stdout}{ping.stderr}"

    records = read_jsonl_sink(sink)
    assert_delivered_once(records, expected, f" (last stats line: {delivered} delivered){context}")
    assert sum(r["src_ip"] == SENDER_V6 for r in records) == N // V6_EVERY

    stats = app.stats()
    assert stats["accounting_ok"], f"{stats}{context}"
    assert stats["records"] == N
    assert stats["delivered"] == N
    assert (stats["ring_full"], stats["sink_failed"], stats["in_flight"]) == (0, 0, 0)
    if runs == "dpdk":
        assert stats["nic"] == {"imissed": 0, "ierrors": 0, "rx_nombuf": 0, "kernel_drops": 0}
        assert stats["skipped"]["port_filtered"] >= DECOYS
    elif runs == "afxdp":  # the XDP program passed the decoys to the kernel: they never reach the loop
        assert stats["nic"] == {"xdp_redirect_failed": 0, "kernel_drops": 0}
        assert stats["ports"][veth_link.capture_if]["xdp_redirected"] == N
    else:  # the socket takes only its port: the decoys never reach it
        assert stats["nic"] == {"kernel_drops": 0}
        assert stats["not_syslog"] == 0
    assert stats["received"] == N + stats["not_syslog"]
    assert stats["formats"] == {"rfc5424": N // 2, "rfc3164": N // 4, "raw": N // 4}


def test_afxdp_after_sigkill_the_next_start_replaces_the_stale_program(veth_link, tmp_path):
    """A capture process killed with SIGKILL leaves its XDP program attached;
    the next start finds it (ours, by name), replaces it, and captures again."""
    sink = tmp_path / "sink"
    cfg = _backend_config("afxdp", veth_link, sink, prefix=f"lcstale-{os.getpid()}")
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir(), second_dir.mkdir()
    with Appliance(cfg, first_dir, ns=veth_link.capture_ns) as first:
        first.wait_ready()
        os.kill(first.proc.pid, signal.SIGKILL)
        assert first.proc.wait(30) == -signal.SIGKILL
        assert "xdp" in link_info(veth_link.capture_if, veth_link.capture_ns)  # left behind

    plan = [(4, 5514, p) for p in syslog_payloads(200)]
    plan_file = tmp_path / "plan.jsonl"
    plan_file.write_text("".join(json.dumps([f, d, p.hex()]) + "\n" for f, d, p in plan))
    with Appliance(cfg, second_dir, ns=veth_link.capture_ns) as second:
        second.wait_ready()
        sender = _send(veth_link, plan_file)
        assert sender.returncode == 0, sender.stderr
        second.wait_delivered(len(plan), timeout=20)
        assert second.stop() == 0, second.output
    assert "replaced a stale lc_xdp_syslog" in second.output
    stats = second.stats()
    assert stats["delivered"] == len(plan) and stats["accounting_ok"]
    assert "xdp" not in link_info(veth_link.capture_if, veth_link.capture_ns)  # detached on exit
