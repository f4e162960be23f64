"""The offline reader (pcap_reader.c) through appliance.decoder.PcapReader:
pcap and pcapng, timestamps, link types, batches, and bad files."""

import errno

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Ether
from scapy.utils import PcapNgWriter, PcapWriter

from appliance.batch import Batch
from appliance.decoder import Decoder, PcapReader
from appliance.errors import InputError
from dpdk_shim import lib
from helpers import DEFAULT_RX_NS, read_pcap, udp_frame, write_pcap, write_pcapng

V4 = IP(src="198.18.0.1", dst="198.18.0.2")
UDP514 = UDP(sport=40000, dport=514)


def msg(i: int) -> bytes:
    return b"<13>Oct 11 22:14:15 host app: message %06d" % i


def frames(n: int) -> list[bytes]:
    return [udp_frame(msg(i)) for i in range(n)]


def test_pcap_and_pcapng_identical(tmp_path):
    fs = frames(20) + [bytes(Ether() / ARP())] + [udp_frame(b"v6", src="2001:db8::1", dst="2001:db8::2")]
    times = [DEFAULT_RX_NS + i * 1_000_000_007 + 123 for i in range(len(fs))]
    write_pcap(tmp_path / "a.pcap", fs, times)
    write_pcapng(tmp_path / "a.pcapng", fs, times)
    rows_a, ca = read_pcap(tmp_path / "a.pcap")
    rows_b, cb = read_pcap(tmp_path / "a.pcapng")
    assert len(rows_a) == 21 and rows_a == rows_b and ca == cb
    assert ca["not_ip"] == 1 and ca["frames"] == 22


def test_rx_time_is_packet_time_in_ns(tmp_path):
    times = [0, 1, 999_999_999, 1_000_000_000, DEFAULT_RX_NS + 123_456_789, 4_102_444_800_000_000_001]
    write_pcap(tmp_path / "t.pcap", frames(len(times)), times)
    rows, _ = read_pcap(tmp_path / "t.pcap")
    assert [r["rx_time"] for r in rows] == times
    write_pcapng(tmp_path / "t.pcapng", frames(len(times)), times)
    assert [r["rx_time"] for r in read_pcap(tmp_path / "t.pcapng")[0]] == times


def test_microsecond_pcap_scaled_to_ns(tmp_path):
    times = [DEFAULT_RX_NS + 123_456_000, DEFAULT_RX_NS + 999_999_000]
    write_pcap(tmp_path / "us.pcap", frames(2), times, nano=False)
    assert [r["rx_time"] for r in read_pcap(tmp_path / "us.pcap")[0]] == times


def test_scapy_written_files_read(tmp_path):
    pkts = [Ether(f) for f in frames(5)]
    for i, p in enumerate(pkts):
        p.time = 1_700_000_000 + i
    with PcapWriter(str(tmp_path / "s.pcap"), nano=True) as w:
        w.write(pkts)
    with PcapNgWriter(str(tmp_path / "s.pcapng")) as w:
        for p in pkts:
            w.write(p)
    a, _ = read_pcap(tmp_path / "s.pcap")
    b, _ = read_pcap(tmp_path / "s.pcapng")
    assert [r["raw"] for r in a] == [r["raw"] for r in b] == [msg(i) for i in range(5)]
    assert [r["rx_time"] for r in a] == [r["rx_time"] for r in b] == [(1_700_000_000 + i) * 10**9 for i in range(5)]


@pytest.mark.parametrize("link,build", [
    (lib.LC_LINK_RAW, lambda m: bytes(V4 / UDP514 / m)),
    (lib.LC_LINK_RAW, lambda m: bytes(IPv6(src="::1", dst="::2") / UDP514 / m)),
    (lib.LC_LINK_LINUX_SLL, lambda m: bytes(CookedLinux(proto=0x0800) / V4 / UDP514 / m)),
    (lib.LC_LINK_LINUX_SLL2, lambda m: bytes(CookedLinuxV2(proto=0x0800) / V4 / UDP514 / m)),
    (lib.LC_LINK_ETHERNET, lambda m: udp_frame(m)),
])
@pytest.mark.parametrize("writer", [write_pcap, write_pcapng])
def test_link_types(tmp_path, link, build, writer):
    path = tmp_path / "l.cap"
    writer(path, [build(msg(i)) for i in range(3)], linktype=link)
    with PcapReader(path) as r:
        assert lib.lc_pcap_linktype(r._pc) == link
    rows, c = read_pcap(path)
    assert [r["raw"] for r in rows] == [msg(i) for i in range(3)]
    assert rows[0]["dst_port"] == 514


def test_raw_ip_linktype_12_accepted(tmp_path):
    # LINKTYPE_RAW is 101 in files; libpcap maps it to DLT_RAW (12 on Linux)
    write_pcap(tmp_path / "r.pcap", [bytes(V4 / UDP514 / b"x")], linktype=101)
    assert read_pcap(tmp_path / "r.pcap")[0][0]["raw"] == b"x"


def test_unsupported_linktype_fails_at_open(tmp_path):
    write_pcap(tmp_path / "wifi.pcap", [b"\0" * 40], linktype=105)   # 802.11
    with pytest.raises(InputError, match="unsupported link type"):
        PcapReader(tmp_path / "wifi.pcap")


@pytest.mark.parametrize("capacity", [1, 3, 7, 64])
def test_many_packets_across_batches_exactly_once_in_order(tmp_path, capacity):
    n = 500
    fs = []
    for i in range(n):
        fs.append(udp_frame(msg(i)))
        if i % 7 == 0:
            fs.append(bytes(Ether() / V4 / TCP()))        # no record; needs no room
        if i % 11 == 0:
            fs.append(udp_frame(msg(i), dport=53))        # filtered
    times = [DEFAULT_RX_NS + i for i in range(len(fs))]
    write_pcap(tmp_path / "m.pcap", fs, times)
    decoder = Decoder(ports=[514])
    batch = Batch(capacity=capacity, avg_payload=64)
    rows, sizes = [], []
    with PcapReader(tmp_path / "m.pcap") as r:
        for rb in r.batches(decoder, batch):
            sizes.append(rb.num_rows)
            rows.extend(rb.column("raw").to_pylist())
        assert r.packets == len(fs)
    assert rows == [msg(i) for i in range(n)]
    assert all(s == capacity for s in sizes[:-1]) and 0 < sizes[-1] <= capacity
    c = decoder.counters()
    assert c["frames"] == len(fs) and c["records"] == n
    assert c["not_udp"] == len(range(0, n, 7)) and c["port_filtered"] == len(range(0, n, 11))


def test_big_payloads_fill_the_data_area_first(tmp_path):
    big = [udp_frame(bytes([65 + i % 26]) * 40000) for i in range(10)]
    write_pcap(tmp_path / "big.pcap", big)
    decoder = Decoder()
    batch = Batch(capacity=100, avg_payload=100)     # one 40 KB payload per batch
    got = []
    with PcapReader(tmp_path / "big.pcap") as r:
        for rb in r.batches(decoder, batch):
            assert rb.num_rows >= 1
            got.extend(rb.column("raw").to_pylist())
    assert got == [bytes([65 + i % 26]) * 40000 for i in range(10)]


def test_64k_payload_from_file(tmp_path):
    payload = b"y" * 65507
    write_pcap(tmp_path / "j.pcap", [udp_frame(payload)])
    rows, _ = read_pcap(tmp_path / "j.pcap", capacity=2, avg_payload=16)
    assert rows[0]["raw"] == payload and rows[0]["flags"] & lib.LC_F_TRUNCATED == 0


def test_empty_capture_yields_nothing(tmp_path):
    write_pcap(tmp_path / "e.pcap", [])
    assert read_pcap(tmp_path / "e.pcap")[0] == []
    write_pcapng(tmp_path / "e.pcapng", [])
    assert read_pcap(tmp_path / "e.pcapng")[0] == []


# ---- bad files: clean errors, no crash ------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(InputError) as e:
        PcapReader(tmp_path / "nope.pcap")
    assert e.value.errno == errno.ENOENT


def test_empty_file(tmp_path):
    (tmp_path / "empty.pcap").write_bytes(b"")
    with pytest.raises(InputError, match="cannot read as pcap"):
        PcapReader(tmp_path / "empty.pcap")


@pytest.mark.parametrize("data", [b"this is not a capture file\n" * 10, b"\xd4\xc3\xb2", bytes(range(256))])
def test_garbage_file(tmp_path, data):
    (tmp_path / "g.pcap").write_bytes(data)
    with pytest.raises(InputError):
        PcapReader(tmp_path / "g.pcap")


def test_directory_is_not_a_capture(tmp_path):
    with pytest.raises(InputError):
        PcapReader(tmp_path)


@pytest.mark.parametrize("writer", [write_pcap, write_pcapng])
def test_truncated_file_gives_records_before_the_cut_then_an_error(tmp_path, writer):
    writer(tmp_path / "full", frames(10))
    data = (tmp_path / "full").read_bytes()
    (tmp_path / "cut").write_bytes(data[:-20])        # cut inside the last packet
    decoder = Decoder()
    batch = Batch(capacity=4)
    got = []
    with PcapReader(tmp_path / "cut") as r:
        with pytest.raises(InputError, match="truncated|after 9 packets") as e:
            for rb in r.batches(decoder, batch):
                got.extend(rb.column("raw").to_pylist())
    assert e.value.errno == errno.EIO
    assert got == [msg(i) for i in range(9)]


def test_truncated_in_first_record_header(tmp_path):
    write_pcap(tmp_path / "f.pcap", frames(1))
    data = (tmp_path / "f.pcap").read_bytes()
    (tmp_path / "cut.pcap").write_bytes(data[:24 + 7])
    with pytest.raises(InputError):
        read_pcap(tmp_path / "cut.pcap")


def test_corrupt_record_length(tmp_path):
    write_pcap(tmp_path / "f.pcap", frames(3))
    data = bytearray((tmp_path / "f.pcap").read_bytes())
    data[24 + 8:24 + 12] = (10_000_000).to_bytes(4, "little")    # caplen way beyond snaplen
    (tmp_path / "bad.pcap").write_bytes(bytes(data))
    with pytest.raises(InputError):
        read_pcap(tmp_path / "bad.pcap")


def test_packets_and_close_twice(tmp_path):
    write_pcap(tmp_path / "p.pcap", frames(3))
    r = PcapReader(tmp_path / "p.pcap")
    list(r.batches(Decoder(), Batch(capacity=8)))
    assert r.packets == 3
    r.close()
    r.close()
