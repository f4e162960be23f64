"""What this machine lacks for each capture backend, and the command that
fixes it.

Every input (installed packages, kernel release, sysfs/procfs roots, the
memlock limit, module imports) is a parameter, so a healthy and a broken
machine are both tested with fakes.
"""

from __future__ import annotations

import importlib
import os
import resource
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from hugepages import mount as hmount

SYSFS_ROOT = "/sys"
PROC_ROOT = "/proc"
MODULES_ROOT = "/lib/modules"

# Kernel constant names kept verbatim (linux/capability.h).
CAP_NET_ADMIN = 12
CAP_IPC_LOCK = 14
CAP_SYS_ADMIN = 21
CAP_BPF = 39

MEMLOCK_MIN = 256 << 20  # UMEMs and mbuf pools are locked memory

# package -> what needs it
PACKAGES = {
    "libdpdk-dev": "the dpdk backend: builds dpdk_shim._dpdk",
    "libxdp-dev": "the afxdp backend: builds dpdk_shim._xsk",
    "libbpf-dev": "the afxdp backend: XDP and AF_XDP",
    "python3-bpfcc": "the afxdp backend: bcc loads the XDP program",
    "libpcap-dev": "replay and the DPDK net_pcap vdev",
    "clang": "the afxdp backend: bcc compiles the XDP program",
}
MODULES = {
    "dpdk_shim._core": "every backend: decoder and ring",
    "dpdk_shim._dpdk": "the dpdk backend",
    "dpdk_shim._xsk": "the afxdp backend",
}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None      # the command that fixes it (None when ok)

    def line(self) -> str:
        if self.ok:
            return f"OK       {self.name}: {self.detail}"
        return f"MISSING  {self.name}: {self.detail} -- fix: {self.fix}"

    def as_dict(self) -> dict:
        return asdict(self)


def dpkg_installed(names: Iterable[str]) -> frozenset[str] | None:
    """The installed ones among `names`, or None when dpkg-query is unavailable."""
    try:
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\\n", *names],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return frozenset(f[0] for f in (line.split() for line in proc.stdout.splitlines())
                     if len(f) == 2 and f[1] == "installed")


def try_import(name: str) -> str | None:
    """None when the module imports, else why not."""
    try:
        importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 -- a stale build raises ImportError, a broken one anything
        return f"{type(exc).__name__}: {exc}"
    return None


def effective_caps(proc_root: str | Path = PROC_ROOT) -> int:
    try:
        for line in (Path(proc_root) / "self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def _package_checks(installed: frozenset[str] | None) -> list[Check]:
    out = []
    for name, why in PACKAGES.items():
        if installed is not None and name in installed:
            out.append(Check(f"package {name}", True, f"installed, for {why}"))
        else:
            state = "dpkg-query is not available" if installed is None else "not installed"
            out.append(Check(f"package {name}", False, f"{state}; needed by {why}",
                             f"apt-get install -y {name}  (or `make setup`)"))
    return out


def _headers_check(modules_root: str | Path, release: str) -> Check:
    build = Path(modules_root) / release / "build"
    if build.exists():
        return Check("kernel headers", True, f"{build}, for bcc")
    return Check("kernel headers", False, f"no {build}; bcc (afxdp backend) needs it",
                 f"apt-get install -y linux-headers-{release}  (or `make setup`)")


def _hugepage_checks(sysfs_root: str | Path, proc_root: str | Path) -> list[Check]:
    free_file = Path(sysfs_root) / "kernel/mm/hugepages/hugepages-2048kB/free_hugepages"
    try:
        free = int(free_file.read_text())
    except (OSError, ValueError):
        free = None
    if free:
        pages = Check("hugepages 2 MiB", True, f"{free} free")
    else:
        pages = Check("hugepages 2 MiB", False,
                      "no 2 MiB hugepage support" if free is None else "0 free; DPDK needs them",
                      "logcaster hugepages reserve 512")
    mounts = [m for m in hmount.find_mounts(proc_root) if m.pagesize_kb == 2048]
    if mounts:
        mount = Check("hugetlbfs mount", True, ", ".join(m.path for m in mounts))
    else:
        mount = Check("hugetlbfs mount", False, "no hugetlbfs with 2 MiB pages is mounted",
                      "logcaster hugepages mount")
    return [pages, mount]


def _privilege_checks(euid: int, caps: int) -> list[Check]:
    grant = ("run as root, or grant it (systemd: AmbientCapabilities=CAP_NET_ADMIN CAP_BPF "
             "CAP_PERFMON CAP_IPC_LOCK)")
    who = "root" if euid == 0 else f"uid {euid}"
    out = []
    if caps & (1 << CAP_NET_ADMIN):
        out.append(Check("CAP_NET_ADMIN", True, f"effective ({who})"))
    else:
        out.append(Check("CAP_NET_ADMIN", False, f"not effective ({who}); XDP and ports need it", grant))
    if caps & ((1 << CAP_BPF) | (1 << CAP_SYS_ADMIN)):
        out.append(Check("CAP_BPF", True, f"effective ({who})"))
    else:
        out.append(Check("CAP_BPF", False, f"neither CAP_BPF nor CAP_SYS_ADMIN effective ({who}); "
                                           "loading XDP needs one", grant))
    return out


def _memlock_check(soft: int, caps: int) -> Check:
    shown = "unlimited" if soft == resource.RLIM_INFINITY else f"{soft >> 10} KiB"
    if soft == resource.RLIM_INFINITY or soft >= MEMLOCK_MIN:
        return Check("RLIMIT_MEMLOCK", True, shown)
    if caps & (1 << CAP_IPC_LOCK):
        return Check("RLIMIT_MEMLOCK", True, f"{shown}, but CAP_IPC_LOCK lifts it")
    return Check("RLIMIT_MEMLOCK", False, f"{shown}; UMEMs and mbuf pools need at least {MEMLOCK_MIN >> 20} MiB",
                 "ulimit -l unlimited  (systemd: LimitMEMLOCK=infinity)")


def _module_checks(importer: Callable[[str], str | None]) -> list[Check]:
    out = []
    for name, why in MODULES.items():
        problem = importer(name)
        if problem is None:
            out.append(Check(f"module {name}", True, f"imports, for {why}"))
        else:
            out.append(Check(f"module {name}", False, f"{problem}; needed by {why}",
                             "make setup  (pip install -e . builds the cffi modules)"))
    return out


def run_checks(*, sysfs_root: str | Path = SYSFS_ROOT, proc_root: str | Path = PROC_ROOT,
               modules_root: str | Path = MODULES_ROOT, kernel_release: str | None = None,
               installed: Callable[[Iterable[str]], frozenset[str] | None] = dpkg_installed,
               euid: int | None = None, memlock_soft: int | None = None,
               importer: Callable[[str], str | None] = try_import) -> list[Check]:
    """Every check, in a fixed order (one line each)."""
    caps = effective_caps(proc_root)
    return [
        *_package_checks(installed(list(PACKAGES))),
        _headers_check(modules_root, kernel_release or os.uname().release),
        *_hugepage_checks(sysfs_root, proc_root),
        *_privilege_checks(os.geteuid() if euid is None else euid, caps),
        _memlock_check(resource.getrlimit(resource.RLIMIT_MEMLOCK)[0] if memlock_soft is None else memlock_soft,
                       caps),
        *_module_checks(importer),
    ]
