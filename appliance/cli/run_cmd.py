"""`logcaster run`: the appliance in the foreground (systemd Type=simple)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from appliance import config, paths, preflight
from appliance.cli import exitcodes
from appliance.instance import InstanceLock


@click.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="YAML configuration (see docs/logcaster.example.yaml).")
@click.option("--duration", type=click.FloatRange(min=0.1), help="Stop after this many seconds.")
@click.option("--stats-json", type=click.Path(dir_okay=False), help="Write the final counters here as JSON.")
def run(config_path: Path, duration: float | None, stats_json: str | None) -> int:
    """Capture syslog until stopped (SIGTERM/SIGINT), the duration ends, or every pcap port reached its end.

    \b
    Examples:
      logcaster run -c /etc/logcaster/logcaster.yaml
      logcaster run -c test.yaml --duration 60 --stats-json /tmp/stats.json
    """
    os.umask(paths.UMASK)           # captured logs are no one else's to read
    cfg = config.load(config_path)
    preflight.check_sinks(cfg)
    if stats_json:
        preflight.check_output_file(Path(stats_json), "--stats-json")
    with InstanceLock(cfg):
        totals = _run(cfg, duration, stats_json)
    return exitcodes.OK if not totals.check() else exitcodes.FAILURE


def _run(cfg: config.Config, duration: float | None, stats_json: str | None):
    from appliance.supervisor import Supervisor

    return Supervisor(cfg, duration=duration, stats_json=stats_json,
                      echo=lambda line: click.echo(line, err=False)).run()
