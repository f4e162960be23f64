"""The shared-memory ring of batches between an RX queue and its worker.

One ring per RX queue: a file on hugetlbfs (fallback /dev/shm) holding a
header page and a data area sized in bytes, where batches of any size up to
the capacity follow each other; single producer (the C RX loop, or a Python
producer such as offline replay), single consumer (one worker). The C side
(dpdk_shim/src/ring.c) does the work; this is the thin layer.

Consumer contract (DESIGN.md, "Batch and ring contracts"): `take()` returns
every batch published since the last take, as one zero-copy Arrow table
(`Taken.table()`) and their C headers; `release(upto)` once every sink has
committed everything before `upto`. The ring is the sinks' spool: a worker
that dies loses nothing, its replacement starts reading at the tail, so
batches taken but not released are delivered again (at-least-once; sinks
skip what they already hold), and a ring left by a crashed appliance is
drained at the next start.

Tables from `take()` and RecordBatches from `next_batch()` are views of the
ring: valid until their batches are released (the producer then reuses the
bytes). Mappings are closed with `close()` or the context manager, not by
the garbage collector; a view still alive at close() keeps the memory
mapped until it goes, so it never points at unmapped memory.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import sys
import time
import weakref
from collections.abc import Iterable

import pyarrow as pa

from appliance import paths
from appliance.batch import record_batch
from appliance.errors import EnvironmentProblem, ShimError
from dpdk_shim import check, ffi, lib
from hugepages.mount import find_mounts

log = logging.getLogger(__name__)

TIMEOUT = lib.LC_RING_TIMEOUT
DATA = lib.LC_RING_DATA
DRAINED = lib.LC_RING_DRAINED

# Ring file names avoid "map_": DPDK's EAL deletes unlocked *map_* files in
# every hugetlbfs directory it scans (DESIGN.md, machine rules).
_MAX_WAIT_MS = 2**31 - 1

_ATTACH_ERRORS = {
    errno.ENOENT: "no such ring file",
    errno.EBADMSG: "not a LogCaster ring (bad magic or too short)",
    errno.EAGAIN: "ring is still being created",
    errno.EPROTO: "ring made by an incompatible build (ring version or batch layout differ)",
    errno.EINVAL: "ring file size does not match its header (truncated or corrupt)",
}
_CREATE_ERRORS = {
    errno.EEXIST: "ring file exists (a live ring, or a stale one to unlink)",
    errno.ENOSPC: "not enough room on the file system or free huge pages",
    errno.ENOMEM: "not enough memory or free huge pages",
    errno.EINVAL: f"bad geometry (capacity 1..2^20, avg_payload <= 65535, "
                  f"a data area of at least {lib.LC_RING_MIN_BATCHES} full batches)",
}
_TAKE_MAX = 1 << 16             # batches one take() returns at most
_STREAM_BYTES = 5 * 8           # struct ArrowArrayStream: five pointers


class RingDirError(EnvironmentProblem):
    """No private directory for the rings here (see private_dir)."""


def _raise(rc: int, doing: str, reasons: dict[int, str]) -> None:
    reason = reasons.get(-rc)
    raise ShimError(f"{doing}: {reason}" if reason else doing, errno=-rc)


def ring_size(data_size: int, capacity: int, avg_payload: int) -> int:
    """Bytes of a ring file with `data_size` bytes for batches (before
    rounding up to the huge page size on hugetlbfs)."""
    return check(lib.lc_ring_size(data_size, capacity, avg_payload), "sizing a ring")


def batch_max(capacity: int, avg_payload: int) -> int:
    """Bytes a batch takes in the ring while it is being filled (full size)."""
    return check(lib.lc_ring_batch_max(capacity, avg_payload), "sizing a batch")


def private_dir(base: str | os.PathLike) -> str:
    """`base`/logcaster-<euid>: the directory this user's rings live in,
    created mode 0700. An existing one is used only if it is a directory
    (not a symlink), owned by this user and closed to everyone else: in a
    shared /dev/shm another user could otherwise plant files or directories
    under a ring's name (refusing the start) or read a ring. RingDirError
    says what is wrong with it."""
    path = os.path.join(os.fspath(base), paths.ring_home_name(os.geteuid()))
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise RingDirError(f"cannot create the ring directory {path}", errno=exc.errno) from None
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise RingDirError(f"{path} is not a directory (someone else's file?): remove it", errno=errno.ENOTDIR)
    if st.st_uid != os.geteuid():
        raise RingDirError(f"the ring directory {path} belongs to uid {st.st_uid}, not to this user "
                           f"(uid {os.geteuid()}): remove it", errno=errno.EPERM)
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)           # ours: make it private again
    return path


def ring_bases(base: str | None = None) -> list[str]:
    """`base` (ring.dir), or every writable hugetlbfs mount, then /dev/shm."""
    return [base] if base else [m.path for m in find_mounts() if os.access(m.path, os.W_OK)] + [paths.SHM_DIR]


def ring_dirs(base: str | None = None) -> list[str]:
    """Where this user's rings may live, best first: the private directory
    in each of ring_bases(base). A base where the private directory cannot
    be had is skipped with a warning; none at all is an error naming each
    reason."""
    out, problems = [], []
    for b in ring_bases(base):
        try:
            out.append(private_dir(b))
        except RingDirError as exc:
            problems.append(str(exc))
            log.warning("rings: not in %s: %s", b, exc)
    if not out:
        raise RingDirError("no directory for the rings: " + "; ".join(problems))
    return out


class _Mapping:
    """Owner of every zero-copy view of one ring mapping: `buffer` is the
    whole mapping as a Python buffer. Views reference this object, so close()
    can tell whether any is still alive."""

    __slots__ = ("buffer", "__weakref__")

    def __init__(self, base, size):
        self.buffer = ffi.buffer(base, size)


class Slot:
    """A ring slot acquired by the producer: a batch in shared memory.

    Has `.hdr` like appliance.batch.Batch, so the decoder fills it directly.
    Valid while the ring is open (it does not keep the mapping alive;
    to_arrow() views do).
    """

    def __init__(self, hdr, ring: "Ring"):
        self.hdr = hdr
        self.ring = ring

    def __len__(self) -> int:
        return self.hdr.count

    @property
    def seq(self) -> int:
        return self.hdr.seq

    def to_arrow(self) -> pa.RecordBatch:
        self.ring._ring()       # refuses a closed ring
        return record_batch(self.hdr, self.ring._map)


class Taken:
    """The batches one take() returned: indices [first, end), their C headers
    (`hdrs`, for C encoders) and, on demand, one zero-copy Table over all of
    them. Valid until those batches are released."""

    __slots__ = ("ring", "first", "end", "hdrs", "records", "_table")

    def __init__(self, ring: "Ring", first: int, hdrs, n: int, records: int):
        self.ring = ring
        self.first = first
        self.end = first + n
        self.hdrs = ffi.new("struct lc_batch_hdr *[]", n)    # `struct lc_batch_hdr *` each
        ffi.memmove(self.hdrs, hdrs, n * ffi.sizeof("struct lc_batch_hdr *"))
        self.records = records
        self._table: pa.Table | None = None

    def __len__(self) -> int:
        return self.end - self.first

    def table(self) -> pa.Table:
        """One Table, a chunk per batch, over the ring's memory (no copy):
        one C call, imported by pyarrow in C++."""
        if self._table is None:
            self._table = self.ring._export(self.hdrs)
        return self._table


class Ring:
    """One mapped ring. Use `create` (producer side) or `attach` (consumer side)."""

    def __init__(self, c, path: str):
        self._c = c
        self.path = path
        info = ffi.new("struct lc_ring_info *")
        lib.lc_ring_info(c, info)
        self.capacity = info.capacity
        self.avg_payload = info.avg_payload
        self.queue_id = info.queue_id
        self.hugetlb = bool(info.hugetlb)
        self.run_id = info.run_id
        self.data_size = info.data_size
        self.batch_max = info.batch_max
        self.map_size = info.map_size
        self.page_size = info.page_size
        self._map = _Mapping(info.base, info.map_size)
        self._slot_out = ffi.new("struct lc_batch_hdr **")
        self._hdrs = ffi.new("struct lc_batch_hdr *[]", _TAKE_MAX)
        self._u64 = ffi.new("uint64_t *")

    # ---- life cycle -------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike, *, size: int, capacity: int = 1024,
               avg_payload: int = 256, queue_id: int = 0, run_id: int = 0) -> Ring:
        """Create the ring file (must not exist) with `size` bytes for batches
        (rounded up to whole pages). `run_id` names the run whose batches it
        holds (the sinks' duplicate check across crashes)."""
        path = os.fspath(path)
        out = ffi.new("struct lc_ring **")
        rc = lib.lc_ring_create(path.encode(), size, capacity, avg_payload, queue_id, run_id, out)
        if rc < 0:
            _raise(rc, f"creating ring {path}", _CREATE_ERRORS)
        return cls(out[0], path)

    @classmethod
    def create_in(cls, name: str, dirs: Iterable[str] | None = None, **geometry) -> Ring:
        """Create ring `name` in the first directory that has room (default:
        ring_dirs(), this user's private directories on hugetlbfs first,
        /dev/shm last)."""
        if "map_" in name:
            raise ValueError(f"ring name {name!r}: DPDK deletes *map_* files on hugetlbfs")
        dirs = list(ring_dirs() if dirs is None else dirs)
        error = None
        for d in dirs:
            try:
                ring = cls.create(os.path.join(d, name), **geometry)
            except ShimError as e:
                if e.errno not in (errno.ENOSPC, errno.ENOMEM, errno.EACCES, errno.EPERM, errno.EROFS):
                    raise
                log.warning("ring %s: %s; trying the next directory", name, e)
                error = e
                continue
            if error is not None:
                log.warning("ring %s created in %s (fallback)", name, d)
            return ring
        raise error or ValueError("no directory to create a ring in")

    @classmethod
    def attach(cls, path: str | os.PathLike, *, consumer: bool = True) -> Ring:
        """Map an existing ring. With `consumer`, take the consumer role
        (ShimError EBUSY while another live process holds it; a release the
        previous consumer died in is finished); reading starts at the
        committed tail. consumer=False is for observers (stats)."""
        path = os.fspath(path)
        out = ffi.new("struct lc_ring **")
        rc = lib.lc_ring_attach(path.encode(), out)
        if rc < 0:
            _raise(rc, f"attaching ring {path}", _ATTACH_ERRORS)
        if consumer:
            rc = lib.lc_ring_claim(out[0])
            if rc < 0:
                lib.lc_ring_close(out[0])
                _raise(rc, f"attaching ring {path}",
                       {errno.EBUSY: "another consumer holds this ring"})
        return cls(out[0], path)

    @staticmethod
    def unlink(path: str | os.PathLike) -> None:
        path = os.fspath(path)
        check(lib.lc_ring_unlink(path.encode()), f"unlinking ring {path}")

    @property
    def buffer(self):
        """The whole mapping as a Python buffer (header page, then the batches)."""
        self._ring()
        return self._map.buffer

    def close(self) -> None:
        """Give up the consumer role and unmap. If views of the ring are still
        alive, the unmapping waits for the last of them to go (Python views
        here; Arrow tables from take() hold the mapping in C)."""
        if self._c is None:
            return
        c, mapping, self._c, self._map = self._c, self._map, None, None
        if sys.getrefcount(mapping) > 2:    # `mapping` and getrefcount's argument
            log.debug("ring %s: views still alive, unmapping when they go", self.path)
            lib.lc_ring_unclaim(c)
            weakref.finalize(mapping, lib.lc_ring_close, c)
            return
        del mapping
        check(lib.lc_ring_close(c), f"closing ring {self.path}")

    @property
    def closed(self) -> bool:
        return self._c is None

    def __enter__(self) -> Ring:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._c is None else f"head={self.head} tail={self.tail}"
        return f"<Ring {self.path} q{self.queue_id} {self.data_size >> 20} MiB {state}>"

    @property
    def c(self):
        """The `struct lc_ring *` (for the C RX loops)."""
        return self._ring()

    def _ring(self):
        if self._c is None:
            raise ValueError(f"ring {self.path} is closed")
        return self._c

    # ---- producer ---------------------------------------------------------

    def acquire(self) -> Slot | None:
        """A full-size empty batch at the head, seq = its index; None when the
        ring lacks the room (then count the loss with drop())."""
        rc = lib.lc_ring_acquire(self._ring(), self._slot_out)
        if rc == -errno.ENOBUFS:
            return None
        check(rc, f"acquiring a slot of ring {self.path}")
        return Slot(self._slot_out[0], self)

    def publish(self) -> None:
        """Compact the acquired batch to what it holds and make it visible."""
        check(lib.lc_ring_publish(self._ring()), f"publishing to ring {self.path}")

    def drop(self, records: int) -> None:
        """Count one batch of `records` records lost because the ring was full."""
        lib.lc_ring_drop(self._ring(), records)

    def set_closed(self) -> None:
        """The producer is done: the consumer drains what is left, then stops."""
        lib.lc_ring_set_closed(self._ring())

    # ---- consumer ---------------------------------------------------------

    @property
    def head(self) -> int:
        lib.lc_ring_head(self._ring(), self._u64)
        return self._u64[0]

    @property
    def tail(self) -> int:
        lib.lc_ring_tail(self._ring(), self._u64)
        return self._u64[0]

    @property
    def read_index(self) -> int:
        """Index of the next batch take()/next_batch() returns."""
        lib.lc_ring_cursor(self._ring(), self._u64)
        return self._u64[0]

    def wait(self, index: int | None = None, timeout: float | None = None) -> int:
        """Sleep until batch `index` (default: the read index) is published
        (DATA), the producer closed and everything was read (DRAINED), or
        `timeout` seconds passed (TIMEOUT; None waits without limit). The GIL
        is released while waiting; signals interrupt it and their handlers run."""
        index = self.read_index if index is None else index
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            ms = -1 if deadline is None else min(
                _MAX_WAIT_MS, max(0, int((deadline - time.monotonic()) * 1000 + 0.999)))
            rc = lib.lc_ring_wait(self._ring(), index, ms)
            if rc != -errno.EINTR:
                return check(rc, f"waiting on ring {self.path}")
            # a signal: back in Python its handler has run (and may have raised)

    def _read(self, max_batches: int, timeout: float | None) -> tuple[int, int, int]:
        """(first index, n, records): up to max_batches batches from the
        cursor into self._hdrs, waiting up to `timeout` for the first."""
        c = self._ring()
        first = self.read_index
        self._u64[0] = 0
        n = lib.lc_ring_read(c, max_batches, self._hdrs, self._u64)
        if n == 0 and (timeout is None or timeout > 0) and self.wait(first, timeout) == DATA:
            n = lib.lc_ring_read(c, max_batches, self._hdrs, self._u64)
        check(n, f"reading ring {self.path} at batch {first}")
        return first, n, self._u64[0]

    def take(self, timeout: float | None = None, max_batches: int = _TAKE_MAX) -> Taken | None:
        """Every batch published since the last take (up to max_batches),
        waiting up to `timeout` seconds for one; None on timeout or when the
        producer closed and everything was read (see `drained`)."""
        first, n, records = self._read(min(max_batches, _TAKE_MAX), timeout)
        return Taken(self, first, self._hdrs, n, records) if n else None

    def next_slot(self, timeout: float | None = None) -> Slot | None:
        """The next batch as a Slot (its C header, `to_arrow()` for a
        zero-copy RecordBatch), waiting up to `timeout` seconds; None on
        timeout or when drained. A batch's seq is its index."""
        _, n, _ = self._read(1, timeout)
        return Slot(self._hdrs[0], self) if n else None

    def next_batch(self, timeout: float | None = None) -> tuple[int, pa.RecordBatch] | None:
        """(index, zero-copy RecordBatch) of the next batch; see next_slot."""
        slot = self.next_slot(timeout)
        return None if slot is None else (slot.seq, slot.to_arrow())

    def _export(self, hdrs) -> pa.Table:
        stream = ffi.new("char[]", _STREAM_BYTES)
        check(lib.lc_ring_export(self._ring(), hdrs, len(hdrs), stream), f"exporting batches of {self.path}")
        reader = pa.RecordBatchReader._import_from_c(int(ffi.cast("uintptr_t", stream)))
        return reader.read_all()

    @property
    def drained(self) -> bool:
        """The producer closed and every published batch was read."""
        return lib.lc_ring_wait(self._ring(), self.read_index, 0) == DRAINED

    def release(self, upto: int) -> int:
        """Batches before index `upto` are committed by every sink: their
        bytes go back to the producer. Returns how many were released."""
        return check(lib.lc_ring_release(self._ring(), upto),
                     f"releasing ring {self.path} up to {upto}")

    def stats(self) -> dict:
        s = ffi.new("struct lc_ring_stats *")
        lib.lc_ring_stats(self._ring(), s)
        return {
            "head": s.head,
            "tail": s.tail,
            "batches_published": s.batches_published,
            "records_published": s.records_published,
            "batches_dropped": s.batches_dropped,
            "records_dropped": s.records_dropped,
            "batches_released": s.batches_released,
            "records_released": s.records_released,
            "bytes_used": s.bytes_used,
            "data_size": s.data_size,
            "closed": bool(s.closed),
            "consumer_sleeping": bool(s.consumer_sleeping),
        }
