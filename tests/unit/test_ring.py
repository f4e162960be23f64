"""The shared-memory batch ring (dpdk_shim/src/ring.c, appliance/ring.py):
file validation, a ring sized in bytes holding batches of any size,
producer/consumer indices and wrap-around, the full-ring drop accounting,
take() as one zero-copy table, futex waits, and the at-least-once contract
across processes (spawned producer and consumer, a consumer killed with
SIGKILL, a release interrupted half-way).

Rings live in tmp_path (tmpfs or disk: the ring code does not care);
tests/system/test_ring_hugetlbfs.py covers hugetlbfs.
"""

import errno
import multiprocessing
import os
import signal
import stat
import struct
import threading
import time

import pytest

from appliance.decoder import Decoder
from appliance.errors import ShimError
from appliance.batch import SCHEMA
from appliance.ring import DATA, DRAINED, TIMEOUT, Ring, batch_max, ring_size
from dpdk_shim import lib
from helpers import rows_of, udp_frame

CAP = 8            # records per batch: small rings, fast tests
AVG = 64
HANG = 30          # seconds: an upper bound on hangs, not a timing assertion
FULL = batch_max(CAP, AVG)   # bytes of a batch being filled


def message(seq: int, rec: int) -> str:
    return f"seq={seq} rec={rec}"


def frame(seq: int, rec: int) -> bytes:
    return udp_frame(f"<14>1 2023-11-14T22:13:20Z host app - - - {message(seq, rec)}".encode())


def produce(ring: Ring, decoder: Decoder, nrec: int) -> int | None:
    """Publish one batch of `nrec` records whose messages name their seq;
    returns the seq, or None (and counts the drop) when the ring is full."""
    slot = ring.acquire()
    if slot is None:
        ring.drop(nrec)
        return None
    seq = slot.seq
    assert decoder.decode_frames([frame(seq, j) for j in range(nrec)], slot) == nrec
    ring.publish()
    return seq


def check_batch(index, rb, nrec=None):
    rows = rows_of(rb)
    if nrec is not None:
        assert len(rows) == nrec
    assert [r["message"] for r in rows] == [message(index, j) for j in range(len(rows))]


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "ring-q0")


@pytest.fixture
def ring(path):
    with Ring.create(path, size=4 * FULL, capacity=CAP, avg_payload=AVG, queue_id=3, run_id=77) as r:
        yield r


def fill(ring: Ring, decoder: Decoder, nrec: int) -> list[int]:
    """Publish batches of `nrec` records until the ring has no room; their seqs."""
    seqs = []
    while (seq := produce(ring, decoder, nrec)) is not None:
        seqs.append(seq)
    return seqs


# ---- creation, geometry, validation --------------------------------------------

def test_create_sizes_the_ring_in_bytes(ring, path):
    need = ring_size(4 * FULL, CAP, AVG)
    assert need == lib.LC_RING_HDR_SIZE + ring.data_size
    assert ring.batch_max == FULL >= lib.lc_batch_size(CAP, AVG) and ring.data_size % 4096 == 0
    assert os.path.getsize(path) == ring.map_size >= need
    assert ring.map_size % ring.page_size == 0
    assert (ring.capacity, ring.avg_payload, ring.queue_id, ring.run_id) == (CAP, AVG, 3, 77)
    assert ring.head == ring.tail == ring.read_index == 0
    assert ring.stats() == dict(head=0, tail=0, batches_published=0, records_published=0,
                                batches_dropped=0, records_dropped=0, batches_released=0,
                                records_released=0, bytes_used=0, data_size=ring.data_size,
                                closed=False, consumer_sleeping=False)
    slot = ring.acquire()
    assert slot.hdr.magic == lib.LC_BATCH_MAGIC and slot.hdr.capacity == CAP
    assert slot.hdr.queue_id == 3 and slot.seq == 0 and len(slot) == 0


@pytest.mark.parametrize("size", [0, FULL, 2 * FULL - 8192])
def test_create_rejects_a_ring_smaller_than_two_full_batches(path, size):
    with pytest.raises(ShimError) as e:
        Ring.create(path, size=size, capacity=CAP, avg_payload=AVG)
    assert e.value.errno == errno.EINVAL and "two full batches" in str(e.value) or "2 full" in str(e.value)
    assert not os.path.exists(path), "a failed create leaves nothing behind"


@pytest.mark.parametrize("capacity, avg", [(0, AVG), (1 << 21, AVG), (CAP, 70000)])
def test_create_rejects_bad_batch_geometry(path, capacity, avg):
    with pytest.raises(ShimError) as e:
        Ring.create(path, size=64 << 20, capacity=capacity, avg_payload=avg)
    assert e.value.errno == errno.EINVAL


def test_create_refuses_an_existing_file(ring, path):
    with pytest.raises(ShimError) as e:
        Ring.create(path, size=4 * FULL, capacity=CAP, avg_payload=AVG)
    assert e.value.errno == errno.EEXIST and "exists" in str(e.value)
    assert ring.head == 0   # the live ring is untouched


def test_attach_missing_file(tmp_path):
    with pytest.raises(ShimError) as e:
        Ring.attach(tmp_path / "nope")
    assert e.value.errno == errno.ENOENT and "no such ring file" in str(e.value)


def _attach_error(path) -> ShimError:
    with pytest.raises(ShimError) as e:
        Ring.attach(path)
    return e.value


def test_attach_rejects_garbage_and_short_files(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"\xab" * 8192)
    err = _attach_error(junk)
    assert err.errno == errno.EBADMSG and "bad magic" in str(err)
    short = tmp_path / "short"
    short.write_bytes(b"LCR2")
    assert _attach_error(short).errno == errno.EBADMSG
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert _attach_error(empty).errno == errno.EAGAIN
    unready = tmp_path / "unready"     # sized but magic not yet written
    unready.write_bytes(bytes(8192))
    assert _attach_error(unready).errno == errno.EAGAIN


def test_attach_rejects_wrong_size(ring, path):
    ring.close()
    size = os.path.getsize(path)
    os.truncate(path, size - 4096)
    err = _attach_error(path)
    assert err.errno == errno.EINVAL and "size" in str(err)
    os.truncate(path, size + 4096)
    assert _attach_error(path).errno == errno.EINVAL


def _patch(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def test_attach_rejects_other_versions_and_layouts(ring, path):
    ring.close()
    with open(path, "rb") as f:
        original = f.read(16)
    magic, version = struct.unpack_from("<IH", original)
    assert (magic, version) == (lib.LC_RING_MAGIC, lib.LC_RING_VERSION)
    _patch(path, 4, struct.pack("<H", version + 1))
    err = _attach_error(path)
    assert err.errno == errno.EPROTO and "incompatible" in str(err)
    _patch(path, 0, original)
    Ring.attach(path).close()
    _patch(path, 0, struct.pack("<I", lib.LC_RING_MAGIC - (1 << 24)))   # "LCR1": the fixed-slot ring
    assert _attach_error(path).errno == errno.EPROTO
    _patch(path, 0, original)
    _patch(path, 8, struct.pack("<H", lib.LC_BATCH_VERSION + 1))         # another batch layout
    assert _attach_error(path).errno == errno.EPROTO


def test_close_keeps_the_file_and_unlink_removes_it(path):
    ring = Ring.create(path, size=2 * FULL, capacity=CAP, avg_payload=AVG)
    ring.close()
    ring.close()    # idempotent
    assert ring.closed and os.path.exists(path)
    with pytest.raises(ValueError, match="closed"):
        ring.acquire()
    with Ring.attach(path) as again:
        assert again.data_size == ring.data_size
    Ring.unlink(path)
    assert not os.path.exists(path)


# ---- producer / consumer in one process ----------------------------------------

def test_records_move_through_the_ring(ring, path):
    decoder = Decoder()
    sizes = [3, 0, CAP, 1]
    assert [produce(ring, decoder, n) for n in sizes] == [0, 1, 2, 3]
    with Ring.attach(path) as consumer:
        assert consumer.read_index == 0
        for i, n in enumerate(sizes):
            index, rb = consumer.next_batch(timeout=0)
            assert index == i and rb.num_rows == n
            check_batch(index, rb, n)
            row = rows_of(rb)[0] if n else None
            if row:
                assert (row["hostname"], row["app_name"], row["src_ip"]) == ("host", "app", "198.18.0.1")
        assert consumer.next_batch(timeout=0) is None
        assert consumer.release(4) == 4
    s = ring.stats()
    assert (s["batches_published"], s["records_published"]) == (4, sum(sizes))
    assert (s["batches_released"], s["records_released"]) == (4, sum(sizes))
    assert (s["head"], s["tail"]) == (4, 4)


def test_wrap_around_many_laps_with_every_batch_size(ring, path):
    decoder = Decoder()
    n, released, records, used = 2000, 0, 0, 0
    with Ring.attach(path) as consumer:
        for seq in range(n):
            nrec = seq % (CAP + 1)           # 0..CAP records: batches of every size
            assert produce(ring, decoder, nrec) == seq
            slot = consumer.next_slot(timeout=0)
            assert slot.seq == seq and slot.hdr.total_size < FULL // 4    # compacted
            check_batch(slot.seq, slot.to_arrow(), nrec)
            records += nrec
            used += slot.hdr.total_size
            if seq % 3 == 2:        # release in uneven steps
                released += consumer.release(seq + 1)
        released += consumer.release(consumer.read_index)
    assert released == n
    s = ring.stats()
    assert s["tail"] == s["head"] == n and s["bytes_used"] == 0
    assert s["records_published"] == s["records_released"] == records
    assert s["batches_dropped"] == 0
    assert used > 3 * ring.data_size, "went round the ring several times"


def test_capacity_is_bytes_not_batches(ring, path):
    """Small batches are compacted: a ring of four full batches holds far
    more than four one-record batches, and a full one still drops exactly."""
    decoder = Decoder()
    small = fill(ring, decoder, 1)
    assert len(small) > 40
    full_ring = ring.stats()
    assert full_ring["data_size"] - full_ring["bytes_used"] < FULL
    with Ring.attach(path) as consumer:
        taken = consumer.take(timeout=0)
        assert (taken.first, taken.end, taken.records) == (0, len(small), len(small))
        assert taken.table().num_rows == len(small)
        consumer.release(taken.end)
    assert ring.stats()["bytes_used"] == 0
    big = fill(ring, decoder, CAP)
    assert len(big) >= 4, "full batches fit at least as many as the size says"


def test_full_ring_drops_and_counts_exactly(ring, path):
    decoder = Decoder()
    seqs = fill(ring, decoder, 2)            # the last produce() was dropped (2 records)
    assert seqs == list(range(len(seqs))) and len(seqs) > 4
    assert ring.acquire() is None                     # -ENOBUFS: full, never blocks
    assert [produce(ring, decoder, 5) for _ in range(3)] == [None] * 3
    s = ring.stats()
    assert (s["batches_dropped"], s["records_dropped"]) == (4, 17)
    with Ring.attach(path) as consumer:
        for i in range(2):
            assert consumer.next_batch(0)[0] == i
        # read but not released: still full
        assert ring.acquire() is None
        ring.drop(1)
        released = consumer.release(len(seqs))
        assert released == len(seqs)
    # room again, with the next seq
    assert produce(ring, decoder, 1) == len(seqs)
    s = ring.stats()
    assert (s["batches_published"], s["records_published"]) == (len(seqs) + 1, 2 * len(seqs) + 1)
    assert (s["batches_dropped"], s["records_dropped"]) == (5, 18)
    assert (s["batches_released"], s["records_released"]) == (len(seqs), 2 * len(seqs))


def test_take_returns_every_published_batch_as_one_table(ring, path):
    decoder = Decoder()
    sizes = [3, 1, CAP, 0, 2]
    for n in sizes:
        produce(ring, decoder, n)
    with Ring.attach(path) as consumer:
        taken = consumer.take(timeout=0)
        assert (taken.first, taken.end, len(taken), taken.records) == (0, 5, 5, sum(sizes))
        assert [taken.hdrs[i].seq for i in range(5)] == [0, 1, 2, 3, 4]
        table = taken.table()
        assert table.schema.equals(SCHEMA, check_metadata=True)
        assert [c.num_rows for c in table.to_batches()] == sizes
        msgs = table.column("message").to_pylist()
        assert msgs == [message(i, j) for i, n in enumerate(sizes) for j in range(n)]
        table.validate(full=True)
        assert consumer.take(timeout=0) is None
        produce(ring, decoder, 2)
        again = consumer.take(timeout=0)
        assert (again.first, again.end) == (5, 6)
        consumer.release(again.end)
    assert ring.stats()["records_released"] == sum(sizes) + 2


def test_a_table_keeps_the_memory_after_close(path):
    ring = Ring.create(path, size=2 * FULL, capacity=CAP, avg_payload=AVG)
    produce(ring, Decoder(), 3)
    consumer = Ring.attach(path)
    table = consumer.take(timeout=0).table()
    consumer.close()
    ring.close()
    assert _mapped(path), "the exported arrays hold the mapping"
    assert table.column("message").to_pylist() == [message(0, j) for j in range(3)]
    del table
    assert not _mapped(path)


def test_a_release_cut_short_is_finished_by_the_next_consumer(ring, path):
    """The journal: a consumer that died after writing it but before storing
    tail leaves a ring whose next consumer completes that release."""
    decoder = Decoder()
    for n in (1, 2, 3):
        produce(ring, decoder, n)
    with Ring.attach(path) as consumer:
        consumer.take(timeout=0)
        consumer.release(2)
        good = ring.stats()
    # roll tail/tail_pos/records_released back to what they were before
    # that release (the journal stays): what a death before those stores leaves
    hdr = ring.buffer
    tail_off = _field_offset(hdr, good["tail"], good["records_released"])
    struct.pack_into("<QQQ", hdr, tail_off, 0, 0, 0)
    assert ring.stats()["tail"] == 0
    with Ring.attach(path) as heir:
        assert heir.read_index == 2 and heir.tail == 2
        assert ring.stats()["records_released"] == 3
        index, rb = heir.next_batch(0)
        assert index == 2 and rb.num_rows == 3


def _field_offset(buf, tail: int, records: int) -> int:
    """Where the consumer line (tail, tail_pos, records_released) sits in the
    header page: found by its values, so the test does not copy ring.c's struct."""
    view = memoryview(buf)[:lib.LC_RING_HDR_SIZE]
    for off in range(0, lib.LC_RING_HDR_SIZE - 24, 64):
        t, _, r = struct.unpack_from("<QQQ", view, off)
        if (t, r) == (tail, records):
            return off
    raise AssertionError("consumer line not found")


def test_acquire_twice_reuses_the_slot_and_publish_needs_acquire(ring):
    with pytest.raises(ShimError) as e:
        ring.publish()
    assert e.value.errno == errno.EINVAL
    first = ring.acquire()
    Decoder().decode_frames([frame(0, 0)], first)
    second = ring.acquire()
    assert second.seq == first.seq == 0 and len(second) == 0   # laid out again, not a new batch
    ring.publish()
    assert ring.head == 1


def test_consumer_reads_ahead_and_release_bounds(ring, path):
    decoder = Decoder()
    for _ in range(3):
        produce(ring, decoder, 1)
    with Ring.attach(path) as consumer:
        assert [consumer.next_batch(0)[0] for _ in range(3)] == [0, 1, 2]
        assert consumer.tail == 0 and consumer.read_index == 3
        with pytest.raises(ShimError) as e:
            consumer.release(4)                # beyond head
        assert e.value.errno == errno.ERANGE
        assert consumer.release(2) == 2
        assert consumer.release(2) == 0
        with pytest.raises(ShimError) as e:
            consumer.release(1)                # behind tail
        assert e.value.errno == errno.ERANGE
        assert consumer.read_index == 3        # release does not move the reader back


def test_new_consumer_resumes_at_tail(ring, path):
    """At-least-once inside one process: a consumer that goes away after
    reading but before releasing; the next one gets those batches again."""
    decoder = Decoder()
    for n in (1, 2, 3, 4):
        produce(ring, decoder, n)
    with Ring.attach(path) as first:
        got = [first.next_batch(0) for _ in range(3)]
        assert [i for i, _ in got] == [0, 1, 2]
        first.release(1)
    with Ring.attach(path) as second:
        assert second.read_index == second.tail == 1
        for i, n in ((1, 2), (2, 3), (3, 4)):
            index, rb = second.next_batch(0)
            assert index == i
            check_batch(index, rb, n)
        second.release(4)
    assert ring.stats()["records_released"] == 10


def test_one_consumer_at_a_time(ring, path):
    with Ring.attach(path) as consumer:
        with pytest.raises(ShimError) as e:
            Ring.attach(path)
        assert e.value.errno == errno.EBUSY and "another consumer" in str(e.value)
        with Ring.attach(path, consumer=False) as observer:   # stats readers may look
            assert observer.stats()["head"] == 0
        assert consumer.head == 0
    Ring.attach(path).close()


def test_acquire_after_close_is_refused(ring):
    ring.set_closed()
    with pytest.raises(ShimError) as e:
        ring.acquire()
    assert e.value.errno == errno.EPIPE
    assert ring.stats()["closed"]


# ---- waiting -------------------------------------------------------------------

def _later(seconds, fn, *args):
    t = threading.Timer(seconds, fn, args)
    t.start()
    return t


def test_wait_returns_on_publish(ring, path):
    decoder = Decoder()
    with Ring.attach(path) as consumer:
        timer = _later(0.1, produce, ring, decoder, 1)
        start = time.monotonic()
        assert consumer.wait(timeout=5) == DATA
        assert time.monotonic() - start < 5   # woken, not timed out
        timer.join()
        assert consumer.next_batch(0)[0] == 0
        # next_batch waits the same way
        timer = _later(0.1, produce, ring, decoder, 2)
        index, rb = consumer.next_batch(timeout=5)
        assert index == 1 and rb.num_rows == 2
        timer.join()
        assert not ring.stats()["consumer_sleeping"]


def test_wait_times_out_without_data(ring):
    start = time.monotonic()
    assert ring.wait(timeout=0.05) == TIMEOUT
    assert time.monotonic() - start >= 0.04     # it slept (a futex timeout may end a tick early)
    assert ring.wait(timeout=0) == TIMEOUT
    assert ring.next_batch(timeout=0.01) is None
    assert not ring.drained


def test_wait_reports_closed_and_drained(ring, path):
    decoder = Decoder()
    produce(ring, decoder, 1)
    with Ring.attach(path) as consumer:
        ring.set_closed()
        assert consumer.wait(timeout=5) == DATA     # closed, but one batch left
        assert not consumer.drained
        assert consumer.next_batch(5)[0] == 0
        assert consumer.wait(timeout=5) == DRAINED
        assert consumer.drained
        assert consumer.next_batch(5) is None


def test_set_closed_wakes_a_sleeping_consumer(ring, path):
    with Ring.attach(path) as consumer:
        timer = _later(0.1, ring.set_closed)
        assert consumer.wait(timeout=HANG) == DRAINED
        timer.join()


def test_wait_forever_is_woken(ring):
    timer = _later(0.1, produce, ring, Decoder(), 1)
    assert ring.wait(timeout=None) == DATA
    timer.join()


# ---- separate processes --------------------------------------------------------

def _producer_proc(path, nbatches, results):
    decoder = Decoder()
    published = dropped_batches = records = dropped_records = 0
    with Ring.attach(path, consumer=False) as ring:
        for i in range(nbatches):
            slot = ring.acquire()
            nrec = (slot.seq if slot is not None else i) % 4
            records += nrec
            if slot is None:
                ring.drop(nrec)
                dropped_batches += 1
                dropped_records += nrec
                time.sleep(0.0005)
                continue
            decoder.decode_frames([frame(slot.seq, j) for j in range(nrec)], slot)
            ring.publish()
            published += 1
        ring.set_closed()
    results.put(("producer", nbatches, records, published, dropped_batches, dropped_records))


def _consumer_proc(path, results, stall_every):
    seqs, records, bad = [], 0, []
    with Ring.attach(path) as ring:
        while True:
            got = ring.next_batch(timeout=HANG)
            if got is None:
                break
            index, rb = got
            seqs.append(index)
            records += rb.num_rows
            msgs = rb.column("message").to_pylist()
            if msgs != [message(index, j) for j in range(index % 4)]:
                bad.append(index)
            if index % 2:
                ring.release(index + 1)
            if stall_every and index % stall_every == stall_every - 1:
                time.sleep(0.1)      # let the ring fill: the producer must drop, not block
        ring.release(ring.read_index)
        drained = ring.drained
    results.put(("consumer", seqs, records, bad, drained))


def _spawn(target, *args):
    p = multiprocessing.get_context("spawn").Process(target=target, args=args)
    p.start()
    return p


def _collect(results, n):
    out = {}
    for _ in range(n):
        item = results.get(timeout=HANG * 2)
        out[item[0]] = item[1:]
    return out


def test_producer_and_consumer_processes(path):
    nbatches = 1500
    ring = Ring.create(path, size=2 * FULL, capacity=CAP, avg_payload=AVG)
    results = multiprocessing.get_context("spawn").Queue()
    procs = [_spawn(_consumer_proc, path, results, 50), _spawn(_producer_proc, path, nbatches, results)]
    try:
        out = _collect(results, 2)
    finally:
        for p in procs:
            p.join(HANG)
            if p.is_alive():
                p.kill()
    seqs, records, bad, drained = out["consumer"]
    attempted, attempted_records, published, dropped, dropped_records = out["producer"]
    s = ring.stats()
    ring.close()
    assert drained and bad == []
    assert seqs == list(range(published)), "every seq exactly once, in order"
    assert s["batches_published"] == published and s["batches_dropped"] == dropped
    assert s["batches_released"] == published
    assert attempted == s["batches_released"] + s["batches_dropped"]
    assert attempted_records == s["records_released"] + s["records_dropped"]
    assert s["records_dropped"] == dropped_records
    assert s["records_published"] == s["records_released"] == records
    assert dropped > 0, "the consumer stalls were meant to fill the ring"
    assert [p.exitcode for p in procs] == [0, 0]


def _reader_that_dies(path, results):
    with Ring.attach(path) as ring:
        got = [ring.next_batch(timeout=HANG) for _ in range(3)]
        ring.release(1)
        results.put([(i, rows_of(rb)) for i, rb in got])
        time.sleep(HANG * 4)     # killed here: read 0..2, released only 0


def test_killed_consumer_loses_nothing(ring, path):
    decoder = Decoder()
    for n in (1, 2, 3, 4):
        produce(ring, decoder, n)
    results = multiprocessing.get_context("spawn").Queue()
    p = _spawn(_reader_that_dies, path, results)
    try:
        seen = results.get(timeout=HANG * 2)
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.join(HANG)
    assert p.exitcode == -signal.SIGKILL
    assert [i for i, _ in seen] == [0, 1, 2]
    assert ring.tail == 1
    with Ring.attach(path) as heir:        # the dead worker's claim went with it
        assert heir.read_index == 1
        again = [heir.next_batch(0) for _ in range(3)]
        assert [i for i, _ in again] == [1, 2, 3]
        assert [(i, rows_of(rb)) for i, rb in again[:2]] == seen[1:]
        check_batch(3, again[2][1], 4)
        heir.release(4)
    s = ring.stats()
    assert (s["batches_released"], s["records_released"]) == (4, 10)


def _mapped(path) -> bool:
    with open("/proc/self/maps") as f:
        return any(line.rstrip().endswith(path) for line in f)


def test_close_unmaps_and_a_live_view_defers_it(path):
    ring = Ring.create(path, size=2 * FULL, capacity=CAP, avg_payload=AVG)
    produce(ring, Decoder(), 2)
    ring.close()
    assert not _mapped(path)
    consumer = Ring.attach(path)
    index, rb = consumer.next_batch(0)
    consumer.close()
    # the view still reads the slot, and the consumer role is free again
    assert _mapped(path) and rows_of(rb)[1]["message"] == message(0, 1)
    with Ring.attach(path) as heir:
        assert heir.read_index == 0
    del rb
    assert not _mapped(path)


# ---- where rings live: a directory of their own user --------------------------------

def test_private_dir_is_made_for_this_user_only(tmp_path):
    from appliance.ring import private_dir

    home = private_dir(tmp_path)
    assert home == str(tmp_path / f"logcaster-{os.geteuid()}")
    st = os.lstat(home)
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o777 == 0o700
    os.chmod(home, 0o755)
    assert private_dir(tmp_path) == home and os.lstat(home).st_mode & 0o777 == 0o700, "made private again"


def test_private_dir_refuses_what_someone_else_placed(tmp_path):
    from appliance.ring import RingDirError, private_dir

    name = f"logcaster-{os.geteuid()}"
    planted = tmp_path / "file"
    planted.mkdir()
    (planted / name).write_text("not a directory")
    with pytest.raises(RingDirError, match="not a directory"):
        private_dir(planted)
    link = tmp_path / "link"
    link.mkdir()
    (link / name).symlink_to(tmp_path)
    with pytest.raises(RingDirError, match="not a directory"):
        private_dir(link)
    if os.geteuid() == 0:               # a directory of another user (root can make one)
        foreign = tmp_path / "foreign"
        (foreign / name).mkdir(parents=True)
        os.chown(foreign / name, 65534, 65534)
        with pytest.raises(RingDirError, match="belongs to uid 65534"):
            private_dir(foreign)


def test_ring_dirs_skip_a_base_they_cannot_use_and_say_why(tmp_path, caplog):
    from appliance.ring import RingDirError, ring_dirs

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / f"logcaster-{os.geteuid()}").write_text("x")
    with pytest.raises(RingDirError, match="no directory for the rings: .*not a directory"):
        ring_dirs(str(bad))
    assert ring_dirs(str(tmp_path)) == [str(tmp_path / f"logcaster-{os.geteuid()}")]
