"""A sink on a read-only mount: `logcaster run` exits 2 with one line naming
the sink, the path and EROFS, before anything starts (appliance/preflight.py).
Root: the read-only tmpfs lives in a private mount namespace of the run
itself, so it vanishes with the process and no other process ever sees it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_run_with_a_sink_on_a_read_only_mount_exits_2_with_one_line(tmp_path):
    mnt = tmp_path / "ro"
    mnt.mkdir()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({
        "capture": {"backend": "socket", "ports": ["127.0.0.1"], "udp_ports": [port], "batch_size": 64},
        "sinks": [{"type": "null"}, {"type": "parquet", "path": str(mnt)}],
        "dpdk": {"file_prefix": f"lcro{os.getpid()}"},
    }))
    script = (f"mount -t tmpfs -o ro,size=1m logcaster-ro-test {mnt} && "
              f"exec {sys.executable} -m appliance.cli.main run -c {cfg} --duration 1")
    env = {**os.environ, "LOGCASTER_RUN_DIR": str(tmp_path / "run")}
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert f"sinks[1].path: cannot create a file in {mnt}: Read-only file system (EROFS)" in lines[0]
    assert not any(mnt.iterdir())                  # the mount is gone with the namespace
