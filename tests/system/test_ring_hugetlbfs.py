"""The batch ring on hugetlbfs: a private mount (never the machine's own, where
DPDK may run), file size rounded up to the huge page size, memory reserved
at creation (a short pool is an error there, not a SIGBUS later), the ring
shared with a consumer in another process, and the fallback to /dev/shm.

Needs root (mount, huge page pool). Huge pages this test adds to the pool
are given back afterwards.
"""

import errno
import multiprocessing
import os
import subprocess
import time
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from appliance.decoder import Decoder
from appliance.errors import ShimError
from appliance.ring import DATA, Ring, batch_max, ring_size

pytestmark = pytest.mark.root

HUGE = 2 * 1024 * 1024
POOL = Path("/sys/kernel/mm/hugepages/hugepages-2048kB")
PAGES = 8          # pages this module needs free
CAP, AVG = 16, 128
FULL = batch_max(CAP, AVG)
HANG = 30


def _read(name: str) -> int:
    return int((POOL / name).read_text())


def _frame(seq: int, rec: int) -> bytes:
    payload = f"<14>1 2023-11-14T22:13:20Z host app - - - seq={seq} rec={rec}".encode()
    return bytes(Ether() / IP(src="198.18.0.1", dst="198.18.0.2") / UDP(sport=40000, dport=514)
                 / payload)


@pytest.fixture(scope="module")
def huge_pages():
    """At least PAGES free 2 MiB pages; the ones added are removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root: mounts hugetlbfs and sizes the huge page pool")
    if not POOL.is_dir():
        pytest.skip(f"no 2 MiB huge page support ({POOL} missing)")
    added = max(0, PAGES - _read("free_hugepages"))
    if added:
        (POOL / "nr_hugepages").write_text(str(_read("nr_hugepages") + added))
        if _read("free_hugepages") < PAGES:
            (POOL / "nr_hugepages").write_text(str(max(0, _read("nr_hugepages") - added)))
            pytest.fail(f"could not reserve {PAGES} free 2 MiB huge pages (memory too fragmented?)")
    try:
        yield
    finally:
        if added:
            (POOL / "nr_hugepages").write_text(str(max(0, _read("nr_hugepages") - added)))


def _mount(where: Path, size: str | None = None) -> None:
    opts = "pagesize=2M,mode=0700" + (f",size={size}" if size else "")
    subprocess.run(["mount", "-t", "hugetlbfs", "-o", opts, "logcaster-test", str(where)], check=True)


def _mounted(where: Path, size: str | None = None):
    """Mount, yield, then empty and unmount (lazily if something still maps
    a file there, which is then a test failure: a ring was left open)."""
    where.mkdir()
    _mount(where, size)
    try:
        yield where
    finally:
        for f in where.iterdir():
            f.unlink()
        if subprocess.run(["umount", str(where)]).returncode != 0:
            subprocess.run(["umount", "--lazy", str(where)], check=True)
            pytest.fail(f"{where} was busy at the end of the test: a ring left mapped")


@pytest.fixture
def hugedir(tmp_path, huge_pages):
    yield from _mounted(tmp_path / "huge")


@pytest.fixture
def small_hugedir(tmp_path, huge_pages):
    """A hugetlbfs mount limited to 2 pages: rings larger than that do not fit."""
    yield from _mounted(tmp_path / "small", size="4M")


def _consume(path, results):
    out = []
    with Ring.attach(path) as ring:
        while (got := ring.next_batch(timeout=HANG)) is not None:
            index, rb = got
            out.append((index, rb.column("message").to_pylist()))
            ring.release(index + 1)
        results.put((out, ring.drained))


def test_ring_on_hugetlbfs(hugedir):
    need = ring_size(4 * FULL, CAP, AVG)
    assert need % HUGE, "pick a geometry that needs rounding"
    path = str(hugedir / "ring-q1")
    free = _read("free_hugepages")
    ring = Ring.create(path, size=4 * FULL, capacity=CAP, avg_payload=AVG, queue_id=1)
    try:
        pages = -(-need // HUGE)
        assert ring.hugetlb and ring.page_size == HUGE
        assert ring.map_size == os.path.getsize(path) == pages * HUGE
        assert free - _read("free_hugepages") == pages, "reserved at creation"

        results = multiprocessing.get_context("spawn").Queue()
        consumer = multiprocessing.get_context("spawn").Process(target=_consume, args=(path, results))
        consumer.start()
        decoder = Decoder()
        sent = []
        for seq in range(10):          # waits on the consumer when the ring is full
            while (slot := ring.acquire()) is None:
                time.sleep(0.001)
            assert slot.seq == seq
            decoder.decode_frames([_frame(seq, j) for j in range(seq % 3 + 1)], slot)
            ring.publish()
            sent.append((seq, [f"seq={seq} rec={j}" for j in range(seq % 3 + 1)]))
        ring.set_closed()
        got, drained = results.get(timeout=HANG)
        consumer.join(HANG)
        assert consumer.exitcode == 0 and drained
        assert got == sent
        s = ring.stats()
        assert s["batches_released"] == 10 and s["records_released"] == sum(len(m) for _, m in sent)
        assert s["batches_dropped"] == 0

        with Ring.attach(path, consumer=False) as observer:
            assert observer.hugetlb and observer.map_size == ring.map_size
            assert observer.wait(timeout=0) != DATA
    finally:
        ring.close()
        Ring.unlink(path)
    assert _read("free_hugepages") == free, "pages given back on unlink"


def test_short_huge_page_budget_is_a_clean_error(small_hugedir):
    assert ring_size(16 * FULL, CAP, AVG) > 4 * 1024 * 1024
    path = small_hugedir / "ring-big"
    with pytest.raises(ShimError) as e:
        Ring.create(path, size=16 * FULL, capacity=CAP, avg_payload=AVG)   # > 4 MiB
    assert e.value.errno in (errno.ENOSPC, errno.ENOMEM)
    assert not path.exists(), "nothing left behind"


def test_create_in_falls_back_to_shm(small_hugedir, tmp_path):
    shm = tmp_path / "shm"
    shm.mkdir()
    ring = Ring.create_in("ring-q2", dirs=[str(small_hugedir), str(shm)], size=16 * FULL,
                          capacity=CAP, avg_payload=AVG, queue_id=2)
    with ring:
        assert ring.path == str(shm / "ring-q2") and not ring.hugetlb
    small = Ring.create_in("ring-q3", dirs=[str(small_hugedir), str(shm)], size=2 * FULL,
                           capacity=CAP, avg_payload=AVG)
    with small:
        assert small.hugetlb and small.path == str(small_hugedir / "ring-q3")
    Ring.unlink(small.path)
    with pytest.raises(ValueError, match="map_"):
        Ring.create_in("rte_map_0", dirs=[str(shm)], size=2 * FULL, capacity=CAP, avg_payload=AVG)
