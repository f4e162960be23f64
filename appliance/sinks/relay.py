"""The relay sink: every record's raw payload, unchanged, to other syslog
receivers (docs/RELAY.md).

Targets are `udp://`, `tcp://` or `tls://HOST:PORT`; every target gets
every record (fan-out). Framing and datagrams are done in C per batch
(dpdk_shim/src/relay.c): no per-record Python.

What "committed" means, so the ring keeps what may not have arrived:
- UDP: the kernel took the datagram (RFC 5426 has nothing more to know).
- TCP, TLS: the peer's TCP acknowledged every byte sent (the socket's send
  queue was seen empty), and the connection stayed up `settle_s` after the
  batch was sent, with nothing read from it (a receiver that dies or
  closes makes the socket readable). A failure before that sends the
  batch again on a new connection: at-least-once; the records sent again
  are counted (`resent_records`).
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


@dataclass
class _Sent:
    first: int                     # batches [first, end) sent at `at`
    end: int
    records: int
    at: float


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

    def unacked(self) -> int:
        """Bytes sent that the peer's TCP has not acknowledged (SIOCOUTQ)."""
        buf = fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ, b"\0" * 4)
        return struct.unpack("i", buf)[0]

    def gone(self) -> bool:
        """A syslog receiver never writes: a readable socket has been closed or reset."""
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)


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
        self._acked_at = 0.0        # when every stream's send queue was last seen empty
        self.bytes = 0
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
                self._unsettled.append(_Sent(first, seq + 1, records + hdr.count, time.monotonic()))
                raise
            records += hdr.count
        if self.streams:
            self._unsettled.append(_Sent(first, taken.end, records, time.monotonic()))
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
            if all(t.unacked() == 0 for t in self.streams):
                self._acked_at = now
        except OSError as exc:
            raise SinkError(f"relay sink: reading the send queue: {exc.strerror}", errno=exc.errno) from None
        while self._unsettled and self._unsettled[0].at <= min(self._acked_at, now - self.cfg.settle_s):
            self._unsettled.popleft()

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
                "failures": self.failures,
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
            if n < 0 and -n not in (errno.EAGAIN, errno.ENOBUFS):
                self._fail(target, os.strerror(-n), -n)
            if n > 0:
                self.bytes += _raw_bytes(hdr, row, row + n)
                row += n
            if row < hdr.count:
                _, writable, _ = select.select([], [target.sock], [], _UDP_WAIT_S)
                if not writable:
                    self._fail(target, f"the socket took nothing for {_UDP_WAIT_S} s")

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
