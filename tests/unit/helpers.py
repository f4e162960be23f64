"""Shared test helpers: frames built with scapy, decoded through the real C path.

Rows come back as plain dicts (one per record, schema order). Timestamp
columns (`rx_time`, `timestamp`) are given as int nanoseconds since the epoch
(None when null): pyarrow cannot turn nanosecond timestamps into
datetime.datetime without pandas, and exact nanoseconds are what tests check.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from appliance.batch import Batch
from appliance.decoder import Decoder

# 2023-11-14T22:13:20Z: a realistic default receive time (RFC 3164 year inference).
DEFAULT_RX_NS = 1_700_000_000 * 10**9
SRC_MAC = "02:00:00:00:00:01"
DST_MAC = "02:00:00:00:00:02"
SRC_IP = "198.18.0.1"
DST_IP = "198.18.0.2"
SRC_PORT = 40000
SYSLOG_PORT = 514


def rows_of(rb: pa.RecordBatch, columns: Iterable[str] | None = None) -> list[dict]:
    """RecordBatch -> list of dicts, timestamps as int ns (copied out of the batch).
    `columns` picks fields (default all)."""
    cols = {}
    for name in columns or rb.schema.names:
        col = rb.column(name)
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.int64())
        cols[name] = col.to_pylist()
    return [dict(zip(cols, values)) for values in zip(*cols.values())]


def udp_frame(payload: bytes, *, src: str = SRC_IP, dst: str = DST_IP, sport: int = SRC_PORT,
              dport: int = SYSLOG_PORT, vlans: Iterable[int] = ()) -> bytes:
    """Ether[/802.1Q...]/IPv4-or-IPv6/UDP/payload as bytes (IPv6 when `src` has a colon)."""
    l3 = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    pkt = Ether(src=SRC_MAC, dst=DST_MAC)
    for vid in vlans:
        pkt = pkt / Dot1Q(vlan=vid)
    return bytes(pkt / l3 / UDP(sport=sport, dport=dport) / payload)


def _batch_for(lengths: list[int]) -> Batch:
    n = max(1, len(lengths))
    avg = min(65535, max(1, -(-sum(lengths) // n)))
    return Batch(capacity=n, avg_payload=avg)


def decode_frames(frames: Iterable[bytes], link: int = 1, *, rx_ns: int = DEFAULT_RX_NS,
                  tz_offset_s: int = 0, ports: Iterable[int] = (),
                  columns: Iterable[str] | None = None) -> tuple[list[dict], dict]:
    """Decode raw frames of pcap link type `link`; returns (rows, decoder counters)."""
    frames = [bytes(f) for f in frames]
    decoder = Decoder(tz_offset_s=tz_offset_s, ports=ports)
    batch = _batch_for([len(f) for f in frames])
    decoder.decode_frames(frames, batch, link=link, rx_ns=rx_ns)
    return rows_of(batch.to_arrow(), columns), decoder.counters()


def decode_payloads(payloads: list[bytes], **kw) -> list[dict]:
    """Each payload as the UDP payload of an Ether/IPv4/UDP(dport=514) frame;
    returns one row per payload. Keywords: rx_ns, tz_offset_s, ports (decoder),
    and src, dst, sport, dport, vlans (frame)."""
    dec_kw = {k: kw.pop(k) for k in ("rx_ns", "tz_offset_s", "ports") if k in kw}
    frames = [udp_frame(p, **kw) for p in payloads]
    rows, _ = decode_frames(frames, **dec_kw)
    return rows


__all__ = ["decode_payloads", "decode_frames", "udp_frame", "rows_of", "DEFAULT_RX_NS"]


# ---- capture files (written by hand: exact nanosecond timestamps) ----------

def write_pcap(path, frames: Iterable[bytes], times_ns: Iterable[int] | None = None, *,
               linktype: int = 1, nano: bool = True, snaplen: int = 262144) -> None:
    """Classic pcap (nanosecond magic unless nano=False)."""
    import struct

    frames = [bytes(f) for f in frames]
    times_ns = list(times_ns) if times_ns is not None else [DEFAULT_RX_NS + i for i in range(len(frames))]
    magic, div = (0xA1B23C4D, 1) if nano else (0xA1B2C3D4, 1000)
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
        for frame, t in zip(frames, times_ns, strict=True):
            sec, frac = divmod(t, 10**9)
            f.write(struct.pack("<IIII", sec, frac // div, len(frame), len(frame)))
            f.write(frame)


def write_pcapng(path, frames: Iterable[bytes], times_ns: Iterable[int] | None = None, *,
                 linktype: int = 1) -> None:
    """pcapng: one section, one interface with if_tsresol = 9 (nanoseconds)."""
    import struct

    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)

    frames = [bytes(f) for f in frames]
    times_ns = list(times_ns) if times_ns is not None else [DEFAULT_RX_NS + i for i in range(len(frames))]
    with open(path, "wb") as f:
        f.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        opts = struct.pack("<HH", 9, 1) + b"\x09\0\0\0" + struct.pack("<HH", 0, 0)
        f.write(block(1, struct.pack("<HHI", linktype, 0, 262144) + opts))
        for frame, t in zip(frames, times_ns, strict=True):
            body = struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(frame), len(frame)) + frame
            f.write(block(6, body))


def read_pcap(path, *, capacity: int = 1024, avg_payload: int = 256, ports: Iterable[int] = ()
              ) -> tuple[list[dict], dict]:
    """Every record of a capture file through PcapReader; (rows, decoder counters)."""
    from appliance.decoder import PcapReader

    decoder = Decoder(ports=ports)
    batch = Batch(capacity=capacity, avg_payload=avg_payload)
    rows: list[dict] = []
    with PcapReader(path) as reader:
        for rb in reader.batches(decoder, batch):
            rows.extend(rows_of(rb))
    return rows, decoder.counters()


__all__ += ["write_pcap", "write_pcapng", "read_pcap"]
