"""The relay sink: every record's raw payload, unchanged, to other syslog
receivers (docs/RELAY.md).

Targets are `udp://`, `tcp://` or `tls://HOST:PORT`; every target gets
every record (fan-out). Framing and datagrams are done in C per batch
(dpdk_shim/src/relay.c): no per-record Python.

What "committed" means, so the ring keeps what may not have arrived:
- UDP: the kernel took the datagram (RFC 5426 has nothing more to know).
- TCP, TLS: the peer's TCP acknowledged every byte of the batch (the
  kernel's count of acknowledged bytes, TCP_INFO, passed the mark taken
  when the batch was handed over: acknowledged + SIOCOUTQ), and the
  connection stayed up `settle_s` after the batch was sent. A failure
  before that sends the batch again on a new connection: at-least-once;
  the records sent again are counted (`resent_records`). A receiver that
  keeps records in its own queue longer than `settle_s` and then crashes
  loses them (docs/RELAY.md).
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import ssl
import struct
import termios
import time
from collections import deque
from dataclasses import dataclass

from appliance.config import SinkConfig
from appliance.sinks.base import Sink, SinkError
from dpdk_shim import ffi, lib

_INITIAL_BUFFER = 4 << 20
_UDP_WAIT_S = 1.0                  # a full UDP socket buffer is waited on this long per try
_CLOSE_GRACE_S = 5.0               # at the end, beyond settle_s, for the peers to acknowledge
_SEND_TIMEOUT_S = 60.0             # one batch's sendall (MiBs on a slow link); then the peer is dead
_TCPI_BYTES_ACKED = 120            # offset of tcpi_bytes_acked in struct tcp_info (linux/tcp.h)


@dataclass
class _Sent:
    first: int                     # batches [first, end) sent at `at`
    end: int
    records: int
    at: float
    marks: list[int]               # per stream target: its acknowledged-byte count that covers them


class _Target:
    """One receiver: a connected socket (or none, between failures)."""

    def __init__(self, cfg: SinkConfig, scheme: str, host: str, port: int):
        self.cfg, self.scheme, self.host, self.port = cfg, scheme, host, port
        self.sock: socket.socket | None = None
        self.connects = 0
        self.udp_refused = 0        # ICMP port unreachable seen: the receiver was not listening
        self.context = None
        if scheme == "tls":
            self.context = ssl.create_default_context(cafile=cfg.tls_ca)
            self.context.check_hostname = cfg.tls_verify_hostname
            if cfg.tls_cert:
                self.context.load_cert_chain(cfg.tls_cert, cfg.tls_key)

    @property
    def name(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def stream(self) -> bool:
        return self.scheme != "udp"

    def connect(self) -> socket.socket:
        if self.sock is not None:
            return self.sock
        try:
            if self.stream:     # every address of the name in turn, as a TCP client does
                sock = socket.create_connection((self.host, self.port), timeout=self.cfg.connect_timeout_s)
            else:
                info = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)[0]
                sock = socket.socket(info[0], socket.SOCK_DGRAM)
                sock.connect(info[4])
            sock.settimeout(self.cfg.connect_timeout_s)
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(_SEND_TIMEOUT_S)
        except (OSError, ssl.SSLError) as exc:
            raise SinkError(f"relay sink: cannot connect to {self.name}: {_why(exc)}",
                            errno=_errno(exc)) from None
        if self.stream:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.connects += 1
        return sock

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def acked(self) -> int:
        """Bytes of this connection the peer's TCP acknowledged (TCP_INFO)."""
        info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCPI_BYTES_ACKED + 8)
        return struct.unpack_from("<Q", info, _TCPI_BYTES_ACKED)[0]

    def mark(self) -> int:
        """The acknowledged-byte count that covers everything handed to the
        kernel so far: acknowledged + still in the send queue (SIOCOUTQ)."""
        buf = fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ, b"\0" * 4)
        return self.acked() + struct.unpack("i", buf)[0]

    def gone(self) -> bool:
        """A syslog receiver does not write; a closed or reset connection
        reads as end or error (TLS: session tickets and other records are
        read and dropped; "want read" means alive)."""
        readable, _, _ = select.select([self.sock], [], [], 0)
        if not readable:
            return False
        try:
            if isinstance(self.sock, ssl.SSLSocket):
                self.sock.setblocking(False)
                try:
                    return self.sock.recv(65536) == b""
                finally:
                    self.sock.settimeout(_SEND_TIMEOUT_S)
            return self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return False
        except (OSError, ssl.SSLError):
            return True


class RelaySink(Sink):
    kind = "relay"

    def __init__(self, cfg: SinkConfig, queue_id: int, run_id: int = 0):
        super().__init__(cfg, queue_id, run_id)
        self.framing = lib.LC_RELAY_LF if cfg.framing == "lf" else lib.LC_RELAY_OCTETS
        try:
            self.targets = [_Target(cfg, *t) for t in cfg.targets]
        except (OSError, ssl.SSLError) as exc:
            raise SinkError(f"relay sink: TLS files: {_why(exc)}", errno=_errno(exc)) from None
        self.streams = [t for t in self.targets if t.stream]
        self._grow(_INITIAL_BUFFER)
        self._used = ffi.new("uint64_t *")
        self._unsettled: deque[_Sent] = deque()
        self.bytes = 0
        self.udp_too_big = 0        # records no UDP datagram can carry to that target (EMSGSIZE): not sent
        self.resent_records = 0     # sent again after a failure (the receiver may hold them twice)
        self.failures = 0

    def _grow(self, size: int) -> None:
        self._buf = ffi.new("char[]", size)
        self._size = size

    # ---- the Sink contract ------------------------------------------------------------

    def write(self, taken) -> None:
        first = max(taken.first, self.need)
        if first >= taken.end:
            return
        records = 0
        for target in self.targets:
            target.connect()
        for seq in range(first, taken.end):
            hdr = taken.hdrs[seq - taken.first]
            try:
                for target in self.targets:
                    self._send(target, hdr)
            except SinkError:
                # what this take sent before the failure goes again (counted by abort)
                self._unsettled.append(_Sent(first, seq + 1, records + hdr.count, time.monotonic(), []))
                raise
            records += hdr.count
        if self.streams:
            self._unsettled.append(_Sent(first, taken.end, records, time.monotonic(), self._marks()))
        self.records += records
        self.batches += taken.end - first
        self.need = taken.end

    def committed(self) -> int:
        return self._unsettled[0].first if self._unsettled else self.need

    def tick(self, now: float, ring_bytes: int = 0) -> None:
        if not self._unsettled:
            return
        for target in self.streams:
            if target.sock is None or target.gone():
                self._fail(target, "the receiver closed the connection")
        try:
            acked = [t.acked() for t in self.streams]
        except OSError as exc:
            raise SinkError(f"relay sink: reading TCP_INFO: {exc.strerror}", errno=exc.errno) from None
        while self._unsettled:
            sent = self._unsettled[0]
            if sent.at > now - self.cfg.settle_s or not sent.marks or \
                    any(a < m for a, m in zip(acked, sent.marks)):
                break
            self._unsettled.popleft()

    def _marks(self) -> list[int]:
        try:
            return [t.mark() for t in self.streams]
        except OSError as exc:
            raise SinkError(f"relay sink: reading the send queue: {exc.strerror}", errno=exc.errno) from None

    def abort(self) -> None:
        """Everything not settled goes again, on new connections."""
        self.resent_records += sum(s.records for s in self._unsettled)
        if self._unsettled:
            self.need = self._unsettled[0].first
        self._unsettled.clear()
        for target in self.streams:
            target.close()

    def close(self) -> None:
        """The capture ended: wait until the peers have everything, then hang up."""
        deadline = time.monotonic() + self.cfg.settle_s + _CLOSE_GRACE_S
        while self._unsettled:
            now = time.monotonic()
            self.tick(now)
            if not self._unsettled:
                break
            if now > deadline:
                raise SinkError(f"relay sink: {sum(s.records for s in self._unsettled)} records not "
                                f"acknowledged by {', '.join(t.name for t in self.streams)} in time")
            time.sleep(0.05)
        for target in self.targets:
            target.close()

    def stats(self) -> dict:
        return {**super().stats(), "bytes": self.bytes, "resent_records": self.resent_records,
                "failures": self.failures, "udp_too_big": self.udp_too_big,
                "targets": {t.name: {"connects": t.connects, "udp_refused": t.udp_refused,
                                     "connected": t.sock is not None} for t in self.targets}}

    # ---- sending ----------------------------------------------------------------------

    def _send(self, target: _Target, hdr) -> None:
        if target.stream:
            self._send_stream(target, hdr)
        else:
            self._send_udp(target, hdr)

    def _send_stream(self, target: _Target, hdr) -> None:
        row = 0
        while row < hdr.count:
            n = lib.lc_relay_frame(hdr, row, hdr.count - row, self.framing, self._buf, self._size, self._used)
            if n <= 0:
                self._grow(self._size * 2)      # one 64 KiB payload bigger than the buffer
                continue
            try:
                target.sock.sendall(ffi.buffer(self._buf, self._used[0]))
            except (OSError, ssl.SSLError) as exc:
                self._fail(target, _why(exc), _errno(exc))
            self.bytes += self._used[0]
            row += n

    def _send_udp(self, target: _Target, hdr) -> None:
        row, fd = 0, target.sock.fileno()
        while row < hdr.count:
            n = lib.lc_relay_udp(fd, hdr, row, hdr.count - row)
            if n == -errno.ECONNREFUSED:
                target.udp_refused += 1         # reported once per ICMP: the next try sends
                continue
            if n == -errno.EMSGSIZE:
                self.udp_too_big += 1           # no datagram to this target carries it: counted, skipped
                row += 1
                continue
            if n < 0 and -n not in (errno.EAGAIN, errno.ENOBUFS):
                self._fail(target, os.strerror(-n), -n)
            if n > 0:
                self.bytes += _raw_bytes(hdr, row, row + n)
                row += n
            if row < hdr.count:
                _, writable, _ = select.select([], [target.sock], [], _UDP_WAIT_S)
                if not writable:
                    self._fail(target, f"the socket took nothing for {_UDP_WAIT_S} s")
                if n <= 0:
                    time.sleep(0.001)           # ENOBUFS: writable at once, the device queue is not

    def _fail(self, target: _Target, why: str, err: int | None = None) -> None:
        self.failures += 1
        target.close()
        raise SinkError(f"relay sink: {target.name}: {why}", errno=err)


def _raw_bytes(hdr, first: int, end: int) -> int:
    """Payload bytes of rows [first, end): one subtraction of raw's offsets."""
    offs = ffi.cast("int32_t *", ffi.cast("char *", hdr) + hdr.cols[lib.LC_COL_RAW].values_off)
    return offs[end] - offs[first]


def _errno(exc: BaseException) -> int | None:
    """The OS error number of a socket error; none for TLS errors (theirs are OpenSSL's)."""
    return None if isinstance(exc, ssl.SSLError) else getattr(exc, "errno", None)


def _why(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, socket.timeout):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc)
