"""`logcaster doctor` with injected inputs (a healthy and a broken machine),
and one smoke run against this machine."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import doctor as dr
from appliance.cli import exitcodes
from appliance.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
RELEASE = "6.1.0-99-amd64"
N_CHECKS = len(dr.PACKAGES) + 1 + 2 + 2 + 1 + len(dr.MODULES)


def fake_machine(tmp_path: Path, *, healthy: bool) -> dict:
    sys_root, proc, modules = tmp_path / "sys", tmp_path / "proc", tmp_path / "modules"
    pool = sys_root / "kernel/mm/hugepages/hugepages-2048kB"
    pool.mkdir(parents=True)
    (pool / "free_hugepages").write_text("512\n" if healthy else "0\n")
    (proc / "self").mkdir(parents=True)
    caps = (1 << dr.CAP_NET_ADMIN) | (1 << dr.CAP_BPF) if healthy else 0
    (proc / "self/status").write_text(f"Name:\tpython3\nCapInh:\t0000000000000000\nCapEff:\t{caps:016x}\n")
    mounts = "proc /proc proc rw 0 0\n"
    if healthy:
        mounts += "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n"
        (modules / RELEASE / "build").mkdir(parents=True)
    (proc / "mounts").write_text(mounts)
    (proc / "meminfo").write_text("Hugepagesize:       2048 kB\n")
    return {"sysfs_root": sys_root, "proc_root": proc, "modules_root": modules, "kernel_release": RELEASE,
            "installed": lambda names: frozenset(names) if healthy else frozenset({"clang"}),
            "euid": 0 if healthy else 1000,
            "memlock_soft": resource.RLIM_INFINITY if healthy else 8 << 20,
            "importer": lambda name: None if healthy or name == "dpdk_shim._core" else "ImportError: no module"}


def test_healthy_machine_passes_every_check(tmp_path):
    checks = dr.run_checks(**fake_machine(tmp_path, healthy=True))
    assert len(checks) == N_CHECKS
    assert all(c.ok and c.fix is None for c in checks), [c.line() for c in checks if not c.ok]
    assert all(c.line().startswith("OK ") for c in checks)


def test_broken_machine_names_each_problem_and_its_fix(tmp_path):
    checks = {c.name: c for c in dr.run_checks(**fake_machine(tmp_path, healthy=False))}
    assert len(checks) == N_CHECKS
    failed = {name for name, c in checks.items() if not c.ok}
    assert failed == {*(f"package {p}" for p in dr.PACKAGES if p != "clang"), "kernel headers",
                      "hugepages 2 MiB", "hugetlbfs mount", "CAP_NET_ADMIN", "CAP_BPF", "RLIMIT_MEMLOCK",
                      "module dpdk_shim._dpdk", "module dpdk_shim._xsk"}
    assert checks["package libdpdk-dev"].fix.startswith("apt-get install -y libdpdk-dev")
    assert checks["kernel headers"].fix.startswith(f"apt-get install -y linux-headers-{RELEASE}")
    assert checks["hugepages 2 MiB"].fix == "logcaster hugepages reserve 512"
    assert checks["hugetlbfs mount"].fix == "logcaster hugepages mount"
    assert "AmbientCapabilities" in checks["CAP_BPF"].fix and "uid 1000" in checks["CAP_NET_ADMIN"].detail
    assert checks["RLIMIT_MEMLOCK"].fix.startswith("ulimit -l unlimited")
    assert checks["module dpdk_shim._xsk"].fix.startswith("make setup")
    assert all("-- fix: " in c.line() for c in checks.values() if not c.ok)


def test_partial_rights_cap_sys_admin_and_ipc_lock(tmp_path):
    inputs = fake_machine(tmp_path, healthy=True)
    caps = (1 << dr.CAP_NET_ADMIN) | (1 << dr.CAP_SYS_ADMIN) | (1 << dr.CAP_IPC_LOCK)
    (Path(inputs["proc_root"]) / "self/status").write_text(f"CapEff:\t{caps:016x}\n")
    checks = {c.name: c for c in dr.run_checks(**{**inputs, "memlock_soft": 64 << 10})}
    assert checks["CAP_BPF"].ok and checks["RLIMIT_MEMLOCK"].ok and "CAP_IPC_LOCK" in checks["RLIMIT_MEMLOCK"].detail


def test_dpkg_query_missing_fails_every_package_check(tmp_path):
    checks = dr.run_checks(**{**fake_machine(tmp_path, healthy=True), "installed": lambda names: None})
    pkgs = [c for c in checks if c.name.startswith("package ")]
    assert len(pkgs) == len(dr.PACKAGES) and not any(c.ok for c in pkgs)
    assert all("dpkg-query is not available" in c.detail for c in pkgs)


@pytest.mark.parametrize("healthy, rc", [(True, exitcodes.OK), (False, exitcodes.ENVIRONMENT)])
def test_cli_exit_code_and_json(tmp_path, monkeypatch, capsys, healthy, rc):
    inputs = fake_machine(tmp_path, healthy=healthy)
    real = dr.run_checks
    monkeypatch.setattr(dr, "run_checks", lambda **roots: real(**{**inputs, **roots}))
    args = ["doctor", "--sysfs-root", str(inputs["sysfs_root"]), "--proc-root", str(inputs["proc_root"]),
            "--modules-root", str(inputs["modules_root"])]
    assert main(args) == rc
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == N_CHECKS
    assert ("checks failed" in captured.err) == (not healthy)
    assert main([*args, "--json"]) == rc
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is healthy and len(data["checks"]) == N_CHECKS


def test_smoke_on_this_machine():
    proc = subprocess.run([sys.executable, "-m", "appliance.cli.main", "doctor"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode in (exitcodes.OK, exitcodes.ENVIRONMENT), proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == N_CHECKS and all(line.startswith(("OK ", "MISSING ")) for line in lines)
