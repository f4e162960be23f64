"""Helpers for system tests that capture real traffic: network namespaces,
veth pairs, syslog payloads with unique ids, and the appliance run as a
subprocess (`logcaster run`, optionally inside a namespace).

Everything here cleans up after itself in `finally` blocks: namespaces are
deleted (which also removes the veth and TAP devices in them), and the
appliance process group (the capture process and its workers, all started
here) is terminated, then killed, if a test leaves it running.

Only interfaces these helpers create are touched, in namespaces they create;
addresses come from 198.18.0.0/15 (IPv4) and 2001:db8:18::/64 (IPv6).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
import json
import os
import queue
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
IFNAMSIZ = 15                      # interface names: at most 15 characters
READY_TIMEOUT_S = 45.0             # EAL + ports + workers importing pyarrow
STOP_TIMEOUT_S = 30.0
LCID = re.compile(r"lcid=(\d+)")   # the unique id every test payload carries

_counter = itertools.count()


@dataclass(frozen=True)
class Link:
    """A veth pair between a sender namespace and a capture namespace."""

    sender_ns: str
    capture_ns: str
    sender_if: str
    capture_if: str


def unique_name(prefix: str) -> str:
    """`prefix` + pid + a per-process counter: unique on the machine while
    this process runs, and short enough for an interface name."""
    name = f"{prefix}{os.getpid()}x{next(_counter)}"
    if len(name) > IFNAMSIZ:
        name = f"{prefix}{os.getpid() % 10**6}x{next(_counter) % 100}"
    assert len(name) <= IFNAMSIZ, name
    return name


def ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`ip [-n ns] args...`; raises with ip's own message when it fails (check)."""
    cmd = ["ip"] + (["-n", ns] if ns else []) + list(args)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def link_exists(name: str, ns: str | None = None) -> bool:
    return ip("link", "show", "dev", name, ns=ns, check=False).returncode == 0


def link_up(name: str, ns: str | None = None) -> bool:
    info = json.loads(ip("-j", "link", "show", "dev", name, ns=ns).stdout)
    return "UP" in info[0]["flags"]


def link_info(name: str, ns: str | None = None) -> str:
    """`ip -s -d link show` of a device, for assertion messages."""
    res = ip("-s", "-d", "link", "show", "dev", name, ns=ns, check=False)
    return (res.stdout or res.stderr).strip()


def mac_of(name: str, ns: str | None = None) -> str:
    info = json.loads(ip("-j", "link", "show", "dev", name, ns=ns).stdout)
    return info[0]["address"]


def require_tools(*tools: str) -> None:
    import pytest

    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} on PATH")


@contextmanager
def netns(name: str) -> Iterator[str]:
    """A network namespace with `lo` up; deleted afterwards (its devices with it)."""
    if ip("netns", "list").stdout.split().count(name):
        raise RuntimeError(f"network namespace {name} exists already")
    ip("netns", "add", name)
    try:
        ip("link", "set", "lo", "up", ns=name)
        yield name
    finally:
        ip("netns", "del", name, check=False)


def netns_exists(name: str) -> bool:
    return name in [line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line.strip()]


@contextmanager
def veth_pair(a: str, ns_a: str, b: str, ns_b: str) -> Iterator[tuple[str, str]]:
    """veth `a` in namespace `ns_a`, its peer `b` in `ns_b`, both up. Removed
    afterwards (deleting either end removes both)."""
    ip("link", "add", a, "netns", ns_a, "type", "veth", "peer", "name", b, "netns", ns_b)
    try:
        ip("link", "set", a, "up", ns=ns_a)
        ip("link", "set", b, "up", ns=ns_b)
        yield a, b
    finally:
        if link_exists(a, ns_a):
            ip("link", "del", a, ns=ns_a, check=False)


# ---- payloads ---------------------------------------------------------------

def syslog_payloads(count: int, *, with_raw: bool = True) -> list[bytes]:
    """`count` syslog payloads, each with a unique `lcid=<n>`: RFC 5424 (with and
    without structured data), RFC 3164 and, with_raw, non-syslog text."""
    kinds = 4 if with_raw else 3
    out = []
    for i in range(count):
        fac, sev = i % 24, i % 8
        pri = fac * 8 + sev
        host = f"host-{i % 37:02d}"
        kind = i % kinds
        if kind == 0:
            out.append(f"<{pri}>1 2026-03-14T09:26:{i % 60:02d}.{i % 1000:03d}Z {host} app{i % 5} {1000 + i} "
                       f"ID{i % 9} - lcid={i} user logged in".encode())
        elif kind == 1:
            out.append(f'<{pri}>1 2026-03-14T10:00:00.000001+01:00 {host} sshd - - [meta@32473 seq="{i}"] '
                       f"lcid={i} Accepted publickey for alice".encode())
        elif kind == 2:
            out.append(f"<{pri}>Mar 14 09:26:{i % 60:02d} {host} CRON[{200 + i}]: lcid={i} (root) CMD (true)".encode())
        else:
            out.append(f"plain text, no syslog header lcid={i}".encode())
    return out


def lcid(record: dict) -> int:
    m = LCID.search(record.get("message") or "")
    assert m, f"record without an lcid: {record}"
    return int(m.group(1))


# ---- pcap files and the offline decoder --------------------------------------

def write_pcap(path: Path, frames: Iterable[bytes], time_ns: int | None = None) -> Path:
    """Classic pcap, nanosecond timestamps (all `time_ns`, default now: RFC 3164
    year inference then matches what a live capture infers)."""
    t = time.time_ns() if time_ns is None else time_ns
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1))
        for i, frame in enumerate(frames):
            sec, ns = divmod(t + i, 10**9)
            f.write(struct.pack("<IIII", sec, ns, len(frame), len(frame)))
            f.write(frame)
    return path


def decode_pcap(path: Path, *ports: int) -> list[dict]:
    """`logcaster decode` of a pcap: the records as JSON objects."""
    cmd = [sys.executable, "-m", "appliance.cli.main", "decode", "-q", str(path)]
    for p in ports:
        cmd += ["--port", str(p)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert res.returncode == 0, f"logcaster decode failed ({res.returncode}): {res.stderr}"
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


def assert_delivered_once(records: list[dict], expected: dict[int, dict], context: str = "") -> None:
    """Every expected record (by lcid) delivered exactly once, field for field
    what the offline decode gives, rx_time aside (capture time vs pcap time)."""
    ids = [lcid(r) for r in records]
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} records delivered more than once"
    missing = sorted(set(expected) - set(ids))
    assert not missing, f"{len(missing)} of {len(expected)} never delivered, e.g. ids {missing[:10]}{context}"
    assert len(records) == len(expected)
    for rec in records:
        want, got = dict(expected[lcid(rec)]), dict(rec)
        want.pop("rx_time"), got.pop("rx_time")
        assert got == want


def read_jsonl_sink(root: Path) -> list[dict]:
    """Every record a jsonl sink wrote (finished files and, if any, part files)."""
    files = sorted(root.glob("date=*/hour=*/*.jsonl")) + sorted(root.glob("date=*/hour=*/.*.jsonl.part"))
    records = []
    for f in files:
        records += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return records


# ---- the appliance as a subprocess -------------------------------------------

class Appliance:
    """`logcaster run` in a subprocess (inside namespace `ns` if given), its
    output read line by line on a thread. Use as a context manager: on exit a
    process still running is terminated (SIGTERM, then SIGKILL to its process
    group: the capture process and its workers)."""

    def __init__(self, config: dict, workdir: Path, *, ns: str | None = None):
        self.config = config
        self.workdir = workdir
        self.ns = ns
        self.config_path = workdir / "logcaster.yaml"
        self.stats_path = workdir / "stats.json"
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> "Appliance":
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        cmd = [sys.executable, "-m", "appliance.cli.main", "run", "-c", str(self.config_path),
               "--stats-json", str(self.stats_path)]
        if self.ns:
            cmd = ["ip", "netns", "exec", self.ns] + cmd
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True, errors="replace", start_new_session=True)
        self._reader = threading.Thread(target=self._read, name="appliance-output", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        """The first new output line matching `pattern` (re.search); fails
        when the process ends or `timeout` passes first."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r} after {timeout:.0f} s:\n{self.output}")
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self._queue.put(None)  # later waits see the end too
                raise AssertionError(f"appliance ended (exit {self.proc.wait()}) before a line matching "
                                     f"{pattern!r}:\n{self.output}")
            m = rx.search(line)
            if m:
                return m

    def wait_ready(self) -> None:
        self.wait_for(r"^capturing: ", READY_TIMEOUT_S)

    def wait_delivered(self, count: int, timeout: float) -> int:
        """Wait for a periodic stats line (set stats_interval_s small) showing
        at least `count` delivered records; returns the last number seen, which
        is less than `count` when `timeout` passed first (the test's own
        assertions then say what is missing)."""
        deadline = time.monotonic() + timeout
        delivered = -1
        while delivered < count:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                m = self.wait_for(r"^stats: .* delivered ([\d,]+)", left)
            except AssertionError:
                if self.proc.poll() is not None:
                    raise
                break
            delivered = int(m.group(1).replace(",", ""))
        return delivered

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then the exit code (the appliance drains its rings first)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"appliance still running {timeout:.0f} s after SIGTERM:\n{self.output}") from None
        if self._reader is not None:
            self._reader.join(10)
        return rc

    def stats(self) -> dict:
        assert self.stats_path.exists(), f"no stats JSON written:\n{self.output}"
        return json.loads(self.stats_path.read_text())

    def __exit__(self, *exc) -> None:
        proc = self.proc
        if proc is None:
            return
        left_running = proc.poll() is None
        try:
            if left_running:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            # The whole group is ours (start_new_session): workers a capture
            # process that was left running or failed leaves behind go too.
            if left_running or proc.returncode != 0:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()
            if self._reader is not None:
                self._reader.join(10)
            if proc.stdout is not None and (self._reader is None or not self._reader.is_alive()):
                proc.stdout.close()


def dpdk_config(port: dict, sink_dir: Path, file_prefix: str, **capture) -> dict:
    """An appliance config: one DPDK port, UDP 5514 only, a jsonl sink,
    stats every 0.2 s (tests wait on the stats lines), in-memory EAL with a
    file prefix of the test's own; the default ring and batch sizes."""
    return {
        "capture": {"backend": "dpdk", "udp_ports": [5514], "ports": [port], **capture},
        "dpdk": {"in_memory": True, "file_prefix": file_prefix},
        "ring": {"dir": "/dev/shm"},
        "sinks": [{"type": "jsonl", "path": str(sink_dir)}],
        "stats_interval_s": 0.2,
    }
