"""`logcaster tap`: recent records of a running appliance, from a side ring
the workers fill while a tap asks for them; the main ring is never read.

Control. A tap claims RUN_DIR/<prefix>.tap.json: it takes an exclusive
flock(2) on it (a second tap is refused; the lock of a tap that died went
with it, so its file is simply taken over), writes {pid, session, filter}
and refreshes the file's mtime every HEARTBEAT_S. It removes the file
when it ends. A worker stats that path at most every CHECK_S (never per
record); the tap is live while the file parses, its mtime is younger than
STALE_S and its pid exists. With no live tap a worker does nothing else.

Side ring. While a tap is live each worker keeps RUN_DIR/<prefix>.tap.q<N>
(created under a temporary name and renamed, so a reader never sees it half
made; removed when the tap goes or the worker ends; a reader knows its file
was replaced by the link count, as inode numbers come back): a header page,
then SLOTS slots of SLOT_BYTES, each a 64-byte slot header and JSON lines
(the record JSON of `logcaster decode`, appliance/jsonl.py, without `raw`).
Per take the worker applies the filter to the take's table
(pyarrow.compute, vectorised), keeps at most RATE matching records a second
(a token bucket of BURST; an even spread of the matches when it must
choose) and writes them into one slot or more.

One writer, lock-free readers, by sequence numbers. Slot s (s = 1, 2, ...)
lives at index (s - 1) % SLOTS. The writer sets the slot's seq to 0, writes
the lines and the slot header, sets seq to s, then the header's write_seq
to s, and after the take the header's `matched` total. A reader reads
`matched`, then write_seq W, then slots up to W; a slot whose seq is not s
before and after the copy was overwritten (the reader fell behind) and is
skipped. Slots carry the session's running totals (records matched, lines
written) so a reader knows how many it missed whatever the cause: the
worker's cap, lines too long for a slot, slots overwritten before it read
them. Python stores to a mapping are plain stores: the order above holds
on x86 (TSO); on weaker memory a reader may at worst see one garbled slot,
which the seq checks or the JSON parser reject.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import mmap
import os
import struct
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from appliance import paths
from appliance.errors import ENVIRONMENT, ConfigError, LogCasterError
from appliance.instance import process_alive

log = logging.getLogger(__name__)

CHECK_S = 0.5                   # a worker looks at the control file this often
HEARTBEAT_S = 0.5               # a tap refreshes it this often
STALE_S = 3.0                   # a control file older than this is no tap
RATE = 2000                     # records per second per worker, at most
BURST = 500                     # ... in one go
SLOTS = 64
SLOT_BYTES = 128 << 10          # slot header included: a record whose JSON is longer is not shown
CONTROL_MAX = 64 << 10

MAGIC = b"LCTAP\0\0\1"
VERSION = 1
HEADER_BYTES = 4096
_HDR = struct.Struct("<8sIIQQQQ")  # magic, version, slots, slot_bytes, session, writer pid, created ns
_WRITE_SEQ = 64                 # u64: last slot published (0: none)
_MATCHED = 72                   # u64: records the session's filter matched so far
_SLOT = struct.Struct("<QQQII")  # seq (0 while written), matched, written (session totals), bytes, lines
SLOT_HDR = 64
_U64 = struct.Struct("<Q")

# RFC 5424 severities (appliance/decoder.py SEVERITIES) and the spellings people also use.
_SEVERITY_NAMES = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7,
                   "emergency": 0, "panic": 0, "critical": 2, "error": 3, "warn": 4, "informational": 6}


def parse_severity(text: str) -> tuple[int, bool]:
    """`warning` or `4`: that severity and every more severe one (numbers up
    to 4); `=warning`: that severity alone. Returns (value, exact)."""
    exact = text.startswith("=")
    word = text[1:] if exact else text
    value = int(word) if word.isdigit() else _SEVERITY_NAMES.get(word.lower())
    if value is None or not 0 <= value <= 7:
        raise ConfigError(f"--severity: {text!r} is not a severity (0-7 or emerg, alert, crit, err, warning, "
                          f"notice, info, debug; a leading '=' for that one alone)")
    return value, exact


@dataclass(frozen=True)
class TapFilter:
    """What a tap wants: every given condition holds (AND). Records without
    the field (null hostname, app or PRI, RFC 5424 without MSG) never match
    a condition on it."""

    host: str | None = None         # hostname equals
    app: str | None = None          # app_name equals
    severity: int | None = None     # severity <= this (more severe), or == with severity_exact
    severity_exact: bool = False
    grep: str | None = None         # RE2 regex found in message (pyarrow match_substring_regex)

    def check(self) -> None:
        """Refuse a regex RE2 does not take, before any worker sees it."""
        if self.grep is not None:
            try:
                pc.match_substring_regex(pa.array([""]), self.grep)
            except pa.ArrowInvalid as exc:
                raise ConfigError(f"--grep: {self.grep!r}: {exc}") from None

    def rows(self, table: pa.Table) -> np.ndarray:
        """Indices of the rows of `table` that match, in order."""
        conds = []
        if self.host is not None:
            conds.append(pc.equal(table["hostname"], self.host))
        if self.app is not None:
            conds.append(pc.equal(table["app_name"], self.app))
        if self.severity is not None:
            cmp = pc.equal if self.severity_exact else pc.less_equal
            conds.append(cmp(table["severity"], pa.scalar(self.severity, pa.uint8())))
        if self.grep is not None:
            conds.append(pc.match_substring_regex(table["message"], self.grep))
        if not conds:
            return np.arange(table.num_rows, dtype=np.int64)
        mask = conds[0]
        for cond in conds[1:]:
            mask = pc.and_kleene(mask, cond)
        return np.flatnonzero(pc.fill_null(mask, False).to_numpy(zero_copy_only=False))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TapFilter":
        return cls(**{k: d.get(k) for k in ("host", "app", "severity", "grep")},
                   severity_exact=bool(d.get("severity_exact")))


class Sampler:
    """A token bucket: over any T seconds it grants at most burst + rate * T."""

    def __init__(self, rate: float = RATE, burst: int = BURST):
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.at: float | None = None

    def take(self, n: int, now: float) -> int:
        if self.at is not None:
            self.tokens = min(float(self.burst), self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = now
        k = min(n, int(self.tokens))
        self.tokens -= k
        return k


def spread(rows: np.ndarray, k: int) -> np.ndarray:
    """k of the rows, evenly spread over them (all when k >= len)."""
    n = len(rows)
    return rows if k >= n else rows[(np.arange(k, dtype=np.int64) * n) // k]


@dataclass
class Slot:
    seq: int
    matched: int                    # session totals when the slot was written
    written: int
    lines: int
    data: bytes


class SideRing:
    """One queue's side ring (see the module doc). `create` for the worker,
    `attach` (read-only) for a tap."""

    def __init__(self, path: Path, fd: int, mm: mmap.mmap):
        self.path, self._fd, self._mm = path, fd, mm
        magic, version, self.slots, self.slot_bytes, self.session, self.writer, self.created = _HDR.unpack_from(mm)
        if magic != MAGIC or version != VERSION:
            raise ValueError(f"{path}: not a tap side ring of this version")
        if self.slots < 1 or self.slot_bytes <= SLOT_HDR or len(mm) != HEADER_BYTES + self.slots * self.slot_bytes:
            raise ValueError(f"{path}: size does not match its header")
        self.seq = _U64.unpack_from(mm, _WRITE_SEQ)[0]

    @classmethod
    def create(cls, path: Path, session: int, *, slots: int = SLOTS, slot_bytes: int = SLOT_BYTES) -> "SideRing":
        size = HEADER_BYTES + slots * slot_bytes
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
        mm = None
        try:
            os.ftruncate(fd, size)      # sparse: pages are taken as slots are written
            mm = mmap.mmap(fd, size)
            _HDR.pack_into(mm, 0, MAGIC, VERSION, slots, slot_bytes, session, os.getpid(), time.time_ns())
            os.rename(tmp, path)
        except BaseException:
            if mm is not None:
                mm.close()
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        return cls(path, fd, mm)

    @classmethod
    def attach(cls, path: Path) -> "SideRing":
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        mm = None
        try:
            size = os.fstat(fd).st_size
            if size < HEADER_BYTES:
                raise ValueError(f"{path}: too short for a tap side ring")
            mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
            return cls(path, fd, mm)
        except BaseException:
            if mm is not None:
                mm.close()
            os.close(fd)
            raise

    @property
    def data_bytes(self) -> int:
        return self.slot_bytes - SLOT_HDR

    def _at(self, seq: int) -> int:
        return HEADER_BYTES + (seq - 1) % self.slots * self.slot_bytes

    # -- writer ----------------------------------------------------------------

    def publish(self, data: bytes, lines: int, matched: int, written: int) -> None:
        mm, seq = self._mm, self.seq + 1
        at = self._at(seq)
        _U64.pack_into(mm, at, 0)
        mm[at + SLOT_HDR:at + SLOT_HDR + len(data)] = data
        _SLOT.pack_into(mm, at, 0, matched, written, len(data), lines)
        _U64.pack_into(mm, at, seq)
        _U64.pack_into(mm, _WRITE_SEQ, seq)
        self.seq = seq

    def set_matched(self, matched: int) -> None:
        _U64.pack_into(self._mm, _MATCHED, matched)

    # -- reader ----------------------------------------------------------------

    @property
    def matched(self) -> int:
        return _U64.unpack_from(self._mm, _MATCHED)[0]

    def read(self, after: int) -> tuple[list[Slot], int]:
        """The slots published after seq `after` that are still whole, and
        the last seq looked at (the next call's `after`)."""
        last = _U64.unpack_from(self._mm, _WRITE_SEQ)[0]
        out = []
        for seq in range(max(after + 1, last - self.slots + 1), last + 1):
            at = self._at(seq)
            got, matched, written, nbytes, lines = _SLOT.unpack_from(self._mm, at)
            if got != seq or nbytes > self.data_bytes:
                continue                                # overwritten: the reader fell behind
            data = self._copy(at + SLOT_HDR, nbytes)
            if _U64.unpack_from(self._mm, at)[0] == seq:  # not overwritten while copied
                out.append(Slot(seq, matched, written, lines, data))
        return out, last

    def _copy(self, at: int, n: int) -> bytes:
        return self._mm[at:at + n]

    @property
    def replaced(self) -> bool:
        """The file is no longer at its path (the worker removed or replaced it)."""
        return os.fstat(self._fd).st_nlink == 0

    def close(self, unlink: bool = False) -> None:
        if unlink:
            self.path.unlink(missing_ok=True)
        self._mm.close()
        os.close(self._fd)


@dataclass(frozen=True)
class Control:
    pid: int
    session: int
    filter: TapFilter


def read_control(path: Path) -> Control | None:
    """The live tap of this control file; None when there is none (no file,
    unreadable or half written, older than STALE_S, its pid gone)."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if time.time() - st.st_mtime > STALE_S:
                return None
            d = json.loads(f.read(CONTROL_MAX))
        ctl = Control(int(d["pid"]), int(d["session"]), TapFilter.from_dict(d["filter"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return ctl if ctl.pid > 0 and process_alive(ctl.pid) else None


class TapWriter:
    """A worker's side of the tap: `poll` once per loop turn (it looks at the
    control file every CHECK_S), `offer` every take, `close` at the end."""

    def __init__(self, file_prefix: str, queue: int, *, rate: float = RATE, burst: int = BURST,
                 slots: int = SLOTS, slot_bytes: int = SLOT_BYTES):
        self.control_path = paths.tap_control_path(file_prefix)
        self.ring_path = paths.tap_ring_path(file_prefix, queue)
        self.queue = queue
        self._rate, self._burst, self._slots, self._slot_bytes = rate, burst, slots, slot_bytes
        self._next_check = 0.0
        self.session = 0                # the tap served now, 0: none
        self.filter: TapFilter | None = None
        self.ring: SideRing | None = None
        self.sampler = Sampler(rate, burst)
        self.matched = self.written = 0  # the session's totals, kept if the same tap comes back (late heartbeat)
        self._totals_of = 0
        self._encoder = None
        try:
            self.ring_path.unlink(missing_ok=True)  # left by a worker of this queue that was killed
        except OSError:
            pass

    def poll(self, now: float) -> None:
        if now < self._next_check:
            return
        self._next_check = now + CHECK_S
        ctl = read_control(self.control_path)
        if ctl is None:
            self._stop()
        elif ctl.session != self.session:
            self._stop()
            self._start(ctl)

    def _start(self, ctl: Control) -> None:
        if ctl.session != self._totals_of:
            self.matched = self.written = 0
            self.sampler = Sampler(self._rate, self._burst)
            self._totals_of = ctl.session
        self.session, self.filter = ctl.session, ctl.filter
        try:
            self.ring = SideRing.create(self.ring_path, ctl.session, slots=self._slots, slot_bytes=self._slot_bytes)
        except OSError as exc:      # not retried until another tap comes
            log.warning("tap: cannot create %s (%s): the tap gets nothing from queue %d",
                        self.ring_path, exc.strerror, self.queue)
            return
        self.ring.set_matched(self.matched)
        log.info("tap: pid %d follows this queue", ctl.pid)

    def _stop(self) -> None:
        if self.ring is not None:
            self.ring.close(unlink=True)
            self.ring = None
            log.info("tap: ended")
        self.session, self.filter = 0, None

    def offer(self, taken, now: float) -> None:
        """Records of `taken` (a ring.Taken: its table and C batch headers)
        that match, up to the cap, into the side ring. Never raises: the
        tap must not hurt the capture."""
        if self.ring is None:
            return
        try:
            self._offer(taken.table(), taken.hdrs, len(taken), now)
        except (OSError, ValueError, pa.ArrowException) as exc:     # this tap is not served again
            log.warning("tap: %s; the tap gets nothing more from queue %d", exc, self.queue)
            self.ring.close(unlink=True)
            self.ring = None

    def _offer(self, table: pa.Table, hdrs, nbatches: int, now: float) -> None:
        rows = self.filter.rows(table)
        if not len(rows):
            return
        self.matched += len(rows)
        rows = spread(rows, self.sampler.take(len(rows), now))
        if len(rows):
            self._write(hdrs, nbatches, rows)
        self.ring.set_matched(self.matched)

    def _write(self, hdrs, nbatches: int, rows: np.ndarray) -> None:
        """JSON of `rows` (indices into the take's table), encoded in C one run
        of consecutive rows of one batch at a time, packed into slots."""
        if self._encoder is None:
            from appliance.jsonl import JsonlEncoder
            self._encoder = JsonlEncoder(with_raw=False, buffer_bytes=self.ring.data_bytes)
        counts = np.fromiter((hdrs[i].count for i in range(nbatches)), np.int64, nbatches)
        starts = np.cumsum(counts) - counts
        batch = np.searchsorted(starts, rows, side="right") - 1
        local = rows - starts[batch]
        cuts = np.flatnonzero((np.diff(rows) != 1) | (np.diff(batch) != 0)) + 1
        packer = _Packer(self)
        for a, b in zip(np.concatenate(([0], cuts)), np.concatenate((cuts, [len(rows)]))):
            for chunk in self._encoder.chunks(hdrs[int(batch[a])], int(local[a]), int(local[b - 1]) + 1):
                packer.add(bytes(chunk))
        packer.flush()

    def close(self) -> None:
        self._stop()


class _Packer:
    """Whole lines into slots; a line longer than a slot is left out."""

    def __init__(self, writer: TapWriter):
        self.w = writer
        self.room = writer.ring.data_bytes
        self.buf = bytearray()

    def add(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            free = self.room - len(self.buf)
            if len(data) - pos <= free:
                self.buf += data[pos:]
                return
            cut = data.rfind(b"\n", pos, pos + free) + 1
            if cut:
                self.buf += data[pos:cut]
                pos = cut
            elif not self.buf:          # one line larger than a slot
                pos = data.find(b"\n", pos) + 1 or len(data)
                continue
            self.flush()

    def flush(self) -> None:
        if self.buf:
            lines = self.buf.count(b"\n")
            self.w.written += lines
            self.w.ring.publish(bytes(self.buf), lines, self.w.matched, self.w.written)
            self.buf.clear()


# -- the tap's side -------------------------------------------------------------


class TapBusy(ConfigError):
    """Another tap follows this appliance."""


class TapControl:
    """The control file of one tap, held (flock) from `claim` to `release`."""

    def __init__(self, file_prefix: str, flt: TapFilter):
        self.path = paths.tap_control_path(file_prefix)
        self.prefix = file_prefix
        self.filter = flt
        self.session = int.from_bytes(os.urandom(8), "little") >> 1 or 1
        self._fd: int | None = None
        self._beat = 0.0

    def __enter__(self) -> "TapControl":
        self.claim()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def claim(self) -> None:
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            except OSError as exc:
                raise LogCasterError(f"cannot open the tap control file {self.path} (a tap runs as root or "
                                     f"as the appliance's user)", errno=exc.errno, category=ENVIRONMENT) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _pid_in(fd)
                os.close(fd)
                raise TapBusy(f"another logcaster tap (pid {holder or 'unknown'}) follows the appliance with "
                              f"file prefix {self.prefix!r} ({self.path}): one tap at a time") from None
            if _same_file(fd, self.path):
                break
            os.close(fd)                # its holder removed it as we locked it: lock the one at the path
        else:
            raise LogCasterError(f"the tap control file {self.path} keeps being replaced", errno=errno.EAGAIN)
        self._fd = fd
        os.fchmod(fd, 0o644)            # the workers (the service user) read it whoever the tap runs as
        data = json.dumps({"pid": os.getpid(), "session": self.session, "filter": self.filter.to_dict()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, data.encode(), 0)
        self._beat = time.monotonic()

    def heartbeat(self, now: float) -> None:
        if self._fd is not None and now - self._beat >= HEARTBEAT_S:
            os.utime(self._fd)
            self._beat = now

    def release(self) -> None:
        """Remove the file while still holding it, then drop the lock."""
        if self._fd is None:
            return
        if _same_file(self._fd, self.path):
            self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def _pid_in(fd: int) -> int | None:
    try:
        return int(json.loads(os.pread(fd, CONTROL_MAX, 0))["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


class _Follow:
    """One queue's side ring as a tap follows it."""

    def __init__(self, path: Path):
        self.path = path
        self.ring: SideRing | None = None
        self.after = 0
        self.writer = None
        self.base_matched = 0           # totals of rings of this queue whose writer is gone
        self.matched = 0                # the live ring's, as last read
        self.written = 0                # lines written, as of the last slot read
        self.overrun = 0                # lines written that this tap did not read in time


class TapReader:
    """Follows every queue's side ring of one session: `poll` returns the
    new lines; `matched`, `overrun` are the running totals."""

    def __init__(self, file_prefix: str, session: int):
        self.prefix, self.session = file_prefix, session
        self.queues: dict[Path, _Follow] = {}
        self._scan_at = 0.0

    def poll(self, now: float) -> list[bytes]:
        if now >= self._scan_at:
            self._scan_at = now + CHECK_S
            for path in paths.tap_ring_paths(self.prefix):
                self.queues.setdefault(path, _Follow(path))
        out = []
        for q in self.queues.values():
            if self._reattach(q):
                out.extend(self._read(q))
        return out

    def _reattach(self, q: _Follow) -> bool:
        """Map the file at the path (a worker makes a new one per tap, and
        the inode number of a removed one may come back: the link count
        tells); False while it is missing or another session's."""
        if q.ring is not None:
            if not q.ring.replaced:
                return True
            q.ring.close()
            q.ring = None
        try:
            ring = SideRing.attach(q.path)
        except (OSError, ValueError):
            return False
        if ring.session != self.session:        # the worker has not seen this tap yet
            ring.close()
            return False
        if ring.writer != q.writer:             # another worker: its totals start again
            q.base_matched += q.matched
            q.matched = q.written = 0
            q.writer = ring.writer
        q.ring, q.after = ring, 0
        return True

    def _read(self, q: _Follow) -> list[bytes]:
        q.matched = max(q.matched, q.ring.matched)
        slots, q.after = q.ring.read(q.after)
        out = []
        for s in slots:
            q.overrun += max(0, s.written - s.lines - q.written)
            q.written = s.written
            q.matched = max(q.matched, s.matched)
            out.append(s.data)
        return out

    @property
    def matched(self) -> int:
        return sum(q.base_matched + q.matched for q in self.queues.values())

    @property
    def attached(self) -> int:
        """Queues whose side ring serves this tap."""
        return sum(q.ring is not None for q in self.queues.values())

    @property
    def overrun(self) -> int:
        return sum(q.overrun for q in self.queues.values())

    def close(self) -> None:
        for q in self.queues.values():
            if q.ring is not None:
                q.ring.close()
                q.ring = None
