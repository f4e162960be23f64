"""Checks before anything starts (appliance/preflight.py): a sink directory
or an output file that cannot be written is one line naming the key, the
path and the OS reason, and `logcaster run` exits 2 without starting."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from appliance import config, preflight
from appliance.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534


def cfg_of(*sinks: dict) -> config.Config:
    return config.from_dict({"capture": {"ports": ["net_pcap0"]}, "sinks": list(sinks)})


def test_missing_sink_directories_are_created_and_left_clean(tmp_path):
    deep, flat = tmp_path / "a" / "b" / "parquet", tmp_path / "jsonl"
    preflight.check_sinks(cfg_of({"type": "parquet", "path": str(deep)}, {"type": "jsonl", "path": str(flat)},
                                 {"type": "null", "path": str(tmp_path / "not-for-null")}))
    assert deep.is_dir() and flat.is_dir()
    assert list(deep.iterdir()) == [] and list(flat.iterdir()) == []   # the probe file is gone
    assert not (tmp_path / "not-for-null").exists()                    # a null sink writes nothing


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("x")
    return path


@pytest.mark.parametrize("where, message", [
    ("/proc/logcaster-x", "cannot create the directory /proc/logcaster-x: No such file or directory (ENOENT)"),
    ("{file}", "{file} is not a directory: Not a directory (ENOTDIR)"),
    ("{file}/sub", "cannot create the directory {file}/sub: Not a directory (ENOTDIR)"),
    ("/proc/self", "cannot create a file in /proc/self: "),
], ids=["proc", "regular-file", "under-a-file", "proc-dir"])
def test_an_unwritable_sink_path_names_the_sink_path_and_reason(a_file, where, message):
    where, message = where.format(file=a_file), message.format(file=a_file)
    good = {"type": "parquet", "path": str(a_file.parent / "good")}
    with pytest.raises(ConfigError) as err:
        preflight.check_sinks(cfg_of(good, {"type": "jsonl", "path": where}))
    assert str(err.value).startswith(f"sinks[1].path: {message}")


def _as_nobody(code: str) -> subprocess.CompletedProcess:
    """Python code as the unprivileged user (root passes every permission check)."""
    cmd = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"] + cmd
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_a_directory_without_write_permission_for_the_running_user():
    # Under /tmp, not pytest's tmp_path: the unprivileged user must reach it.
    base = Path(tempfile.mkdtemp(prefix="lc-preflight-", dir="/tmp"))
    try:
        base.chmod(0o755)
        locked = base / "store"
        locked.mkdir(mode=0o555)
        locked.chmod(0o555)
        out = _as_nobody(
            "from appliance import preflight\n"
            "from appliance.errors import ConfigError\n"
            f"try:\n    preflight.writable_dir(__import__('pathlib').Path({str(locked)!r}), 'sinks[0].path')\n"
            "except ConfigError as e:\n    print(e)\nelse:\n    print('writable')\n")
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"sinks[0].path: cannot create a file in {locked}: Permission denied (EACCES)"
    finally:
        shutil.rmtree(base)


# ---- output files (--stats-json) --------------------------------------------------

def test_an_output_file_that_can_be_created_is_not_left_behind(tmp_path, a_file):
    preflight.check_output_file(tmp_path / "stats.json", "--stats-json")
    assert not (tmp_path / "stats.json").exists()
    preflight.check_output_file(a_file, "--stats-json")     # an existing file is kept as it is
    assert a_file.read_text() == "x"


@pytest.mark.parametrize("where, message", [
    ("{dir}/missing/stats.json", "cannot create {dir}/missing/stats.json: No such file or directory (ENOENT)"),
    ("{dir}", "{dir} is a directory: Is a directory (EISDIR)"),
    ("/proc/logcaster-x.json", "cannot create /proc/logcaster-x.json: "),
], ids=["no-parent", "a-directory", "proc"])
def test_an_output_file_that_cannot_be_written(tmp_path, where, message):
    where, message = where.format(dir=tmp_path), message.format(dir=tmp_path)
    with pytest.raises(ConfigError) as err:
        preflight.check_output_file(Path(where), "--stats-json")
    assert str(err.value).startswith(f"--stats-json: {message}")


# ---- `logcaster run` ----------------------------------------------------------------

def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(tmp_path: Path, sink_path: str, *args: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({
        "capture": {"backend": "socket", "ports": ["127.0.0.1"], "udp_ports": [free_udp_port()],
                    "batch_size": 64},
        "sinks": [{"type": "parquet", "path": sink_path}],
        "dpdk": {"file_prefix": f"lcpre{os.getpid()}"},
    }))
    env = {**os.environ, "LOGCASTER_RUN_DIR": str(tmp_path / "run")}
    return subprocess.run([sys.executable, "-m", "appliance.cli.main", "run", "-c", str(cfg), "--duration", "1",
                           *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("sink_path, needle", [
    ("/proc/logcaster-x", "sinks[0].path: cannot create the directory /proc/logcaster-x: No such file or directory"),
    ("{file}", "sinks[0].path: {file} is not a directory"),
], ids=["proc", "regular-file"])
def test_run_with_an_unwritable_sink_exits_2_with_one_line_before_starting(tmp_path, a_file, sink_path, needle):
    proc = run(tmp_path, sink_path.format(file=a_file))
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""                                # nothing started
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle.format(file=a_file) in lines[0] and "Traceback" not in proc.stderr


def test_run_with_an_unwritable_stats_json_exits_2_with_one_line_before_starting(tmp_path):
    proc = run(tmp_path, str(tmp_path / "store"), "--stats-json", str(tmp_path / "missing" / "stats.json"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert f"--stats-json: cannot create {tmp_path}/missing/stats.json: No such file or directory" in lines[0]


def test_demo_with_an_unwritable_data_dir_exits_2_with_one_line_before_starting(a_file):
    proc = subprocess.run([sys.executable, "-m", "appliance.cli.main", "demo", "--data-dir", str(a_file / "data")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert f"--data-dir: cannot create the directory {a_file}/data/sample: Not a directory (ENOTDIR)" in lines[0]
