"""The Prometheus endpoint of a running appliance: scraped during a run,
health and readiness through the run's life, and after SIGTERM the last
scrape's counters equal the final summary's (--stats-json)."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runner import Appliance

N = 3000


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(base: str) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of one scrape."""
    _, text = get(base + "/metrics")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def total(samples: dict, name: str, **labels) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and all(dict(ls).get(k) == w for k, w in labels.items()))


def config(tmp_path, udp: int, metrics: int) -> dict:
    return {"capture": {"backend": "socket", "ports": ["127.0.0.1"], "udp_ports": [udp]},
            "sinks": [{"type": "jsonl", "path": str(tmp_path / "jsonl")}],
            "dpdk": {"file_prefix": f"lcmetrics{udp}"}, "ring": {"size": "64MiB"},
            "metrics": {"listen": f"127.0.0.1:{metrics}"}, "stats_interval_s": 0.5}


def test_scrapes_during_a_run_and_the_last_equals_the_final_summary(tmp_path):
    udp, port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    base = f"http://127.0.0.1:{port}"
    with Appliance(config(tmp_path, udp, port), tmp_path) as app:
        app.wait_ready()
        assert get(base + "/-/ready") == (200, "capturing\n")
        assert get(base + "/-/healthy")[0] == 200
        first = scrape(base)
        assert total(first, "logcaster_capturing") == 1 and total(first, "logcaster_rx_packets_total") == 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(N):
                s.sendto(f"<{8 + i % 8}>1 2026-12-03T10:00:00Z host{i % 5} app - - - m={i}".encode(),
                         ("127.0.0.1", udp))
                if i % 500 == 499:
                    time.sleep(0.01)        # a pace the loopback socket buffers take without drops
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen = scrape(base)
            if total(seen, "logcaster_delivered_records_total") + total(seen, "logcaster_rx_dropped_packets_total") >= N:
                break
            time.sleep(0.2)
        assert total(seen, "logcaster_rx_packets_total", backend="socket") + \
            total(seen, "logcaster_rx_dropped_packets_total", kind="kernel_drops") == N
        assert {dict(ls)["queue"] for (n, ls) in seen if n == "logcaster_rx_packets_total"} == {"0"}
        assert total(seen, "logcaster_records_total", format="rfc5424") == total(seen, "logcaster_delivered_records_total")
        assert total(seen, "logcaster_accounting_ok") == 1
        last, refused_at = seen, None
        app.proc.send_signal(15)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:      # scrape until the endpoint is gone
            try:
                last = scrape(base)
            except (urllib.error.URLError, ConnectionError):
                refused_at = time.monotonic()
                break
            time.sleep(0.01)
        run = app.wait()
    assert run.rc == 0, run.stderr
    assert refused_at is not None, "the endpoint closed when the appliance exited"
    final = run.stats
    assert final["accounting_ok"]
    assert total(last, "logcaster_capturing") == 0
    assert total(last, "logcaster_rx_packets_total") == final["received"]
    assert total(last, "logcaster_rx_bytes_total") == final["bytes"]
    assert total(last, "logcaster_delivered_records_total") == final["delivered"]
    assert total(last, "logcaster_dropped_records_total", kind="ring_full") == final["ring_full"]
    assert total(last, "logcaster_dropped_records_total", kind="sink_failed") == final["sink_failed"]
    assert total(last, "logcaster_rx_dropped_packets_total") == final["lost"] - final["ring_full"] - final["sink_failed"]
    assert total(last, "logcaster_in_flight_records") == final["in_flight"] == 0
    assert total(last, "logcaster_latency_seconds_count") == final["delivered"]      # workers report each second
    for fmt, n in final["formats"].items():
        assert total(last, "logcaster_records_total", format=fmt) == n
    assert final["delivered"] + final["lost"] == N


def test_a_port_in_use_is_a_config_error_before_anything_starts(tmp_path):
    udp = free_port(socket.SOCK_DGRAM)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with Appliance(config(tmp_path, udp, port), tmp_path) as app:
            run = app.wait(60)
    assert run.rc == 2
    assert f"metrics.listen: cannot listen on 127.0.0.1:{port} (the port is in use)" in run.stderr
    assert "capturing:" not in run.stdout


@pytest.mark.parametrize("listen", ["127.0.0.1", "127.0.0.1:70000", "[::1:9"])
def test_bad_listen_addresses_are_refused(tmp_path, listen):
    from appliance.config import from_dict
    from appliance.errors import ConfigError

    with pytest.raises(ConfigError, match="metrics.listen"):
        from_dict({"capture": {"ports": ["x"]}, "metrics": {"listen": listen}})

