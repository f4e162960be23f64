"""Kernel UDP sockets as a capture backend: the fallback where neither DPDK
nor AF_XDP can run (laptops, containers, CI smoke tests).

One UDP socket per RX queue. The sockets of one listening address share it
with SO_REUSEPORT (the kernel spreads flows over them by a hash of addresses
and ports), and each is read by a C recvmmsg loop (dpdk_shim/src/sock_rx.c)
on its own thread, pinned to the queue's RX core; cffi releases the GIL for
the whole loop and nothing runs in Python per datagram. An idle loop sleeps.

What the config means here:
  capture.udp_ports        the UDP port to listen on: one port in this release
                           (several are refused); none configured: 514
  capture.ports[i].name    where to listen: an IP address ("0.0.0.0"; "::" is
                           IPv4 and IPv6; "198.18.0.1"), or a network
                           interface ("eth1": every address, only datagrams
                           arriving on that interface, SO_BINDTODEVICE)
  capture.ports[i].queues  sockets (and RX loops, rings, workers) on it
The other port keys (vdev, descriptors, ...) are DPDK's and unused here.

Loss: datagrams the kernel drops for a socket (receive buffer full) are
counted by the kernel; the loop reports them as kernel_drops (per queue, and
per listening address in nic_stats()), so sent = received + kernel_drops
holds exactly once the loops ended.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass

from appliance.batch import Batch
from appliance.capture.base import LoopOptions, rxq_stats_dict
from appliance.config import CaptureConfig, Config
from appliance.errors import ConfigError, LogCasterError
from dpdk_shim import ERRLEN, errbuf, ffi, lib

log = logging.getLogger(__name__)

SYSLOG_PORT = 514
MSG_SIZE = lib.LC_SOCK_MAX_MSG    # receive buffer per datagram: no datagram truncated
STOP_TIMEOUT_S = 5.0              # loops look at their stop flag every ~10 ms


class SocketError(LogCasterError):
    """A UDP socket could not be opened or bound; the message says why and what to do."""


@dataclass(frozen=True)
class Listen:
    """Where a group of sockets listens: an address (or an interface) and a port."""

    addr: str           # bind address text
    ifname: str         # "" or the interface the sockets are bound to
    port: int           # 0: the kernel picks (the group's first socket), the others join it
    queues: int
    key: str            # config key it came from, for errors

    def name(self, port: int | None = None) -> str:
        """'udp:<addr>:<port>' ([v6] in brackets; the interface name when bound to one)."""
        port = self.port if port is None else port
        host = self.ifname or (f"[{self.addr}]" if ":" in self.addr else self.addr)
        return f"udp:{host}:{port}"


def listen_points(capture: CaptureConfig, *, port: int | None = None, sysfs: str = "/sys") -> list[Listen]:
    """The config's listening addresses, in capture.ports order (one per port entry).
    `port` overrides capture.udp_ports (0: any free port, for tests)."""
    if port is None:
        if len(capture.udp_ports) > 1:
            raise ConfigError(
                f"capture.udp_ports: {', '.join(map(str, capture.udp_ports))}: the socket backend listens on one "
                f"UDP port in this release (run one instance per port, or use the dpdk or afxdp backend)")
        port = capture.udp_ports[0] if capture.udp_ports else SYSLOG_PORT
    out = []
    for i, p in enumerate(capture.ports):
        key = f"capture.ports[{i}].name"
        try:
            addr, ifname = str(ipaddress.ip_address(p.name)), ""
        except ValueError:
            if not os.path.exists(os.path.join(sysfs, "class", "net", p.name)):
                raise ConfigError(
                    f"{key}: {p.name!r} is not allowed with the socket backend (an IP address to listen on, "
                    f"such as 0.0.0.0, :: or 198.18.0.1, or the name of a network interface)") from None
            addr, ifname = ("::" if os.path.exists("/proc/net/if_inet6") else "0.0.0.0"), p.name
        out.append(Listen(addr, ifname, port, p.queues, key))
    return out


# ---- who else listens on the port ------------------------------------------

def _proc_addr(hexaddr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address of /proc/net/udp{,6}: 32-bit words in host byte order."""
    raw = bytes.fromhex(hexaddr)
    if sys.byteorder == "little":
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(raw)


def udp_listeners(port: int, proc: str = "/proc/net") -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Local addresses of the UDP sockets bound to `port` in this network namespace."""
    out = []
    for name in ("udp", "udp6"):
        try:
            with open(os.path.join(proc, name)) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 2:
                hexaddr, _, hexport = fields[1].partition(":")
                if int(hexport, 16) == port:
                    out.append(_proc_addr(hexaddr))
    return out


def _unmapped(a):
    return a.ipv4_mapped or a if a.version == 6 else a


def _overlap(a, b) -> bool:
    """Two bound addresses take the same datagrams (one is a wildcard, or they are equal)."""
    a, b = _unmapped(a), _unmapped(b)
    return a.is_unspecified or b.is_unspecified or a == b


def who_uses(port: int) -> str:
    """What `ss` says holds UDP port `port` ('' if it cannot tell)."""
    try:
        out = subprocess.run(["ss", "-Hulpn", f"sport = :{port}"], capture_output=True, text=True,
                             timeout=2).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    users = sorted(set(re.findall(r'\("([^"]+)",pid=(\d+)', out)))
    if users:
        return ", ".join(f"{name} (pid {pid})" for name, pid in users)
    local = [line.split()[3] for line in out.splitlines() if len(line.split()) > 3]
    return f"sockets on {', '.join(local)} (run as root to see which process)" if local else ""


def _sysctl(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "?"


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n / 1024:.0f} KiB"


# ---- sockets and loops -------------------------------------------------------

@dataclass
class _Socket:
    listen: Listen
    fd: int
    port: int               # bound port
    rcvbuf: int             # SO_RCVBUF as the kernel reports it (twice the granted request)
    rcvbuf_forced: bool
    loop: "SocketLoop | None" = None

    def meminfo(self) -> dict:
        m = ffi.new("struct lc_sock_mem *")
        rc = lib.lc_sock_meminfo(self.fd, m)
        if rc < 0:
            raise SocketError(f"{self.listen.name(self.port)}: reading SO_MEMINFO", errno=-rc)
        return {"queued_bytes": m.rmem_alloc, "rcvbuf": m.rcvbuf, "drops": m.drops}


class SocketLoop:
    """The C recvmmsg loop of one socket, on a thread pinned to `cpu`, feeding one ring."""

    def __init__(self, sock: _Socket, index: int, ring, decoder, cpu: int | None, options: LoopOptions,
                 msg_size: int = MSG_SIZE, stats=None):
        self.sock, self.index, self.cpu = sock, index, cpu
        self.stats_c = stats if stats is not None else ffi.new("struct lc_rxq_stats *")
        # Decoded into while the ring is full, then counted as lost (ring_full).
        self._scratch = Batch(capacity=options.batch_size, avg_payload=options.batch_avg_payload, queue_id=index)
        self._keep = (ring, decoder)
        self.conf = ffi.new("struct lc_sock_loop *", {
            "fd": sock.fd, "queue_id": index, "burst": min(options.burst, lib.LC_SOCK_MAX_BURST),
            "msg_size": msg_size, "batch_max_delay_us": options.batch_max_delay_us,
            "stop_after": options.stop_after, "idle_stop_ms": options.idle_stop_ms,
            "ring": getattr(ring, "c", ring), "decoder": getattr(decoder, "c", decoder),
            "stats": self.stats_c, "scratch": self._scratch.hdr,
        })
        self._thread: threading.Thread | None = None
        self.rc = 0

    def launch(self) -> None:
        if self._thread is not None:
            raise LogCasterError(f"the RX loop of queue {self.index} was launched already")
        self._thread = threading.Thread(target=self._run, name=f"logcaster-rx-q{self.index}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self.cpu is not None:
            try:
                os.sched_setaffinity(0, {self.cpu})     # this thread only
            except OSError as exc:
                log.warning("queue %d: cannot pin the RX loop to CPU %d (%s); it runs unpinned",
                            self.index, self.cpu, exc)
        self.rc = lib.lc_sock_run(self.conf)
        if self.rc < 0:
            log.error("queue %d: the RX loop of %s ended: %s", self.index, self.sock.listen.name(self.sock.port),
                      os.strerror(-self.rc))

    @property
    def launched(self) -> bool:
        return self._thread is not None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        lib.lc_sock_stop(self.conf)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the loop to end (it must have been asked to stop, or have
        stop_after); returns 0 or -errno. 0 for a loop never launched."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.rc

    def stats(self) -> dict:
        return rxq_stats_dict(self.stats_c)


class SocketBackend:
    """UDP sockets read by C recvmmsg loops (see the module docstring).

    Built from the config alone: socket.rcvbuf (bytes per socket,
    SO_RCVBUFFORCE with CAP_NET_ADMIN, else capped by net.core.rmem_max),
    socket.timestamps (rx_time from the kernel's SO_TIMESTAMPNS, else the
    clock when recvmmsg returned). The keywords are for tests: msg_size
    (receive buffer per datagram; smaller ones truncate, flagged TRUNCATED),
    port (overrides capture.udp_ports; 0 = any free port), sysfs."""

    name = "socket"

    def __init__(self, cfg: Config, *, msg_size: int = MSG_SIZE, port: int | None = None, sysfs: str = "/sys"):
        if not 1 <= msg_size <= lib.LC_SOCK_MAX_MSG:
            raise ValueError(f"msg_size {msg_size}: 1 to {lib.LC_SOCK_MAX_MSG}")
        self.cfg = cfg
        self.listen = listen_points(cfg.capture, port=port, sysfs=sysfs)
        self.rcvbuf, self.timestamps, self.msg_size = cfg.socket.rcvbuf, cfg.socket.timestamps, msg_size
        self.sockets: list[_Socket] = []

    # -- start ----------------------------------------------------------------

    def start(self, plan) -> list[str]:
        """Open and bind the sockets (queues of each listening address, at most
        plan.queues in all); returns a label per queue, plan order."""
        self._refuse_shared_port()
        try:
            for lp in self.listen:
                left = plan.queues - len(self.sockets)
                if left <= 0:
                    raise ConfigError(f"{lp.key}: no core left for {lp.name()} (the plan has {plan.queues} queues)")
                port = lp.port
                for _ in range(min(lp.queues, left)):
                    sock = self._open(lp, port)
                    port = sock.port            # port 0: the others join the one the kernel picked
                    self.sockets.append(sock)
        except BaseException:
            self.close()
            raise
        labels, count = [], {}
        for s in self.sockets:
            name = s.listen.name(s.port)
            labels.append(f"{name} q{count.setdefault(name, 0)}")
            count[name] += 1
        return labels

    def _refuse_shared_port(self) -> None:
        """SO_REUSEPORT lets another process of this user bind the port too and
        silently take part of the traffic: refuse a port something already
        listens on, whether or not it set SO_REUSEPORT."""
        for lp in self.listen:
            if lp.port == 0:
                continue
            ours = ipaddress.ip_address(lp.addr)
            if any(_overlap(ours, theirs) for theirs in udp_listeners(lp.port)):
                raise self._bind_error(errno.EADDRINUSE, lp, lp.port, "")

    def _open(self, lp: Listen, port: int) -> _Socket:
        conf = ffi.new("struct lc_sock_conf *", {
            "addr": lp.addr.encode(), "ifname": lp.ifname.encode(), "port": port,
            "reuseport": int(lp.queues > 1), "timestamps": int(self.timestamps), "v6only": 0,
            "rcvbuf": self.rcvbuf,
        })
        info = ffi.new("struct lc_sock_info *")
        err = errbuf()
        fd = lib.lc_sock_open(conf, info, err, ERRLEN)
        if fd < 0:
            raise self._bind_error(-fd, lp, port, ffi.string(err).decode(errors="replace"))
        return _Socket(lp, fd, info.port, info.rcvbuf, bool(info.rcvbuf_forced))

    @staticmethod
    def _bind_error(code: int, lp: Listen, port: int, detail: str) -> SocketError:
        where = f"{lp.key} ({lp.name(port)})"
        if code == errno.EADDRINUSE:
            who = who_uses(port)
            msg = f"{where}: UDP port {port} is in use" + (f" by {who}" if who else "") + \
                  " (stop it, or listen on another port or address)"
        elif code == errno.EACCES:
            start = _sysctl("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            msg = (f"{where}: port {port} is privileged (below net.ipv4.ip_unprivileged_port_start = {start}): "
                   f"run as root or with CAP_NET_BIND_SERVICE (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE), "
                   f"or listen on a port >= {start}")
        elif code == errno.EADDRNOTAVAIL:
            msg = f"{where}: {lp.addr} is not an address of this host (`ip -br addr` lists them)"
        elif code == errno.ENODEV:
            msg = f"{where}: no network interface {lp.ifname!r}"
        elif code == errno.EAFNOSUPPORT:
            msg = f"{where}: IPv6 is disabled on this host: listen on 0.0.0.0"
        elif code == errno.EPERM and lp.ifname:
            msg = f"{where}: binding to interface {lp.ifname} needs CAP_NET_RAW here"
        else:
            msg = f"{where}: {detail}"
        return SocketError(msg, errno=code)

    def describe(self) -> list[str]:
        lines = []
        for lp in self.listen:
            socks = [s for s in self.sockets if s.listen is lp]
            if not socks:
                continue
            s = socks[0]
            what = "IPv4 and IPv6" if lp.addr == "::" else f"IPv{ipaddress.ip_address(lp.addr).version}"
            on = f" on interface {lp.ifname}" if lp.ifname else ""
            share = " sharing it with SO_REUSEPORT (flows spread by address/port hash)" if len(socks) > 1 else ""
            lines.append(f"socket backend: {lp.name(s.port)} ({what}{on}), {len(socks)} socket(s){share}; "
                         f"receive buffer {_mib(s.rcvbuf)} each (asked {_mib(self.rcvbuf)}, the kernel reports "
                         f"twice the request)")
            if self.rcvbuf and s.rcvbuf < 2 * self.rcvbuf:
                rmem_max = _sysctl("/proc/sys/net/core/rmem_max")
                lines.append(f"  warning: receive buffer capped by net.core.rmem_max = {rmem_max} (SO_RCVBUFFORCE "
                             f"needs CAP_NET_ADMIN): sysctl -w net.core.rmem_max={self.rcvbuf}")
        return lines

    # -- loops ----------------------------------------------------------------

    def rx_loop(self, index: int, ring, decoder, cpu: int | None, options: LoopOptions, stats=None) -> SocketLoop:
        sock = self.sockets[index]
        if sock.loop is not None and sock.loop.running:
            raise LogCasterError(f"queue {index}: its RX loop is still running")
        sock.loop = SocketLoop(sock, index, ring, decoder, cpu, options, self.msg_size, stats=stats)
        return sock.loop

    def stop_all(self) -> None:
        for s in self.sockets:
            if s.loop is not None:
                s.loop.stop()

    def nic_stats(self) -> dict[str, dict]:
        """Per listening address: kernel drops (as the loops counted them when
        they ended; the socket's live count if its loop never ran), the
        receive buffer the kernel granted, and the socket count."""
        out: dict[str, dict] = {}
        for s in self.sockets:
            entry = out.setdefault(s.listen.name(s.port), {"kernel_drops": 0, "rcvbuf": s.rcvbuf, "sockets": 0})
            if s.loop is not None and s.loop.launched:
                entry["kernel_drops"] += s.loop.stats_c.kernel_drops
            elif s.fd >= 0:
                entry["kernel_drops"] += s.meminfo()["drops"]
            entry["sockets"] += 1
        return out

    def close(self) -> None:
        """Stop the loops, wait for them, close the sockets (a socket whose loop
        does not end is left open rather than closed under it)."""
        self.stop_all()
        for s in self.sockets:
            if s.loop is not None:
                s.loop.wait(STOP_TIMEOUT_S)
                if s.loop.running:
                    log.error("queue %d: RX loop did not stop; leaving its socket open", s.loop.index)
                    continue
            if s.fd >= 0:
                os.close(s.fd)
                s.fd = -1

    def __enter__(self) -> "SocketBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
