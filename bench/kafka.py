"""Kafka sink benchmark: the sink's msgs/s on one worker against librdkafka
producing the same values from one Python process (a bare confluent-kafka
Producer loop, same settings), in the same run, to the same broker.

The broker is tansu (memory storage) on 127.0.0.1, started here from
build/tools/tansu (scripts/setup.sh fetches it). Values are the records'
raw payloads, keys their hostnames, acks=all with idempotence, zstd, as the
sink's defaults. Prints a table and one JSON line. Not a test: figures go to
docs/BENCHMARKS.md with this command.

    python bench/kafka.py [--messages 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "system"))   # the broker fixture: one home for starting tansu

from appliance.batch import record_batch  # noqa: E402
from appliance.config import SinkConfig  # noqa: E402
from appliance.sinks.kafka import KafkaSink  # noqa: E402
from kafka_peer import Tansu  # noqa: E402
from relay import _Taken, build_batches  # noqa: E402  (bench/relay.py: the same batches)


def run_sink(broker: Tansu, topic: str, batches) -> float:
    sink = KafkaSink(SinkConfig(type="kafka", brokers=broker.bootstrap, topic=topic), 0)
    t0 = time.perf_counter()
    for i, b in enumerate(batches):
        sink.write(_Taken(i, b))
    sink.close()
    return time.perf_counter() - t0


def run_ceiling(broker: Tansu, topic: str, batches) -> float:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "enable.idempotence": True,
                         "compression.type": "zstd", "linger.ms": 5, "batch.size": 1 << 20,
                         "partitioner": "murmur2_random"})
    work = []
    for b in batches:                       # the same keys and values, taken out beforehand
        table = record_batch(b.hdr, None)
        work.append((table.column("hostname").to_pylist(), table.column("raw").to_pylist()))
    delivered = [0]

    def report(err, msg):
        delivered[0] += err is None

    t0 = time.perf_counter()
    for keys, values in work:
        for key, value in zip(keys, values):
            while True:
                try:
                    producer.produce(topic, value, key, on_delivery=report)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - t0
    assert delivered[0] == sum(len(v) for _, v in work), "every message acknowledged"
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    batches = build_batches(args.messages)
    with tempfile.TemporaryDirectory() as tmp:
        broker = Tansu(Path(tmp)).start()
        try:
            best_sink = best_ceiling = float("inf")
            for r in range(args.repeat):            # alternating which goes first
                broker.create_topic(f"sink{r}", 3)
                broker.create_topic(f"ceiling{r}", 3)
                if r % 2:
                    best_sink = min(best_sink, run_sink(broker, f"sink{r}", batches))
                best_ceiling = min(best_ceiling, run_ceiling(broker, f"ceiling{r}", batches))
                if not r % 2:
                    best_sink = min(best_sink, run_sink(broker, f"sink{r}", batches))
        finally:
            broker.stop()
    n = args.messages
    result = {"benchmark": "kafka", "messages": n, "sink_msgs_per_s": round(n / best_sink),
              "ceiling_msgs_per_s": round(n / best_ceiling), "ratio_vs_ceiling": round(best_ceiling / best_sink, 2)}
    print(f"{'sink':<8}{'messages':>10}{'sink msgs/s':>14}{'librdkafka msgs/s':>19}{'ratio':>8}")
    print(f"{'kafka':<8}{n:>10}{result['sink_msgs_per_s']:>14,}{result['ceiling_msgs_per_s']:>19,}"
          f"{result['ratio_vs_ceiling']:>8}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
