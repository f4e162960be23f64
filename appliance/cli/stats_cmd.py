"""`logcaster stats`: live counters of a running appliance.

The appliance replaces /run/logcaster/<file_prefix>.stats.json every
stats interval (appliance/supervisor.py); this reads it. `--sources` reads
the per-sender tables in the queues' live files (appliance/live.py) as
the RX loops write them: every sender with upstream loss, every source
over its budget (plus what the XDP program throttled, from the stats file).
"""

from __future__ import annotations

import json
import time

import click

from appliance.errors import InputError
from appliance.instance import process_alive
from appliance.stats import Totals, summary_text


@click.command()
@click.option("--prefix", default="logcaster", show_default=True, help="The run's dpdk.file_prefix.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
@click.option("--watch", type=click.FloatRange(min=0.5), help="Repeat every this many seconds.")
@click.option("--sources", is_flag=True,
              help="Per sender: upstream loss (sequence gaps) and throttled datagrams, in full.")
@click.option("--all", "every", is_flag=True, help="With --sources: every sender in the tables, not only those "
                                                   "with loss or throttling.")
def stats(prefix: str, as_json: bool, watch: float | None, sources: bool, every: bool) -> int:
    """Show the counters of the running appliance with this file prefix.

    \b
    Examples:
      logcaster stats
      logcaster stats --prefix edge1 --watch 2
      logcaster stats --json | jq .lost
      logcaster stats --sources             # who lost messages upstream, who was throttled
    """
    from appliance.supervisor import live_stats_path

    path = live_stats_path(prefix)
    while True:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"no running appliance with file prefix {prefix!r} ({path} does not exist)") from None
        if sources:
            _sources(prefix, data, as_json, every)
        elif as_json:
            click.echo(json.dumps(data, indent=2))
        else:
            alive = process_alive(data.get("pid"))
            age = time.time() - data.get("updated", 0)
            click.echo(f"appliance pid {data.get('pid')} ({'running' if alive else 'gone'}), backend "
                       f"{data.get('backend')}, updated {age:.1f} s ago")
            fields = {k: data[k] for k in Totals.__dataclass_fields__ if k in data}
            click.echo(summary_text(Totals(**fields), data.get("latency_us", {})))
        if not watch:
            return 0
        time.sleep(watch)


def source_report(prefix: str, data: dict, every: bool = False) -> dict:
    """Senders and throttled sources of a running appliance, in full."""
    from appliance import sources as src
    from appliance.live import LiveQueue, live_paths

    lives = []
    for path in live_paths(prefix):
        try:
            lives.append(LiveQueue.attach(path))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read {path}: {exc}") from None
    try:
        senders, sfacts = src.sender_table(lives)
        in_rx, _ = src.budget_table(lives)
    finally:
        for live in lives:
            live.close()
    throttled = src.merge_sources(in_rx, data.get("xdp_sources", []))
    keep = senders if every else [r for r in senders if r["lost"] or r["duplicates"] or r["reorders"] or r["resets"]]
    keep.sort(key=lambda r: (-r["lost"], -r["records"], r["src"], r["app"] or ""))
    return {
        "queues": len(lives), "senders_tracked": len(senders), "table_slots": sfacts["slots"],
        "evictions": sfacts["evictions"], "upstream": data.get("upstream", {}),
        "senders": [{k: v for k, v in r.items() if k != "last_ns"} for r in keep],
        "throttled": data.get("throttled", 0),
        "sources": sorted((r for r in throttled if r["throttled"] or every),
                          key=lambda r: (-r["throttled"], r["src"])),
    }


def _sources(prefix: str, data: dict, as_json: bool, every: bool) -> None:
    rep = source_report(prefix, data, every)
    if as_json:
        click.echo(json.dumps(rep, indent=2))
        return
    up = rep["upstream"]
    click.echo(f"senders: {rep['senders_tracked']:,} in the tables of {rep['queues']} queue(s) "
               f"({rep['table_slots']:,} slots, {rep['evictions']:,} evicted); lost before reaching us: "
               f"{up.get('lost', 0):,} messages")
    if rep["senders"]:
        click.echo(f"{'source':<40} {'app':<20} {'rule':<16} {'records':>10} {'lost':>8} {'gaps':>6} "
                   f"{'dups':>6} {'reord':>6} {'resets':>6} {'last seq':>10}")
        for r in rep["senders"]:
            click.echo(f"{r['src']:<40} {(r['app'] or '-')[:20]:<20} {(r['rule'] or '-')[:16]:<16} "
                       f"{r['records']:>10,} {r['lost']:>8,} {r['gaps']:>6,} {r['duplicates']:>6,} "
                       f"{r['reorders']:>6,} {r['resets']:>6,} {r['last_seq'] if r['last_seq'] is not None else '-':>10}")
    click.echo(f"throttled (over their budget): {rep['throttled']:,}")
    if rep["sources"]:
        click.echo(f"{'source':<40} {'passed':>12} {'throttled':>12}")
        for r in rep["sources"]:
            click.echo(f"{r['src']:<40} {r['passed']:>12,} {r['throttled']:>12,}")
