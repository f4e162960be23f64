"""Hugepage counts per NUMA node and page size, read from sysfs.

The kernel keeps one directory per page size, machine-wide under
`kernel/mm/hugepages/hugepages-<kB>kB/` and per node under
`devices/system/node/nodeN/hugepages/hugepages-<kB>kB/`. A machine built
without NUMA has no node directories: it is node 0, read through the global
directory. The sysfs root is a parameter everywhere so tests use a fake tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hugepages.errors import HugepageError, HugepageUsageError

SYSFS_ROOT = "/sys"
GLOBAL_DIR = "kernel/mm/hugepages"
NODE_DIR = "devices/system/node"
DEFAULT_SIZE_KB = 2048

_SIZE_DIR = re.compile(r"^hugepages-(\d+)kB$")
_NODE_NAME = re.compile(r"^node(\d+)$")
_SIZE_TEXT = re.compile(r"^\s*(\d+)\s*([kmg])i?b?\s*$", re.IGNORECASE)
_UNIT_KB = {"k": 1, "m": 1024, "g": 1024 * 1024}


def parse_size_kb(text: str) -> int:
    """'2M', '1G', '2048kB', '1GiB' -> size in kB. A unit is required: a bare
    number is ambiguous between bytes, kB and pages."""
    match = _SIZE_TEXT.match(str(text))
    if not match:
        raise HugepageUsageError(f"hugepage size {text!r}: expected a number with a unit, like 2M or 1G")
    return int(match.group(1)) * _UNIT_KB[match.group(2).lower()]


def format_size(size_kb: int) -> str:
    """2048 -> '2M', 1048576 -> '1G', 64 -> '64K' (the form hugetlbfs prints)."""
    for unit, factor in (("G", 1024 * 1024), ("M", 1024)):
        if size_kb % factor == 0:
            return f"{size_kb // factor}{unit}"
    return f"{size_kb}K"


@dataclass(frozen=True)
class PageCounts:
    """Counts for one page size on one node (node None: the whole machine).

    `reserved` (pages promised to mappings but not yet faulted in) exists only
    machine-wide in the kernel, so it is None on a node of a multi-node machine.
    """

    node: int | None
    size_kb: int
    total: int
    free: int
    surplus: int
    reserved: int | None


def read_count(path: Path) -> int:
    try:
        return int(Path(path).read_text().strip())
    except OSError as exc:
        raise HugepageError(f"reading {path}", errno=exc.errno) from exc
    except ValueError as exc:
        raise HugepageError(f"reading {path}: not a number") from exc


def write_count(path: Path, value: int) -> None:
    """Write a page count; the kernel allocates or frees pages inside write()."""
    try:
        Path(path).write_text(f"{int(value)}\n")
    except OSError as exc:
        raise HugepageError(f"writing {value} to {path}", errno=exc.errno) from exc


def page_sizes_kb(sysfs_root: str | Path = SYSFS_ROOT) -> tuple[int, ...]:
    """Page sizes this kernel supports, smallest first (empty: no hugetlb)."""
    base = Path(sysfs_root) / GLOBAL_DIR
    if not base.is_dir():
        return ()
    sizes = (_SIZE_DIR.match(entry.name) for entry in base.iterdir())
    return tuple(sorted(int(m.group(1)) for m in sizes if m))


def numa_nodes(sysfs_root: str | Path = SYSFS_ROOT) -> tuple[int, ...]:
    """Node ids with a sysfs directory; empty on a kernel without NUMA."""
    base = Path(sysfs_root) / NODE_DIR
    if not base.is_dir():
        return ()
    names = (_NODE_NAME.match(entry.name) for entry in base.iterdir())
    return tuple(sorted(int(m.group(1)) for m in names if m))


def hugepage_nodes(sysfs_root: str | Path = SYSFS_ROOT) -> tuple[int, ...]:
    """Nodes that have hugepage pools: (0,) on a machine without NUMA."""
    nodes = numa_nodes(sysfs_root)
    if not nodes:
        return (0,)
    base = Path(sysfs_root) / NODE_DIR
    return tuple(n for n in nodes if (base / f"node{n}" / "hugepages").is_dir())


def check_size(size_kb: int, sysfs_root: str | Path = SYSFS_ROOT) -> int:
    """Raise HugepageUsageError naming the supported sizes when `size_kb` is not one."""
    sizes = page_sizes_kb(sysfs_root)
    if not sizes:
        raise HugepageError(f"no hugepage support: {Path(sysfs_root) / GLOBAL_DIR} is missing")
    if size_kb not in sizes:
        allowed = ", ".join(format_size(s) for s in sizes)
        raise HugepageUsageError(f"hugepage size {format_size(size_kb)} is not supported here (supported: {allowed})")
    return size_kb


def global_dir(size_kb: int, sysfs_root: str | Path = SYSFS_ROOT) -> Path:
    check_size(size_kb, sysfs_root)
    return Path(sysfs_root) / GLOBAL_DIR / f"hugepages-{size_kb}kB"


def node_dir(node: int, size_kb: int, sysfs_root: str | Path = SYSFS_ROOT) -> Path:
    """The directory whose nr_hugepages sets `node`'s pool of `size_kb` pages."""
    check_size(size_kb, sysfs_root)
    if not numa_nodes(sysfs_root):
        if node != 0:
            raise HugepageUsageError(f"NUMA node {node}: this machine has no NUMA nodes (only node 0)")
        return global_dir(size_kb, sysfs_root)
    nodes = hugepage_nodes(sysfs_root)
    if node not in nodes:
        have = ", ".join(map(str, nodes)) or "none"
        raise HugepageUsageError(f"NUMA node {node} has no hugepage pool (nodes with one: {have})")
    return Path(sysfs_root) / NODE_DIR / f"node{node}" / "hugepages" / f"hugepages-{size_kb}kB"


def read_global_counts(size_kb: int, sysfs_root: str | Path = SYSFS_ROOT) -> PageCounts:
    base = global_dir(size_kb, sysfs_root)
    return PageCounts(
        node=None, size_kb=size_kb,
        total=read_count(base / "nr_hugepages"),
        free=read_count(base / "free_hugepages"),
        surplus=read_count(base / "surplus_hugepages"),
        reserved=read_count(base / "resv_hugepages"),
    )


def read_node_counts(node: int, size_kb: int, sysfs_root: str | Path = SYSFS_ROOT) -> PageCounts:
    base = node_dir(node, size_kb, sysfs_root)
    reserved = None
    # With one pool there is no doubt where the reservations are.
    if len(hugepage_nodes(sysfs_root)) == 1:
        reserved = read_count(global_dir(size_kb, sysfs_root) / "resv_hugepages")
    return PageCounts(
        node=node, size_kb=size_kb,
        total=read_count(base / "nr_hugepages"),
        free=read_count(base / "free_hugepages"),
        surplus=read_count(base / "surplus_hugepages"),
        reserved=reserved,
    )


def read_all_counts(sysfs_root: str | Path = SYSFS_ROOT) -> tuple[PageCounts, ...]:
    """Every (node, size) pool, nodes first, then one machine-wide row per size."""
    sizes = page_sizes_kb(sysfs_root)
    per_node = [read_node_counts(n, s, sysfs_root) for n in hugepage_nodes(sysfs_root) for s in sizes]
    return tuple(per_node + [read_global_counts(s, sysfs_root) for s in sizes])
