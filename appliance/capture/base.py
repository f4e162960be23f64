"""What the supervisor asks of a capture backend (DPDK, AF_XDP, sockets).

A backend owns the packet source (ports, XDP program and XSK sockets, UDP
sockets) and one C RX loop per queue. Every loop decodes into the same
batches and rings (dpdk_shim/src/rx_batcher.h) and fills the same
`struct lc_rxq_stats` (dpdk_shim/lc_rx.h), so the supervisor, the workers
and the loss accounting do not care which backend runs.

Life cycle, driven by appliance/supervisor.py:
    backend.start(plan)         -> queue labels, one per RX queue, plan order
    backend.rx_loop(i, ring, decoder, cpu, ..., stats) -> RxLoop (not started;
                                  stats: its `struct lc_rxq_stats *`, in the
                                  queue's live file, or None: its own)
    loop.launch() ...           (the supervisor runs workers meanwhile)
    backend.stop_all(); loop.wait()
    backend.nic_stats()         per port/interface, after the loops ended
    backend.close()             always (detach XDP, close ports, EAL cleanup)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

RXQ_STATS = ("packets", "bytes", "batches", "ring_full_batches", "ring_full_records", "multi_seg",
             "polls_busy", "polls_idle", "cycles_busy", "cycles_idle", "tsc_hz", "kernel_drops")

# Loss counters a backend may report in nic_stats(); the summary adds them up.
NIC_LOSSES = ("imissed", "ierrors", "rx_nombuf", "xdp_redirect_failed", "kernel_drops")


@dataclass(frozen=True)
class LoopOptions:
    burst: int
    batch_max_delay_us: int
    batch_size: int
    batch_avg_payload: int
    stop_after: int = 0          # stop after this many packets (pcap replay); 0: until stopped
    idle_stop_ms: int = 0        # with stop_after: also stop after this long without packets


class RxLoop(Protocol):
    def launch(self) -> None: ...

    @property
    def running(self) -> bool: ...

    def wait(self) -> int: ...

    def stats(self) -> dict: ...


class Backend(Protocol):
    name: str

    def start(self, plan) -> list[str]: ...

    def describe(self) -> list[str]: ...

    def rx_loop(self, index: int, ring, decoder, cpu: int, options: LoopOptions, stats=None) -> RxLoop: ...

    def stop_all(self) -> None: ...

    def nic_stats(self) -> dict[str, dict]: ...

    def close(self) -> None: ...


def rxq_stats_dict(c) -> dict:
    """A `struct lc_rxq_stats *` as a dict."""
    return {name: getattr(c, name) for name in RXQ_STATS}
