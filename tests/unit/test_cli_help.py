"""Every subcommand answers --help with what it does and an example, and
exits 0; the walk finds every command the README's table names."""

from __future__ import annotations

import click
import pytest

from appliance.cli.main import cli, main


def _walk(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        out.append(((*path, name), cmd))
        if isinstance(cmd, click.Group):
            out += _walk(cmd, (*path, name))
    return out


COMMANDS = _walk(cli)
EXPECTED = {"run", "demo", "decode", "replay", "ports", "ports list", "ports bind", "ports unbind", "hugepages",
            "hugepages status", "hugepages reserve", "hugepages release", "hugepages mount", "hugepages unmount",
            "hugepages clean", "stats", "query", "doctor", "top", "tap"}


def test_the_walk_sees_every_command():
    assert {" ".join(p) for p, _ in COMMANDS} == EXPECTED


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS] + [()], ids=lambda p: " ".join(p) or "logcaster")
def test_help_has_an_example(capsys, path):
    assert main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: logcaster") and "Example" in out, out
    assert f"logcaster {' '.join(path)}".strip() in out.split("Example", 1)[1], "the example runs this command"
