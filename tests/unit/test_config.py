"""Configuration: every kind of mistake is one clear line naming the key, the
bad value and what is allowed, and `logcaster run` exits 2 without starting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from appliance import config
from appliance.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"capture": {"ports": [{"name": "net_pcap0", "vdev": "net_pcap0,rx_pcap=/tmp/x.pcap"}]}}


def with_(path: str, value) -> dict:
    """GOOD with one key (dotted path, list indices as numbers) set to value."""
    import copy

    data = copy.deepcopy(GOOD)
    keys = path.split(".")
    node = data
    for k in keys[:-1]:
        node = node[int(k)] if k.isdigit() else node.setdefault(k, {})
    node[int(keys[-1]) if keys[-1].isdigit() else keys[-1]] = value
    return data


def test_defaults():
    cfg = config.from_dict(GOOD)
    assert cfg.capture.backend == "dpdk" and cfg.capture.ports[0].queues == 1
    assert cfg.sinks[0].type == "parquet" and cfg.dpdk.in_memory and cfg.ring.size == 512 << 20


def test_sizes_and_short_forms():
    cfg = config.from_dict({"capture": {"ports": ["0000:01:00.0"], "udp_ports": 514},
                            "sinks": ["null", {"type": "jsonl", "path": "/x", "rotate_bytes": "64MiB"}]})
    assert cfg.capture.ports[0].name == "0000:01:00.0" and cfg.capture.udp_ports == (514,)
    assert cfg.sinks[0].type == "null" and cfg.sinks[1].rotate_bytes == 64 << 20


@pytest.mark.parametrize("data, message", [
    (with_("capture.ports", []), "capture.ports: [] is not allowed (a non-empty list of ports)"),
    (with_("capture.burst", 0), "capture.burst: 0 is not allowed (an integer from 1 to 512)"),
    (with_("capture.burst", "64"), "capture.burst: '64' is not allowed (an integer from 1 to 512)"),
    (with_("capture.backend", "pf_ring"), "capture.backend: 'pf_ring' is not allowed (one of: dpdk, afxdp, socket, auto)"),
    (with_("capture.bogus", 1), "capture.bogus: unknown key (allowed: backend, ports, udp_ports"),
    (with_("capture.udp_ports", [514, 70000]), "capture.udp_ports: [514, 70000] is not allowed (a list of integers from 1 to 65535)"),
    (with_("capture.timezone", "Mars/Base"), "capture.timezone: unknown time zone 'Mars/Base'"),
    (with_("capture.ports.0.queues", 99), "capture.ports[0].queues: 99 is not allowed (an integer from 1 to 16)"),
    (with_("capture.ports.0.vdev", "net_tap0,iface=x"), "capture.ports[0].vdev: 'net_tap0,iface=x' must start with the port name 'net_pcap0'"),
    (with_("ring.slots", 64), "ring.slots: no longer used (rings are sized in bytes: set ring.size"),
    (with_("ring.size", "1MiB"), "ring.size: 1048576 bytes is not allowed (at least 3MiB: 2 batches of"),
    (with_("ring.size", "lots"), "ring.size: 'lots' is not allowed (a size in bytes"),
    (with_("sinks", [{"type": "kafak"}]), "sinks[0].type: 'kafak' is not allowed (one of: parquet, jsonl, null, relay, kafka)"),
    (with_("sinks", [{"type": "kafka", "topic": "t"}]), "sinks[0].brokers: missing (the kafka sink needs brokers and a topic"),
    (with_("sinks", [{"type": "kafka", "brokers": "k:9092"}]), "sinks[0].topic: missing"),
    (with_("sinks", [{"type": "kafka", "brokers": "k:9092", "topic": "a b"}]), "sinks[0].topic: 'a b' is not allowed"),
    (with_("sinks", [{"type": "kafka", "brokers": "k:9092", "topic": "t", "key": "host"}]), "sinks[0].key: 'host' is not allowed (one of: hostname, src_ip, none)"),
    (with_("sinks", [{"type": "kafka", "brokers": "k:9092", "topic": "t", "properties": ["acks"]}]), "sinks[0].properties: ['acks'] is not allowed"),
    (with_("sinks", [{"type": "jsonl", "path": "/x", "topic": "t"}]), "sinks[0]: topic belongs to a kafka sink, not to a jsonl sink"),
    (with_("sinks", [{"type": "relay"}]), "sinks[0].targets: missing (the relay sink needs at least one"),
    (with_("sinks", [{"type": "relay", "targets": ["http://x:1"]}]), "sinks[0].targets[0]: 'http://x:1' is not allowed"),
    (with_("sinks", [{"type": "relay", "targets": ["tcp://x:0"]}]), "sinks[0].targets[0]: 'tcp://x:0' is not allowed"),
    (with_("sinks", [{"type": "relay", "targets": ["tcp://x:1", "tcp://x:1"]}]), "sinks[0].targets: a target is listed twice"),
    (with_("sinks", [{"type": "relay", "targets": ["tls://x:6514"]}]), "sinks[0].tls_ca: missing"),
    (with_("sinks", [{"type": "relay", "targets": ["tcp://x:1"], "tls_cert": "c"}]), "sinks[0]: tls_cert and tls_key go together"),
    (with_("sinks", [{"type": "relay", "targets": ["tcp://x:1"], "framing": "crlf"}]), "sinks[0].framing: 'crlf' is not allowed"),
    (with_("sinks", [{"type": "jsonl", "path": "/x", "targets": ["tcp://x:1"]}]), "sinks[0]: targets belongs to a relay sink, not to a jsonl sink"),
    (with_("sinks", [{"type": "relay", "targets": ["tcp://x:1"], "topic": "t", "key": "src_ip"}]), "sinks[0]: key, topic belong to a kafka sink, not to a relay sink"),
    (with_("sinks", [{"type": "kafka", "brokers": "k:9092", "topic": "t", "properties": {"acks": 1}}]), "sinks[0].properties.acks: '1' is not allowed (all:"),
    (with_("sinks", [{"type": "jsonl"}]), "sinks[0].path: missing (the jsonl sink needs a directory)"),
    (with_("sinks", [{"type": "parquet", "path": "/x", "rotate_bytes": "lots"}]), "sinks[0].rotate_bytes: 'lots' is not allowed"),
    (with_("dpdk.file_prefix", "a b"), "dpdk.file_prefix: 'a b' is not allowed (must match"),
    (with_("stats_interval_s", -1), "stats_interval_s: -1 is not allowed (a number from 0.1 to 3600.0)"),
    ([1, 2], "config: expected a mapping"),
])
def test_each_mistake_names_key_value_and_what_is_allowed(data, message):
    with pytest.raises(ConfigError) as err:
        config.from_dict(data)
    assert str(err.value).startswith(message)


def test_relay_targets_parsed():
    cfg = config.from_dict({"capture": GOOD["capture"], "sinks": [
        {"type": "relay", "targets": ["udp://198.51.100.7:514", "tcp://[2001:db8::7]:601", "tls://relay.example:6514"],
         "tls_ca": "/etc/ssl/ca.pem", "framing": "lf"}]})
    s = cfg.sinks[0]
    assert s.targets == (("udp", "198.51.100.7", 514), ("tcp", "2001:db8::7", 601), ("tls", "relay.example", 6514))
    assert (s.framing, s.tls_verify_hostname, s.settle_s) == ("lf", True, 1.0)


def test_kafka_sink_parsed():
    cfg = config.from_dict({"capture": GOOD["capture"], "sinks": [
        {"type": "kafka", "brokers": "k1:9092,k2:9092", "topic": "syslog", "key": "src_ip", "value": "json",
         "properties": {"queue.buffering.max.kbytes": 1048576, "enable.idempotence": True}}]})
    s = cfg.sinks[0]
    assert (s.brokers, s.topic, s.key, s.value, s.linger_ms) == ("k1:9092,k2:9092", "syslog", "src_ip", "json", 5.0)
    assert s.properties == (("queue.buffering.max.kbytes", "1048576"), ("enable.idempotence", "true"))


def test_a_ring_too_small_for_two_batches_of_the_capture_geometry_is_a_config_error():
    data = {"capture": {**GOOD["capture"], "batch_size": 29076, "batch_avg_payload": 29014}}
    with pytest.raises(ConfigError, match=r"^ring.size: 536870912 bytes is not allowed \(at least 3635MiB: 2 batches"):
        config.from_dict(data)


def test_a_batch_geometry_the_c_layout_rejects_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        config.from_dict({"capture": {**GOOD["capture"], "batch_size": 65536, "batch_avg_payload": 65535}})
    assert str(err.value) == ("capture.batch_size x capture.batch_avg_payload: 65536 x 65535 is too large (a batch "
                              "must stay under 4 GiB: at most 29076 records of 65535 bytes, or batch_avg_payload at "
                              "most 29014 for 65536 records)")


@pytest.mark.parametrize("batch_size", [1, 1024, 29076, 29077, 65536])
@pytest.mark.parametrize("avg", [16, 256, 29014, 29015, 65535])
def test_config_accepts_a_batch_geometry_exactly_when_the_c_layout_does(batch_size, avg):
    from dpdk_shim import lib

    # a ring of two such batches (validated only: nothing is allocated)
    data = {"capture": {**GOOD["capture"], "batch_size": batch_size, "batch_avg_payload": avg},
            "ring": {"size": "16GiB"}}
    if lib.lc_batch_size(batch_size, avg) >= 0:
        assert config.from_dict(data).capture.batch_size == batch_size
    else:
        with pytest.raises(ConfigError, match="is too large"):
            config.from_dict(data)


def test_config_is_usable_without_the_built_shim():
    code = ("import sys; sys.modules['dpdk_shim'] = None\n"      # as if not built: import fails
            "from appliance import config\n"
            "c = config.from_dict({'capture': {'ports': ['net_pcap0'], 'batch_size': 65536, 'batch_avg_payload': 65535}})\n"
            "print(c.capture.batch_size)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "65536\n", out.stderr


def _run(tmp_path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return subprocess.run([sys.executable, "-m", "appliance.cli.main", "run", "-c", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("text, needle", [
    (yaml.safe_dump(with_("capture.burst", 0)), "capture.burst: 0 is not allowed"),
    (yaml.safe_dump(with_("sinks", [{"type": "kafka"}])), "sinks[0].brokers: missing"),
    ("capture: [unclosed\n", "not valid YAML"),
    (yaml.safe_dump({"capture": {**GOOD["capture"], "batch_size": 65536, "batch_avg_payload": 65535}}),
     "capture.batch_size x capture.batch_avg_payload: 65536 x 65535 is too large"),
])
def test_run_with_a_bad_config_exits_2_with_one_line(tmp_path, text, needle):
    proc = _run(tmp_path, text)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr


def test_run_with_a_missing_config_file_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "appliance.cli.main", "run", "-c", str(tmp_path / "nope.yaml")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "cannot read" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_the_documented_example_config_is_valid():
    cfg = config.load(ROOT / "docs" / "logcaster.example.yaml")
    assert cfg.capture.udp_ports == (514,) and cfg.sinks[0].rotate_bytes == 256 << 20


@pytest.mark.parametrize("cores, message", [
    ({"workers": [0]}, "cores.workers: given without cores.rx"),
    ({"rx": [0, 1], "workers": [0]}, "cores.workers: [0] has fewer CPUs than the 2 RX queues"),
    ({"rx": [0]}, "cores.rx: [0] has fewer CPUs than the 2 RX queues"),
])
def test_core_overrides_that_cannot_work_are_config_errors(cores, message):
    from appliance.supervisor import Supervisor

    sup = Supervisor(config.from_dict({**GOOD, "cores": cores}))
    with pytest.raises(ConfigError) as err:
        sup._core_plan(2)
    assert str(err.value).startswith(message)


def test_core_overrides_give_the_plan():
    from appliance.supervisor import Supervisor

    plan = Supervisor(config.from_dict({**GOOD, "cores": {"rx": [1], "workers": [0]}}))._core_plan(1)
    assert (plan.rx_cores, plan.worker_cores) == ((1,), (0,))
