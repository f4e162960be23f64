"""RFC 5424 through the real decoder (payload -> Ether/IPv4/UDP -> C -> Arrow).

Every test asserts every syslog column of the record (`expect`), so a
change in any field shows up. The helpers here (`expect`, `ns`, `F`) are
shared by the other test_syslog_* modules.
"""

from __future__ import annotations

import calendar
import re
from types import SimpleNamespace

import pytest

from dpdk_shim import lib
from helpers import DEFAULT_RX_NS, decode_frames, decode_payloads, udp_frame

# Flag bits by short name: F.BAD_PRI, F.BAD_HEADER, ...
F = SimpleNamespace(**{name[len("LC_F_"):]: getattr(lib, name) for name in dir(lib)
                       if name.startswith("LC_F_") and name != "LC_F_NBITS"})
BOM = b"\xef\xbb\xbf"

_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)"
                      r"(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)?")


def ns(text: str, tz_offset_s: int = 0) -> int:
    """'2003-10-11T22:14:15.003Z' -> ns since the epoch, computed in Python
    (calendar.timegm; exact fraction). No zone: `tz_offset_s` east of UTC."""
    m = _RFC3339.fullmatch(text)
    assert m, text
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7) or "", m.group(8)
    if zone is None:
        off = tz_offset_s
    elif zone == "Z":
        off = 0
    else:
        off = (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) - off
    return secs * 10**9 + int(frac.ljust(9, "0") or 0)


def decode(payload: bytes, **kw) -> dict:
    rows = decode_payloads([payload], **kw)
    assert len(rows) == 1
    return rows[0]


def expect(payload: bytes, *, fmt: str, pri: int | None = None, ts: str | int | None = None,
           host: str | None = None, app: str | None = None, procid: str | None = None,
           msgid: str | None = None, sd: str | None = None, msg: str | None = "", flags: int = 0,
           **kw) -> dict:
    """Decode one payload and assert every syslog column; `ts` is RFC 3339
    text (read in kw's tz_offset_s when it has no zone) or int ns."""
    row = decode(payload, **kw)
    if isinstance(ts, str):
        ts = ns(ts, kw.get("tz_offset_s", 0))
    want = {
        "facility": None if pri is None else pri >> 3,
        "severity": None if pri is None else pri & 7,
        "format": fmt,
        "timestamp": ts,
        "hostname": host,
        "app_name": app,
        "procid": procid,
        "msgid": msgid,
        "structured_data": sd,
        "message": msg,
        "flags": flags,
    }
    assert {k: row[k] for k in want} == want
    assert row["raw"] == payload
    return row


# ---- RFC 5424 section 6.5, verbatim (BOM written as its bytes) --------------

def test_rfc5424_example1_no_sd_with_bom():
    expect(b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - " + BOM
           + b"'su root' failed for lonvick on /dev/pts/8",
           fmt="rfc5424", pri=34, ts="2003-10-11T22:14:15.003Z", host="mymachine.example.com",
           app="su", msgid="ID47", msg="'su root' failed for lonvick on /dev/pts/8")


def test_rfc5424_example2_no_sd_offset_microseconds():
    expect(b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - "
           b"%% It's time to make the do-nuts.",
           fmt="rfc5424", pri=165, ts="2003-08-24T12:14:15.000003Z", host="192.0.2.1",
           app="myproc", procid="8710", msg="%% It's time to make the do-nuts.")


def test_rfc5424_example3_with_sd():
    sd = '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
    expect(b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
           + sd.encode() + b" " + BOM + b"An application event log entry...",
           fmt="rfc5424", pri=165, ts="2003-10-11T22:14:15.003Z", host="mymachine.example.com",
           app="evntslog", msgid="ID47", sd=sd, msg="An application event log entry...")


def test_rfc5424_example4_sd_only():
    # No MSG at all (RFC 5424 6.4: "[SP MSG]" is optional): message is null.
    sd = ('[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
          '[examplePriority@32473 class="high"]')
    expect(b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 " + sd.encode(),
           fmt="rfc5424", pri=165, ts="2003-10-11T22:14:15.003Z", host="mymachine.example.com",
           app="evntslog", msgid="ID47", sd=sd, msg=None)


# ---- PRI ---------------------------------------------------------------------

@pytest.mark.parametrize("pri", [0, 1, 7, 8, 13, 99, 100, 184, 191])
def test_pri_values(pri):
    expect(b"<%d>1 - - - - - - hi" % pri, fmt="rfc5424", pri=pri, msg="hi")


def test_pri_leading_zeros_accepted_and_decoded():
    expect(b"<013>1 - host - - - - x", fmt="rfc5424", pri=13, host="host", msg="x")
    expect(b"<00>1 - host - - - - x", fmt="rfc5424", pri=0, host="host", msg="x")


@pytest.mark.parametrize("payload", [
    b"<192>1 - host - - - - x",       # above 191
    b"<999>1 - host - - - - x",
    b"<1000>1 - host - - - - x",      # four digits
    b"<>1 - host - - - - x",          # no digits
    b"<1a>1 - host - - - - x",        # not digits
], ids=["192", "999", "4digits", "empty", "letter"])
def test_bad_pri_closed_still_rfc5424(payload):
    expect(payload, fmt="rfc5424", host="host", msg="x", flags=F.BAD_PRI)


def test_pri_unterminated_is_raw():
    expect(b"<13 1 - host - - - - x", fmt="raw", msg="<13 1 - host - - - - x", flags=F.BAD_PRI)


def test_no_pri_is_raw_even_if_5424_like():
    expect(b"1 - host - - - - x", fmt="raw", msg="1 - host - - - - x", flags=F.BAD_PRI)


@pytest.mark.parametrize("version", [b"2", b"10", b"999"])
def test_other_version_is_5424_flagged(version):
    # VERSION = NONZERO-DIGIT 0*2DIGIT (RFC 5424 6.2.2): parsed, and flagged as unusual.
    expect(b"<13>" + version + b" 2003-10-11T22:14:15.003Z host app - - - x", fmt="rfc5424",
           pri=13, ts="2003-10-11T22:14:15.003Z", host="host", app="app", msg="x",
           flags=F.VERSION)


@pytest.mark.parametrize("payload", [
    b"<13>2 words that are no header",        # a version-like digit, then BSD text
    b"<13>0 2003-10-11T22:14:15.003Z host app - - - x",     # 0 is no version
    b"<13>1000 2003-10-11T22:14:15.003Z host app - - - x",  # four digits
    b"<13>02 2003-10-11T22:14:15.003Z host app - - - x",    # leading zero
])
def test_not_a_version_is_bsd_text(payload):
    expect(payload, fmt="rfc3164", pri=13, msg=payload[4:].decode())


def test_version_1_malformed_stays_raw():
    expect(b"<13>1 2003-10-11T22:14:15.003Z", fmt="raw", pri=13,
           msg="<13>1 2003-10-11T22:14:15.003Z", flags=F.BAD_HEADER)


# ---- TIMESTAMP -----------------------------------------------------------------

@pytest.mark.parametrize("text, want", [
    ("1985-04-12T23:20:50.52Z", "1985-04-12T23:20:50.52Z"),             # RFC 5424 6.2.3.1
    ("1985-04-12T19:20:50.52-04:00", "1985-04-12T23:20:50.52Z"),
    ("2003-10-11T22:14:15.003Z", "2003-10-11T22:14:15.003Z"),
    ("2003-08-24T05:14:15.000003-07:00", "2003-08-24T12:14:15.000003Z"),
    ("2024-01-15T10:00:00Z", "2024-01-15T10:00:00Z"),
    ("2024-01-15T10:00:00.1Z", "2024-01-15T10:00:00.1Z"),
    ("2024-01-15T10:00:00.123456789Z", "2024-01-15T10:00:00.123456789Z"),  # 9 digits
    ("2024-01-15T10:00:00.000000001+00:00", "2024-01-15T10:00:00.000000001Z"),
    ("2024-01-15T00:30:00+05:30", "2024-01-14T19:00:00Z"),
    ("2024-01-15T23:59:59-23:59", "2024-01-16T23:58:59Z"),
    ("2024-01-01T00:00:00+23:59", "2023-12-31T00:01:00Z"),
    ("2023-12-31T23:00:00-01:00", "2024-01-01T00:00:00Z"),
    ("2024-02-29T12:00:00Z", "2024-02-29T12:00:00Z"),                   # leap year
    ("2000-02-29T12:00:00Z", "2000-02-29T12:00:00Z"),                   # 400-year rule
    ("1970-01-01T00:00:00Z", 0),
    ("1969-12-31T23:59:59.999999999Z", -1),
    ("1678-01-01T00:00:00Z", "1678-01-01T00:00:00Z"),                   # int64 ns range
    ("2262-04-11T00:00:00Z", "2262-04-11T00:00:00Z"),
    ("2024-01-15t10:00:00z", "2024-01-15T10:00:00Z"),                   # lenient: lowercase
    ("2024-01-15T10:00:00+0100", "2024-01-15T09:00:00Z"),               # lenient: +hhmm
    ("2024-01-15T10:00:00-00:00", "2024-01-15T10:00:00Z"),              # unknown offset
    ("2024-01-15T10:00:00.1234567890Z", "2024-01-15T10:00:00.123456789Z"),  # past ns: cut
])
def test_timestamp_valid(text, want):
    expect(b"<14>1 " + text.encode() + b" h a - - - m", fmt="rfc5424", pri=14, ts=want,
           host="h", app="a", msg="m")


def test_timestamp_without_offset_read_in_configured_zone():
    expect(b"<14>1 2024-01-15T10:00:00 h a - - - m", fmt="rfc5424", pri=14,
           ts="2024-01-15T09:00:00Z", host="h", app="a", msg="m", tz_offset_s=3600)


@pytest.mark.parametrize("text", [
    "2023-02-29T12:00:00Z",            # not a leap year
    "1900-02-29T12:00:00Z",            # century rule
    "2024-02-30T12:00:00Z",
    "2024-04-31T12:00:00Z",
    "2024-13-01T12:00:00Z",
    "2024-00-10T12:00:00Z",
    "2024-01-00T12:00:00Z",
    "2024-01-32T12:00:00Z",
    "2024-01-15T24:00:00Z",
    "2024-01-15T23:60:00Z",
    "2024-01-15T23:59:60Z",            # leap second: not allowed (RFC 5424 6.2.3)
    "2024-01-15T10:00:00.Z",
    "2024-01-15T10:00:00+24:00",
    "2024-01-15T10:00:00+01:60",
    "2024-01-15T10:00:00+1",
    "2024-01-15T10:00:00ZZ",
    "2024-01-15 10:00:00Z".replace(" ", "_"),
    "2024-1-15T10:00:00Z",
    "24-01-15T10:00:00Z",
    "2024-01-15T10:00Z",
    "1677-01-01T00:00:00Z",            # before int64 ns
    "2263-01-01T00:00:00Z",            # after int64 ns
    "9999-12-31T23:59:59Z",
    "0000-01-01T00:00:00Z",
    "Oct-11-2003",
    "now",
])
def test_timestamp_invalid_flags_and_keeps_header(text):
    expect(b"<14>1 " + text.encode() + b" h a p i - m", fmt="rfc5424", pri=14, ts=None,
           host="h", app="a", procid="p", msgid="i", msg="m", flags=F.BAD_TIMESTAMP)


def test_timestamp_nil():
    expect(b"<14>1 - h a p i - m", fmt="rfc5424", pri=14, host="h", app="a", procid="p",
           msgid="i", msg="m")


# ---- header fields -----------------------------------------------------------------

def test_all_nil_and_no_msg():
    expect(b"<13>1 - - - - - -", fmt="rfc5424", pri=13, msg=None)   # MSG absent: null
    expect(b"<13>1 - - - - - - ", fmt="rfc5424", pri=13, msg="")     # "SP" and empty MSG
    expect(b"<13>1 - - - - - -\n", fmt="rfc5424", pri=13, msg=None, flags=F.NEWLINE)


def test_field_length_limits_exact():
    host, app, procid, msgid = "h" * 255, "a" * 48, "p" * 128, "m" * 32
    p = f"<13>1 - {host} {app} {procid} {msgid} - x".encode()
    expect(p, fmt="rfc5424", pri=13, host=host, app=app, procid=procid, msgid=msgid, msg="x")


LIMITS = {"host": 255, "app": 48, "procid": 128, "msgid": 32}


@pytest.mark.parametrize("field", ["host", "app", "procid", "msgid"])
def test_field_too_long_is_cut_at_its_limit_and_flagged(field):
    # as syslog-ng and rsyslog do: the header still parses, the rest is in raw only
    f = {"host": "h", "app": "a", "procid": "p", "msgid": "m"}
    f[field] = f[field] * (LIMITS[field] + 1)
    p = f"<13>1 2024-01-15T10:00:00Z {f['host']} {f['app']} {f['procid']} {f['msgid']} - x".encode()
    cut = {k: v[:LIMITS[k]] for k, v in f.items()}
    expect(p, fmt="rfc5424", pri=13, ts="2024-01-15T10:00:00Z", host=cut["host"], app=cut["app"],
           procid=cut["procid"], msgid=cut["msgid"], msg="x", flags=F.BAD_HEADER)


@pytest.mark.parametrize("payload", [
    "<13>1 2024-01-15T10:00:00Z höst app - - - x".encode(),        # UTF-8 in HOSTNAME
    b"<13>1 2024-01-15T10:00:00Z host a\x7fp - - - x",             # DEL in APP-NAME
    b"<13>1 2024-01-15T10:00:00Z host app p\tid - - x",            # TAB in PROCID
    b"<13>1 2024-01-15T10:00:00Z host app - \x00 - x",             # NUL as MSGID
    b"<13>1 2024-01-15T10:00:00\xff host app - - - x",             # byte in TIMESTAMP
], ids=["utf8-host", "del-app", "tab-procid", "nul-msgid", "ff-timestamp"])
def test_field_not_printusascii_makes_raw(payload):
    msg = payload.decode("utf-8", "replace")
    flags = (F.BAD_HEADER | (F.NUL_BYTES if b"\0" in payload else 0)
             | (F.BAD_UTF8 if b"\xff" in payload else 0))
    expect(payload, fmt="raw", pri=13, msg=msg, flags=flags)


@pytest.mark.parametrize("payload", [
    b"<13>1 ",
    b"<13>1 2024-01-15T10:00:00Z",
    b"<13>1 2024-01-15T10:00:00Z host",
    b"<13>1 2024-01-15T10:00:00Z host app",
    b"<13>1 2024-01-15T10:00:00Z host app 1",
    b"<13>1  2024-01-15T10:00:00Z host app - - - x",              # empty field (two SP)
    b"<13>1 2024-01-15T10:00:00Z host  app - - - x",
], ids=["nothing", "ts", "host", "app", "procid", "empty-ts", "empty-host"])
def test_header_ends_early_or_empty_field_makes_raw(payload):
    expect(payload, fmt="raw", pri=13, msg=payload.decode(), flags=F.BAD_HEADER)


def test_missing_sd_after_msgid_keeps_header():
    expect(b"<13>1 2024-01-15T10:00:00Z host app 1 ID", fmt="rfc5424", pri=13,
           ts="2024-01-15T10:00:00Z", host="host", app="app", procid="1", msgid="ID", msg=None,
           flags=F.BAD_HEADER)
    expect(b"<13>1 2024-01-15T10:00:00Z host app 1 ID ", fmt="rfc5424", pri=13,
           ts="2024-01-15T10:00:00Z", host="host", app="app", procid="1", msgid="ID", msg=None,
           flags=F.BAD_HEADER)


# ---- STRUCTURED-DATA -------------------------------------------------------------

HDR = b"<14>1 2024-01-15T10:00:00Z h a - - "


def sd_case(sd_text: bytes, rest: bytes = b" msg", **kw):
    want = dict(fmt="rfc5424", pri=14, ts="2024-01-15T10:00:00Z", host="h", app="a")
    want.update(kw)
    return expect(HDR + sd_text + rest, **want)


@pytest.mark.parametrize("sd", [
    b'[id]',
    b'[id@32473]',
    b'[a b=""]',
    b'[a b="c"][d e="f" g="h"]',
    b'[timeQuality tzKnown="1" isSynced="1" syncAccuracy="9000"]',
    b'[x@1 v="a \\"quoted\\" word"]',                # escaped quote
    b'[x@1 v="back\\\\slash"]',                      # escaped backslash
    b'[x@1 v="close\\]bracket"]',                    # escaped ]
    b'[x@1 v="ends with backslash\\\\"]',            # \\ right before the closing quote
    b'[x@1 v="unescaped ] inside"]',                 # ] in a value does not end the element
    b'[x@1 v="other \\n escape kept"]',              # backslash before other char: kept
    b'[x@1 v="spaces  and\ttab"]',
    "[x@1 v=\"ünïcödé ✓ 日本\"]".encode(),            # UTF-8 in PARAM-VALUE
    b'[' + b"n" * 32 + b' ' + b"p" * 32 + b'="v"]',  # SD-NAME limits
    b'[x@1 a="1" a="2"]',                            # repeated param: kept as sent
])
def test_sd_valid_kept_exactly(sd):
    sd_case(sd, sd=sd.decode(), msg="msg")
    sd_case(sd, b"", sd=sd.decode(), msg=None)
    sd_case(sd, b" ", sd=sd.decode(), msg="")


def test_sd_nil():
    sd_case(b"-", msg="msg")
    sd_case(b"-", b"", msg=None)
    sd_case(b"-", b" ", msg="")


@pytest.mark.parametrize("sd", [
    b'[a b="c"',                 # no ]
    b'[a b="c]',                 # unterminated value
    b'[a b="c\\"]',              # quote escaped: value unterminated
    b'[ a b="c"]',               # SP before SD-ID (RFC 5424 6.3.5 example 4)
    b'[]',                       # empty SD-ID
    b'[a b]',                    # param without value
    b'[a ="c"]',                 # empty param name
    b'[a b="c" ]',               # trailing SP
    b'[a  b="c"]',               # two SP
    b'[a b=="c"]',
    b'[' + b"n" * 256 + b']',    # SD-ID beyond what is kept even with a flag
    b'[a ' + b"p" * 256 + b'="v"]',
    b'[a=b c="d"]',              # '=' in SD-ID
    b'[a"b c="d"]',
    b'[a b="\xff"]',             # invalid UTF-8 in value
])
def test_sd_malformed_first_element(sd):
    # nothing kept; the message starts where SD should have been
    msg = (sd + b" msg").decode("utf-8", "replace")
    bad_utf8 = F.BAD_UTF8 if b"\xff" in sd else 0
    sd_case(sd, sd=None, msg=msg, flags=F.BAD_HEADER | bad_utf8)


@pytest.mark.parametrize("sd", [b'[' + b"n" * 33 + b']', b'[a ' + b"p" * 33 + b'="v"]',
                                b'[' + b"n" * 255 + b' ' + b"p" * 255 + b'="v"]'])
def test_sd_name_longer_than_32_kept_and_flagged(sd):
    # RFC 5424 allows 32; syslog-ng keeps longer ones, and so do we (flagged)
    sd_case(sd, sd=sd.decode(), msg="msg", flags=F.BAD_HEADER)


def test_sd_malformed_second_element_keeps_first():
    sd_case(b'[a b="c"][d e=f"]', sd='[a b="c"]', msg='[d e=f"] msg', flags=F.BAD_HEADER)
    sd_case(b'[a b="c"][d e="\xc3"]', sd='[a b="c"]', msg='[d e="\ufffd"] msg',
            flags=F.BAD_HEADER | F.BAD_UTF8)


def test_sd_followed_by_non_space():
    sd_case(b'[a b="c"]x', b" msg", sd='[a b="c"]', msg="x msg", flags=F.BAD_HEADER)
    sd_case(b"-x", b" msg", msg="-x msg", flags=F.BAD_HEADER)


def test_sd_separated_by_space_is_message():
    # RFC 5424 6.3.5 example 3 (invalid): the second element becomes MSG.
    sd_case(b'[a b="c"] [d e="f"]', b"", sd='[a b="c"]', msg='[d e="f"]')


def test_sd_absent_message_in_its_place():
    expect(b"<14>1 2024-01-15T10:00:00Z h a - - hello world", fmt="rfc5424", pri=14,
           ts="2024-01-15T10:00:00Z", host="h", app="a", msg="hello world", flags=F.BAD_HEADER)


def test_sd_unquoted_values_esxi_kept_and_flagged():
    sd = b"[Originator@6876 sub=Vimsvc.TaskManager opID=esxui-6c1a-1b2c user=root]"
    sd_case(sd, b" Task Created", sd=sd.decode(), msg="Task Created", flags=F.BAD_HEADER)


def test_sd_with_unicode_and_bom_message():
    sd_case(b'[a b="\xe2\x9c\x93"]', b" " + BOM + "día ✓".encode(), sd='[a b="✓"]',
            msg="día ✓")


# ---- MSG ---------------------------------------------------------------------------

MSG_HDR = b"<14>1 2024-01-15T10:00:00Z h a - - - "


def msg_case(body: bytes, msg: str, flags: int = 0):
    return expect(MSG_HDR + body, fmt="rfc5424", pri=14, ts="2024-01-15T10:00:00Z", host="h",
                  app="a", msg=msg, flags=flags)


def test_msg_bom_dropped_only_at_start():
    msg_case(BOM + b"x", "x")
    msg_case(BOM, "")
    msg_case(b"x" + BOM, "x\ufeff")
    msg_case(BOM + BOM + b"x", "\ufeffx")


def test_msg_unicode_kept():
    text = "Grüße, мир, 日本語, emoji 🎉, U+10FFFF \U0010ffff"
    msg_case(text.encode(), text)


def test_msg_leading_spaces_kept_trailing_newlines_dropped_and_flagged():
    msg_case(b"  two leading spaces\n", "  two leading spaces", F.NEWLINE)
    msg_case(b"crlf\r\n", "crlf", F.NEWLINE)
    msg_case(b"cr\r", "cr", F.NEWLINE)
    msg_case(b"two\n\n", "two", F.NEWLINE)
    msg_case(b"inner\nline", "inner\nline")
    msg_case(b"\n", "", F.NEWLINE)


@pytest.mark.parametrize("body, msg", [
    (b"\xff", "\ufffd"),
    (b"a\x80b", "a\ufffdb"),                         # lone continuation
    (b"\xc0\xaf", "\ufffd\ufffd"),                   # overlong '/'
    (b"\xc1\xbf", "\ufffd\ufffd"),
    (b"\xe0\x80\xaf", "\ufffd\ufffd\ufffd"),         # overlong, 3 bytes
    (b"\xf0\x80\x80\xaf", "\ufffd" * 4),             # overlong, 4 bytes
    (b"\xed\xa0\x80", "\ufffd" * 3),                 # surrogate U+D800
    (b"\xed\xbf\xbf", "\ufffd" * 3),                 # surrogate U+DFFF
    (b"\xf4\x90\x80\x80", "\ufffd" * 4),             # U+110000
    (b"\xf5\x80\x80\x80", "\ufffd" * 4),
    (b"\xe2\x82", "\ufffd"),                         # truncated at the end: one maximal subpart
    (b"\xe2\x82x", "\ufffdx"),                       # truncated before ASCII
    (b"\xf0\x9f\x98", "\ufffd"),                     # 3 of 4 bytes
    (b"\xf0\x9f\x98\xf0\x9f\x98\x80", "\ufffd\U0001f600"),
    (b"\xe2\x82\xac", "€"),                          # valid, for contrast
    (b"\xed\x9f\xbf", "\ud7ff"),                     # last before surrogates
    (b"\xee\x80\x80", "\ue000"),                     # first after surrogates
    (b"\xf4\x8f\xbf\xbf", "\U0010ffff"),
    (b"0123456789abcdef\xff0123456789abcdef", "0123456789abcdef\ufffd0123456789abcdef"),
])
def test_msg_invalid_utf8_is_replaced_as_python_does(body, msg):
    assert body.decode("utf-8", "replace") == msg
    bad = msg.encode("utf-8", "surrogatepass") != body
    msg_case(body, msg, F.BAD_UTF8 if bad else 0)


def test_msg_nul_bytes_kept_and_flagged():
    msg_case(b"a\x00b", "a\x00b", F.NUL_BYTES)
    msg_case(b"\x00" * 20, "\x00" * 20, F.NUL_BYTES)
    msg_case(b"0123456789\x00abc\xff", "0123456789\x00abc\ufffd", F.NUL_BYTES | F.BAD_UTF8)


def test_msg_long_ascii_fast_path_boundaries():
    for n in range(0, 40):
        body = bytes(0x41 + (i % 26) for i in range(n))
        msg_case(body, body.decode())
        msg_case(body + "é".encode(), body.decode() + "é")


# ---- counters ------------------------------------------------------------------------

def test_format_counters():
    payloads = [b"<13>1 - - - - - - a", b"<13>1 - - - - - - b", b"<13>Oct 11 22:14:15 h c",
                b"not syslog", b"", b"<13>1 bad  header"]
    rows, c = decode_frames([udp_frame(p) for p in payloads], rx_ns=DEFAULT_RX_NS)
    assert [r["format"] for r in rows] == ["rfc5424", "rfc5424", "rfc3164", "raw", "raw", "raw"]
    assert c["formats"] == {"rfc5424": 2, "rfc3164": 1, "raw": 3}
    assert c["flags"]["bad_pri"] == 1           # "not syslog" (an empty payload is only `empty`)
    assert c["flags"]["empty"] == 1
    assert c["flags"]["bad_header"] == 1
    assert c["flags"]["year_inferred"] == 1
