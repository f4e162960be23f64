"""Hugepages per NUMA node: counts, reserve/release, hugetlbfs mounts, and
stale files left by crashed runs. Every function takes the sysfs/proc root
as a parameter so tests run against fake trees."""

from hugepages.errors import HugepageError, HugepageUsageError, ReservationError
from hugepages.mount import (HugetlbfsMount, default_mount_path, find_mount, find_mounts, mount_hugetlbfs,
                             parse_mounts, unmount_hugetlbfs)
from hugepages.reserve import Reservation, ensure_total, release, reserve, set_total
from hugepages.stale import CleanReport, HeldFile, StaleFile, StaleScan, clean_stale, find_stale
from hugepages.sysfs import (PageCounts, format_size, hugepage_nodes, page_sizes_kb, parse_size_kb,
                             read_all_counts, read_global_counts, read_node_counts)

__all__ = [
    "HugepageError", "HugepageUsageError", "ReservationError",
    "HugetlbfsMount", "default_mount_path", "find_mount", "find_mounts", "mount_hugetlbfs", "parse_mounts",
    "unmount_hugetlbfs",
    "Reservation", "ensure_total", "release", "reserve", "set_total",
    "CleanReport", "HeldFile", "StaleFile", "StaleScan", "clean_stale", "find_stale",
    "PageCounts", "format_size", "hugepage_nodes", "page_sizes_kb", "parse_size_kb",
    "read_all_counts", "read_global_counts", "read_node_counts",
]
