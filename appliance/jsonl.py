"""JSON lines output of batches, encoded in C (one record per line, schema field names).

Python calls the encoder once per batch (or a few times for a huge batch),
never per record.
"""

from __future__ import annotations

from typing import BinaryIO

from dpdk_shim import ffi, lib

_INITIAL_BUFFER = 4 << 20


class JsonlEncoder:
    """Encodes whole batches into a reusable buffer and writes them to a file."""

    def __init__(self, *, with_raw: bool = False):
        self.with_raw = with_raw
        self._grow(_INITIAL_BUFFER)
        self._used = ffi.new("uint64_t *")

    def _grow(self, size: int) -> None:
        self._buf = ffi.new("char[]", size)
        self._size = size

    def write(self, hdr, out: BinaryIO) -> int:
        """Write every row of the batch `hdr` to `out`; returns bytes written."""
        total = 0
        row, count = 0, hdr.count
        while row < count:
            n = lib.lc_batch_jsonl(hdr, row, count - row, int(self.with_raw), self._buf, self._size, self._used)
            if n <= 0:
                # One row larger than the buffer (64 KiB payloads with escapes): grow and retry.
                self._grow(self._size * 2)
                continue
            out.write(ffi.buffer(self._buf, self._used[0]))
            total += self._used[0]
            row += n
        return total
