"""Worker process: one per RX queue. Reads its ring, hands batches to the sinks.

Each wake-up takes every batch published since the last one (Ring.take):
one zero-copy Arrow table over all of them, built in C, handed to every
sink. The ring is the sinks' spool: ring space is released only up to what
every sink has committed (a Parquet file renamed into the store, a JSON
line in the OS), so a worker that dies loses nothing: its replacement
resumes at the ring's tail and the sinks skip what they already hold. A
sink that fails (disk full, read-only, permission) keeps its batches in the
ring and is retried every RETRY_S; its error is logged once per stats
interval, not once per batch. Sleeps on the ring's futex when idle; never
busy-polls. While a `logcaster tap` runs, matching records of each take go
into a side ring as well (appliance/tap.py); otherwise the tap costs a stat
every half second.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass

from appliance.config import SinkConfig
from appliance.probe import drop_capabilities
from appliance.errors import LogCasterError
from appliance.sinks import SinkError, make_sink
from appliance.tap import TapWriter

log = logging.getLogger(__name__)

IDLE_WAIT_S = 0.2
ORPHAN_GRACE_S = 2.0
RETRY_S = 0.5                   # a failed sink is tried again after this long
STOP_RETRY_S = 10.0             # when the capture has ended, keep retrying a failing sink this long


@dataclass(frozen=True)
class WorkerSpec:
    queue_id: int
    ring_path: str
    sinks: tuple[SinkConfig, ...]
    cpu: int | None
    run_id: int
    stats_interval_s: float = 1.0
    tap_prefix: str | None = None   # dpdk.file_prefix: follow `logcaster tap` (None: no tap)


class LatencyHistogram:
    """rx_time -> sink hand-off, per record, in C (dpdk_shim/src/latency.c)."""

    def __init__(self):
        from dpdk_shim import ffi, lib

        self._lib = lib
        self.buckets = ffi.new("uint64_t[]", lib.LC_LAT_BUCKETS)

    def add(self, taken) -> None:
        self._lib.lc_latency_add_many(taken.hdrs, len(taken), time.time_ns(), self.buckets)

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
        # The batches' run is the ring's creator: a ring left by a crashed
        # run keeps its id, so the sinks recognise what they already hold.
        self.run_id = self.ring.run_id or spec.run_id
        self.sinks = [make_sink(cfg, spec.queue_id, self.run_id) for cfg in spec.sinks]
        tail = self.ring.tail
        for sink in self.sinks:
            sink.need = tail
        self.held: list = []        # Taken batches not yet released, oldest first
        self.latency = LatencyHistogram()
        self.delivered = 0          # records released after every sink committed them
        self.batches = 0
        self.taken = 0              # records taken from the ring by this worker
        self.sink_failed = 0        # records a sink refused for good (none today: failures are retried)
        self.sink_errors = 0        # failed writes/commits, each retried
        self.errors: list[str] = []
        self._retry_at = [0.0] * len(self.sinks)
        self._logged_at = [-1e9] * len(self.sinks)
        self._last_report = 0.0
        self._stuck_since: float | None = None
        self._stuck_tail = -1
        self.tap = TapWriter(spec.tap_prefix, spec.queue_id) if spec.tap_prefix else None

    def _on_term(self, signum, frame) -> None:
        self.stop_requested = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor coordinates Ctrl-C
        self._report()  # ready: ring attached, sinks recovered
        try:
            self._loop()
            self._finish()
        finally:
            self._report(final=True)
            if self.tap is not None:
                self.tap.close()
            self.held.clear()
            self.ring.close()
        return 0

    def _loop(self) -> None:
        idle_since = None
        while True:
            now = time.monotonic()
            pending = [t for t in self._retry_at if t > now]
            timeout = min([IDLE_WAIT_S] + [t - now for t in pending])
            taken = self.ring.take(timeout=max(0.0, timeout))
            now = time.monotonic()
            if taken is not None:
                idle_since = None
                self.latency.add(taken)     # rx -> hand-off to the sinks
                self.held.append(taken)
                self.taken += taken.records
            self._feed(now)
            self._tick(now)
            if self.tap is not None:        # after the sinks, before the release (the batches are still ours)
                self.tap.poll(now)
                if taken is not None:
                    self.tap.offer(taken, now)
            self._release()
            if taken is None:
                if self.ring.drained:       # capture ended and every batch taken: commit what is held
                    self._close_sinks(now)
                    self._release()
                    if not self.held or self._gave_up(now):
                        return
                idle_since = idle_since or now
                # Orphaned (capture process gone) or told to stop with nothing coming: finish.
                if (os.getppid() != self.parent or self.stop_requested) and now - idle_since > ORPHAN_GRACE_S:
                    return
            if now - self._last_report >= self.spec.stats_interval_s:
                self._report()
                self._last_report = now

    def _gave_up(self, now: float) -> bool:
        """Capture ended but a sink still fails: retry for STOP_RETRY_S after
        the last progress, then leave the rest in the ring (next start)."""
        if self._stuck_since is None or self._stuck_tail != self.ring.tail:
            self._stuck_since, self._stuck_tail = now, self.ring.tail
        return now - self._stuck_since >= STOP_RETRY_S

    def _feed(self, now: float) -> None:
        """Hand every sink the held batches it still needs."""
        for i, sink in enumerate(self.sinks):
            if now < self._retry_at[i]:
                continue
            try:
                for taken in self._wanted(sink.need):
                    sink.write(taken)
            except SinkError as exc:
                self._failed(i, sink, exc, now)

    def _wanted(self, need: int) -> list:
        """The held takes that end after `need`: the newest ones (a sink's
        need only grows), found from the end so a long hold costs nothing."""
        i = len(self.held)
        while i and self.held[i - 1].end > need:
            i -= 1
        return self.held[i:]

    def _tick(self, now: float) -> None:
        for i, sink in enumerate(self.sinks):
            if now < self._retry_at[i]:
                continue
            try:
                sink.tick(now, self.ring.data_size)
            except SinkError as exc:
                self._failed(i, sink, exc, now)

    def _failed(self, i: int, sink, exc: SinkError, now: float) -> None:
        """The batches stay in the ring; the sink starts again from what it committed."""
        self.sink_errors += 1
        self._retry_at[i] = now + RETRY_S
        try:
            sink.abort()
        except (OSError, LogCasterError) as more:
            exc = SinkError(f"{exc}; then cleaning up: {more}")
        if now - self._logged_at[i] >= self.spec.stats_interval_s:
            self._logged_at[i] = now
            log.error("%s (retrying every %.1f s; the ring holds the batches)", exc, RETRY_S)
            self.errors.append(str(exc))
            del self.errors[:-10]

    def _close_sinks(self, now: float) -> None:
        for i, sink in enumerate(self.sinks):
            if now < self._retry_at[i]:
                continue
            try:
                sink.close()
            except SinkError as exc:
                self._failed(i, sink, exc, now)

    def _release(self) -> None:
        upto = min(sink.committed() for sink in self.sinks)
        tail = self.ring.tail
        if upto <= tail:
            return
        before = self.ring.stats()["records_released"]
        self.batches += self.ring.release(upto)
        self.delivered += self.ring.stats()["records_released"] - before
        while self.held and self.held[0].end <= upto:
            self.held.pop(0)

    def _finish(self) -> None:
        """Commit everything (the last files are closed); what a failing sink
        could not take stays in the ring for the next start."""
        for attempt in range(2):
            self._retry_at = [0.0] * len(self.sinks)
            self._feed(time.monotonic())
            self._close_sinks(time.monotonic())
            self._release()
            if not self.held:
                return
            time.sleep(RETRY_S)
        log.error("stopping with %d records the sinks did not commit: they stay in the ring %s "
                  "and are delivered at the next start", sum(t.records for t in self.held), self.spec.ring_path)

    @property
    def duplicates(self) -> int:
        return min((s.duplicates for s in self.sinks), default=0)

    def stats(self) -> dict:
        return {
            "queue_id": self.spec.queue_id,
            "pid": os.getpid(),
            "run_id": self.run_id,
            "delivered": self.delivered,
            "batches": self.batches,
            "taken": self.taken,
            "duplicates_suppressed": self.duplicates,
            "sink_failed": self.sink_failed,
            "sink_errors": self.sink_errors,
            "held_records": sum(t.records for t in self.held),
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
    """Entry point of a worker process (multiprocessing, spawn). Run by the
    service's user, it needs no capability (its ring and sinks are that
    user's files) and gives up any it has. Run by root it stays root: root
    without CAP_DAC_OVERRIDE could not reach a sink under another user's
    directory (/var/lib/logcaster is the service's, 0750)."""
    if os.geteuid() != 0:
        drop_capabilities()
    logging.basicConfig(level=logging.INFO, format=f"worker q{spec.queue_id}: %(message)s")
    if spec.cpu is not None:
        try:
            os.sched_setaffinity(0, {spec.cpu})
        except OSError as exc:
            log.warning("cannot pin to CPU %d: %s", spec.cpu, exc)
    raise SystemExit(Worker(spec, conn).run())
