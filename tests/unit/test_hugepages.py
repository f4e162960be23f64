"""hugepages package against fake sysfs/proc trees: counts per node, reserve
with partial grants, release, mounts, stale files, and the CLI group."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

import hugepages as hp
from appliance.cli.hugepages_cmd import hugepages as hugepages_cli
from appliance.errors import LogCasterError
from hugepages import mount as hmount
from hugepages import stale as hstale
from fakesys import FakeKernel, FakeProc, FakeSys, machine

MB2, GB1 = 2048, 1048576


@pytest.fixture
def two_nodes(tmp_path):
    fake = machine(tmp_path / "sys", nodes=2, cores_per_node=2)
    fake.set_pool(0, MB2, 8, free=6)
    fake.set_pool(1, MB2, 4, free=4)
    fake.set_reserved(MB2, 1)
    return fake


@pytest.fixture
def kernel(two_nodes, monkeypatch):
    """Node 0 can spare 10 more 2M pages, node 1 only 3."""
    return FakeKernel(two_nodes, {0: {MB2: 10}, 1: {MB2: 3}}).install(monkeypatch)


# -- sizes ------------------------------------------------------------------
@pytest.mark.parametrize("text,kb", [("2M", 2048), ("2m", 2048), ("1G", 1048576), ("1GiB", 1048576),
                                     ("2048kB", 2048), ("2048K", 2048), (" 64k ", 64)])
def test_parse_size(text, kb):
    assert hp.parse_size_kb(text) == kb


@pytest.mark.parametrize("text", ["2048", "2X", "", "M"])
def test_parse_size_needs_a_unit(text):
    with pytest.raises(hp.HugepageUsageError):
        hp.parse_size_kb(text)


def test_format_size():
    assert [hp.format_size(k) for k in (2048, 1048576, 64, 16384)] == ["2M", "1G", "64K", "16M"]


# -- counts -----------------------------------------------------------------
def test_counts_per_node_and_global(two_nodes):
    counts = {(c.node, c.size_kb): c for c in hp.read_all_counts(two_nodes.root)}
    assert set(counts) == {(0, MB2), (0, GB1), (1, MB2), (1, GB1), (None, MB2), (None, GB1)}
    node0, node1, machine_wide = counts[(0, MB2)], counts[(1, MB2)], counts[(None, MB2)]
    assert (node0.total, node0.free) == (8, 6)
    assert (node1.total, node1.free) == (4, 4)
    # Reservations exist only machine-wide on a multi-node machine.
    assert node0.reserved is None and node1.reserved is None
    assert (machine_wide.total, machine_wide.free, machine_wide.reserved) == (12, 10, 1)


def test_single_node_gets_the_reserved_count(tmp_path):
    fake = machine(tmp_path, nodes=1)
    fake.set_pool(0, MB2, 4)
    fake.set_reserved(MB2, 3)
    assert hp.read_node_counts(0, MB2, fake.root).reserved == 3


def test_machine_without_numa_is_node_0_via_global(tmp_path):
    fake = FakeSys(tmp_path)
    fake.hugepage_sizes([MB2])
    fake.set_pool(None, MB2, 5, free=2)
    assert hp.hugepage_nodes(fake.root) == (0,)
    counts = hp.read_node_counts(0, MB2, fake.root)
    assert (counts.node, counts.total, counts.free, counts.reserved) == (0, 5, 2, 0)
    with pytest.raises(hp.HugepageUsageError, match="no NUMA nodes"):
        hp.read_node_counts(1, MB2, fake.root)


def test_unknown_node_and_size_name_what_exists(two_nodes):
    with pytest.raises(hp.HugepageUsageError, match=r"node 3 .*nodes with one: 0, 1"):
        hp.read_node_counts(3, MB2, two_nodes.root)
    with pytest.raises(hp.HugepageUsageError, match=r"16M is not supported.*2M, 1G"):
        hp.read_node_counts(0, 16384, two_nodes.root)


def test_no_hugetlb_support(tmp_path):
    with pytest.raises(hp.HugepageError, match="no hugepage support"):
        hp.read_node_counts(0, MB2, tmp_path)


# -- reserve / release ------------------------------------------------------
def test_reserve_full_grant_on_one_node(two_nodes, kernel):
    result = hp.reserve(3, node=1, size_kb=MB2, sysfs_root=two_nodes.root)
    assert (result.before, result.target, result.after, result.granted, result.short) == (4, 7, 7, 3, 0)
    assert two_nodes.pool(1, MB2)["nr_hugepages"] == 7
    assert two_nodes.pool(0, MB2)["nr_hugepages"] == 8        # the other node is untouched
    assert two_nodes.pool(None, MB2)["nr_hugepages"] == 15    # the machine-wide sum follows


def test_reserve_partial_grant_keeps_pages_and_says_how_many(two_nodes, kernel):
    with pytest.raises(hp.ReservationError) as caught:
        hp.reserve(5, node=1, size_kb=MB2, sysfs_root=two_nodes.root)
    err = caught.value
    assert err.granted == 3 and err.reservation.short == 2 and not err.gave_back
    assert err.errno == errno.ENOMEM and isinstance(err, LogCasterError)
    assert "granted 3" in str(err) and "kept" in str(err)
    assert two_nodes.pool(1, MB2)["nr_hugepages"] == 7


def test_reserve_partial_grant_strict_gives_back(two_nodes, kernel):
    with pytest.raises(hp.ReservationError) as caught:
        hp.reserve(5, node=1, size_kb=MB2, strict=True, sysfs_root=two_nodes.root)
    assert caught.value.granted == 3 and caught.value.gave_back
    assert "gave them back" in str(caught.value)
    assert two_nodes.pool(1, MB2)["nr_hugepages"] == 4
    assert [value for _, value in kernel.writes] == [9, 4]


def test_reserve_nothing_granted(two_nodes, monkeypatch):
    FakeKernel(two_nodes, {0: {GB1: 0}}).install(monkeypatch)
    with pytest.raises(hp.ReservationError) as caught:
        hp.reserve(1, node=0, size_kb=GB1, sysfs_root=two_nodes.root)
    assert caught.value.granted == 0


def test_reserve_rejects_non_positive_count(two_nodes, kernel):
    with pytest.raises(hp.HugepageUsageError):
        hp.reserve(0, sysfs_root=two_nodes.root)
    assert kernel.writes == []


def test_ensure_total_only_grows(two_nodes, kernel):
    assert hp.ensure_total(6, node=0, sysfs_root=two_nodes.root).after == 8
    assert kernel.writes == []
    assert hp.ensure_total(12, node=0, sysfs_root=two_nodes.root).after == 12


def test_release_count_and_all(two_nodes, kernel):
    result = hp.release(2, node=1, sysfs_root=two_nodes.root)
    assert (result.before, result.after, result.granted, result.busy) == (4, 2, -2, 0)
    result = hp.release(None, node=1, sysfs_root=two_nodes.root)
    assert result.after == 0
    assert two_nodes.pool(None, MB2)["nr_hugepages"] == 8


def test_release_busy_pages_become_surplus(two_nodes, kernel):
    # Node 0: 8 pages, 2 in use. Releasing all leaves the 2 busy ones as surplus.
    result = hp.release(None, node=0, sysfs_root=two_nodes.root)
    assert (result.after, result.busy, result.surplus) == (2, 2, 2)
    assert "still mapped" in result.describe()


def test_release_more_than_there_is(two_nodes, kernel):
    with pytest.raises(hp.HugepageUsageError, match="has 4 2M pages"):
        hp.release(5, node=1, sysfs_root=two_nodes.root)


def test_write_failure_carries_errno(two_nodes):
    target = two_nodes.node_pool(0, MB2) / "nr_hugepages"
    target.unlink()
    target.mkdir()  # writing a directory fails like a read-only sysfs file would
    with pytest.raises(hp.HugepageError) as caught:
        hp.sysfs.write_count(target, 3)
    assert caught.value.errno == errno.EISDIR


def test_set_total_reports_without_judging(two_nodes, kernel):
    result = hp.set_total(20, node=1, sysfs_root=two_nodes.root)
    assert (result.after, result.short) == (7, 13)


# -- mounts -----------------------------------------------------------------
MOUNTS = """\
proc /proc proc rw,relatime 0 0
nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0
none /mnt/huge\\0401G hugetlbfs rw,relatime,pagesize=1024M 0 0
tmpfs /dev/shm tmpfs rw 0 0
hugetlbfs /mnt/old hugetlbfs rw,relatime 0 0
"""


def test_parse_mounts():
    mounts = hp.parse_mounts(MOUNTS, default_pagesize_kb=MB2)
    assert [(m.path, m.pagesize_kb, m.source) for m in mounts] == [
        ("/dev/hugepages", MB2, "nodev"), ("/mnt/huge 1G", GB1, "none"), ("/mnt/old", MB2, "hugetlbfs")]
    assert "pagesize=2M" in mounts[0].options


def test_find_mounts_default_pagesize_from_meminfo(tmp_path):
    proc = FakeProc(tmp_path, hugepagesize_kb=GB1)
    proc.add_mount("/mnt/x", options="rw")
    assert hp.find_mounts(proc.root)[0].pagesize_kb == GB1
    assert hp.find_mount("/mnt/x", proc.root).path == "/mnt/x"
    assert hp.find_mount("/mnt/y", proc.root) is None


@pytest.fixture
def fake_mount_calls(tmp_path, monkeypatch):
    """Stand-ins for mount(2)/umount2(2) that edit the fake /proc/mounts."""
    proc = FakeProc(tmp_path / "proc")
    calls = []

    def fake_mount(source, target, fstype, flags, data):
        calls.append(("mount", source, target, fstype, flags, data))
        proc.add_mount(target, fstype, f"rw,relatime,{data}", source)

    def fake_umount(target):
        calls.append(("umount", target))
        proc.remove_mount(target)

    monkeypatch.setattr(hmount, "_sys_mount", fake_mount)
    monkeypatch.setattr(hmount, "_sys_umount", fake_umount)
    return proc, calls


def test_mount_creates_folder_and_is_idempotent(tmp_path, two_nodes, fake_mount_calls):
    proc, calls = fake_mount_calls
    target = tmp_path / "a" / "huge"
    mounted = hp.mount_hugetlbfs(target, size_kb=GB1, sysfs_root=two_nodes.root, proc_root=proc.root)
    assert target.is_dir() and mounted.path == str(target) and mounted.pagesize_kb == GB1
    assert calls == [("mount", "hugetlbfs", str(target), "hugetlbfs",
                      hmount.MS_NOSUID | hmount.MS_NODEV, "pagesize=1G")]
    again = hp.mount_hugetlbfs(target, size_kb=GB1, sysfs_root=two_nodes.root, proc_root=proc.root)
    assert again == mounted and len(calls) == 1
    with pytest.raises(hp.HugepageUsageError, match="already has hugetlbfs with 1G pages"):
        hp.mount_hugetlbfs(target, size_kb=MB2, sysfs_root=two_nodes.root, proc_root=proc.root)


def test_mount_refuses_other_fs_and_bad_size(tmp_path, two_nodes, fake_mount_calls):
    proc, calls = fake_mount_calls
    proc.add_mount(tmp_path / "shm", fstype="tmpfs", options="rw")
    with pytest.raises(hp.HugepageUsageError, match="tmpfs"):
        hp.mount_hugetlbfs(tmp_path / "shm", sysfs_root=two_nodes.root, proc_root=proc.root)
    with pytest.raises(hp.HugepageUsageError, match="not supported"):
        hp.mount_hugetlbfs(tmp_path / "x", size_kb=64, sysfs_root=two_nodes.root, proc_root=proc.root)
    assert calls == []


def test_mount_failure_carries_errno(tmp_path, two_nodes, monkeypatch):
    proc = FakeProc(tmp_path / "proc")

    def refuse(*args):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(hmount, "_sys_mount", refuse)
    with pytest.raises(hp.HugepageError) as caught:
        hp.mount_hugetlbfs(tmp_path / "m", sysfs_root=two_nodes.root, proc_root=proc.root)
    assert caught.value.errno == errno.EPERM


def test_unmount(tmp_path, two_nodes, fake_mount_calls, monkeypatch):
    proc, calls = fake_mount_calls
    assert hp.unmount_hugetlbfs(tmp_path / "nothing", proc_root=proc.root) is False
    proc.add_mount(tmp_path / "shm", fstype="tmpfs", options="rw")
    with pytest.raises(hp.HugepageUsageError, match="not hugetlbfs"):
        hp.unmount_hugetlbfs(tmp_path / "shm", proc_root=proc.root)
    hp.mount_hugetlbfs(tmp_path / "m", sysfs_root=two_nodes.root, proc_root=proc.root)
    assert hp.unmount_hugetlbfs(tmp_path / "m", proc_root=proc.root) is True
    assert calls[-1] == ("umount", str(tmp_path / "m"))
    assert hp.find_mount(tmp_path / "m", proc.root) is None

    def busy(target):
        raise OSError(errno.EBUSY, "busy")

    hp.mount_hugetlbfs(tmp_path / "m", sysfs_root=two_nodes.root, proc_root=proc.root)
    monkeypatch.setattr(hmount, "_sys_umount", busy)
    with pytest.raises(hp.HugepageError, match="open or mapped") as caught:
        hp.unmount_hugetlbfs(tmp_path / "m", proc_root=proc.root)
    assert caught.value.errno == errno.EBUSY


# -- stale files ------------------------------------------------------------
@pytest.fixture
def hugedir(tmp_path):
    """A folder listed as a 2M hugetlbfs in a fake /proc, with a file of each kind."""
    folder = tmp_path / "huge"
    folder.mkdir()
    proc = FakeProc(tmp_path / "proc")
    proc.add_mount(folder)
    for name in ("rtemap_0", "rtemap_1", "lc_testmap_2", "logcaster-ring-0", "logcaster-ring-1",
                 "logcaster-ring-2", "notes.txt"):
        (folder / name).write_bytes(b"x" * 5000)
    (folder / "rtemap_9").symlink_to(folder / "notes.txt")  # never followed
    return folder, proc


def _names(files):
    return sorted(os.path.basename(f.path) for f in files)


def test_stale_without_any_holder(hugedir):
    folder, proc = hugedir
    scan = hp.find_stale(proc_root=proc.root)
    assert scan.dirs == (str(folder),)
    assert _names(scan.stale) == ["lc_testmap_2", "logcaster-ring-0", "logcaster-ring-1", "logcaster-ring-2",
                                  "rtemap_0", "rtemap_1"]
    ring = next(f for f in scan.stale if f.path.endswith("ring-0"))
    assert ring.kind == "ring" and ring.size_bytes == 5000 and ring.page_size_kb == MB2
    assert ring.allocated_bytes == os.stat(ring.path).st_blocks * 512 and ring.pages == 1
    assert next(f for f in scan.stale if f.path.endswith("rtemap_0")).kind == "dpdk"
    assert scan.held == () and scan.warnings == ()


def test_held_by_maps_fd_flock_and_fcntl_lock(hugedir):
    folder, proc = hugedir
    proc.process(100, maps=[folder / "logcaster-ring-0"])
    proc.process(101, fds=[folder / "logcaster-ring-1"])
    proc.process(102, maps=[folder / "lc_testmap_2"], deleted=True)
    # DPDK's way: a shared flock held by a live process (here: this one).
    holder = open(folder / "rtemap_1", "rb")
    fcntl.flock(holder, fcntl.LOCK_SH)
    # A POSIX (fcntl) read lock held by another process.
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl,sys; f=open(sys.argv[1],'rb'); fcntl.lockf(f, fcntl.LOCK_SH); print('ok', flush=True); "
         "sys.stdin.read()", str(folder / "logcaster-ring-2")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ok"
        scan = hp.find_stale(proc_root=proc.root)
    finally:
        child.stdin.close()
        child.wait()
        holder.close()
    assert _names(scan.stale) == ["rtemap_0"]
    held = {os.path.basename(f.path): (f.reason, f.pids) for f in scan.held}
    assert held == {"logcaster-ring-0": ("mapped", (100,)), "logcaster-ring-1": ("open", (101,)),
                    "lc_testmap_2": ("mapped", (102,)), "rtemap_1": ("flock", ()),
                    "logcaster-ring-2": ("fcntl lock", (child.pid,))}


@pytest.fixture
def unreadable_pid_200(hugedir, monkeypatch):
    folder, proc = hugedir
    proc.process(200)
    (proc.root / "200" / "comm").write_text("sandboxd\n")

    def denied(*args):
        raise PermissionError(errno.EACCES, "denied")

    monkeypatch.setattr(hstale, "_maps_hits", denied)
    return folder, proc


def test_unreadable_process_without_root_makes_unlocked_files_unknown(unreadable_pid_200):
    folder, proc = unreadable_pid_200
    scan = hp.find_stale(proc_root=proc.root, unreadable_means_held=True)
    assert scan.stale == ()
    assert {f.reason for f in scan.held} == {"unknown"}
    assert "could not read process(es) 200 (sandboxd)" in scan.warnings[0]
    assert "counted as held" in scan.warnings[0]
    report = hp.clean_stale(proc_root=proc.root, dry_run=False, unreadable_means_held=True)
    assert report.removed == () and (folder / "rtemap_0").exists()


def test_unreadable_process_as_root_is_named_and_locks_still_count(unreadable_pid_200):
    folder, proc = unreadable_pid_200
    holder = open(folder / "rtemap_1", "rb")
    fcntl.flock(holder, fcntl.LOCK_SH)
    try:
        scan = hp.find_stale(proc_root=proc.root, unreadable_means_held=False)
    finally:
        holder.close()
    assert "rtemap_0" in _names(scan.stale) and "rtemap_1" not in _names(scan.stale)
    assert "200 (sandboxd)" in scan.warnings[0] and "not checked" in scan.warnings[0]


def test_clean_is_dry_run_by_default(hugedir):
    folder, proc = hugedir
    proc.process(100, maps=[folder / "logcaster-ring-0"])
    report = hp.clean_stale(proc_root=proc.root)
    assert report.dry_run and len(report.removed) == 5
    assert all(os.path.exists(f.path) for f in report.removed)


def test_clean_removes_only_stale_and_reports_freed(hugedir):
    folder, proc = hugedir
    proc.process(100, maps=[folder / "logcaster-ring-0"])
    report = hp.clean_stale(proc_root=proc.root, dry_run=False)
    assert _names(report.removed) == ["lc_testmap_2", "logcaster-ring-1", "logcaster-ring-2", "rtemap_0",
                                      "rtemap_1"]
    assert sorted(os.listdir(folder)) == ["logcaster-ring-0", "notes.txt", "rtemap_9"]
    assert report.bytes_freed == sum(f.allocated_bytes for f in report.removed) > 0
    assert report.pages_freed() == {MB2: 5}


def test_clean_skips_a_file_locked_after_the_scan(hugedir, monkeypatch):
    folder, proc = hugedir
    scan = hp.find_stale([folder], proc_root=proc.root)
    monkeypatch.setattr(hstale, "find_stale", lambda *args, **kwargs: scan)
    late = open(folder / "rtemap_0", "rb")
    fcntl.flock(late, fcntl.LOCK_SH)  # a DPDK process started meanwhile
    proc.process(300, fds=[folder / "rtemap_1"])  # another one opened this file
    try:
        report = hp.clean_stale([folder], proc_root=proc.root, dry_run=False)
    finally:
        late.close()
    skipped = dict((os.path.basename(p), why) for p, why in report.skipped)
    assert skipped == {"rtemap_0": "locked by a process since the scan",
                       "rtemap_1": "in use by a process since the scan"}
    assert (folder / "rtemap_0").exists() and (folder / "rtemap_1").exists()


def test_explicit_dirs_use_their_block_size(tmp_path):
    proc = FakeProc(tmp_path / "proc")
    (tmp_path / "logcaster-ring-7").write_bytes(b"y")
    scan = hp.find_stale([tmp_path], proc_root=proc.root)
    assert _names(scan.stale) == ["logcaster-ring-7"]
    assert scan.stale[0].page_size_kb == os.statvfs(tmp_path).f_bsize // 1024


# -- CLI --------------------------------------------------------------------
def _cli(fake, proc, *args):
    return CliRunner().invoke(hugepages_cli, ["--sysfs-root", str(fake.root), "--proc-root", str(proc.root), *args])


def test_cli_status_table_and_json(two_nodes, hugedir):
    folder, proc = hugedir
    result = _cli(two_nodes, proc, "status")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NODE", "SIZE", "TOTAL", "FREE", "RESERVED", "SURPLUS"]
    assert lines[1].split() == ["0", "2M", "8", "6", "-", "0"]
    assert ["all", "2M", "12", "10", "1", "0"] in [line.split() for line in lines]
    assert f"  {folder}  pagesize=2M" in lines
    assert any("rtemap_0" in line for line in lines)
    data = json.loads(_cli(two_nodes, proc, "status", "--json").output)
    assert {(p["node"], p["size_kb"]): p["total"] for p in data["pools"]}[(1, MB2)] == 4
    assert data["mounts"][0]["path"] == str(folder) and len(data["stale"]) == 6


def test_cli_reserve_release(two_nodes, hugedir, kernel):
    _, proc = hugedir
    result = _cli(two_nodes, proc, "reserve", "2", "--node", "1")
    assert result.exit_code == 0 and "4 -> 6" in result.output
    result = _cli(two_nodes, proc, "reserve", "5", "--node", "1", "--strict")
    assert isinstance(result.exception, hp.ReservationError) and result.exception.gave_back
    assert two_nodes.pool(1, MB2)["nr_hugepages"] == 6
    result = _cli(two_nodes, proc, "reserve", "10", "--node", "0", "--total")
    assert result.exit_code == 0 and "8 -> 10" in result.output
    result = _cli(two_nodes, proc, "release", "--all", "--node", "1")
    assert result.exit_code == 0 and "6 -> 0" in result.output
    assert _cli(two_nodes, proc, "release", "--node", "1").exit_code == 2  # neither COUNT nor --all
    assert isinstance(_cli(two_nodes, proc, "reserve", "1", "--size", "3X").exception, hp.HugepageUsageError)


def test_cli_clean_lists_then_removes(two_nodes, hugedir):
    folder, proc = hugedir
    result = _cli(two_nodes, proc, "clean")
    assert result.exit_code == 0 and "run with --yes" in result.output
    assert (folder / "rtemap_0").exists()
    result = _cli(two_nodes, proc, "clean", "--yes")
    assert result.exit_code == 0 and "freed: 6 file(s)" in result.output and "(6 x 2M pages)" in result.output
    assert not (folder / "rtemap_0").exists()
    assert "no stale files" in _cli(two_nodes, proc, "clean").output


def test_cli_mount_unmount(tmp_path, two_nodes, fake_mount_calls):
    proc, calls = fake_mount_calls
    target = str(tmp_path / "hm")
    assert "mounted: hugetlbfs (2M pages)" in _cli(two_nodes, proc, "mount", target).output
    assert "already mounted" in _cli(two_nodes, proc, "mount", target).output
    assert f"unmounted {target}" in _cli(two_nodes, proc, "unmount", target).output
    assert "nothing to do" in _cli(two_nodes, proc, "unmount", target).output
    assert [c[0] for c in calls] == ["mount", "umount"]
