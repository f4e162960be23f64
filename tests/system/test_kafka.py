"""The Kafka sink end to end: `logcaster run` (DPDK net_pcap) -> ring ->
worker -> Kafka sink (confluent-kafka) -> a real Kafka-protocol broker of
the test's own (tansu), read back with a consumer that assigns partitions."""

from __future__ import annotations

import base64
import json
import time

import pytest

from appliance.sample import udp_frame, write_frames
from kafka_peer import Tansu, murmur2_partition
from rsyslog_peer import free_port
from runner import Appliance, base_config, run_to_end, sink_stats

pytestmark = pytest.mark.dpdk

PARTITIONS = 3


def payload(i: int) -> bytes:
    kind = i % 3
    if kind == 0:
        return f"<165>1 2026-03-14T09:26:53.{i % 1000:03d}Z host{i % 13} app - ID{i} - id={i} grüße".encode()
    if kind == 1:
        return f"<34>Mar 14 09:26:{i % 60:02d} host{i % 13} sshd[{i}]: id={i} Failed password".encode()
    return f"<13>id={i} no header\nat all".encode()          # no hostname: a null key


def write_pcap(path, n: int) -> list[bytes]:
    payloads = [payload(i) for i in range(n)]
    write_frames(path, ((1_773_480_413.0 + i * 1e-5, udp_frame(f"198.18.1.{i % 250 + 2}", p))
                        for i, p in enumerate(payloads)))
    return payloads


@pytest.fixture
def broker(tmp_path):
    b = Tansu(tmp_path / "tansu").start()
    b.create_topic("syslog", PARTITIONS)
    yield b
    b.stop()


@pytest.mark.parametrize("value", ["raw", "json"])
def test_every_record_reaches_the_broker_on_its_hosts_partition(tmp_path, broker, value):
    n = 20_000
    payloads = write_pcap(tmp_path / "in.pcap", n)
    cfg = base_config(tmp_path, tmp_path / "in.pcap")
    cfg["sinks"].append({"type": "kafka", "brokers": broker.bootstrap, "topic": "syslog", "value": value})
    run = run_to_end(cfg, tmp_path)
    assert run.rc == 0, run.stderr
    assert run.stats["delivered"] == n and run.stats["lost"] == 0
    stats = sink_stats(run, "kafka")
    assert (stats["records"], stats["resent_records"], stats["unacknowledged_records"]) == (n, 0, 0)
    got = broker.read_all("syslog", PARTITIONS)
    records = [(p, k, v) for p, recs in got.items() for k, v in recs]
    assert len(records) == n
    keyed = [(p, k) for p, k, _ in records if k is not None]
    assert len(keyed) == n - n // 3 and all(murmur2_partition(k, PARTITIONS) == p for p, k in keyed), \
        "a host's records on the partition Java's partitioner picks"
    if value == "raw":
        assert sorted(v for _, _, v in records) == sorted(payloads)
    else:
        rows = [json.loads(v) for _, _, v in records]
        assert sorted(base64.b64decode(r["raw"]) for r in rows) == sorted(payloads)
        assert all((r["hostname"] or "").encode() == (k or b"") for r, (_, k, _) in zip(rows, records))


def test_a_broker_that_comes_late_gets_every_record(tmp_path):
    """The broker is down when the capture starts and comes up 3 s later: the
    producer waits (librdkafka retries), the ring holds, nothing is lost."""
    n = 10_000
    payloads = write_pcap(tmp_path / "in.pcap", n)
    late = Tansu(tmp_path / "tansu", port=free_port())
    cfg = base_config(tmp_path, tmp_path / "in.pcap")
    cfg["sinks"].append({"type": "kafka", "brokers": late.bootstrap, "topic": "syslog"})
    try:
        with Appliance(cfg, tmp_path) as app:
            time.sleep(3)
            late.start()
            late.create_topic("syslog", PARTITIONS)
            run = app.wait(180)
        assert run.rc == 0, run.stderr
        assert run.stats["delivered"] == n and run.stats["lost"] == 0
        got = late.read_all("syslog", PARTITIONS)
        assert sorted(v for recs in got.values() for _, v in recs) == sorted(payloads)
    finally:
        late.stop()


def test_deliveries_that_time_out_are_produced_again(tmp_path):
    """message.timeout.ms 1.5 s and a broker up only after 5 s: the first
    deliveries fail after librdkafka's retries, the sink fails, the worker
    retries it and every batch not acknowledged is produced again."""
    n = 5_000
    payloads = write_pcap(tmp_path / "in.pcap", n)
    late = Tansu(tmp_path / "tansu", port=free_port())
    cfg = base_config(tmp_path, tmp_path / "in.pcap")
    cfg["sinks"].append({"type": "kafka", "brokers": late.bootstrap, "topic": "syslog",
                         "properties": {"message.timeout.ms": 1500}})
    try:
        with Appliance(cfg, tmp_path) as app:
            time.sleep(5)
            late.start()
            late.create_topic("syslog", PARTITIONS)
            run = app.wait(180)
        assert run.rc == 0, run.stderr
        assert run.stats["delivered"] == n and run.stats["lost"] == 0
        stats = sink_stats(run, "kafka")
        assert stats["resent_records"] >= 1 and stats["unacknowledged_records"] == 0
        got = [v for recs in late.read_all("syslog", PARTITIONS).values() for _, v in recs]
        assert set(got) == set(payloads) and len(got) - n <= stats["resent_records"]
    finally:
        late.stop()


def test_one_config_with_relay_and_kafka_delivers_to_both(tmp_path, broker):
    """The issue's configuration: Parquet, a relay to rsyslog and Kafka in one run."""
    from rsyslog_peer import Rsyslog

    n = 10_000
    payloads = [payload(i).replace(b"\n", b" ") for i in range(n)]     # rsyslog's file is line based
    write_frames(tmp_path / "in.pcap", ((1_773_480_413.0 + i * 1e-5, udp_frame("198.18.1.9", p))
                                        for i, p in enumerate(payloads)))
    peer = Rsyslog(tmp_path / "rsyslog").start()
    try:
        cfg = base_config(tmp_path, tmp_path / "in.pcap")
        cfg["sinks"] += [{"type": "relay", "targets": [f"tcp://127.0.0.1:{peer.tcp}"], "settle_s": 0.2},
                         {"type": "kafka", "brokers": broker.bootstrap, "topic": "syslog"}]
        run = run_to_end(cfg, tmp_path)
        assert run.rc == 0, run.stderr
        assert run.stats["delivered"] == n and run.stats["lost"] == 0
        deadline = time.monotonic() + 20
        while peer.count("tcp") < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(peer.lines("tcp")) == sorted(payloads)
    finally:
        peer.stop()
    got = broker.read_all("syslog", PARTITIONS)
    assert sorted(v for recs in got.values() for _, v in recs) == sorted(payloads)
