"""Pipeline benchmark: DPDK net_pcap (infinite_rx) -> RX lcore -> ring -> worker -> sink.

One RX lcore and one worker (the 2-core plan), for a fixed time, over the
realistic sample pcap. Scenarios: the `null` sink (the data path's ceiling)
and the `parquet` sink (the default store). Each runs `logcaster run` in a
subprocess and reads its --stats-json. Prints a table and one JSON line per
scenario: msgs_per_s (delivered), losses by kind, latency rx_time -> sink
hand-off (p50/p99/p99.9, every message), RX core busy fraction.

    python bench/pipeline.py [--seconds 10] [--messages 20000] [--scenarios null,parquet]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.sample import write_pcap  # noqa: E402


def scenario_config(name: str, pcap: Path, work: Path) -> dict:
    sinks = {"null": [{"type": "null"}],
             "parquet": [{"type": "parquet", "path": str(work / "parquet"), "rotate_seconds": 5}],
             "jsonl": [{"type": "jsonl", "path": str(work / "jsonl"), "rotate_seconds": 5}]}[name]
    return {
        "capture": {"ports": [{"name": "net_pcap0", "vdev": f"net_pcap0,rx_pcap={pcap},infinite_rx=1",
                               "link_timeout_ms": 0}],
                    "burst": 64, "batch_size": 1024},
        "ring": {"size": "512MiB"},
        "sinks": sinks,
        "dpdk": {"file_prefix": f"lcbench{os.getpid()}{name}", "log_level": "error"},
        "stats_interval_s": 5,
    }


def run_scenario(name: str, pcap: Path, seconds: float) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"lcbench-{name}-") as tmp:
        work = Path(tmp)
        cfg_path, stats_path = work / "cfg.yaml", work / "stats.json"
        cfg_path.write_text(yaml.safe_dump(scenario_config(name, pcap, work)))
        proc = subprocess.run([sys.executable, "-m", "appliance.cli.main", "run", "-c", str(cfg_path),
                               "--duration", str(seconds), "--stats-json", str(stats_path)],
                              cwd=ROOT, capture_output=True, text=True, timeout=seconds + 300)
        if proc.returncode != 0:
            raise SystemExit(f"{name}: logcaster run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        s = json.loads(stats_path.read_text())
    q = s["queues"][0]
    rx = q["rx"]
    busy_ns = rx["cycles_busy"] / rx["tsc_hz"] * 1e9 if rx["tsc_hz"] else 0
    return {
        "benchmark": "pipeline",
        "scenario": name,
        "seconds": round(s["seconds"], 3),
        "received": s["received"],
        "delivered": s["delivered"],
        "msgs_per_s": round(s["delivered"] / s["seconds"]),
        "received_per_s": round(s["received"] / s["seconds"]),
        "losses": {"ring_full": s["ring_full"], "sink_failed": s["sink_failed"], **s["nic"]},
        "latency_us": s["latency_us"],
        "rx_busy_fraction": round(q["rx_busy_fraction"], 3),
        "rx_ns_per_packet_busy": round(busy_ns / rx["packets"], 1) if rx["packets"] else None,
        "accounting_ok": s["accounting_ok"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--messages", type=int, default=20_000, help="distinct messages in the replayed pcap")
    ap.add_argument("--scenarios", default="null,parquet")
    args = ap.parse_args()
    pcap = ROOT / "logcaster-data" / "sample" / f"bench-{args.messages}.pcap"
    if not pcap.exists():
        write_pcap(pcap, args.messages)
    results = [run_scenario(name, pcap, args.seconds) for name in args.scenarios.split(",")]
    print(f"{'scenario':<10}{'msgs/s':>13}{'ring_full':>12}{'p50 µs':>10}{'p99 µs':>10}{'p99.9 µs':>10}"
          f"{'RX busy':>9}{'ns/pkt':>8}")
    for r in results:
        lat = r["latency_us"]
        fmt = lambda v: f"{v:.1f}" if v is not None else "-"  # noqa: E731
        print(f"{r['scenario']:<10}{r['msgs_per_s']:>13,}{r['losses']['ring_full']:>12,}{fmt(lat['p50']):>10}"
              f"{fmt(lat['p99']):>10}{fmt(lat['p999']):>10}{r['rx_busy_fraction']:>9.0%}"
              f"{r['rx_ns_per_packet_busy'] or 0:>8.0f}")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
