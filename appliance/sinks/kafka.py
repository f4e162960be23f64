"""The Kafka sink: every record to one topic with confluent-kafka (librdkafka)
(docs/KAFKA.md).

Key: the record's `hostname` (default), `src_ip`, or none (spread over the
partitions); with a key, librdkafka's `murmur2_random` partitioner puts a
host's records on one partition, the one Java clients would pick, so a
host's order is kept. Value: `raw` (the payload as received) or `json` (the
record as `logcaster decode` prints it, encoded in C per batch).

What "committed" means: every record of the batch has a successful delivery
report (`acks=all` and idempotence by default: the broker and its in-sync
replicas have it). Until then the ring keeps the batch. A delivery that
fails after librdkafka's own retries (`message.timeout.ms`) makes the sink
fail: the worker retries it, and every batch not committed is produced
again (`resent_records`: a consumer may see those twice). A full producer
queue makes the worker wait (`backpressure_s`); the ring absorbs it, the RX
loop never waits.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque

from appliance.batch import record_batch
from appliance.config import SinkConfig
from appliance.jsonl import JsonlEncoder
from appliance.sinks.base import Sink, SinkError

_FLUSH_GRACE_S = 30.0           # at the end: how long the last deliveries are waited for
_STATS_INTERVAL_MS = 5000
_STATS_KEYS = ("msg_cnt", "msg_size", "txmsgs", "txmsg_bytes", "tx", "txerrs", "rxerrs")
log = logging.getLogger("logcaster.kafka")      # librdkafka's own log lines, through logging


class _Pending:
    """The delivery reports of one batch: the callback of each of its records."""

    __slots__ = ("seq", "records", "remaining", "failed", "error")

    def __init__(self, seq: int, records: int):
        self.seq, self.records, self.remaining, self.failed, self.error = seq, records, records, 0, None

    def __call__(self, err, msg) -> None:
        self.remaining -= 1
        if err is not None:
            self.failed += 1
            self.error = err


class KafkaSink(Sink):
    kind = "kafka"

    def __init__(self, cfg: SinkConfig, queue_id: int, run_id: int = 0):
        super().__init__(cfg, queue_id, run_id)
        from confluent_kafka import KafkaException, Producer

        self.topic = cfg.topic
        conf = {
            "bootstrap.servers": cfg.brokers,
            "client.id": f"logcaster-q{queue_id}",
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": "zstd",
            "linger.ms": cfg.linger_ms,
            "batch.size": cfg.batch_bytes,
            "partitioner": "murmur2_random",
            "statistics.interval.ms": _STATS_INTERVAL_MS,
            "stats_cb": self._on_stats,
            "error_cb": self._on_error,
            "logger": log,
        }
        conf.update(dict(cfg.properties))          # any librdkafka property, the user's word last
        try:
            self.producer = Producer(conf)
        except KafkaException as exc:
            raise SinkError(f"kafka sink: {exc.args[0].str() if exc.args else exc}") from None
        self.key_column = None if cfg.key == "none" else cfg.key
        self.encoder = JsonlEncoder(with_raw=True) if cfg.value == "json" else None
        self._pending: deque[_Pending] = deque()
        self.bytes = 0
        self.resent_records = 0
        self.backpressure_s = 0.0
        self.client_errors: list[str] = []
        self.librdkafka: dict = {}

    # ---- the Sink contract ------------------------------------------------------------

    def write(self, taken) -> None:
        first = max(taken.first, self.need)
        for seq in range(first, taken.end):
            hdr = taken.hdrs[seq - taken.first]
            self._produce(seq, hdr)
            self.records += hdr.count
            self.batches += 1
            self.need = seq + 1
        self.producer.poll(0)
        self._check()

    def committed(self) -> int:
        while self._pending and self._pending[0].remaining == 0 and not self._pending[0].failed:
            self._pending.popleft()
        return self._pending[0].seq if self._pending else self.need

    def tick(self, now: float, ring_bytes: int = 0) -> None:
        self.producer.poll(0)
        self._check()

    def abort(self) -> None:
        """Produce again everything not acknowledged (the records still queued
        in librdkafka may arrive too: counted as resent)."""
        self.committed()
        if self._pending:
            self.need = self._pending[0].seq
            self.resent_records += sum(p.records for p in self._pending)
        self._pending.clear()

    def close(self) -> None:
        left = self.producer.flush(_FLUSH_GRACE_S)
        self._check()
        if left or self.committed() < self.need:
            raise SinkError(f"kafka sink {self.cfg.brokers} {self.topic}: {left} records not acknowledged "
                            f"after {_FLUSH_GRACE_S:.0f} s")
        self.queued_at_close = len(self.producer)

    def stats(self) -> dict:
        return {**super().stats(), "bytes": self.bytes, "resent_records": self.resent_records,
                "backpressure_s": round(self.backpressure_s, 3), "queued": len(self.producer),
                "unacknowledged_records": sum(p.remaining for p in self._pending),
                "client_errors": self.client_errors[-5:], "librdkafka": self.librdkafka}

    # ---- producing ---------------------------------------------------------------------

    def _produce(self, seq: int, hdr) -> None:
        n = hdr.count
        if not n:
            return
        table = record_batch(hdr, None)
        values = self._values(hdr, table)
        keys = table.column(self.key_column).to_pylist() if self.key_column else [None] * n
        report = _Pending(seq, n)
        self._pending.append(report)
        produce, topic = self.producer.produce, self.topic
        for key, value in zip(keys, values):
            while True:
                try:
                    produce(topic, value, key, on_delivery=report)
                    break
                except BufferError:             # the producer queue is full: wait for deliveries
                    t0 = time.monotonic()
                    self.producer.poll(0.05)
                    self.backpressure_s += time.monotonic() - t0
        self.bytes += sum(map(len, values))

    def _values(self, hdr, table) -> list[bytes]:
        if self.encoder is None:
            return table.column("raw").to_pylist()
        values: list[bytes] = []
        for chunk in self.encoder.chunks(hdr):
            values.extend(bytes(chunk).split(b"\n")[:-1])   # one JSON line per record, no LF inside
        return values

    def _check(self) -> None:
        failed = [p for p in self._pending if p.failed]
        if failed:
            p = failed[0]
            raise SinkError(f"kafka sink {self.cfg.brokers} {self.topic}: {sum(f.failed for f in failed)} "
                            f"deliveries failed after librdkafka's retries: {p.error.str()}")

    def _on_stats(self, text: str) -> None:
        data = json.loads(text)
        self.librdkafka = {k: data.get(k) for k in _STATS_KEYS}
        rtts = [b["rtt"]["avg"] for b in data.get("brokers", {}).values() if b.get("rtt", {}).get("cnt")]
        self.librdkafka["rtt_avg_us"] = max(rtts) if rtts else None

    def _on_error(self, err) -> None:
        self.client_errors.append(f"{time.strftime('%H:%M:%S')} {err.str()}")
        del self.client_errors[:-20]
