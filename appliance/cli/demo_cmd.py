"""`logcaster demo`: the bundled sample through the real pipeline into Parquet.

Generates (deterministically, once) a realistic pcap of mixed syslog from
200 hosts, captures it through DPDK's net_pcap vdev with the same RX loop,
rings, workers and Parquet sink as `logcaster run`, and summarises what
landed, with DuckDB. Needs no NIC and no config file.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from appliance import config, paths, preflight
from appliance.cli import exitcodes
from appliance.instance import InstanceLock

SEVERITIES = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]


def sample_path(data_dir: Path, messages: int) -> Path:
    return data_dir / "sample" / f"sample-{messages}.pcap"


def sample_pcap(data_dir: Path, messages: int) -> Path:
    path = sample_path(data_dir, messages)
    if not path.exists():
        from appliance.sample import write_pcap     # scapy: only when a sample is made

        click.echo(f"generating the sample: {messages:,} syslog messages from 200 hosts -> {path}")
        tmp = path.with_suffix(".tmp")
        write_pcap(tmp, messages)
        os.replace(tmp, path)
    return path


def demo_config(pcap: Path, data_dir: Path) -> config.Config:
    return config.from_dict({
        "capture": {"ports": [{"name": "net_pcap0", "vdev": f"net_pcap0,rx_pcap={pcap.resolve()}",
                               "link_timeout_ms": 0}]},
        "sinks": [{"type": "parquet", "path": str(data_dir / "parquet"), "rotate_seconds": 3600}],
        "dpdk": {"file_prefix": f"logcaster-demo-{os.getpid()}", "log_level": "error"},
        # net_pcap reads the file as fast as the RX loop takes it (2-3 M/s), faster
        # than one Parquet worker writes: a ring that holds the whole sample
        # keeps the demo lossless even on a busy machine.
        "ring": {"size": "256MiB"},
        "stats_interval_s": 1.0,
    }, source="<demo>")


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("logcaster-data"),
              show_default=True, help="Where the sample pcap and the Parquet store go.")
@click.option("--messages", type=click.IntRange(1, 10_000_000), default=100_000, show_default=True,
              help="Size of the generated sample.")
def demo(data_dir: Path, messages: int) -> int:
    """Replay the bundled sample through the real DPDK pipeline into Parquet and summarise it.

    \b
    Examples:
      logcaster demo
      logcaster demo --messages 1000000 --data-dir /srv/demo
    """
    from appliance.supervisor import Supervisor

    os.umask(paths.UMASK)
    cfg = demo_config(sample_path(data_dir, messages), data_dir)
    preflight.writable_dir(data_dir / "sample", "--data-dir")
    preflight.check_sinks(cfg)
    with InstanceLock(cfg):  # the data dir is this demo's alone, from the sample to the summary
        sample_pcap(data_dir, messages)
        started_ns = time.time_ns()
        totals = Supervisor(cfg, echo=click.echo).run()
        _report(data_dir / "parquet", started_ns)
    return exitcodes.OK if not totals.check() and totals.delivered == messages else exitcodes.FAILURE


def _report(store: Path, since_ns: int) -> None:
    import duckdb

    glob = str(store / "**" / "*.parquet")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    where = f"rx_time >= make_timestamp({since_ns // 1000})"
    view = f"(SELECT * FROM read_parquet('{glob}', hive_partitioning = true) WHERE {where})"
    total, hosts, files = con.execute(
        f"SELECT count(*), count(DISTINCT hostname), count(DISTINCT filename) "
        f"FROM (SELECT *, filename FROM read_parquet('{glob}', filename = true) WHERE {where})").fetchone()
    click.echo(f"\nParquet store {store}: {total:,} records of this run in {files} file(s), {hosts} hosts")

    def top(label: str, expr: str, n: int = 5) -> None:
        rows = con.execute(f"SELECT {expr} AS k, count(*) AS n FROM {view} GROUP BY k ORDER BY n DESC, k LIMIT {n}"
                           ).fetchall()
        click.echo(f"  top {label}: " + ", ".join(f"{k} ({v:,})" for k, v in rows))

    top("hosts", "coalesce(hostname, src_ip)")
    top("apps", "coalesce(app_name, '-')")
    top("severities", "coalesce(" + "CASE severity " + " ".join(
        f"WHEN {i} THEN '{s}'" for i, s in enumerate(SEVERITIES)) + " END, 'none')", 8)
    top("formats", "format", 3)
    me = sys.argv[0] if sys.argv and sys.argv[0].endswith("logcaster") else "logcaster"
    click.echo("\nExplore it further (the records are the view `logs`):\n"
               f"  {me} query --data-dir {store} \"SELECT hostname, count(*) FROM logs GROUP BY 1 ORDER BY 2 DESC\"\n"
               f"  {me} query --data-dir {store} \"SELECT rx_time, hostname, app_name, message FROM logs "
               f"WHERE severity <= 3 LIMIT 10\"")
