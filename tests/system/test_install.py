"""scripts/install.sh and scripts/uninstall.sh into a staging root: every
file, owner and mode the installer writes; a second run changes nothing; an
edited configuration survives; the unit passes `systemd-analyze verify` and
rates below 4 in `systemd-analyze security`; uninstall keeps data and
configuration unless --purge.

The staging root lives in /srv (not /tmp: the unit's PrivateTmp would hide
it in tests/system/test_least_privilege.py, which runs what this installs).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = "etc/systemd/system/logcaster.service"
MOUNT = "etc/systemd/system/var-lib-logcaster-hugepages.mount"


def install(root: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", str(REPO / "scripts/install.sh"), "--destdir", str(root), *args],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def uninstall(root: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", str(REPO / "scripts/uninstall.sh"), "--destdir", str(root), *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def staging_root(name: str) -> Path:
    root = Path("/srv") / f"{name}-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    root.chmod(0o755)           # the service user walks into it
    return root


def tree(root: Path) -> dict[str, tuple]:
    """path -> (kind, mode, owner, group, size, mtime) of everything under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            kind = "l" if p.is_symlink() else "d" if p.is_dir() else "f"
            out[str(p.relative_to(root))] = (kind, oct(st.st_mode & 0o7777), pwd.getpwuid(st.st_uid).pw_name,
                                             st.st_gid, st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def staged():
    root = staging_root("logcaster-install")
    first = install(root)
    yield root, first
    uninstall(root, "--purge")
    shutil.rmtree(root, ignore_errors=True)


def test_every_file_owner_and_mode(staged):
    root, first = staged
    t = tree(root)
    gid = pwd.getpwnam("logcaster").pw_gid
    expected = {
        "opt/logcaster": ("d", "0o755", "root", 0),
        "opt/logcaster/share": ("d", "0o755", "root", 0),
        "opt/logcaster/share/README.md": ("f", "0o644", "root", 0),
        "opt/logcaster/share/logcaster.example.yaml": ("f", "0o644", "root", 0),
        "opt/logcaster/share/logcaster.yaml": ("f", "0o644", "root", 0),
        "opt/logcaster/share/grafana-logcaster.json": ("f", "0o644", "root", 0),
        "etc/logcaster": ("d", "0o750", "root", gid),
        "etc/logcaster/logcaster.yaml": ("f", "0o640", "root", gid),
        "var/lib/logcaster": ("d", "0o750", "logcaster", gid),
        "var/lib/logcaster/hugepages": ("d", "0o700", "logcaster", gid),
        UNIT: ("f", "0o644", "root", 0),
        MOUNT: ("f", "0o644", "root", 0),
        "etc/sysctl.d/60-logcaster-hugepages.conf": ("f", "0o644", "root", 0),
    }
    for path, want in expected.items():
        assert path in t, f"install.sh did not write {path}"
        assert t[path][:4] == want, f"{path}: {t[path][:4]} != {want}"
    links = {p: os.readlink(root / p) for p, v in t.items() if v[0] == "l" and not p.startswith("opt/logcaster/venv/")}
    assert links == {"etc/systemd/system/multi-user.target.wants/logcaster.service": "/etc/systemd/system/logcaster.service",
                     "etc/systemd/system/local-fs.target.wants/var-lib-logcaster-hugepages.mount":
                         "/etc/systemd/system/var-lib-logcaster-hugepages.mount"}
    # nothing else outside the app's venv and the directories above
    known = set(expected) | set(links) | {"etc", "etc/systemd", "etc/systemd/system", "etc/sysctl.d", "opt", "var",
                                          "var/lib", "etc/systemd/system/multi-user.target.wants",
                                          "etc/systemd/system/local-fs.target.wants", "opt/logcaster/.source-sha256",
                                          "opt/logcaster/venv"}
    extra = {p for p in t if p not in known and not p.startswith("opt/logcaster/venv/")}
    assert not extra, f"install.sh wrote more than it says: {sorted(extra)}"
    assert all(v[2] == "root" for p, v in t.items() if p.startswith("opt/")), "the app belongs to root"
    assert (root / "etc/sysctl.d/60-logcaster-hugepages.conf").read_text().splitlines()[-1] == "vm.nr_hugepages = 512"
    uid = pwd.getpwnam("logcaster").pw_uid
    assert f"uid={uid},gid={gid},mode=0700" in (root / MOUNT).read_text()
    entry = pwd.getpwnam("logcaster")
    assert entry.pw_shell == "/usr/sbin/nologin" and entry.pw_uid < 1000, "a system user without a shell"
    # the installed app runs: its own doctor, from the venv holding the wheel, finds its compiled modules
    doctor = subprocess.run([str(root / "opt/logcaster/venv/bin/logcaster"), "doctor", "--json"],
                            capture_output=True, text=True, timeout=120)
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    for module in ("_core", "_dpdk", "_xsk"):
        assert checks[f"module dpdk_shim.{module}"]["ok"], checks[f"module dpdk_shim.{module}"]


def test_running_again_changes_nothing_and_keeps_an_edited_config(staged):
    root, _ = staged
    before = tree(root)
    again = install(root)
    assert tree(root) == before, "a second install changed files"
    assert "wrote" not in again.stdout and "made" not in again.stdout and "building" not in again.stdout
    cfg = root / "etc/logcaster/logcaster.yaml"
    edited = cfg.read_text().replace("stats_interval_s: 10", "stats_interval_s: 30")
    cfg.write_text(edited)
    install(root)
    assert cfg.read_text() == edited, "an edited configuration is never overwritten"
    dist = root / "etc/logcaster/logcaster.yaml.dist"
    assert dist.read_text() == (REPO / "scripts/logcaster.yaml").read_text()
    assert oct(dist.stat().st_mode & 0o777) == "0o640"
    cfg.write_text((REPO / "scripts/logcaster.yaml").read_text())
    dist.unlink()


def _resolved_unit(root: Path, tmp_path: Path) -> Path:
    """The installed unit with its program resolved into the staging root
    (systemd-analyze checks that ExecStart exists on this machine)."""
    text = (root / UNIT).read_text().replace("/opt/logcaster/", f"{root}/opt/logcaster/")
    out = tmp_path / "logcaster.service"
    out.write_text(text)
    return out


def test_the_unit_verifies_and_rates_below_4(staged, tmp_path):
    root, _ = staged
    unit = _resolved_unit(root, tmp_path)
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "logcaster.service" not in verify.stderr, f"warnings about the unit: {verify.stderr}"
    security = subprocess.run(["systemd-analyze", "security", "--offline=yes", f"--root={root}",
                               "logcaster.service"], capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for logcaster.service: ([\d.]+)", security.stdout)
    assert m, security.stdout + security.stderr
    assert float(m.group(1)) < 4.0, security.stdout
    # every exposure left is explained in the unit's comments
    unit_text = (root / UNIT).read_text()
    for setting in ("PrivateNetwork", "PrivateDevices", "PrivateUsers", "ProcSubset", "IPAddressDeny"):
        assert re.search(rf"#.*{setting}", unit_text), f"{setting}: exposure not explained"


def test_uninstall_keeps_data_and_config_unless_purged():
    root = staging_root("logcaster-uninstall")
    try:
        install(root, "--no-packages")
        store = root / "var/lib/logcaster/parquet"
        store.mkdir()
        (store / "kept.parquet").write_bytes(b"data")
        out = uninstall(root).stdout
        assert "kept" in out
        assert not (root / "opt/logcaster").exists() and not (root / UNIT).exists() and not (root / MOUNT).exists()
        assert not (root / "etc/sysctl.d/60-logcaster-hugepages.conf").exists()
        assert not list((root / "etc/systemd/system").rglob("*.wants/*"))
        assert (store / "kept.parquet").read_bytes() == b"data"
        assert (root / "etc/logcaster/logcaster.yaml").exists()
        assert pwd.getpwnam("logcaster")
        out = uninstall(root, "--purge").stdout
        assert not (root / "var/lib/logcaster").exists() and not (root / "etc/logcaster").exists()
        assert pwd.getpwnam("logcaster") and "removed system user" not in out, \
            "with --destdir the machine's user stays (a real install may run as it)"
    finally:
        shutil.rmtree(root, ignore_errors=True)
