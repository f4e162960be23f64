"""`logcaster`: the one console script. Subcommands live one per module.

Only this entry point maps exceptions to exit codes and messages, so a user
error prints one line, never a traceback; the code follows the error's
category (why it failed), not the module that raised it.
"""

from __future__ import annotations

import sys

import click

from appliance.cli import exitcodes
from appliance.errors import CONFIG, LogCasterError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="logcaster")
def cli() -> None:
    """LogCaster: syslog over UDP at line rate, nothing lost silently.

    \b
    Examples:
      logcaster demo                                   # the bundled sample through the real pipeline
      logcaster run -c /etc/logcaster/logcaster.yaml   # the appliance
      logcaster doctor                                 # what this machine lacks, and the fix
    """


def _register() -> None:
    from appliance.cli import (
        decode_cmd,
        demo_cmd,
        doctor_cmd,
        hugepages_cmd,
        ports_cmd,
        query_cmd,
        replay_cmd,
        run_cmd,
        stats_cmd,
        tap_cmd,
        top_cmd,
    )

    cli.add_command(decode_cmd.decode)
    cli.add_command(demo_cmd.demo)
    cli.add_command(query_cmd.query)
    cli.add_command(hugepages_cmd.hugepages)
    cli.add_command(stats_cmd.stats)
    cli.add_command(top_cmd.top)
    cli.add_command(tap_cmd.tap)
    cli.add_command(run_cmd.run)
    cli.add_command(ports_cmd.ports)
    cli.add_command(doctor_cmd.doctor)
    cli.add_command(replay_cmd.replay)


_register()


def main(argv: list[str] | None = None) -> int:
    try:
        rc = cli.main(args=argv, prog_name="logcaster", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("logcaster: interrupted", err=True)
        return exitcodes.INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return exitcodes.USAGE
    except LogCasterError as exc:
        what = "config: " if exc.category == CONFIG else ""
        click.echo(f"logcaster: {what}{exc}", err=True)
        return exitcodes.for_error(exc)
    except KeyboardInterrupt:
        click.echo("logcaster: interrupted", err=True)
        return exitcodes.INTERRUPTED
    return rc if isinstance(rc, int) else exitcodes.OK


if __name__ == "__main__":
    sys.exit(main())
