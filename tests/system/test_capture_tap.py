"""Live capture through DPDK's net_tap PMD: frames replayed into the TAP from
the kernel side (tcpreplay) reach the RX loop, and every syslog frame comes
out of the jsonl sink exactly once, field for field what `logcaster decode`
makes of the same pcap offline.

The appliance runs inside a network namespace of the test's own, so the TAP
device net_tap creates (and the kernel's chatter on it) stays there; the
namespace is deleted afterwards whatever happens.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from netns import (Appliance, assert_delivered_once, decode_pcap, dpdk_config, ip, lcid, link_exists, link_info, link_up, netns,
                   netns_exists, read_jsonl_sink, require_tools, syslog_payloads, unique_name, write_pcap)

pytestmark = [pytest.mark.root, pytest.mark.dpdk]

N = 3000                # syslog frames (UDP to 5514)
PPS = 2000              # tcpreplay rate: the whole replay takes N / PPS seconds
DECOYS_UDP = 20         # UDP to port 514: not a kept port
DECOYS_ARP = 5
COLLECTOR = "198.18.0.1"
COLLECTOR_V6 = "2001:db8:18::1"


def _frames() -> list[bytes]:
    """N syslog frames (IPv4, IPv4 in 802.1Q, IPv6; many sources), then decoys."""
    out = []
    for i, payload in enumerate(syslog_payloads(N)):
        eth = Ether(src="02:00:00:00:18:02", dst="02:00:00:00:18:01")
        if i % 5 == 4:
            l3 = IPv6(src=f"2001:db8:18::{i % 200 + 10:x}", dst=COLLECTOR_V6)
        else:
            l3 = IP(src=f"198.18.{1 + i // 250}.{i % 250 + 2}", dst=COLLECTOR)
        if i % 7 == 1:
            eth = eth / Dot1Q(vlan=100 + i % 3)
        out.append(bytes(eth / l3 / UDP(sport=40000 + i % 50, dport=5514) / payload))
    for i in range(DECOYS_UDP):
        out.append(bytes(Ether(src="02:00:00:00:18:02", dst="02:00:00:00:18:01")
                         / IP(src="198.18.9.9", dst=COLLECTOR) / UDP(sport=40000, dport=514)
                         / f"<14>other port lcid={N + i}".encode()))
    for _ in range(DECOYS_ARP):
        out.append(bytes(Ether(src="02:00:00:00:18:02", dst="ff:ff:ff:ff:ff:ff")
                         / ARP(psrc="198.18.9.9", pdst=COLLECTOR)))
    return out


@pytest.fixture
def capture_ns():
    require_tools("ip", "tcpreplay")
    name = f"lct-{os.getpid()}"
    with netns(name) as ns:
        yield ns
    assert not netns_exists(name), f"namespace {name} outlived the test"


def test_tap_replay_delivers_every_frame_once(capture_ns, tmp_path):
    tap = unique_name("lctap")
    vdev_index = os.getpid() % 1000
    pcap = write_pcap(tmp_path / "replay.pcap", _frames())
    expected = {lcid(r): r for r in decode_pcap(pcap, 5514)}
    assert sorted(expected) == list(range(N)), "the offline decode of the test pcap is off"

    sink = tmp_path / "sink"
    cfg = dpdk_config({"name": f"net_tap{vdev_index}", "vdev": f"net_tap{vdev_index},iface={tap}"}, sink,
                      file_prefix=f"lctap-{os.getpid()}")
    with Appliance(cfg, tmp_path, ns=capture_ns) as app:
        app.wait_ready()
        assert link_exists(tap, capture_ns), f"net_tap did not create {tap}:\n{app.output}"
        if not link_up(tap, capture_ns):
            ip("link", "set", tap, "up", ns=capture_ns)
        replay = subprocess.run(["ip", "netns", "exec", capture_ns, "tcpreplay", "-i", tap, "--pps", str(PPS),
                                 str(pcap)], capture_output=True, text=True, timeout=N / PPS + 30)
        assert replay.returncode == 0, f"tcpreplay failed: {replay.stdout}{replay.stderr}"
        sent = re.search(r"Successful packets:\s+(\d+)", replay.stdout)
        assert sent and int(sent.group(1)) == N + DECOYS_UDP + DECOYS_ARP, replay.stdout
        delivered = app.wait_delivered(N, timeout=20)
        tap_after_replay = link_info(tap, capture_ns)   # its kernel-side TX drops, if any
        rc = app.stop()
        tap_left = link_exists(tap, capture_ns)

    context = f"\nappliance output:\n{app.output}\nTAP after the replay:\n{tap_after_replay}"
    assert rc == 0, context
    assert not tap_left, f"{tap} still exists after the appliance exited"

    records = read_jsonl_sink(sink)
    assert_delivered_once(records, expected, f" (last stats line: {delivered} delivered){context}")

    stats = app.stats()
    assert stats["accounting_ok"], f"{stats}{context}"
    assert stats["records"] == N
    assert stats["delivered"] == N
    assert (stats["ring_full"], stats["sink_failed"], stats["in_flight"]) == (0, 0, 0)
    assert stats["nic"] == {"imissed": 0, "ierrors": 0, "rx_nombuf": 0, "kernel_drops": 0}
    # The decoys, and whatever the kernel said on the TAP (IPv6 router
    # solicitations, MLD), are frames, not records.
    assert stats["received"] == N + stats["not_syslog"]
    assert stats["skipped"]["port_filtered"] >= DECOYS_UDP
    assert stats["not_syslog"] >= DECOYS_UDP + DECOYS_ARP
    assert stats["formats"] == {"rfc5424": N // 2, "rfc3164": N // 4, "raw": N // 4}
