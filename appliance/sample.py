"""A deterministic, realistic sample of syslog traffic: many hosts, mixed dialects.

Used by `logcaster demo`, the benchmarks and tests. The same seed gives the
same bytes, so results can be compared across runs and machines.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.utils import PcapWriter, checksum

BASE_TIME = datetime(2026, 3, 14, 9, 26, 53, tzinfo=timezone.utc)
COLLECTOR_V4 = "198.18.0.1"
COLLECTOR_V6 = "2001:db8:18::1"
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


@dataclass(frozen=True)
class Host:
    name: str
    ip: str
    kind: str
    vlan: int | None


def _hosts(rng: random.Random, n: int) -> list[Host]:
    kinds = ["linux", "linux", "cisco", "asa", "juniper", "fortigate", "paloalto", "esxi", "pfsense", "cef"]
    hosts = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        v6 = i % 7 == 3
        ip = f"2001:db8:18:{i // 256:x}::{i % 256 + 10:x}" if v6 else f"198.18.{1 + i // 250}.{i % 250 + 2}"
        vlan = (100 + i % 3) if i % 5 == 0 else None
        hosts.append(Host(f"{kind}-{i:03d}", ip, kind, vlan))
    return hosts


def _bsd(t: datetime) -> str:
    return f"{MONTHS[t.month - 1]} {t.day:2d} {t:%H:%M:%S}"


def _message(rng: random.Random, host: Host, t: datetime, seq: int, host_seq: int = 0) -> bytes:
    sev = rng.choices(range(8), weights=[1, 1, 2, 6, 10, 15, 40, 25])[0]
    user = rng.choice(["alice", "bob", "deploy", "root", "backup"])
    src = f"203.0.113.{rng.randrange(1, 255)}"
    port = rng.randrange(1024, 65535)
    if host.kind == "linux":
        fac = rng.choice([1, 3, 4, 10, 16])
        pri = fac * 8 + sev
        app, text = rng.choice([
            ("sshd", f"Accepted publickey for {user} from {src} port {port} ssh2"),
            ("sshd", f"Failed password for invalid user {user} from {src} port {port} ssh2"),
            ("systemd", f"Started Session {seq} of User {user}."),
            ("CRON", f"({user}) CMD (/usr/local/bin/backup.sh --incremental)"),
            ("kernel", f"[{seq % 100000}.{seq % 997:06d}] nf_conntrack: table full, dropping packet"),
            ("nginx", f'{src} - - "GET /api/v1/items/{seq} HTTP/1.1" 200 {rng.randrange(100, 9000)}'),
        ])
        if rng.random() < 0.5:
            ts = t.isoformat(timespec="microseconds").replace("+00:00", "Z")
            sd = rng.choice(["-", f'[meta@32473 seq="{seq}" user="{user}"]',
                             f'[origin ip="{host.ip}"][timeQuality tzKnown="1" isSynced="1"]'])
            return f"<{pri}>1 {ts} {host.name} {app} {rng.randrange(100, 40000)} - {sd} {text}".encode()
        return f"<{pri}>{_bsd(t)} {host.name} {app}[{rng.randrange(100, 40000)}]: {text}".encode()
    if host.kind == "cisco":
        pri = 23 * 8 + sev
        mn = rng.choice(["%LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to down",
                         "%SEC-6-IPACCESSLOGP: list 101 denied tcp 10.1.1.1(1234) -> 10.2.2.2(80), 1 packet",
                         "%SYS-5-CONFIG_I: Configured from console by admin on vty0"])
        # `logging origin-id hostname`: the device's name after its sequence number.
        return f"<{pri}>{host_seq:06d}: {host.name}: *{_bsd(t)}.{t.microsecond // 1000:03d}: {mn}".encode()
    if host.kind == "asa":
        pri = 20 * 8 + sev
        return (f"<{pri}>{_bsd(t)} {host.name} : %ASA-{sev}-106023: Deny tcp src outside:{src}/{port} "
                f"dst inside:198.51.100.{seq % 250}/443 by access-group \"OUTSIDE_IN\"").encode()
    if host.kind == "juniper":
        pri = 3 * 8 + sev
        ts = t.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return (f"<{pri}>1 {ts} {host.name} RT_FLOW - RT_FLOW_SESSION_CREATE "
                f'[junos@2636.1.1.1.2.40 source-address="{src}" source-port="{port}" '
                f'destination-address="198.51.100.7" destination-port="443"] session created').encode()
    if host.kind == "fortigate":
        pri = 16 * 8 + sev
        return (f"<{pri}>date={t:%Y-%m-%d} time={t:%H:%M:%S} devname=\"{host.name}\" devid=\"FG100F{seq % 9999:04d}\" "
                f"logid=\"0000000013\" type=\"traffic\" subtype=\"forward\" level=\"notice\" srcip={src} "
                f"srcport={port} dstip=198.51.100.9 dstport=443 action=\"accept\"").encode()
    if host.kind == "paloalto":
        pri = 1 * 8 + sev
        return (f"<{pri}>{_bsd(t)} {host.name} 1,{t:%Y/%m/%d %H:%M:%S},0123456789,TRAFFIC,end,2305,"
                f"{t:%Y/%m/%d %H:%M:%S},{src},198.51.100.20,0.0.0.0,0.0.0.0,allow-web,,,ssl,vsys1,trust,untrust,"
                f"ethernet1/1,ethernet1/2,log-fwd,{seq},1,{port},443,0,0,0x0,tcp,allow").encode()
    if host.kind == "esxi":
        pri = 22 * 8 + sev
        ts = t.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return (f"<{pri}>1 {ts} {host.name} Hostd - - - Event {seq} : User {user}@{src} logged in as "
                f"pyVmomi Python/3.11").encode()
    if host.kind == "pfsense":
        pri = 16 * 8 + 6
        return (f"<{pri}>{_bsd(t)} filterlog[{rng.randrange(1000, 9000)}]: 5,,,1000000103,igb0,match,block,in,4,"
                f"0x0,,64,0,0,DF,6,tcp,60,{src},198.51.100.1,{port},22,0,S,1234567,,64240,,mss").encode()
    # CEF over syslog
    pri = 4 * 8 + sev
    return (f"<{pri}>{_bsd(t)} {host.name} CEF:0|Security|threatmanager|1.0|100|worm successfully stopped|"
            f"{sev + 2}|src={src} dst=198.51.100.2 spt={port} dpt=445").encode()


class _FrameBuilder:
    """Ethernet/[802.1Q]/IPv4|IPv6/UDP frames around payloads, fast.

    scapy builds each host's header once (its layers, addresses, checksum
    rules); per message only the lengths and checksums change, patched with
    scapy's own checksum routine. Building every frame with scapy would cost
    ~0.6 ms each and make a 100k-message sample take a minute."""

    def __init__(self, host: Host, sport: int):
        v6 = ":" in host.ip
        l3 = IPv6(src=host.ip, dst=COLLECTOR_V6) if v6 else IP(src=host.ip, dst=COLLECTOR_V4)
        pkt = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01")
        if host.vlan:
            pkt = pkt / Dot1Q(vlan=host.vlan)
        self.template = bytearray(bytes(pkt / l3 / UDP(sport=sport, dport=514)))
        self.l3 = 14 + (4 if host.vlan else 0)
        self.l4 = self.l3 + (40 if v6 else 20)
        self.v6 = v6
        self.pseudo = bytes(self.template[self.l3 + 8:self.l3 + 40]) if v6 else b""

    def frame(self, payload: bytes) -> bytes:
        t = bytearray(self.template)
        udp_len = 8 + len(payload)
        struct.pack_into("!H", t, self.l4 + 4, udp_len)
        if self.v6:
            struct.pack_into("!H", t, self.l3 + 4, udp_len)           # payload length
            struct.pack_into("!H", t, self.l4 + 6, 0)
            pseudo = self.pseudo + struct.pack("!IxxxB", udp_len, 17)
            csum = checksum(pseudo + bytes(t[self.l4:]) + payload) or 0xFFFF
            struct.pack_into("!H", t, self.l4 + 6, csum)                # mandatory over IPv6
        else:
            struct.pack_into("!H", t, self.l3 + 2, 20 + udp_len)      # total length
            struct.pack_into("!H", t, self.l3 + 10, 0)
            struct.pack_into("!H", t, self.l3 + 10, checksum(bytes(t[self.l3:self.l4])))
            struct.pack_into("!H", t, self.l4 + 6, 0)                   # UDP checksum optional over IPv4
        return bytes(t) + payload


CISCO_LOST_EVERY = 250


def messages(count: int, *, seed: int = 5424, hosts: int = 200,
             rate: float = 10_000.0) -> Iterator[tuple[float, Host, bytes]]:
    """Yield (time, host, payload) for `count` messages, `rate` per second apart."""
    rng = random.Random(seed)
    pool = _hosts(rng, hosts)
    weights = [1.0 / (1 + i % 40) for i in range(hosts)]  # a few chatty hosts, a long tail
    counters: dict[str, int] = {}
    for seq in range(count):
        t = BASE_TIME + timedelta(seconds=seq / rate)
        host = rng.choices(pool, weights)[0]
        # Cisco's own sequence number (`service sequence-numbers`), per device; one message in
        # CISCO_LOST_EVERY never reaches the collector, as on a lossy path (summary: "lost before
        # reaching us").
        n = counters[host.name] = counters.get(host.name, 0) + 1
        if n % CISCO_LOST_EVERY == 0:
            n = counters[host.name] = n + 1
        yield t.timestamp(), host, _message(rng, host, t, seq, n)


def frames(count: int, **kw) -> Iterator[tuple[float, bytes]]:
    """Yield (time, Ethernet frame) for `count` sample messages."""
    builders: dict[str, _FrameBuilder] = {}
    for t, host, payload in messages(count, **kw):
        builder = builders.get(host.name)
        if builder is None:
            builder = builders[host.name] = _FrameBuilder(host, 40000 + len(builders))
        yield t, builder.frame(payload)


def udp_frame(src_ip: str, payload: bytes, *, sport: int = 40000, vlan: int | None = None) -> bytes:
    """One Ethernet frame carrying `payload` from `src_ip` to the collector's port 514."""
    return _FrameBuilder(Host("", src_ip, "", vlan), sport).frame(payload)


def write_frames(path: str | Path, timed_frames) -> Path:
    """Write (time, frame) pairs to a pcap with nanosecond timestamps."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with PcapWriter(str(path), linktype=1, nano=True, sync=False) as w:
        w.write_header(None)  # write_packet() alone leaves the file header out
        for t, frame in timed_frames:
            w.write_packet(frame, sec=int(t), usec=round((t - int(t)) * 1e9))
    return path


def write_pcap(path: str | Path, count: int, **kw) -> Path:
    """Write `count` sample frames to a pcap (nanosecond timestamps)."""
    return write_frames(path, frames(count, **kw))
