"""hugepages on the real machine (root): counts, reserve/release on node 0,
and a private hugetlbfs mount with files that go stale when their process
exits. The machine's own /dev/hugepages and its files are only read."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import hugepages as hp
from appliance.cli.hugepages_cmd import hugepages as hugepages_cli

SIZE_KB = 2048
PAGE = SIZE_KB * 1024


def _need_hugetlb():
    if "hugetlbfs" not in Path("/proc/filesystems").read_text():
        pytest.skip("kernel without hugetlbfs (CONFIG_HUGETLBFS)")
    if SIZE_KB not in hp.page_sizes_kb():
        pytest.skip("kernel without 2M hugepages")


@pytest.fixture
def two_more_pages():
    """Two more 2M pages on node 0 for the test; exactly those two go back after."""
    _need_hugetlb()
    result = hp.reserve(2, node=0, size_kb=SIZE_KB, strict=True)
    try:
        yield result
    finally:
        hp.release(result.granted, node=0, size_kb=SIZE_KB)


@pytest.fixture
def private_mount(tmp_path, two_more_pages):
    mount = hp.mount_hugetlbfs(tmp_path / "huge", size_kb=SIZE_KB)
    try:
        yield mount
    finally:
        hp.unmount_hugetlbfs(mount.path)


class Holder:
    """A child process that maps (or flocks) a file until told to exit."""

    # libc mmap, not Python's mmap module: that one keeps a dup of the fd open,
    # and the point is a file held by nothing but its mapping.
    MAP = ("import ctypes, mmap, os, sys\n"
           "libc = ctypes.CDLL(None, use_errno=True)\n"
           "libc.mmap.restype = ctypes.c_void_p\n"
           "libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,"
           " ctypes.c_long]\n"
           "fd = os.open(sys.argv[1], os.O_RDWR)\n"
           "addr = libc.mmap(None, {size}, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)\n"
           "assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())\n"
           "ctypes.c_char.from_address(addr).value = b'x'\n"  # fault the page in: real hugepage memory now
           "os.close(fd)\n"
           "print('ready', flush=True)\n"
           "sys.stdin.read()\n")
    FLOCK = ("import fcntl, sys\n"
             "f = open(sys.argv[1], 'rb')\n"
             "fcntl.flock(f, fcntl.LOCK_SH)\n"  # what DPDK holds on its map files
             "print('ready', flush=True)\n"
             "sys.stdin.read()\n")

    def __init__(self, code: str, path: str):
        self.proc = subprocess.Popen([sys.executable, "-c", code, path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)


def _create(path: str, size: int) -> None:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def test_real_counts_add_up():
    _need_hugetlb()
    counts = hp.read_all_counts()
    for size in hp.page_sizes_kb():
        nodes = [c for c in counts if c.size_kb == size and c.node is not None]
        machine = next(c for c in counts if c.size_kb == size and c.node is None)
        assert nodes and all(0 <= c.free <= c.total for c in nodes)
        assert sum(c.total for c in nodes) == machine.total
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    default_kb = int(meminfo["Hugepagesize"].split()[0])
    machine = next(c for c in counts if c.size_kb == default_kb and c.node is None)
    assert int(meminfo["HugePages_Total"]) == machine.total


def test_reserve_two_then_release_restores_the_count():
    _need_hugetlb()
    before = hp.read_node_counts(0, SIZE_KB).total
    result = hp.reserve(2, node=0, size_kb=SIZE_KB, strict=True)
    try:
        assert (result.before, result.granted, result.short) == (before, 2, 0)
        assert hp.read_node_counts(0, SIZE_KB).total == before + 2
    finally:
        released = hp.release(result.granted, node=0, size_kb=SIZE_KB)
    assert released.after == before
    assert hp.read_node_counts(0, SIZE_KB).total == before


def test_private_mount_is_idempotent_and_listed(private_mount):
    assert hp.find_mount(private_mount.path) == private_mount
    assert private_mount.pagesize_kb == SIZE_KB and os.statvfs(private_mount.path).f_bsize == PAGE
    assert hp.mount_hugetlbfs(private_mount.path, size_kb=SIZE_KB) == private_mount
    if 1048576 in hp.page_sizes_kb():
        with pytest.raises(hp.HugepageUsageError, match="already has hugetlbfs with 2M pages"):
            hp.mount_hugetlbfs(private_mount.path, size_kb=1048576)


def test_mapped_ring_file_is_held_then_stale_then_cleaned(private_mount):
    path = os.path.join(private_mount.path, "logcaster-ring-systest")
    _create(path, PAGE)
    holder = Holder(Holder.MAP.format(size=PAGE), path)
    try:
        scan = hp.find_stale([private_mount])
        assert scan.stale == ()
        assert [(f.path, f.reason, f.pids) for f in scan.held] == [(path, "mapped", (holder.proc.pid,))]
        # A mapped file keeps the mount busy.
        with pytest.raises(hp.HugepageError) as caught:
            hp.unmount_hugetlbfs(private_mount.path)
        assert caught.value.errno == errno.EBUSY
    finally:
        holder.stop()
    scan = hp.find_stale([private_mount])
    assert scan.held == ()
    [stale] = scan.stale
    assert (stale.path, stale.kind, stale.size_bytes, stale.allocated_bytes, stale.pages) == (
        path, "ring", PAGE, PAGE, 1)
    assert hp.clean_stale([private_mount]).dry_run and os.path.exists(path)
    report = hp.clean_stale([private_mount], dry_run=False)
    assert [f.path for f in report.removed] == [path] and report.skipped == ()
    assert (report.bytes_freed, report.pages_freed()) == (PAGE, {SIZE_KB: 1})
    assert not os.path.exists(path)
    assert hp.unmount_hugetlbfs(private_mount.path) is True
    assert hp.find_mount(private_mount.path) is None


def test_a_ring_holding_undelivered_records_is_not_stale(private_mount):
    """A crashed run's ring with records its sinks never committed is what
    the next start delivers: `hugepages clean` keeps it until then."""
    from appliance.decoder import Decoder
    from appliance.ring import Ring, batch_max
    from appliance.sample import udp_frame

    path = os.path.join(private_mount.path, "logcaster-ring-undelivered")
    ring = Ring.create(path, size=2 * batch_max(8, 64), capacity=8, avg_payload=64)
    Decoder().decode_frames([udp_frame("198.18.1.2", b"<14>1 - h a - - - keep me")] * 3, ring.acquire())
    ring.publish()
    ring.close()                                     # nobody maps or locks it now
    [held] = hp.find_stale([private_mount]).held
    assert (held.path, held.reason) == (path, "holds 3 undelivered records (the next logcaster run delivers them)")
    report = hp.clean_stale([private_mount], dry_run=False)
    assert report.removed == () and os.path.exists(path)
    with Ring.attach(path) as consumer:              # delivered: now it is stale
        consumer.release(consumer.take(timeout=0).end)
    assert [f.path for f in hp.clean_stale([private_mount], dry_run=False).removed] == [path]


def test_flocked_dpdk_file_is_held_until_its_process_exits(private_mount):
    path = os.path.join(private_mount.path, "lc_systestmap_0")
    _create(path, PAGE)
    holder = Holder(Holder.FLOCK, path)
    try:
        [held] = hp.find_stale([private_mount]).held
        # The holder keeps its descriptor open (a flock lives on it), so /proc names it first.
        assert (held.path, held.kind, held.reason, held.pids) == (path, "dpdk", "open", (holder.proc.pid,))
        assert hp.clean_stale([private_mount], dry_run=False).removed == ()
        assert os.path.exists(path)
    finally:
        holder.stop()
    report = hp.clean_stale([private_mount], dry_run=False)
    assert [f.path for f in report.removed] == [path]
    assert report.bytes_freed == 0  # never faulted in: no page was held


def test_cli_status_on_the_real_machine():
    _need_hugetlb()
    result = CliRunner().invoke(hugepages_cli, ["status"])
    assert result.exit_code == 0, result.output
    assert result.output.split()[:6] == ["NODE", "SIZE", "TOTAL", "FREE", "RESERVED", "SURPLUS"]
