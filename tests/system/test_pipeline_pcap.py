"""The DPDK pipeline end to end on net_pcap: RX loop -> ring -> worker -> sinks.

Each test replays a pcap of syslog messages with unique ids (plus frames
that are not syslog) and checks that every message lands exactly once (or is
counted where it was lost), with the fields `logcaster decode` gives.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import duckdb
import psutil
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from appliance.ring import batch_max
from appliance.sample import udp_frame, write_frames
from runner import Appliance, base_config, run_to_end

pytestmark = pytest.mark.dpdk

ID = re.compile(r"id=(\d+)")


def syslog_payload(i: int) -> bytes:
    """Mixed dialects, each carrying `id=<i>`."""
    kind = i % 4
    if kind == 0:
        return f'<165>1 2026-03-14T09:26:53.{i % 1000:03d}Z host{i % 50} app{i % 7} {i} MSG{i % 3} [ex@32473 k="v"] id={i} hello'.encode()
    if kind == 1:
        return f"<34>Mar 14 09:26:{i % 60:02d} host{i % 50} sshd[{i}]: id={i} Failed password".encode()
    if kind == 2:
        return f"<189>{i}: *Mar 14 09:26:53.123: %LINK-3-UPDOWN: id={i} Interface Gi0/{i % 48}, changed state to up".encode()
    return f"<13>id={i} no header at all".encode()


def mixed_frames(n: int, *, noise: bool = True) -> list[bytes]:
    frames = []
    for i in range(n):
        src = f"2001:db8:18::{i % 200 + 1:x}" if i % 10 == 7 else f"198.18.{1 + i % 3}.{i % 250 + 2}"
        frames.append(udp_frame(src, syslog_payload(i), sport=40000 + i % 1000, vlan=100 if i % 9 == 4 else None))
        if noise and i % 100 == 0:  # frames that are not syslog: counted, never records
            frames.append(bytes(Ether() / ARP(pdst="198.18.0.1")))
            frames.append(bytes(Ether() / IP(src="198.18.1.9", dst="198.18.0.1") / TCP(dport=514)))
            frames.append(bytes(Ether() / IP(src="198.18.1.9", dst="198.18.0.1") / UDP(dport=53) / b"x"))
    return frames


def write_test_pcap(path, n: int, **kw):
    t0 = 1_773_480_413.0  # 2026-03-14
    return write_frames(path, ((t0 + i * 1e-4, f) for i, f in enumerate(mixed_frames(n, **kw))))


def read_store(path) -> pa.Table:
    return ds.dataset(str(path), format="parquet", partitioning="hive").to_table()


def ids_of(table: pa.Table) -> list[int]:
    return [int(ID.search(m).group(1)) for m in table.column("message").to_pylist()]


def test_every_packet_lands_exactly_once_with_decode_fields(tmp_path):
    n = 3000
    pcap = write_test_pcap(tmp_path / "in.pcap", n)
    run = run_to_end(base_config(tmp_path, pcap), tmp_path)
    assert run.rc == 0, run.stderr
    s = run.stats
    noise = 3 * ((n + 99) // 100)
    assert (s["received"], s["records"], s["not_syslog"], s["delivered"]) == (n + noise, n, noise, n)
    assert s["skipped"] == {"not_ip": noise // 3, "not_udp": noise // 3, "port_filtered": noise // 3, "malformed": 0}
    assert s["lost"] == 0 and s["in_flight"] == 0 and s["accounting_ok"]

    table = read_store(tmp_path / "parquet")
    assert sorted(ids_of(table)) == list(range(n))

    # Same fields as `logcaster decode` of the same pcap (rx_time differs by design).
    from appliance.cli.main import main

    assert main(["decode", str(pcap), "--port", "514", "--format", "parquet", "-o", str(tmp_path / "d.parquet"),
                 "-q"]) == 0
    offline = ds.dataset(str(tmp_path / "d.parquet")).to_table()
    cols = [c for c in offline.column_names if c != "rx_time"]
    key = lambda t: t.append_column("id", pa.array(ids_of(t))).sort_by("id").select(cols)  # noqa: E731
    assert key(table).equals(key(offline))


def test_sigterm_mid_stream_exits_0_and_leaves_readable_parquet(tmp_path):
    pcap = write_test_pcap(tmp_path / "in.pcap", 2000, noise=False)
    cfg = base_config(tmp_path, pcap)
    cfg["capture"]["ports"][0]["vdev"] += ",infinite_rx=1"   # never ends by itself
    with Appliance(cfg, tmp_path) as app:
        app.wait_ready()
        time.sleep(2.0)
        live = subprocess.run([sys.executable, "-m", "appliance.cli.main", "stats", "--json",
                               "--prefix", cfg["dpdk"]["file_prefix"]], capture_output=True, text=True, timeout=30)
        run = app.stop(signal.SIGTERM)
    assert run.rc == 0, run.stderr
    assert live.returncode == 0, live.stderr
    live = json.loads(live.stdout)
    assert live["pid"] == app.proc.pid and live["backend"] == "dpdk" and live["received"] > 0
    s = run.stats
    assert s["stop_reason"] == "SIGTERM"
    assert s["accounting_ok"] and s["in_flight"] == 0 and s["received"] > 2000
    # Every record delivered is in a complete Parquet file, readable by pyarrow and DuckDB.
    assert read_store(tmp_path / "parquet").num_rows == s["delivered"]
    glob = str(tmp_path / "parquet" / "**" / "*.parquet")
    assert duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()[0] == s["delivered"]
    assert not list((tmp_path / "parquet").glob("**/*.tmp")) and not list((tmp_path / "parquet" / ".staging").iterdir())


def _worker_pid(app: Appliance, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(app.proc.pid).children(recursive=True):
            if "spawn_main" in " ".join(child.cmdline()):  # not the resource tracker
                return child.pid
        time.sleep(0.05)
    raise AssertionError("no worker process found")


def test_worker_killed_mid_stream_loses_nothing(tmp_path):
    n = 6000
    pcap = write_test_pcap(tmp_path / "in.pcap", n, noise=False)
    cfg = base_config(tmp_path, pcap, batch_size=64)
    cfg["ring"] = {"size": "64MiB"}                   # the whole file fits: no ring_full
    cfg["sinks"][0]["rotate_seconds"] = 0.2           # files complete before the kill: the heir must skip them
    cfg["sinks"].append({"type": "null", "delay_ms": 25})  # a slow sink keeps the worker busy
    with Appliance(cfg, tmp_path) as app:
        app.wait_ready()
        time.sleep(0.8)
        victim = _worker_pid(app)
        psutil.Process(victim).send_signal(signal.SIGKILL)
        run = app.wait(timeout=120)
    assert run.rc == 0, run.stderr
    s = run.stats
    assert s["worker_restarts"] >= 1
    assert f"worker of queue 0 died (signal {signal.SIGKILL.value})" in run.stdout
    assert (s["records"], s["delivered"], s["ring_full"], s["in_flight"]) == (n, n, 0, 0)
    assert s["accounting_ok"]
    got = ids_of(read_store(tmp_path / "parquet"))
    assert set(got) == set(range(n))                  # every message at least once ...
    duplicates = len(got) - len(set(got))
    assert "duplicates_suppressed" in s               # ... and duplicates are reported
    assert duplicates == 0                            # files named by batch seqs let the new worker skip them


def test_ring_overload_counts_exactly_what_went_missing(tmp_path):
    n = 30000                                         # ~4x what the smallest ring holds
    pcap = write_test_pcap(tmp_path / "in.pcap", n, noise=False)
    cfg = base_config(tmp_path, pcap, batch_size=32)
    cfg["ring"] = {"size": 2 * batch_max(32, 256)}   # the smallest ring: two full batches
    cfg["sinks"] = [{"type": "null", "delay_ms": 20}]
    run = run_to_end(cfg, tmp_path)
    assert run.rc == 0, run.stderr
    s = run.stats
    assert s["ring_full"] > 0
    assert s["records"] == n and s["delivered"] + s["ring_full"] == n and s["accounting_ok"]
    sink = s["queues"][0]["workers"][-1]["sinks"][0]
    assert sink["kind"] == "null" and sink["records"] == s["delivered"]


def test_jsonl_sink_writes_the_decode_json(tmp_path):
    n = 500
    pcap = write_test_pcap(tmp_path / "in.pcap", n, noise=False)
    cfg = base_config(tmp_path, pcap)
    cfg["sinks"] = [{"type": "jsonl", "path": str(tmp_path / "jsonl")}]
    run = run_to_end(cfg, tmp_path)
    assert run.rc == 0, run.stderr
    live = [json.loads(line) for f in sorted((tmp_path / "jsonl").glob("date=*/hour=*/*.jsonl"))
            for line in f.read_text().splitlines()]
    from appliance.cli.main import main

    assert main(["decode", str(pcap), "-o", str(tmp_path / "d.jsonl"), "-q"]) == 0
    offline = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    strip = lambda rows: sorted(({k: v for k, v in r.items() if k != "rx_time"} for r in rows),  # noqa: E731
                                key=lambda r: int(ID.search(r["message"]).group(1)))
    assert len(live) == n and strip(live) == strip(offline)


def _live_rx(prefix: str) -> tuple[float, dict] | None:
    """(updated, queue 0's RX counters) of the live stats (what `logcaster
    stats` reads), or None before the first publish."""
    from appliance.supervisor import live_stats_path

    try:
        doc = json.loads(live_stats_path(prefix).read_text())
    except FileNotFoundError:
        return None
    return doc["updated"], doc["queues"][0]["rx"]


def _rx_lcore_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of the RX lcore's thread (DPDK names it rte-worker-1)."""
    for t in psutil.Process(pid).threads():
        try:
            with open(f"/proc/{pid}/task/{t.id}/comm") as f:
                if f.read().strip() == "rte-worker-1":
                    return t.user_time + t.system_time
        except FileNotFoundError:
            continue
    raise AssertionError("no rte-worker-1 thread in the appliance")


def test_idle_dpdk_loop_naps_instead_of_spinning(tmp_path):
    """Once the file is in, the queue stays dry: the loop must nap between
    polls (the `sleeps` counter grows while `packets` stands still), its
    thread must not burn the core, and the busy share the summary prints
    counts the naps as idle."""
    n = 500
    pcap = write_test_pcap(tmp_path / "in.pcap", n, noise=False)
    cfg = base_config(tmp_path, pcap, stop_at_end_of_file=False)   # dry after the file, until stopped
    prefix = cfg["dpdk"]["file_prefix"]
    with Appliance(cfg, tmp_path) as app:
        app.wait_ready()
        first = None
        for _ in range(200):                      # the file in and published (1 s stats interval)
            first = _live_rx(prefix)
            if first and first[1]["packets"] == n:
                break
            time.sleep(0.1)
        assert first and first[1]["packets"] == n, first
        cpu0, t0 = _rx_lcore_cpu_s(app.proc.pid), time.monotonic()
        later = first
        for _ in range(200):                      # two more publishes, the queue dry all along
            later = _live_rx(prefix)
            if later[0] > first[0] + 1.5:         # publish times, not an assertion
                break
            time.sleep(0.1)
        cpu1, t1 = _rx_lcore_cpu_s(app.proc.pid), time.monotonic()
        run = app.stop(signal.SIGTERM)
    assert run.rc == 0, run.stderr
    idle0, idle1 = first[1], later[1]
    assert idle1["packets"] == n and idle1["polls_busy"] == idle0["polls_busy"]
    naps = idle1["sleeps"] - idle0["sleeps"]
    polls = idle1["polls_idle"] - idle0["polls_idle"]
    assert naps > 0 and polls > 0
    assert naps >= polls // 2, (naps, polls)      # a nap after (nearly) every dry poll, not a spin
    # The RX thread slept: it used well under half of a core while dry.
    assert cpu1 - cpu0 < 0.5 * (t1 - t0), (cpu1 - cpu0, t1 - t0)

    s = run.stats
    assert (s["received"], s["delivered"], s["in_flight"]) == (n, n, 0) and s["accounting_ok"]
    q = s["queues"][0]
    assert q["rx"]["sleeps"] >= idle1["sleeps"]
    assert q["rx_busy_fraction"] < 0.1            # naps are idle cycles
    busy = re.search(r"RX core ([\d.]+)% busy", run.stdout)
    assert busy and float(busy.group(1)) == pytest.approx(100 * q["rx_busy_fraction"], abs=0.05)
