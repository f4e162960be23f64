"""What every sink shares: the contract, the error, file naming."""

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


def hour_of(ns: int) -> int:
    return ns // HOUR_NS


def partition_dir(root: Path, hour: int) -> Path:
    """Hive-style partition of an hour: date=YYYY-MM-DD/hour=HH."""
    t = datetime.fromtimestamp(hour * 3600, tz=timezone.utc)
    return root / f"date={t:%Y-%m-%d}" / f"hour={t:%H}"


def hour_parts(table: pa.Table) -> list[tuple[int, pa.Table]]:
    """(hour, rows) of a table by the hour of rx_time, in order. rx_time only
    grows inside a queue, so a take spans an hour boundary at most rarely;
    the common case is one min/max in C++ and no copy."""
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return []
    rx = table.column("rx_time").cast(pa.int64())
    bounds = pc.min_max(rx)
    first, last = hour_of(bounds["min"].as_py()), hour_of(bounds["max"].as_py())
    if first == last:
        return [(first, table)]
    hours = pc.divide(rx, HOUR_NS)
    return [(h, table.filter(pc.equal(hours, h))) for h in range(first, last + 1)
            if pc.any(pc.equal(hours, h)).as_py()]


class Sink:
    """What the worker drives (appliance/worker.py).

    The ring is the spool: the worker hands a sink every batch it takes,
    and releases ring space only up to what every sink has `committed`.
    `need` is the index of the next batch this sink wants: the worker
    hands it takes from there on (again after a failure: nothing given to
    a sink that failed is lost, it is in the ring)."""

    kind = "sink"

    def __init__(self, cfg: SinkConfig, queue_id: int, run_id: int = 0):
        self.cfg = cfg
        self.queue_id = queue_id
        self.run_id = run_id
        self.need = 0               # set by the worker to the ring's tail at start
        self.records = 0
        self.batches = 0
        self.duplicates = 0         # records skipped: held before a crash, delivered again by the ring

    def write(self, taken) -> None:
        """Take batches [taken.first, taken.end) (the worker never hands one
        before `need`); raise SinkError when they could not be written."""
        raise NotImplementedError

    def committed(self) -> int:
        """Every batch before this index is safe from a crash of this process."""
        return self.need

    def tick(self, now: float, ring_bytes: int) -> None:
        """Rotate on time; commit early when what the sink holds uncommitted
        nears the ring's size (`ring_bytes`, its data area)."""

    def abort(self) -> None:
        """Drop what is not committed (after a failure): the worker hands it again."""

    def close(self) -> None:
        """Commit everything written and finish every open file."""

    def stats(self) -> dict:
        return {"kind": self.kind, "records": self.records, "batches": self.batches,
                "duplicates": self.duplicates}


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
