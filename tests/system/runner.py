"""Run `logcaster run` as a subprocess (the DPDK EAL can start once per
process) and collect its exit code, output and --stats-json counters."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "capturing:"


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    stats: dict = field(default_factory=dict)


def base_config(tmp_path: Path, pcap: Path | None = None, **capture) -> dict:
    """A config on a net_pcap port reading `pcap`, with a unique EAL file prefix."""
    cfg = {
        "capture": {"ports": [], "udp_ports": [514], **capture},
        "sinks": [{"type": "parquet", "path": str(tmp_path / "parquet")}],
        "dpdk": {"file_prefix": f"lctest{os.getpid()}-{time.monotonic_ns() % 10**9}", "log_level": "error"},
        "stats_interval_s": 1.0,
    }
    if pcap is not None:
        cfg["capture"]["ports"] = [{"name": "net_pcap0", "vdev": f"net_pcap0,rx_pcap={pcap}", "link_timeout_ms": 0}]
    return cfg


class Appliance:
    """A running `logcaster run`; use as a context manager so it never outlives the test."""

    def __init__(self, cfg: dict, tmp_path: Path, *, args: tuple[str, ...] = (), netns: str | None = None):
        self.cfg_path = tmp_path / "logcaster.yaml"
        self.stats_path = tmp_path / "stats.json"
        self.cfg_path.write_text(yaml.safe_dump(cfg))
        cmd = [sys.executable, "-m", "appliance.cli.main", "run", "-c", str(self.cfg_path),
               "--stats-json", str(self.stats_path), *args]
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Read stdout until the RX loops started."""
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not sel.select(timeout=0.5):
                if self.proc.poll() is not None:
                    break
                continue
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith(READY_LINE):
                return
        raise AssertionError(f"appliance not ready: {''.join(self.lines)}{self.proc.stderr.read() if self.proc.poll() is not None else ''}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120.0) -> Run:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = 120.0) -> Run:
        out, err = self.proc.communicate(timeout=timeout)
        stats = json.loads(self.stats_path.read_text()) if self.stats_path.exists() else {}
        return Run(self.proc.returncode, "".join(self.lines) + out, err, stats)

    def __enter__(self) -> "Appliance":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def sink_stats(run: Run, kind: str) -> dict:
    """The final stats of the one sink of `kind` (a run with one queue)."""
    [stats] = [s for q in run.stats["queues"] for w in q["workers"] for s in w["sinks"] if s["kind"] == kind]
    return stats


def run_to_end(cfg: dict, tmp_path: Path, timeout: float = 120.0) -> Run:
    with Appliance(cfg, tmp_path) as app:
        return app.wait(timeout)
