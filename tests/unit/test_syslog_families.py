"""The header families of issue 10, one rule each (docs/SYSLOG.md), with
the cases on either side of the rule. Columns not named are checked too:
`expect` asserts every syslog column."""

from __future__ import annotations

import pytest

from test_syslog_5424 import BOM, F, expect, ns

RX = ns("2024-03-10T12:00:00Z")
AMB = F.AMBIGUOUS


def bsd(payload: bytes, **kw):
    kw.setdefault("fmt", "rfc3164")
    kw.setdefault("rx_ns", RX)
    return expect(payload, **kw)


# ---- BSD: spaces after PRI ------------------------------------------------------------

@pytest.mark.parametrize("pad", [b" ", b"  ", b"   "])
def test_spaces_after_pri_are_skipped(pad):
    bsd(b"<13>" + pad + b"Mar  9 10:00:00 host app: m", pri=13, ts="2024-03-09T10:00:00Z",
        host="host", app="app", msg="m", flags=F.YEAR_INFERRED)


def test_tab_after_pri_is_text():
    bsd(b"<13>\tMar  9 10:00:00 host app: m", pri=13, msg="\tMar  9 10:00:00 host app: m")


# ---- BSD: month names ----------------------------------------------------------------------

@pytest.mark.parametrize("month", [b"MAR", b"mar", b"March", b"MARCH", b"march", b"mArCh"])
def test_month_names_any_case_three_letters_or_full(month):
    bsd(b"<13>" + month + b"  9 10:00:00 host app: m", pri=13, ts="2024-03-09T10:00:00Z",
        host="host", app="app", msg="m", flags=F.YEAR_INFERRED)


@pytest.mark.parametrize("month", [b"Marc", b"Marchy", b"Mars", b"Maj"])
def test_not_a_month_name_is_text(month):
    text = month + b"  9 10:00:00 host app: m"
    bsd(b"<13>" + text, pri=13, msg=text.decode())


# ---- BSD: the year ------------------------------------------------------------------------

@pytest.mark.parametrize("stamp, flags", [
    (b"Mar  9 2021 10:00:00", 0),                    # after the day (ASA)
    (b"Mar  9 2021 10:00:00:", 0),                   # ... with a colon after the time
    (b"Mar  9 10:00:00 2021", AMB),                  # after the time (rsyslog: the host)
    (b"Mar  9 10:00:00 2021:", AMB),
])
def test_year_after_day_or_time(stamp, flags):
    bsd(b"<13>" + stamp + b" host app: m", pri=13, ts="2021-03-09T10:00:00Z", host="host",
        app="app", msg="m", flags=flags)


@pytest.mark.parametrize("word", [b"1979", b"2100", b"20211", b"2021x"])
def test_not_a_plausible_year_after_the_time_is_the_host(word):
    bsd(b"<13>Mar  9 10:00:00 " + word + b" app: m", pri=13, ts="2024-03-09T10:00:00Z",
        host=word.decode(), app="app", msg="m", flags=F.YEAR_INFERRED)


# ---- BSD: no timestamp -------------------------------------------------------------------

@pytest.mark.parametrize("rest, app, procid, msg", [
    (b"sshd[42]: hello", "sshd", "42", "hello"),
    (b"sshd[42]:hello", "sshd", "42", "hello"),
    (b"kernel: hello", "kernel", None, "hello"),
    (b"hello world", None, None, "hello world"),     # no TAG: all text
])
def test_no_timestamp_program_after_pri(rest, app, procid, msg):
    bsd(b"<13>" + rest, pri=13, app=app, procid=procid, msg=msg)


# ---- BSD: host names ------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["2001:db8::1", "1::", "0002::", "::ffff:192.0.2.1", "fe80::1%eth0",
                                  "host/slot1", "user@host", "host.example.com", "192.0.2.1"])
def test_host_names_as_devices_send_them(host):
    bsd(b"<13>Mar  9 10:00:00 " + host.encode() + b" app: m", pri=13, ts="2024-03-09T10:00:00Z",
        host=host, app="app", msg="m", flags=F.YEAR_INFERRED)


@pytest.mark.parametrize("rest, host, app, procid, msg, flags", [
    (b"host: app: m", "host", "app", None, "m", 0),              # a TAG follows: host
    (b"host: app[1]: m", "host", "app", "1", "m", 0),
    (b"host: %SYS-5-CONFIG_I: m", "host", "%SYS-5-CONFIG_I", None, "%SYS-5-CONFIG_I: m", 0),
    (b"word: some text", None, "word", None, "some text", AMB),  # TAG or host? TAG, flagged
])
def test_hostname_followed_by_colon(rest, host, app, procid, msg, flags):
    bsd(b"<13>Mar  9 10:00:00 " + rest, pri=13, ts="2024-03-09T10:00:00Z", host=host, app=app,
        procid=procid, msg=msg, flags=F.YEAR_INFERRED | flags)


# ---- BSD: TAG forms --------------------------------------------------------------------------

@pytest.mark.parametrize("rest, app, procid, msg, flags", [
    (b"app:m", "app", None, "m", 0),                             # ':' with no space
    (b"app[7]:m", "app", "7", "m", 0),                           # '[pid]:' with no space
    (b"app[7]: m", "app", "7", "m", 0),
    (b"app:msgnum:3", "app", None, "msgnum:3", 0),
    (b"a" * 48 + b": m", "a" * 48, None, "m", 0),                # longer than RFC 3164's 32
    (b"CEF:0|V|P|1|2|n|3|k=v", None, None, "CEF:0|V|P|1|2|n|3|k=v", 0),   # ':' then digit
    (b"LEEF:2.0|V|P|1|e|", None, None, "LEEF:2.0|V|P|1|e|", 0),
    (b"http://example.com/", None, None, "http://example.com/", 0),       # ':' then '/'
    (b"app text", None, None, "app text", AMB),                  # no ':': TAG? kept, flagged
    (b"a" * 49 + b": m", None, None, "a" * 49 + ": m", 0),       # past the app_name limit
])
def test_tag_forms(rest, app, procid, msg, flags):
    bsd(b"<13>Mar  9 10:00:00 host " + rest, pri=13, ts="2024-03-09T10:00:00Z", host="host",
        app=app, procid=procid, msg=msg, flags=F.YEAR_INFERRED | flags)


# ---- BSD: relayed ----------------------------------------------------------------------------

@pytest.mark.parametrize("payload, ts, flags", [
    (b"<13>Mar  9 10:00:00 Message forwarded from aixhost: sshd[9]: m", "2024-03-09T10:00:00Z",
     F.YEAR_INFERRED),
    (b"<13>Message forwarded from aixhost: sshd[9]: m", None, 0),
])
def test_aix_message_forwarded_from(payload, ts, flags):
    bsd(payload, pri=13, ts=ts, host="aixhost", app="sshd", procid="9", msg="m", flags=flags)


def test_forwarded_needs_its_colon():
    bsd(b"<13>Message forwarded from aixhost sshd", pri=13,
        msg="Message forwarded from aixhost sshd")


# ---- Cisco ----------------------------------------------------------------------------------

@pytest.mark.parametrize("payload, ts, host", [
    (b"<189>3408: CLC 6/0: Dec 11 13:31:14.214 EST: %PKI-3-CERT: text", "2023-12-11T18:31:14.214Z",
     None),                                                      # module prefix skipped
    (b"<189>91: *Oct 07 03:10:04: rtr.example.com %PKI-3-CERT: text", "2023-10-07T03:10:04Z",
     "rtr.example.com"),                                         # host after a ':' timestamp
    (b"<189>12: rtr1: May 21 12:00:01.123 gmt: %PKI-3-CERT: text", "2023-05-21T12:00:01.123Z",
     "rtr1"),                                                    # lower-case zone before ':'
    (b"<189>Mar  9 10:00:00 fw : %PKI-3-CERT: text", "2024-03-09T10:00:00Z", "fw"),   # ASA
])
def test_cisco_message_starts_at_the_mnemonic(payload, ts, host):
    bsd(payload, pri=189, ts=ts, host=host, app="%PKI-3-CERT", msg="%PKI-3-CERT: text",
        flags=F.YEAR_INFERRED)


def test_percent_word_that_is_no_mnemonic_is_an_ordinary_tag():
    bsd(b"<13>Mar  9 10:00:00 host %done: m", pri=13, ts="2024-03-09T10:00:00Z", host="host",
        app="%done", msg="m", flags=F.YEAR_INFERRED)


# ---- padding and line breaks ------------------------------------------------------------

@pytest.mark.parametrize("pad", [b" ", b"\n", b"\r\n", b"\t  \n   "])
def test_padding_before_pri_is_skipped(pad):
    bsd(pad + b"<13>Mar  9 10:00:00 host app: m", pri=13, ts="2024-03-09T10:00:00Z", host="host",
        app="app", msg="m", flags=F.YEAR_INFERRED)


def test_padding_without_pri_stays_text():
    bsd(b"  hello", fmt="raw", msg="  hello", flags=F.BAD_PRI)


@pytest.mark.parametrize("end, msg", [
    (b"\n", "m"), (b"\r", "m"), (b"\r\n", "m"), (b"\n\n", "m"), (b"\n   ", "m"),
    (b"  \n", "m  "),                                # white space before the break is kept
])
def test_trailing_line_breaks_leave_message_not_raw(end, msg):
    row = bsd(b"<13>Mar  9 10:00:00 host app: m" + end, pri=13, ts="2024-03-09T10:00:00Z",
              host="host", app="app", msg=msg, flags=F.YEAR_INFERRED | F.NEWLINE)
    assert row["raw"].endswith(end)


def test_trailing_spaces_without_a_break_are_kept():
    bsd(b"<13>Mar  9 10:00:00 host app: m  ", pri=13, ts="2024-03-09T10:00:00Z", host="host",
        app="app", msg="m  ", flags=F.YEAR_INFERRED)


def test_rfc5424_trailing_newline_and_bom():
    expect(b"<14>1 - h a - - - " + BOM + b"m\r\n", fmt="rfc5424", pri=14, host="h", app="a",
           msg="m", flags=F.NEWLINE)


# ---- edges of the rules above ------------------------------------------------------------

@pytest.mark.parametrize("text", [b'{"a":"b"}', b"C:\\Windows\\x", b"key=v:w"])
def test_colon_glued_text_that_is_no_word_stays_text(text):
    bsd(b"<14>" + text, pri=14, msg=text.decode())


def test_host_colon_before_json_is_a_tag_not_a_host():
    bsd(b'<13>Mar  9 10:00:00 host: {"a":"b"}', pri=13, ts="2024-03-09T10:00:00Z", app="host",
        msg='{"a":"b"}', flags=F.YEAR_INFERRED | AMB)


@pytest.mark.parametrize("word", [b"X4711", b"X4711 ", b"::1"])
def test_lone_word_after_the_timestamp_stays_in_message(word):
    bsd(b"<13>Mar  9 10:00:00 " + word, pri=13, ts="2024-03-09T10:00:00Z", msg=word.decode(),
        flags=F.YEAR_INFERRED | AMB)


@pytest.mark.parametrize("word", [b"est", b"cst", b"ut"])
def test_lower_case_zone_words_before_colon_are_not_zones(word):
    bsd(b"<13>Mar  9 10:00:00 " + word + b": m", pri=13, ts="2024-03-09T10:00:00Z",
        app=word.decode(), msg="m", flags=F.YEAR_INFERRED | AMB)


def test_timestamp_behind_padding_without_pri_is_not_read():
    bsd(b"  Mar  9 10:00:00 h a: m", fmt="raw", msg="  Mar  9 10:00:00 h a: m", flags=F.BAD_PRI)


def test_percent_word_that_is_no_mnemonic_does_not_make_a_host():
    bsd(b"<13>Mar  9 10:00:00 word: %done", pri=13, ts="2024-03-09T10:00:00Z", app="word",
        msg="%done", flags=F.YEAR_INFERRED | AMB)
