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

try:
    from confluent_kafka import KafkaException
except ImportError:                     # the wheel is a dependency; this keeps import errors readable
    KafkaException = RuntimeError       # type: ignore[misc,assignment]

_FLUSH_GRACE_S = 10.0           # at the end, per try: how long the last deliveries are waited for
_QUEUE_FULL_S = 60.0            # a producer queue full this long makes the sink fail (the worker retries)
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
        self.topic = cfg.topic
        self.key_column = None if cfg.key == "none" else cfg.key
        self.encoder = JsonlEncoder(with_raw=True) if cfg.value == "json" else None
        self._pending: deque[_Pending] = deque()
        self.bytes = 0
        self.resent_records = 0
        self.backpressure_s = 0.0
        self.producers = 0          # made: a fatal client error (idempotence) needs a new one
        self.client_errors: list[str] = []
        self.librdkafka: dict = {}
        self._fatal = None
        self._make_producer()

    def _make_producer(self) -> None:
        from confluent_kafka import KafkaException, Producer

        cfg = self.cfg
        conf = {
            "bootstrap.servers": cfg.brokers,
            "client.id": f"logcaster-q{self.queue_id}",
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
            raise SinkError(f"kafka sink: {_text(exc)}") from None
        self._fatal = None
        self.producers += 1

    # ---- the Sink contract ------------------------------------------------------------

    def write(self, taken) -> None:
        first = max(taken.first, self.need)
        try:
            for seq in range(first, taken.end):
                hdr = taken.hdrs[seq - taken.first]
                self._produce(seq, hdr)
                self.records += hdr.count
                self.batches += 1
                self.need = seq + 1
            self.producer.poll(0)
        except KafkaException as exc:
            raise SinkError(f"kafka sink {self.cfg.brokers} {self.topic}: {_text(exc)}") from None
        self._check()

    def committed(self) -> int:
        while self._pending and self._pending[0].remaining == 0 and not self._pending[0].failed:
            self._pending.popleft()
        return self._pending[0].seq if self._pending else self.need

    def tick(self, now: float, ring_bytes: int = 0) -> None:
        try:
            self.producer.poll(0)
        except KafkaException as exc:
            raise SinkError(f"kafka sink {self.cfg.brokers} {self.topic}: {_text(exc)}") from None
        self._check()

    def abort(self) -> None:
        """Produce again everything not acknowledged (the records still queued
        in librdkafka may arrive too: counted as resent); after a fatal
        client error or failed deliveries, with a new producer."""
        self.committed()
        failed = any(p.failed for p in self._pending)
        if self._pending:
            self.need = self._pending[0].seq
            self.resent_records += sum(p.records for p in self._pending)
        self._pending.clear()
        if self._fatal is not None or failed:
            # A new producer (a new idempotent producer id): after timed-out
            # deliveries the broker may fence the old one for good
            # (ProducerFenced on every retry, seen with tansu).
            try:
                self.producer.purge()
                self.producer.poll(0)
            except KafkaException:
                pass
            self._make_producer()

    def close(self) -> None:
        try:
            left = self.producer.flush(_FLUSH_GRACE_S)
        except KafkaException as exc:
            raise SinkError(f"kafka sink {self.cfg.brokers} {self.topic}: {_text(exc)}") from None
        self._check()
        if left or self.committed() < self.need:
            raise SinkError(f"kafka sink {self.cfg.brokers} {self.topic}: {left} records not acknowledged "
                            f"after {_FLUSH_GRACE_S:.0f} s")

    def stats(self) -> dict:
        return {**super().stats(), "bytes": self.bytes, "resent_records": self.resent_records,
                "backpressure_s": round(self.backpressure_s, 3), "queued": len(self.producer),
                "unacknowledged_records": sum(p.remaining for p in self._pending), "producers": self.producers,
                "client_errors": self.client_errors[-5:], "librdkafka": self.librdkafka}

    # ---- producing ---------------------------------------------------------------------

    def _produce(self, seq: int, hdr) -> None:
        n = hdr.count
        if not n:
            return
        table = record_batch(hdr, None)
        values = self._values(hdr, table)
        keys = table.column(self.key_column).to_pylist() if self.key_column else [None] * n
        if len(values) != n:
            raise SinkError(f"kafka sink: batch {seq} encoded {len(values)} values for {n} records")
        report = _Pending(seq, n)
        self._pending.append(report)
        produce, topic = self.producer.produce, self.topic
        for key, value in zip(keys, values):
            full_since = None
            while True:
                try:
                    produce(topic, value, key, on_delivery=report)
                    break
                except BufferError:             # the producer queue is full: wait for deliveries
                    t0 = time.monotonic()
                    full_since = full_since or t0
                    self.producer.poll(0.05)
                    self.backpressure_s += time.monotonic() - t0
                    self._check()
                    if time.monotonic() - full_since > _QUEUE_FULL_S:
                        raise SinkError(f"kafka sink {self.cfg.brokers} {self.topic}: the producer queue "
                                        f"stayed full for {_QUEUE_FULL_S:.0f} s") from None
        self.bytes += sum(map(len, values))

    def _values(self, hdr, table) -> list[bytes]:
        if self.encoder is None:
            return table.column("raw").to_pylist()
        values: list[bytes] = []
        for chunk in self.encoder.chunks(hdr):
            values.extend(bytes(chunk).split(b"\n")[:-1])   # one JSON line per record, no LF inside
        return values

    def _check(self) -> None:
        if self._fatal is not None:
            raise SinkError(f"kafka sink {self.cfg.brokers} {self.topic}: fatal client error: {self._fatal}")
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
        if err.fatal():
            self._fatal = err.str()


def _text(exc: BaseException) -> str:
    err = exc.args[0] if exc.args else None
    return err.str() if hasattr(err, "str") else str(exc)
