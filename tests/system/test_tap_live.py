"""`logcaster tap` against a running appliance (socket backend on
127.0.0.1, null sink) while the test sends known records over loopback:
filters show exactly the matching records, each in full; above the cap it
samples and says so; a second tap is refused; Ctrl-C ends a tap cleanly and
the workers drop their side rings; the capture's books still balance."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from runner import ROOT, Appliance

APPS = ("X", "Y", "Z", "W")
SEND_MAX = 200_000              # records one sender sends at most (a bound, not a target)
HANG = 60                       # seconds: an upper bound on hangs, not a timing assertion


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def record(i: int) -> dict:
    """What record i of the sender carries."""
    return {"app_name": APPS[i % 4], "severity": i % 8, "facility": 16 + i % 3, "hostname": f"h{i % 3}",
            "procid": str(i), "msgid": "M", "message": f"seq={i} code={i % 50}"}


def payload(i: int) -> bytes:
    r = record(i)
    return (f"<{r['facility'] * 8 + r['severity']}>1 2026-12-03T10:00:00Z {r['hostname']} {r['app_name']} "
            f"{r['procid']} {r['msgid']} - {r['message']}").encode()


class Sender:
    """Sends record 0, 1, 2, ... to the appliance until stopped (or SEND_MAX)."""

    def __init__(self, port: int, pace: int | None = 2):
        self.port, self.pace = port, pace       # pace: records per 10 ms; None: as fast as it can
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Sender":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(HANG)

    def _run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(SEND_MAX):
                if self._stop.is_set():
                    break
                s.sendto(payload(i), ("127.0.0.1", self.port))
                self.sent = i + 1
                if self.pace and i % self.pace == self.pace - 1:
                    time.sleep(0.01)


@pytest.fixture
def appliance(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    monkeypatch.setenv("LOGCASTER_RUN_DIR", str(run_dir))     # the appliance's and the taps'
    port = free_udp_port()
    cfg = {"capture": {"backend": "socket", "ports": ["127.0.0.1"], "udp_ports": [port]},
           "sinks": [{"type": "null"}], "dpdk": {"file_prefix": f"lctap{port}"}, "ring": {"size": "64MiB"},
           "stats_interval_s": 0.5}
    with Appliance(cfg, tmp_path) as app:
        app.wait_ready()
        app.port, app.prefix, app.run_dir = port, cfg["dpdk"]["file_prefix"], run_dir
        yield app
        run = app.stop()
    assert run.rc == 0, run.stderr
    assert run.stats["accounting_ok"], "the tap took nothing from the capture's books"
    assert not list(run_dir.glob("*.tap.*")), "no control file, no side ring left"


def tap(app, *args: str, timeout: float = HANG) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance.cli.main", "tap", "--prefix", app.prefix, *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def shown(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def seq(rec: dict) -> int:
    return int(rec["procid"])


def consecutive_matches(recs: list[dict], match, port: int) -> None:
    """The records are the matching ones the sender sent, each in full, none
    missing between the first and the last (no sampling at this rate)."""
    seqs = [seq(r) for r in recs]
    assert seqs == [i for i in range(seqs[0], seqs[-1] + 1) if match(record(i))], seqs
    for r in recs:
        want = record(seq(r))
        assert {k: r[k] for k in want} == want
        assert (r["src_ip"], r["dst_ip"], r["dst_port"], r["format"]) == ("127.0.0.1", "127.0.0.1", port, "rfc5424")
        assert r["timestamp"] == "2026-12-03T10:00:00.000000000Z" and r["flags"] == 0 and "raw" not in r


def test_filters_show_exactly_the_matching_records(appliance):
    with Sender(appliance.port):
        got = tap(appliance, "--limit", "5", "--app", "X", "--format", "json")
        assert got.returncode == 0, got.stderr
        recs = shown(got.stdout)
        assert len(recs) == 5 and {r["app_name"] for r in recs} == {"X"}
        consecutive_matches(recs, lambda r: r["app_name"] == "X", appliance.port)

        got = tap(appliance, "--limit", "12", "--grep", r"code=1[0-9]$", "--format", "json")
        assert got.returncode == 0, got.stderr
        recs = shown(got.stdout)
        assert len(recs) == 12 and all(re.search(r"code=1[0-9]$", r["message"]) for r in recs)
        consecutive_matches(recs, lambda r: re.search(r"code=1[0-9]$", r["message"]), appliance.port)

        got = tap(appliance, "--limit", "10", "--severity", "warning", "--format", "json")
        assert got.returncode == 0, got.stderr
        recs = shown(got.stdout)
        assert len(recs) == 10 and {r["severity"] for r in recs} <= {0, 1, 2, 3, 4}
        consecutive_matches(recs, lambda r: r["severity"] <= 4, appliance.port)

        got = tap(appliance, "--limit", "6", "--severity", "=err", "--host", "h1", "--format", "json")
        assert got.returncode == 0, got.stderr
        recs = shown(got.stdout)
        assert len(recs) == 6
        consecutive_matches(recs, lambda r: r["severity"] == 3 and r["hostname"] == "h1", appliance.port)

        got = tap(appliance, "--limit", "3", "--app", "Y")            # text
        assert got.returncode == 0, got.stderr
        lines = got.stdout.splitlines()
        assert len(lines) == 3
        for line in lines:
            m = re.fullmatch(r"\S+Z 127\.0\.0\.1 (local\d)\.(\w+) (h\d) Y\[(\d+)\]: seq=(\d+) code=(\d+)", line)
            assert m, line
            r = record(int(m[4]))
            assert (m[1], m[3], m[4]) == (f"local{r['facility'] - 16}", r["hostname"], m[5])
    assert "sampled" not in got.stderr


def test_above_the_cap_it_samples_and_says_so_and_ctrl_c_ends_it(appliance):
    proc = subprocess.Popen([sys.executable, "-m", "appliance.cli.main", "tap", "--prefix", appliance.prefix,
                             "--format", "json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = bytearray(), bytearray()
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, out)
    sel.register(proc.stderr, selectors.EVENT_READ, err)

    def drain(timeout: float) -> None:
        for key, _ in sel.select(timeout):
            key.data.extend(os.read(key.fd, 1 << 20))

    control = appliance.run_dir / f"{appliance.prefix}.tap.json"
    try:
        deadline = time.monotonic() + HANG
        while not control.exists() and time.monotonic() < deadline and proc.poll() is None:
            drain(0.05)
        assert control.exists(), f"no control file: {err.decode()}"

        second = tap(appliance, "--limit", "1")
        assert second.returncode == 2
        assert f"another logcaster tap (pid {proc.pid})" in second.stderr and "one tap at a time" in second.stderr

        with Sender(appliance.port, pace=None):     # far above 2,000 a second
            deadline = time.monotonic() + HANG
            while b"tap: sampled:" not in err and time.monotonic() < deadline:
                drain(0.5)
        assert b"tap: sampled:" in err, f"the tap said it sampled: {err.decode()}"
        assert list(appliance.run_dir.glob(f"{appliance.prefix}.tap.q*")), "the worker's side ring"
        proc.send_signal(signal.SIGINT)
        rest_out, rest_err = proc.communicate(timeout=HANG)
        out += rest_out
        err += rest_err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err and not control.exists()
    notices = [re.match(r"tap: sampled: showing ([\d,]+) of ([\d,]+) matching records \(the workers keep at most "
                        r"2,000 a second per queue", line) for line in err.decode().splitlines()]
    assert notices and all(notices), err.decode()
    counts = [(int(m[1].replace(",", "")), int(m[2].replace(",", ""))) for m in notices]
    assert all(n < total for n, total in counts) and counts == sorted(counts)
    recs = shown(out.decode())
    assert counts[-1][0] == len(recs), "the last notice (at Ctrl-C) counts what was shown"
    assert all(r == {**r, **record(seq(r))} for r in recs)
    assert [seq(r) for r in recs] == sorted(seq(r) for r in recs)
    deadline = time.monotonic() + HANG              # the worker sees the tap gone within half a second
    while list(appliance.run_dir.glob(f"{appliance.prefix}.tap.q*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list(appliance.run_dir.glob(f"{appliance.prefix}.tap.q*"))
