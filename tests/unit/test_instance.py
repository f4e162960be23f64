"""One owner per file prefix and sink directory (appliance/instance.py): a
second lock fails naming the resource and the holder's PID, a lock dies with
its holder, and a second `logcaster run` exits 2 with one line."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from appliance import config
from appliance.errors import ConfigError, EnvironmentProblem
from appliance.instance import SINK_LOCK, InstanceBusy, InstanceLock, prefix_lock_path

ROOT = Path(__file__).resolve().parents[2]


def cfg_of(prefix: str, *sink_dirs: Path, kind: str = "parquet") -> config.Config:
    return config.from_dict({"capture": {"backend": "socket", "ports": ["127.0.0.1"]},
                             "sinks": [{"type": kind, "path": str(d)} for d in sink_dirs] or ["null"],
                             "dpdk": {"file_prefix": prefix}})


def test_a_second_lock_on_the_same_prefix_names_the_holder(tmp_path):
    run_dir = tmp_path / "run"
    with InstanceLock(cfg_of("p1"), run_dir=run_dir):
        lock = prefix_lock_path("p1", run_dir)
        assert lock.read_text() == f"{os.getpid()}\n"
        with pytest.raises(InstanceBusy) as err:
            InstanceLock(cfg_of("p1"), run_dir=run_dir).acquire()
        assert err.value.holder == os.getpid()
        assert str(err.value).startswith(f"dpdk.file_prefix 'p1' belongs to another running appliance "
                                         f"(pid {os.getpid()}; lock {lock})")
        with InstanceLock(cfg_of("p2"), run_dir=run_dir):   # another prefix is another appliance
            pass
    assert not lock.exists()                                # removed by its holder on release
    with InstanceLock(cfg_of("p1"), run_dir=run_dir):       # and free again
        pass


def test_a_shared_sink_directory_is_refused_and_nothing_stays_locked(tmp_path):
    run_dir, store, other = tmp_path / "run", tmp_path / "store", tmp_path / "other"
    store.mkdir()
    other.mkdir()
    with InstanceLock(cfg_of("p1", store), run_dir=run_dir):
        assert (store / SINK_LOCK).read_text() == f"{os.getpid()}\n"
        second = InstanceLock(cfg_of("p2", other, store, kind="jsonl"), run_dir=run_dir)
        with pytest.raises(InstanceBusy) as err:
            second.acquire()
        assert str(err.value).startswith(f"sinks[1].path {store} belongs to another running appliance "
                                         f"(pid {os.getpid()};")
        assert isinstance(err.value, ConfigError)           # exit code 2
        # What the failed acquire took (prefix p2, sinks[0]) it gave back.
        with InstanceLock(cfg_of("p2", other), run_dir=run_dir):
            pass
    assert not (store / SINK_LOCK).exists()


def test_two_sinks_of_one_run_in_one_directory_take_one_lock(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    cfg = config.from_dict({"capture": {"ports": ["net_pcap0"]}, "dpdk": {"file_prefix": "p"},
                            "sinks": [{"type": "parquet", "path": str(store)},
                                      {"type": "jsonl", "path": str(store / ".." / "store")}]})
    with InstanceLock(cfg, run_dir=tmp_path / "run"):
        assert (store / SINK_LOCK).exists()


def test_an_uncreatable_run_dir_is_an_environment_problem(tmp_path):
    with pytest.raises(EnvironmentProblem, match=r"cannot create the run directory /proc/logcaster-x .*"
                                                 r"LOGCASTER_RUN_DIR.*\(ENOENT\)"):
        InstanceLock(cfg_of("p"), run_dir=Path("/proc/logcaster-x")).acquire()


HOLDER = """
import sys, time
from pathlib import Path
from appliance import config
from appliance.instance import InstanceLock
cfg = config.from_dict({"capture": {"ports": ["127.0.0.1"]}, "dpdk": {"file_prefix": "held"},
                        "sinks": [{"type": "parquet", "path": sys.argv[2]}]})
with InstanceLock(cfg, run_dir=Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_lock_held_by_another_process_is_released_when_it_is_killed(tmp_path):
    run_dir, store = tmp_path / "run", tmp_path / "store"
    store.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir), str(store)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        for cfg, names in [(cfg_of("held"), "dpdk.file_prefix 'held'"),
                           (cfg_of("mine", store), f"sinks[0].path {store}")]:
            with pytest.raises(InstanceBusy) as err:
                InstanceLock(cfg, run_dir=run_dir).acquire()
            assert err.value.holder == holder.pid
            assert str(err.value).startswith(f"{names} belongs to another running appliance (pid {holder.pid};")
    finally:
        holder.kill()
        holder.wait(10)
    # SIGKILL: no clean-up ran, its lock files are still there, and they lock nothing.
    assert prefix_lock_path("held", run_dir).read_text() == f"{holder.pid}\n"
    with InstanceLock(cfg_of("held", store), run_dir=run_dir):
        assert prefix_lock_path("held", run_dir).read_text() == f"{os.getpid()}\n"
        assert (store / SINK_LOCK).read_text() == f"{os.getpid()}\n"


# ---- `logcaster run` ------------------------------------------------------------

def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_config(tmp_path: Path, name: str, prefix: str, store: Path) -> Path:
    """A socket-backend run on 127.0.0.1 (a free high port) into a Parquet store."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "capture": {"backend": "socket", "ports": ["127.0.0.1"], "udp_ports": [free_udp_port()],
                    "batch_size": 64},
        "sinks": [{"type": "parquet", "path": str(store)}],
        "dpdk": {"file_prefix": prefix},
        "stats_interval_s": 0.2,
    }))
    return path


def logcaster_run(run_dir: Path, cfg: Path, *args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "LOGCASTER_RUN_DIR": str(run_dir)}
    return subprocess.Popen([sys.executable, "-m", "appliance.cli.main", "run", "-c", str(cfg), *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def wait_capturing(proc: subprocess.Popen, timeout: float = 60.0) -> None:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if sel.select(timeout=0.5):
            line = proc.stdout.readline()
            seen.append(line)
            if line.startswith("capturing:"):
                return
    raise AssertionError(f"first run not capturing: {''.join(seen)}")


def test_a_second_run_with_the_same_prefix_or_store_exits_2_naming_the_pid(tmp_path):
    run_dir = tmp_path / "run"
    prefix = f"lcown{os.getpid()}"
    first = logcaster_run(run_dir, run_config(tmp_path, "first", prefix, tmp_path / "a"), "--duration", "60")
    try:
        wait_capturing(first)
        stats_file = run_dir / f"{prefix}.stats.json"
        for name, other_prefix, store, needle in [
            ("same-prefix", prefix, tmp_path / "b", f"dpdk.file_prefix '{prefix}' belongs"),
            ("same-store", prefix + "x", tmp_path / "a", f"sinks[0].path {tmp_path / 'a'} belongs"),
        ]:
            second = logcaster_run(run_dir, run_config(tmp_path, name, other_prefix, store), "--duration", "1")
            out, err = second.communicate(timeout=60)
            assert second.returncode == 2, (name, out, err)
            lines = err.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in err and out == "", (name, out, err)
            assert needle in lines[0] and f"(pid {first.pid};" in lines[0], lines[0]
        assert first.poll() is None                          # the first run is unharmed
        deadline = time.monotonic() + 5
        while not stats_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stats_file.exists()
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert not any(run_dir.iterdir()), list(run_dir.iterdir())   # its lock and stats file went with it
