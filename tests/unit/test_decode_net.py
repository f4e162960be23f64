"""The network layers of the C decoder (decode_net.c): link types, VLANs,
IPv4/IPv6 (options, extension headers, fragments), UDP, address text,
counters, and the batch-full contract. Frames are built with scapy.

Syslog parsing is another layer: these tests look at the network columns,
`raw`, and the network-layer flag bits only.
"""

import errno
import ipaddress
import struct

import pytest
from hypothesis import given, settings, strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_Router_Alert, fragment
from scapy.layers.inet6 import (ICMPv6EchoRequest, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                                IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, fragment6)
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from appliance.batch import Batch
from appliance.decoder import Decoder
from dpdk_shim import lib
from helpers import decode_frames, rows_of, udp_frame

MSG = b"<14>1 2003-10-11T22:14:15.003Z host app - - - hello"
NET_FLAGS = lib.LC_F_FRAGMENT | lib.LC_F_TRUNCATED | lib.LC_F_BAD_UDP | lib.LC_F_BAD_IP
ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
V4 = IP(src="198.18.0.1", dst="198.18.0.2")
V6 = IPv6(src="2001:db8::1", dst="2001:db8::2")
UDP514 = UDP(sport=40000, dport=514)


def one(frame, link=1, **kw):
    rows, counters = decode_frames([bytes(frame)], link, **kw)
    assert counters["frames"] == 1
    assert len(rows) == 1, counters
    assert counters["records"] == 1
    return rows[0]


def dropped(frames, link=1, **kw):
    rows, counters = decode_frames([bytes(f) for f in frames], link, **kw)
    assert rows == []
    assert counters["frames"] == len(frames) and counters["records"] == 0
    return counters


def net(row):
    return row["flags"] & NET_FLAGS


# ---- link layer and VLANs ----------------------------------------------------

def test_untagged_ipv4():
    row = one(ETH / V4 / UDP514 / MSG, rx_ns=123456789)
    assert row["rx_time"] == 123456789
    assert (row["src_ip"], row["dst_ip"]) == ("198.18.0.1", "198.18.0.2")
    assert (row["src_port"], row["dst_port"], row["vlan"]) == (40000, 514, 0)
    assert row["raw"] == MSG
    assert net(row) == 0


def test_8021q_vlan():
    assert one(ETH / Dot1Q(vlan=100, prio=5) / V4 / UDP514 / MSG)["vlan"] == 100


@pytest.mark.parametrize("outer", [Dot1AD(vlan=10), Dot1Q(vlan=10, type=0x8100), "9100"])
def test_qinq_reports_outer_vid(outer):
    if outer == "9100":
        frame = Ether(type=0x9100) / Dot1Q(vlan=10) / Dot1Q(vlan=20) / V4 / UDP514 / MSG
    else:
        frame = ETH / outer / Dot1Q(vlan=20) / V4 / UDP514 / MSG
    row = one(frame)
    assert row["vlan"] == 10 and row["raw"] == MSG


def test_vlan_4095_bits_only_vid():
    assert one(ETH / Dot1Q(vlan=4095, prio=7, dei=1) / V4 / UDP514 / MSG)["vlan"] == 4095


def test_four_tags_ok_five_malformed():
    four = ETH / Dot1AD(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / Dot1Q(vlan=4) / V4 / UDP514 / MSG
    assert one(four)["vlan"] == 1
    five = ETH / Dot1AD(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / Dot1Q(vlan=4) / Dot1Q(vlan=5) / V4 / UDP514 / MSG
    assert dropped([five])["malformed"] == 1


def test_raw_link_ipv4_and_ipv6():
    rows, counters = decode_frames([bytes(V4 / UDP514 / MSG), bytes(V6 / UDP514 / MSG)], lib.LC_LINK_RAW)
    assert [r["src_ip"] for r in rows] == ["198.18.0.1", "2001:db8::1"]
    assert all(r["raw"] == MSG and r["vlan"] == 0 for r in rows)
    assert dropped([b"\x50" + bytes(19)], lib.LC_LINK_RAW)["malformed"] == 1
    assert dropped([b""], lib.LC_LINK_RAW)["malformed"] == 1


def test_linux_sll():
    row = one(CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=b"\x02\0\0\0\0\1\0\0", proto=0x0800)
              / V4 / UDP514 / MSG, lib.LC_LINK_LINUX_SLL)
    assert row["src_ip"] == "198.18.0.1" and row["raw"] == MSG
    row = one(CookedLinux(proto=0x86DD) / V6 / UDP514 / MSG, lib.LC_LINK_LINUX_SLL)
    assert row["dst_ip"] == "2001:db8::2" and row["raw"] == MSG
    # libpcap re-inserts an offloaded VLAN tag after the cooked header
    row = one(CookedLinux(proto=0x8100) / Dot1Q(vlan=33) / V4 / UDP514 / MSG, lib.LC_LINK_LINUX_SLL)
    assert row["vlan"] == 33
    assert dropped([bytes(15)], lib.LC_LINK_LINUX_SLL)["malformed"] == 1
    assert dropped([bytes(CookedLinux(proto=0x0806) / ARP())], lib.LC_LINK_LINUX_SLL)["not_ip"] == 1


def test_linux_sll2():
    frame = bytes(CookedLinuxV2(proto=0x0800, ifindex=3, lladdrtype=1, lladdrlen=6) / V4 / UDP514 / MSG)
    assert len(frame) - len(bytes(V4 / UDP514 / MSG)) == 20
    row = one(frame, lib.LC_LINK_LINUX_SLL2)
    assert row["src_ip"] == "198.18.0.1" and row["raw"] == MSG
    row = one(CookedLinuxV2(proto=0x86DD) / V6 / UDP514 / MSG, lib.LC_LINK_LINUX_SLL2)
    assert row["src_ip"] == "2001:db8::1"
    assert dropped([bytes(19)], lib.LC_LINK_LINUX_SLL2)["malformed"] == 1


def test_unknown_link_type_is_an_error():
    d = Decoder()
    b = Batch(capacity=4)
    frame = bytes(ETH / V4 / UDP514 / MSG)
    assert lib.lc_decode_frame(d.c, b.hdr, 105, frame, len(frame), 0) < 0
    assert d.counters()["frames"] == 0


# ---- not for us: counted, no record ---------------------------------------------

def test_non_ip_non_udp_counted():
    frames = [
        ETH / ARP(),
        Ether(type=0x88CC) / Raw(b"\0" * 40),                 # LLDP
        Ether(dst="01:80:c2:00:00:00", type=0x26) / Raw(b"\x42\x42\x03" + bytes(40)),  # 802.3 length
        ETH / Dot1Q(vlan=5) / ARP(),
        ETH / V4 / ICMP() / b"ping",
        ETH / V4 / TCP(dport=514) / MSG,
        ETH / V6 / ICMPv6EchoRequest(),
        ETH / V6 / TCP(dport=514) / MSG,
        ETH / V6 / IPv6ExtHdrHopByHop() / TCP(dport=514) / MSG,
        ETH / IPv6(src="::1", dst="::1", nh=59),              # no next header
    ]
    c = dropped(frames)
    assert (c["not_ip"], c["not_udp"], c["malformed"]) == (4, 6, 0)


@pytest.mark.parametrize("frame", [
    b"",
    bytes(13),
    bytes(ETH / V4)[:14 + 19],                                        # IPv4 header cut
    bytes(Ether(type=0x0800) / V6 / UDP514 / MSG),                    # version 6 in an IPv4 frame
    bytes(Ether(type=0x86DD) / V4 / UDP514 / MSG),                    # version 4 in an IPv6 frame
    bytes(ETH / IP(ihl=4) / UDP514 / MSG),                            # IHL < 5
    bytes(ETH / IP(ihl=15) / UDP514 / b"x"),                          # IHL beyond the frame
    bytes(ETH / V4 / UDP514)[:14 + 20 + 7],                           # UDP header cut
    bytes(ETH / V6)[:14 + 39],                                        # IPv6 header cut
    bytes(ETH / V6 / IPv6ExtHdrHopByHop() / UDP514 / MSG)[:14 + 40 + 5],  # ext header cut
    bytes(ETH / Dot1Q(vlan=3))[:14 + 3],                              # VLAN tag cut
])
def test_malformed_counted(frame):
    assert dropped([frame])["malformed"] == 1


# ---- IPv4 ------------------------------------------------------------------

def test_ipv4_options_skipped():
    frame = ETH / IP(src="10.0.0.1", dst="10.0.0.2", options=[IPOption_Router_Alert()]) / UDP514 / MSG
    assert IP(bytes(frame)[14:]).ihl == 6
    row = one(frame)
    assert row["raw"] == MSG and row["src_ip"] == "10.0.0.1" and net(row) == 0


def test_ethernet_padding_ignored():
    frame = bytes(ETH / V4 / UDP514 / b"hi")
    assert len(frame) < 60
    padded = frame + b"\xaa" * (60 - len(frame))
    row = one(padded)
    assert row["raw"] == b"hi" and net(row) == 0


def test_truncated_capture():
    full = bytes(ETH / V4 / UDP514 / MSG)
    row = one(full[:-10])
    assert row["raw"] == MSG[:-10]
    assert net(row) == lib.LC_F_TRUNCATED
    # IPv6 too
    full6 = bytes(ETH / V6 / UDP514 / MSG)
    row = one(full6[:-7])
    assert row["raw"] == MSG[:-7] and net(row) == lib.LC_F_TRUNCATED


def test_udp_length_below_8():
    row = one(ETH / V4 / UDP(sport=1, dport=514, len=4) / MSG)
    assert row["raw"] == MSG and net(row) == lib.LC_F_BAD_UDP
    assert (row["src_port"], row["dst_port"]) == (1, 514)


def test_udp_length_above_ip_payload():
    row = one(ETH / V4 / UDP(dport=514, len=8 + len(MSG) + 100) / MSG)
    assert row["raw"] == MSG and net(row) == lib.LC_F_TRUNCATED


def test_udp_length_below_ip_payload_wins():
    row = one(ETH / V4 / UDP(dport=514, len=8 + 5) / MSG)
    assert row["raw"] == MSG[:5] and net(row) == lib.LC_F_BAD_UDP


def test_ip_total_length_below_header():
    frame = bytearray(bytes(ETH / V4 / UDP514 / MSG))
    frame[16:18] = b"\0\0"                  # total length 0 (segmentation offload captures)
    row = one(bytes(frame))
    assert row["raw"] == MSG and net(row) == lib.LC_F_BAD_IP


def test_fragments_v4():
    payload = b"0123456789abcdef" * 192     # 3072 bytes, 3 fragments
    pkt = V4 / UDP(sport=7, dport=514) / payload
    frags = fragment(pkt, fragsize=1480)
    assert len(frags) == 3
    rows, c = decode_frames([ETH / f for f in frags])
    assert c["records"] == 3 and c["flags"]["fragment"] == 3
    first, *rest = rows
    assert (first["src_port"], first["dst_port"]) == (7, 514)
    assert first["raw"] == payload[:1480 - 8]
    assert net(first) == lib.LC_F_FRAGMENT | lib.LC_F_TRUNCATED
    for r, f in zip(rest, frags[1:]):
        assert (r["src_port"], r["dst_port"]) == (0, 0)
        assert r["format"] == "raw"
        assert r["raw"] == bytes(f[IP].payload)
        assert r["message"] == r["raw"].decode("utf-8", "replace")
        assert net(r) == lib.LC_F_FRAGMENT
        assert r["src_ip"] == "198.18.0.1"
    # the bytes of the datagram are all there, across the records
    assert first["raw"] + b"".join(r["raw"] for r in rest) == payload


def test_nonfirst_fragment_kept_by_port_filter_and_non_udp_fragment_not():
    frags = fragment(V4 / UDP(dport=9999) / (b"x" * 3000), fragsize=1480)
    rows, c = decode_frames([ETH / f for f in frags], ports=[514])
    assert c["port_filtered"] == 1 and len(rows) == 2
    assert all(r["dst_port"] == 0 for r in rows)
    icmp = fragment(V4 / ICMP() / (b"x" * 3000), fragsize=1480)
    c = dropped([ETH / f for f in icmp])
    assert c["not_udp"] == 3


def test_fragment_message_sanitized():
    data = b"ok\xff\xe2\x82 \xf0\x9f\x98\x80\x00"
    hdr = V4.copy()
    hdr.flags = 0
    hdr.frag = 100
    hdr.proto = 17
    row = one(ETH / hdr / Raw(data))
    assert row["raw"] == data
    assert row["message"] == data.decode("utf-8", "replace")
    assert row["flags"] & lib.LC_F_BAD_UTF8 and row["flags"] & lib.LC_F_NUL_BYTES


def test_fragments_v6():
    payload = b"0123456789abcdef" * 192
    pkt = V6 / IPv6ExtHdrFragment() / UDP(sport=7, dport=514) / payload
    frags = fragment6(pkt, 1280)
    assert len(frags) == 3
    rows, c = decode_frames([ETH / f for f in frags])
    assert c["records"] == 3
    first, *rest = rows
    assert (first["src_port"], first["dst_port"]) == (7, 514)
    assert net(first) == lib.LC_F_FRAGMENT | lib.LC_F_TRUNCATED
    for r, f in zip(rest, frags[1:]):
        assert (r["src_port"], r["dst_port"], r["format"]) == (0, 0, "raw")
        assert r["raw"] == bytes(f[IPv6ExtHdrFragment].payload)
        assert net(r) == lib.LC_F_FRAGMENT
    assert first["raw"] + b"".join(r["raw"] for r in rest) == payload


def test_ipv6_atomic_fragment_is_not_a_fragment():
    row = one(ETH / V6 / IPv6ExtHdrFragment(offset=0, m=0) / UDP514 / MSG)
    assert row["raw"] == MSG and net(row) == 0


# ---- IPv6 extension headers ------------------------------------------------------

def test_ipv6_hop_by_hop_and_destination_options():
    frame = ETH / V6 / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / UDP514 / MSG
    row = one(frame)
    assert row["raw"] == MSG and row["dst_port"] == 514 and net(row) == 0


def test_ipv6_routing_and_long_options():
    from scapy.layers.inet6 import PadN
    frame = (ETH / V6 / IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\0" * 20)])
             / IPv6ExtHdrRouting(addresses=["2001:db8::9"]) / IPv6ExtHdrDestOpt() / UDP514 / MSG)
    assert one(frame)["raw"] == MSG


def test_ipv6_authentication_header():
    udp = bytes(UDP(sport=40000, dport=514, len=8 + len(MSG)) / MSG)
    ah = struct.pack("!BBHII", 17, 4, 0, 0x1234, 1) + bytes(12)   # (4 + 2) * 4 = 24 bytes
    row = one(ETH / IPv6(src="2001:db8::1", dst="2001:db8::2", nh=51) / Raw(ah + udp))
    assert row["raw"] == MSG and row["dst_port"] == 514


def test_ipv6_extension_header_overrunning_payload_is_malformed():
    frame = bytearray(bytes(ETH / V6 / IPv6ExtHdrHopByHop() / UDP514 / MSG))
    frame[14 + 40 + 1] = 200                # hdr ext len far past the end
    assert dropped([bytes(frame)])["malformed"] == 1


def test_ipv6_too_many_extension_headers_is_malformed():
    pkt = V6
    for _ in range(20):
        pkt = pkt / IPv6ExtHdrDestOpt()
    assert dropped([ETH / pkt / UDP514 / MSG])["malformed"] == 1


# ---- address text ---------------------------------------------------------------

@pytest.mark.parametrize("given_,text", [
    ("2001:db8::1", "2001:db8::1"),
    ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
    ("::1", "::1"),
    ("::", "::"),
    ("1::", "1::"),
    ("fe80::", "fe80::"),
    ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),         # a lone 0 group stays
    ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),                  # the longest run
    ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),            # the first on ties
    ("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"),
    ("ff02::1:ff00:1", "ff02::1:ff00:1"),
    ("0:1:0:1:0:1:0:1", "0:1:0:1:0:1:0:1"),
    ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),                 # IPv4-mapped
    ("::ffff:0:0", "::ffff:0.0.0.0"),
    ("::ffff:ffff:ffff", "::ffff:255.255.255.255"),
    ("64:ff9b::c000:201", "64:ff9b::c000:201"),
])
def test_ipv6_text_rfc5952(given_, text):
    row = one(ETH / IPv6(src=given_, dst="::1") / UDP514 / MSG)
    assert row["src_ip"] == text and row["dst_ip"] == "::1"


@pytest.mark.parametrize("addr", ["0.0.0.0", "255.255.255.255", "10.0.0.1", "192.168.100.9", "1.22.133.4"])
def test_ipv4_text(addr):
    assert one(ETH / IP(src=addr, dst=addr) / UDP514 / MSG)["src_ip"] == addr


def _rfc5952(packed: bytes) -> str:
    if packed[:12] == bytes(10) + b"\xff\xff":
        return "::ffff:" + str(ipaddress.IPv4Address(packed[12:]))
    return ipaddress.IPv6Address(packed).compressed   # longest run, first on ties, lowercase


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([0, 0, 0, 1, 0xABC, 0xFFFF, 0x10]), min_size=8, max_size=8),
       st.binary(min_size=4, max_size=4))
def test_ipv6_text_matches_reference(groups, v4):
    src = struct.pack("!8H", *groups)
    dst = bytes(10) + b"\xff\xff" + v4
    frame = bytes(ETH / IPv6(src=str(ipaddress.IPv6Address(src)), dst=str(ipaddress.IPv6Address(dst)))
                  / UDP514 / MSG)
    row = one(frame)
    assert row["src_ip"] == _rfc5952(src) and row["dst_ip"] == _rfc5952(dst)


# ---- payload edge cases -----------------------------------------------------------

def test_empty_payload_still_a_record():
    row = one(ETH / V4 / UDP514)
    assert row["raw"] == b"" and row["flags"] & lib.LC_F_EMPTY


def test_payload_with_nuls_kept_intact():
    data = b"<13>a\x00b\x00\x00c"
    assert one(ETH / V4 / UDP514 / data)["raw"] == data


def test_largest_ipv4_and_ipv6_payloads():
    big4 = bytes(range(32, 128)) * 682 + b"x" * 35          # 65507: the IPv4 maximum
    assert len(big4) == 65507
    row = one(ETH / V4 / UDP514 / big4)
    assert row["raw"] == big4 and net(row) == 0
    big6 = big4 + b"z" * 20                                 # 65527: the IPv6 maximum
    row = one(ETH / V6 / UDP514 / big6)
    assert row["raw"] == big6 and net(row) == 0


def test_port_filter():
    frames = [udp_frame(MSG, dport=p) for p in (514, 1514, 53, 514, 6514)]
    rows, c = decode_frames(frames, ports=[514, 1514])
    assert [r["dst_port"] for r in rows] == [514, 1514, 514]
    assert c["port_filtered"] == 2 and c["frames"] == 5 and c["records"] == 3


def test_counters_add_up():
    frames = [udp_frame(MSG), udp_frame(b""), bytes(ETH / ARP()), bytes(ETH / V4 / TCP()),
              b"\0" * 5, bytes(ETH / V4 / UDP514 / MSG)[:-3]]
    rows, c = decode_frames(frames)
    assert c["frames"] == 6 and c["records"] == 3
    assert c["records"] + c["not_ip"] + c["not_udp"] + c["malformed"] + c["port_filtered"] == c["frames"]
    assert c["bytes"] == sum(len(r["raw"]) for r in rows) == 2 * len(MSG) - 3
    assert c["flags"]["truncated"] == 1 and c["flags"]["empty"] == 1
    assert sum(c["formats"].values()) == 3


# ---- batch full: -ENOSPC, nothing written or counted, retry works ---------------------

def test_enospc_by_count_then_retry():
    d = Decoder()
    b = Batch(capacity=2, avg_payload=64)
    frame = udp_frame(MSG)
    for _ in range(2):
        assert lib.lc_decode_frame(d.c, b.hdr, 1, frame, len(frame), 5) == 1
    before = d.counters()
    used = [b.hdr.cols[i].data_used for i in range(lib.LC_NCOLS)]
    assert lib.lc_decode_frame(d.c, b.hdr, 1, frame, len(frame), 6) == -errno.ENOSPC
    assert lib.lc_decode_frame(d.c, b.hdr, 1, frame, len(frame), 6) == -errno.ENOSPC
    assert d.counters() == before and b.hdr.count == 2
    assert [b.hdr.cols[i].data_used for i in range(lib.LC_NCOLS)] == used
    b.reset(1)
    assert lib.lc_decode_frame(d.c, b.hdr, 1, frame, len(frame), 6) == 1
    rows = rows_of(b.to_arrow())
    assert len(rows) == 1 and rows[0]["raw"] == MSG and rows[0]["rx_time"] == 6
    assert d.counters()["frames"] == 3 and d.counters()["records"] == 3


def test_enospc_by_data_area_then_retry():
    d = Decoder()
    b = Batch(capacity=100, avg_payload=16)
    big = udp_frame(b"A" * 60000)
    assert lib.lc_decode_frame(d.c, b.hdr, 1, big, len(big), 1) == 1
    assert lib.lc_decode_frame(d.c, b.hdr, 1, big, len(big), 2) == -errno.ENOSPC
    small = udp_frame(b"x")
    assert lib.lc_decode_frame(d.c, b.hdr, 1, small, len(small), 3) == 1   # small still fits
    b.reset(1)
    assert lib.lc_decode_frame(d.c, b.hdr, 1, big, len(big), 2) == 1
    assert rows_of(b.to_arrow())[0]["raw"] == b"A" * 60000


def test_filtered_and_dropped_frames_need_no_room():
    d = Decoder(ports=[514])
    b = Batch(capacity=1)
    f = udp_frame(MSG)
    assert lib.lc_decode_frame(d.c, b.hdr, 1, f, len(f), 0) == 1
    for other in (udp_frame(MSG, dport=53), bytes(ETH / ARP())):
        assert lib.lc_decode_frame(d.c, b.hdr, 1, other, len(other), 0) == 0
    assert d.counters()["port_filtered"] == 1 and d.counters()["not_ip"] == 1


# ---- robustness: arbitrary bytes never crash, invariants hold --------------------------

@settings(max_examples=400, deadline=None)
@given(st.sampled_from([1, 101, 113, 276]), st.binary(max_size=200))
def test_random_frames_never_crash(link, data):
    rows, c = decode_frames([data], link, columns=["raw"])
    assert c["frames"] == 1
    assert c["records"] + c["not_ip"] + c["not_udp"] + c["malformed"] + c["port_filtered"] == 1
    for r in rows:
        assert r["raw"] in data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=400),
       st.sampled_from(["v4", "v6", "v4frag", "vlan"]))
def test_cut_frames_never_crash(payload, cut, kind):
    if kind == "v4":
        frame = bytes(ETH / V4 / UDP514 / payload)
    elif kind == "v6":
        frame = bytes(ETH / V6 / IPv6ExtHdrHopByHop() / UDP514 / payload)
    elif kind == "v4frag":
        frame = bytes(ETH / IP(src="1.2.3.4", dst="5.6.7.8", flags="MF") / UDP514 / payload)
    else:
        frame = bytes(ETH / Dot1AD(vlan=7) / Dot1Q(vlan=8) / V4 / UDP514 / payload)
    frame = frame[:cut] if cut < len(frame) else frame
    rows, c = decode_frames([frame], columns=["raw"])
    assert c["frames"] == 1
    for r in rows:
        assert payload.startswith(r["raw"])
