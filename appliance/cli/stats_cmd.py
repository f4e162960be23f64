"""`logcaster stats`: live counters of a running appliance.

The appliance replaces /run/logcaster/<file_prefix>.stats.json every
stats interval (appliance/supervisor.py); this reads it.
"""

from __future__ import annotations

import json
import os
import time

import click

from appliance.errors import InputError
from appliance.stats import Totals, summary_text


@click.command()
@click.option("--prefix", default="logcaster", show_default=True, help="The run's dpdk.file_prefix.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
@click.option("--watch", type=click.FloatRange(min=0.5), help="Repeat every this many seconds.")
def stats(prefix: str, as_json: bool, watch: float | None) -> int:
    """Show the counters of the running appliance with this file prefix.

    \b
    Examples:
      logcaster stats
      logcaster stats --prefix edge1 --watch 2
      logcaster stats --json | jq .lost
    """
    from appliance.supervisor import live_stats_path

    path = live_stats_path(prefix)
    while True:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"no running appliance with file prefix {prefix!r} ({path} does not exist)") from None
        if as_json:
            click.echo(json.dumps(data, indent=2))
        else:
            alive = _alive(data.get("pid"))
            age = time.time() - data.get("updated", 0)
            click.echo(f"appliance pid {data.get('pid')} ({'running' if alive else 'gone'}), backend "
                       f"{data.get('backend')}, updated {age:.1f} s ago")
            fields = {k: data[k] for k in Totals.__dataclass_fields__ if k in data}
            click.echo(summary_text(Totals(**fields), data.get("latency_us", {})))
        if not watch:
            return 0
        time.sleep(watch)


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
