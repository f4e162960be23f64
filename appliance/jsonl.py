"""JSON lines output of batches, encoded in C (one record per line, schema field names).

Python calls the encoder once per batch (or a few times for a huge batch),
never per record.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

from dpdk_shim import ffi, lib

_INITIAL_BUFFER = 4 << 20


class JsonlEncoder:
    """Encodes rows of a batch into a reusable buffer."""

    def __init__(self, *, with_raw: bool = False, buffer_bytes: int = _INITIAL_BUFFER):
        """`buffer_bytes`: the size of the chunks `chunks` yields (larger only
        for a single row that does not fit)."""
        self.with_raw = with_raw
        self._grow(buffer_bytes)
        self._used = ffi.new("uint64_t *")

    def _grow(self, size: int) -> None:
        self._buf = ffi.new("char[]", size)
        self._size = size

    def chunks(self, hdr, start: int = 0, end: int | None = None) -> Iterator[memoryview]:
        """Encoded lines of rows [start, end), as views of the buffer (each
        valid until the next one is produced)."""
        row, end = start, hdr.count if end is None else end
        while row < end:
            n = lib.lc_batch_jsonl(hdr, row, end - row, int(self.with_raw), self._buf, self._size, self._used)
            if n <= 0:
                # One row larger than the buffer (64 KiB payloads, escaped): grow and retry.
                self._grow(self._size * 2)
                continue
            yield memoryview(ffi.buffer(self._buf, self._used[0]))
            row += n

    def write(self, hdr, out: BinaryIO) -> int:
        """Write every row of the batch `hdr` to a file object; returns bytes written."""
        total = 0
        for chunk in self.chunks(hdr):
            out.write(chunk)
            total += len(chunk)
        return total

    def write_fd(self, hdr, fd: int, start: int = 0, end: int | None = None) -> int:
        """Write rows [start, end) straight to a file descriptor; returns bytes written."""
        total = 0
        for chunk in self.chunks(hdr, start, end):
            while chunk:
                n = os.write(fd, chunk)
                chunk = chunk[n:]
                total += n
        return total
