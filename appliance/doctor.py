"""What this machine lacks for each capture backend, and the command that
fixes it: one line per check.

The facts come from appliance/probe.py (the same probe backend choice and
the XDP loader ask), plus the installed Debian packages and the hugetlbfs
mounts, so `doctor` says exactly what `capture.backend: auto` will decide.
Every input is a parameter, so a healthy and a broken machine are both
tested with fakes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from appliance import probe
from appliance.probe import (CAP_BPF, CAP_NAMES, CAP_NET_ADMIN, CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_PERFMON,
                             CAP_SYS_ADMIN, Host, Missing)
from hugepages import mount as hmount

# package -> what needs it
PACKAGES = {
    "libdpdk-dev": "the dpdk backend: builds dpdk_shim._dpdk",
    "libxdp-dev": "the afxdp backend: builds dpdk_shim._xsk",
    "libbpf-dev": "the afxdp backend: XDP and AF_XDP",
    "python3-bpfcc": "the afxdp backend: bcc loads the XDP program",
    "libpcap-dev": "decode, replay and the DPDK net_pcap vdev",
    "clang": "the afxdp backend: bcc compiles the XDP program",
}
# capability -> (alternative that also does, who needs it)
CAPABILITIES = {
    CAP_NET_ADMIN: (None, "afxdp (attach XDP), dpdk net_tap, socket buffers past rmem_max"),
    CAP_NET_RAW: (None, "afxdp (AF_XDP sockets), dpdk net_af_packet"),
    CAP_BPF: (CAP_SYS_ADMIN, "afxdp (load the XDP program and maps)"),
    CAP_PERFMON: (CAP_SYS_ADMIN, "afxdp (the verifier accepts the XDP program only with it)"),
    CAP_NET_BIND_SERVICE: (None, "socket backend on ports below 1024 (syslog's 514)"),
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


def _from(name: str, missing: Missing | None, ok_detail: str) -> Check:
    return Check(name, True, ok_detail) if missing is None else Check(name, False, missing.what, missing.fix)


def dpkg_installed(names: Iterable[str]) -> frozenset[str] | None:
    """The installed ones among `names`, or None when dpkg-query is unavailable."""
    try:
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\\n", *names],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return frozenset(f[0] for f in (line.split() for line in proc.stdout.splitlines())
                     if len(f) == 2 and f[1] == "installed")


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


def _hugepage_checks(host: Host, proc_root) -> list[Check]:
    free = host.hugepages_free
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


def _capability_checks(host: Host) -> list[Check]:
    who = "root" if host.euid == 0 else f"uid {host.euid}"
    out = []
    for cap, (alternative, needed_by) in CAPABILITIES.items():
        name = CAP_NAMES[cap]
        missing = host.cap_missing(cap, f"needed by {needed_by}", alternative=alternative)
        via = f" (through {CAP_NAMES[alternative]})" if alternative is not None and not host.has(cap) else ""
        out.append(_from(name, missing, f"effective{via} ({who}), for {needed_by}"))
    return out


def _backend_checks(host: Host) -> list[Check]:
    afxdp = host.afxdp_missing()
    if afxdp:
        first = afxdp[0]
        more = f" (and {len(afxdp) - 1} more above)" if len(afxdp) > 1 else ""
        check = Check("backend afxdp", False, f"not possible here: {first.what}{more}; `capture.backend: auto` "
                                              f"takes sockets for kernel interfaces", first.fix)
    else:
        check = Check("backend afxdp", True, "possible here (auto takes it for kernel interfaces)")
    return [check]


def run_checks(host: Host | None = None, *, proc_root=hmount.PROC_ROOT,
               installed: Callable[[Iterable[str]], frozenset[str] | None] = dpkg_installed) -> list[Check]:
    """Every check, in a fixed order (one line each)."""
    host = host or probe.probe()
    shown = "unlimited" if host.memlock == probe.RLIM_INFINITY else f"{host.memlock >> 10} KiB"
    return [
        *_package_checks(installed(list(PACKAGES))),
        _from("kernel headers", host.headers_missing(), f"{host.headers}, for bcc"),
        _from("bcc", host.bcc_missing(), "imports"),
        *_hugepage_checks(host, proc_root),
        *_capability_checks(host),
        _from("RLIMIT_MEMLOCK", host.memlock_missing("UMEMs and mbuf pools"),
              shown + (", and CAP_IPC_LOCK lifts it" if host.has(probe.CAP_IPC_LOCK) else "")),
        *(_from(f"module dpdk_shim.{m}", host.module_missing(m), "loads") for m in probe.SHIM_MODULES),
        *_backend_checks(host),
    ]
