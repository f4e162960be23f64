"""The tap (appliance/tap.py): the side ring (slots, wrap-around, a reader
that fell behind), filter semantics on a small table, the sampling cap, the
control file (one tap at a time, stale ones ignored and replaced) and a
worker's TapWriter end to end over real ring takes, its JSON the JSON of
`logcaster decode`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pytest

from appliance import paths
from appliance.batch import SCHEMA
from appliance.cli.main import main
from appliance.cli.tap_cmd import text_line
from appliance.decoder import Decoder
from appliance.errors import ConfigError
from appliance.jsonl import JsonlEncoder
from appliance.ring import Ring, batch_max
from appliance.tap import (SLOT_HDR, STALE_S, Sampler, SideRing, TapBusy, TapControl, TapFilter, TapReader,
                           TapWriter, parse_severity, read_control, spread)
from helpers import udp_frame

PREFIX = "taptest"
CAP, AVG = 64, 128


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    d = tmp_path / "run"
    d.mkdir()
    monkeypatch.setattr(paths, "RUN_DIR", d)
    return d


# -- side ring -------------------------------------------------------------------


def _publish(ring: SideRing, n: int, first_line: int = 0) -> None:
    """n slots of one line each, totals counting every line."""
    for i in range(first_line, first_line + n):
        ring.publish(f'{{"n":{i}}}\n'.encode(), 1, matched=i + 1, written=i + 1)


def test_slots_written_are_read_once_in_order(tmp_path):
    path = tmp_path / "side"
    w = SideRing.create(path, session=7, slots=4, slot_bytes=1024)
    assert not list(tmp_path.glob("*.tmp")), "made under a temporary name, renamed into place"
    r = SideRing.attach(path)
    assert (r.session, r.slots, r.slot_bytes, r.writer) == (7, 4, 1024, os.getpid())
    assert r.read(0) == ([], 0)
    _publish(w, 3)
    slots, last = r.read(0)
    assert [s.seq for s in slots] == [1, 2, 3] and last == 3
    assert [s.data for s in slots] == [b'{"n":0}\n', b'{"n":1}\n', b'{"n":2}\n']
    assert [(s.matched, s.written, s.lines) for s in slots] == [(1, 1, 1), (2, 2, 1), (3, 3, 1)]
    assert r.read(last) == ([], 3)
    w.set_matched(99)
    assert r.matched == 99
    r.close()
    w.close(unlink=True)
    assert not path.exists()


def test_wrap_around_keeps_the_newest_slots_and_a_reader_behind_skips_the_rest(tmp_path):
    path = tmp_path / "side"
    w = SideRing.create(path, session=1, slots=4, slot_bytes=256)
    r = SideRing.attach(path)
    _publish(w, 2)
    slots, last = r.read(0)
    assert [s.seq for s in slots] == [1, 2]
    _publish(w, 9, first_line=2)                    # seqs 3..11: 3..7 are overwritten before the reader looks
    slots, last = r.read(last)
    assert [s.seq for s in slots] == [8, 9, 10, 11] and last == 11
    assert [json.loads(s.data)["n"] for s in slots] == [7, 8, 9, 10]
    for lap in range(5):                            # many laps, read each time: nothing lost
        _publish(w, 3, first_line=11 + 3 * lap)
        slots, last = r.read(last)
        assert [s.seq for s in slots] == [12 + 3 * lap, 13 + 3 * lap, 14 + 3 * lap]


def test_a_slot_overwritten_while_read_is_skipped(tmp_path, monkeypatch):
    path = tmp_path / "side"
    w = SideRing.create(path, session=1, slots=2, slot_bytes=256)
    r = SideRing.attach(path)
    _publish(w, 2)
    copy = r._copy

    def lapped_during_the_first_copy(at, n):
        data = copy(at, n)
        if not w.seq > 2:
            _publish(w, 1, first_line=2)        # seq 3 takes slot 1's place while it is copied
        return data

    monkeypatch.setattr(r, "_copy", lapped_during_the_first_copy)
    slots, last = r.read(0)
    assert [s.seq for s in slots] == [2] and last == 2, "slot 1 changed while it was copied"
    slots, last = r.read(last)
    assert [(s.seq, s.data) for s in slots] == [(3, b'{"n":2}\n')]


def test_attach_refuses_what_is_not_a_side_ring(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"x" * 8192)
    with pytest.raises(ValueError, match="not a tap side ring"):
        SideRing.attach(bad)
    short = tmp_path / "short"
    short.write_bytes(b"x")
    with pytest.raises(ValueError, match="too short"):
        SideRing.attach(short)


# -- filter ----------------------------------------------------------------------


def _table() -> pa.Table:
    rows = {
        "hostname": ["h1", "h2", None, "h1", "h1", "h2"],
        "app_name": ["sshd", "sshd", "sshd", None, "cron", "cron"],
        "severity": [0, 4, 3, 6, None, 5],
        "message": ["link up", "link down", "Failed password", "x", "link up again", None],
    }
    chunks = [{k: v[:3] for k, v in rows.items()}, {k: v[3:] for k, v in rows.items()}]
    schema = pa.schema([SCHEMA.field(k) for k in rows])
    return pa.Table.from_batches([pa.RecordBatch.from_pydict(c, schema=schema) for c in chunks])


@pytest.mark.parametrize("flt, rows", [
    (TapFilter(), [0, 1, 2, 3, 4, 5]),
    (TapFilter(host="h1"), [0, 3, 4]),
    (TapFilter(host="H1"), []),                             # exact, case and all
    (TapFilter(app="sshd"), [0, 1, 2]),
    (TapFilter(app="ssh"), []),
    (TapFilter(severity=4), [0, 1, 2]),                     # warning and more severe; null PRI never
    (TapFilter(severity=4, severity_exact=True), [1]),
    (TapFilter(severity=7), [0, 1, 2, 3, 5]),
    (TapFilter(grep="link"), [0, 1, 4]),                    # unanchored; null message never
    (TapFilter(grep="^link (up|down)$"), [0, 1]),
    (TapFilter(grep="(?i)failed"), [2]),
    (TapFilter(host="h1", app="sshd"), [0]),                # every condition
    (TapFilter(host="h1", grep="link", severity=3), [0]),
    (TapFilter(app="cron", severity=5, severity_exact=True), [5]),
])
def test_filter_rows(flt, rows):
    got = flt.rows(_table())
    assert got.dtype == np.int64 and got.tolist() == rows


def test_filter_survives_its_trip_through_the_control_file():
    flt = TapFilter(host="h", app="a", severity=3, severity_exact=True, grep="x+")
    assert TapFilter.from_dict(json.loads(json.dumps(flt.to_dict()))) == flt


def test_a_regex_re2_refuses_is_a_config_error():
    TapFilter(grep="ok (a|b)").check()
    with pytest.raises(ConfigError, match="--grep"):
        TapFilter(grep="(unclosed").check()


@pytest.mark.parametrize("text, want", [
    ("warning", (4, False)), ("WARN", (4, False)), ("4", (4, False)), ("=err", (3, True)), ("error", (3, False)),
    ("=0", (0, True)), ("debug", (7, False)), ("emerg", (0, False)),
])
def test_parse_severity(text, want):
    assert parse_severity(text) == want


@pytest.mark.parametrize("text", ["8", "loud", "=", "-1", ""])
def test_parse_severity_refuses(text):
    with pytest.raises(ConfigError, match="--severity"):
        parse_severity(text)


# -- sampling --------------------------------------------------------------------


def test_the_bucket_grants_at_most_burst_plus_rate_times_time():
    s = Sampler(rate=100, burst=10)
    granted, now = 0, 1000.0
    for step in range(1000):                        # 10 s of takes every 10 ms, each asking for 50
        granted += s.take(50, now + step * 0.01)
    elapsed = 999 * 0.01
    assert granted <= 10 + 100 * elapsed
    assert granted >= 100 * elapsed - 1             # saturated: it does grant the rate
    assert Sampler(rate=100, burst=10).take(3, 0.0) == 3     # below the cap: everything


def test_spread_picks_evenly_and_keeps_order():
    rows = np.arange(100, 200, dtype=np.int64)
    assert spread(rows, 200) is rows
    picked = spread(rows, 10)
    assert picked.tolist() == list(range(100, 200, 10))
    assert len(set(spread(rows, 99).tolist())) == 99
    assert spread(rows, 0).tolist() == []


# -- control file ----------------------------------------------------------------


def test_one_tap_at_a_time_and_the_file_goes_with_it(run_dir):
    path = paths.tap_control_path(PREFIX)
    with TapControl(PREFIX, TapFilter(app="x")) as ctl:
        got = read_control(path)
        assert got is not None and (got.pid, got.session, got.filter) == (os.getpid(), ctl.session, TapFilter(app="x"))
        assert path.stat().st_mode & 0o777 == 0o644, "the workers read it whoever runs the tap"
        with pytest.raises(TapBusy, match=f"another logcaster tap \\(pid {os.getpid()}\\).*one tap at a time"):
            TapControl(PREFIX, TapFilter()).claim()
        assert read_control(path).session == ctl.session, "the refused tap changed nothing"
    assert not path.exists()


def test_a_stale_or_dead_control_file_is_no_tap_and_is_replaced(run_dir):
    path = paths.tap_control_path(PREFIX)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path.write_text(json.dumps({"pid": int(dead.stdout), "session": 5, "filter": {}}))
    assert read_control(path) is None, "its pid is gone"
    path.write_text(json.dumps({"pid": os.getpid(), "session": 5, "filter": {}}))
    assert read_control(path).session == 5
    old = time.time() - STALE_S - 1
    os.utime(path, (old, old))
    assert read_control(path) is None, "no heartbeat"
    path.write_text('{"pid": ')
    assert read_control(path) is None, "half written"
    with TapControl(PREFIX, TapFilter()) as ctl:      # nobody holds its lock: taken over
        assert read_control(path).session == ctl.session != 5
        old = time.time() - 1
        os.utime(path, (old, old))
        ctl.heartbeat(time.monotonic() + 1)
        assert time.time() - path.stat().st_mtime < 1
    assert not path.exists()


# -- the worker's side, over real takes ---------------------------------------------


def _payload(i: int, app: str = "app", sev: int = 6, host: str = "h") -> bytes:
    return f"<{8 + sev}>1 2026-01-02T03:04:05Z {host} {app} {i} - - message {i}".encode()


@pytest.fixture
def ring(tmp_path):
    with Ring.create(tmp_path / "ring-q0", size=64 * batch_max(CAP, AVG), capacity=CAP, avg_payload=AVG) as r:
        yield r


def _take(ring: Ring, batches: list[list[bytes]]):
    """Publish each list of payloads as one batch; take them all."""
    dec = Decoder()
    for payloads in batches:
        slot = ring.acquire()
        assert dec.decode_frames([udp_frame(p) for p in payloads], slot) == len(payloads)
        ring.publish()
    taken = ring.take(timeout=0)
    assert taken is not None and taken.records == sum(map(len, batches))
    return taken


def _lines(reader: TapReader) -> list[dict]:
    return [json.loads(line) for data in reader.poll(time.monotonic() + 10) for line in data.splitlines()]


def test_no_tap_no_side_ring_and_a_tap_gets_exactly_its_matches(run_dir, ring):
    w = TapWriter(PREFIX, 0)
    w.poll(0.0)
    taken = _take(ring, [[_payload(i, app="x" if i % 3 == 0 else "y") for i in range(30)]])
    w.offer(taken, 0.0)
    assert w.ring is None and not list(run_dir.iterdir()), "no tap: nothing made, nothing written"
    ring.release(taken.end)
    with TapControl(PREFIX, TapFilter(app="x")) as ctl:
        reader = TapReader(PREFIX, ctl.session)
        w.poll(0.1)
        assert w.ring is None, "the control file is looked at every CHECK_S, not more"
        w.poll(1.0)
        assert w.ring is not None and paths.tap_ring_path(PREFIX, 0).exists()
        taken = _take(ring, [[_payload(i, app="x" if i % 3 == 0 else "y") for i in range(30)],
                             [_payload(100 + i, app="x") for i in range(5)]])
        w.offer(taken, 1.0)
        got = _lines(reader)
        assert [r["message"] for r in got] == [f"message {i}" for i in range(0, 30, 3)] + \
            [f"message {100 + i}" for i in range(5)]
        assert {r["app_name"] for r in got} == {"x"} and "raw" not in got[0]
        assert reader.matched == 15 and reader.overrun == 0 and reader.attached == 1
        # The very JSON of `logcaster decode` (appliance/jsonl.py), row for row.
        enc = JsonlEncoder()
        want = b"".join(bytes(c) for c in enc.chunks(taken.hdrs[1]))
        assert [json.loads(x) for x in want.splitlines()] == got[-5:]
        assert text_line(json.dumps(got[0]).encode()) == \
            f"{got[0]['rx_time']} {got[0]['src_ip']} user.info h x[0]: message 0"
        ring.release(taken.end)
    w.poll(2.0)
    assert w.ring is None and not paths.tap_ring_path(PREFIX, 0).exists(), "the tap went: so did the side ring"
    w.close()


def test_the_cap_samples_evenly_and_the_reader_is_told(run_dir, ring):
    w = TapWriter(PREFIX, 0, rate=100, burst=20)
    with TapControl(PREFIX, TapFilter(severity=3)) as ctl:
        reader = TapReader(PREFIX, ctl.session)
        w.poll(0.0)
        shown = matched = 0
        for step in range(20):                      # 2 s of takes every 100 ms, 40 matching in each
            batch = [_payload(step * 100 + i, sev=i % 2 * 3 + (i % 4 == 1) * 4) for i in range(CAP)]
            taken = _take(ring, [batch])
            w.offer(taken, step * 0.1)
            matched += sum(1 for i in range(CAP) if i % 2 * 3 + (i % 4 == 1) * 4 <= 3)
            got = _lines(reader)
            shown += len(got)
            assert all(r["severity"] <= 3 for r in got)
            ring.release(taken.end)
        assert reader.matched == w.matched == matched == 20 * 48
        assert shown == w.written <= 20 + 100 * 1.9 and shown >= 100 * 1.9
        assert reader.overrun == 0
    w.close()


def test_a_reader_that_fell_behind_counts_what_it_missed(run_dir, ring):
    w = TapWriter(PREFIX, 0, slots=4)
    with TapControl(PREFIX, TapFilter()) as ctl:
        reader = TapReader(PREFIX, ctl.session)
        w.poll(0.0)
        assert _lines(reader) == []
        for i in range(10):                         # one slot each, the reader does not look
            taken = _take(ring, [[_payload(i)]])
            w.offer(taken, i * 1.0)
            ring.release(taken.end)
        got = _lines(reader)
        assert [r["message"] for r in got] == [f"message {i}" for i in range(6, 10)]
        assert reader.matched == 10 and reader.overrun == 6
    w.close()


def test_lines_longer_than_a_slot_are_left_out_and_the_rest_split_over_slots(run_dir, tmp_path):
    slot = 2048
    with Ring.create(tmp_path / "big", size=64 * batch_max(8, 4096), capacity=8, avg_payload=4096) as ring:
        w = TapWriter(PREFIX, 0, slot_bytes=slot + SLOT_HDR)
        with TapControl(PREFIX, TapFilter()) as ctl:
            reader = TapReader(PREFIX, ctl.session)
            w.poll(0.0)
            sizes = [100, 3000, 600, 600, 600, 100]     # JSON of the 3000-byte message cannot fit a slot
            taken = _take(ring, [[_payload(i)[:-1] + b"m" * n for i, n in enumerate(sizes)]])
            w.offer(taken, 0.0)
            slots, _ = SideRing.attach(paths.tap_ring_path(PREFIX, 0)).read(0)
            assert len(slots) > 1 and all(len(s.data) <= slot and s.data.endswith(b"\n") for s in slots)
            assert sum(s.lines for s in slots) == 5
            got = _lines(reader)
            assert [r["procid"] for r in got] == ["0", "2", "3", "4", "5"]
            assert reader.matched == 6 and w.written == 5
        w.close()


def test_a_killed_workers_side_ring_is_removed_by_its_successor(run_dir):
    path = paths.tap_ring_path(PREFIX, 3)
    SideRing.create(path, session=1, slots=2, slot_bytes=256)
    TapWriter(PREFIX, 3)
    assert not path.exists()


# -- the command, without an appliance ----------------------------------------------


def test_no_running_appliance_is_an_input_error(run_dir, capsys):
    assert main(["tap", "--prefix", "nosuch"]) == 3
    assert capsys.readouterr().err == (f"logcaster: no running appliance with file prefix 'nosuch' "
                                       f"({run_dir / 'nosuch.lock'} does not exist)\n")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run_dir / "gone.lock").write_text(dead.stdout)
    assert main(["tap", "--prefix", "gone"]) == 3
    assert f"the appliance with file prefix 'gone' is gone (pid {int(dead.stdout)}" in capsys.readouterr().err
    assert not paths.tap_control_path("gone").exists(), "nothing asked of a gone appliance"


@pytest.mark.parametrize("args, msg", [
    (["--severity", "loud"], "--severity: 'loud' is not a severity"),
    (["--grep", "a(b"], "--grep: 'a(b'"),
])
def test_bad_filters_are_refused_before_anything(run_dir, capsys, args, msg):
    assert main(["tap", "--prefix", "nosuch", *args]) == 2
    assert msg in capsys.readouterr().err


def test_the_reader_follows_a_side_ring_replaced_and_ignores_another_taps(run_dir):
    path = paths.tap_ring_path(PREFIX, 0)
    other = SideRing.create(path, session=1, slots=4, slot_bytes=256)
    _publish(other, 2)
    reader = TapReader(PREFIX, session=2)
    assert reader.poll(10.0) == [] and reader.attached == 0, "another tap's ring: not read"
    other.close(unlink=True)
    mine = SideRing.create(path, session=2, slots=4, slot_bytes=256)     # the inode number may come back
    _publish(mine, 2)
    assert reader.poll(10.1) == [b'{"n":0}\n', b'{"n":1}\n'] and reader.attached == 1
    mine.close(unlink=True)                             # the same worker again (a late heartbeat): totals go on
    again = SideRing.create(path, session=2, slots=4, slot_bytes=256)
    _publish(again, 1, first_line=2)
    assert reader.poll(10.2) == [b'{"n":2}\n'] and reader.overrun == 0
    again.close(unlink=True)
    assert reader.poll(10.3) == [] and reader.attached == 0
