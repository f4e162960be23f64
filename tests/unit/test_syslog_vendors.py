"""Real-world device lines (tests/data/syslog/): one file per vendor.

`<vendor>.txt` holds one UDP payload per line (UTF-8; LEEF lines carry
literal tabs). `<vendor>.json` is its sidecar: the receive time and decoder
zone the file is decoded with, and per line the expected record (every
syslog column; `timestamp` as RFC 3339 UTC text, `flags` as flag names;
`note` says what the line exercises).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.batch import FLAGS
from helpers import decode_payloads
from test_syslog_5424 import ns

DATA = Path(__file__).resolve().parents[1] / "data" / "syslog"
VENDORS = ["cef", "cisco_asa", "cisco_ios", "esxi", "fortigate", "juniper", "leef", "paloalto",
           "pfsense_filterlog", "systemd_journal"]
FIELDS = ["format", "facility", "severity", "timestamp", "hostname", "app_name", "procid", "msgid",
          "structured_data", "message", "flags"]


def load(vendor: str) -> tuple[list[bytes], dict]:
    text = (DATA / f"{vendor}.txt").read_text(encoding="utf-8")
    assert text.endswith("\n")
    lines = [line.encode() for line in text[:-1].split("\n")]
    spec = json.loads((DATA / f"{vendor}.json").read_text(encoding="utf-8"))
    assert len(lines) == len(spec["records"]), "one expected record per line"
    return lines, spec


def test_every_corpus_file_is_tested():
    assert sorted(p.stem for p in DATA.glob("*.txt")) == VENDORS
    assert sorted(p.stem for p in DATA.glob("*.json")) == VENDORS


@pytest.mark.parametrize("vendor", VENDORS)
def test_vendor_corpus(vendor):
    lines, spec = load(vendor)
    rx_ns, tz = ns(spec["rx_time"]), spec["tz_offset_s"]
    for i, (line, want) in enumerate(zip(lines, spec["records"])):
        # one payload per decode: the test helper sizes its batch for average
        # field lengths, and vendor lines have long app names
        row = decode_payloads([line], rx_ns=rx_ns, tz_offset_s=tz)[0]
        got = {k: row[k] for k in FIELDS}
        got["flags"] = sorted(name for name, bit in FLAGS.items() if row["flags"] & bit)
        exp = {k: want[k] for k in FIELDS}
        exp["timestamp"] = None if want["timestamp"] is None else ns(want["timestamp"])
        exp["flags"] = sorted(want["flags"])
        assert got == exp, f"{vendor}.txt line {i + 1}: {want.get('note', '')}"
        assert row["raw"] == line


@pytest.mark.parametrize("vendor", VENDORS)
def test_vendor_sidecar_is_complete(vendor):
    _, spec = load(vendor)
    assert set(spec) == {"description", "rx_time", "tz_offset_s", "records"}
    for rec in spec["records"]:
        assert set(rec) - {"note"} == set(FIELDS)
        assert set(rec["flags"]) <= set(FLAGS)
