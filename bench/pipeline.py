"""Pipeline benchmark: DPDK net_pcap (infinite_rx) -> RX lcore -> ring -> worker -> sink.

One RX lcore and one worker (the 2-core plan), for a fixed time, over the
realistic sample pcap. Scenarios: the `null` sink (the data path's ceiling),
`null-nosenders` and `null-gaps` (the same with the senders table off, and
with gap detection alone: the table's cost on the RX core,
`senders_overhead_rx`) and the `parquet` sink (the default store). Each runs `logcaster run` in a
subprocess and reads its --stats-json. Prints a table and one JSON line per
scenario: msgs_per_s (delivered), losses by kind, latency rx_time -> sink
hand-off (p50/p99/p99.9, every message), RX core busy fraction and ns/packet.

The `parquet` scenario is set beside pyarrow alone in the same run: the
same pcap decoded once, offline, into Arrow tables (the C decoder, as
`logcaster decode` does), then written by one pq.ParquetWriter with the
sink's own settings (appliance.sinks.parquet.writer_options of the
scenario's sink config) in row groups of the sink's row_group_rows, pinned
to the worker's CPU, for as many rows as the scenario delivered (the table
repeated; at most --seconds x 2 of writing). Its line gains
pyarrow_rows_per_s and ratio_vs_pyarrow (msgs_per_s / pyarrow_rows_per_s);
because msgs_per_s divides by the capture time while the worker goes on
emptying the ring after capture stops, it also gets
ratio_vs_pyarrow_worker_time: delivered over worker_seconds, from the RX
loops' launch to the last Parquet file completed (its mtime).

    python bench/pipeline.py [--seconds 10] [--messages 20000] [--rounds 1]
                             [--scenarios null-nosenders,null-gaps,null,parquet]
                             [--rx-cpu 1] [--worker-cpu 0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.sample import write_pcap  # noqa: E402
from bench.machine import busy_cpus  # noqa: E402
from bench.store import parquet_store  # noqa: E402


def scenario_config(name: str, pcap: Path, work: Path, rx_cpu: int, worker_cpu: int) -> dict:
    sinks = {"null": [{"type": "null"}], "null-nosenders": [{"type": "null"}], "null-gaps": [{"type": "null"}],
             "parquet": [{"type": "parquet", "path": str(work / "parquet"), "rotate_seconds": 5}],
             "jsonl": [{"type": "jsonl", "path": str(work / "jsonl"), "rotate_seconds": 5}]}[name]
    extra = {"null-nosenders": {"senders": {"enabled": False}},
             "null-gaps": {"senders": {"traffic": False}}}.get(name, {})
    return {
        **extra,
        "capture": {"ports": [{"name": "net_pcap0", "vdev": f"net_pcap0,rx_pcap={pcap},infinite_rx=1",
                               "link_timeout_ms": 0}],
                    "burst": 64, "batch_size": 1024},
        "ring": {"size": "512MiB"},
        "sinks": sinks,
        "dpdk": {"file_prefix": f"lcbench{os.getpid()}{name}", "log_level": "error"},
        "cores": {"rx": [rx_cpu], "workers": [worker_cpu]},
        "stats_interval_s": 5,
    }


def run_logcaster(cfg_path: Path, stats_path: Path, seconds: float) -> tuple[dict, dict]:
    """`logcaster run` for `seconds`: its stats JSON and the wall-clock times of
    its 'capturing' line (RX loops launched), 'stopping' line (RX loops told to
    stop; the workers then empty the rings) and summary (everything done)."""
    cmd = [sys.executable, "-m", "appliance.cli.main", "run", "-c", str(cfg_path),
           "--duration", str(seconds), "--stats-json", str(stats_path)]
    lines, marks = [], {}
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}) as proc:
        deadline = time.monotonic() + seconds + 300
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            for mark in ("capturing", "stopping", "summary"):
                if line.startswith(mark) and mark not in marks:
                    marks[mark] = time.time()
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"logcaster run still running after {seconds + 300:.0f} s")
        rc = proc.wait()
    if rc != 0 or len(marks) != 3:
        tail = "\n".join(lines[-30:])
        raise SystemExit(f"{cfg_path}: logcaster run failed ({rc}):\n{tail}")
    return json.loads(stats_path.read_text()), marks


def run_scenario(name: str, pcap: Path, seconds: float, args):
    """The scenario's result line and its parsed config (what the appliance ran with)."""
    from appliance.config import from_dict

    with tempfile.TemporaryDirectory(prefix=f"lcbench-{name}-") as tmp:
        work = Path(tmp)
        cfg_path, stats_path = work / "cfg.yaml", work / "stats.json"
        cfg = scenario_config(name, pcap, work, args.rx_cpu, args.worker_cpu)
        cfg_path.write_text(yaml.safe_dump(cfg))
        parsed = from_dict(cfg, source=str(cfg_path))
        busy = busy_cpus(1.0)
        s, marks = run_logcaster(cfg_path, stats_path, seconds)
        store = parquet_store(work / "parquet") if name == "parquet" else None
    q = s["queues"][0]
    rx = q["rx"]
    busy_ns = rx["cycles_busy"] / rx["tsc_hz"] * 1e9 if rx["tsc_hz"] else 0
    r = {
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
        "stop_to_summary_s": round(marks["summary"] - marks["stopping"], 3),
        "machine_busy_cpus_before": round(busy, 2),
    }
    if store is not None:
        # The worker's time: from the RX loops' launch to its last file complete
        # (capture, then emptying the ring; not the teardown after).
        r["worker_seconds"] = round(store.pop("last_file_done") - marks["capturing"], 3)
        r["store"] = store
    return r, parsed


# ---- pyarrow alone, the parquet scenario's yardstick -------------------------

def decoded_table(pcap: Path, batch_size: int):
    """The pcap decoded once by the C decoder into Arrow (appliance.decoder's
    offline path), copied out of the reused batch: one chunk per batch."""
    import pyarrow as pa

    from appliance.batch import SCHEMA, Batch
    from appliance.decoder import Decoder, PcapReader

    sink = pa.BufferOutputStream()
    with PcapReader(pcap) as reader, pa.ipc.new_stream(sink, SCHEMA) as ipc:
        for rb in reader.batches(Decoder(), Batch(capacity=batch_size)):
            ipc.write_batch(rb)       # the view is valid until the next batch: serialised now
    return pa.ipc.open_stream(sink.getvalue()).read_all()


def pyarrow_baseline(table, cfg, rows_target: int, bound_s: float, cpu: int) -> dict:
    """Write `rows_target` rows (the table repeated) with one ParquetWriter and the
    writer_options of the sink config `cfg`, in row groups of its row_group_rows,
    on `cpu`, for at most `bound_s` (open, every row group and close timed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from appliance.batch import SCHEMA
    from appliance.sinks.parquet import writer_options

    rg = cfg.row_group_rows
    group = pa.concat_tables([table] * -(-rg // table.num_rows)).slice(0, rg)   # zero-copy chunks
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        with tempfile.TemporaryDirectory(prefix="lcbench-pyarrow-") as tmp:
            path = Path(tmp) / "baseline.parquet"
            rows = 0
            t0 = time.perf_counter()
            with pq.ParquetWriter(str(path), SCHEMA, **writer_options(cfg)) as writer:
                while rows < rows_target and time.perf_counter() - t0 < bound_s:
                    part = group if rows_target - rows >= rg else group.slice(0, rows_target - rows)
                    writer.write_table(part, row_group_size=rg)
                    rows += part.num_rows
            elapsed = time.perf_counter() - t0
            size = path.stat().st_size
    finally:
        os.sched_setaffinity(0, before)
    return {"pyarrow_rows": rows, "pyarrow_seconds": round(elapsed, 3),
            "pyarrow_rows_per_s": round(rows / elapsed), "pyarrow_row_group_rows": rg,
            "pyarrow_bytes_per_row": round(size / rows, 1), "pyarrow_cpu": cpu,
            "pyarrow_bounded": rows < rows_target}


def add_baseline(r: dict, sink_cfg, table, seconds: float, cpu: int) -> None:
    base = pyarrow_baseline(table, sink_cfg, r["delivered"], 2 * seconds, cpu)
    r.update(base)
    r["sink_msgs_per_s_worker_time"] = round(r["delivered"] / r["worker_seconds"])
    r["ratio_vs_pyarrow"] = round(r["msgs_per_s"] / base["pyarrow_rows_per_s"], 3)
    r["ratio_vs_pyarrow_worker_time"] = round(r["sink_msgs_per_s_worker_time"] / base["pyarrow_rows_per_s"], 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--messages", type=int, default=20_000, help="distinct messages in the replayed pcap")
    ap.add_argument("--scenarios", default="null-nosenders,null-gaps,null,parquet")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each scenario, alternating order; the best counts")
    ap.add_argument("--rx-cpu", type=int, default=1)
    ap.add_argument("--worker-cpu", type=int, default=0, help="the worker's CPU, also pyarrow's alone")
    args = ap.parse_args()
    pcap = ROOT / "logcaster-data" / "sample" / f"bench-{args.messages}.pcap"
    if not pcap.exists():
        write_pcap(pcap, args.messages)
    names = args.scenarios.split(",")
    table = decoded_table(pcap, 1024) if "parquet" in names else None
    best: dict[str, tuple[dict, object]] = {}
    for round_ in range(args.rounds):               # alternating order: each scenario sees early and late
        for name in (names if round_ % 2 == 0 else names[::-1]):
            r, cfg = run_scenario(name, pcap, args.seconds, args)
            r["rounds"] = args.rounds
            if name not in best or r["msgs_per_s"] > best[name][0]["msgs_per_s"]:
                best[name] = (r, cfg)
    results = []
    for name in names:                              # the best round of each
        r, cfg = best[name]
        if name == "parquet":
            add_baseline(r, cfg.sinks[0], table, args.seconds, args.worker_cpu)
        results.append(r)
    fmt = lambda v, spec=".1f": format(v, spec) if v is not None else "-"  # noqa: E731
    print(f"{'scenario':<10}{'msgs/s':>13}{'ring_full':>12}{'p50 µs':>10}{'p99 µs':>10}{'p99.9 µs':>10}"
          f"{'RX busy':>9}{'ns/pkt':>8}{'pyarrow rows/s':>16}{'ratio':>7}{'ratio wt':>9}")
    for r in results:
        lat = r["latency_us"]
        print(f"{r['scenario']:<10}{r['msgs_per_s']:>13,}{r['losses']['ring_full']:>12,}{fmt(lat['p50']):>10}"
              f"{fmt(lat['p99']):>10}{fmt(lat['p999']):>10}{r['rx_busy_fraction']:>9.0%}"
              f"{r['rx_ns_per_packet_busy'] or 0:>8.0f}{fmt(r.get('pyarrow_rows_per_s'), ',d'):>16}"
              f"{fmt(r.get('ratio_vs_pyarrow'), '.2f'):>7}{fmt(r.get('ratio_vs_pyarrow_worker_time'), '.2f'):>9}")
    by = {r["scenario"]: r for r in results}
    base = by.get("null-nosenders", {}).get("rx_ns_per_packet_busy")
    for name, what in (("null-gaps", "gap detection alone (senders.traffic false)"),
                       ("null", "the senders table as configured by default (gaps and per-sender traffic)")):
        if name in by and base:
            # Its cost on the RX core, against the same run with the table off.
            by[name]["senders_overhead_rx"] = round(by[name]["rx_ns_per_packet_busy"] / base - 1, 3)
            print(f"{what}: {by[name]['senders_overhead_rx']:+.1%} ns/packet busy on the RX core "
                  f"({name} vs null-nosenders)")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
