"""The installed service captures without root: scripts/install.sh into a
staging root, then the unit's ExecStart run the way systemd would
(tests/system/systemd_like.py: the service user, the unit's capabilities
and nothing more, no_new_privs, its seccomp filter, MemoryDenyWriteExecute,
a read-only system), capturing on a veth with AF_XDP and with the socket
backend, every datagram sent delivered. What it writes is its own: a second
unprivileged user can read neither the Parquet store nor the ring. A run
killed with its XDP program attached is cleaned up by the next one, without
CAP_SYS_ADMIN.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds
import pytest
import yaml

from appliance.sample import write_pcap
from netns import ip, netns, netns_exists, unique_name, veth_pair
from systemd_like import service_command
from test_install import install, staging_root, uninstall

pytestmark = [pytest.mark.root, pytest.mark.xdp]

N = 2000
REPLAYED = 700                  # frames of the demo's sample fed by `logcaster replay` (UDP 514)
REPO = Path(__file__).resolve().parents[2]
CAPTURE_V4, SENDER_V4 = "198.18.7.1", "198.18.7.2"
HUGE_MOUNT = "var/lib/logcaster/hugepages"
OTHER_USER = "nobody"

SENDER = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[2])):
    s.sendto(f"<{8 + i % 8}>1 2026-12-03T10:00:00Z host{i % 9} app - - - unprivileged n={i}".encode(),
             (sys.argv[1], 514))
    if i % 20 == 19:
        time.sleep(0.002)
"""


@pytest.fixture(scope="module")
def installed():
    """An installed appliance, with the hugetlbfs mount its mount unit makes."""
    root = staging_root("logcaster-service")
    install(root, "--no-packages")
    mount_unit = (root / "etc/systemd/system/var-lib-logcaster-hugepages.mount").read_text()
    options = next(line.split("=", 1)[1] for line in mount_unit.splitlines() if line.startswith("Options="))
    subprocess.run(["mount", "-t", "hugetlbfs", "-o", options, "hugetlbfs", str(root / HUGE_MOUNT)], check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", str(root / HUGE_MOUNT)], check=False)
        uninstall(root, "--purge")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def link():
    pid = os.getpid()
    sender, capture = f"lcps-{pid}", f"lcpc-{pid}"
    with netns(sender), netns(capture):
        a, b = unique_name("lcpa"), unique_name("lcpb")
        with veth_pair(a, sender, b, capture):
            ip("addr", "add", f"{SENDER_V4}/24", "dev", a, ns=sender)
            ip("addr", "add", f"{CAPTURE_V4}/24", "dev", b, ns=capture)
            for ns, dev, peer_ns, peer_dev, addr in ((sender, a, capture, b, CAPTURE_V4),
                                                     (capture, b, sender, a, SENDER_V4)):
                mac = json.loads(ip("-j", "link", "show", "dev", peer_dev, ns=peer_ns).stdout)[0]["address"]
                ip("neigh", "replace", addr, "lladdr", mac, "dev", dev, "nud", "permanent", ns=ns)
            yield sender, capture, b
    assert not netns_exists(sender) and not netns_exists(capture)


class Service:
    """The unit's ExecStart, run the way systemd would, in namespace `ns`."""

    def __init__(self, root: Path, ns: str, config: dict):
        self.root = root
        (root / "etc/logcaster/logcaster.yaml").write_text(yaml.safe_dump(config))
        self.stats = root / "var/lib/logcaster/stats.json"
        self.stats.unlink(missing_ok=True)
        argv, self.spec = service_command(root / "etc/systemd/system/logcaster.service", root,
                                          extra_args=("--stats-json", str(self.stats)))
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if text in line:
                return
        raise AssertionError(f"no {text!r} from the service:\n{''.join(self.lines)}")

    def stop(self, sig=signal.SIGTERM) -> tuple[int, str, dict]:
        os.killpg(self.proc.pid, sig) if sig == signal.SIGKILL else self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=90)
        text = "".join(self.lines) + out
        stats = json.loads(self.stats.read_text()) if self.stats.exists() and sig != signal.SIGKILL else {}
        return self.proc.returncode, text, stats

    def __enter__(self) -> "Service":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


def config(root: Path, backend: str, port: str) -> dict:
    """The installed configuration, edited as an operator would: the interface, a faster rotation."""
    cfg = yaml.safe_load((REPO / "scripts/logcaster.yaml").read_text())
    cfg["capture"] = {"backend": backend, "ports": [port], "udp_ports": [514]}
    cfg["sinks"] = [{"type": "parquet", "path": str(root / "var/lib/logcaster/parquet"), "rotate_seconds": 0.5}]
    cfg.update({"dpdk": {"file_prefix": f"lcpriv-{backend}"}, "ring": {"size": "64MiB"}, "stats_interval_s": 0.5})
    return cfg


def scrape(ns: str, listen: str) -> dict[str, float]:
    """The service's /metrics, from its namespace: {name: sum over label sets}."""
    code = ("import sys, urllib.request; from prometheus_client.parser import text_string_to_metric_families as f\n"
            "out = {}\n"
            f"for fam in f(urllib.request.urlopen('http://{listen}/metrics', timeout=5).read().decode()):\n"
            "    for s in fam.samples: out[s.name] = out.get(s.name, 0) + s.value\n"
            "print(repr(out))")
    res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True)
    return eval(res.stdout)     # noqa: S307 -- a dict literal printed by the line above


def send(ns: str, count: int) -> None:
    subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", SENDER, CAPTURE_V4, str(count)], check=True,
                   timeout=60)


def as_other_user(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", f"--reuid={OTHER_USER}", "--regid=nogroup", "--clear-groups",
                           "--inh-caps=-all", "--bounding-set=-all", "/usr/bin/python3", "-c", code],
                          capture_output=True, text=True, timeout=30)


def records_in(store: Path) -> int:
    return ds.dataset(store, format="parquet", partitioning="hive",
                      exclude_invalid_files=True).count_rows() if any(store.rglob("*.parquet")) else 0


@pytest.mark.parametrize("backend", ["afxdp", "socket"])
def test_the_service_captures_without_root(installed, link, backend):
    sender, capture, iface = link
    root = installed
    store = root / "var/lib/logcaster/parquet"
    shutil.rmtree(store, ignore_errors=True)
    port = iface if backend == "afxdp" else "0.0.0.0"
    uid = pwd.getpwnam("logcaster").pw_uid
    with Service(root, capture, config(root, backend, port)) as svc:
        svc.wait_for("capturing:")
        # what it runs as: the service user, the unit's capabilities only; its workers
        # (and anything else it started): none at all
        procs = _tree(svc.proc.pid)
        assert "run -c" in procs[0]["cmd"] and len(procs) >= 2, procs
        assert all(p["uid"] == uid for p in procs), procs
        assert procs[0]["eff"] == _caps(svc.spec["caps"]), procs[0]
        assert all(p["eff"] == 0 for p in procs[1:]), procs
        # its ring: on the service's own hugetlbfs mount, in a directory only it can enter
        home = root / HUGE_MOUNT / f"logcaster-{uid}"
        [ring] = list(home.iterdir())
        assert (oct(home.stat().st_mode & 0o777), oct(ring.stat().st_mode & 0o777)) == ("0o700", "0o600")
        assert home.stat().st_uid == ring.stat().st_uid == uid
        send(sender, N)
        total = N
        if backend == "afxdp":      # and fed a pcap by `logcaster replay`, as the README's install section says
            frames = write_pcap(root / "var/lib/logcaster/replay.pcap", REPLAYED)
            sent = subprocess.run(["ip", "netns", "exec", sender, sys.executable, "-m", "appliance.cli.main", "replay",
                                   str(frames), "--iface", _sender_if(sender), "--force", "--pps", "20000", "--json"],
                                  cwd=REPO, capture_output=True, text=True, timeout=60)
            assert sent.returncode == 0 and json.loads(sent.stdout)["sent"] == REPLAYED, sent.stderr
            total += REPLAYED
        svc.wait_for(f"delivered {total:,}", 60)
        metrics = scrape(capture, config(root, backend, port)["metrics"]["listen"])
        assert metrics["logcaster_delivered_records_total"] == total, metrics
        # another local user: no captured log, no ring
        denied = as_other_user(f"""
import errno, glob
for path in {[str(p) for p in store.rglob('*.parquet')][:1] + [str(ring)]!r}:
    try:
        open(path, 'rb').read(1)
        print('READ', path)
    except PermissionError as e:
        print('EACCES' if e.errno == errno.EACCES else e)
""")
        assert denied.stdout.split() == ["EACCES", "EACCES"], denied.stdout + denied.stderr
        live = root / "run/logcaster" / "lcpriv-{}.stats.json".format(backend)
        assert oct(live.stat().st_mode & 0o777) == "0o640" and live.stat().st_uid == uid
        rc, out, stats = svc.stop()
    assert rc == 0, out
    assert stats["backend"] == backend and stats["accounting_ok"], out
    total = N + (REPLAYED if backend == "afxdp" else 0)
    assert stats["received"] == stats["delivered"] == total, out
    assert records_in(store) == total
    for f in store.rglob("*"):
        want = "0o750" if f.is_dir() else "0o640"
        assert oct(f.stat().st_mode & 0o777) == want and f.stat().st_uid == uid, f
    if backend == "afxdp":
        assert "xdp" not in ip("link", "show", "dev", iface, ns=capture).stdout.split("\n")[0], \
            "the program is detached when the service stops"
        assert "copy mode" in out or "zero-copy" in out


def test_a_killed_service_leaves_nothing_the_next_start_cannot_take(installed, link):
    """SIGKILL leaves the XDP program attached; the next start, without
    CAP_SYS_ADMIN (it cannot read program names), knows it as its own and
    replaces it. Directories another user plants in /dev/shm, under a ring's
    name and under the name of the service's own ring directory, do not stop
    the start (the rings live in a directory only the service owns)."""
    sender, capture, iface = link
    root = installed
    uid = pwd.getpwnam("logcaster").pw_uid
    planted = [Path("/dev/shm") / f"logcaster-ring-lcpriv-afxdp-{iface}_q0", Path(f"/dev/shm/logcaster-{uid}")]
    if planted[1].is_dir():
        shutil.rmtree(planted[1])           # an empty one left by an earlier run of the service
    created = as_other_user("import os, sys; [os.mkdir(p) for p in sys.argv[1:]]".replace("sys.argv[1:]",
                                                                                          repr([str(p) for p in planted])))
    try:
        assert created.returncode == 0, created.stderr
        with Service(root, capture, config(root, "afxdp", iface)) as svc:
            svc.wait_for("capturing:")
            svc.stop(signal.SIGKILL)
        assert "xdp" in ip("link", "show", "dev", iface, ns=capture).stdout.split("\n")[0], "left attached"
        with Service(root, capture, config(root, "afxdp", iface)) as svc:
            svc.wait_for("capturing:")
            send(sender, 100)
            svc.wait_for("delivered 100", 60)
            rc, out, stats = svc.stop()
        assert rc == 0, out
        assert "replaced a stale lc_xdp_syslog" in out, out
        assert stats["received"] == stats["delivered"] == 100
        assert "xdp" not in ip("link", "show", "dev", iface, ns=capture).stdout.split("\n")[0]
        nobody = pwd.getpwnam(OTHER_USER).pw_uid
        assert f"the ring directory /dev/shm/logcaster-{uid} belongs to uid {nobody}" in out, out
    finally:
        for p in planted:
            if p.is_dir() and p.stat().st_uid != uid:
                p.rmdir()


def _sender_if(ns: str) -> str:
    return next(link["ifname"] for link in json.loads(ip("-j", "link", "show", ns=ns).stdout) if link["ifname"] != "lo")


def _caps(names: list[str]) -> int:
    from appliance import probe

    return sum(1 << getattr(probe, n) for n in names)


def _tree(pid: int) -> list[dict]:
    """The process (the exec chain ends in `logcaster run`) and its children:
    command line, real uid, effective capabilities."""
    import psutil

    out = []
    top = psutil.Process(pid)
    for p in [top, *top.children(recursive=True)]:
        try:
            status = Path(f"/proc/{p.pid}/status").read_text()
            eff = int(next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:")), 16)
            out.append({"cmd": " ".join(p.cmdline()), "uid": p.uids().real, "eff": eff})
        except (psutil.Error, OSError):
            continue
    return out


def test_the_emulated_sandbox_refuses_what_the_unit_forbids():
    """The harness is not a no-op: under the unit's policy a W+X mapping, a
    socket family not listed and a system call not allowed are refused; a
    plain mapping and a UDP socket are not."""
    from systemd_like import parse_unit, syscall_policy

    policy = syscall_policy(parse_unit(REPO / "scripts/logcaster.service"))
    code = r"""
import ctypes, errno, mmap, socket
out = []
mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE); out.append("rw")
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close(); out.append("udp")
for what, call in (("wx", lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_WRITE | mmap.PROT_EXEC)),
                   ("bluetooth", lambda: socket.socket(31, socket.SOCK_RAW, 1))):
    try:
        call(); out.append(what + " ALLOWED")
    except OSError as e:
        out.append(f"{what} {errno.errorcode[e.errno]}")
libc = ctypes.CDLL(None, use_errno=True)
rc = libc.syscall(165, b"none", b"/mnt", b"tmpfs", 0, None)       # mount(2): @mount is denied
out.append(f"mount {errno.errorcode[ctypes.get_errno()]}" if rc else "mount ALLOWED")
print(" ".join(out))
"""
    res = subprocess.run(["setpriv", "--no-new-privs", "--", "/usr/bin/python3", str(REPO / "tests/system/systemd_like_stub.py"),
                          json.dumps(policy), "--", "/usr/bin/python3", "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.stdout.split() == ["rw", "udp", "wx", "EPERM", "bluetooth", "EAFNOSUPPORT", "mount", "EPERM"], \
        res.stdout + res.stderr
