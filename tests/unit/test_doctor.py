"""The capability probe (appliance/probe.py) and `logcaster doctor` with
injected inputs (a healthy and a broken machine), the backend choice asking
the same probe, and one smoke run against this machine."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import doctor as dr
from appliance import probe
from appliance.capture.select import choose_backend
from appliance.cli import exitcodes
from appliance.cli.main import main
from appliance.config import from_dict
from appliance.errors import EnvironmentProblem

ROOT = Path(__file__).resolve().parents[2]
RELEASE = "6.1.0-99-amd64"
N_CHECKS = len(dr.PACKAGES) + 2 + 2 + len(dr.CAPABILITIES) + 1 + len(probe.SHIM_MODULES) + 1
ALL_CAPS = sum(1 << c for c in (probe.CAP_NET_ADMIN, probe.CAP_NET_RAW, probe.CAP_BPF, probe.CAP_PERFMON,
                                 probe.CAP_NET_BIND_SERVICE, probe.CAP_IPC_LOCK))


def fake_machine(tmp_path: Path, *, healthy: bool, caps: int | None = None) -> dict:
    """probe() arguments for a fake host (no real file of this machine is read)."""
    sys_root, proc, modules = tmp_path / "sys", tmp_path / "proc", tmp_path / "modules"
    pool = sys_root / "kernel/mm/hugepages/hugepages-2048kB"
    pool.mkdir(parents=True, exist_ok=True)
    (pool / "free_hugepages").write_text("512\n" if healthy else "0\n")
    (proc / "self").mkdir(parents=True, exist_ok=True)
    caps = (ALL_CAPS if healthy else 0) if caps is None else caps
    (proc / "self/status").write_text(f"Name:\tpython3\nCapInh:\t0000000000000000\nCapEff:\t{caps:016x}\n")
    mounts = "proc /proc proc rw 0 0\n"
    if healthy:
        mounts += "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n"
        (modules / RELEASE / "build").mkdir(parents=True, exist_ok=True)
    (proc / "mounts").write_text(mounts)
    (proc / "meminfo").write_text("Hugepagesize:       2048 kB\n")
    return {"sysfs_root": sys_root, "proc_root": proc, "modules_root": modules, "kernel_release": RELEASE,
            "euid": 0 if healthy else 1000,
            "memlock": resource.RLIM_INFINITY if healthy else 8 << 20,
            "importer": lambda name: None if healthy else "ImportError: no module named 'bcc'",
            "shim": lambda name: None if healthy or name == "_core" else "not built"}


def checks_of(tmp_path, *, healthy: bool, installed=None, **over) -> dict[str, dr.Check]:
    host = probe.probe(**{**fake_machine(tmp_path, healthy=healthy), **over})
    if installed is None:
        installed = (lambda names: frozenset(names)) if healthy else (lambda names: frozenset({"clang"}))
    checks = dr.run_checks(host, proc_root=tmp_path / "proc", installed=installed)
    assert len(checks) == N_CHECKS
    return {c.name: c for c in checks}


def test_healthy_machine_passes_every_check(tmp_path):
    checks = checks_of(tmp_path, healthy=True)
    assert all(c.ok and c.fix is None for c in checks.values()), [c.line() for c in checks.values() if not c.ok]
    assert all(c.line().startswith("OK ") for c in checks.values())


def test_broken_machine_names_each_problem_and_its_fix(tmp_path):
    checks = checks_of(tmp_path, healthy=False)
    failed = {name for name, c in checks.items() if not c.ok}
    assert failed == {*(f"package {p}" for p in dr.PACKAGES if p != "clang"), "kernel headers", "bcc",
                      "hugepages 2 MiB", "hugetlbfs mount", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF",
                      "CAP_PERFMON", "CAP_NET_BIND_SERVICE", "RLIMIT_MEMLOCK", "module dpdk_shim._dpdk",
                      "module dpdk_shim._xsk", "backend afxdp"}
    assert checks["package libdpdk-dev"].fix.startswith("apt-get install -y libdpdk-dev")
    assert checks["kernel headers"].fix.startswith(f"apt-get install -y linux-headers-{RELEASE}")
    assert checks["hugepages 2 MiB"].fix == "logcaster hugepages reserve 512"
    assert checks["hugetlbfs mount"].fix == "logcaster hugepages mount"
    assert "AmbientCapabilities" in checks["CAP_BPF"].fix and "uid 1000" in checks["CAP_NET_ADMIN"].detail
    assert checks["RLIMIT_MEMLOCK"].fix.startswith("ulimit -l unlimited")
    assert checks["module dpdk_shim._xsk"].fix.startswith("make setup")
    assert "auto" in checks["backend afxdp"].detail and "sockets" in checks["backend afxdp"].detail
    assert all("-- fix: " in c.line() for c in checks.values() if not c.ok)


def test_cap_sys_admin_stands_in_for_bpf_and_perfmon_and_ipc_lock_for_memlock(tmp_path):
    caps = sum(1 << c for c in (probe.CAP_NET_ADMIN, probe.CAP_NET_RAW, probe.CAP_SYS_ADMIN, probe.CAP_IPC_LOCK))
    checks = checks_of(tmp_path, healthy=True, caps=caps, memlock=64 << 10)
    assert checks["CAP_BPF"].ok and checks["CAP_PERFMON"].ok and "CAP_SYS_ADMIN" in checks["CAP_BPF"].detail
    assert checks["RLIMIT_MEMLOCK"].ok and "CAP_IPC_LOCK" in checks["RLIMIT_MEMLOCK"].detail
    assert checks["backend afxdp"].ok


def test_dpkg_query_missing_fails_every_package_check(tmp_path):
    checks = checks_of(tmp_path, healthy=True, installed=lambda names: None)
    pkgs = [c for name, c in checks.items() if name.startswith("package ")]
    assert len(pkgs) == len(dr.PACKAGES) and not any(c.ok for c in pkgs)
    assert all("dpkg-query is not available" in c.detail for c in pkgs)


@pytest.mark.parametrize("missing, named", [
    ({"caps": ALL_CAPS & ~(1 << probe.CAP_BPF)}, "CAP_BPF (or CAP_SYS_ADMIN) is not effective"),
    ({"caps": ALL_CAPS & ~(1 << probe.CAP_PERFMON)}, "CAP_PERFMON (or CAP_SYS_ADMIN) is not effective"),
    ({"caps": ALL_CAPS & ~(1 << probe.CAP_NET_RAW)}, "CAP_NET_RAW is not effective"),
    ({"caps": ALL_CAPS & ~(1 << probe.CAP_IPC_LOCK), "memlock": 64 << 10}, "RLIMIT_MEMLOCK is 64 KiB"),
    ({"modules_root": "/nonexistent"}, "no kernel headers"),
    ({"importer": lambda name: "ImportError: no bcc"}, "bcc does not import"),
    ({"shim": lambda name: "not built" if name == "_xsk" else None}, "dpdk_shim._xsk does not load"),
])
def test_auto_takes_sockets_and_says_why_when_afxdp_is_not_possible(tmp_path, missing, named):
    """One probe decides for backend choice, a forced afxdp and doctor alike."""
    host = probe.probe(**{**fake_machine(tmp_path, healthy=True), **missing})
    (tmp_path / "sys/class/net/lc0").mkdir(parents=True)
    cfg = from_dict({"capture": {"backend": "auto", "ports": ["lc0"]}, "sinks": ["null"]})
    backend, why = choose_backend(cfg, sysfs=str(tmp_path / "sys"), host=host)
    assert backend.name == "socket" and named in why and "fix:" in why
    forced = from_dict({"capture": {"backend": "afxdp", "ports": ["lc0"]}, "sinks": ["null"]})
    with pytest.raises(EnvironmentProblem, match="afxdp cannot run here") as e:
        choose_backend(forced, sysfs=str(tmp_path / "sys"), host=host)
    assert named in str(e.value)
    assert exitcodes.for_error(e.value) == exitcodes.ENVIRONMENT
    doctor = {c.name: c for c in dr.run_checks(host, proc_root=tmp_path / "proc",
                                               installed=lambda names: frozenset(names))}
    assert not doctor["backend afxdp"].ok and doctor["backend afxdp"].fix


def test_capabilities_not_uid_decide(tmp_path):
    """A service user holding the capabilities is as good as root; root without them is not."""
    service = probe.probe(**{**fake_machine(tmp_path, healthy=True), "euid": 999})
    assert service.bpf_problem() is None
    bare_root = probe.probe(**{**fake_machine(tmp_path, healthy=True), "euid": 0, "caps": 0})
    assert "root without it" in bare_root.bpf_problem()


@pytest.mark.parametrize("healthy, rc", [(True, exitcodes.OK), (False, exitcodes.ENVIRONMENT)])
def test_cli_exit_code_and_json(tmp_path, monkeypatch, capsys, healthy, rc):
    inputs = fake_machine(tmp_path, healthy=healthy)
    real_probe, real_checks = probe.probe, dr.run_checks
    monkeypatch.setattr(probe, "probe", lambda **roots: real_probe(**{**inputs, **roots}))
    monkeypatch.setattr(dr, "run_checks", lambda host, **kw: real_checks(
        host, **kw, installed=(lambda names: frozenset(names)) if healthy else (lambda names: frozenset())))
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


def test_the_unit_grants_what_the_probe_says_capture_needs():
    """One list: the capabilities the probe (and doctor) check are the ones
    the installed unit grants, ambient and bounding, no more."""
    settings = {}
    for line in (ROOT / "scripts/logcaster.service").read_text().splitlines():
        key, _, value = line.partition("=")
        if key in ("AmbientCapabilities", "CapabilityBoundingSet"):
            settings[key] = set(value.split())
    assert settings["AmbientCapabilities"] == settings["CapabilityBoundingSet"] == set(probe.SERVICE_CAPABILITIES)
    checked = {probe.CAP_NAMES[c] for c in dr.CAPABILITIES} | {"CAP_IPC_LOCK"}    # IPC_LOCK: the memlock check
    assert checked == set(probe.SERVICE_CAPABILITIES)


def test_headers_that_cannot_be_looked_at_are_missing_not_a_crash(tmp_path, monkeypatch):
    """systemd's ProtectKernelModules=yes makes /lib/modules inaccessible
    (stat fails with EACCES): the probe says the headers are missing, and
    auto takes sockets, instead of failing the start with a traceback."""
    (tmp_path / "modules/6.1.0-99-amd64/build").mkdir(parents=True)
    real_stat = os.stat

    def no_access(path, *args, **kw):
        if "modules" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *args, **kw)

    monkeypatch.setattr(os, "stat", no_access)
    headers, looked = probe.find_headers("6.1.0-99-amd64", modules_root=tmp_path / "modules",
                                         sysfs_root=tmp_path / "sys")
    assert headers is None and "build" in looked
