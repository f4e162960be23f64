"""The offline commands as a user runs them: `decode` (JSON lines and
Parquet, errors) and `query` over what it wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from appliance.sample import udp_frame, write_frames

ROOT = Path(__file__).resolve().parents[2]
N = 300


def logcaster(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance.cli.main", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def pcap(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "mixed.pcap"
    payloads = [f"<{13 + i % 8}>1 2026-03-14T09:26:53.{i:06d}Z host{i % 7} app - - - n={i}".encode()
                if i % 2 else f"<34>Mar 14 09:26:53 host{i % 7} sshd[{i}]: n={i}".encode() for i in range(N)]
    return write_frames(path, ((1_773_480_413 + i / 1000, udp_frame("198.18.1.2", p)) for i, p in enumerate(payloads)))


def test_decode_jsonl_on_stdout_with_a_summary_on_stderr(pcap):
    proc = logcaster("decode", str(pcap))
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == N and "raw" not in rows[0]
    assert rows[1]["format"] == "rfc5424" and rows[1]["timestamp"] == "2026-03-14T09:26:53.000001000Z"
    assert rows[0]["app_name"] == "sshd" and rows[0]["procid"] == "0"
    assert f"{N} packets, {N} records (rfc5424 {N // 2}, rfc3164 {N // 2}, raw 0)" in proc.stderr


def test_decode_raw_adds_the_payload_as_base64(pcap, tmp_path):
    out = tmp_path / "out.jsonl"
    assert logcaster("decode", str(pcap), "--raw", "-o", str(out), "-q").returncode == 0
    import base64

    first = json.loads(out.read_text().splitlines()[0])
    assert base64.b64decode(first["raw"]).startswith(b"<34>Mar 14 09:26:53 host0 sshd[0]")


def test_decode_parquet_then_query(pcap, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    proc = logcaster("decode", str(pcap), "--format", "parquet", "-o", str(store / "x.parquet"), "-q")
    assert proc.returncode == 0, proc.stderr
    assert pq.read_table(store / "x.parquet").num_rows == N
    q = logcaster("query", "--data-dir", str(store), "--format", "json",
                  "SELECT format, count(*) AS n FROM logs GROUP BY 1 ORDER BY 1")
    assert q.returncode == 0, q.stderr
    assert [json.loads(line) for line in q.stdout.splitlines()] == [{"format": "rfc3164", "n": N // 2},
                                                                    {"format": "rfc5424", "n": N // 2}]
    bad = logcaster("query", "--data-dir", str(store), "SELEC nothing")
    assert bad.returncode == 2 and "syntax error" in bad.stderr


@pytest.mark.parametrize("content, needle", [
    (None, "no such file"),
    (b"", "cannot read as pcap"),
    (b"this is not a capture file at all" * 10, "cannot read as pcap"),
])
def test_decode_bad_input_is_one_line_and_exit_3(tmp_path, content, needle):
    path = tmp_path / "input.pcap"
    if content is not None:
        path.write_bytes(content)
    proc = logcaster("decode", str(path))
    assert proc.returncode == 3
    assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_decode_parquet_needs_an_output_file(pcap):
    proc = logcaster("decode", str(pcap), "--format", "parquet")
    assert proc.returncode == 2 and "needs -o/--output" in proc.stderr


def test_query_without_a_store_says_so(tmp_path):
    proc = logcaster("query", "--data-dir", str(tmp_path), "SELECT 1")
    assert proc.returncode == 3 and "no Parquet files" in proc.stderr


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("where, reason", [
    ("/proc/logcaster-x/out", "No such file or directory (ENOENT)"),
    ("{tmp}/missing/out", "No such file or directory (ENOENT)"),
], ids=["proc", "no-parent"])
def test_decode_to_an_output_that_cannot_be_created_is_one_line_and_exit_2(pcap, tmp_path, fmt, where, reason):
    where = where.format(tmp=tmp_path)
    proc = logcaster("decode", str(pcap), "--format", fmt, "-o", where)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert f"-o/--output: cannot create {where}: {reason}" in lines[0]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_decode_to_an_output_that_fills_up_is_one_line_and_exit_1(pcap, fmt):
    proc = logcaster("decode", str(pcap), "--format", fmt, "-o", "/dev/full")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "-o/--output: cannot write /dev/full: No space left on device (ENOSPC)" in lines[0]


def test_decode_reports_a_bad_input_before_creating_the_output(tmp_path):
    out = tmp_path / "out.jsonl"
    proc = logcaster("decode", str(tmp_path / "missing.pcap"), "-o", str(out))
    assert proc.returncode == 3 and not out.exists()


def _raiser(exc):
    def run():
        raise exc
    return run


@pytest.mark.parametrize("make, code", [
    (lambda: __import__("dpdk_shim").ShimUnavailable("dpdk_shim._xsk is not built"), 4),
    (lambda: __import__("ebpf.loader", fromlist=["XdpError"]).XdpError(
        "loading lc_xdp_syslog into the kernel failed", errno=1, category="environment"), 4),
    (lambda: __import__("ebpf.loader", fromlist=["XdpError"]).XdpError("the verifier said no"), 1),
    (lambda: __import__("hugepages").HugepageUsageError("hugepage size 3X"), 2),
    (lambda: __import__("hugepages").HugepageError("writing nr_hugepages", errno=13), 4),
    (lambda: __import__("appliance.errors", fromlist=["InputError"]).InputError("x.pcap: no such file"), 3),
    (lambda: __import__("appliance.errors", fromlist=["ConfigError"]).ConfigError("capture.ports: missing"), 2),
    (lambda: __import__("appliance.errors", fromlist=["ShimError"]).ShimError("reading ring", errno=5), 1),
])
def test_exit_code_follows_the_cause_not_the_module(monkeypatch, capsys, make, code):
    """The CLI maps an error's category, and only that, to the exit code:
    one line on stderr, no traceback."""
    import click

    from appliance.cli import main as cli_main

    exc = make()
    monkeypatch.setattr(cli_main, "cli", click.Command("cli", callback=_raiser(exc)))
    assert cli_main.main([]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(exc) in err and "Traceback" not in err
