"""The Parquet sink (the default): Hive partitions by date and hour of rx_time.

Written once, straight from the ring: the batches a worker takes are
appended (zero-copy) to the open file of their hour, and written out as a
row group each time `row_group_rows` records have gathered. The ring is the
spool: nothing is released from it until the file holding the batches is
complete — written under a temporary name in the store's `.staging/`
directory, closed, and renamed into its partition — so a reader never sees
a partial file and a crash of the worker loses nothing. A file is closed
after `rotate_seconds`, at `rotate_bytes`, or early when the open files'
batches hold half of the ring (so the ring never fills behind a commit).

Exactly once across crashes: a complete file is named
`q<queue>-<run>-<first seq>-<last seq>.parquet` (the run that made the
ring, the batch sequence numbers it holds). A replacement worker deletes
the staging files its predecessor left and skips the batches the ring
delivers again that a complete file of that hour already holds.

Writer settings (docs/BENCHMARKS.md has the measurements): zstd level 1,
dictionary encoding only for repeating columns, min/max statistics only
where they help a query skip row groups.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from appliance.batch import SCHEMA
from appliance.config import SinkConfig
from appliance.sinks.base import Sink, SinkError, fsync_dir, hour_parts, partition_dir

log = logging.getLogger(__name__)

# Dictionary encoding pays for columns that repeat (hosts, apps, addresses);
# for message/raw-like columns it is CPU spent to find it does not.
DICTIONARY_COLUMNS = ["src_ip", "dst_ip", "src_port", "dst_port", "vlan", "facility", "severity", "format",
                      "hostname", "app_name", "msgid", "flags"]

# Min/max statistics help DuckDB skip row groups on time, host, severity...;
# on message/raw-like text they are useless and cost ~3 % of the write.
STATISTICS_COLUMNS = [c for c in SCHEMA.names if c not in ("message", "raw", "structured_data")]

COMPRESSION_LEVEL = {"zstd": 1}    # level 1: the fastest zstd; higher levels cost more CPU than they save
RING_SHARE = 0.5                   # close files once the batches they hold fill this share of the ring
STAGING_DIR = ".staging"
_NAME = re.compile(r"q(\d+)-(\d+)-(\d+)-(\d+)\.parquet")


def writer_options(cfg: SinkConfig) -> dict:
    """The ParquetWriter settings of this sink (also used by bench/pipeline.py's
    pyarrow-only baseline, so the two write the same way)."""
    compression = None if cfg.compression == "none" else cfg.compression
    return dict(compression=compression, compression_level=COMPRESSION_LEVEL.get(cfg.compression),
                use_dictionary=DICTIONARY_COLUMNS, write_statistics=STATISTICS_COLUMNS)


@dataclass
class _File:
    hour: int
    tmp: Path
    writer: pq.ParquetWriter
    opened: float
    first_seq: int
    last_seq: int = -1
    rows: int = 0
    pending: list = field(default_factory=list)   # tables not yet in a row group
    pending_rows: int = 0
    bytes_in: int = 0                             # Arrow bytes appended (rotate_bytes' measure)


class ParquetSink(Sink):
    kind = "parquet"

    def __init__(self, cfg: SinkConfig, queue_id: int, run_id: int = 0):
        super().__init__(cfg, queue_id, run_id)
        self.root = Path(cfg.path)
        self.staging = self.root / STAGING_DIR
        try:
            self.staging.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"parquet sink: cannot create {self.staging}: {exc.strerror}", errno=exc.errno) from None
        self._files: dict[int, _File] = {}
        self._done: dict[int, int] = {}      # hour -> highest batch seq of this run/queue in complete files
        self._options = writer_options(cfg)
        self.files = 0
        self.rows_in_files = 0
        self.dropped_partial = self._drop_staging()

    # -- crash recovery ---------------------------------------------------

    def _drop_staging(self) -> int:
        """Files a dead worker of this queue was writing: never complete, their
        batches were never released, the ring delivers them again."""
        n = 0
        for path in self.staging.glob(f".q{self.queue_id}-*.parquet.tmp"):
            path.unlink(missing_ok=True)
            log.info("dropped incomplete %s (its batches are still in the ring)", path)
            n += 1
        return n

    def _done_in(self, hour: int) -> int:
        """Highest seq of this run and queue already in a complete file of `hour`."""
        if hour not in self._done:
            best = -1
            directory = partition_dir(self.root, hour)
            try:
                names = os.listdir(directory)
            except FileNotFoundError:
                names = []
            for name in names:
                m = _NAME.fullmatch(name)
                if m and int(m.group(1)) == self.queue_id and int(m.group(2)) == self.run_id:
                    best = max(best, int(m.group(4)))
            self._done[hour] = best
        return self._done[hour]

    # -- writing ----------------------------------------------------------

    def write(self, taken) -> None:
        first = max(taken.first, self.need)     # after an abort, part may be committed already
        table = taken.table()
        if first > taken.first:
            table = table.slice(_rows_before(taken, first))
        dup_before = self.duplicates
        try:
            parts = hour_parts(table)
            if any(self._done_in(hour) >= first for hour, _ in parts):
                self._write_each(taken, first)  # the ring delivers again what a dead worker wrote
            else:
                for hour, part in parts:
                    self._append(hour, part, first, taken.end - 1)
        except OSError as exc:
            raise SinkError(f"parquet sink {self.root}: writing batches {first}..{taken.end - 1}: "
                            f"{exc.strerror or exc}", errno=exc.errno) from None
        self.records += table.num_rows - (self.duplicates - dup_before)
        self.batches += taken.end - first
        self.need = taken.end

    def _write_each(self, taken, first: int) -> None:
        """Batch by batch, skipping those a complete file already holds (only
        right after a crash, so the per-batch loop is off the hot path)."""
        chunks = taken.table().to_batches()          # one chunk per batch, in order
        for seq in range(first, taken.end):
            rb = chunks[seq - taken.first]
            for hour, part in hour_parts(pa.Table.from_batches([rb], schema=SCHEMA)):
                if self._done_in(hour) >= seq:
                    self.duplicates += part.num_rows
                    continue
                self._append(hour, part, seq, seq)

    def _append(self, hour: int, part: pa.Table, first_seq: int, last_seq: int) -> None:
        f = self._files.get(hour) or self._open(hour, first_seq)
        f.pending.append(part)
        f.pending_rows += part.num_rows
        f.bytes_in += part.get_total_buffer_size()   # nbytes walks referenced ranges: far slower
        f.last_seq = last_seq
        if f.pending_rows >= self.cfg.row_group_rows:
            self._flush_row_group(f)

    def _open(self, hour: int, first_seq: int) -> _File:
        tmp = self.staging / f".q{self.queue_id}-{self.run_id}-{first_seq}-{time.time_ns()}.parquet.tmp"
        writer = pq.ParquetWriter(str(tmp), SCHEMA, **self._options)
        f = _File(hour, tmp, writer, time.monotonic(), first_seq)
        self._files[hour] = f
        return f

    def _flush_row_group(self, f: _File, *, all_rows: bool = False) -> None:
        """Write whole row groups of row_group_rows (the rest stays pending),
        or, when the file closes, everything."""
        rows = self.cfg.row_group_rows
        while f.pending_rows >= rows or (all_rows and f.pending_rows):
            table = pa.concat_tables(f.pending)          # zero-copy: the chunks stay the ring's
            n = min(rows, table.num_rows)
            f.writer.write_table(table.slice(0, n), row_group_size=n)
            f.rows += n
            rest = table.slice(n)
            f.pending, f.pending_rows = ([rest] if rest.num_rows else []), rest.num_rows

    def committed(self) -> int:
        """Everything before the first batch of a file still open is in complete files."""
        return min((f.first_seq for f in self._files.values()), default=self.need)

    def tick(self, now: float, ring_bytes: int = 0) -> None:
        # What the open files hold is ring space nobody else can use: commit
        # before it crowds out the traffic behind it (measured by the Arrow
        # bytes appended, which are the ring bytes of those batches).
        crowded = ring_bytes and sum(f.bytes_in for f in self._files.values()) >= RING_SHARE * ring_bytes
        for f in list(self._files.values()):
            if now - f.opened >= self.cfg.rotate_seconds or f.bytes_in >= self.cfg.rotate_bytes or crowded:
                self._commit(f)

    def _commit(self, f: _File) -> None:
        """Last row group, footer, rename into the store: the file is complete."""
        try:
            self._flush_row_group(f, all_rows=True)
            f.writer.close()
            directory = partition_dir(self.root, f.hour)
            directory.mkdir(parents=True, exist_ok=True)
            final = directory / f"q{self.queue_id}-{self.run_id}-{f.first_seq}-{f.last_seq}.parquet"
            os.replace(f.tmp, final)
            fsync_dir(directory)
        except OSError as exc:
            raise SinkError(f"parquet sink {self.root}: completing {f.tmp.name}: {exc.strerror or exc}",
                            errno=exc.errno) from None
        del self._files[f.hour]
        self._done[f.hour] = max(self._done.get(f.hour, -1), f.last_seq)
        self.files += 1
        self.rows_in_files += f.rows

    def abort(self) -> None:
        """Drop the open files (their batches are still in the ring) and start
        again from the first batch not in a complete file."""
        self.need = self.committed()
        for f in self._files.values():
            try:
                f.writer.close()
            except (OSError, pa.ArrowException):
                pass
            f.tmp.unlink(missing_ok=True)
        self._files.clear()

    def close(self) -> None:
        for f in list(self._files.values()):
            self._commit(f)

    def stats(self) -> dict:
        return {**super().stats(), "files": self.files, "rows_in_files": self.rows_in_files,
                "open_files": len(self._files), "dropped_partial": self.dropped_partial}


def _rows_before(taken, index: int) -> int:
    """Rows of the batches of `taken` before batch `index`."""
    return sum(taken.hdrs[i].count for i in range(index - taken.first))
