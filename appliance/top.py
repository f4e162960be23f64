"""What `logcaster top` shows: a snapshot of a running appliance, and rates
between two snapshots.

Read from what the appliance already keeps, never from its records: each
queue's live file (appliance/live.py: the RX loop's and the decoder's
counters, the senders table), each ring's header (fill, records not yet
committed by the sinks: the worker's lag), and the supervisor's stats file
for what only it knows (NIC and XDP counters, sink failures).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from appliance import sources
from appliance.decoder import decoder_counters
from appliance.errors import InputError
from appliance.instance import process_alive
from appliance.live import LiveQueue, live_paths

TOP_ROWS = 10


@dataclass
class Sample:
    """Counters of every queue at one moment (monotonic seconds)."""

    taken: float
    stats: dict                                 # the supervisor's stats file
    queues: list[dict] = field(default_factory=list)
    senders: list[dict] = field(default_factory=list)
    throttled_sources: list[dict] = field(default_factory=list)


def sample(prefix: str) -> Sample:
    from appliance.ring import Ring
    from appliance.supervisor import live_stats_path

    path = live_stats_path(prefix)
    try:
        stats = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"no running appliance with file prefix {prefix!r} ({path} does not exist)") from None
    if not process_alive(stats.get("pid")):
        raise InputError(f"the appliance with file prefix {prefix!r} is gone (pid {stats.get('pid')}; "
                         f"{path} is what it left)")
    paths = live_paths(prefix)
    if not paths:
        raise InputError(f"the appliance with file prefix {prefix!r} has no live files in {path.parent} "
                         f"(it could not write them: see its start-up lines)")
    lives = []
    try:
        for p in paths:
            try:
                lives.append(LiveQueue.attach(p))
            except (OSError, ValueError) as exc:
                raise InputError(f"cannot read {p}: {exc}") from None
        s = Sample(time.monotonic(), stats)
        for live in lives:
            head = live.header()
            rx = live.read_rxq()
            q = {"queue": head["queue"], "label": head["label"], "decoder": decoder_counters(live.read_decoder()),
                 "packets": rx.packets, "bytes": rx.bytes, "ring_full": rx.ring_full_records,
                 "kernel_drops": rx.kernel_drops, "ring": None}
            try:
                ring = Ring.attach(head["ring_path"], consumer=False)
                try:
                    r = ring.stats()
                finally:
                    ring.close()
                q["ring"] = {"fill": r["bytes_used"] / r["data_size"] if r["data_size"] else 0.0,
                             "in_flight": r["records_published"] - r["records_released"],
                             "released": r["records_released"]}
            except Exception:           # the ring went away (stopping) or is not ours to map: show none
                pass
            s.queues.append(q)
        s.senders, _ = sources.sender_table(lives)
        in_rx, _ = sources.budget_table(lives)
        s.throttled_sources = sources.merge_sources(in_rx, stats.get("xdp_sources", []))
        return s
    finally:
        for live in lives:
            live.close()


def _rate(now: int, before: int | None, dt: float) -> float | None:
    return (now - before) / dt if before is not None and dt > 0 else None


def view(now: Sample, before: Sample | None = None, rows: int = TOP_ROWS) -> dict:
    """The snapshot `top` draws (and prints as --json): totals, and rates
    per second when an earlier sample is given."""
    dt = now.taken - before.taken if before else 0.0
    prev_q = {q["queue"]: q for q in before.queues} if before else {}
    queues, tot = [], {"packets": 0, "records": 0, "bytes": 0}
    for q in now.queues:
        p = prev_q.get(q["queue"])
        d = q["decoder"]
        row = {"queue": q["queue"], "label": q["label"], "packets": q["packets"], "records": d["records"],
               "bytes": d["bytes"],
               "packets_per_s": _rate(q["packets"], p and p["packets"], dt),
               "records_per_s": _rate(d["records"], p and p["decoder"]["records"], dt),
               "bytes_per_s": _rate(d["bytes"], p and p["decoder"]["bytes"], dt),
               "ring_fill": q["ring"]["fill"] if q["ring"] else None,
               "worker_lag_records": q["ring"]["in_flight"] if q["ring"] else None}
        queues.append(row)
        for k in tot:
            tot[k] += row[k]
    total = {**tot, **{f"{k}_per_s": (sum(r[f"{k}_per_s"] for r in queues) if before else None)
                       for k in ("packets", "records", "bytes")}}

    prev_s = {(r["src"], r["app"]): r for r in before.senders} if before else {}

    def with_rates(groups: list[dict], key: str, prev: dict) -> list[dict]:
        for g in groups:
            p = prev.get(g[key])
            g["records_per_s"] = _rate(g["records"], p and p["records"], dt)
            g["bytes_per_s"] = _rate(g["bytes"], p and p["bytes"], dt)
        return groups

    prev_src = {g["src"]: g for g in sources.group(list(prev_s.values()), "src", 1 << 30)} if before else {}
    prev_app = {g["app"]: g for g in sources.group(list(prev_s.values()), "app", 1 << 30)} if before else {}
    st = now.stats
    severities: dict = {}
    sequence: dict = {}
    throttled_rx = 0
    for q in now.queues:
        for k, v in q["decoder"]["severities"].items():
            severities[k] = severities.get(k, 0) + v
        for k, v in q["decoder"]["sequence"].items():
            sequence[k] = sequence.get(k, 0) + v
        throttled_rx += q["decoder"]["throttled"]
    losses = {"ring_full": sum(q["ring_full"] for q in now.queues),
              "sink_failed": st.get("sink_failed", 0),
              "throttled": throttled_rx + st.get("throttled_nic", 0),
              **{f"nic_{k}": v for k, v in st.get("nic", {}).items()}}
    return {
        "pid": st.get("pid"), "backend": st.get("backend"), "interval_s": round(dt, 3) if before else None,
        "total": total, "queues": queues,
        "top_senders_by_records": with_rates(sources.group(now.senders, "src", rows), "src", prev_src),
        "top_senders_by_bytes": with_rates(sorted(sources.group(now.senders, "src", 1 << 30),
                                                  key=lambda g: (-g["bytes"], g["src"]))[:rows], "src", prev_src),
        "top_apps": with_rates(sources.group(now.senders, "app", rows), "app", prev_app),
        "severities": severities,
        "losses": losses,
        "upstream": sources.upstream(sequence, now.senders, rows),
        "throttled_sources": sources.top(now.throttled_sources, "throttled", rows),
    }
