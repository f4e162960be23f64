"""What this host lets LogCaster do, probed in one place.

Backend choice (appliance/capture/select.py), the XDP loader (ebpf/loader.py)
and `logcaster doctor` all ask this module, so they cannot disagree on "is
BPF allowed here": effective capabilities (not the uid: a service running as
its own user with exactly the capabilities below is as good as root),
RLIMIT_MEMLOCK, kernel headers for bcc (or the kheaders module), bcc itself,
hugepages, and which compiled shim modules load.

Every input is a parameter of `probe()` (proc/sysfs/modules roots, kernel
release, an importer), so tests build a host with any capability set.

What each backend needs, found by running each of them with only these
capabilities (tests/system/test_least_privilege.py; SERVICE_CAPABILITIES is
the union, which scripts/logcaster.service grants, checked by a test):
  afxdp   CAP_NET_ADMIN (attach XDP), CAP_BPF (load the program and maps;
          CAP_SYS_ADMIN also does), CAP_PERFMON (bcc's program uses packet
          pointer arithmetic the verifier allows only with it),
          CAP_NET_RAW (AF_XDP sockets), and locked memory for the UMEMs
          (RLIMIT_MEMLOCK, or CAP_IPC_LOCK)
  socket  CAP_NET_BIND_SERVICE for ports below 1024 (syslog's 514),
          CAP_NET_ADMIN to raise the receive buffer past net.core.rmem_max
  dpdk    vdevs over kernel interfaces as afxdp (net_af_xdp) or CAP_NET_RAW
          (net_af_packet), CAP_NET_ADMIN (net_tap); hugepages (RLIMIT_MEMLOCK
          or CAP_IPC_LOCK). PCI ports: see docs/PRIVILEGES.md.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import resource
from dataclasses import dataclass, field
from pathlib import Path

# linux/capability.h, names verbatim
CAP_NET_BIND_SERVICE = 10
CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
CAP_IPC_LOCK = 14
CAP_SYS_RAWIO = 17
CAP_SYS_ADMIN = 21
CAP_SYS_NICE = 23
CAP_PERFMON = 38
CAP_BPF = 39
CAP_NAMES = {v: k for k, v in dict(globals()).items() if k.startswith("CAP_")}

RLIM_INFINITY = resource.RLIM_INFINITY
MEMLOCK_MIN = 256 << 20         # AF_XDP UMEMs and DPDK mbuf pools are locked memory
KHEADERS = "kernel/kheaders.tar.xz"       # CONFIG_IKHEADERS: bcc unpacks the headers from there
SHIM_MODULES = ("_core", "_dpdk", "_xsk")
SERVICE_CAPABILITIES = ("CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF", "CAP_PERFMON", "CAP_IPC_LOCK",
                        "CAP_NET_BIND_SERVICE")
SYSTEMD_GRANT = f"AmbientCapabilities={' '.join(SERVICE_CAPABILITIES)} (as scripts/logcaster.service does)"


@dataclass(frozen=True)
class Missing:
    """One thing this host lacks for a purpose, and the command that fixes it."""

    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.what} (fix: {self.fix})"


@dataclass(frozen=True)
class Host:
    """A snapshot of what this process may do here."""

    euid: int
    caps: int                                   # effective capability set (CapEff)
    memlock: int                                # RLIMIT_MEMLOCK soft limit (RLIM_INFINITY: none)
    kernel_release: str
    headers: str | None                         # kernel headers bcc can use, or None
    headers_looked: str                         # where they were looked for (for messages)
    bcc: str | None                             # None when bcc imports, else why not
    hugepages_free: int | None                  # free 2 MiB pages; None: no 2 MiB support
    modules: dict = field(default_factory=dict)  # shim module -> None (loads) or why not

    # -- single facts --------------------------------------------------------

    def has(self, cap: int) -> bool:
        return bool(self.caps & (1 << cap))

    def cap_missing(self, cap: int, why: str, *, alternative: int | None = None) -> Missing | None:
        if self.has(cap) or (alternative is not None and self.has(alternative)):
            return None
        name = CAP_NAMES[cap] + (f" (or {CAP_NAMES[alternative]})" if alternative is not None else "")
        who = "root without it" if self.euid == 0 else f"uid {self.euid}"
        return Missing(f"{name} is not effective ({who}); {why}",
                       f"run as root, or grant it (systemd: {SYSTEMD_GRANT})")

    def memlock_missing(self, why: str) -> Missing | None:
        if self.memlock == resource.RLIM_INFINITY or self.memlock >= MEMLOCK_MIN or self.has(CAP_IPC_LOCK):
            return None
        return Missing(f"RLIMIT_MEMLOCK is {self.memlock >> 10} KiB and CAP_IPC_LOCK is not effective; {why} "
                       f"needs at least {MEMLOCK_MIN >> 20} MiB of locked memory",
                       "ulimit -l unlimited  (systemd: LimitMEMLOCK=infinity)")

    def headers_missing(self) -> Missing | None:
        if self.headers:
            return None
        return Missing(f"no kernel headers for {self.kernel_release} ({self.headers_looked}); bcc compiles the "
                       f"XDP program against them",
                       f"apt-get install -y linux-headers-{self.kernel_release}  (or `make setup`, which links "
                       f"Debian's newest 6.1 headers for a kernel without a package)")

    def bcc_missing(self) -> Missing | None:
        if self.bcc is None:
            return None
        return Missing(f"bcc does not import ({self.bcc})",
                       "apt-get install -y python3-bpfcc, in a venv made with --system-site-packages "
                       "(`make setup`)")

    def module_missing(self, name: str) -> Missing | None:
        problem = self.modules.get(name)
        if problem is None:
            return None
        return Missing(f"dpdk_shim.{name} does not load ({problem})", "make setup  (builds the cffi modules)")

    # -- per purpose -----------------------------------------------------------

    def xdp_missing(self) -> list[Missing]:
        """What loading and attaching the XDP program (bcc) needs."""
        found = [
            self.cap_missing(CAP_BPF, "loading BPF programs and maps needs it", alternative=CAP_SYS_ADMIN),
            self.cap_missing(CAP_PERFMON, "the verifier accepts the XDP program's packet parsing only with it",
                             alternative=CAP_SYS_ADMIN),
            self.cap_missing(CAP_NET_ADMIN, "attaching an XDP program to an interface needs it"),
            self.bcc_missing(),
            self.headers_missing(),
        ]
        return [m for m in found if m is not None]

    def afxdp_missing(self) -> list[Missing]:
        """What the afxdp backend needs: XDP, AF_XDP sockets, UMEMs, the _xsk module."""
        found = self.xdp_missing() + [
            self.cap_missing(CAP_NET_RAW, "AF_XDP sockets need it"),
            self.memlock_missing("the AF_XDP UMEMs"),
            self.module_missing("_xsk"),
        ]
        return [m for m in found if m is not None]

    def bpf_problem(self) -> str | None:
        """Why the afxdp backend cannot run here, in one line, or None."""
        missing = self.afxdp_missing()
        return "; ".join(str(m) for m in missing) if missing else None


# ---- probing -------------------------------------------------------------------

def effective_caps(proc_root: str | Path = "/proc") -> int:
    try:
        for line in (Path(proc_root) / "self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def find_headers(release: str, *, modules_root: str | Path = "/lib/modules",
                 sysfs_root: str | Path = "/sys") -> tuple[str | None, str]:
    """(headers bcc can use or None, where they were looked for)."""
    build = Path(modules_root) / release / "build"
    kheaders = Path(sysfs_root) / KHEADERS
    if os.path.exists(build):       # False also where it cannot be looked at (ProtectKernelModules=)
        return str(build), str(build)
    if os.path.exists(kheaders):
        return str(kheaders), str(kheaders)
    return None, f"neither {build} nor {kheaders}"


def import_problem(name: str) -> str | None:
    """None when the module imports, else why not."""
    try:
        importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 -- a broken install raises anything
        return f"{type(exc).__name__}: {exc}"
    return None


def shim_problem(name: str) -> str | None:
    """None when dpdk_shim.load(name) succeeds, else why not."""
    try:
        import dpdk_shim

        dpdk_shim.load(name)
    except Exception as exc:  # noqa: BLE001
        return str(exc)
    return None


def free_hugepages(sysfs_root: str | Path = "/sys") -> int | None:
    try:
        return int((Path(sysfs_root) / "kernel/mm/hugepages/hugepages-2048kB/free_hugepages").read_text())
    except (OSError, ValueError):
        return None


def probe(*, proc_root: str | Path = "/proc", sysfs_root: str | Path = "/sys",
          modules_root: str | Path = "/lib/modules", kernel_release: str | None = None,
          euid: int | None = None, memlock: int | None = None, caps: int | None = None,
          importer=import_problem, shim=shim_problem) -> Host:
    """This host, now. Every argument replaces one input (tests)."""
    release = kernel_release or os.uname().release
    headers, looked = find_headers(release, modules_root=modules_root, sysfs_root=sysfs_root)
    return Host(
        euid=os.geteuid() if euid is None else euid,
        caps=effective_caps(proc_root) if caps is None else caps,
        memlock=resource.getrlimit(resource.RLIMIT_MEMLOCK)[0] if memlock is None else memlock,
        kernel_release=release,
        headers=headers,
        headers_looked=looked,
        bcc=importer("bcc"),
        hugepages_free=free_hugepages(sysfs_root),
        modules={name: shim(name) for name in SHIM_MODULES},
    )


def raise_memlock() -> str:
    """RLIMIT_MEMLOCK up to unlimited (or the hard limit): UMEM pages and
    mbuf pools are locked. Returns the limit now in force, for messages."""
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    for want in ((resource.RLIM_INFINITY, resource.RLIM_INFINITY), (hard, hard)):
        try:
            resource.setrlimit(resource.RLIMIT_MEMLOCK, want)
            break
        except (ValueError, OSError):
            continue
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    return "unlimited" if soft == resource.RLIM_INFINITY else f"{soft // 1024} KiB"


# ---- giving capabilities up --------------------------------------------------------

PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4      # linux/prctl.h
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def keep_capabilities_to_self() -> None:
    """Clear the ambient set: this process keeps its capabilities, but the
    programs it starts (workers: a new Python, multiprocessing's resource
    tracker, `ss`) get none of them from it."""
    _libc().prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)


def drop_capabilities() -> None:
    """Give up every capability for good (effective, permitted, inheritable,
    ambient): a worker reads its ring and writes its sinks, which need none.
    Returns quietly where capset is refused (nothing to give up)."""
    keep_capabilities_to_self()
    data = (_CapData * 2)()
    _libc().capset(ctypes.byref(_CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)), data)
