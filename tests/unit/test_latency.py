"""The rx -> sink hand-off latency histogram (dpdk_shim/src/latency.c): every
latency lands in the bucket whose bounds hold it, from nanoseconds to hours,
and percentiles (appliance/worker.py) come from those bounds."""

from __future__ import annotations

import pytest

from appliance.batch import Batch
from appliance.decoder import Decoder
from appliance.worker import percentiles
from dpdk_shim import ffi, lib
from helpers import udp_frame

RX_NS = 1_700_000_000 * 10**9


def histogram(latency_ns: int) -> dict[int, int]:
    batch = Batch(capacity=4)
    Decoder().decode_frames([udp_frame(b"<14>x")], batch, rx_ns=RX_NS)
    hist = ffi.new("uint64_t[]", lib.LC_LAT_BUCKETS)
    assert lib.lc_latency_add(batch.hdr, RX_NS + latency_ns, hist) == 1
    return {i: hist[i] for i in range(lib.LC_LAT_BUCKETS) if hist[i]}


def test_bucket_floors_grow_without_overflow():
    floors = [lib.lc_latency_bucket_floor(i) for i in range(8, lib.LC_LAT_BUCKETS)]
    assert all(a < b for a, b in zip(floors, floors[1:]) if b < 2**63 - 1), "strictly growing"
    assert lib.lc_latency_bucket_floor(8) == 8 and lib.lc_latency_bucket_floor(0) == 0


@pytest.mark.parametrize("ns", [0, 7, 8, 15, 100, 999, 12_345, 10**6, 99_999_999, 2**31, 3 * 10**9, 10**12,
                                3600 * 10**9])
def test_each_latency_lands_in_the_bucket_that_holds_it(ns):
    [(bucket, count)] = histogram(ns).items()
    assert count == 1
    assert lib.lc_latency_bucket_floor(bucket) <= ns < lib.lc_latency_bucket_floor(bucket + 1)


def test_percentiles_above_two_seconds_are_right():
    """Bucket bounds were computed in 32 bits: from ~2 s on they wrapped to 0."""
    p = percentiles(histogram(3 * 10**9))
    assert 3e6 <= p["p50"] <= 3e6 * 1.125 and p["p99"] == p["p50"]
