"""The kernel-socket backend (appliance/capture/sockets.py, dpdk_shim/src/sock_rx.c)
on loopback: no root needed (ports >= 1024, picked by the kernel).

Driven as the supervisor drives a backend: start(plan), a ring and a decoder
per queue, rx_loop(...).launch(), stop_all(), wait(), nic_stats(), close().
Datagrams are sent with real UDP sockets; every one sent is accounted for:
received (a record with the fields lc_decode_frame gives for the same
datagram in a frame) or counted by the kernel as dropped (SO_RXQ_OVFL /
SO_MEMINFO), never both, never neither.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from appliance.capture.base import LoopOptions
from appliance.capture.sockets import MSG_SIZE, SocketBackend, SocketError, udp_listeners
from appliance.config import CaptureConfig, Config, PortConfig, SocketConfig, from_dict
from appliance.decoder import Decoder
from appliance.errors import ConfigError
from appliance.ring import Ring
from dpdk_shim import lib
from helpers import decode_frames, rows_of, udp_frame

ROOT = Path(__file__).resolve().parents[2]
CPUS = sorted(os.sched_getaffinity(0))
DEADLINE_S = 30.0


def config(name: str = "::", queues: int = 1, udp_ports: tuple[int, ...] = (), **socket_opts) -> Config:
    """A socket-backend config; socket_opts are the config's socket.* keys (rcvbuf, timestamps)."""
    return Config(capture=CaptureConfig(backend="socket", ports=(PortConfig(name=name, queues=queues),),
                                        udp_ports=udp_ports), sinks=(), socket=SocketConfig(**socket_opts))


def plan(queues: int) -> SimpleNamespace:
    return SimpleNamespace(queues=queues, rx_cores=tuple(CPUS[i % len(CPUS)] for i in range(queues)),
                           worker_cores=tuple(CPUS[-1] for _ in range(queues)))


class Reader(threading.Thread):
    """The worker's part: consume one ring to the end (producer closed and
    everything read), keeping the rows, releasing each batch."""

    def __init__(self, path: str, columns: list[str] | None = None):
        super().__init__(daemon=True)
        self.ring = Ring.attach(path)
        self.columns = columns
        self.rows: list[dict] = []
        self.batches = 0

    def run(self) -> None:
        deadline = time.monotonic() + DEADLINE_S
        try:
            while time.monotonic() < deadline:
                got = self.ring.next_batch(timeout=0.05)
                if got is None:
                    if self.ring.drained:
                        return
                    continue
                index, rb = got
                self.rows.extend(rows_of(rb, self.columns))
                self.batches += 1
                self.ring.release(index + 1)
        finally:
            self.ring.close()


@dataclass
class Capture:
    backend: SocketBackend
    port: int
    rings: list = field(default_factory=list)
    decoders: list = field(default_factory=list)
    loops: list = field(default_factory=list)
    readers: list = field(default_factory=list)

    def launch(self, *, columns: list[str] | None = None) -> None:
        for loop in self.loops:
            loop.launch()
        self.readers = [Reader(r.path, columns) for r in self.rings]
        for r in self.readers:
            r.start()

    def stop(self) -> list[dict]:
        """Stop the loops, wait for them and the readers; the rows of every queue."""
        self.backend.stop_all()
        for loop in self.loops:
            assert loop.wait(DEADLINE_S) == 0
            assert not loop.running
        for r in self.readers:
            r.join(DEADLINE_S)
            assert not r.is_alive()
        return [row for r in self.readers for row in r.rows]

    def stats(self, key: str) -> int:
        return sum(loop.stats()[key] for loop in self.loops)


@contextmanager
def socket_capture(queues: int = 1, *, name: str = "::", burst: int = 64, batch_size: int = 1024,
                   ring_bytes: int = 64 << 20, delay_us: int = 20_000, msg_size: int = MSG_SIZE, **socket_opts):
    backend = SocketBackend(config(name, queues, **socket_opts), port=0, msg_size=msg_size)
    paths: list[str] = []
    cap = None
    try:
        labels = backend.start(plan(queues))
        assert len(labels) == queues
        cap = Capture(backend, backend.sockets[0].port)
        options = LoopOptions(burst=burst, batch_max_delay_us=delay_us, batch_size=batch_size, batch_avg_payload=256)
        for i in range(queues):
            path = f"/dev/shm/logcaster-test-sock-{os.getpid()}-{uuid.uuid4().hex[:8]}-q{i}"
            ring = Ring.create(path, size=ring_bytes, capacity=batch_size, avg_payload=256, queue_id=i)
            paths.append(path)
            decoder = Decoder()
            cap.rings.append(ring)
            cap.decoders.append(decoder)
            cap.loops.append(backend.rx_loop(i, ring.c, decoder.c, CPUS[i % len(CPUS)], options))
        yield cap
    finally:
        backend.close()
        for r in (cap.readers if cap else []):
            r.join(DEADLINE_S)
        for ring in (cap.rings if cap else []):
            ring.close()
        for path in paths:
            Ring.unlink(path)


def payload(i: int) -> bytes:
    """Mixed syslog: RFC 5424, RFC 3164, a vendor-ish line, not syslog (bad UTF-8); unique by i."""
    kind = i % 4
    if kind == 0:
        return (f'<{i % 192}>1 2003-10-11T22:14:15.{i % 1000:03d}Z host{i} app {i} ID{i % 7} '
                f'[ex@32473 seq="{i}"] message {i}').encode()
    if kind == 1:
        return f"<34>Oct 11 22:14:15 mymachine su[{i}]: 'su root' failed {i}".encode()
    if kind == 2:
        return f"<189>{i}: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: Configured from console {i}".encode()
    return b"not syslog \xff\xfe " + str(i).encode()


def send(socks: list[tuple[socket.socket, tuple]], n: int, *, every: int = 50, pause_s: float = 0.001) -> list[bytes]:
    """Send payload(0..n-1) round robin over (socket, destination) pairs, pausing
    `pause_s` every `every` datagrams (0: as fast as possible). Returns them."""
    sent = []
    for i in range(n):
        s, dest = socks[i % len(socks)]
        p = payload(i)
        assert s.sendto(p, dest) == len(p)
        sent.append(p)
        if every and i % every == every - 1:
            time.sleep(pause_s)
    return sent


@contextmanager
def senders(port: int, families=(socket.AF_INET, socket.AF_INET6), count: int = 1, sndbuf: int | None = None):
    socks = []
    try:
        for _ in range(count):
            for fam in families:
                s = socket.socket(fam, socket.SOCK_DGRAM)
                if sndbuf:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
                s.bind(("127.0.0.1" if fam == socket.AF_INET else "::1", 0))
                socks.append((s, ("127.0.0.1" if fam == socket.AF_INET else "::1", port)))
        yield socks
    finally:
        for s, _ in socks:
            s.close()


def expected(row: dict) -> dict:
    """The row lc_decode_frame makes of the same datagram in a frame, at the same rx_time."""
    frame = udp_frame(row["raw"], src=row["src_ip"], dst=row["dst_ip"], sport=row["src_port"], dport=row["dst_port"])
    rows, _ = decode_frames([frame], rx_ns=row["rx_time"])
    return rows[0]


# ---- delivery and fields ------------------------------------------------------

@pytest.mark.parametrize("timestamps", [True, False], ids=["kernel-time", "clock-time"])
def test_every_datagram_arrives_with_the_frame_decoders_fields(timestamps):
    n = 2000
    with socket_capture(timestamps=timestamps) as cap, senders(cap.port) as socks:
        cap.launch()
        t0 = time.time_ns()
        sent = send(socks, n)
        t1 = time.time_ns()
        time.sleep(0.05)
        rows = cap.stop()
        loop = cap.loops[0].stats()
        nic = cap.backend.nic_stats()
        family_of = {s.getsockname()[1]: s.family for s, _ in socks}
    assert loop["packets"] == n and loop["kernel_drops"] == 0
    assert loop["bytes"] == sum(map(len, sent))
    assert loop["ring_full_records"] == 0 and loop["batches"] >= 1
    assert sorted(r["raw"] for r in rows) == sorted(sent)        # each exactly once
    assert cap.decoders[0].counters()["records"] == n
    assert nic == {f"udp:[::]:{cap.port}": {"kernel_drops": 0, "rcvbuf": cap.backend.sockets[0].rcvbuf, "sockets": 1}}
    for row in rows:
        assert t0 <= row["rx_time"] <= t1 + 50_000_000
        want_ip = "127.0.0.1" if family_of[row["src_port"]] == socket.AF_INET else "::1"
        assert (row["src_ip"], row["dst_ip"], row["dst_port"], row["vlan"]) == (want_ip, want_ip, cap.port, 0)
        assert row == expected(row)
    formats = {r["format"] for r in rows}
    assert formats == {"rfc5424", "rfc3164", "raw"}


def test_truncated_datagram_is_flagged():
    with socket_capture(msg_size=64) as cap, senders(cap.port, families=(socket.AF_INET,)) as socks:
        cap.launch()
        long_msg = b"<14>1 2003-10-11T22:14:15.003Z host app - - - " + b"x" * 200
        socks[0][0].sendto(long_msg, socks[0][1])
        socks[0][0].sendto(b"<14>short", socks[0][1])
        time.sleep(0.05)
        rows = cap.stop()
        loop = cap.loops[0].stats()
    by_len = sorted(rows, key=lambda r: len(r["raw"]))
    assert [r["raw"] for r in by_len] == [b"<14>short", long_msg[:64]]
    assert not by_len[0]["flags"] & lib.LC_F_TRUNCATED
    assert by_len[1]["flags"] & lib.LC_F_TRUNCATED
    assert loop["bytes"] == len(long_msg) + len(b"<14>short")    # what was sent, not what was kept


def test_ipv4_socket_destination_from_ip_pktinfo():
    # An IPv4-only socket on the wildcard: each datagram's destination comes
    # from IP_PKTINFO (all of 127/8 is local on loopback).
    with socket_capture(name="0.0.0.0") as cap, senders(cap.port, families=(socket.AF_INET,)) as socks:
        cap.launch()
        s = socks[0][0]
        for i, dst in enumerate(["127.0.0.1", "127.0.0.2", "127.0.0.3"]):
            s.sendto(payload(i), (dst, cap.port))
        time.sleep(0.05)
        rows = cap.stop()
    assert sorted((r["raw"], r["dst_ip"]) for r in rows) == sorted(
        (payload(i), dst) for i, dst in enumerate(["127.0.0.1", "127.0.0.2", "127.0.0.3"]))
    assert all(r == expected(r) for r in rows)


# ---- kernel drops -------------------------------------------------------------

def test_overflow_while_the_reader_is_stopped_is_counted_exactly():
    m = 20000
    with socket_capture(rcvbuf=4096) as cap, senders(cap.port, families=(socket.AF_INET,)) as socks:
        send(socks, m, every=0)                 # as fast as possible, nobody reading yet
        queued = cap.backend.sockets[0].meminfo()
        assert queued["drops"] > 0
        cap.launch()
        time.sleep(0.1)
        rows = cap.stop()
        loop = cap.loops[0].stats()
        nic = cap.backend.nic_stats()
    assert loop["kernel_drops"] > 0
    assert loop["packets"] + loop["kernel_drops"] == m
    assert len(rows) == loop["packets"] == cap.decoders[0].counters()["records"]
    assert len({r["raw"] for r in rows}) == len(rows)
    assert nic[f"udp:[::]:{cap.port}"]["kernel_drops"] == loop["kernel_drops"]


def test_overflow_during_capture_is_counted_exactly():
    m = 20000
    with socket_capture(rcvbuf=4096) as cap, senders(cap.port, families=(socket.AF_INET, socket.AF_INET6)) as socks:
        cap.launch(columns=["raw"])
        send(socks, m, every=0)
        rows = cap.stop()
        loop = cap.loops[0].stats()
    assert loop["packets"] + loop["kernel_drops"] == m
    assert loop["ring_full_records"] == 0
    assert len(rows) == loop["packets"]
    assert len({r["raw"] for r in rows}) == len(rows)


def test_stop_takes_what_the_socket_holds():
    n = 300
    with socket_capture() as cap, senders(cap.port) as socks:
        send(socks, n, every=0)
        deadline = time.monotonic() + 5
        while cap.backend.sockets[0].meminfo()["queued_bytes"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        cap.backend.stop_all()                  # before the loop even starts
        cap.launch()
        rows = cap.stop()
        loop = cap.loops[0].stats()
    assert loop["packets"] == n and loop["kernel_drops"] == 0 and len(rows) == n


# ---- several sockets on one port ------------------------------------------------

def test_reuseport_spreads_flows_and_counts_add_up():
    n, flows = 1600, 16
    with socket_capture(queues=2) as cap, senders(cap.port, families=(socket.AF_INET,), count=flows) as socks:
        assert len({s.port for s in cap.backend.sockets}) == 1
        cap.launch()
        sent = send(socks, n)
        time.sleep(0.05)
        rows = cap.stop()
        per_queue = [loop.stats()["packets"] for loop in cap.loops]
        drops = cap.stats("kernel_drops")
        per_reader = [len(r.rows) for r in cap.readers]
        nic = cap.backend.nic_stats()
    assert all(p > 0 for p in per_queue), per_queue
    assert sum(per_queue) == n and drops == 0
    assert per_reader == per_queue
    assert sorted(r["raw"] for r in rows) == sorted(sent)
    # A flow (source port) stays on one socket.
    queue_of = {}
    for qi, reader in enumerate(cap.readers):
        for r in reader.rows:
            assert queue_of.setdefault(r["src_port"], qi) == qi
    assert nic == {f"udp:[::]:{cap.port}": {"kernel_drops": 0, "rcvbuf": cap.backend.sockets[0].rcvbuf, "sockets": 2}}


# ---- life cycle -----------------------------------------------------------------

def _thread_cpu_s(tid: int) -> float:
    fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_idle_loop_sleeps_and_stops_promptly():
    with socket_capture() as cap:
        cap.launch()
        time.sleep(0.05)
        tid = cap.loops[0]._thread.native_id
        cpu0 = _thread_cpu_s(tid)
        time.sleep(1.0)
        cpu1 = _thread_cpu_s(tid)
        t = time.monotonic()
        cap.backend.stop_all()
        assert cap.loops[0].wait(DEADLINE_S) == 0
        stop_s = time.monotonic() - t
        rows = cap.stop()
        st = cap.loops[0].stats()
        closed = cap.rings[0].stats()["closed"]
    assert cpu1 - cpu0 < 0.1                    # it sleeps (clock ticks: coarse)
    assert stop_s < 0.1                         # stop flag seen within ~10 ms
    assert rows == [] and st["packets"] == 0
    assert 50 <= st["polls_idle"] <= 200        # a look every ~10 ms
    assert st["tsc_hz"] == 10**9
    assert st["cycles_idle"] > 0.9e9 and st["cycles_busy"] < 0.1e9
    assert cap.loops[0].stats_c.running == 0
    assert closed


def test_labels_describe_and_close():
    backend = SocketBackend(config("127.0.0.1", queues=3, rcvbuf=1 << 20), port=0)
    try:
        labels = backend.start(plan(3))
        port = backend.sockets[0].port
        assert labels == [f"udp:127.0.0.1:{port} q{i}" for i in range(3)]
        text = "\n".join(backend.describe())
        assert f"udp:127.0.0.1:{port}" in text and "3 socket(s)" in text and "SO_REUSEPORT" in text
        fds = [s.fd for s in backend.sockets]
        assert all(Path(f"/proc/self/fd/{fd}").exists() for fd in fds)
    finally:
        backend.close()
    assert all(s.fd == -1 for s in backend.sockets)
    assert all(str(a) != "127.0.0.1" for a in udp_listeners(port))


def test_the_backend_is_built_from_the_config_alone():
    """socket.rcvbuf and socket.timestamps are what the sockets get (the
    backend has no defaults of its own to drift from the config's)."""
    cfg = from_dict({"capture": {"backend": "socket", "ports": ["127.0.0.1"]}, "sinks": ["null"],
                     "socket": {"rcvbuf": "2MiB", "timestamps": False}})
    backend = SocketBackend(cfg, port=0)
    assert (backend.rcvbuf, backend.timestamps) == (2 << 20, False)
    try:
        backend.start(plan(1))
        assert "asked 2.0 MiB" in "\n".join(backend.describe())
    finally:
        backend.close()
    default = SocketBackend(from_dict({"capture": {"backend": "socket", "ports": ["127.0.0.1"]}, "sinks": ["null"]}))
    assert (default.rcvbuf, default.timestamps) == (SocketConfig().rcvbuf, True) == (32 << 20, True)


def test_plan_with_fewer_cores_than_queues():
    backend = SocketBackend(Config(capture=CaptureConfig(backend="socket", ports=(
        PortConfig(name="127.0.0.1", queues=2), PortConfig(name="::1", queues=2))), sinks=()), port=0)
    try:
        with pytest.raises(ConfigError, match=r"capture.ports\[1\].name: no core left"):
            backend.start(plan(2))
    finally:
        backend.close()


def test_interface_name_binds_to_the_device():
    with socket_capture(name="lo") as cap, senders(cap.port, families=(socket.AF_INET,)) as socks:
        assert cap.backend.listen[0].ifname == "lo"
        cap.launch()
        send(socks, 10)
        time.sleep(0.05)
        rows = cap.stop()
    assert len(rows) == 10 and {r["dst_ip"] for r in rows} == {"127.0.0.1"}


# ---- errors ---------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("reuseport", [False, True], ids=["plain", "so_reuseport"])
def test_port_in_use_names_the_user(reuseport):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        if reuseport:   # would silently share the traffic: refused all the same
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        port = other.getsockname()[1]
        backend = SocketBackend(config("::", queues=2, udp_ports=(port,)))
        with pytest.raises(SocketError) as exc:
            backend.start(plan(2))
        backend.close()
    assert exc.value.errno == errno.EADDRINUSE
    assert f"UDP port {port} is in use" in str(exc.value)
    if os.geteuid() == 0:
        assert f"pid {os.getpid()}" in str(exc.value)


def test_address_not_on_this_host():
    backend = SocketBackend(config("198.18.255.254"), port=0)
    with pytest.raises(SocketError) as exc:
        backend.start(plan(1))
    backend.close()
    assert exc.value.errno == errno.EADDRNOTAVAIL
    assert "not an address of this host" in str(exc.value)


@pytest.mark.parametrize("name", ["not-an-address", "300.1.2.3", "no_such_iface0"])
def test_bad_address_is_a_config_error(name):
    with pytest.raises(ConfigError, match=r"capture.ports\[0\].name: .* is not allowed with the socket backend"):
        SocketBackend(config(name))


def test_one_udp_port_only():
    with pytest.raises(ConfigError, match="capture.udp_ports: 514, 1514: the socket backend listens on one"):
        SocketBackend(config(udp_ports=(514, 1514)))


def test_privileged_port_without_the_capability():
    start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    if start <= 1:
        pytest.skip(f"net.ipv4.ip_unprivileged_port_start is {start}: no privileged ports on this host")
    port = next(p for p in range(start - 1, 0, -1) if not udp_listeners(p))
    code = (
        "import sys; from appliance.capture.sockets import SocketBackend, SocketError\n"
        "from types import SimpleNamespace as N\n"
        "from appliance.config import Config, CaptureConfig, PortConfig\n"
        "cap = CaptureConfig(ports=(PortConfig(name='127.0.0.1'),), udp_ports=(%d,))\n"
        "b = SocketBackend(Config(capture=cap, sinks=()))\n"
        "try:\n    b.start(N(queues=1))\nexcept SocketError as e:\n    print(e.errno, e); sys.exit(0)\n"
        "finally:\n    b.close()\n"
        "sys.exit('bound a privileged port')\n") % port
    cmd = [sys.executable, "-c", code]
    if os.geteuid() == 0:      # root: drop CAP_NET_BIND_SERVICE for the child
        cmd = ["setpriv", "--inh-caps=-net_bind_service", "--bounding-set=-net_bind_service"] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{errno.EACCES} ")
    assert f"port {port} is privileged" in out.stdout and "CAP_NET_BIND_SERVICE" in out.stdout
