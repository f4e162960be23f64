"""Properties of the syslog decoder, checked with hypothesis.

- Any payload (random bytes, syslog-shaped token soup, up to 64 KiB) gives
  exactly one record: raw is the payload, message is valid UTF-8 and equals
  the payload's tail sanitised byte by byte, fields stay within their
  limits and are slices of the payload.
- Generated valid RFC 5424 messages round-trip every field exactly.
- Generated BSD messages get the year the inference rule names.
- docs/FLAGS.md lists exactly the LC_F_* bits of the shim.
"""

from __future__ import annotations

import calendar
import re
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from dpdk_shim import lib
from helpers import decode_payloads
from test_syslog_5424 import BOM, F

ROOT = Path(__file__).resolve().parents[2]
MAX_UDP_PAYLOAD = 65507               # IPv4: 65535 - IP header - UDP header
NET_FLAGS = F.FRAGMENT | F.TRUNCATED | F.BAD_UDP | F.BAD_IP
LIMITS = {"hostname": 255, "app_name": 48, "procid": 128, "msgid": 32}
PRINTUSASCII = "".join(map(chr, range(33, 127)))
SDNAME = "".join(c for c in PRINTUSASCII if c not in '="]')
ZONES = {"UTC", "GMT", "UT", "WET", "WEST", "CET", "CEST", "MET", "MEST", "MEZ", "MESZ", "EET",
         "EEST", "MSK", "EST", "EDT", "CDT", "MST", "MDT", "PST", "PDT", "AKST", "AKDT", "HST",
         "JST", "KST", "HKT", "SGT", "AWST", "ACST", "ACDT", "AEST", "AEDT", "NZST", "NZDT", "CST",
         "IST", "BST", "AST"}
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
NS = 10**9

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BIG = settings(max_examples=8, deadline=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.large_base_example])


def sanitise(b: bytes) -> str:
    """The decoder's UTF-8 rule is Python's: each maximal invalid subpart
    becomes one U+FFFD (dpdk_shim/src/utf8.h; docs/FLAGS.md)."""
    return b.decode("utf-8", "replace")


def test_the_rule_is_pythons_maximal_subpart():
    assert sanitise(b"\xe2\x82x\xff") == "\ufffdx\ufffd", "a truncated sequence is one subpart"
    assert sanitise(b"\xe0\x80\xaf") == "\ufffd" * 3, "a lead byte whose next byte is out of range: alone"


# ---- any payload ---------------------------------------------------------------

def check_invariants(payload: bytes, row: dict) -> None:
    assert row["raw"] == payload
    assert row["flags"] & NET_FLAGS == 0
    assert row["format"] in ("rfc5424", "rfc3164", "raw")
    assert (row["facility"] is None) == (row["severity"] is None)
    if row["facility"] is not None:
        assert row["facility"] <= 23 and row["severity"] <= 7
        assert not row["flags"] & F.BAD_PRI
    else:
        assert row["flags"] & (F.BAD_PRI | F.EMPTY)
    assert bool(row["flags"] & F.EMPTY) == (payload == b"")
    # Trailing line breaks, and spaces or tabs after the last one (docs/FLAGS.md): flagged, not in message.
    padded = payload.rstrip(b" \t")
    newline = padded.endswith((b"\r", b"\n"))
    body = padded.rstrip(b"\r\n") if newline else payload
    assert bool(row["flags"] & F.NEWLINE) == newline
    msg = row["message"]
    if msg is None:                                      # RFC 5424 without MSG
        assert row["format"] == "rfc5424"
        msg = ""
    assert isinstance(msg, str)
    assert len(msg.encode()) <= 3 * len(payload)
    assert sanitise(body).endswith(msg)                 # a sanitised tail of the payload
    assert bool(row["flags"] & F.NUL_BYTES) == ("\0" in msg)
    if "\ufffd" in msg and "\ufffd".encode() not in payload:
        assert row["flags"] & F.BAD_UTF8
    if row["format"] == "raw":
        assert msg == sanitise(body)
        assert all(row[k] is None for k in ("timestamp", "hostname", "app_name", "procid", "msgid",
                                            "structured_data"))
    for field, limit in LIMITS.items():
        if row[field] is not None:
            value = row[field].encode()
            assert 1 <= len(value) <= limit and value in payload
            assert all(33 <= c <= 126 for c in value)
    if row["structured_data"] is not None:
        sd = row["structured_data"].encode()
        assert row["format"] == "rfc5424" and sd.startswith(b"[") and sd.endswith(b"]")
        assert sd in payload and len(sd) <= len(payload)
    if row["timestamp"] is not None:
        assert not row["flags"] & F.BAD_TIMESTAMP
    if row["flags"] & F.YEAR_INFERRED:
        assert row["format"] == "rfc3164" and row["timestamp"] is not None


@FAST
@given(st.binary(max_size=4096))
def test_any_bytes_one_valid_record(payload):
    rows = decode_payloads([payload])
    assert len(rows) == 1
    check_invariants(payload, rows[0])


TOKENS = [b"<", b">", b"<13>", b"<191>", b"<192>", b"<034>", b"1 ", b" ", b"  ", b"-", b"[", b"]",
          b'"', b"\\", b"=", b":", b": ", b"%ASA-6-302013:", b"*", b".", b"Oct", b"Feb", b"29",
          b"11", b" 1", b"22:14:15", b"23:59:60", b".123", b".1234567890", b"2024", b"1987",
          b"2003-10-11T22:14:15.003Z", b"2024-02-30T10:00:00+01:00", b"T", b"Z", b"+05:30", b"UTC",
          b"CET", b"host", b"app[123]", b"su:", b"id@32473", b'a="b"', b'v="\\"]"', b"\xef\xbb\xbf",
          b"\xff", b"\xc3", b"\xa9", b"\xe2\x82", b"\xf0\x9f\x8e\x89", b"\x00", b"\n", b"123:",
          b"RP/0/CPU0:", "ü".encode()]


@FAST
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_syslog_shaped_token_soup(tokens):
    payload = b"".join(tokens)
    rows = decode_payloads([payload], tz_offset_s=3600)
    assert len(rows) == 1
    check_invariants(payload, rows[0])


@BIG
@given(st.binary(min_size=1, max_size=256), st.integers(60000, MAX_UDP_PAYLOAD),
       st.sampled_from([b"", b"<13>", b"<14>1 - h a - - - ", b"<13>Oct 11 22:14:15 h a: "]))
def test_64k_payloads(seed, size, prefix):
    body = (seed * (size // len(seed) + 1))[:size - len(prefix)]
    payload = prefix + body
    rows = decode_payloads([payload])
    assert len(rows) == 1
    check_invariants(payload, rows[0])


def test_64k_worst_case_expansion():
    # every byte invalid: the message is three times the payload (the bound
    # lc_batch_room reserves)
    payload = b"\xff" * MAX_UDP_PAYLOAD
    row = decode_payloads([payload])[0]
    assert row["message"] == "\ufffd" * MAX_UDP_PAYLOAD
    assert row["flags"] == F.BAD_PRI | F.BAD_UTF8
    payload = b"<14>1 - h a - - - " + b"\xc0" * (MAX_UDP_PAYLOAD - 18)
    row = decode_payloads([payload])[0]
    assert len(row["message"].encode()) == 3 * (MAX_UDP_PAYLOAD - 18)


# ---- RFC 5424 round trip -------------------------------------------------------

def sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


@st.composite
def timestamps(draw):
    """(text, ns or None): RFC 3339 with random fraction and offset, or '-'."""
    if draw(st.integers(0, 9)) == 0:
        return "-", None
    y = draw(st.integers(1700, 2200))
    mo = draw(st.integers(1, 12))
    d = draw(st.integers(1, calendar.monthrange(y, mo)[1]))
    h, mi, s = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
    frac = draw(st.text("0123456789", max_size=9))
    if draw(st.booleans()):
        zone, off = "Z", 0
    else:
        oh, om = draw(st.integers(0, 23)), draw(st.integers(0, 59))
        sign = draw(st.sampled_from("+-"))
        zone = f"{sign}{oh:02d}:{om:02d}"
        off = (1 if sign == "+" else -1) * (oh * 3600 + om * 60)
    text = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}" + (f".{frac}" if frac else "")
    text += zone
    secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) - off
    return text, secs * NS + int(frac.ljust(9, "0") or 0)


def header_field(limit):
    return st.one_of(st.just("-"), st.text(PRINTUSASCII, min_size=1, max_size=limit))


@st.composite
def structured_data(draw):
    elements = []
    for _ in range(draw(st.integers(0, 3))):
        sd_id = draw(st.text(SDNAME, min_size=1, max_size=32))
        params = ""
        for _ in range(draw(st.integers(0, 3))):
            name = draw(st.text(SDNAME, min_size=1, max_size=32))
            params += f' {name}="{sd_escape(draw(st.text(max_size=20)))}"'
        elements.append(f"[{sd_id}{params}]")
    return "".join(elements) or "-"


@FAST
@given(pri=st.integers(0, 191), ts=timestamps(), host=header_field(255), app=header_field(48),
       procid=header_field(128), msgid=header_field(32), sd=structured_data(),
       msg=st.one_of(st.none(), st.text(max_size=300)), bom=st.booleans())
def test_rfc5424_round_trip(pri, ts, host, app, procid, msgid, sd, msg, bom):
    ts_text, ts_ns = ts
    payload = f"<{pri}>1 {ts_text} {host} {app} {procid} {msgid} {sd}".encode()
    body = b""
    if msg is not None:
        body = (BOM if bom else b"") + msg.encode()
        payload += b" " + body
    row = decode_payloads([payload], tz_offset_s=-7200)[0]
    nil = lambda v: None if v == "-" else v            # noqa: E731
    expected_msg = (body[3:] if body.startswith(BOM) else body).rstrip(b"\r\n")
    want = {
        "facility": pri >> 3, "severity": pri & 7, "format": "rfc5424", "timestamp": ts_ns,
        "hostname": nil(host), "app_name": nil(app), "procid": nil(procid), "msgid": nil(msgid),
        "structured_data": nil(sd), "raw": payload,
        "message": None if msg is None else expected_msg.decode(),   # no MSG: null
        "flags": (F.NUL_BYTES if b"\0" in expected_msg else 0)
                 | (F.NEWLINE if body.endswith((b"\r", b"\n")) else 0),
    }
    assert {k: row[k] for k in want} == want


# ---- RFC 3164 year inference -------------------------------------------------------

def expected_year(rx_local_s: int, mo: int, d: int, tod: int) -> int:
    """The rule of DESIGN.md, independently: rx year in the zone; the
    previous one if the date is more than 31 days ahead; the next one if
    that keeps it within 31 days."""
    y = time.gmtime(rx_local_s).tm_year
    slack = 31 * 86400
    at = lambda yy: calendar.timegm((yy, mo, d, 0, 0, 0, 0, 0, 0)) + tod   # noqa: E731
    if at(y) > rx_local_s + slack:
        return y - 1
    if at(y + 1) <= rx_local_s + slack:
        return y + 1
    return y


HOST = st.text(PRINTUSASCII.replace("[", ""), min_size=1, max_size=40).filter(
    lambda h: not h.endswith(":") and not h.startswith("%") and h != "-" and h not in ZONES)
TAG = st.text("".join(c for c in PRINTUSASCII if c not in "[]:"), min_size=1, max_size=48).filter(
    lambda t: not t.isdigit() and not re.fullmatch(r"%[A-Za-z].*-[0-9].*", t))   # Cisco's: own tests


@FAST
@given(rx_s=st.integers(0, 7_000_000_000), tz=st.integers(-48, 56).map(lambda q: q * 900),
       mo=st.integers(1, 12), d=st.integers(1, 28), h=st.integers(0, 23), mi=st.integers(0, 59),
       s=st.integers(0, 59), frac=st.text("0123456789", max_size=9), pad=st.booleans(),
       host=HOST, tag=TAG, pid=st.one_of(st.none(), st.integers(0, 10**9)),
       msg=st.text(max_size=100))
def test_rfc3164_round_trip_and_year(rx_s, tz, mo, d, h, mi, s, frac, pad, host, tag, pid, msg):
    day = f"{d:2d}" if pad else f"{d:02d}"
    stamp = f"{MONTHS[mo - 1]} {day} {h:02d}:{mi:02d}:{s:02d}" + (f".{frac}" if frac else "")
    tag_text = tag + (f"[{pid}]" if pid is not None else "") + ":"
    payload = f"<13>{stamp} {host} {tag_text} {msg}".encode()
    rx_ns = rx_s * NS + 123
    row = decode_payloads([payload], rx_ns=rx_ns, tz_offset_s=tz)[0]
    tod = h * 3600 + mi * 60 + s
    y = expected_year(rx_s + tz, mo, d, tod)
    ts = (calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) - tz) * NS + int(frac.ljust(9, "0") or 0)
    body = msg.encode()
    expected_msg = (body[3:] if body.startswith(BOM) else body).rstrip(b"\r\n")
    want = {
        "facility": 1, "severity": 5, "format": "rfc3164", "timestamp": ts, "hostname": host,
        "app_name": tag, "procid": None if pid is None else str(pid), "msgid": None,
        "structured_data": None, "message": expected_msg.decode(), "raw": payload,
        "flags": F.YEAR_INFERRED | (F.NUL_BYTES if b"\0" in expected_msg else 0)
                 | (F.NEWLINE if body.endswith((b"\r", b"\n")) else 0),
    }
    assert {k: row[k] for k in want} == want


# ---- docs -------------------------------------------------------------------------

def test_flags_doc_matches_shim():
    shim = sorted(((getattr(lib, n), n) for n in dir(lib)
                   if n.startswith("LC_F_") and n != "LC_F_NBITS"))
    rows = re.findall(r"^\| `(LC_F_\w+)` \| `(0x[0-9a-fA-F]{4})` \| (.+?) \|$",
                      (ROOT / "docs" / "FLAGS.md").read_text(), re.M)
    assert [(int(v, 16), n) for n, v, _ in rows] == shim
    assert len(shim) == lib.LC_F_NBITS
    assert [v for v, _ in shim] == [1 << i for i in range(lib.LC_F_NBITS)]
