"""Sinks: where a worker hands its batches.

Contract (the worker relies on it for at-least-once delivery):
- `write(view)` returns once the batch is safe from a crash of this process
  (in the OS: a file write, not a Python buffer); the worker then releases
  the ring slot. It raises SinkError when the batch could not be written.
- `last_seq` is the highest batch sequence number of this queue the sink
  holds durably, recovered at start from what a dead predecessor left; the
  worker skips batches up to it (counted as duplicates suppressed).
- `tick(now)` rotates on time; `close()` finishes every file so a reader
  never sees a partial one.
"""

from __future__ import annotations

from appliance.config import SinkConfig
from appliance.sinks.base import BatchView, Sink, SinkError
from appliance.sinks.jsonl import JsonlSink
from appliance.sinks.null import NullSink
from appliance.sinks.parquet import ParquetSink

_KINDS = {"parquet": ParquetSink, "jsonl": JsonlSink, "null": NullSink}


def make_sink(cfg: SinkConfig, queue_id: int, run_id: int = 0) -> Sink:
    """A sink for one queue; `run_id` tells this run's batches from an older run's."""
    if cfg.type == "null":
        return NullSink(cfg, queue_id)
    return _KINDS[cfg.type](cfg, queue_id, run_id)


__all__ = ["BatchView", "Sink", "SinkError", "make_sink", "ParquetSink", "JsonlSink", "NullSink"]
