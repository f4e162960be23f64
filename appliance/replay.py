"""`logcaster replay`: the frames of a pcap into a network interface or a TAP,
at C speed (dpdk_shim/src/replay.c), paced or at top speed.

Two ways in, for the two ways an appliance listens:
  interface   frames leave by INTERFACE (an AF_PACKET socket, sendmmsg): a
              veth's peer receives them, and so does the DPDK net_tap PMD
              that owns a TAP (`--iface dtap0`).
  TAP         replay owns the TAP: frames written into it are received by
              the kernel on it, where AF_XDP or sockets capture them
              (`--tap lc0`). A TAP that does not exist is created (marked as
              LogCaster's, appliance/links.py) and removed at the end unless
              --keep; a TAP replay created before (--keep) is reused.
Both refuse the default-route interface always, and any interface
LogCaster did not create unless --force.

The file is read into memory once (--loop repeats it without the disk);
Python only draws progress between C calls of at most SLICE_S.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from pyroute2 import IPRoute, NetlinkError

from appliance import links
from appliance.errors import ConfigError, EnvironmentProblem, InputError, LogCasterError
from dpdk_shim import ERRLEN, check, errbuf, ffi, lib

SLICE_S = 0.1                   # C sends this long at most between progress updates
SOL_PACKET = 263                # linux/socket.h
PACKET_QDISC_BYPASS = 20        # linux/if_packet.h: straight to the driver, as the NIC would see it
SNDBUF = 4 << 20
# linux/if_tun.h
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_MULTI_QUEUE = 0x0100

PACES = {"topspeed": lib.LC_PACE_TOPSPEED, "pps": lib.LC_PACE_PPS, "mbps": lib.LC_PACE_BPS,
         "capture": lib.LC_PACE_CAPTURE}


class ReplayError(LogCasterError):
    """Sending failed midway (the interface went away, the TAP was closed)."""


@dataclass(frozen=True)
class Pace:
    """How fast: "topspeed", "pps" (rate packets/s), "mbps" (rate Mbit/s),
    or "capture" (the capture's own timing)."""

    kind: str
    rate: float = 0.0

    def c_rate(self) -> int:
        return int(self.rate * 1_000_000) if self.kind == "mbps" else int(self.rate)

    def describe(self) -> str:
        return {"topspeed": "top speed", "pps": f"{self.rate:,.0f} packets/s", "mbps": f"{self.rate:g} Mbit/s",
                "capture": "the capture's own timing"}[self.kind]


class Frames:
    """The frames of a pcap/pcapng file (Ethernet), in memory, in C."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise InputError(f"{self.path}: no such file", errno=errno.ENOENT)
        out = ffi.new("struct lc_replay **")
        info = ffi.new("struct lc_replay_info *")
        err = errbuf()
        check(lib.lc_replay_load(self.path.encode(), out, info, err, ERRLEN), f"{self.path}: cannot replay", err,
              error=InputError)
        self.c = out[0]
        self.frames, self.bytes = info.frames, info.bytes
        self.span_ns = info.last_ns - info.first_ns
        self.max_len, self.truncated = info.max_len, info.truncated

    def close(self) -> None:
        if self.c is not None:
            lib.lc_replay_free(self.c)
            self.c = None

    def __enter__(self) -> "Frames":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Target:
    """Where the frames go: an fd and how to write to it."""

    kind: int
    fd: int = -1
    name: str = ""

    def describe(self) -> str:
        raise NotImplementedError

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Target":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class InterfaceTarget(Target):
    """Frames leave by `ifname` (AF_PACKET, bypassing the qdisc)."""

    kind = lib.LC_REPLAY_PACKET

    def __init__(self, ifname: str, *, force: bool = False):
        links.check_may_use(ifname, force=force, doing="replay --iface")
        self.name = ifname
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)   # protocol 0: sends, never receives
        except PermissionError:
            raise EnvironmentProblem("replay --iface: AF_PACKET sockets need CAP_NET_RAW (run as root)",
                                     errno=errno.EPERM) from None
        try:
            sock.bind((ifname, 0))
            sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
        except OSError as exc:
            sock.close()
            raise EnvironmentProblem(f"replay --iface {ifname}: cannot send on it", errno=exc.errno) from None
        self.fd = sock.detach()

    def describe(self) -> str:
        return f"out of interface {self.name} (AF_PACKET)"


class TapTarget(Target):
    """Frames written into TAP `name`: the kernel receives them on it."""

    kind = lib.LC_REPLAY_TAP

    def __init__(self, name: str, *, keep: bool = False, force: bool = False):
        self.name, self.created, self.keep = name, False, keep
        if links.exists(name):
            if not links.is_tap(name):
                raise ConfigError(f"replay --tap {name}: {name} exists and is not a TAP")
            links.check_may_use(name, force=force, doing="replay --tap")
        try:
            if not links.exists(name):
                with IPRoute() as ipr:
                    ipr.link("add", ifname=name, kind="tuntap", mode="tap")
                self.created = True
                links.mark_ours(name, "replay TAP")
            multi = int(open(f"/sys/class/net/{name}/tun_flags").read(), 16) & IFF_MULTI_QUEUE
            self.fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
            fcntl.ioctl(self.fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI | multi))
            with IPRoute() as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")
        except (OSError, NetlinkError, LogCasterError) as exc:
            self.close()                # the fd, and a TAP made here
            if isinstance(exc, LogCasterError):
                raise
            code = getattr(exc, "errno", None) or getattr(exc, "code", None)
            raise EnvironmentProblem(f"replay --tap {name}: cannot {'attach to' if self.created else 'create'} the "
                                     f"TAP (needs CAP_NET_ADMIN)", errno=code) from None
        except BaseException:
            self.close()
            raise

    def describe(self) -> str:
        how = "created" if self.created else "existing"
        return f"into TAP {self.name} ({how}{', kept' if self.created and self.keep else ''})"

    def close(self) -> None:
        super().close()
        if self.created and not self.keep:
            with IPRoute() as ipr:
                for index in ipr.link_lookup(ifname=self.name):
                    ipr.link("del", index=index)
            self.created = False


@dataclass
class Result:
    frames: int                 # what was to be sent (loops x frames, or the limit)
    sent: int
    bytes: int
    errors: int
    retries: int
    seconds: float
    last_error: str = ""

    @property
    def pps(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def mbps(self) -> float:
        return self.bytes * 8 / self.seconds / 1e6 if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {"frames": self.frames, "sent": self.sent, "bytes": self.bytes, "errors": self.errors,
                "retries": self.retries, "seconds": self.seconds, "pps": self.pps, "mbps": self.mbps,
                "last_error": self.last_error}


def send(frames: Frames, target: Target, pace: Pace, *, loops: int = 1, limit: int = 0,
         progress: Callable[[int, int], None] | None = None) -> Result:
    """Send the frames; `progress(sent, total)` after each slice."""
    if loops < 1:
        raise ConfigError(f"--loop {loops}: at least 1")
    s = ffi.new("struct lc_replay_send *", {"fd": target.fd, "kind": target.kind, "pace": PACES[pace.kind],
                                              "rate": pace.c_rate(), "loops": loops, "limit": limit})
    slice_ns = int(SLICE_S * 1e9)
    while True:
        rc = lib.lc_replay_run(frames.c, s, slice_ns)
        if progress is not None:
            progress(s.attempted, s.total)
        if rc == 1:
            break
        if rc < 0:
            raise ReplayError(f"replay {target.describe()}: stopped after {s.sent:,} of {s.total:,} frames",
                              errno=-rc)
    last = os.strerror(s.last_errno) if s.errors else ""
    return Result(s.total, s.sent, s.bytes, s.errors, s.retries, s.elapsed_ns / 1e9, last)
