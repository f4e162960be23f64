"""DPDK seen from Python: EAL arguments, the EAL, ports and RX loops.

Thin layer over dpdk_shim._dpdk. The EAL can be initialised once per
process, so everything here lives in the capture process; tests run it in a
subprocess (`logcaster run`). Ports get close() and a context manager,
never the garbage collector.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from appliance import links
from appliance.batch import Batch
from appliance.capture.base import LoopOptions, rxq_stats_dict
from appliance.config import Config, PortConfig
from appliance.errors import ENVIRONMENT, ConfigError, LogCasterError, ShimError
import dpdk_shim

log = logging.getLogger(__name__)

DEFAULT_RX_DESCRIPTORS = 1024
PCAP_IDLE_STOP_MS = 2000        # pcap replay: end when the file went quiet this long


class DpdkError(ShimError):
    """A DPDK call failed; the message says which and why."""


def eal_args(cfg: Config, main_cpu: int, rx_cpus: list[int]) -> list[str]:
    """EAL command line for this config. Lcore 0 (the main lcore, this Python
    thread) runs on `main_cpu`, lcore i+1 (RX loop of queue i) on rx_cpus[i]:
    --lcores maps ids to CPUs, so a one-CPU machine still gets distinct lcores.
    Only the configured devices are touched: virtual devices by --vdev, PCI
    ports by an allow-list; with no PCI port, --no-pci keeps DPDK away from
    every PCI device (the machine's own NIC included)."""
    d = cfg.dpdk
    lcores = ",".join([f"0@{main_cpu}"] + [f"{i + 1}@{cpu}" for i, cpu in enumerate(rx_cpus)])
    args = ["logcaster", "--lcores", lcores, "--main-lcore", "0",
            "--file-prefix", d.file_prefix, f"--log-level=*:{d.log_level}"]
    if d.in_memory:
        args.append("--in-memory")
    if d.huge_dir:
        args += ["--huge-dir", d.huge_dir]
    if d.socket_mem_mb:
        args += ["-m", str(d.socket_mem_mb)]
    pci = [p.name for p in cfg.capture.ports if p.vdev is None]
    if pci:
        for addr in pci:
            args += ["-a", addr]
    else:
        args.append("--no-pci")
    for p in cfg.capture.ports:
        if p.vdev:
            args += ["--vdev", p.vdev]
    return args + list(d.extra_args)


class Eal:
    """The process's EAL: init once, cleanup at the end."""

    _initialised = False

    def __init__(self, args: list[str]):
        if Eal._initialised:
            raise DpdkError("the DPDK EAL is already initialised in this process")
        shim = dpdk_shim.load("_dpdk")
        self.ffi, self.lib = shim.ffi, shim.lib
        self.args = args
        self._argv_keep = [self.ffi.new("char[]", a.encode()) for a in args]
        argv = self.ffi.new("char *[]", self._argv_keep)
        err = dpdk_shim.errbuf()
        dpdk_shim.check(self.lib.lc_eal_init(len(args), argv, err, dpdk_shim.ERRLEN),
                        f"EAL init failed (args: {' '.join(args)})", err, error=DpdkError)
        Eal._initialised = True

    def close(self) -> None:
        if Eal._initialised:
            self.lib.lc_eal_cleanup()
            Eal._initialised = False

    def __enter__(self) -> "Eal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def lcore_socket(self, lcore: int) -> int:
        return self.lib.lc_lcore_socket(lcore)


@dataclass(frozen=True)
class PortInfo:
    port_id: int
    name: str
    driver: str
    socket_id: int
    nb_rxq: int
    nb_rxd: int
    rss: bool
    link_up: bool
    link_speed_mbps: int
    mbufs: int


class Port:
    """One started port; close() stops and closes it and frees its pool."""

    def __init__(self, eal: Eal, cfg: PortConfig, *, burst: int):
        self.ffi, self.lib = eal.ffi, eal.lib
        port_id = self.lib.lc_port_by_name(cfg.name.encode())
        if port_id < 0:
            if cfg.vdev is None and os.geteuid() != 0:      # a PCI port the EAL probed and could not use
                raise DpdkError(
                    f"port {cfg.name}: DPDK could not use the device (the EAL lines above say why). Not root, a "
                    f"port under uio_pci_generic needs CAP_SYS_ADMIN and CAP_SYS_RAWIO, and the service's group "
                    f"on its files (`logcaster ports bind {cfg.name} --driver uio_pci_generic --group logcaster`); "
                    f"under vfio-pci, the group on /dev/vfio/N (docs/PRIVILEGES.md)", errno=-port_id,
                    category=ENVIRONMENT)
            raise DpdkError(f"port {cfg.name}: no such DPDK device (is it bound to a DPDK driver, "
                            f"or is its vdev argument right?)", errno=-port_id)
        conf = self.ffi.new("struct lc_port_conf *", {
            "port_id": port_id, "nb_rxq": cfg.queues, "nb_rxd": cfg.rx_descriptors or DEFAULT_RX_DESCRIPTORS, "burst": burst,
            "extra_mbufs": cfg.extra_mbufs, "link_timeout_ms": cfg.link_timeout_ms,
            "promiscuous": int(cfg.promiscuous), "rss": 1,
        })
        info = self.ffi.new("struct lc_port_info *")
        err = dpdk_shim.errbuf()
        dpdk_shim.check(self.lib.lc_port_start(conf, info, err, dpdk_shim.ERRLEN), f"port {cfg.name}", err,
                        error=DpdkError)
        self.port_id = port_id
        self.cfg = cfg
        self.info = PortInfo(port_id, self.ffi.string(info.name).decode(), self.ffi.string(info.driver).decode(),
                             info.socket_id, info.nb_rxq, info.nb_rxd, bool(info.rss), bool(info.link_up),
                             info.link_speed_mbps, info.mbufs)
        self._open = True

    def describe(self) -> str:
        i = self.info
        queues = f"{i.nb_rxq} RX queue{'s' if i.nb_rxq > 1 else ''}" + (" (RSS)" if i.rss else "")
        fallback = f" (asked for {self.cfg.queues}: no RSS, one queue)" if i.nb_rxq < self.cfg.queues else ""
        link = f"link up {i.link_speed_mbps} Mb/s" if i.link_up else "link down (waiting went past the timeout)"
        return (f"port {i.name} ({i.driver}, node {i.socket_id}): {queues}{fallback}, {i.nb_rxd} descriptors, "
                f"{i.mbufs} mbufs, {link}")

    def stats(self) -> dict:
        s = self.ffi.new("struct lc_port_stats *")
        self.lib.lc_port_stats(self.port_id, s)
        return {"ipackets": s.ipackets, "ibytes": s.ibytes, "imissed": s.imissed, "ierrors": s.ierrors,
                "rx_nombuf": s.rx_nombuf}

    def xstats(self) -> dict[str, int]:
        n = self.lib.lc_port_xstat(self.port_id, 0, self.ffi.NULL, 0, self.ffi.NULL)
        name = self.ffi.new("char[]", 128)
        value = self.ffi.new("uint64_t *")
        out = {}
        for i in range(max(n, 0)):
            if self.lib.lc_port_xstat(self.port_id, i, name, 128, value) >= 0:
                out[self.ffi.string(name).decode()] = value[0]
        return out

    def close(self) -> None:
        if self._open:
            self.lib.lc_port_stop(self.port_id)
            self._open = False

    def __enter__(self) -> "Port":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RxQueue:
    """The C RX loop of one queue on its lcore, feeding one ring."""

    def __init__(self, eal: Eal, port: Port, queue_id: int, lcore: int, ring, decoder, options: LoopOptions, *,
                 idle_spin_us: int, idle_sleep_us: int, stats=None):
        ffi, lib = eal.ffi, eal.lib
        self.lib, self.lcore, self.queue_id, self.port = lib, lcore, queue_id, port
        self.stats_c = stats if stats is not None else ffi.new("struct lc_rxq_stats *")
        # Decoded into while the ring is full, then counted as lost (ring_full).
        self._scratch = Batch(capacity=options.batch_size, avg_payload=options.batch_avg_payload)
        self._keep = (ring, decoder)
        self.conf = ffi.new("struct lc_rx_conf *", {
            "port_id": port.port_id, "queue_id": queue_id, "lcore": lcore, "burst": options.burst,
            "batch_max_delay_us": options.batch_max_delay_us, "stop_after": options.stop_after,
            "idle_stop_ms": options.idle_stop_ms, "idle_spin_us": idle_spin_us, "idle_sleep_us": idle_sleep_us,
            "ring": ring, "decoder": decoder, "stats": self.stats_c, "scratch": self._scratch.hdr,
        })
        self.started = False

    def launch(self) -> None:
        rc = self.lib.lc_rx_launch(self.conf)
        if rc < 0:
            raise DpdkError(f"launching the RX loop of queue {self.queue_id} on lcore {self.lcore}", errno=-rc)
        self.started = True

    @property
    def running(self) -> bool:
        return self.started and self.lib.lc_rx_running(self.lcore) == 1

    def wait(self) -> int:
        return self.lib.lc_rx_wait(self.lcore) if self.started else 0

    def stats(self) -> dict:
        """The queue's counters, and `sleeps`: naps the loop took while idle."""
        return {**rxq_stats_dict(self.stats_c), "sleeps": self.conf.sleeps}


def _vdev_args(vdev: str) -> dict[str, str]:
    parts = vdev.split(",")[1:]
    return dict(p.split("=", 1) if "=" in p else (p, "") for p in parts)


def _rx_dropped(iface: str) -> int:
    try:
        return int(Path(f"/sys/class/net/{iface}/statistics/rx_dropped").read_text())
    except (OSError, ValueError):
        return 0


def pcap_packets(path: str) -> int:
    """Packets in a pcap file (read by the shim at C speed)."""
    from appliance.decoder import Decoder, PcapReader

    with PcapReader(path) as reader:
        for _ in reader.batches(Decoder(), Batch(capacity=4096)):
            pass
        return reader.packets


class DpdkBackend:
    """Ports owned by DPDK poll-mode drivers (PCI ports bound to vfio/uio, or vdevs)."""

    name = "dpdk"

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.idle_spin_us = cfg.dpdk.idle_spin_us
        self.idle_sleep_us = cfg.dpdk.idle_sleep_us     # 0: busy-poll even when idle
        self.eal: Eal | None = None
        self.ports: list[Port] = []
        self._queues: list[tuple[Port, int, int]] = []   # (port, queue id, stop_after)
        self._iface_drops: dict[str, tuple[str, int]] = {}  # port -> (kernel iface, rx_dropped at start)

    def _port_plan(self) -> list[tuple[PortConfig, int]]:
        """Each port with its stop_after (packets in its pcap, when the run
        ends at the end of the file); net_pcap infinite_rx gets a pool that
        holds the whole file (the PMD loads it into mbufs at start)."""
        out = []
        for p in self.cfg.capture.ports:
            stop_after = 0
            args = _vdev_args(p.vdev) if p.vdev else {}
            if "rx_pcap" in args:
                if not os.path.exists(args["rx_pcap"]):
                    raise ConfigError(f"capture.ports ({p.name}).vdev: rx_pcap file {args['rx_pcap']!r} does not exist")
                packets = pcap_packets(args["rx_pcap"])
                if args.get("infinite_rx") == "1":
                    if p.extra_mbufs < packets:
                        p = dataclasses.replace(p, extra_mbufs=packets)
                elif self.cfg.capture.stop_at_end_of_file:
                    stop_after = packets
            out.append((p, stop_after))
        return out

    def start(self, plan) -> list[str]:
        ports = self._port_plan()
        # The TAPs net_tap creates at EAL init (a TAP that is there already is only attached to)
        taps = {p.name: a["iface"] for p, _ in ports if p.vdev and p.vdev.startswith("net_tap")
                and "iface" in (a := _vdev_args(p.vdev)) and not links.exists(a["iface"])}
        self.eal = Eal(eal_args(self.cfg, plan.worker_cores[0], list(plan.rx_cores)))
        for pcfg, stop_after in ports:
            left = plan.queues - len(self._queues)
            if left <= 0:
                raise ConfigError(f"capture.ports: no core left for port {pcfg.name} (the plan has {plan.queues} queues)")
            iface = _vdev_args(pcfg.vdev).get("iface") if pcfg.vdev else None
            port = Port(self.eal, dataclasses.replace(pcfg, queues=min(pcfg.queues, left)), burst=self.cfg.capture.burst)
            self.ports.append(port)
            if pcfg.name in taps:   # net_tap made this TAP: say it is ours (replay then needs no --force)
                links.mark_ours(taps[pcfg.name], f"DPDK net_tap of appliance {self.cfg.dpdk.file_prefix}")
            if iface:  # net_tap / net_af_xdp / net_af_packet over a kernel interface
                self._iface_drops[port.info.name] = (iface, _rx_dropped(iface))
            for q in range(port.info.nb_rxq):
                self._queues.append((port, q, stop_after if port.info.nb_rxq == 1 else 0))
        return [f"{port.info.name} q{q}" for port, q, _ in self._queues]

    def describe(self) -> list[str]:
        lines = [p.describe() for p in self.ports]
        for index, (port, q, _) in enumerate(self._queues):
            node, lcore_node = port.info.socket_id, self.eal.lcore_socket(index + 1)
            if node >= 0 and lcore_node >= 0 and node != lcore_node:
                lines.append(f"warning: {port.info.name} q{q} is on NUMA node {node} but its RX lcore on node "
                             f"{lcore_node}: every packet crosses the interconnect")
        return lines

    def rx_loop(self, index: int, ring, decoder, cpu: int, options: LoopOptions, stats=None) -> RxQueue:
        port, q, stop_after = self._queues[index]
        if stop_after:
            options = dataclasses.replace(options, stop_after=stop_after, idle_stop_ms=PCAP_IDLE_STOP_MS)
        return RxQueue(self.eal, port, q, index + 1, ring, decoder, options,  # lcore i+1 runs on plan.rx_cores[i]
                       idle_spin_us=self.idle_spin_us, idle_sleep_us=self.idle_sleep_us, stats=stats)

    def stop_all(self) -> None:
        if self.eal is not None:
            self.eal.lib.lc_rx_stop_all()

    def nic_stats(self) -> dict[str, dict]:
        out = {p.info.name: {**p.stats(), "xstats": p.xstats()} for p in self.ports}
        for name, (iface, start) in self._iface_drops.items():
            # The kernel side of a vdev over an interface drops where the PMD
            # cannot see it (a full AF_XDP RX ring shows only in the
            # interface's rx_dropped): count the interface's drops of this run.
            out[name]["kernel_drops"] = max(0, _rx_dropped(iface) - start)
        return out

    def close(self) -> None:
        for p in self.ports:
            p.close()
        self.ports.clear()
        if self.eal is not None:
            self.eal.close()
            self.eal = None
