"""Find, mount and unmount hugetlbfs file systems.

Mounts are read from `<proc_root>/mounts` (the calling process's mount
namespace). mount(2)/umount2(2) are called through libc directly: no
dependency on util-linux, and errno comes back intact.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from dataclasses import dataclass
from pathlib import Path

from appliance import paths
from hugepages import sysfs
from hugepages.errors import HugepageError, HugepageUsageError

PROC_ROOT = "/proc"
FSTYPE = "hugetlbfs"
# A private mount per page size: DPDK's EAL deletes unlocked *map_* files in
# every hugetlbfs folder it scans, so the appliance keeps its pages apart.
MS_NOSUID = 0x2
MS_NODEV = 0x4


@dataclass(frozen=True)
class HugetlbfsMount:
    source: str
    path: str
    pagesize_kb: int
    options: tuple[str, ...]


def default_mount_path(size_kb: int = sysfs.DEFAULT_SIZE_KB) -> Path:
    return paths.RUN_DIR / f"hugepages-{sysfs.format_size(size_kb)}"


def _unescape(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash as \\ooo octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _default_pagesize_kb(proc_root: str | Path) -> int:
    """The kernel's default hugepage size (Hugepagesize in meminfo)."""
    try:
        for line in (Path(proc_root) / "meminfo").read_text().splitlines():
            if line.startswith("Hugepagesize:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return sysfs.DEFAULT_SIZE_KB


def parse_mounts(text: str, default_pagesize_kb: int = sysfs.DEFAULT_SIZE_KB) -> tuple[HugetlbfsMount, ...]:
    """hugetlbfs entries of a /proc/mounts text, in mount order."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[2] != FSTYPE:
            continue
        options = tuple(fields[3].split(","))
        pagesize = default_pagesize_kb
        for option in options:
            if option.startswith("pagesize="):
                pagesize = sysfs.parse_size_kb(option.partition("=")[2])
        found.append(HugetlbfsMount(_unescape(fields[0]), _unescape(fields[1]), pagesize, options))
    return tuple(found)


def find_mounts(proc_root: str | Path = PROC_ROOT) -> tuple[HugetlbfsMount, ...]:
    """Every hugetlbfs mounted in this mount namespace."""
    path = Path(proc_root) / "mounts"
    try:
        text = path.read_text()
    except OSError as exc:
        raise HugepageError(f"reading {path}", errno=exc.errno) from exc
    return parse_mounts(text, _default_pagesize_kb(proc_root))


def find_mount(path: str | Path, proc_root: str | Path = PROC_ROOT) -> HugetlbfsMount | None:
    """The hugetlbfs mounted on `path` (the last one when stacked), if any."""
    want = os.path.realpath(path)
    matches = [m for m in find_mounts(proc_root) if os.path.realpath(m.path) == want]
    return matches[-1] if matches else None


def _mounted_fstype(path: str, proc_root: str | Path) -> str | None:
    """File system type mounted on exactly `path` (any type), if any."""
    fstype = None
    try:
        text = (Path(proc_root) / "mounts").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and os.path.realpath(_unescape(fields[1])) == path:
            fstype = fields[2]
    return fstype


def _libc_call(name: str, *args) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _sys_mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    _libc_call("mount", source.encode(), target.encode(), fstype.encode(), ctypes.c_ulong(flags), data.encode())


def _sys_umount(target: str) -> None:
    _libc_call("umount2", target.encode(), 0)


def mount_hugetlbfs(path: str | Path | None = None, *, size_kb: int = sysfs.DEFAULT_SIZE_KB,
                    mode: int | None = None, sysfs_root: str | Path = sysfs.SYSFS_ROOT,
                    proc_root: str | Path = PROC_ROOT) -> HugetlbfsMount:
    """Mount hugetlbfs with `size_kb` pages on `path` (created if missing).

    Idempotent: a hugetlbfs of that page size already there is returned as it
    is. Another page size or another file system there is an error.
    """
    sysfs.check_size(size_kb, sysfs_root)
    target = os.path.realpath(path if path is not None else default_mount_path(size_kb))
    mounted_here = _mounted_fstype(target, proc_root)
    if mounted_here == FSTYPE:
        existing = find_mount(target, proc_root)
        if existing.pagesize_kb != size_kb:
            raise HugepageUsageError(f"{target} already has hugetlbfs with {sysfs.format_size(existing.pagesize_kb)} "
                              f"pages, not {sysfs.format_size(size_kb)}")
        return existing
    if mounted_here is not None:
        raise HugepageUsageError(f"{target} already has a {mounted_here} file system mounted on it")
    options = [f"pagesize={sysfs.format_size(size_kb)}"]
    if mode is not None:
        options.append(f"mode={mode:o}")
    try:
        os.makedirs(target, exist_ok=True)
        _sys_mount(FSTYPE, target, FSTYPE, MS_NOSUID | MS_NODEV, ",".join(options))
    except OSError as exc:
        raise HugepageError(f"mounting hugetlbfs ({sysfs.format_size(size_kb)} pages) on {target}",
                            errno=exc.errno) from exc
    mounted = find_mount(target, proc_root)
    if mounted is None:
        raise HugepageError(f"mounted hugetlbfs on {target} but it is not in {Path(proc_root) / 'mounts'}")
    return mounted


def unmount_hugetlbfs(path: str | Path, *, proc_root: str | Path = PROC_ROOT) -> bool:
    """Unmount the hugetlbfs on `path`; False when none is mounted there.

    Files left in it are destroyed with the mount and their pages go back to
    the pool. A file still mapped keeps the mount busy (EBUSY).
    """
    target = os.path.realpath(path)
    fstype = _mounted_fstype(target, proc_root)
    if fstype is None:
        return False
    if fstype != FSTYPE:
        raise HugepageUsageError(f"{target} has a {fstype} file system, not hugetlbfs: not unmounting it")
    try:
        _sys_umount(target)
    except OSError as exc:
        hint = " (a process still has a file of it open or mapped)" if exc.errno == _errno.EBUSY else ""
        raise HugepageError(f"unmounting {target}{hint}", errno=exc.errno) from exc
    return True
