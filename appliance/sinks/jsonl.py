"""The JSON lines sink: the same record JSON as `logcaster decode`, in rotating files.

Lines are encoded in C (appliance.jsonl) and written straight to the OS,
so a batch is committed as soon as its lines are written; a file is
written as `.<name>.jsonl.part` and renamed when it rotates. Beside each
part file a 16-byte `.seq` file holds (run, last batch seq), rewritten
after each take, so a replacement worker finishes the dead one's part files
(cut back to the last whole line) and skips batches already written. A
crash between the lines and the `.seq` update writes those batches twice
(at-least-once).
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.config import SinkConfig
from appliance.jsonl import JsonlEncoder
from appliance.sinks.base import HOUR_NS, Sink, SinkError, fsync_dir, hour_of, partition_dir
from dpdk_shim import ffi

_SEQ = struct.Struct("<qq")  # run id, last batch seq


@dataclass
class _Part:
    hour: int
    path: Path          # the .part file
    final: Path
    opened: float
    fd: int
    seq_fd: int
    size: int = 0


class JsonlSink(Sink):
    kind = "jsonl"

    def __init__(self, cfg: SinkConfig, queue_id: int, run_id: int = 0):
        super().__init__(cfg, queue_id, run_id)
        self.root = Path(cfg.path)
        self.last_seq = -1          # highest batch seq of this run in the files (recovered at start)
        self.encoder = JsonlEncoder(with_raw=False)
        self._parts: dict[int, _Part] = {}
        self.recovered_files = 0
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"jsonl sink: cannot create {self.root}", errno=exc.errno) from None
        self._recover()

    def _recover(self) -> None:
        for part in sorted(self.root.glob(f"date=*/hour=*/.q{self.queue_id}-*.jsonl.part")):
            seq_path = part.with_name(part.name + ".seq")
            if seq_path.exists():
                data = seq_path.read_bytes()
                if len(data) == _SEQ.size:
                    run, seq = _SEQ.unpack(data)
                    if run == self.run_id:
                        self.last_seq = max(self.last_seq, seq)
            _cut_to_last_line(part)
            os.replace(part, part.with_name(part.name[1:-len(".part")]))
            seq_path.unlink(missing_ok=True)
            self.recovered_files += 1

    def _open(self, hour: int) -> _Part:
        directory = partition_dir(self.root, hour)
        directory.mkdir(parents=True, exist_ok=True)
        stem = f"q{self.queue_id}-{time.time_ns()}"
        path = directory / f".{stem}.jsonl.part"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        seq_fd = os.open(path.with_name(path.name + ".seq"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        part = _Part(hour, path, directory / f"{stem}.jsonl", time.monotonic(), fd, seq_fd)
        self._parts[hour] = part
        return part

    def write(self, taken) -> None:
        first = max(taken.first, self.need)
        records, parts = 0, set()
        try:
            for seq in range(first, taken.end):
                hdr = taken.hdrs[seq - taken.first]
                if seq <= self.last_seq:     # written before a crash, delivered again by the ring
                    self.duplicates += hdr.count
                    continue
                for hour, start, end in _hour_rows(hdr):
                    part = self._parts.get(hour) or self._open(hour)
                    part.size += self.encoder.write_fd(hdr, part.fd, start, end)
                    parts.add(hour)
                records += hdr.count
            for hour in parts:
                os.pwrite(self._parts[hour].seq_fd, _SEQ.pack(self.run_id, taken.end - 1), 0)
            for hour in parts:
                if self._parts[hour].size >= self.cfg.rotate_bytes:
                    self._rotate(self._parts[hour])
        except OSError as exc:
            raise SinkError(f"jsonl sink {self.root}: writing batches {first}..{taken.end - 1}: {exc.strerror}",
                            errno=exc.errno) from None
        self.records += records
        self.batches += taken.end - first
        self.need = taken.end

    def tick(self, now: float, ring_bytes: int = 0) -> None:
        try:
            for part in list(self._parts.values()):
                if now - part.opened >= self.cfg.rotate_seconds:
                    self._rotate(part)
        except OSError as exc:
            raise SinkError(f"jsonl sink {self.root}: rotating: {exc.strerror}", errno=exc.errno) from None

    def abort(self) -> None:
        """A failed write may have left a torn line: cut it off; the batches
        not committed come again (lines written before the failure may be
        written twice: at-least-once)."""
        for part in self._parts.values():
            try:
                os.ftruncate(part.fd, part.size)
            except OSError:
                pass

    def _rotate(self, part: _Part) -> None:
        del self._parts[part.hour]
        os.close(part.fd)
        os.close(part.seq_fd)
        os.replace(part.path, part.final)
        os.unlink(part.path.with_name(part.path.name + ".seq"))
        fsync_dir(part.final.parent)

    def close(self) -> None:
        try:
            for part in list(self._parts.values()):
                self._rotate(part)
        except OSError as exc:
            raise SinkError(f"jsonl sink {self.root}: closing: {exc.strerror}", errno=exc.errno) from None

    def stats(self) -> dict:
        return {**super().stats(), "recovered_files": self.recovered_files}


def _hour_rows(hdr) -> list[tuple[int, int, int]]:
    """(hour, first_row, end_row) runs of a batch by the hour of rx_time.
    rx_time only grows inside a queue's batch: the common case is one run,
    read from the header; a batch across an hour boundary is split with a
    binary search over its rx_time column."""
    first, last = hour_of(hdr.first_rx_ns), hour_of(hdr.last_rx_ns)
    n = hdr.count
    if first == last:
        return [(first, 0, n)] if n else []
    rx = ffi.cast("int64_t *", ffi.cast("char *", hdr) + hdr.cols[0].values_off)
    runs, start = [], 0
    for hour in range(first, last + 1):
        lo, hi = start, n                   # first row at or after the next hour
        limit = (hour + 1) * HOUR_NS
        while lo < hi:
            mid = (lo + hi) // 2
            if rx[mid] < limit:
                lo = mid + 1
            else:
                hi = mid
        if lo > start:
            runs.append((hour, start, lo))
        start = lo
    return runs


def _cut_to_last_line(path: Path) -> None:
    """Drop a line cut short by a crash (its batch was never released)."""
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb+") as f:
        pos = size
        while pos > 0:
            step = min(65536, pos)
            f.seek(pos - step)
            chunk = f.read(step)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                f.truncate(pos - step + nl + 1)
                return
            pos -= step
        f.truncate(0)
