"""What every sink shares: the batch view handed to it, the error, file naming."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from appliance.config import SinkConfig
from appliance.errors import LogCasterError

HOUR_NS = 3600 * 10**9


class SinkError(LogCasterError):
    """A sink could not take a batch."""


class BatchView:
    """One batch as the sinks see it: the C header (for C encoders) and a
    zero-copy RecordBatch, both valid until the worker releases the slot.
    The RecordBatch is built on first use: a sink that needs only the
    header (null, JSON lines) never pays for it."""

    def __init__(self, hdr, to_arrow, queue_id: int, seq: int):
        self.hdr = hdr
        self._to_arrow = to_arrow
        self._arrow: pa.RecordBatch | None = None
        self.queue_id = queue_id
        self.seq = seq

    @property
    def arrow(self) -> pa.RecordBatch:
        if self._arrow is None:
            self._arrow = self._to_arrow()
        return self._arrow

    @property
    def num_rows(self) -> int:
        return self.hdr.count

    @property
    def first_rx_ns(self) -> int:
        return self.hdr.first_rx_ns

    @property
    def last_rx_ns(self) -> int:
        return self.hdr.last_rx_ns


def hour_of(ns: int) -> int:
    return ns // HOUR_NS


def partition_dir(root: Path, hour: int) -> Path:
    """Hive-style partition of an hour: date=YYYY-MM-DD/hour=HH."""
    t = datetime.fromtimestamp(hour * 3600, tz=timezone.utc)
    return root / f"date={t:%Y-%m-%d}" / f"hour={t:%H}"


def hour_splits(view: BatchView) -> list[tuple[int, int, int]]:
    """(hour, first_row, end_row) runs of a batch. rx_time only grows inside
    a queue's batch, so a batch crosses an hour boundary at most rarely; the
    common case costs nothing."""
    first, last = hour_of(view.first_rx_ns), hour_of(view.last_rx_ns)
    n = view.num_rows
    if first == last:
        return [(first, 0, n)]
    import pyarrow.compute as pc

    hours = pc.divide(view.arrow.column("rx_time").cast(pa.int64()), HOUR_NS).to_pylist()
    runs, start = [], 0
    for i in range(1, n + 1):
        if i == n or hours[i] != hours[start]:
            runs.append((hours[start], start, i))
            start = i
    return runs


class Sink:
    kind = "sink"

    def __init__(self, cfg: SinkConfig, queue_id: int):
        self.cfg = cfg
        self.queue_id = queue_id
        self.last_seq = -1
        self.records = 0
        self.batches = 0

    def write(self, view: BatchView) -> None:
        raise NotImplementedError

    def tick(self, now: float) -> None:
        """Rotate on time; called between batches and when idle."""

    def close(self) -> None:
        """Finish every open file."""

    def stats(self) -> dict:
        return {"kind": self.kind, "records": self.records, "batches": self.batches}


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
