"""The C decoder seen from Python: options, counters, and offline pcap reading.

Frames are decoded in C, a batch at a time; Python touches each batch once.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator

import pyarrow as pa

from appliance.batch import Batch, FLAGS
from appliance.errors import InputError
from dpdk_shim import ERRLEN, check, errbuf, ffi, lib

FORMATS = ("rfc5424", "rfc3164", "raw")
# Counters of frames that make no record, by why (what the summary calls
# "other frames", /metrics logcaster_other_frames_total's `reason`).
NOT_RECORDS = ("not_ip", "not_udp", "port_filtered", "malformed")
# Records per severity (RFC 5424 names; "none": no valid PRI), struct lc_decoder.severity_counts.
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "none")
# Sender sequence numbers, all queues' senders (struct lc_decoder seq_*; docs/SENDERS.md).
SEQUENCE_COUNTERS = ("records", "lost", "gaps", "duplicates", "reorders", "resets")
LINK_ETHERNET = lib.LC_LINK_ETHERNET


class Decoder:
    """One `struct lc_decoder`: options set once, counters written by C."""

    def __init__(self, *, tz_offset_s: int = 0, ports: Iterable[int] = (), c=None, senders=ffi.NULL,
                 budget=ffi.NULL):
        """`c`: zeroed `struct lc_decoder *` memory to use (a queue's live
        file, appliance/live.py), else its own. `senders`, `budget`: the
        tables (lc_senders.h) it accounts senders in and applies budgets
        from; NULL: off."""
        ports = sorted(set(ports))
        if len(ports) > lib.LC_MAX_PORT_FILTER:
            raise ValueError(f"at most {lib.LC_MAX_PORT_FILTER} UDP ports, got {len(ports)}")
        self.c = c if c is not None else ffi.new("struct lc_decoder *")
        self.c.senders = senders
        self.c.budget = budget
        self.c.tz_offset_s = tz_offset_s
        self.c.nports = len(ports)
        for i, port in enumerate(ports):
            self.c.ports[i] = port

    def decode_frames(self, frames: Iterable[bytes], batch: Batch, *, link: int = LINK_ETHERNET,
                      rx_ns: int = 0) -> int:
        """Decode frames into `batch` (for tests and small inputs); returns records written.

        Raises ShimError(ENOSPC) if the batch fills up: size it for the input.
        """
        written = 0
        for frame in frames:
            rc = lib.lc_decode_frame(self.c, batch.hdr, link, frame, len(frame), rx_ns)
            written += check(rc, "decoding a frame")
        return written

    def counters(self) -> dict:
        return decoder_counters(self.c)


def decoder_counters(c) -> dict:
    """A `struct lc_decoder` (live, or a reader's copy) as a dict."""
    out = {
        "frames": c.frames,
        "records": c.records,
        "bytes": c.bytes,
        "not_ip": c.not_ip,
        "not_udp": c.not_udp,
        "port_filtered": c.port_filtered,
        "malformed": c.malformed,
    }
    out["formats"] = {name: c.format_counts[i] for i, name in enumerate(FORMATS)}
    out["flags"] = {name: c.flag_counts[bit.bit_length() - 1] for name, bit in FLAGS.items()}
    out["severities"] = {name: c.severity_counts[i] for i, name in enumerate(SEVERITIES)}
    out["throttled"] = c.throttled
    out["sequence"] = {k: getattr(c, f"seq_{k}") for k in SEQUENCE_COUNTERS}
    return out


class PcapReader:
    """A pcap or pcapng file read and decoded by the shim (libpcap, C speed)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise InputError(f"{self.path}: no such file", errno=errno.ENOENT)
        out = ffi.new("struct lc_pcap **")
        err = errbuf()
        check(lib.lc_pcap_open(self.path.encode(), out, err, ERRLEN), f"{self.path}: cannot read as pcap", err,
              error=InputError)
        self._pc = out[0]

    def close(self) -> None:
        if self._pc is not None:
            lib.lc_pcap_close(self._pc)
            self._pc = None

    def __enter__(self) -> "PcapReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def packets(self) -> int:
        return lib.lc_pcap_packets(self._pc)

    def batches(self, decoder: Decoder, batch: Batch) -> Iterator[pa.RecordBatch]:
        """Yield one zero-copy RecordBatch per filled batch; each is valid
        until the next one is produced (consume or copy it first)."""
        err = errbuf()
        seq = 0
        while True:
            batch.reset(seq)
            rc = check(lib.lc_pcap_fill(self._pc, decoder.c, batch.hdr, err, ERRLEN), self.path, err,
                       error=InputError)
            if len(batch):
                yield batch.to_arrow()
                seq += 1
            if rc == 0:
                return


__all__ = ["Decoder", "PcapReader", "FORMATS", "NOT_RECORDS", "SEVERITIES", "SEQUENCE_COUNTERS", "decoder_counters"]
