"""The JSON lines sink: the same record JSON as `logcaster decode`, in rotating files.

Lines are encoded in C (appliance.jsonl) and written straight to the OS; a
file is written as `.<name>.jsonl.part` and renamed when it rotates. Beside
each part file a 16-byte `.seq` file holds (run, last batch seq), rewritten
after each batch, so a replacement worker finishes the dead one's part files
(cut back to the last whole line) and skips batches already written.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.config import SinkConfig
from appliance.jsonl import JsonlEncoder
from appliance.sinks.base import BatchView, Sink, SinkError, fsync_dir, hour_splits, partition_dir

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
        super().__init__(cfg, queue_id)
        self.root = Path(cfg.path)
        self.run_id = run_id
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
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        seq_fd = os.open(path.with_name(path.name + ".seq"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        part = _Part(hour, path, directory / f"{stem}.jsonl", time.monotonic(), fd, seq_fd)
        self._parts[hour] = part
        return part

    def write(self, view: BatchView) -> None:
        try:
            for hour, start, end in hour_splits(view):
                part = self._parts.get(hour) or self._open(hour)
                part.size += self.encoder.write_fd(view.hdr, part.fd, start, end)
                os.pwrite(part.seq_fd, _SEQ.pack(self.run_id, view.seq), 0)
                if part.size >= self.cfg.rotate_bytes:
                    self._rotate(part)
        except OSError as exc:
            raise SinkError(f"jsonl sink: writing batch {view.seq}: {exc.strerror}", errno=exc.errno) from None
        self.records += view.hdr.count
        self.batches += 1
        self.last_seq = view.seq

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for part in list(self._parts.values()):
            if now - part.opened >= self.cfg.rotate_seconds:
                self._rotate(part)

    def _rotate(self, part: _Part) -> None:
        del self._parts[part.hour]
        os.close(part.fd)
        os.close(part.seq_fd)
        os.replace(part.path, part.final)
        os.unlink(part.path.with_name(part.path.name + ".seq"))
        fsync_dir(part.final.parent)

    def close(self) -> None:
        for part in list(self._parts.values()):
            self._rotate(part)

    def stats(self) -> dict:
        return {**super().stats(), "recovered_files": self.recovered_files}


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
