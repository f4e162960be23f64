"""The wheel as a user gets it: built from the repository's files, installed
into a fresh venv (with --system-site-packages, for Debian's bcc), and run
from outside the checkout, so nothing of the source tree is on the path:
`logcaster decode` on a pcap and `logcaster demo` through the real pipeline.
(The editable install of `make setup` would hide a package or a compiled
module missing from the wheel.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from appliance.sample import write_pcap

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = 500
DEMO = 3000


def run(cmd: list, *, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the wheel, the venv it is installed in)."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):        # the repository's files only: no build output, no .so
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", base / "dist", src], cwd=base)
    wheel = next((base / "dist").glob("logcaster-*.whl"))
    venv = base / "venv"
    run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv], cwd=base)
    run([venv / "bin/pip", "install", "-q", wheel], cwd=base)
    return wheel, venv


def test_the_wheel_holds_every_package_and_the_compiled_modules(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("appliance/capture/base.py", "appliance/sinks/parquet.py", "appliance/cli/main.py",
                   "appliance/probe.py", "hugepages/mount.py", "ebpf/loader.py", "ebpf/xdp_syslog.c",
                   "dpdk_shim/src/lc_abi.h"):
        assert module in names, module
    for ext in ("_core", "_dpdk", "_xsk"):
        assert any(n.startswith(f"dpdk_shim/{ext}.") and n.endswith(".so") for n in names), ext
    assert not any(n.startswith(("tests/", "bench/", "vagrant/")) for n in names)


def test_installed_wheel_imports_everything(installed, tmp_path):
    _, venv = installed
    code = ("import appliance.capture.base, appliance.capture.afxdp, appliance.sinks.parquet, appliance.cli.main, "
            "dpdk_shim, bcc; [dpdk_shim.load(m) for m in ('_core', '_dpdk', '_xsk')]; "
            "print(appliance.__file__)")
    out = run([venv / "bin/python", "-c", code], cwd=tmp_path).stdout
    assert str(venv) in out, f"imported from {out.strip()}, not from the installed wheel"


def test_installed_wheel_decodes_a_pcap(installed, tmp_path):
    _, venv = installed
    pcap = write_pcap(tmp_path / "sample.pcap", SAMPLE)
    proc = run([venv / "bin/logcaster", "decode", pcap], cwd=tmp_path)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == SAMPLE and f"{SAMPLE} records" in proc.stderr


def test_installed_wheel_runs_the_demo(installed, tmp_path):
    _, venv = installed
    proc = run([venv / "bin/logcaster", "demo", "--data-dir", tmp_path / "data", "--messages", DEMO], cwd=tmp_path,
               timeout=300)
    assert "accounting: received = delivered + every kind of loss: OK" in proc.stdout
    assert f"{DEMO:,} records of this run" in proc.stdout
