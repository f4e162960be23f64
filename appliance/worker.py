"""Worker process: one per RX queue. Reads its ring, hands batches to the sinks.

Touches data once per batch: the slot is wrapped as a RecordBatch without
copying, each sink writes it, and only then is the slot released (so a
worker that dies loses nothing: its replacement resumes at the ring's tail).
Sleeps on the ring's futex when idle; never busy-polls.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass

from appliance.config import SinkConfig
from appliance.errors import LogCasterError
from appliance.sinks import BatchView, SinkError, make_sink

log = logging.getLogger(__name__)

IDLE_WAIT_S = 0.2
ORPHAN_GRACE_S = 2.0


@dataclass(frozen=True)
class WorkerSpec:
    queue_id: int
    ring_path: str
    sinks: tuple[SinkConfig, ...]
    cpu: int | None
    run_id: int
    stats_interval_s: float = 1.0


class LatencyHistogram:
    """rx_time -> sink hand-off, per record, in C (dpdk_shim/src/latency.c)."""

    def __init__(self):
        from dpdk_shim import ffi, lib

        self._lib = lib
        self.buckets = ffi.new("uint64_t[]", lib.LC_LAT_BUCKETS)

    def add(self, hdr) -> None:
        self._lib.lc_latency_add(hdr, time.time_ns(), self.buckets)

    def counts(self) -> dict[int, int]:
        return {i: self.buckets[i] for i in range(self._lib.LC_LAT_BUCKETS) if self.buckets[i]}


def percentiles(counts: dict[int, int], qs=(0.5, 0.99, 0.999)) -> dict[str, float | None]:
    """Percentiles in µs from merged histogram counts (upper bound of the bucket)."""
    from dpdk_shim import lib

    total = sum(counts.values())
    out: dict[str, float | None] = {}
    for q in qs:
        key = f"p{q * 100:g}".replace(".", "")
        if not total:
            out[key] = None
            continue
        need, seen = q * total, 0
        for bucket in sorted(counts):
            seen += counts[bucket]
            if seen >= need:
                out[key] = lib.lc_latency_bucket_floor(bucket + 1) / 1000.0
                break
    return out


class Worker:
    def __init__(self, spec: WorkerSpec, conn=None):
        from appliance.ring import Ring

        self.spec = spec
        self.conn = conn
        self.parent = os.getppid()
        self.stop_requested = False
        self.ring = Ring.attach(spec.ring_path)
        self.sinks = [make_sink(cfg, spec.queue_id, spec.run_id) for cfg in spec.sinks]
        self.latency = LatencyHistogram()
        self.delivered = 0
        self.batches = 0
        self.duplicates = 0         # records of batches a dead predecessor had already written
        self.sink_failed = 0        # records a sink could not take (counted, then released)
        self.errors: list[str] = []
        self._last_report = 0.0

    def _on_term(self, signum, frame) -> None:
        self.stop_requested = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor coordinates Ctrl-C
        self._report()  # ready: ring attached, sinks recovered
        try:
            self._loop()
        finally:
            for sink in self.sinks:
                try:
                    sink.close()
                except (OSError, LogCasterError) as exc:
                    self.errors.append(f"{sink.kind}: closing: {exc}")
            self._report(final=True)
            self.ring.close()
        return 0

    def _loop(self) -> None:
        idle_since = None
        while True:
            slot = self.ring.next_slot(timeout=IDLE_WAIT_S)
            now = time.monotonic()
            if slot is None:
                if self.ring.drained:
                    return
                idle_since = idle_since or now
                # Orphaned (capture process gone) or told to stop with nothing coming: finish.
                if (os.getppid() != self.parent or self.stop_requested) and now - idle_since > ORPHAN_GRACE_S:
                    return
                self._housekeeping(now)
                continue
            idle_since = None
            self._deliver(slot)
            self.ring.release(slot.seq + 1)
            self._housekeeping(now)

    def _deliver(self, slot) -> None:
        hdr = slot.hdr
        if hdr.count == 0:
            return
        view = BatchView(hdr, slot.to_arrow, self.spec.queue_id, slot.seq)
        # Each batch is counted once: duplicate (every sink had it), sink
        # failure (some sink could not take it), or delivered.
        skipped = failed = 0
        for sink in self.sinks:
            if view.seq <= sink.last_seq:
                skipped += 1  # written before a crash, delivered again by the ring
                continue
            try:
                sink.write(view)
            except SinkError as exc:
                failed += 1
                self.errors.append(str(exc))
                log.error("%s", exc)
        if skipped == len(self.sinks):
            self.duplicates += hdr.count
        elif failed:
            self.sink_failed += hdr.count
        else:
            self.latency.add(hdr)
            self.delivered += hdr.count
            self.batches += 1

    def _housekeeping(self, now: float) -> None:
        for sink in self.sinks:
            try:
                sink.tick(now)
            except (OSError, LogCasterError) as exc:
                self.errors.append(f"{sink.kind}: rotating: {exc}")
        if now - self._last_report >= self.spec.stats_interval_s:
            self._report()
            self._last_report = now

    def stats(self) -> dict:
        return {
            "queue_id": self.spec.queue_id,
            "pid": os.getpid(),
            "delivered": self.delivered,
            "batches": self.batches,
            "duplicates_suppressed": self.duplicates,
            "sink_failed": self.sink_failed,
            "latency_counts": self.latency.counts(),
            "sinks": [s.stats() for s in self.sinks],
            "errors": self.errors[-10:],
        }

    def _report(self, final: bool = False) -> None:
        if self.conn is None:
            return
        try:
            self.conn.send({**self.stats(), "final": final})
        except (BrokenPipeError, OSError):
            self.conn = None  # the supervisor is gone; keep draining


def worker_main(spec: WorkerSpec, conn) -> None:
    """Entry point of a worker process (multiprocessing, spawn)."""
    logging.basicConfig(level=logging.INFO, format=f"worker q{spec.queue_id}: %(message)s")
    if spec.cpu is not None:
        try:
            os.sched_setaffinity(0, {spec.cpu})
        except OSError as exc:
            log.warning("cannot pin to CPU %d: %s", spec.cpu, exc)
    raise SystemExit(Worker(spec, conn).run())
