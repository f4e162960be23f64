"""`logcaster tap`: follow the records of a running appliance as they are written.

It asks the workers for them through a control file in RUN_DIR and reads
the side rings they fill (appliance/tap.py, docs/TAP.md): the capture path
and the main rings are never touched. Above RATE matching records a second
per queue the workers sample, and the tap says so on stderr; so it does
when it read a side ring too late.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import click

from appliance.decoder import SEVERITIES
from appliance.errors import InputError, LogCasterError
from appliance.instance import prefix_lock_path, process_alive
from appliance.tap import RATE, STALE_S, TapControl, TapFilter, TapReader, parse_severity

POLL_S = 0.05                   # side rings are read this often
CHECK_S = 0.5                   # the appliance's liveness, this often
REPORT_S = 1.0                  # a sampling notice at most this often
FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
              "ftp", "ntp", "security", "console", "solaris-cron", *(f"local{i}" for i in range(8)))


@click.command()
@click.option("--prefix", default="logcaster", show_default=True, help="The run's dpdk.file_prefix.")
@click.option("--host", help="Only records with this hostname.")
@click.option("--app", help="Only records with this app_name.")
@click.option("--severity", help="Only this severity and more severe ones (`warning` or `4`); "
                                 "`=warning`: that one alone.")
@click.option("--grep", "pattern", metavar="RE", help="Only records whose message matches this regular "
                                                      "expression (RE2, unanchored).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: one compact syslog-like line per record; json: the record JSON of `logcaster decode`.")
@click.option("--limit", type=click.IntRange(min=1), help="Stop after this many records.")
def tap(prefix: str, host: str | None, app: str | None, severity: str | None, pattern: str | None, fmt: str,
        limit: int | None) -> int:
    """Follow the records of the running appliance with this file prefix.

    Shows records as the workers hand them to the sinks, from every queue;
    sampled above 2,000 matching records a second per queue (it says so on
    stderr). One tap at a time; Ctrl-C ends it.

    \b
    Examples:
      logcaster tap
      logcaster tap --app sshd --severity warning
      logcaster tap --host edge1 --grep 'link (up|down)' --format json | jq .message
      logcaster tap --limit 20 --prefix edge1
    """
    sev, exact = parse_severity(severity) if severity is not None else (None, False)
    flt = TapFilter(host=host, app=app, severity=sev, severity_exact=exact, grep=pattern)
    flt.check()
    _appliance_pid(prefix)
    out = sys.stdout.buffer
    stop: list[int] = []

    def ending(signum, frame) -> None:
        """Ctrl-C or SIGTERM: end between two reads, never inside a line;
        a second one at once (a tap stuck writing to a pipe nobody reads)."""
        if stop:
            raise KeyboardInterrupt
        stop.append(signum)

    handlers = {sig: signal.signal(sig, ending) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with TapControl(prefix, flt) as ctl:
            follow = _Printer(prefix, TapReader(prefix, ctl.session), out, fmt, limit)
            try:
                while not stop and follow.step(ctl):
                    time.sleep(POLL_S)
            except BrokenPipeError:     # `logcaster tap | head`: the reader is gone, so is the tap
                os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
                return 0
            finally:
                follow.reader.close()
            follow.final_notice()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return 0


class _Printer:
    """What one tap prints, and its notices on stderr."""

    def __init__(self, prefix: str, reader: TapReader, out, fmt: str, limit: int | None):
        self.prefix, self.reader, self.out, self.fmt, self.limit = prefix, reader, out, fmt, limit
        self.shown = 0
        self.started = time.monotonic()
        self._check_at = self.started + CHECK_S
        self._report_at = 0.0
        self._reported = 0             # matching records not shown, as last reported
        self._hinted = False

    def step(self, ctl: TapControl) -> bool:
        """Print what the side rings hold now; False when done."""
        now = time.monotonic()
        ctl.heartbeat(now)
        for data in self.reader.poll(now):
            lines = data.splitlines(keepends=True)
            if self.limit is not None:
                lines = lines[:self.limit - self.shown]
            self._print(lines)
            self.shown += len(lines)
            if self.limit is not None and self.shown >= self.limit:
                self.out.flush()
                return False
        self.out.flush()
        if now >= self._report_at:
            self._notice()
            self._report_at = now + REPORT_S
        if now >= self._check_at:
            self._check_at = now + CHECK_S
            self._check(now)
        return True

    def _print(self, lines: list[bytes]) -> None:
        if self.fmt == "json":
            self.out.write(b"".join(lines))
            return
        self.out.write("".join(text_line(line) + "\n" for line in lines).encode("utf-8", "replace"))

    def _notice(self, final: bool = False) -> None:
        """On stderr, when more records matched that this tap did not show;
        at the end, once more if any were not shown."""
        unseen = self.reader.matched - self.shown
        if unseen <= (0 if final else self._reported):
            return
        self._reported = unseen
        late = self.reader.overrun
        why = f"the workers keep at most {RATE:,} a second per queue"
        if late:
            why += f"; {late:,} were overwritten before this tap read them"
        click.echo(f"tap: sampled: showing {self.shown:,} of {self.reader.matched:,} matching records ({why})",
                   err=True)

    def final_notice(self) -> None:
        if self.limit is None or self.shown < self.limit:
            self._notice(final=True)

    def _check(self, now: float) -> None:
        try:
            _appliance_pid(self.prefix)
        except InputError:
            raise LogCasterError(f"the appliance with file prefix {self.prefix!r} stopped "
                                 f"({self.shown:,} records shown)") from None
        if not self._hinted and now - self.started > 2 * STALE_S and not self.reader.attached:
            self._hinted = True
            click.echo("tap: no worker has answered yet (an appliance started by an older logcaster, or one "
                       "whose workers cannot write its run directory?)", err=True)


def _appliance_pid(prefix: str) -> int | None:
    """The pid of the running appliance with this file prefix (from its
    instance lock, there from start to end of a run; None while it is
    writing it), else an InputError."""
    path = prefix_lock_path(prefix)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"no running appliance with file prefix {prefix!r} ({path} does not exist)") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}", errno=exc.errno) from None
    pid = int(text) if text.strip().isdigit() else None
    if pid is not None and not process_alive(pid):
        raise InputError(f"the appliance with file prefix {prefix!r} is gone (pid {pid}; {path} is what it left)")
    return pid


def text_line(line: bytes) -> str:
    """A record's JSON line as `rx_time src_ip facility.severity host app[procid]: message`."""
    try:
        r = json.loads(line)
    except ValueError:
        return line.decode("utf-8", "replace").rstrip("\n")
    fac, sev = r.get("facility"), r.get("severity")
    pri = f"{FACILITIES[fac] if fac is not None and fac < len(FACILITIES) else fac}.{SEVERITIES[sev]}" \
        if sev is not None else "-"
    app = r.get("app_name") or "-"
    if r.get("procid"):
        app += f"[{r['procid']}]"
    msg = (r.get("message") or "").replace("\r", "\\r").replace("\n", "\\n")
    return f"{r.get('rx_time')} {r.get('src_ip')} {pri} {r.get('hostname') or '-'} {app}: {msg}"
