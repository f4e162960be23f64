"""RFC 3164 and the BSD-style headers real devices send, through the real
decoder. Every test asserts every syslog column (see test_syslog_5424.expect).

Receive time for year inference: RX (2024-03-10T12:00:00Z) unless a test
says otherwise; RFC 3164 dates carry no year, so expectations name it.
"""

from __future__ import annotations

import pytest

from test_syslog_5424 import BOM, F, expect, ns

AMB = F.AMBIGUOUS      # "h x": is "x" a TAG without its colon? (docs/SYSLOG.md)

RX = ns("2024-03-10T12:00:00Z")


def bsd(payload: bytes, **kw):
    kw.setdefault("rx_ns", RX)
    kw.setdefault("fmt", "rfc3164")
    return expect(payload, **kw)


# ---- RFC 3164 section 5.4 -------------------------------------------------------

def test_rfc3164_example1():
    bsd(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        pri=34, ts="2023-10-11T22:14:15Z", host="mymachine", app="su",
        msg="'su root' failed for lonvick on /dev/pts/8", flags=F.YEAR_INFERRED)


def test_rfc3164_example2_relayed():
    bsd(b"<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!", pri=13, ts="2024-02-05T17:32:18Z",
        host="10.0.0.99", msg="Use the BFG!", flags=F.YEAR_INFERRED | F.AMBIGUOUS)   # "Use": TAG?


def test_rfc3164_example2_original_without_header():
    # The device sent no PRI and no header: not syslog, kept as raw.
    bsd(b"Use the BFG!", fmt="raw", msg="Use the BFG!", flags=F.BAD_PRI)


def test_rfc3164_example3_zone_and_year_after_time():
    # "CST 1987" is read as zone and year (CST is ambiguous: configured zone).
    p = (b"<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% It's time to make the do-nuts."
         b"  %%  Ingredients: Mix=OK, Jelly=OK # Devices: Mixer=OK, Jelly_Injector=OK, Frier=OK"
         b" # Transport: Conveyer1=OK, Conveyer2=OK # %%")
    bsd(p, pri=165, ts="1987-08-24T05:34:00", host="mymachine", app="myproc", procid="10",
        msg=p[p.index(b"%%"):].decode(), tz_offset_s=-6 * 3600)


def test_rfc3164_example4_original_year_first():
    # "TZ-6" is not a zone this decoder knows: it is taken as the host.
    bsd(b"<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: "
        b"That's All Folks!", pri=0, ts="1990-10-22T10:52:01Z", host="TZ-6",
        msg="scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!", flags=F.AMBIGUOUS)


def test_rfc3164_example4_relayed():
    bsd(b"<0>Oct 22 10:52:12 scapegoat 1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org "
        b"10.1.2.3 sched[0]: That's All Folks!", pri=0, ts="2023-10-22T10:52:12Z",
        host="scapegoat", msg="1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 "
        "sched[0]: That's All Folks!", flags=F.YEAR_INFERRED | F.AMBIGUOUS)


# ---- timestamp forms -------------------------------------------------------------

@pytest.mark.parametrize("stamp, want", [
    (b"Mar  1 00:00:00", "2024-03-01T00:00:00Z"),            # space-padded day
    (b"Mar 01 00:00:00", "2024-03-01T00:00:00Z"),            # zero-padded
    (b"Mar 1 00:00:00", "2024-03-01T00:00:00Z"),             # unpadded
    (b"Jan 31 23:59:59", "2024-01-31T23:59:59Z"),
    (b"Feb 29 12:00:00", "2024-02-29T12:00:00Z"),            # 2024 is a leap year
    (b"MAR 09 10:11:12", "2024-03-09T10:11:12Z"),            # month in any case
    (b"mar 09 10:11:12", "2024-03-09T10:11:12Z"),
    (b"Mar 09 10:11:12.5", "2024-03-09T10:11:12.5Z"),        # fractions
    (b"Mar 09 10:11:12.123", "2024-03-09T10:11:12.123Z"),
    (b"Mar 09 10:11:12.123456", "2024-03-09T10:11:12.123456Z"),
    (b"Mar 09 10:11:12.123456789", "2024-03-09T10:11:12.123456789Z"),
])
def test_bsd_timestamp_year_inferred(stamp, want):
    bsd(b"<13>" + stamp + b" host app: m", pri=13, ts=want, host="host", app="app", msg="m",
        flags=F.YEAR_INFERRED)


@pytest.mark.parametrize("month, num", list(zip(
    b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), range(1, 13))))
def test_every_month_name(month, num):
    year = 2024 if num <= 4 else 2023                        # more than 31 days ahead: last year
    bsd(b"<13>" + month + b" 10 08:00:00 h x", pri=13, ts=f"{year}-{num:02d}-10T08:00:00Z",
        host="h", msg="x", flags=F.YEAR_INFERRED | F.AMBIGUOUS)


@pytest.mark.parametrize("stamp, want", [
    (b"Jan 15 2024 10:00:00", "2024-01-15T10:00:00Z"),           # Cisco ASA
    (b"Jan  5 2019 10:00:00.250", "2019-01-05T10:00:00.25Z"),
    (b"2024 Jan 15 10:00:00", "2024-01-15T10:00:00Z"),           # NX-OS
    (b"2024 Jan  5 10:00:00", "2024-01-05T10:00:00Z"),
    (b"2024-01-15T10:00:00Z", "2024-01-15T10:00:00Z"),           # ISO 8601 / RFC 3339
    (b"2024-01-15T10:00:00.123+01:00", "2024-01-15T09:00:00.123Z"),
    (b"2024-01-15T10:00:00.123456-05:00", "2024-01-15T15:00:00.123456Z"),
    (b"2024-01-15T10:00:00+0100", "2024-01-15T09:00:00Z"),
    (b"2024-01-15T10:00:00", "2024-01-15T10:00:00Z"),            # no zone: configured (UTC)
    (b"2024-01-15 10:00:00", "2024-01-15T10:00:00Z"),            # space instead of T
    (b"2024-01-15 10:00:00.5Z", "2024-01-15T10:00:00.5Z"),
    (b"Aug 24 05:34:00 UTC 1987", "1987-08-24T05:34:00Z"),      # zone and year
])
def test_timestamp_with_year(stamp, want):
    bsd(b"<13>" + stamp + b" host app: m", pri=13, ts=want, host="host", app="app", msg="m")


def test_configured_zone_applies_to_bsd_and_zoneless_iso():
    bsd(b"<13>Mar  9 10:00:00 h a: m", pri=13, ts="2024-03-09T09:00:00Z", host="h", app="a",
        msg="m", flags=F.YEAR_INFERRED, tz_offset_s=3600)
    bsd(b"<13>2024-03-09T10:00:00 h a: m", pri=13, ts="2024-03-09T15:00:00Z", host="h", app="a",
        msg="m", tz_offset_s=-5 * 3600)
    bsd(b"<13>2024-03-09T10:00:00Z h a: m", pri=13, ts="2024-03-09T10:00:00Z", host="h",
        app="a", msg="m", tz_offset_s=-5 * 3600)                 # explicit zone wins


# ---- year inference ------------------------------------------------------------------

@pytest.mark.parametrize("rx, stamp, want", [
    ("2024-01-15T12:00:00Z", b"Jan 15 11:00:00", "2024-01-15T11:00:00Z"),   # same day
    ("2024-01-15T12:00:00Z", b"Feb 15 12:00:00", "2024-02-15T12:00:00Z"),   # exactly 31 days ahead
    ("2024-01-15T12:00:00Z", b"Feb 15 12:00:01", "2023-02-15T12:00:01Z"),   # one second more
    ("2024-01-15T12:00:00Z", b"Dec 31 23:59:59", "2023-12-31T23:59:59Z"),
    ("2024-01-01T00:00:05Z", b"Dec 31 23:59:58", "2023-12-31T23:59:58Z"),   # across New Year
    ("2023-12-31T23:59:50Z", b"Jan  1 00:00:02", "2024-01-01T00:00:02Z"),   # sender ahead
    ("2023-12-20T00:00:00Z", b"Jan 20 00:00:00", "2024-01-20T00:00:00Z"),   # next year, in slack
    ("2023-12-20T00:00:00Z", b"Jan 21 00:00:01", "2023-01-21T00:00:01Z"),   # beyond the slack
    ("2024-03-01T00:00:00Z", b"Feb 29 23:00:00", "2024-02-29T23:00:00Z"),
    ("2024-06-30T00:00:00Z", b"Jul 31 00:00:00", "2024-07-31T00:00:00Z"),
    ("2024-06-30T00:00:00Z", b"Aug  1 00:00:00", "2023-08-01T00:00:00Z"),
    ("1970-01-01T00:00:00Z", b"Jan  1 00:00:00", "1970-01-01T00:00:00Z"),
])
def test_year_inference(rx, stamp, want):
    bsd(b"<13>" + stamp + b" h x", pri=13, ts=want, host="h", msg="x", flags=F.YEAR_INFERRED | AMB,
        rx_ns=ns(rx))


def test_year_inference_uses_configured_zone():
    # rx is 2023-12-31T23:30Z, which is already 2024-01-01 00:30 at UTC+1.
    bsd(b"<13>Jan  1 00:15:00 h x", pri=13, ts="2024-01-01T00:15:00+01:00", host="h", msg="x",
        flags=F.YEAR_INFERRED | AMB, rx_ns=ns("2023-12-31T23:30:00Z"), tz_offset_s=3600)
    # ... and still 2023-12-31 at UTC-1: "Jan 1" is tomorrow.
    bsd(b"<13>Jan  1 00:15:00 h x", pri=13, ts="2024-01-01T00:15:00-01:00", host="h", msg="x",
        flags=F.YEAR_INFERRED | AMB, rx_ns=ns("2023-12-31T23:30:00Z"), tz_offset_s=-3600)
    bsd(b"<13>Dec 31 22:00:00 h x", pri=13, ts="2023-12-31T22:00:00-01:00", host="h", msg="x",
        flags=F.YEAR_INFERRED | AMB, rx_ns=ns("2023-12-31T23:30:00Z"), tz_offset_s=-3600)


def test_feb29_in_a_common_year_is_invalid():
    bsd(b"<13>Feb 29 12:00:00 h x", pri=13, host="h", msg="x", flags=F.BAD_TIMESTAMP | AMB,
        rx_ns=ns("2023-03-10T00:00:00Z"))


# ---- invalid dates: flagged, null, header still parsed ------------------------------

@pytest.mark.parametrize("stamp", [
    b"Feb 30 10:00:00", b"Apr 31 10:00:00", b"Jan 32 10:00:00", b"Jan 00 10:00:00",
    b"Jan 10 25:00:00", b"Jan 10 24:00:00", b"Jan 10 10:60:00", b"Jan 10 10:00:60",
    b"Jan 10 99:99:99",
    b"Jan 10 2024 25:00:00", b"2024 Feb 30 10:00:00", b"2023-02-29T10:00:00Z",
    b"2024-13-01T10:00:00Z", b"2024-01-15T10:00:00+25:00",
])
def test_invalid_date_flagged_rest_parsed(stamp):
    bsd(b"<13>" + stamp + b" host app[7]: text", pri=13, host="host", app="app", procid="7",
        msg="text", flags=F.BAD_TIMESTAMP)


@pytest.mark.parametrize("text", [
    b"Foo 10 10:00:00 host app: text",        # not a month
    b"Jan10 10:00:00 host app: text",         # no space
    b"Jan 10 10:00 host app: text",           # no seconds
    b"Jan 10 10:00:00x host app: text",       # glued
    b"Jan 123 10:00:00 host app: text",
    b"2024-01-15 is the day",
    b"2024 is the year",
    b"12 monkeys",
])
def test_not_a_timestamp_is_message(text):
    bsd(b"<13>" + text, pri=13, msg=text.decode())


# ---- HOSTNAME and TAG ------------------------------------------------------------------

@pytest.mark.parametrize("rest, host, app, procid, msg", [
    (b"host app: m", "host", "app", None, "m"),
    (b"host app[123]: m", "host", "app", "123", "m"),
    (b"host app[123] m", "host", "app", "123", "m"),                  # no colon after [pid]
    (b"host app[]: m", "host", "app", None, "m"),                     # empty pid
    (b"host postfix/smtpd[4711]: connect", "host", "postfix/smtpd", "4711", "connect"),
    (b"host run-parts(/etc/cron.daily)[9]: ok", "host", "run-parts(/etc/cron.daily)", "9", "ok"),
    (b"host app:", "host", "app", None, ""),                          # TAG, no content
    (b"host app[1]", "host", "app", "1", ""),
    (b"host app no tag here", "host", None, None, "app no tag here"),  # ambiguous: "app" a TAG?
    (b"host", None, None, None, "host"),                              # one word: ambiguous
    (b"su: no host", None, "su", None, "no host"),                    # "word:": TAG, ambiguous
    (b"sshd[99]: no host", None, "sshd", "99", "no host"),            # token with '[' is a TAG
    (b"CRON[1] no host", None, "CRON", "1", "no host"),
    (b"- app: nil host", None, "app", None, "nil host"),              # "-" host is null
    (b"host.example.com app: m", "host.example.com", "app", None, "m"),
    (b"2001:db8::1 app: m", "2001:db8::1", "app", None, "m"),         # IPv6 host
    (b"host a: b: c", "host", "a", None, "b: c"),
    (b"host CEF:0|V|P|1|2|n|3|k=v", "host", None, None, "CEF:0|V|P|1|2|n|3|k=v"),
    (b"host http://x/y", "host", None, None, "http://x/y"),
    (b"host  two spaces", "host", None, None, " two spaces"),
    (b"host " + b"t" * 48 + b": m", "host", "t" * 48, None, "m"),      # longest TAG
    (b"host " + b"t" * 49 + b": m", "host", None, None, "t" * 49 + ": m"),
    (b"host a[" + b"9" * 128 + b"]: m", "host", "a", "9" * 128, "m"),
    (b"host a[" + b"9" * 129 + b"]: m", "host", None, None, "a[" + "9" * 129 + "]: m"),
    (b"host a[1 2]: m", "host", None, None, "a[1 2]: m"),
    (b"host a[12: m", "host", None, None, "a[12: m"),
    (b"h" * 255 + b" a: m", "h" * 255, "a", None, "m"),               # longest host
    (b"h" * 256 + b" a: m", None, None, None, "h" * 256 + " a: m"),
    ("hôst app: m".encode(), None, None, None, "hôst app: m"),        # non-ASCII: not a host
    ("host äpp: m".encode(), "host", None, None, "äpp: m"),           # nor a TAG
    (b"host app: " + BOM + b"bom", "host", "app", None, "bom"),      # BOM dropped
])
def test_host_and_tag(rest, host, app, procid, msg):
    ambiguous = rest in (b"host app no tag here", b"host", b"su: no host")
    bsd(b"<13>Mar  9 10:00:00 " + rest, pri=13, ts="2024-03-09T10:00:00Z", host=host, app=app,
        procid=procid, msg=msg, flags=F.YEAR_INFERRED | (F.AMBIGUOUS if ambiguous else 0))


# ---- no timestamp ---------------------------------------------------------------------

@pytest.mark.parametrize("rest, app, procid, msg", [
    (b"hello world", None, None, "hello world"),
    (b"", None, None, ""),
    (b" leading space", None, None, "leading space"),       # spaces after PRI: skipped
    (b"sshd[123]: Accepted publickey", "sshd", "123", "Accepted publickey"),
    (b"kernel: oops", "kernel", None, "oops"),
    (b"date=2024-01-15 time=10:00:00 devname=fw", None, None,
     "date=2024-01-15 time=10:00:00 devname=fw"),
    (b"CEF:0|Vendor|Product|1|100|name|5|src=1.2.3.4", None, None,
     "CEF:0|Vendor|Product|1|100|name|5|src=1.2.3.4"),
    (b"%ASA-6-302013: Built outbound", "%ASA-6-302013", None, "%ASA-6-302013: Built outbound"),
    (b"\xffbinary\x00", None, None, "\ufffdbinary\x00"),
])
def test_no_timestamp(rest, app, procid, msg):
    flags = (F.BAD_UTF8 if b"\xff" in rest else 0) | (F.NUL_BYTES if b"\0" in rest else 0)
    bsd(b"<13>" + rest, pri=13, app=app, procid=procid, msg=msg, flags=flags)


# ---- PRI problems with a BSD header -----------------------------------------------------

def test_bad_pri_with_timestamp_still_rfc3164():
    bsd(b"<192>Mar  9 10:00:00 host app: m", host="host", app="app", msg="m",
        ts="2024-03-09T10:00:00Z", flags=F.BAD_PRI | F.YEAR_INFERRED)
    bsd(b"<x>2024-03-09T10:00:00Z host app: m", host="host", app="app", msg="m",
        ts="2024-03-09T10:00:00Z", flags=F.BAD_PRI)
    bsd(b"<13 >Mar  9 10:00:00 host app: m", host="host", app="app", msg="m",
        ts="2024-03-09T10:00:00Z", flags=F.BAD_PRI | F.YEAR_INFERRED)


def test_no_pri_with_timestamp_is_rfc3164():
    bsd(b"Mar  9 10:00:00 host app: m", host="host", app="app", msg="m",
        ts="2024-03-09T10:00:00Z", flags=F.BAD_PRI | F.YEAR_INFERRED)
    bsd(b"2024-03-09T10:00:00+01:00 host app: m", host="host", app="app", msg="m",
        ts="2024-03-09T09:00:00Z", flags=F.BAD_PRI)


@pytest.mark.parametrize("payload", [
    b"<192>hello", b"<abc>hello", b"<13", b"<", b"<<13>>x", b"13>x", b"GET / HTTP/1.1",
])
def test_bad_pri_without_timestamp_is_raw(payload):
    bsd(payload, fmt="raw", msg=payload.decode(), flags=F.BAD_PRI)


# ---- Cisco forms (more in the vendor corpus) ---------------------------------------------

@pytest.mark.parametrize("payload, ts, host, flags", [
    (b"<189>123: *Mar  1 00:00:00.123: %SYS-5-CONFIG_I: x", "2024-03-01T00:00:00.123Z", None,
     F.YEAR_INFERRED),
    (b"<189>123: .Mar  1 00:00:00.123: %SYS-5-CONFIG_I: x", "2024-03-01T00:00:00.123Z", None,
     F.YEAR_INFERRED),
    (b"<189>000123: rtr1: Mar  1 00:00:00.123 UTC: %SYS-5-CONFIG_I: x",
     "2024-03-01T00:00:00.123Z", "rtr1", F.YEAR_INFERRED),
    (b"<189>123: Mar  1 00:00:00 CET: %SYS-5-CONFIG_I: x", "2024-02-29T23:00:00Z", None,
     F.YEAR_INFERRED),
    (b"<189>123: Mar  1 02:00:00 CEST: %SYS-5-CONFIG_I: x", "2024-03-01T00:00:00Z", None,
     F.YEAR_INFERRED),
    (b"<189>123: Mar  1 00:00:00 PST: %SYS-5-CONFIG_I: x", "2024-03-01T08:00:00Z", None,
     F.YEAR_INFERRED),
    (b"<189>123: %SYS-5-CONFIG_I: x", None, None, 0),                 # no service timestamps
    (b"<189>123: rtr1: %SYS-5-CONFIG_I: x", None, "rtr1", 0),
    (b"<189>: 2024 Mar  1 00:00:00 UTC: %SYS-5-CONFIG_I: x", "2024-03-01T00:00:00Z", None, 0),
])
def test_cisco(payload, ts, host, flags):
    # Cisco's message is "%FACILITY-SEVERITY-MNEMONIC: text": it starts at the '%'
    bsd(payload, pri=189, ts=ts, host=host, app="%SYS-5-CONFIG_I", msg="%SYS-5-CONFIG_I: x",
        flags=flags)


def test_cisco_sequence_number_only_before_timestamp_or_mnemonic():
    # "42: " is skipped as a sequence number only when a timestamp or a
    # %MNEMONIC follows; otherwise it is an ordinary TAG.
    bsd(b"<13>42: the answer", pri=13, app="42", msg="the answer")


def test_unknown_zone_is_not_consumed():
    # "XYZ:" is no zone: a host name before the %MNEMONIC
    bsd(b"<189>1: Mar  1 00:00:00 XYZ: %SYS-5-CONFIG_I: x", pri=189, ts="2024-03-01T00:00:00Z",
        host="XYZ", app="%SYS-5-CONFIG_I", msg="%SYS-5-CONFIG_I: x", flags=F.YEAR_INFERRED)


def test_ambiguous_zone_read_in_configured_zone():
    bsd(b"<189>1: Mar  1 00:00:00 IST: %SYS-5-CONFIG_I: x", pri=189,
        ts="2024-03-01T00:00:00+05:30", app="%SYS-5-CONFIG_I", msg="%SYS-5-CONFIG_I: x",
        flags=F.YEAR_INFERRED,
        tz_offset_s=5 * 3600 + 1800)


def test_zone_word_without_colon_or_year_is_a_host():
    bsd(b"<13>Mar  1 00:00:00 UTC app: m", pri=13, ts="2024-03-01T00:00:00Z", host="UTC",
        app="app", msg="m", flags=F.YEAR_INFERRED)


def test_raw_text_loses_its_trailing_line_break_only_in_message():
    bsd(b"GET / HTTP/1.1\r\n", fmt="raw", msg="GET / HTTP/1.1", flags=F.BAD_PRI | F.NEWLINE)
    bsd(b"\n", fmt="raw", msg="", flags=F.BAD_PRI | F.NEWLINE)
