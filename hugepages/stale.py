"""Find and remove hugepage files left behind by a crashed run.

Two kinds of file live in hugetlbfs folders: DPDK's `*map_*` segment files
and LogCaster's `logcaster-ring-*` ring files (in a `logcaster-<uid>`
directory of their user, which is scanned too). While their owner runs, the
file is locked (DPDK holds flock(LOCK_SH) on every segment it uses), mapped
(it shows in /proc/<pid>/maps) or open (/proc/<pid>/fd). A file with none of
the three belongs to nobody: its pages stay out of the pool until someone
unlinks it. This is the check DPDK's own clear_hugedir() does (the flock),
plus the /proc check for files whose owner does not lock them.

Removal takes flock(LOCK_EX) first and unlinks while holding it, so a
process that starts using the file at the same moment (and locks it, as DPDK
does) either makes us skip it or finds it gone.
"""

from __future__ import annotations

import errno as _errno
import fcntl
import fnmatch
import os
import stat
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from appliance import paths
from hugepages import mount as hmount
from hugepages.errors import HugepageError

PROC_ROOT = hmount.PROC_ROOT
DPDK_PATTERN = "*map_*"
RING_PATTERN = paths.RING_FILE_PREFIX + "*"
RING_HOME_PATTERN = paths.RING_HOME_PREFIX + "[0-9]*"   # a user's ring directory in a mount
# struct flock on Linux (x86_64, aarch64): short type, short whence,
# off_t start, off_t len, pid_t pid, padded to 32 bytes.
_FLOCK = struct.Struct("@hhqqi4x")


@dataclass(frozen=True)
class StaleFile:
    path: str
    kind: str               # "dpdk" or "ring"
    size_bytes: int         # the file's length
    allocated_bytes: int    # hugepage memory backing it (pages faulted in)
    page_size_kb: int

    @property
    def pages(self) -> int:
        page = self.page_size_kb * 1024
        return -(-self.allocated_bytes // page)


@dataclass(frozen=True)
class HeldFile:
    path: str
    kind: str
    reason: str             # "mapped", "open", "mapped, open", "flock", "fcntl lock", "unknown", or a
                            # ring's "holds N undelivered records" (the next `logcaster run` delivers them)
    pids: tuple[int, ...]   # holders when known


@dataclass(frozen=True)
class StaleScan:
    stale: tuple[StaleFile, ...]
    held: tuple[HeldFile, ...]
    dirs: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def allocated_bytes(self) -> int:
        return sum(f.allocated_bytes for f in self.stale)


@dataclass(frozen=True)
class CleanReport:
    removed: tuple[StaleFile, ...]        # with dry_run: what would be removed
    skipped: tuple[tuple[str, str], ...]  # (path, why)
    dry_run: bool
    warnings: tuple[str, ...]

    @property
    def bytes_freed(self) -> int:
        return sum(f.allocated_bytes for f in self.removed)

    def pages_freed(self) -> dict[int, int]:
        """Pages freed per page size (kB)."""
        pages: dict[int, int] = {}
        for f in self.removed:
            pages[f.page_size_kb] = pages.get(f.page_size_kb, 0) + f.pages
        return pages


def file_kind(name: str) -> str | None:
    if fnmatch.fnmatchcase(name, RING_PATTERN):
        return "ring"
    if fnmatch.fnmatchcase(name, DPDK_PATTERN):
        return "dpdk"
    return None


def _scan_dirs(dirs, proc_root) -> list[tuple[str, int]]:
    """(folder, page size kB) for the given folders or every hugetlbfs mount."""
    if dirs is None:
        dirs = hmount.find_mounts(proc_root)
    out, seen = [], set()
    for d in dirs:
        if isinstance(d, hmount.HugetlbfsMount):
            path, page_kb = d.path, d.pagesize_kb
        else:
            path = str(d)
            try:  # hugetlbfs reports its page size as the block size
                page_kb = os.statvfs(path).f_bsize // 1024
            except OSError:
                page_kb = 4
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            out.append((real, page_kb))
            out += [(home, page_kb) for home in _ring_homes(real)]
    return out


def _ring_homes(folder: str) -> list[str]:
    """The users' ring directories in a folder (appliance/ring.py puts
    each user's rings in one): real directories, not symlinks."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    return [e.path for e in entries if fnmatch.fnmatchcase(e.name, RING_HOME_PATTERN) and e.is_dir(follow_symlinks=False)]


def _candidates(folders: list[tuple[str, int]], warnings: list[str]) -> list[tuple[str, str, os.stat_result, int]]:
    found, seen = [], set()
    for folder, page_kb in folders:
        try:
            names = sorted(os.listdir(folder))
        except OSError as exc:
            warnings.append(f"cannot list {folder}: {os.strerror(exc.errno)}")
            continue
        for name in names:
            kind = file_kind(name)
            if kind is None:
                continue
            path = os.path.join(folder, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            found.append((path, kind, st, page_kb))
    return found


def _lock_state(fd: int) -> tuple[str, int] | None:
    """('flock'|'fcntl lock', pid or 0) when another open file holds a lock."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return ("flock", 0)
    fcntl.flock(fd, fcntl.LOCK_UN)
    # F_GETLK tests for a POSIX lock without taking one, and names its owner.
    query = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    l_type, _, _, _, pid = _FLOCK.unpack(fcntl.fcntl(fd, fcntl.F_GETLK, query))
    if l_type != fcntl.F_UNLCK:
        return ("fcntl lock", max(pid, 0))
    return None


def _open_nofollow(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)


def _strip_deleted(text: str) -> str:
    return text[:-len(" (deleted)")] if text.endswith(" (deleted)") else text


def proc_holders(files: Iterable[tuple[str, os.stat_result]], proc_root: str | Path = PROC_ROOT,
                 ignore_pid: int | None = None) -> tuple[dict[str, list[tuple[int, str]]], list[int]]:
    """For each (path, stat), the (pid, 'mapped'|'open') of live processes that
    map it or hold it open; plus the pids whose maps or fds could not be read."""
    files = list(files)
    by_path = {path: [] for path, _ in files}
    by_inode = {(os.major(st.st_dev), os.minor(st.st_dev), st.st_ino): path for path, st in files}
    names = {os.path.basename(p): p for p in by_path}
    unreadable: list[int] = []
    if not by_path:
        return by_path, unreadable
    for entry in os.scandir(proc_root):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == ignore_pid:
            continue
        try:
            hits = _maps_hits(entry.path, by_path, by_inode) | _fd_hits(entry.path, by_path, names, by_inode)
        except (FileNotFoundError, ProcessLookupError):
            continue  # the process exited while we looked
        except PermissionError:
            unreadable.append(pid)
            continue
        for path, how in hits:
            by_path[path].append((pid, how))
    return by_path, unreadable


def _maps_hits(pid_dir: str, by_path, by_inode) -> set[tuple[str, str]]:
    hits = set()
    with open(os.path.join(pid_dir, "maps")) as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) < 5 or not fields[4].isdigit() or fields[4] == "0":
                continue
            major, _, minor = fields[3].partition(":")
            path = by_inode.get((int(major, 16), int(minor, 16), int(fields[4])))
            if path is None and len(fields) == 6:
                named = _strip_deleted(fields[5].rstrip("\n"))
                path = named if named in by_path else None
            if path is not None:
                hits.add((path, "mapped"))
    return hits


def _fd_hits(pid_dir: str, by_path, names, by_inode) -> set[tuple[str, str]]:
    hits = set()
    fd_dir = os.path.join(pid_dir, "fd")
    for fd in os.listdir(fd_dir):
        link = os.path.join(fd_dir, fd)
        try:
            target = _strip_deleted(os.readlink(link))
        except FileNotFoundError:
            continue  # closed meanwhile
        if target in by_path:
            hits.add((target, "open"))
        elif os.path.basename(target) in names:
            # Same name, other path: another mount namespace may see the
            # folder elsewhere; compare the inode to be sure.
            try:
                st = os.stat(link)
            except OSError:
                continue
            path = by_inode.get((os.major(st.st_dev), os.minor(st.st_dev), st.st_ino))
            if path is not None:
                hits.add((path, "open"))
    return hits


def _comm(proc_root: str | Path, pid: int) -> str:
    try:
        return (Path(proc_root) / str(pid) / "comm").read_text().strip()
    except OSError:
        return "?"


def find_stale(dirs: Iterable[str | Path | hmount.HugetlbfsMount] | None = None, *,
               proc_root: str | Path = PROC_ROOT, unreadable_means_held: bool | None = None) -> StaleScan:
    """Scan `dirs` (default: every hugetlbfs mount) for DPDK map files and
    LogCaster ring files, and sort them into stale and held.

    A process whose maps/fds cannot be read might hold a file. Without root
    that is any other user's process, so (`unreadable_means_held` None: when
    not root) unlocked files then count as held. As root only sandboxed or
    LSM-protected processes are unreadable; they are named in a warning and
    the lock check still protects DPDK's files.
    """
    if unreadable_means_held is None:
        unreadable_means_held = os.geteuid() != 0
    warnings: list[str] = []
    folders = _scan_dirs(dirs, proc_root)
    found = _candidates(folders, warnings)
    holders, unreadable = proc_holders([(path, st) for path, _, st, _ in found], proc_root)
    if unreadable:
        names = ", ".join(f"{pid} ({_comm(proc_root, pid)})" for pid in unreadable[:5])
        more = f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
        consequence = ("files with no lock are counted as held, not stale" if unreadable_means_held
                       else "their maps are not checked")
        warnings.append(f"could not read process(es) {names}{more} in {proc_root}: {consequence}")
    stale, held = [], []
    for path, kind, st, page_kb in found:
        reason, pids = _held_by(path, holders[path], bool(unreadable) and unreadable_means_held)
        if reason is None and kind == "ring":
            reason = _undelivered(path)
        if reason == "gone":
            continue  # removed by its owner while we looked
        if reason is None:
            stale.append(StaleFile(path, kind, st.st_size, st.st_blocks * 512, page_kb))
        else:
            held.append(HeldFile(path, kind, reason, pids))
    return StaleScan(tuple(stale), tuple(held), tuple(d for d, _ in folders), tuple(warnings))


def _undelivered(path: str) -> str | None:
    """A ring nobody uses may still hold records a crashed run captured and
    its sinks never committed: the next start of that appliance delivers
    them (appliance/recovery.py), so it is not stale. Unreadable rings
    (another layout version) are stale."""
    try:
        from appliance.errors import ShimError
        from appliance.ring import Ring
    except ImportError:                 # the shim is not built: nothing can read a ring here
        return None
    try:
        with Ring.attach(path, consumer=False) as ring:
            s = ring.stats()
    except ShimError:                   # not a ring this build can read: stale
        return None
    left = s["records_published"] - s["records_released"]
    return f"holds {left:,} undelivered records (the next logcaster run delivers them)" if left else None


def _held_by(path: str, users: list[tuple[int, str]], unsure: bool) -> tuple[str | None, tuple[int, ...]]:
    if users:
        return ", ".join(sorted({how for _, how in users})), tuple(sorted({pid for pid, _ in users}))
    try:
        fd = _open_nofollow(path)
    except FileNotFoundError:
        return "gone", ()
    except OSError:
        return "unknown", ()
    try:
        lock = _lock_state(fd)
    finally:
        os.close(fd)
    if lock is not None:
        return lock[0], (lock[1],) if lock[1] else ()
    if unsure:
        return "unknown", ()
    return None, ()


def clean_stale(dirs: Iterable[str | Path | hmount.HugetlbfsMount] | None = None, *, dry_run: bool = True,
                proc_root: str | Path = PROC_ROOT, unreadable_means_held: bool | None = None) -> CleanReport:
    """Remove stale files (with dry_run, the default, only say which)."""
    if unreadable_means_held is None:
        unreadable_means_held = os.geteuid() != 0
    scan = find_stale(dirs, proc_root=proc_root, unreadable_means_held=unreadable_means_held)
    if dry_run:
        return CleanReport(scan.stale, (), True, scan.warnings)
    removed, skipped = [], []
    for stale_file in scan.stale:
        why = _remove_if_still_stale(stale_file, proc_root, unreadable_means_held)
        if why is None:
            removed.append(stale_file)
        else:
            skipped.append((stale_file.path, why))
    return CleanReport(tuple(removed), tuple(skipped), False, scan.warnings)


def _remove_if_still_stale(stale_file: StaleFile, proc_root: str | Path, unreadable_means_held: bool) -> str | None:
    """Unlink under flock(LOCK_EX); None when removed, else why not."""
    try:
        fd = _open_nofollow(stale_file.path)
    except FileNotFoundError:
        return "already gone"
    except OSError as exc:
        return f"cannot open: {os.strerror(exc.errno)}"
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return "locked by a process since the scan"
        st = os.fstat(fd)
        # Our own descriptor is open on it now: leave this process out.
        holders, unreadable = proc_holders([(stale_file.path, st)], proc_root, ignore_pid=os.getpid())
        if holders[stale_file.path] or (unreadable and unreadable_means_held):
            return "in use by a process since the scan"
        try:
            current = os.lstat(stale_file.path)
        except FileNotFoundError:
            return "already gone"
        if (current.st_dev, current.st_ino) != (st.st_dev, st.st_ino):
            return "replaced by a new file since the scan"
        try:
            os.unlink(stale_file.path)
        except OSError as exc:
            if exc.errno == _errno.ENOENT:
                return "already gone"
            raise HugepageError(f"removing {stale_file.path}", errno=exc.errno) from exc
        return None
    finally:
        os.close(fd)  # drops the lock
