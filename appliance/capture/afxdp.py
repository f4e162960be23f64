"""The AF_XDP capture backend: the port stays with the kernel; an XDP program
(ebpf/xdp_syslog.c, loaded by bcc) redirects syslog UDP to one AF_XDP socket
per RX queue and passes everything else (ARP, ICMP, SSH, ...) to the kernel.

Per queue: a UMEM (huge pages when free, else normal pages) with every frame
in the fill ring, and a socket bound to (interface, queue) with need_wakeup,
zero-copy when the driver can (the kernel falls back to copy mode otherwise).
The RX loop is C (dpdk_shim/src/xsk_rx.c): one blocking call, lc_xsk_run,
made from a Python thread pinned to the queue's RX core (cffi releases the
GIL for the whole call); lc_xsk_stop ends it.

Start-up order: load the program (not attached) -> UMEM + socket per queue,
each inserted into xsks_map -> attach (a stale program of ours from a crashed
run is detached first; anyone else's is refused), so no datagram meets a
queue without a socket. close() undoes it all, in reverse, and is safe to
call at any point (the supervisor calls it in `finally`).

Per-source budgets (cfg.budget, when enabled) are applied by the XDP program
itself: a source's syslog datagrams over its budget are dropped at the NIC
(nic_stats()[ifname]["throttled"]; throttled_sources() names the sources).
"""

from __future__ import annotations

import errno
import logging
import mmap
import os
import socket
import struct
import threading
from dataclasses import dataclass

import dpdk_shim
from appliance import probe
from appliance.capture.base import LoopOptions, rxq_stats_dict
from appliance.config import Config
from appliance.errors import ENVIRONMENT, LogCasterError
from appliance.sources import merge_sources
from ebpf import loader
from ebpf.loader import XdpError, XdpProgram

log = logging.getLogger(__name__)

DEFAULT_UDP_PORTS = (514,)
# RX ring entries when the port does not say: at ~400k packets/s on a veth in
# copy mode, 1024 overflowed (rx_ring_full) while the worker core was busy;
# 4096 did not (bench/e2e.py).
DEFAULT_RX_RING = 4096
XSK_STATS = ("rx_dropped", "rx_invalid_descs", "tx_invalid_descs", "rx_ring_full",
             "rx_fill_ring_empty_descs", "tx_ring_empty_descs")


class AfXdpError(LogCasterError):
    """Setting up or running AF_XDP capture failed; the message says which step."""


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB" if n >= 1 << 20 else f"{n // 1024} KiB"


class Umem:
    """The frames of one queue and their fill/completion rings."""

    def __init__(self, ffi, lib, *, fill_size: int, frame_size: int, hugepages: bool):
        self.ffi, self.lib = ffi, lib
        conf = ffi.new("struct lc_xsk_umem_conf *", {"fill_size": fill_size, "nframes": fill_size,
                                                      "frame_size": frame_size, "hugepages": int(hugepages)})
        out = ffi.new("struct lc_xsk_umem **")
        info = ffi.new("struct lc_xsk_umem_info *")
        err = dpdk_shim.errbuf(ffi)
        rc = lib.lc_xsk_umem_create(conf, out, info, err, dpdk_shim.ERRLEN)
        if rc < 0 and -rc in (errno.ENOBUFS, errno.ENOMEM, errno.EPERM, errno.EAGAIN):
            dpdk_shim.check(rc, f"AF_XDP UMEM (RLIMIT_MEMLOCK is {probe.raise_memlock()}: raise it, "
                                "systemd: LimitMEMLOCK=infinity, or grant CAP_IPC_LOCK)", err,
                            error=AfXdpError, category=ENVIRONMENT)
        dpdk_shim.check(rc, "AF_XDP UMEM", err, error=AfXdpError)
        self.c = out[0]
        self.bytes = info.bytes
        self.nframes = info.nframes
        self.frame_size = info.frame_size
        self.fill_size = info.fill_size
        self.hugepages = bool(info.hugepages)
        self.huge_errno = info.huge_errno

    def describe(self) -> str:
        if self.hugepages:
            where = "on huge pages"
        elif self.huge_errno:
            where = f"on normal pages (no huge pages: {os.strerror(self.huge_errno)})"
        else:
            where = "on normal pages"
        return f"UMEM {_mib(self.bytes)} {where}, {self.nframes} x {self.frame_size} B frames"

    def close(self) -> None:
        if self.c is not None:
            rc = self.lib.lc_xsk_umem_destroy(self.c)
            if rc < 0:
                raise AfXdpError("freeing a UMEM (its socket is still open)", errno=-rc)
            self.c = None


class XskSocket:
    """One AF_XDP socket on its own UMEM, bound to (ifname, queue) and in xsks_map."""

    def __init__(self, umem: Umem, ifname: str, queue: int, *, rx_size: int, zerocopy: str,
                 need_wakeup: bool, xsks_map_fd: int):
        ffi, lib = umem.ffi, umem.lib
        self.ffi, self.lib, self.umem = ffi, lib, umem
        self.ifname, self.queue = ifname, queue
        zc = {"auto": lib.LC_XSK_ZC_AUTO, "on": lib.LC_XSK_ZC_REQUIRE, "off": lib.LC_XSK_ZC_OFF}[zerocopy]
        conf = ffi.new("struct lc_xsk_socket_conf *", {
            "ifname": ifname.encode(), "queue_id": queue, "rx_size": rx_size, "zerocopy": zc,
            "need_wakeup": int(need_wakeup), "xsks_map_fd": xsks_map_fd})
        out = ffi.new("struct lc_xsk_socket **")
        info = ffi.new("struct lc_xsk_socket_info *")
        err = dpdk_shim.errbuf(ffi)
        rc = lib.lc_xsk_socket_create(umem.c, conf, out, info, err, dpdk_shim.ERRLEN)
        doing = f"AF_XDP socket on {ifname} queue {queue}"
        if -rc in (errno.EOPNOTSUPP, errno.EPROTONOSUPPORT) and zerocopy == "on":
            doing += " (the driver has no zero-copy AF_XDP: use afxdp.zerocopy auto or off)"
        dpdk_shim.check(rc, doing, err, error=AfXdpError,
                        category=ENVIRONMENT if -rc in (errno.EPERM, errno.EACCES) else None)
        self.c = out[0]
        self.fd = info.fd
        self.rx_size = info.rx_size
        self.zerocopy = bool(info.zerocopy)
        self.need_wakeup = bool(info.need_wakeup)
        self.filled = info.filled
        self._stats = ffi.new("struct lc_xsk_stats *")

    def statistics(self) -> dict:
        """XDP_STATISTICS of the socket (getsockopt)."""
        if self.c is None:
            return {name: 0 for name in XSK_STATS}
        rc = self.lib.lc_xsk_statistics(self.c, self._stats)
        if rc < 0:
            raise AfXdpError(f"XDP_STATISTICS of {self.ifname} queue {self.queue}", errno=-rc)
        return {name: getattr(self._stats, name) for name in XSK_STATS}

    def describe(self) -> str:
        mode = "zero-copy" if self.zerocopy else "copy mode"
        return (f"AF_XDP {self.ifname} q{self.queue}: {mode}, RX ring {self.rx_size}, fill ring "
                f"{self.umem.fill_size} (filled {self.filled}), need_wakeup {'on' if self.need_wakeup else 'off'}, "
                f"{self.umem.describe()}")

    def close(self) -> None:
        if self.c is not None:
            rc = self.lib.lc_xsk_socket_destroy(self.c)
            if rc < 0:
                raise AfXdpError(f"closing the socket of {self.ifname} queue {self.queue} (its RX loop runs)",
                                 errno=-rc)
            self.c = None


class XskRxLoop:
    """The C RX loop of one queue on a Python thread pinned to `cpu`."""

    def __init__(self, sock: XskSocket, index: int, ring, decoder, cpu: int, options: LoopOptions, *,
                 idle_spin_us: int, idle_sleep_ms: int, stats_interval_ms: int = 100, stats=None):
        ffi, lib = sock.ffi, sock.lib
        self.lib, self.sock, self.index, self.cpu = lib, sock, index, cpu
        self.stats_c = stats if stats is not None else ffi.new("struct lc_rxq_stats *")
        size = lib.lc_batch_size(options.batch_size, options.batch_avg_payload)
        if size < 0:
            raise AfXdpError("sizing the scratch batch", errno=-size)
        self._scratch_mem = mmap.mmap(-1, size)
        scratch = ffi.from_buffer(self._scratch_mem)
        lib.lc_batch_init(scratch, size, options.batch_size, options.batch_avg_payload, index)
        self.conf = ffi.new("struct lc_xsk_rx_conf *", {
            "sock": sock.c, "burst": options.burst, "batch_max_delay_us": options.batch_max_delay_us,
            "idle_spin_us": idle_spin_us, "idle_sleep_ms": idle_sleep_ms,
            "stats_interval_ms": stats_interval_ms, "stop_after": options.stop_after,
            "idle_stop_ms": options.idle_stop_ms, "ring": ring, "decoder": decoder, "stats": self.stats_c,
            "scratch": ffi.cast("struct lc_batch_hdr *", scratch)})
        self._keep = (ring, decoder, scratch)
        self._thread: threading.Thread | None = None
        self.rc = 0

    def _run(self) -> None:
        try:
            os.sched_setaffinity(0, {self.cpu})     # this thread only
        except OSError as exc:
            log.warning("RX loop of queue %d: cannot pin to cpu %d: %s", self.index, self.cpu, exc.strerror)
        self.rc = self.lib.lc_xsk_run(self.conf)

    def launch(self) -> None:
        if self._thread is not None:
            raise AfXdpError(f"the RX loop of queue {self.index} was launched already", errno=errno.EBUSY)
        self.stats_c.running = 1
        self._thread = threading.Thread(target=self._run, name=f"logcaster-xsk-rx-q{self.index}", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self.lib.lc_xsk_stop(self.conf)

    def wait(self, timeout: float | None = None) -> int:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.rc

    def stats(self) -> dict:
        """The queue's counters, `wakeups` (syscalls the kernel asked for) and
        `sleeps` (poll() sleeps while idle)."""
        return {**rxq_stats_dict(self.stats_c), "wakeups": self.conf.wakeups, "sleeps": self.conf.sleeps}


SOL_PACKET, PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC = 263, 1, 1     # linux/if_packet.h


def promiscuous(ifname: str) -> socket.socket:
    """A packet socket that holds `ifname` promiscuous (frames to other MACs
    reach XDP: a SPAN port, a VM NIC whose hypervisor filters by MAC) for as
    long as it is open; the kernel drops the membership when it closes, a
    crash included. Receives nothing itself (protocol 0)."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP,
                            struct.pack("iHH8s", loader.ifindex_of(ifname), PACKET_MR_PROMISC, 0, b""))
        except BaseException:
            sock.close()
            raise
    except OSError as exc:
        raise AfXdpError(f"{ifname}: cannot make it promiscuous (needs CAP_NET_RAW; or set "
                         f"capture.ports[].promiscuous: false)", errno=exc.errno,
                         category=ENVIRONMENT if exc.errno in (errno.EPERM, errno.EACCES) else None) from None
    return sock


@dataclass
class _Queue:
    ifname: str
    queue: int
    umem: Umem
    sock: XskSocket


class AfXdpBackend:
    """capture.backend: afxdp. capture.ports[i].name is a kernel interface,
    .queues its RX queues used (queue 0..n-1), .rx_descriptors the RX ring
    size (rounded up to a power of two; the fill ring and UMEM hold twice
    that); capture.udp_ports go into the XDP program's port map (514 when
    empty: taking every UDP port would take DNS/DHCP from the kernel)."""

    name = "afxdp"

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.opts = cfg.afxdp              # xdp_mode, zerocopy, hugepages, need_wakeup, deny, idle_*
        self.budget = cfg.budget           # per-source budgets, applied in the XDP program
        self.udp_ports = tuple(cfg.capture.udp_ports) or DEFAULT_UDP_PORTS
        self.programs: dict[str, XdpProgram] = {}
        self.promiscuous: dict[str, socket.socket] = {}     # interface -> the socket holding it promiscuous
        self.queues: list[_Queue] = []
        self.loops: list[XskRxLoop] = []
        self._final_nic: dict | None = None
        self._final_sources: list[dict] | None = None
        self.ffi = self.lib = None

    # -- start ------------------------------------------------------------------------

    def start(self, plan) -> list[str]:
        """Load the program per interface, make a UMEM and socket per queue,
        attach. Returns "ifname qN" per RX queue, in plan order."""
        missing = probe.probe().afxdp_missing()
        if missing:
            raise AfXdpError("AF_XDP capture: " + "; ".join(str(m) for m in missing), category=ENVIRONMENT)
        shim = dpdk_shim.load("_xsk")
        self.ffi, self.lib = shim.ffi, shim.lib
        probe.raise_memlock()
        budget = plan.queues
        try:
            for port in self.cfg.capture.ports:
                if budget <= 0:
                    raise AfXdpError(f"capture.ports ({port.name}): not enough cores for this interface "
                                     f"(the plan has {plan.queues} queues)", errno=errno.EINVAL)
                nq = min(port.queues, budget)
                self._start_port(port.name, nq, port.rx_descriptors or DEFAULT_RX_RING)
                if port.promiscuous:
                    self.promiscuous[port.name] = promiscuous(port.name)
                budget -= nq
            for prog in self.programs.values():
                prog.attach()
        except BaseException:
            self.close()
            raise
        return [f"{q.ifname} q{q.queue}" for q in self.queues]

    def _start_port(self, ifname: str, nqueues: int, rx_descriptors: int) -> None:
        loader.ifindex_of(ifname)
        have = loader.rx_queue_count(ifname)
        if nqueues > have:
            raise AfXdpError(f"interface {ifname} has {have} RX queue{'s' if have != 1 else ''}; the config asks "
                             f"for {nqueues} (ethtool -L {ifname} combined {nqueues}; a veth takes numrxqueues "
                             f"at creation)", errno=errno.EINVAL)
        prog = XdpProgram(ifname, self.udp_ports, mode=self.opts.xdp_mode, deny=self.opts.deny,
                          budget=self.budget, attach=False)
        self.programs[ifname] = prog
        rx_size = _pow2(rx_descriptors)
        zerocopy = "off" if self.opts.xdp_mode == "generic" else self.opts.zerocopy
        for q in range(nqueues):
            umem = Umem(self.ffi, self.lib, fill_size=2 * rx_size, frame_size=self.lib.LC_XSK_FRAME_SIZE,
                        hugepages=self.opts.hugepages)
            try:
                sock = XskSocket(umem, ifname, q, rx_size=rx_size, zerocopy=zerocopy,
                                 need_wakeup=self.opts.need_wakeup, xsks_map_fd=prog.xsks_map_fd)
            except BaseException:
                umem.close()
                raise
            self.queues.append(_Queue(ifname, q, umem, sock))

    def describe(self) -> list[str]:
        lines = [prog.describe() for prog in self.programs.values()]
        lines += [f"{name}: promiscuous while capturing (capture.ports[].promiscuous)" for name in self.promiscuous]
        lines += [q.sock.describe() for q in self.queues]
        if self.queues and not any(q.sock.zerocopy for q in self.queues):
            lines.append("AF_XDP: copy mode on every queue (the driver has no zero-copy support, or XDP runs "
                         "in generic mode): frames are copied once into the UMEM")
        return lines

    # -- run --------------------------------------------------------------------------

    def rx_loop(self, index: int, ring, decoder, cpu: int, options: LoopOptions, stats=None) -> XskRxLoop:
        if not 0 <= index < len(self.queues):
            raise AfXdpError(f"no RX queue {index} (started {len(self.queues)})", errno=errno.EINVAL)
        loop = XskRxLoop(self.queues[index].sock, index, ring, decoder, cpu, options,
                         idle_spin_us=self.opts.idle_spin_us, idle_sleep_ms=self.opts.idle_sleep_ms, stats=stats)
        self.loops.append(loop)
        return loop

    def stop_all(self) -> None:
        for loop in self.loops:
            loop.stop()

    def nic_stats(self) -> dict[str, dict]:
        """Per interface: the XDP counters, kernel drops of its sockets
        (XDP_STATISTICS rx_dropped + rx_ring_full + rx_invalid_descs, read
        now), and the sockets' statistics per queue. xdp_redirect_failed and
        kernel_drops are losses (base.NIC_LOSSES); `throttled` is what the
        budget dropped (0 with budgets off)."""
        if self._final_nic is not None:
            return self._final_nic
        out: dict[str, dict] = {}
        for ifname, prog in self.programs.items():
            c = prog.counters() if prog.bpf is not None else {}
            out[ifname] = {
                "xdp_mode": prog.mode, "xdp_seen": c.get("seen", 0), "xdp_redirected": c.get("redirected", 0),
                "xdp_passed": c.get("passed", 0), "xdp_redirect_failed": c.get("redirect_failed", 0),
                "xdp_denied": c.get("denied", 0), "xdp_frag_passed": c.get("frag_passed", 0),
                "throttled": c.get("throttled", 0), "port_hits": c.get("port_hits", {}), "kernel_drops": 0,
                "queues": {}}
        for q in self.queues:
            s = q.sock.statistics()
            entry = out[q.ifname]
            entry["kernel_drops"] += s["rx_dropped"] + s["rx_ring_full"] + s["rx_invalid_descs"]
            entry["queues"][q.queue] = {**s, "zerocopy": q.sock.zerocopy}
        return out

    def throttled_sources(self) -> list[dict]:
        """Sources over their budget, over all interfaces (one row per
        source, counts summed), the most throttled first:
        [{"src": "198.18.0.5", "passed": n, "throttled": m}, ...]."""
        if self._final_sources is not None:
            return self._final_sources
        rows = merge_sources(*(prog.throttled_sources() for prog in self.programs.values() if prog.bpf is not None))
        return sorted(rows, key=lambda r: (-r["throttled"], r["src"]))

    # -- stop -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop and wait for the loops, close sockets and UMEMs, detach and
        unload the programs. Safe at any point and more than once."""
        errors = []
        for loop in self.loops:
            loop.stop()
        for loop in self.loops:
            loop.wait()
        if self.queues and self._final_nic is None:
            try:
                self._final_nic = self.nic_stats()       # what the sockets counted, before they go
                self._final_sources = self.throttled_sources()
            except LogCasterError as exc:
                errors.append(exc)
        for q in reversed(self.queues):
            for part in (q.sock, q.umem):
                try:
                    part.close()
                except LogCasterError as exc:
                    errors.append(exc)
        self.queues = []
        for sock in self.promiscuous.values():
            sock.close()                # the kernel drops its promiscuity with it
        self.promiscuous = {}
        for prog in self.programs.values():
            try:
                prog.close()
            except LogCasterError as exc:
                errors.append(exc)
        self.programs = {}
        self.loops = []
        if errors:
            raise errors[0]


__all__ = ["AfXdpBackend", "AfXdpError", "XdpError", "Umem", "XskSocket", "XskRxLoop"]
