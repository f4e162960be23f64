"""JSON lines straight from a C batch (jsonl.c, lc_batch_jsonl): every value
checked against the pyarrow view of the same batch and json.loads."""

import base64
import json
import struct
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings, strategies as st

from appliance.batch import SCHEMA, Batch
from appliance.decoder import Decoder
from dpdk_shim import ffi, lib
from helpers import rows_of, udp_frame

TIME_COLS = ("rx_time", "timestamp")
FIXED = {lib.LC_KIND_I64: "<q", lib.LC_KIND_U16: "<H", lib.LC_KIND_U8: "<B"}
EPOCH = datetime(1970, 1, 1)


def rfc3339(ns: int) -> str:
    sec, frac = divmod(ns, 10**9)
    return (EPOCH + timedelta(seconds=sec)).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def base_row(**kw) -> dict:
    row = {
        "rx_time": 1_065_910_455_003_000_000, "src_ip": "198.18.0.1", "dst_ip": "2001:db8::2",
        "src_port": 40000, "dst_port": 514, "vlan": 0, "facility": None, "severity": None,
        "format": "raw", "timestamp": None, "hostname": None, "app_name": None, "procid": None,
        "msgid": None, "structured_data": None, "message": "", "raw": b"", "flags": 0,
    }
    row.update(kw)
    return row


def fill(rows: list[dict], capacity: int = 64, avg_payload: int = 1024) -> Batch:
    """Write rows into a batch column by column, the way the C writers lay them out."""
    b = Batch(capacity=max(capacity, len(rows)), avg_payload=avg_payload)
    hdr = b.hdr
    mem = ffi.buffer(ffi.cast("char *", hdr), hdr.total_size)
    for ci, name in enumerate(SCHEMA.names):
        c = hdr.cols[ci]
        for r, row in enumerate(rows):
            v = row[name]
            if v is not None and c.validity_off:
                mem[c.validity_off + r // 8] = bytes([mem[c.validity_off + r // 8][0] | 1 << (r % 8)])
            if c.kind in FIXED:
                fmt = FIXED[c.kind]
                struct.pack_into(fmt, mem, c.values_off + r * struct.calcsize(fmt), v or 0)
            else:
                data = b"" if v is None else v if isinstance(v, bytes) else v.encode()
                assert c.data_used + len(data) <= c.data_cap
                mem[c.data_off + c.data_used:c.data_off + c.data_used + len(data)] = data
                c.data_used += len(data)
                struct.pack_into("<i", mem, c.values_off + 4 * (r + 1), c.data_used)
    hdr.count = len(rows)
    return b


def jsonl(b: Batch, first: int = 0, n: int | None = None, with_raw: bool = True, cap: int = 1 << 22):
    out = ffi.new("char[]", max(cap, 1))
    used = ffi.new("uint64_t *")
    rows = lib.lc_batch_jsonl(b.hdr, first, len(b) if n is None else n, with_raw, out, cap, used)
    return rows, ffi.buffer(out, used[0])[:]


def expected(row: dict, with_raw: bool = True) -> dict:
    out = {}
    for name in SCHEMA.names:
        v = row[name]
        if name == "raw":
            if not with_raw:
                continue
            v = base64.b64encode(v).decode()
        elif name in TIME_COLS and v is not None:
            v = rfc3339(v)
        out[name] = v
    return out


def check_against_arrow(b: Batch, with_raw: bool = True) -> list[str]:
    n, text = jsonl(b, with_raw=with_raw)
    assert n == len(b)
    lines = text.decode().split("\n")
    assert lines[-1] == "" and len(lines) == n + 1
    rows = rows_of(b.to_arrow())
    for line, row in zip(lines, rows):
        obj = json.loads(line)
        assert list(obj) == [k for k in SCHEMA.names if with_raw or k != "raw"]
        assert obj == expected(row, with_raw)
    return lines[:-1]


def test_exact_text_of_one_row():
    b = fill([base_row(facility=20, severity=5, format="rfc5424", timestamp=1_065_910_455_003_000_000,
                       hostname="mymachine.example.com", app_name="evntslog", procid=None, msgid="ID47",
                       structured_data='[exampleSDID@32473 iut="3"]', message="hi", raw=b"<165>1 x",
                       flags=0x0101, vlan=7)])
    n, text = jsonl(b)
    assert n == 1
    assert text == (
        b'{"rx_time":"2003-10-11T22:14:15.003000000Z","src_ip":"198.18.0.1","dst_ip":"2001:db8::2",'
        b'"src_port":40000,"dst_port":514,"vlan":7,"facility":20,"severity":5,"format":"rfc5424",'
        b'"timestamp":"2003-10-11T22:14:15.003000000Z","hostname":"mymachine.example.com",'
        b'"app_name":"evntslog","procid":null,"msgid":"ID47",'
        b'"structured_data":"[exampleSDID@32473 iut=\\"3\\"]","message":"hi","raw":"PDE2NT4xIHg=","flags":257}\n')
    n, text = jsonl(b, with_raw=False)
    assert b'"raw"' not in text and text.endswith(b'"message":"hi","flags":257}\n')


def test_nulls_zeros_and_maxima():
    rows = [base_row(),
            base_row(facility=0, severity=0, timestamp=0, hostname="", app_name="", procid="", msgid="",
                     structured_data="", src_port=65535, dst_port=0, vlan=4095, flags=65535),
            base_row(facility=23, severity=7)]
    lines = check_against_arrow(fill(rows))
    assert '"facility":null' in lines[0] and '"timestamp":null' in lines[0]
    assert '"facility":0,' in lines[1] and '"timestamp":"1970-01-01T00:00:00.000000000Z"' in lines[1]
    assert '"hostname":""' in lines[1] and '"flags":65535}' in lines[1]


def test_string_escapes():
    every_ascii = "".join(map(chr, range(128)))
    text = every_ascii + "é € 😀 \u2028 / end"
    b = fill([base_row(message=text, hostname='a"b\\c', structured_data='[x y="\\]"]')])
    (line,) = check_against_arrow(b)
    assert '\\u0000\\u0001' in line and '\\u001f' in line
    assert '\\b' not in line and '\\u0008' in line and '\\u000c' in line
    assert '\\t\\n\\u000b\\u000c\\r' in line
    assert ' !\\"#' in line and '[\\\\]' in line and '\x7f' in line
    assert 'é € 😀 \u2028 / end' in line
    assert '"hostname":"a\\"b\\\\c"' in line


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 6, 255, 256, 1000])
def test_base64_lengths(size):
    raw = bytes((i * 37 + 11) % 256 for i in range(size))
    (line,) = check_against_arrow(fill([base_row(raw=raw)]))
    assert json.loads(line)["raw"] == base64.b64encode(raw).decode()


@pytest.mark.parametrize("ns", [0, -1, 1, -10**9, -86_400 * 10**9 - 1, 951_782_400 * 10**9,   # 2000-02-29
                                4_107_542_399_999_999_999, -(2**63), 2**63 - 1,
                                -5_000_000_000 * 10**9, 1_709_164_800 * 10**9 + 5])           # 1811, 2024-02-29
def test_time_edges(ns):
    (line,) = check_against_arrow(fill([base_row(rx_time=ns, timestamp=ns)]))
    assert json.loads(line)["rx_time"] == rfc3339(ns)


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_time_any_int64(ns):
    n, text = jsonl(fill([base_row(rx_time=ns)], capacity=1))
    assert json.loads(text)["rx_time"] == rfc3339(ns)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60), st.binary(max_size=60), st.none() | st.text(max_size=40))
def test_any_strings_round_trip(message, raw, host):
    check_against_arrow(fill([base_row(message=message, raw=raw, hostname=host)], capacity=1))


def test_whole_rows_only_and_used():
    rows = [base_row(message="m" * i, raw=b"r" * i) for i in range(5)]
    b = fill(rows)
    n, full = jsonl(b)
    lines = full.splitlines(keepends=True)
    assert n == 5 and len(lines) == 5
    ends = [sum(map(len, lines[:k + 1])) for k in range(5)]
    for k, end in enumerate(ends):
        assert jsonl(b, cap=end) == (k + 1, full[:end])
        assert jsonl(b, cap=end - 1) == (k, full[:ends[k - 1]] if k else b"")
    assert jsonl(b, cap=0) == (0, b"")


def test_first_and_n():
    rows = [base_row(message=f"row {i}") for i in range(6)]
    b = fill(rows)
    n, text = jsonl(b, first=2, n=3)
    assert n == 3 and [json.loads(x)["message"] for x in text.splitlines()] == ["row 2", "row 3", "row 4"]
    assert jsonl(b, first=4, n=100)[0] == 2
    assert jsonl(b, first=6, n=1) == (0, b"")
    assert jsonl(b, first=99, n=1) == (0, b"")
    assert jsonl(fill([]), n=0) == (0, b"")


def test_decoded_batch_matches_arrow():
    payloads = [b"<13>Oct 11 22:14:15 host app: hello", b"<165>1 2003-10-11T22:14:15.003Z h a p m - x",
                b"", b"plain \"quoted\" \\ text\n", b"a\x00b"]
    d = Decoder()
    b = Batch(capacity=16)
    frames = [udp_frame(p, vlans=[3]) for p in payloads] + [udp_frame(b"v6", src="2001:db8::1", dst="::1")]
    d.decode_frames(frames, b, rx_ns=1_700_000_000_123_456_789)
    lines = check_against_arrow(b)
    assert len(lines) == 6
    assert all('"rx_time":"2023-11-14T22:13:20.123456789Z"' in x for x in lines)
    assert [base64.b64decode(json.loads(x)["raw"]) for x in lines] == payloads + [b"v6"]
    check_against_arrow(b, with_raw=False)
