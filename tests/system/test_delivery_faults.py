"""The ring is the sinks' spool (issue 7): faults that lose nothing.

- The whole appliance SIGKILLed mid-stream: the next start drains the ring
  it left into the sinks before new traffic; every record it had captured
  lands once, counted as `recovered`.
- A Parquet store on a tmpfs that fills up, then gets space back: the
  appliance keeps running, holds the batches in its ring, says what failed
  once per interval, and when space returns writes everything, exactly once,
  with no partial file in the store.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import duckdb
import psutil
import pytest

from appliance.ring import Ring
from runner import Appliance, base_config, run_to_end
from test_pipeline_pcap import ID, ids_of, read_store, write_test_pcap

HANG = 60


def _kill_tree(pid: int) -> None:
    """SIGKILL the appliance and every process it started (workers included)."""
    procs = [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=HANG)


@pytest.mark.dpdk
def test_whole_appliance_killed_then_restarted_recovers_what_it_captured(tmp_path):
    n = 20000
    rings = tmp_path / "rings"
    rings.mkdir()
    cfg = base_config(tmp_path, write_test_pcap(tmp_path / "first.pcap", n, noise=False), batch_size=64)
    cfg["ring"] = {"size": "64MiB", "dir": str(rings)}
    cfg["sinks"][0]["rotate_seconds"] = 0.3            # some files complete before the kill
    cfg["sinks"].append({"type": "null", "delay_ms": 5})  # a slow sink: the ring holds the rest
    with Appliance(cfg, tmp_path) as app:
        app.wait_ready()
        time.sleep(0.8)
        _kill_tree(app.proc.pid)
    home = rings / f"logcaster-{os.geteuid()}"          # the rings' private directory in ring.dir
    assert oct(home.stat().st_mode & 0o777) == "0o700"
    [left] = list(home.iterdir())
    with Ring.attach(left, consumer=False) as ring:
        s = ring.stats()
    published, unreleased = s["records_published"], s["records_published"] - s["records_released"]
    assert unreleased > 0, "the kill was meant to find records in the ring"
    before = ids_of(read_store(tmp_path / "parquet")) if list((tmp_path / "parquet").glob("date=*")) else []
    assert len(before) == len(set(before)) and set(before) <= set(range(published))

    # the next start: a second capture with other ids (n .. n+499)
    second = [i + n for i in range(500)]
    pcap2 = write_test_pcap(tmp_path / "second.pcap", n + 500, noise=False)
    cfg["capture"]["ports"][0]["vdev"] = f"net_pcap0,rx_pcap={_tail_pcap(pcap2, tmp_path, n)}"
    cfg["sinks"] = cfg["sinks"][:1]
    run = run_to_end(cfg, tmp_path)
    assert run.rc == 0, run.stderr
    assert f"recovering {unreleased:,} records from {left}" in run.stdout
    st = run.stats
    assert st["recovered"] == unreleased and st["accounting_ok"]
    assert (st["records"], st["delivered"], st["ring_full"], st["in_flight"]) == (500, 500, 0, 0)
    got = ids_of(read_store(tmp_path / "parquet"))
    assert len(got) == len(set(got)), "no record twice"
    assert set(got) == set(range(published)) | set(second)
    assert not any(home.iterdir()), "the recovered ring is removed"
    assert not list((tmp_path / "parquet" / ".staging").iterdir())


def _tail_pcap(pcap: Path, tmp_path: Path, skip: int) -> Path:
    """The packets of `pcap` after the first `skip` (ids skip..end)."""
    from scapy.utils import rdpcap, wrpcap

    out = tmp_path / "tail.pcap"
    wrpcap(str(out), rdpcap(str(pcap))[skip:])
    return out


# ---- disk full, then space again --------------------------------------------------

def _send(port: int, ids: range) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in ids:
            noise = os.urandom(24).hex()           # incompressible: the store fills for real
            s.sendto(f"<14>1 2026-03-14T09:26:53Z host app - - - id={i} {noise}".encode(), ("127.0.0.1", port))
            if i % 200 == 199:
                time.sleep(0.005)                   # bounded rate: the socket never overflows


def _live(run_dir: Path, prefix: str) -> dict:
    try:
        return json.loads((run_dir / f"{prefix}.stats.json").read_text())
    except (OSError, ValueError):
        return {}


def _wait_for(what: str, cond, timeout: float = HANG):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _sink_errors(live: dict) -> int:
    return sum(w.get("sink_errors", 0) for q in live.get("queues", []) for w in q.get("workers", []))


@pytest.mark.root
def test_a_full_disk_holds_the_batches_and_writes_them_when_space_returns(tmp_path, monkeypatch):
    store = tmp_path / "store"
    store.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "logcaster-full-test", str(store)], check=True)
    run_dir = tmp_path / "run"
    monkeypatch.setenv("LOGCASTER_RUN_DIR", str(run_dir))
    try:
        filler = store / "filler"
        with open(filler, "wb") as f:               # leave ~32 KiB: the first file cannot complete
            f.write(b"\0" * (2 * 1024 * 1024 - 32 * 1024))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        prefix = f"lcfull{os.getpid()}"
        cfg = {
            "capture": {"backend": "socket", "ports": ["127.0.0.1"], "udp_ports": [port], "batch_size": 64},
            "sinks": [{"type": "parquet", "path": str(store), "rotate_seconds": 0.3}],
            "ring": {"size": "64MiB"},
            "dpdk": {"file_prefix": prefix},
            "stats_interval_s": 0.5,
        }
        with Appliance(cfg, tmp_path) as app:
            app.wait_ready()
            _send(port, range(10000))
            live = _wait_for("the sink to fail", lambda: (l := _live(run_dir, prefix)) and _sink_errors(l) and l)
            assert app.proc.poll() is None, "still running"
            time.sleep(2.0)                           # several retries while the disk stays full
            live = _live(run_dir, prefix)
            assert live["in_flight"] > 0 and live["ring_full"] == 0 and live["lost"] == 0
            assert not list(store.glob("date=*/hour=*/*.parquet")), "nothing partial in the store"
            filler.unlink()                           # space returns
            _send(port, range(10000, 15000))
            _wait_for("everything delivered", lambda: _live(run_dir, prefix).get("delivered") == 15000)
            run = app.stop()
        assert run.rc == 0, run.stderr
        st = run.stats
        assert (st["records"], st["delivered"], st["ring_full"], st["sink_failed"], st["in_flight"]) == \
            (15000, 15000, 0, 0, 0)
        assert st["accounting_ok"] and st["nic"].get("kernel_drops", 0) == 0
        errors = [line for line in run.stderr.splitlines() if "No space left" in line]
        assert 1 <= len(errors) <= 20, "said once per interval, not once per batch"
        got = ids_of(read_store(store))
        assert sorted(got) == list(range(15000)), "every record once"
        glob = str(store / "**" / "*.parquet")
        assert duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()[0] == 15000
        assert not list(store.glob("**/*.tmp")) and not list((store / ".staging").iterdir())
    finally:
        subprocess.run(["umount", "-l", str(store)], check=False)
