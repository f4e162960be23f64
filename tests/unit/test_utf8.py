"""The decoder's one UTF-8 rule (dpdk_shim/src/utf8.h) is Python's
bytes.decode("utf-8", "replace"), for any bytes, in both places text is
copied: the syslog layer's MSG and the network layer's raw records of IP
fragments. The flags say what was found."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from appliance.batch import FLAGS
from helpers import decode_frames, decode_payloads

ANY = settings(max_examples=400, deadline=None)
# bytes that make up sequences, broken ones included
UTF8ISH = st.lists(st.sampled_from([b"a", b" ", b"\n", b"\r", b"\x00", b"\x7f", b"\x80", b"\xbf", b"\xc0", b"\xc2", b"\xdf", b"\xe0",
                                    b"\xa0", b"\xed", b"\x9f", b"\xef", b"\xf0", b"\x90", b"\xf4", b"\x8f", b"\xf5",
                                    b"\xff", "é".encode(), "€".encode(), "😀".encode()]), max_size=40).map(b"".join)


def _valid(body: bytes) -> bool:
    try:
        body.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _expect_flags(body: bytes, flags: int) -> None:
    assert bool(flags & FLAGS["bad_utf8"]) == (not _valid(body))
    assert bool(flags & FLAGS["nul_bytes"]) == (b"\x00" in body)


@ANY
@given(body=st.one_of(UTF8ISH, st.binary(max_size=64)))
def test_message_is_pythons_decode(body):
    [row] = decode_payloads([b"<14>1 2026-12-03T10:00:00Z h a - - - " + body])
    body = _message_bytes(body)
    assert row["message"] == body.decode("utf-8", "replace")
    _expect_flags(body, row["flags"])


def _message_bytes(body: bytes) -> bytes:
    """MSG of the decoder's rules (docs/SYSLOG.md): a leading BOM dropped;
    spaces/tabs after a final line break, and the line breaks, too."""
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    stripped = body.rstrip(b" \t")
    if stripped.endswith((b"\r", b"\n")):
        body = stripped.rstrip(b"\r\n")
    return body


@ANY
@given(body=st.one_of(UTF8ISH, st.binary(max_size=64)))
def test_raw_record_of_a_fragment_is_pythons_decode(body):
    """A non-first IPv4 fragment: its IP payload is the raw record's message."""
    frame = bytes(Ether() / IP(src="198.18.0.2", dst="198.18.0.1", proto=17, frag=10, flags=0) / body)
    rows, _ = decode_frames([frame])
    assert rows[0]["format"] == "raw"
    assert rows[0]["message"] == body.decode("utf-8", "replace")
