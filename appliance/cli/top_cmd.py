"""`logcaster top`: a live terminal view of a running appliance (rich).

Everything it shows comes from counters the RX loops and workers already
keep in shared memory (appliance/top.py); it reads no records and costs
the data path nothing.
"""

from __future__ import annotations

import json
import time

import click


def _n(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        v = round(v)
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= size * 10:
            return f"{v / size:,.1f}{unit}"
    return f"{v:,}"


def _render(v: dict):
    from rich.console import Group
    from rich.table import Table

    head = Table.grid(padding=(0, 2))
    t = v["total"]
    head.add_row(f"[b]LogCaster[/b] pid {v['pid']} backend {v['backend']}",
                 f"packets/s [b]{_n(t['packets_per_s'])}[/b]", f"records/s [b]{_n(t['records_per_s'])}[/b]",
                 f"bytes/s [b]{_n(t['bytes_per_s'])}[/b]", f"records {_n(t['records'])}")

    queues = Table(title="queues", expand=True)
    for col in ("queue", "packets/s", "records/s", "bytes/s", "records", "ring fill", "worker lag (records)"):
        queues.add_column(col, justify="right" if col != "queue" else "left")
    for q in v["queues"]:
        queues.add_row(f"{q['queue']} {q['label']}", _n(q["packets_per_s"]), _n(q["records_per_s"]),
                       _n(q["bytes_per_s"]), _n(q["records"]),
                       "-" if q["ring_fill"] is None else f"{q['ring_fill']:.1%}", _n(q["worker_lag_records"]))

    def grouped(title: str, rows: list[dict], key: str) -> Table:
        tab = Table(title=title, expand=True)
        for col in (key, "records/s", "bytes/s", "records"):
            tab.add_column(col, justify="right" if col != key else "left", overflow="ellipsis")
        for r in rows:
            tab.add_row(str(r[key] if r[key] is not None else "-"), _n(r["records_per_s"]), _n(r["bytes_per_s"]),
                        _n(r["records"]))
        return tab

    senders = Table.grid(expand=True)
    senders.add_row(grouped("top senders (records)", v["top_senders_by_records"], "src"),
                    grouped("top senders (bytes)", v["top_senders_by_bytes"], "src"),
                    grouped("top apps", v["top_apps"], "app"))

    sev = Table(title="severities", expand=True)
    for name in v["severities"]:
        sev.add_column(name, justify="right")
    sev.add_row(*(_n(n) for n in v["severities"].values()))

    losses = Table(title="losses (in the box, and throttled)", expand=True)
    for k in v["losses"]:
        losses.add_column(k, justify="right")
    losses.add_row(*(_n(n) for n in v["losses"].values()))

    up = v["upstream"]
    upstream = Table(title=f"lost before reaching us: {_n(up.get('lost', 0))} messages from "
                           f"{up.get('senders_with_loss', 0)} senders (duplicates {_n(up.get('duplicates', 0))}, "
                           f"reordered {_n(up.get('reorders', 0))}, resets {_n(up.get('resets', 0))})", expand=True)
    for col in ("source", "app", "rule", "lost", "gaps", "dups", "reorders", "resets"):
        upstream.add_column(col, justify="left" if col in ("source", "app", "rule") else "right")
    for r in up.get("top", []):
        upstream.add_row(r["src"], r["app"] or "-", r["rule"] or "-", _n(r["lost"]), _n(r["gaps"]),
                         _n(r["duplicates"]), _n(r["reorders"]), _n(r["resets"]))
    parts = [head, queues, senders, sev, losses, upstream]
    if v["throttled_sources"]:
        thr = Table(title="throttled sources (over their budget)", expand=True)
        for col in ("source", "passed", "throttled"):
            thr.add_column(col, justify="left" if col == "source" else "right")
        for r in v["throttled_sources"]:
            thr.add_row(r["src"], _n(r["passed"]), _n(r["throttled"]))
        parts.append(thr)
    return Group(*parts)


@click.command()
@click.option("--prefix", default="logcaster", show_default=True, help="The run's dpdk.file_prefix.")
@click.option("--interval", type=click.FloatRange(min=0.2), default=1.0, show_default=True,
              help="Seconds between refreshes (and between the two samples of --json's rates).")
@click.option("--json", "as_json", is_flag=True, help="Print one snapshot as JSON and exit.")
@click.option("--rows", type=click.IntRange(min=1), default=10, show_default=True, help="Rows of each top list.")
def top(prefix: str, interval: float, as_json: bool, rows: int) -> int:
    """A live view of the running appliance: rates, top senders and apps,
    severities, losses, upstream gaps, ring fill and worker lag.

    \b
    Examples:
      logcaster top
      logcaster top --prefix edge1 --interval 2
      logcaster top --json | jq .upstream
    """
    from appliance.errors import InputError
    from appliance.top import sample, view

    before = sample(prefix)
    if as_json:
        time.sleep(interval)
        click.echo(json.dumps(view(sample(prefix), before, rows), indent=2))
        return 0
    from rich.console import Console
    from rich.live import Live

    console = Console()
    with Live(_render(view(before, None, rows)), console=console, screen=console.is_terminal,
              auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval)
                try:
                    now = sample(prefix)
                except InputError as exc:     # the appliance stopped: say so, the last view stays
                    console.print(f"logcaster top: {exc}")
                    return 0
                live.update(_render(view(now, before, rows)), refresh=True)
                before = now
        except KeyboardInterrupt:
            pass
    return 0
