"""Inputs that once broke the decoder (tests/data/fuzz/, found by
scripts/fuzz.sh) decoded through the Python path, and a short fuzzing run.

Every file is decoded as a frame of each link type and as the UDP payload
of an Ethernet/IPv4/UDP frame: no crash, the batch is valid Arrow (strings
valid UTF-8), and `raw` is the payload untouched.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.batch import Batch
from appliance.decoder import Decoder
from dpdk_shim import lib
from helpers import udp_frame

ROOT = Path(__file__).resolve().parents[2]
FUZZ_DATA = ROOT / "tests" / "data" / "fuzz"
INPUTS = sorted(p for p in FUZZ_DATA.iterdir() if p.is_file()) if FUZZ_DATA.is_dir() else []
LINKS = (lib.LC_LINK_ETHERNET, lib.LC_LINK_RAW, lib.LC_LINK_LINUX_SLL, lib.LC_LINK_LINUX_SLL2)
MAX_UDP_PAYLOAD = 65507


def decode(frame: bytes, link: int):
    decoder = Decoder(tz_offset_s=3600)
    batch = Batch(capacity=1, avg_payload=64)
    n = decoder.decode_frames([frame], batch, link=link, rx_ns=1_700_000_000_000_000_000)
    rb = batch.to_arrow()
    rb.validate(full=True)                  # offsets in bounds, strings valid UTF-8
    c = decoder.counters()
    assert c["frames"] == 1 and c["records"] == n == rb.num_rows
    assert n + c["not_ip"] + c["not_udp"] + c["malformed"] + c["port_filtered"] == 1
    return rb


def test_regression_inputs_present():
    assert INPUTS, f"{FUZZ_DATA} holds the fuzzers' finds and hand-made nasty inputs"


@pytest.mark.parametrize("path", INPUTS, ids=[p.name for p in INPUTS])
def test_regression_input(path):
    data = path.read_bytes()
    for link in LINKS:
        rb = decode(data, link)
        for raw in rb.column("raw").to_pylist():
            assert raw in data
    payload = data[:MAX_UDP_PAYLOAD]
    rb = decode(udp_frame(payload), lib.LC_LINK_ETHERNET)
    assert rb.num_rows == 1
    assert rb.column("raw")[0].as_py() == payload
    assert rb.column("format")[0].as_py() in ("rfc5424", "rfc3164", "raw")


@pytest.mark.slow
def test_fuzz_for_20_seconds(tmp_path):
    env = dict(os.environ, FUZZ_OUT=str(tmp_path / "fuzz-out"), PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "fuzz.sh"), "20"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "no crash in 20s" in proc.stdout
