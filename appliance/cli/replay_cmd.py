"""`logcaster replay`: a pcap into an interface or a TAP, at C speed, with
a progress bar and a summary (appliance/replay.py)."""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import click

from appliance import replay as rp
from appliance.cli import exitcodes
from appliance.errors import ConfigError


@click.command()
@click.argument("pcap", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--iface", metavar="IFACE", help="Send out of this interface (a veth, or the TAP of a DPDK net_tap port).")
@click.option("--tap", metavar="NAME", help="Write into TAP NAME (created if missing): the kernel receives the frames "
                                           "on it, for AF_XDP or socket capture.")
@click.option("--pps", type=click.IntRange(min=1), help="Packets per second.")
@click.option("--mbps", type=click.FloatRange(min=0.001), help="Megabits per second (frame bytes).")
@click.option("--topspeed", is_flag=True, help="As fast as the kernel takes them.")
@click.option("--loop", "loops", type=click.IntRange(1, 1_000_000), default=1, show_default=True,
              help="Passes over the file.")
@click.option("--limit", type=click.IntRange(min=1), help="Send at most this many frames in all.")
@click.option("--keep", is_flag=True, help="Leave a TAP this replay created (a later replay reuses it).")
@click.option("--force", is_flag=True, help="Also use an interface LogCaster did not create (never the "
                                            "default-route one).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def replay(pcap: Path, iface: str | None, tap: str | None, pps: int | None, mbps: float | None, topspeed: bool,
           loops: int, limit: int | None, keep: bool, force: bool, as_json: bool) -> int:
    """Replay the Ethernet frames of PCAP (pcap/pcapng) into an interface or a TAP.

    \b
    Without --pps, --mbps or --topspeed the capture's own timing is kept.
    The file is read into memory first; --loop repeats it.

    \b
    Examples:
      logcaster replay sample.pcap --iface dtap0 --topspeed      # into a DPDK net_tap port
      logcaster replay sample.pcap --tap lc0 --pps 100000 --keep # AF_XDP or sockets on lc0
      logcaster replay sample.pcap --iface veth1 --force --loop 10 --limit 1000000
    """
    if (iface is None) == (tap is None):
        raise ConfigError("give one of --iface IFACE or --tap NAME")
    if sum(x is not None and x is not False for x in (pps, mbps, topspeed or None)) > 1:
        raise ConfigError("give at most one of --pps, --mbps, --topspeed")
    pace = rp.Pace("pps", pps) if pps else rp.Pace("mbps", mbps) if mbps else \
        rp.Pace("topspeed") if topspeed else rp.Pace("capture")
    with rp.Frames(pcap) as frames:
        target = rp.InterfaceTarget(iface, force=force) if iface else rp.TapTarget(tap, keep=keep, force=force)
        with target:
            click.echo(f"replay: {frames.frames:,} frames ({frames.bytes:,} bytes) of {pcap} x {loops} "
                       f"{target.describe()} at {pace.describe()}"
                       + (f", at most {limit:,}" if limit else ""), err=True)
            if frames.truncated:
                click.echo(f"replay: {frames.truncated:,} frames were cut by the capture's snaplen; sent as "
                           f"captured", err=True)
            with _progress() as progress:
                result = rp.send(frames, target, pace, loops=loops, limit=limit or 0, progress=progress)
    if as_json:
        click.echo(json.dumps(result.as_dict()))
    line = (f"replay: sent {result.sent:,} of {result.frames:,} frames ({result.bytes:,} bytes) in "
            f"{result.seconds:.2f} s: {result.pps:,.0f} packets/s, {result.mbps:,.1f} Mbit/s; "
            f"errors {result.errors:,}" + (f" (last: {result.last_error})" if result.errors else "")
            + f", retries {result.retries:,}")
    click.echo(line, err=True)
    return exitcodes.OK if result.sent == result.frames else exitcodes.FAILURE


@contextmanager
def _progress():
    """A progress callback (frames dealt with, total): a rich bar on a
    terminal, removed however the replay ends; a line every 5 s otherwise."""
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        t0 = time.monotonic()
        with Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[rate]:>12} frames/s"), TimeRemainingColumn(), transient=True) as bar:
            task = bar.add_task("replay", total=None, rate="")

            def update(done: int, total: int) -> None:
                rate = done / max(1e-9, time.monotonic() - t0)
                bar.update(task, completed=done, total=total, rate=f"{rate:,.0f}")
            yield update
        return
    last = [time.monotonic()]

    def line(done: int, total: int) -> None:
        if time.monotonic() - last[0] >= 5.0:
            last[0] = time.monotonic()
            click.echo(f"replay: {done:,} of {total:,} frames sent", err=True)
    yield line
