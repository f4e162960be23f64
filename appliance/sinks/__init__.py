"""Sinks: where a worker hands its batches.

Contract (appliance/sinks/base.py's Sink; the worker relies on it): the
ring is the spool. `write(taken)` gets every batch a worker took since the
sink's `need`; `committed()` says up to which batch everything is safe
from a crash of this process; only that much ring space is released. A
sink that fails raises SinkError, `abort()`s what it had not committed and
gets the same batches again later: nothing is lost while the ring has
room. Batches the ring delivers again after a crash that the sink already
holds (same run id and sequence) are skipped and counted as duplicates.
"""

from __future__ import annotations

from appliance.config import SinkConfig
from appliance.sinks.base import Sink, SinkError
from appliance.sinks.jsonl import JsonlSink
from appliance.sinks.kafka import KafkaSink
from appliance.sinks.null import NullSink
from appliance.sinks.parquet import ParquetSink
from appliance.sinks.relay import RelaySink

_KINDS = {"parquet": ParquetSink, "jsonl": JsonlSink, "null": NullSink, "relay": RelaySink, "kafka": KafkaSink}


def make_sink(cfg: SinkConfig, queue_id: int, run_id: int = 0) -> Sink:
    """A sink for one queue; `run_id` tells this run's batches from an older run's."""
    return _KINDS[cfg.type](cfg, queue_id, run_id)


__all__ = ["Sink", "SinkError", "make_sink", "ParquetSink", "JsonlSink", "NullSink", "RelaySink", "KafkaSink"]
