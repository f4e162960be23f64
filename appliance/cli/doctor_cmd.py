"""`logcaster doctor`: what this machine lacks for each backend, one line per
check with the command that fixes it. Exits 0 when everything is there, 4
(ENVIRONMENT) otherwise."""

from __future__ import annotations

import json

import click

from appliance import doctor as dr
from appliance.errors import EnvironmentProblem


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@click.option("--sysfs-root", default=dr.SYSFS_ROOT, hidden=True, help="sysfs root (tests)")
@click.option("--proc-root", default=dr.PROC_ROOT, hidden=True, help="procfs root (tests)")
@click.option("--modules-root", default=dr.MODULES_ROOT, hidden=True, help="/lib/modules (tests)")
def doctor(as_json: bool, sysfs_root: str, proc_root: str, modules_root: str) -> None:
    """Check packages, kernel headers, hugepages, privileges, limits and the built shim."""
    checks = dr.run_checks(sysfs_root=sysfs_root, proc_root=proc_root, modules_root=modules_root)
    if as_json:
        click.echo(json.dumps({"ok": all(c.ok for c in checks), "checks": [c.as_dict() for c in checks]}, indent=2))
    else:
        for check in checks:
            click.echo(check.line())
    failed = [c.name for c in checks if not c.ok]
    if failed:
        raise EnvironmentProblem(f"doctor: {len(failed)} of {len(checks)} checks failed ({', '.join(failed)})")
