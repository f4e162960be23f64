"""The v1 record schema and zero-copy views of C batches as pyarrow RecordBatches.

SCHEMA is the one definition every sink, the JSON output and Parquet use.
The C shim lays out the same columns (dpdk_shim/src/batch.c); the import-time
check below fails if the two ever disagree.
"""

from __future__ import annotations

import mmap

import pyarrow as pa

from dpdk_shim import check, ffi, lib

TIMESTAMP = pa.timestamp("ns", tz="UTC")

SCHEMA = pa.schema(
    [
        pa.field("rx_time", TIMESTAMP, nullable=False),
        pa.field("src_ip", pa.string(), nullable=False),
        pa.field("dst_ip", pa.string(), nullable=False),
        pa.field("src_port", pa.uint16(), nullable=False),
        pa.field("dst_port", pa.uint16(), nullable=False),
        pa.field("vlan", pa.uint16(), nullable=False),
        pa.field("facility", pa.uint8()),
        pa.field("severity", pa.uint8()),
        pa.field("format", pa.string(), nullable=False),
        pa.field("timestamp", TIMESTAMP),
        pa.field("hostname", pa.string()),
        pa.field("app_name", pa.string()),
        pa.field("procid", pa.string()),
        pa.field("msgid", pa.string()),
        pa.field("structured_data", pa.string()),
        pa.field("message", pa.string()),              # null: RFC 5424 without MSG (schema 2)
        pa.field("raw", pa.binary(), nullable=False),
        pa.field("flags", pa.uint16(), nullable=False),
    ],
    metadata={"logcaster.schema": "2"},
)

# Names of the flag bits, from the shim's LC_F_* constants (one definition).
FLAGS = {
    name[len("LC_F_"):].lower(): getattr(lib, name)
    for name in dir(lib)
    if name.startswith("LC_F_") and name != "LC_F_NBITS"
}

_FIXED_WIDTH = {lib.LC_KIND_I64: 8, lib.LC_KIND_U16: 2, lib.LC_KIND_U8: 1}


def _check_schema_matches_shim() -> None:
    shim = [ffi.string(lib.lc_col_name(i)).decode() for i in range(lib.LC_NCOLS)]
    if shim != SCHEMA.names:
        raise ImportError(f"schema mismatch: shim columns {shim} != SCHEMA {SCHEMA.names}")


_check_schema_matches_shim()


def record_batch(hdr, owner) -> pa.RecordBatch:
    """Wrap a filled C batch as a RecordBatch over the same memory (no copy).

    `hdr` is a `struct lc_batch_hdr *`; `owner` keeps the memory alive as long
    as the RecordBatch lives. The RecordBatch is valid only until the batch is
    reset or its batch released from the ring: sinks consume it before that.
    """
    n = hdr.count
    base = int(ffi.cast("uintptr_t", hdr))
    arrays = []
    for i, field in enumerate(SCHEMA):
        col = hdr.cols[i]
        validity = (
            pa.foreign_buffer(base + col.validity_off, (n + 7) // 8, owner) if col.validity_off else None
        )
        if col.data_off:
            offsets = pa.foreign_buffer(base + col.values_off, 4 * (n + 1), owner)
            data = pa.foreign_buffer(base + col.data_off, col.data_used, owner)
            buffers = [validity, offsets, data]
        else:
            buffers = [validity, pa.foreign_buffer(base + col.values_off, _FIXED_WIDTH[col.kind] * n, owner)]
        arrays.append(pa.Array.from_buffers(field.type, n, buffers, null_count=-1 if validity else 0))
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


class Batch:
    """A batch in private memory (offline decoding, tests, benchmarks).

    Page-aligned anonymous memory, laid out once by the shim; reset() reuses it.
    """

    def __init__(self, capacity: int = 1024, avg_payload: int = 256, queue_id: int = 0):
        size = check(lib.lc_batch_size(capacity, avg_payload), "sizing a batch")
        self._mem = mmap.mmap(-1, size)
        self._cbuf = ffi.from_buffer(self._mem)
        self.hdr = ffi.cast("struct lc_batch_hdr *", self._cbuf)
        check(lib.lc_batch_init(self._cbuf, size, capacity, avg_payload, queue_id), "laying out a batch")

    def __len__(self) -> int:
        return self.hdr.count

    def reset(self, seq: int = 0) -> None:
        lib.lc_batch_reset(self.hdr, seq)

    def to_arrow(self) -> pa.RecordBatch:
        """Zero-copy view; valid until the next reset()."""
        return record_batch(self.hdr, self._mem)
