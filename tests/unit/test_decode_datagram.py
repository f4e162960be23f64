"""lc_decode_datagram: the decoder entry for datagrams read from a UDP socket
(addresses as sockaddrs, no link/IP/UDP headers). A datagram must give the
row lc_decode_frame gives for the same payload, addresses and ports in a
frame; the batch-full contract and the counters are the same too.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct

import pytest
from hypothesis import given, settings, strategies as st

from appliance.batch import Batch
from appliance.decoder import Decoder
from dpdk_shim import ffi, lib
from helpers import DEFAULT_RX_NS, decode_frames, rows_of, udp_frame

MSG5424 = b"<14>1 2003-10-11T22:14:15.003Z host app - - - hello"
MSG3164 = b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed"


def sockaddr(host: str, port: int) -> bytes:
    """struct sockaddr_in / sockaddr_in6 as the kernel fills them."""
    if ":" in host:
        return (struct.pack("=H", socket.AF_INET6) + struct.pack("!H", port) + struct.pack("=I", 0)
                + socket.inet_pton(socket.AF_INET6, host) + struct.pack("=I", 0))
    return (struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_pton(socket.AF_INET, host)
            + bytes(8))


def decode(datagrams, *, decoder: Decoder | None = None, batch: Batch | None = None, rx_ns: int = DEFAULT_RX_NS,
           net_flags: int = 0):
    """datagrams: (payload, (src host, port), (dst host, port) or None). Returns (rcs, rows, counters)."""
    decoder = Decoder() if decoder is None else decoder
    batch = Batch(capacity=max(1, len(datagrams))) if batch is None else batch
    rcs = []
    for payload, src, dst in datagrams:
        s = ffi.from_buffer(sockaddr(*src))
        d = ffi.from_buffer(sockaddr(*dst)) if dst else ffi.NULL
        rcs.append(lib.lc_decode_datagram(decoder.c, batch.hdr, s, d, payload, len(payload), net_flags, rx_ns))
    return rcs, rows_of(batch.to_arrow()), decoder.counters()


def frame_row(payload: bytes, src, dst, *, rx_ns: int = DEFAULT_RX_NS) -> dict:
    """What lc_decode_frame makes of the same datagram in an Ethernet frame."""
    rows, _ = decode_frames([udp_frame(payload, src=src[0], dst=dst[0], sport=src[1], dport=dst[1])], rx_ns=rx_ns)
    assert len(rows) == 1
    return rows[0]


@pytest.mark.parametrize("payload", [MSG5424, MSG3164, b"not syslog \xff\xfe", b""],
                         ids=["5424", "3164", "raw", "empty"])
@pytest.mark.parametrize("src,dst", [
    (("198.18.0.1", 40000), ("198.18.0.2", 514)),
    (("2001:db8::1", 40001), ("2001:db8::2", 5514)),
    (("fe80::1:0:0:0", 1), ("::1", 65535)),
], ids=["v4", "v6", "v6-text"])
def test_same_row_as_the_frame_decoder(payload, src, dst):
    rcs, rows, counters = decode([(payload, src, dst)], rx_ns=123_456_789)
    assert rcs == [1]
    assert rows == [frame_row(payload, src, dst, rx_ns=123_456_789)]
    row = rows[0]
    assert row["rx_time"] == 123_456_789
    assert (row["src_ip"], row["src_port"], row["dst_ip"], row["dst_port"], row["vlan"]) == (
        str(ipaddress.ip_address(src[0])), src[1], str(ipaddress.ip_address(dst[0])), dst[1], 0)
    assert row["raw"] == payload
    assert (counters["frames"], counters["records"], counters["bytes"]) == (1, 1, len(payload))


def test_v4_mapped_addresses_are_written_as_ipv4():
    # An IPv4 datagram on a dual-stack (::) socket: the kernel gives ::ffff:a.b.c.d.
    src, dst = ("::ffff:198.18.0.1", 40000), ("::ffff:198.18.0.2", 514)
    _, rows, _ = decode([(MSG5424, src, dst)])
    assert (rows[0]["src_ip"], rows[0]["dst_ip"]) == ("198.18.0.1", "198.18.0.2")
    assert rows == [frame_row(MSG5424, ("198.18.0.1", 40000), ("198.18.0.2", 514))]


def test_mapped_looking_but_not_mapped_stays_ipv6():
    _, rows, _ = decode([(MSG5424, ("::fffe:c612:1", 1), ("::ffff:0:c612:1", 2))])
    assert (rows[0]["src_ip"], rows[0]["dst_ip"]) == ("::fffe:c612:1", "::ffff:0:c612:1")


def test_truncated_by_the_receive_buffer():
    rcs, rows, counters = decode([(MSG5424[:20], ("198.18.0.1", 40000), ("198.18.0.2", 514))],
                                 net_flags=lib.LC_F_TRUNCATED)
    assert rcs == [1]
    assert rows[0]["raw"] == MSG5424[:20]
    assert rows[0]["flags"] & lib.LC_F_TRUNCATED
    assert counters["flags"]["truncated"] == 1


def test_no_destination():
    _, rows, _ = decode([(MSG5424, ("198.18.0.1", 40000), None)])
    assert (rows[0]["dst_ip"], rows[0]["dst_port"]) == ("", 0)
    assert rows[0]["src_ip"] == "198.18.0.1"


def test_batch_full_writes_and_counts_nothing():
    decoder, batch = Decoder(), Batch(capacity=1)
    dg = (MSG5424, ("198.18.0.1", 40000), ("198.18.0.2", 514))
    rcs, _, before = decode([dg], decoder=decoder, batch=batch)
    assert rcs == [1]
    used = [batch.hdr.cols[i].data_used for i in range(lib.LC_NCOLS)]
    rcs, rows, after = decode([dg], decoder=decoder, batch=batch)
    assert rcs == [-errno.ENOSPC]
    assert after == before
    assert len(rows) == 1 and batch.hdr.count == 1
    assert [batch.hdr.cols[i].data_used for i in range(lib.LC_NCOLS)] == used
    # An emptied batch takes it.
    batch.reset(1)
    rcs, rows, after = decode([dg], decoder=decoder, batch=batch)
    assert rcs == [1] and after["records"] == 2


def test_port_filter_counts_and_skips():
    decoder = Decoder(ports=[514])
    rcs, rows, counters = decode([(MSG5424, ("198.18.0.1", 40000), ("198.18.0.2", 515)),
                                  (MSG5424, ("198.18.0.1", 40000), ("198.18.0.2", 514))], decoder=decoder)
    assert rcs == [0, 1]
    assert len(rows) == 1 and rows[0]["dst_port"] == 514
    assert (counters["frames"], counters["records"], counters["port_filtered"]) == (2, 1, 1)


def test_unknown_family_is_refused():
    decoder, batch = Decoder(), Batch(capacity=1)
    unix = ffi.from_buffer(struct.pack("=H", socket.AF_UNIX) + bytes(30))
    ok = ffi.from_buffer(sockaddr("198.18.0.1", 1))
    assert lib.lc_decode_datagram(decoder.c, batch.hdr, unix, ok, MSG5424, len(MSG5424), 0, 0) == -errno.EAFNOSUPPORT
    assert lib.lc_decode_datagram(decoder.c, batch.hdr, ok, unix, MSG5424, len(MSG5424), 0, 0) == -errno.EAFNOSUPPORT
    assert decoder.counters()["frames"] == 0 and batch.hdr.count == 0


def test_counters_over_a_mix():
    payloads = [MSG5424, MSG3164, b"no header", b"", MSG5424 + b" \xff"]
    hosts = [("2001:db8::1", "2001:db8::2"), ("198.18.0.1", "198.18.0.2")]
    dgs = [(p, (hosts[i % 2][0], 40000 + i), (hosts[i % 2][1], 514)) for i, p in enumerate(payloads)]
    rcs, rows, c = decode(dgs)
    assert rcs == [1] * 5
    assert (c["frames"], c["records"], c["bytes"]) == (5, 5, sum(map(len, payloads)))
    assert (c["not_ip"], c["not_udp"], c["malformed"], c["port_filtered"]) == (0, 0, 0, 0)
    assert c["formats"] == {"rfc5424": 2, "rfc3164": 1, "raw": 2}
    assert c["flags"]["empty"] == 1 and c["flags"]["bad_utf8"] == 1
    # Same counters as the frame decoder for the same datagrams.
    _, fc = decode_frames([udp_frame(p, src=s[0], dst=d[0], sport=s[1], dport=d[1]) for p, s, d in dgs])
    assert c == fc


@settings(max_examples=300, deadline=None)
@given(src=st.binary(min_size=16, max_size=16), dst=st.ip_addresses(v=6), port=st.integers(0, 65535))
def test_ipv6_text_is_rfc5952(src, dst, port):
    a = ipaddress.IPv6Address(src)
    _, rows, _ = decode([(b"x", (str(a), port), (str(dst), 65535 - port))])
    want_src = str(a.ipv4_mapped) if a.ipv4_mapped else a.compressed
    want_dst = str(dst.ipv4_mapped) if dst.ipv4_mapped else dst.compressed
    assert (rows[0]["src_ip"], rows[0]["dst_ip"]) == (want_src, want_dst)
    assert (rows[0]["src_port"], rows[0]["dst_port"]) == (port, 65535 - port)


@settings(max_examples=100, deadline=None)
@given(src=st.ip_addresses(v=4), dst=st.ip_addresses(v=4))
def test_ipv4_text(src, dst):
    _, rows, _ = decode([(b"x", (str(src), 1), (str(dst), 2))])
    assert (rows[0]["src_ip"], rows[0]["dst_ip"]) == (str(src), str(dst))
