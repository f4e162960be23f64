"""AF_XDP capture on veth pairs: the XDP program (ebpf/xdp_syslog.c), its
loader (ebpf/loader.py), the AF_XDP sockets and RX loop (dpdk_shim/_xsk) and
the backend (appliance/capture/afxdp.py).

Each test makes its own namespaces: a sender (198.18.0.2, 2001:db8:18::2)
and a capture namespace (198.18.0.1, 2001:db8:18::1) joined by a veth pair,
removed afterwards whatever happens. The backend runs in the capture
namespace as a subprocess (DRIVER below: `ip netns exec`), rings in /dev/shm
under a unique name; real UDP sockets send from the sender namespace, in
bounded, paced loops. VLAN (802.1Q 100, 198.18.100.2 -> .1) and QinQ
(802.1ad 10 / 802.1Q 20, 198.18.120.2 -> .1) datagrams are written as frames
to a packet socket on the sender's veth: this VM's kernel has no 802.1Q
support (CONFIG_VLAN_8021Q off), so no VLAN subinterface.

The program is attached only to the capture end of the test's own veth,
never to another interface.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

import pyarrow as pa
import pytest

from netns import REPO, Link, ip, mac_of, netns, netns_exists, require_tools, syslog_payloads

pytestmark = [pytest.mark.root, pytest.mark.xdp]

CAPTURE_V4, SENDER_V4 = "198.18.0.1", "198.18.0.2"
CAPTURE_V6, SENDER_V6 = "2001:db8:18::1", "2001:db8:18::2"
VLAN, VLAN_CAPTURE, VLAN_SENDER = 100, "198.18.100.1", "198.18.100.2"
QINQ_OUTER, QINQ_INNER, QINQ_CAPTURE, QINQ_SENDER = 10, 20, "198.18.120.1", "198.18.120.2"
SYSLOG_PORT, OTHER_PORT = 514, 9999
FLOWS = 16                      # source ports 40000..40015: veth picks the RX queue per flow
MAC_S, MAC_C = "02:00:00:00:18:02", "02:00:00:00:18:01"
READY_TIMEOUT_S = 60.0
RESULT_TIMEOUT_S = 60.0

_seq = itertools.count()

# ---- the backend in the capture namespace ----------------------------------------------

# argv[1]: JSON spec. Prints one JSON line when capturing ({"ready": ...}), then
# captures until a line arrives on stdin (at most 90 s), stops, drains the rings,
# and prints the result as one JSON line. A kernel UDP socket on port 9999
# counts what the XDP program passed to the kernel stack.
DRIVER = r"""
import json, os, select, socket, sys, threading, time
from types import SimpleNamespace
import pyarrow as pa
from appliance.config import from_dict
from appliance.capture.afxdp import AfXdpBackend
from appliance.capture.base import LoopOptions
from appliance.decoder import Decoder
from appliance.errors import LogCasterError
from appliance.ring import Ring

spec = json.loads(sys.argv[1])
q = spec["queues"]
cfg = from_dict({"capture": {"backend": "afxdp", "udp_ports": [514], "burst": 64, "batch_size": 256,
                             "ports": [{"name": spec["ifname"], "queues": q, "rx_descriptors": 1024}]},
                 "sinks": [{"type": "null"}], "afxdp": spec.get("afxdp", {}), "budget": spec.get("budget", {})})
cpus = sorted(os.sched_getaffinity(0))
plan = SimpleNamespace(rx_cores=tuple(cpus[i % len(cpus)] for i in range(q)),
                       worker_cores=tuple(cpus[-1] for _ in range(q)), queues=q)
opts = LoopOptions(burst=64, batch_max_delay_us=200, batch_size=256, batch_avg_payload=256)
backend = AfXdpBackend(cfg)

kernel_udp = []
ksock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
ksock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
ksock.bind(("::", 9999))
ksock.settimeout(0.2)
done = threading.Event()
def kernel_reader():
    while not done.is_set():
        try:
            kernel_udp.append(ksock.recv(2048).decode())
        except socket.timeout:
            pass
threading.Thread(target=kernel_reader, daemon=True).start()

def rows(rb):
    t = pa.Table.from_batches([rb]).drop_columns(["raw", "rx_time"])
    i = t.schema.get_field_index("timestamp")
    return t.set_column(i, "timestamp", t.column(i).cast(pa.int64())).to_pylist()

def consume(ring, out):
    while True:
        got = ring.next_batch(timeout=0.2)
        if got is None:
            if ring.drained:
                return
            continue
        index, rb = got
        out.extend(rows(rb))
        ring.release(index + 1)

rings, consumers, paths, loops, records, threads = [], [], [], [], [], []
result = {}
try:
    try:
        labels = backend.start(plan)
    except LogCasterError as exc:
        print(json.dumps({"error": str(exc), "errno": exc.errno, "type": type(exc).__name__}), flush=True)
        sys.exit(0)
    for i in range(len(labels)):
        path = f"/dev/shm/lcxdp-{os.getpid()}-q{i}"
        paths.append(path)
        ring = Ring.create(path, size=64 << 20, capacity=256, avg_payload=256, queue_id=i)
        rings.append(ring)
        dec = Decoder(ports=[514])
        loops.append((backend.rx_loop(i, ring.c, dec.c, plan.rx_cores[i], opts), dec))
        consumers.append(Ring.attach(path))
        records.append([])
    for i, c in enumerate(consumers):
        t = threading.Thread(target=consume, args=(c, records[i]), daemon=True)
        t.start()
        threads.append(t)
    for loop, _ in loops:
        loop.launch()
    print(json.dumps({"ready": True, "labels": labels, "describe": backend.describe()}), flush=True)
    select.select([sys.stdin], [], [], 90)
    backend.stop_all()
    rcs = [loop.wait(10) for loop, _ in loops]
    for t in threads:
        t.join(10)
    time.sleep(0.3)         # the kernel socket reads what is in flight
    result = {"labels": labels, "rcs": rcs, "running": [loop.running for loop, _ in loops],
              "rx": [loop.stats() for loop, _ in loops],
              "decoder": [d.counters() for _, d in loops], "ring": [r.stats() for r in rings],
              "nic": backend.nic_stats(), "throttled_sources": backend.throttled_sources(), "records": records,
              "kernel_udp": kernel_udp}
finally:
    done.set()
    backend.close()
    for c in consumers:
        c.close()
    for r in rings:
        r.close()
    for p in paths:
        Ring.unlink(p)
result["closed_attached"] = os.popen(f"ip -j -d link show dev {spec['ifname']}").read()
print(json.dumps(result, default=str), flush=True)
"""

# argv: plan file, source v4 and v6 addresses, destination port, interface.
# Plan lines: ["v4"|"v6", destination, source port, payload hex] go out of a
# real UDP socket (one per source address and port); ["raw", "", 0, frame hex]
# is written as is to a packet socket on the interface (VLAN and QinQ frames:
# this kernel has no 802.1Q support, so no VLAN subinterface). 1 ms pause
# every 20 datagrams.
SENDER = r"""
import json, socket, sys, time
plan = [json.loads(line) for line in open(sys.argv[1])]
src = {"v4": sys.argv[2], "v6": sys.argv[3]}
dport = int(sys.argv[4])
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
raw.bind((sys.argv[5], 0))
socks = {}
sent = 0
for kind, dst, sport, payload in plan:
    if kind == "raw":
        raw.send(bytes.fromhex(payload))
    else:
        key = (kind, sport)
        if key not in socks:
            s = socket.socket(socket.AF_INET6 if kind == "v6" else socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((src[kind], sport))
            socks[key] = s
        socks[key].sendto(bytes.fromhex(payload), (dst, dport))
    sent += 1
    if sent % 20 == 0:
        time.sleep(0.001)
print(f"sent {sent}")
"""

# Attaches the program to argv[1] and waits to be killed (at most 60 s).
HOLDER = r"""
import sys, time
from ebpf.loader import XdpProgram
prog = XdpProgram(sys.argv[1], [514])
print(f"attached {prog.prog_id} {prog.mode}", flush=True)
time.sleep(60)
"""

# Attaches the program to argv[1], reports what it replaced and what is attached, closes.
REPLACER = r"""
import json, sys
from ebpf.loader import XdpError, XdpProgram, attached_programs
try:
    prog = XdpProgram(sys.argv[1], [514])
except XdpError as exc:
    print(json.dumps({"error": str(exc), "errno": exc.errno}))
    sys.exit(0)
out = {"replaced": prog.replaced and prog.replaced.prog_id, "prog_id": prog.prog_id, "mode": prog.mode,
       "attached": [[a.prog_id, a.name, a.mode] for a in attached_programs(prog.ifindex)]}
prog.close()
out["after_close"] = [[a.prog_id, a.name, a.mode] for a in attached_programs(prog.ifindex)]
print(json.dumps(out))
"""

# Attaches a program that is not LogCaster's (another name) and exits: it stays attached.
FOREIGN = r"""
import sys
from bcc import BPF
b = BPF(text=b"int someone_elses(struct xdp_md *ctx) { return XDP_PASS; }")
BPF.attach_xdp(sys.argv[1], b.load_func(b"someone_elses", BPF.XDP), 1 << 2)
print("attached")
"""


def _py(ns: str, script: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", script, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


# ---- namespaces and links -------------------------------------------------------------

@contextmanager
def veth_link(queues: int = 1):
    """The two namespaces and the veth between them (both ends with `queues`
    TX and RX queues) and their addresses. Deleted afterwards."""
    require_tools("ip", "ping")
    n = next(_seq)
    tag = f"{os.getpid() % 100000}{n}"
    link = Link(f"lcxs-{tag}", f"lcxc-{tag}", f"lcxs{tag}"[:15], f"lcxc{tag}"[:15])
    with netns(link.sender_ns), netns(link.capture_ns):
        q = str(queues)
        ip("link", "add", link.sender_if, "numtxqueues", q, "numrxqueues", q, "netns", link.sender_ns,
           "type", "veth", "peer", "name", link.capture_if, "numtxqueues", q, "numrxqueues", q,
           "netns", link.capture_ns)
        try:
            for ns, dev, v4, v6 in ((link.sender_ns, link.sender_if, SENDER_V4, SENDER_V6),
                                    (link.capture_ns, link.capture_if, CAPTURE_V4, CAPTURE_V6)):
                ip("addr", "add", f"{v4}/24", "dev", dev, ns=ns)
                ip("addr", "add", f"{v6}/64", "dev", dev, "nodad", ns=ns)
                ip("link", "set", dev, "up", ns=ns)
            yield link
        finally:
            ip("link", "del", link.sender_if, ns=link.sender_ns, check=False)
    assert not netns_exists(link.sender_ns) and not netns_exists(link.capture_ns)


class Driver:
    """DRIVER in the capture namespace; always killed at the end."""

    def __init__(self, link: Link, queues: int, budget: dict | None = None, **afxdp):
        spec = {"ifname": link.capture_if, "queues": queues, "afxdp": afxdp, "budget": budget or {}}
        self.proc = subprocess.Popen(["ip", "netns", "exec", link.capture_ns, sys.executable, "-c", DRIVER,
                                      json.dumps(spec)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)

    def line(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        text = self.proc.stdout.readline() if ready else ""
        if not text:
            self.proc.kill()
            raise AssertionError(f"driver gave no answer in {timeout:.0f} s (exit {self.proc.wait()}): "
                                 f"{self.proc.stderr.read()}")
        return json.loads(text)

    def stop(self) -> dict:
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        out = self.line(RESULT_TIMEOUT_S)
        assert self.proc.wait(30) == 0, self.proc.stderr.read()
        return out

    def __enter__(self) -> "Driver":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except BrokenPipeError:
                pass


# ---- traffic ---------------------------------------------------------------------------

def _frame(kind: str, sport: int, payload: bytes, macs: tuple[str, str] = (MAC_S, MAC_C)) -> bytes:
    """The frame the capture side receives for one datagram."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

    src, dst = macs                           # given: scapy would look routes up otherwise
    udp = UDP(sport=sport, dport=SYSLOG_PORT) / payload
    if kind == "v6":
        return bytes(Ether(src=src, dst=dst) / IPv6(src=SENDER_V6, dst=CAPTURE_V6) / udp)
    if kind == "v4":
        return bytes(Ether(src=src, dst=dst) / IP(src=SENDER_V4, dst=CAPTURE_V4) / udp)
    if kind == "vlan":
        return bytes(Ether(src=src, dst=dst) / Dot1Q(vlan=VLAN) / IP(src=VLAN_SENDER, dst=VLAN_CAPTURE) / udp)
    return bytes(Ether(src=src, dst=dst, type=0x88A8) / Dot1AD(vlan=QINQ_OUTER) / Dot1Q(vlan=QINQ_INNER)
                 / IP(src=QINQ_SENDER, dst=QINQ_CAPTURE) / udp)


def _plan(n: int, kinds: tuple[str, ...], macs: tuple[str, str] = (MAC_S, MAC_C)) -> list[tuple]:
    """(kind, destination, source port, payload, frame): datagram i of kind
    kinds[i % len]; VLAN-tagged ones are sent as raw frames."""
    out = []
    for i, p in enumerate(syslog_payloads(n)):
        kind, sport = kinds[i % len(kinds)], 40000 + i % FLOWS
        out.append((kind, CAPTURE_V6 if kind == "v6" else CAPTURE_V4, sport, p, _frame(kind, sport, p, macs)))
    return out


def _send(link: Link, plan, tmp_path, port: int = SYSLOG_PORT) -> None:
    f = tmp_path / f"plan-{port}.jsonl"
    lines = [["raw", "", 0, frame.hex()] if kind in ("vlan", "qinq") else [kind, dst, sport, payload.hex()]
             for kind, dst, sport, payload, frame in plan]
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    res = _py(link.sender_ns, SENDER, str(f), SENDER_V4, SENDER_V6, str(port), link.sender_if)
    assert res.returncode == 0 and res.stdout.strip() == f"sent {len(plan)}", res.stdout + res.stderr


def _expected(plan) -> dict[str, dict]:
    """What the offline decoder makes of the frames the capture side receives, by message."""
    from appliance.batch import Batch
    from appliance.decoder import Decoder

    frames = [x[4] for x in plan]
    batch = Batch(capacity=len(frames) + 1)
    assert Decoder(ports=[SYSLOG_PORT]).decode_frames(frames, batch, rx_ns=time.time_ns()) == len(frames)
    t = pa.Table.from_batches([batch.to_arrow()]).drop_columns(["raw", "rx_time"])
    i = t.schema.get_field_index("timestamp")
    return {rec["message"]: rec for rec in t.set_column(i, "timestamp", t.column(i).cast(pa.int64())).to_pylist()}


def _ping(link: Link, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", link.sender_ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", *args],
                          capture_output=True, text=True, timeout=30)


def _attached(link: Link) -> list:
    info = json.loads(ip("-j", "-d", "link", "show", "dev", link.capture_if, ns=link.capture_ns).stdout)[0]
    return info.get("xdp", {}).get("attached", [])


# ---- tests -----------------------------------------------------------------------------

def test_program_sorts_frames_without_an_interface():
    """BPF_PROG_TEST_RUN over hand-made frames: what is redirected (here
    XDP_PASS + redirect_failed: no socket), passed untouched, or dropped."""
    pytest.importorskip("bcc", reason="needs python3-bpfcc")
    from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
    from scapy.layers.inet6 import ICMPv6ND_NS, IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
    from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
    from scapy.packet import Raw

    from ebpf.loader import read_counters, test_run, compile_program

    pay = b"<13>1 - host app - - - lcid=1 hi"
    udp = UDP(sport=40000, dport=SYSLOG_PORT) / pay
    syslog = {   # -> redirect (no socket here: XDP_PASS, counted redirect_failed)
        "ipv4": Ether() / IP(src="192.0.2.1") / udp,
        "ipv4 options": Ether() / IP(src="192.0.2.1", options=[IPOption_RR()]) / udp,
        "ipv6": Ether() / IPv6(src="2001:db8::1") / udp,
        "ipv6 hop-by-hop + first fragment": Ether() / IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment(m=1) / udp,
        "802.1Q": Ether() / Dot1Q(vlan=100) / IP() / udp,
        "QinQ 802.1ad": Ether(type=0x88A8) / Dot1AD(vlan=10) / Dot1Q(vlan=20) / IPv6() / udp,
        "ipv4 first fragment": Ether() / IP(flags="MF", frag=0) / udp,
    }
    passed = {   # -> XDP_PASS untouched
        "three VLAN tags": Ether() / Dot1Q(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / IP() / udp,
        "other UDP port": Ether() / IP() / UDP(dport=OTHER_PORT) / pay,
        "TCP/SSH": Ether() / IP() / TCP(dport=22),
        "ICMP": Ether() / IP() / ICMP(),
        "ARP": Ether() / ARP(),
        "IPv6 ND": Ether() / IPv6() / ICMPv6ND_NS(),
        "truncated UDP header": bytes(Ether() / IP() / udp)[:14 + 20 + 4],
        "IPv4 ethertype, no IP header": bytes(Ether(type=0x0800)),
    }
    fragments = {   # -> XDP_PASS, counted frag_passed
        "ipv4 later fragment": Ether() / IP(frag=100, proto=17) / Raw(b"y" * 30),
        "ipv6 later fragment": Ether() / IPv6() / IPv6ExtHdrFragment(offset=10, nh=17) / Raw(b"x" * 20),
    }
    denied = {   # deny list on: -> XDP_DROP
        "denied v4": Ether() / IP(src="10.9.1.1") / udp,
        "denied v6": Ether() / IPv6(src="2001:db8:99::5") / udp,
    }
    XDP_DROP, XDP_PASS = 1, 2
    bpf, fn = compile_program([SYSLOG_PORT, 5514], deny=["10.9.0.0/16", "2001:db8:99::/48"])
    try:
        for group, action in ((syslog, XDP_PASS), (passed, XDP_PASS), (fragments, XDP_PASS), (denied, XDP_DROP)):
            for name, frame in group.items():
                assert test_run(fn.fd, bytes(frame)) == action, name
        c = read_counters(bpf, [SYSLOG_PORT, 5514])
        total = len(syslog) + len(passed) + len(fragments) + len(denied)
        assert c == {"seen": total, "redirected": 0, "passed": total - len(denied),
                     "redirect_failed": len(syslog), "denied": len(denied), "frag_passed": len(fragments),
                     "throttled": 0, "port_hits": {SYSLOG_PORT: len(syslog) + len(denied), 5514: 0}}
    finally:
        bpf.cleanup()


@pytest.mark.slow
def test_capture_ipv4_ipv6_vlan_qinq_and_kernel_traffic_passes(tmp_path):
    n = 800
    with veth_link(queues=1) as link, Driver(link, 1) as drv:
        plan = _plan(n, ("v4", "v6", "vlan", "qinq"),
                     (mac_of(link.sender_if, link.sender_ns), mac_of(link.capture_if, link.capture_ns)))
        expected = _expected(plan)
        ready = drv.line(READY_TIMEOUT_S)
        assert ready.get("ready"), ready
        # ARP, ICMP and IPv6 ND go to the kernel while capturing
        p4, p6 = _ping(link, CAPTURE_V4), _ping(link, "-6", CAPTURE_V6)
        _send(link, [("v4", CAPTURE_V4, 41000, f"to the kernel {i}".encode(), b"") for i in range(5)], tmp_path,
              port=OTHER_PORT)
        _send(link, plan, tmp_path)
        time.sleep(0.5)
        out = drv.stop()

    context = f"\nstart-up: {ready['describe']}\nresult: {json.dumps({k: v for k, v in out.items() if k != 'records'})}"
    assert p4.returncode == 0, p4.stdout + p4.stderr + context
    assert p6.returncode == 0, p6.stdout + p6.stderr + context
    assert sorted(out["kernel_udp"]) == sorted(f"to the kernel {i}" for i in range(5)), context
    assert out["labels"] == [f"{link.capture_if} q0"]
    assert out["rcs"] == [0] and out["running"] == [False]

    records = out["records"][0]
    got = {r["message"]: r for r in records}
    assert len(records) == len(got) == n, f"{len(records)} records, {len(got)} distinct, of {n}{context}"
    for message, want in expected.items():
        assert got[message] == want
    assert {r["vlan"] for r in records} == {0, VLAN, QINQ_OUTER}
    assert sum(r["src_ip"] == SENDER_V6 for r in records) == n // 4

    nic = out["nic"][link.capture_if]
    assert nic["xdp_redirected"] == n and nic["xdp_redirect_failed"] == 0, context
    assert nic["kernel_drops"] == 0 and nic["xdp_denied"] == 0, context
    assert nic["port_hits"] == {str(SYSLOG_PORT): n}
    assert nic["xdp_seen"] == nic["xdp_redirected"] + nic["xdp_passed"]
    assert nic["xdp_passed"] >= 3 + 3 + 5, "pings and the port 9999 datagrams went to the kernel"
    rx = out["rx"][0]
    assert rx["packets"] == n and rx["ring_full_records"] == 0 and rx["kernel_drops"] == 0, context
    assert out["ring"][0]["records_published"] == n
    assert out["decoder"][0]["records"] == n
    assert rx["tsc_hz"] == 10**9 and rx["cycles_busy"] > 0
    assert _no_program_left(out)


def _no_program_left(out: dict) -> bool:
    info = json.loads(out["closed_attached"])[0]
    return "xdp" not in info


@pytest.mark.slow
def test_two_queues_both_receive_and_add_up(tmp_path):
    """veth picks the RX queue from the sender's TX queue, i.e. from the flow
    hash of each of the 16 sender sockets: both queues get datagrams."""
    n = 1600
    plan = _plan(n, ("v4", "v6"))
    with veth_link(queues=2) as link, Driver(link, 2) as drv:
        ready = drv.line(READY_TIMEOUT_S)
        assert ready.get("ready"), ready
        _send(link, plan, tmp_path)
        time.sleep(0.5)
        out = drv.stop()

    context = f"\nstart-up: {ready['describe']}\nresult: {json.dumps({k: v for k, v in out.items() if k != 'records'})}"
    assert out["labels"] == [f"{link.capture_if} q0", f"{link.capture_if} q1"]
    per_queue = [rx["packets"] for rx in out["rx"]]
    assert sum(per_queue) == n, context
    assert all(per_queue), f"one queue got nothing: {per_queue}{context}"
    messages = [r["message"] for recs in out["records"] for r in recs]
    assert len(messages) == len(set(messages)) == n
    nic = out["nic"][link.capture_if]
    assert nic["xdp_redirected"] == n and nic["xdp_redirect_failed"] == 0 and nic["kernel_drops"] == 0, context
    assert sorted(nic["queues"]) == ["0", "1"]
    # a flow stays on one queue
    by_port = {}
    for q, recs in enumerate(out["records"]):
        for r in recs:
            by_port.setdefault((r["src_ip"], r["src_port"]), set()).add(q)
    assert all(len(qs) == 1 for qs in by_port.values())


def test_stale_program_of_a_killed_run_is_replaced():
    with veth_link(queues=1) as link:
        holder = subprocess.Popen(["ip", "netns", "exec", link.capture_ns, sys.executable, "-c", HOLDER,
                                   link.capture_if], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, start_new_session=True)
        try:
            ready, _, _ = select.select([holder.stdout], [], [], READY_TIMEOUT_S)
            line = holder.stdout.readline() if ready else ""
            assert line.startswith("attached "), f"{line}{holder.stderr.read() if holder.poll() is not None else ''}"
            stale_id = int(line.split()[1])
            # a second LogCaster while the first lives: refused, the first stays
            busy = json.loads(_py(link.capture_ns, REPLACER, link.capture_if).stdout)
            assert busy["errno"] == 16 and "another LogCaster" in busy["error"], busy
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait(10)
        finally:
            if holder.poll() is None:
                os.killpg(holder.pid, signal.SIGKILL)
            holder.wait()
            holder.stdout.close(), holder.stderr.close()
        assert [a["prog"]["id"] for a in _attached(link)] == [stale_id], "the killed run's program stays attached"

        res = _py(link.capture_ns, REPLACER, link.capture_if)
        out = json.loads(res.stdout)
        assert out["replaced"] == stale_id, res.stderr
        assert "detaching a stale lc_xdp_syslog" in res.stderr
        assert out["attached"] == [[out["prog_id"], "lc_xdp_syslog", out["mode"]]], "exactly one program"
        assert out["after_close"] == []
        assert _attached(link) == []


def test_foreign_program_is_neither_stacked_on_nor_removed():
    with veth_link(queues=1) as link:
        res = _py(link.capture_ns, FOREIGN, link.capture_if)
        assert res.stdout.strip() == "attached", res.stderr
        out = json.loads(_py(link.capture_ns, REPLACER, link.capture_if).stdout)
        assert out["errno"] == 16 and "someone_elses" in out["error"] and "not LogCaster's" in out["error"], out
        assert [a["prog"]["name"] for a in _attached(link)] == ["someone_elses"]


def test_clear_errors(tmp_path):
    with veth_link(queues=2) as link:
        # more queues than the interface has
        with Driver(link, 4) as drv:
            out = drv.line(READY_TIMEOUT_S)
        assert out["errno"] == 22 and "has 2 RX queues" in out["error"], out
        assert _attached(link) == [], "nothing left attached after a failed start"
        # no such interface
        gone = Link(link.sender_ns, link.capture_ns, link.sender_if, "lcnosuchif0")
        with Driver(gone, 1) as drv:
            out = drv.line(READY_TIMEOUT_S)
        assert out["errno"] == 19 and "no such interface" in out["error"], out
        # without privileges
        res = subprocess.run(["ip", "netns", "exec", link.capture_ns, "setpriv", "--reuid=65534", "--regid=65534",
                              "--clear-groups", "--inh-caps=-all", sys.executable, "-c", REPLACER, link.capture_if],
                             cwd=REPO, capture_output=True, text=True, timeout=60)
        out = json.loads(res.stdout)
        assert out["errno"] == 1 and "CAP_NET_ADMIN" in out["error"], out
