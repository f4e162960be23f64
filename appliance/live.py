"""Each RX queue's live file: the counters and sender tables the RX loop
writes, in shared memory that `logcaster top` and `stats --sources` read.

Layout (dpdk_shim/lc_rx.h `struct lc_live_hdr`): a header page, then
`struct lc_decoder`, `struct lc_rxq_stats`, the senders table and the
budget table (lc_senders.h), each 64-byte aligned. The supervisor makes
one file per queue in RUN_DIR (`<file_prefix>.live.q<N>`) and hands the
decoder and counters inside it to the backend's RX loop, so nothing is
copied and the data path does not know anyone is looking. Readers map it
read-only and may see a counter one record behind.
"""

from __future__ import annotations

import ipaddress
import mmap
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.config import BudgetConfig, SendersConfig, budget_burst
from appliance.paths import RUN_DIR
from dpdk_shim import ffi, lib

HEADER_BYTES = 4096
WAYS = lib.LC_TABLE_WAYS

# One row of each table as numpy sees it (the C structs, field for field;
# checked against ffi.sizeof at import).
SENDER_DTYPE = np.dtype([
    ("hash", "<u8"), ("used", "<u8"), ("records", "<u8"), ("bytes", "<u8"), ("last_ns", "<u8"),
    ("addr", "u1", 16), ("app_len", "u1"), ("seq_rule", "u1"), ("seq_tracking", "u1"), ("pad0", "u1", 5),
    ("app", "S48"), ("seq_last", "<u8"), ("seq_first", "<u8"), ("seq_missing", "<u8"), ("lost", "<u8"),
    ("gaps", "<u8"), ("duplicates", "<u8"), ("reorders", "<u8"), ("resets", "<u8"), ("pad1", "<u8", 2),
])
BUDGET_DTYPE = np.dtype([
    ("addr", "u1", 16), ("hash", "<u8"), ("used", "<u8"), ("tat", "<u8"), ("interval_ns", "<u8"),
    ("tolerance_ns", "<u8"), ("passed", "<u8"), ("throttled", "<u8"),
])
assert SENDER_DTYPE.itemsize == ffi.sizeof("struct lc_sender")
assert BUDGET_DTYPE.itemsize == ffi.sizeof("struct lc_budget_entry")

_MAPPED_V4 = bytes(10) + b"\xff\xff"


def live_path(file_prefix: str, queue: int) -> Path:
    return RUN_DIR / f"{file_prefix}.live.q{queue}"


def live_paths(file_prefix: str) -> list[Path]:
    """The live files of a running appliance, in queue order."""
    found = sorted(RUN_DIR.glob(f"{file_prefix}.live.q*"), key=lambda p: int(p.name.rsplit("q", 1)[1]))
    return [p for p in found if p.name.rsplit("q", 1)[1].isdigit()]


def addr_text(addr) -> str:
    """A table key's 16 address bytes as text (IPv4-mapped as IPv4)."""
    raw = bytes(addr)
    if raw[:12] == _MAPPED_V4:
        return str(ipaddress.IPv4Address(raw[12:]))
    return str(ipaddress.IPv6Address(raw))


def addr16(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    """An address as the tables key it (IPv4 mapped into IPv6)."""
    return _MAPPED_V4 + address.packed if address.version == 4 else address.packed


def _align(n: int) -> int:
    return (n + 63) & ~63


def table_sets(entries: int) -> int:
    """Sets (a power of two) for at least `entries` slots."""
    sets = 1
    while sets * WAYS < entries:
        sets <<= 1
    return sets


@dataclass(frozen=True)
class Layout:
    decoder_off: int
    rxq_off: int
    senders_off: int
    senders_sets: int
    budget_off: int
    budget_sets: int
    size: int


def layout(senders: SendersConfig | None, budget: BudgetConfig | None) -> Layout:
    off = HEADER_BYTES
    decoder_off = off
    off = _align(off + ffi.sizeof("struct lc_decoder"))
    rxq_off = off
    off = _align(off + ffi.sizeof("struct lc_rxq_stats"))
    senders_off = senders_sets = budget_off = budget_sets = 0
    if senders is not None and senders.enabled:
        senders_sets = table_sets(senders.table_size)
        senders_off = off
        off = _align(off + lib.lc_senders_size(senders_sets))
    if budget is not None and budget.enabled:
        budget_sets = table_sets(budget.table_size)
        budget_off = off
        off = _align(off + lib.lc_budget_size(budget_sets))
    return Layout(decoder_off, rxq_off, senders_off, senders_sets, budget_off, budget_sets, off)


def budget_params(rate: float, burst: int) -> tuple[int, int]:
    """(interval_ns, tolerance_ns) of a GCRA budget; rate 0: (0, 0), no limit."""
    if rate <= 0:
        return 0, 0
    interval = max(1, int(round(1e9 / rate)))
    return interval, (budget_burst(rate, burst) - 1) * interval


class LiveQueue:
    """One queue's live file, made by the supervisor (create) or read by a
    tool (attach)."""

    def __init__(self, mm: mmap.mmap, path: Path | None, writable: bool):
        self._mm = mm
        self.path = path
        self.writable = writable
        self._buf = ffi.from_buffer(mm) if writable else None
        self.hdr = None

    # -- making it (the supervisor) ------------------------------------------

    @classmethod
    def create(cls, path: Path | None, *, queue: int, label: str, ring_path: str,
               senders: SendersConfig | None, budget: BudgetConfig | None) -> "LiveQueue":
        """A zeroed live file at `path` (None: anonymous memory, for a run
        whose RUN_DIR is not writable: nothing outside sees it)."""
        lay = layout(senders, budget)
        if path is None:
            mm = mmap.mmap(-1, lay.size)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o640)
            try:
                os.ftruncate(fd, lay.size)
                mm = mmap.mmap(fd, lay.size)
            finally:
                os.close(fd)
        live = cls(mm, path, True)
        base = live._buf
        hdr = ffi.cast("struct lc_live_hdr *", base)
        hdr.abi = lib.lc_abi_version()
        hdr.queue = queue
        hdr.pid = os.getpid()
        hdr.size = lay.size
        hdr.decoder_off, hdr.rxq_off = lay.decoder_off, lay.rxq_off
        hdr.senders_off, hdr.budget_off = lay.senders_off, lay.budget_off
        hdr.started_ns = time.time_ns()
        hdr.label = label.encode()[:63]
        hdr.ring_path = ring_path.encode()[:255]
        if lay.senders_off:
            rc = lib.lc_senders_init(base + lay.senders_off, lay.size - lay.senders_off, lay.senders_sets,
                                     senders.max_gap)
            assert rc == 0, rc
            t = ffi.cast("struct lc_senders *", base + lay.senders_off)
            for i, rule in enumerate(senders.sequence):
                r = t.rules[i]
                r.kind = lib.LC_SEQ_CISCO if rule.kind == "cisco" else lib.LC_SEQ_SD
                r.per_app = int(rule.per_app)
                r.sd_id, r.sd_id_len = rule.sd_id.encode(), len(rule.sd_id)
                r.param, r.param_len = rule.param.encode(), len(rule.param)
                r.min, r.max = rule.min, rule.max
            t.nrules = len(senders.sequence)
            t.traffic = int(senders.traffic)
        if lay.budget_off:
            interval, tolerance = budget_params(budget.rate, budget.burst)
            rc = lib.lc_budget_init(base + lay.budget_off, lay.size - lay.budget_off, lay.budget_sets,
                                    interval, tolerance)
            assert rc == 0, rc
            t = ffi.cast("struct lc_budget *", base + lay.budget_off)
            for i, o in enumerate(budget.overrides):
                net = ipaddress.ip_network(o.prefix)
                c = t.overrides[i]
                c.addr = addr16(net.network_address)
                c.prefix_len = net.prefixlen + (96 if net.version == 4 else 0)
                c.interval_ns, c.tolerance_ns = budget_params(o.rate, o.burst)
            t.noverrides = len(budget.overrides)
        hdr.magic = lib.LC_LIVE_MAGIC              # last: a reader sees a whole file or none
        live.hdr = hdr
        if path is not None:
            os.replace(tmp, path)
        return live

    @property
    def decoder(self):
        """`struct lc_decoder *` inside the file (zeroed; the caller sets its options)."""
        return ffi.cast("struct lc_decoder *", self._buf + self.hdr.decoder_off)

    @property
    def rxq(self):
        return ffi.cast("struct lc_rxq_stats *", self._buf + self.hdr.rxq_off)

    @property
    def senders(self):
        return ffi.cast("struct lc_senders *", self._buf + self.hdr.senders_off) if self.hdr.senders_off else ffi.NULL

    @property
    def budget(self):
        return ffi.cast("struct lc_budget *", self._buf + self.hdr.budget_off) if self.hdr.budget_off else ffi.NULL

    # -- reading it (tools) ---------------------------------------------------

    @classmethod
    def attach(cls, path: Path) -> "LiveQueue":
        with open(path, "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        live = cls(mm, path, False)
        if len(mm) < HEADER_BYTES:
            raise ValueError(f"{path}: not a live file (too short)")
        live.hdr = live._struct("struct lc_live_hdr", 0)
        if live.hdr.magic != lib.LC_LIVE_MAGIC or live.hdr.size > len(mm):
            raise ValueError(f"{path}: not a live file of this LogCaster")
        if live.hdr.abi != lib.lc_abi_version():
            raise ValueError(f"{path}: written by another LogCaster build (ABI {live.hdr.abi}, "
                             f"this one {lib.lc_abi_version()})")
        return live

    def _struct(self, ctype: str, off: int):
        """A copy of the struct at `off` (one read, consistent enough for a view)."""
        copy = ffi.new(ctype + " *")
        ffi.memmove(copy, self._mm[off:off + ffi.sizeof(ctype)], ffi.sizeof(ctype))
        return copy

    def header(self) -> dict:
        h = self.hdr
        return {"queue": h.queue, "pid": h.pid, "label": ffi.string(h.label).decode(errors="replace"),
                "ring_path": ffi.string(h.ring_path).decode(errors="replace"), "started_ns": h.started_ns}

    def read_decoder(self):
        """The decoder's counters: the live struct (writer) or a copy (reader)."""
        return self.decoder if self.writable else self._struct("struct lc_decoder", self.hdr.decoder_off)

    def read_rxq(self):
        return self.rxq if self.writable else self._struct("struct lc_rxq_stats", self.hdr.rxq_off)

    def _table_rows(self, off: int, head: str, dtype: np.dtype) -> tuple[dict, np.ndarray]:
        if not off:
            return {}, np.zeros(0, dtype)
        hsize = ffi.sizeof(head)
        h = self._struct(head, off)
        n = h.nsets * WAYS
        rows = np.frombuffer(self._mm, dtype=dtype, count=n, offset=off + hsize).copy()
        return {"slots": n, "evictions": h.evictions, "clock": h.clock}, rows[rows["hash"] != 0]

    def sender_rows(self) -> tuple[dict, np.ndarray]:
        """(table facts, the occupied rows as a numpy record array)."""
        return self._table_rows(self.hdr.senders_off, "struct lc_senders", SENDER_DTYPE)

    def budget_rows(self) -> tuple[dict, np.ndarray]:
        return self._table_rows(self.hdr.budget_off, "struct lc_budget", BUDGET_DTYPE)

    def rule_names(self) -> list[str]:
        if not self.hdr.senders_off:
            return []
        t = self._struct("struct lc_senders", self.hdr.senders_off)
        out = []
        for i in range(t.nrules):
            r = t.rules[i]
            out.append("cisco" if r.kind == lib.LC_SEQ_CISCO else
                       f"{ffi.string(r.sd_id, r.sd_id_len).decode()}/{ffi.string(r.param, r.param_len).decode()}")
        return out

    def close(self) -> None:
        self.hdr = None
        self._buf = None
        try:
            self._mm.close()
        except BufferError:       # a cdata view still alive: the mapping goes with the process
            pass

    def unlink(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
