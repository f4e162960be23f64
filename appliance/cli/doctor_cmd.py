"""`logcaster doctor`: what this machine lacks for each backend, one line per
check with the command that fixes it. Exits 0 when everything is there, 4
(ENVIRONMENT) otherwise."""

from __future__ import annotations

import json

import click

from appliance import doctor as dr
from appliance import probe
from appliance.errors import EnvironmentProblem


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@click.option("--sysfs-root", default="/sys", hidden=True, help="sysfs root (tests)")
@click.option("--proc-root", default="/proc", hidden=True, help="procfs root (tests)")
@click.option("--modules-root", default="/lib/modules", hidden=True, help="/lib/modules (tests)")
def doctor(as_json: bool, sysfs_root: str, proc_root: str, modules_root: str) -> None:
    """Check packages, kernel headers, hugepages, capabilities, limits and the built shim.

    \b
    One line per check; a missing one names the command that fixes it. Exit
    code 4 when something is missing. Run it as the user the appliance runs
    as (e.g. `sudo -u logcaster logcaster doctor`), since capabilities and
    limits are per process.

    \b
    Example:
      logcaster doctor
      logcaster doctor --json | jq '.checks[] | select(.ok | not)'
    """
    host = probe.probe(proc_root=proc_root, sysfs_root=sysfs_root, modules_root=modules_root)
    checks = dr.run_checks(host, proc_root=proc_root)
    if as_json:
        click.echo(json.dumps({"ok": all(c.ok for c in checks), "checks": [c.as_dict() for c in checks]}, indent=2))
    else:
        for check in checks:
            click.echo(check.line())
    failed = [c.name for c in checks if not c.ok]
    if failed:
        raise EnvironmentProblem(f"doctor: {len(failed)} of {len(checks)} checks failed ({', '.join(failed)})")
