"""Reserve and release hugepages on one NUMA node.

Writing nr_hugepages asks the kernel to grow or shrink the pool; it may
grant fewer pages than asked (memory on the node short or fragmented) and the
write still succeeds, so every write is read back and checked. Shrinking
below the pages in use turns the busy ones into surplus pages, which the
kernel frees when their last user unmaps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hugepages import sysfs
from hugepages.errors import HugepageError, HugepageUsageError, ReservationError


@dataclass(frozen=True)
class Reservation:
    """Pool of one page size on one node around one nr_hugepages write."""

    node: int
    size_kb: int
    before: int      # pages in the pool before the write
    target: int      # the total written
    after: int       # the total read back
    surplus: int     # surplus pages after the write (busy pages past the target)

    @property
    def granted(self) -> int:
        """Pages added (negative: pages released)."""
        return self.after - self.before

    @property
    def short(self) -> int:
        """Pages asked for that the kernel did not grant."""
        return max(0, self.target - self.after)

    @property
    def busy(self) -> int:
        """Pages that could not be released yet because they are mapped."""
        return max(0, self.after - self.target)

    def describe(self) -> str:
        size = sysfs.format_size(self.size_kb)
        text = f"node {self.node}: {size} pages {self.before} -> {self.after}"
        if self.short:
            text += f" (asked {self.target}, {self.short} not granted)"
        if self.busy:
            text += f" ({self.busy} still mapped: surplus, freed when their users unmap them)"
        return text


def set_total(total: int, *, node: int = 0, size_kb: int = sysfs.DEFAULT_SIZE_KB,
              sysfs_root: str | Path = sysfs.SYSFS_ROOT) -> Reservation:
    """Write `total` to the node's nr_hugepages and report what the kernel did
    (no judgement: callers decide whether a shortfall is an error)."""
    if total < 0:
        raise HugepageUsageError(f"hugepage count {total}: must be 0 or more")
    base = sysfs.node_dir(node, size_kb, sysfs_root)
    before = sysfs.read_count(base / "nr_hugepages")
    return _write(base, node, size_kb, before, total)


def reserve(count: int, *, node: int = 0, size_kb: int = sysfs.DEFAULT_SIZE_KB, strict: bool = False,
            sysfs_root: str | Path = sysfs.SYSFS_ROOT) -> Reservation:
    """Add `count` pages to the node's pool.

    If the kernel grants fewer, raise ReservationError with the count granted;
    with `strict` the granted pages are given back first, else they are kept
    (a retry after the memory settles then needs fewer).
    """
    if count <= 0:
        raise HugepageUsageError(f"hugepage count {count}: must be 1 or more")
    base = sysfs.node_dir(node, size_kb, sysfs_root)
    before = sysfs.read_count(base / "nr_hugepages")
    return _grow(base, node, size_kb, before, before + count, strict)


def ensure_total(total: int, *, node: int = 0, size_kb: int = sysfs.DEFAULT_SIZE_KB, strict: bool = False,
                 sysfs_root: str | Path = sysfs.SYSFS_ROOT) -> Reservation:
    """Grow the node's pool to at least `total` pages (never shrinks it), so
    set-up scripts can run it on every boot."""
    if total < 0:
        raise HugepageUsageError(f"hugepage count {total}: must be 0 or more")
    base = sysfs.node_dir(node, size_kb, sysfs_root)
    before = sysfs.read_count(base / "nr_hugepages")
    if before >= total:
        return Reservation(node, size_kb, before, before, before,
                           sysfs.read_count(base / "surplus_hugepages"))
    return _grow(base, node, size_kb, before, total, strict)


def release(count: int | None = None, *, node: int = 0, size_kb: int = sysfs.DEFAULT_SIZE_KB,
            sysfs_root: str | Path = sysfs.SYSFS_ROOT) -> Reservation:
    """Give `count` pages of the node's pool back (None: all of them).

    Pages still mapped cannot go back at once; the result's `busy` counts them.
    """
    base = sysfs.node_dir(node, size_kb, sysfs_root)
    before = sysfs.read_count(base / "nr_hugepages")
    if count is None:
        target = 0
    elif count <= 0:
        raise HugepageUsageError(f"hugepage count {count}: must be 1 or more")
    elif count > before:
        raise HugepageUsageError(f"node {node} has {before} {sysfs.format_size(size_kb)} pages; "
                          f"cannot release {count} (release all of them instead)")
    else:
        target = before - count
    return _write(base, node, size_kb, before, target)


def _write(base: Path, node: int, size_kb: int, before: int, target: int) -> Reservation:
    sysfs.write_count(base / "nr_hugepages", target)
    return Reservation(node, size_kb, before, target,
                       sysfs.read_count(base / "nr_hugepages"),
                       sysfs.read_count(base / "surplus_hugepages"))


def _grow(base: Path, node: int, size_kb: int, before: int, target: int, strict: bool) -> Reservation:
    result = _write(base, node, size_kb, before, target)
    if not result.short:
        return result
    size = sysfs.format_size(size_kb)
    asked = target - before
    message = (f"node {node}: asked for {asked} more {size} pages, the kernel granted {result.granted} "
               f"(pool {before} -> {result.after}; the node's memory is short or fragmented)")
    if not strict:
        raise ReservationError(f"{message}; kept the {result.granted} granted", reservation=result, gave_back=False)
    restored = _write(base, node, size_kb, result.after, before)
    if restored.after != before:
        raise HugepageError(f"{message}; giving them back left the pool at {restored.after}, not {before}")
    raise ReservationError(f"{message}; gave them back", reservation=result, gave_back=True)
