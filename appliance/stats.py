"""Loss accounting: every packet counted where it was lost, side by side.

The identities the summary checks:

    received         = records + not_syslog + throttled in the RX loop   (per decoder)
    records          = delivered + ring_full + sink_failed + in_flight

and the one tests assert, knowing how many packets they sent (the
appliance cannot know what it was offered):

    sent             = received + every NIC/kernel loss (imissed, ierrors, rx_nombuf,
                       XDP redirect failures, socket/XSK kernel drops) + throttled in XDP

`throttled` (over a source's budget) is a loss of its own kind, whether
the XDP program or the RX loop cut it. `upstream` is not ours: what the
senders' sequence numbers say was lost before the box (docs/SENDERS.md).

`delivered` are records released from the rings after every sink took
them; `duplicates_suppressed` are records a ring delivered twice across a
worker crash, which the sinks already held (written once, not counted twice).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from appliance.sources import throttled_line, upstream_line


@dataclass
class Totals:
    received: int = 0           # packets the RX loops took off the queues
    bytes: int = 0
    records: int = 0            # syslog records decoded (UDP datagrams kept)
    not_syslog: int = 0         # frames that are not UDP to a kept port (ARP, TCP, other ports, malformed)
    delivered: int = 0
    ring_full: int = 0
    sink_failed: int = 0
    in_flight: int = 0          # published, not yet released (0 after a clean stop)
    duplicates_suppressed: int = 0
    nic: dict = field(default_factory=dict)   # losses before the RX loop, by kind (capture.base.NIC_LOSSES)
    worker_restarts: int = 0
    recovered: int = 0          # records of rings left by a crashed run, delivered at this start
    ring_fill: float = 0.0      # fullest ring: share of its bytes not yet released
    seconds: float = 0.0
    formats: dict = field(default_factory=dict)
    flags: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    severities: dict = field(default_factory=dict)
    throttled: int = 0          # datagrams over their source's budget (docs/SENDERS.md), wherever cut
    throttled_nic: int = 0      # ... of which the XDP program dropped (never received by an RX loop)
    throttled_sources: list = field(default_factory=list)   # the sources throttled most (sources.TOP_N)
    upstream: dict = field(default_factory=dict)   # sender sequence numbers: lost before the box (sources.upstream)

    @property
    def nic_lost(self) -> int:
        return sum(self.nic.values())

    @property
    def lost(self) -> int:
        return self.ring_full + self.sink_failed + self.nic_lost + self.throttled

    def check(self) -> list[str]:
        """Identities that do not hold (empty when the books balance)."""
        problems = []
        throttled_rx = self.throttled - self.throttled_nic
        if self.received != self.records + self.not_syslog + throttled_rx:
            problems.append(f"received {self.received} != records {self.records} + not syslog {self.not_syslog}"
                            f" + throttled in the RX loop {throttled_rx}")
        accounted = self.delivered + self.ring_full + self.sink_failed + self.in_flight
        if self.records != accounted:
            problems.append(f"records {self.records} != delivered {self.delivered} + ring_full {self.ring_full}"
                            f" + sink_failed {self.sink_failed} + in flight {self.in_flight}")
        return problems


_LOSS_NAMES = {"imissed": "NIC missed", "ierrors": "NIC errors", "rx_nombuf": "no mbuf",
               "xdp_redirect_failed": "XDP redirect failed", "kernel_drops": "kernel drops"}


def merge_counts(into: dict, *more: dict) -> dict:
    """Add the counts of each of `more` into `into` (key by key)."""
    for counts in more:
        for k, v in counts.items():
            into[k] = into.get(k, 0) + v
    return into


def rate_line(t: Totals, prev: Totals | None, dt: float) -> str:
    rate = (t.received - (prev.received if prev else 0)) / dt if dt > 0 else 0.0
    return (f"stats: {rate:,.0f} pkt/s, received {t.received:,}, delivered {t.delivered:,}, "
            f"in flight {t.in_flight:,}, ring {t.ring_fill:.0%} full, lost {t.lost:,} (ring full {t.ring_full:,}, sink {t.sink_failed:,}, "
            f"nic {t.nic_lost:,}, throttled {t.throttled:,}); upstream lost {t.upstream.get('lost', 0):,}")


def summary_text(t: Totals, latency: dict, extra: list[str] = ()) -> str:
    rate = t.received / t.seconds if t.seconds > 0 else 0.0
    lines = [
        f"summary: {t.seconds:.2f} s, received {t.received:,} packets ({rate:,.0f}/s), "
        f"{t.records:,} syslog records, {t.not_syslog:,} other frames",
        f"  delivered {t.delivered:,}; lost {t.lost:,}: ring full {t.ring_full:,}, sink failed {t.sink_failed:,}"
        + "".join(f", {_LOSS_NAMES.get(k, k)} {v:,}" for k, v in t.nic.items())
        + f", throttled {t.throttled:,}; in flight {t.in_flight:,}",
        f"  duplicates suppressed {t.duplicates_suppressed:,} (redelivered after a worker restart); "
        f"worker restarts {t.worker_restarts}",
    ]
    for line in (upstream_line(t.upstream), throttled_line(t.throttled, t.throttled_sources)):
        if line:
            lines.append(line)
    if t.recovered:
        lines.append(f"  recovered {t.recovered:,} records a crashed run had captured (delivered before new traffic)")
    if t.formats:
        lines.append("  formats: " + ", ".join(f"{k} {v:,}" for k, v in t.formats.items()))
    flagged = {k: v for k, v in t.flags.items() if v}
    if flagged:
        lines.append("  flags: " + ", ".join(f"{k} {v:,}" for k, v in flagged.items()))
    if latency.get("p50") is not None:
        lines.append(f"  latency rx -> sink hand-off: p50 {latency['p50']:.1f} µs, p99 {latency['p99']:.1f} µs, "
                     f"p99.9 {latency['p999']:.1f} µs")
    lines += list(extra)
    problems = t.check()
    lines.append("  accounting: " + ("received = delivered + every kind of loss: OK" if not problems
                                     else "MISMATCH: " + "; ".join(problems)))
    return "\n".join(lines)


def to_json(t: Totals, **more) -> str:
    return json.dumps({**asdict(t), **{f"nic_{k}": v for k, v in t.nic.items()}, "lost": t.lost,
                       "accounting_ok": not t.check(), **more}, indent=2,
                      default=str)
