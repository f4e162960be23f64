"""Decode + batch build benchmark: one million mixed, realistic messages held
in memory, decoded on one core by the C decoder into columnar batches.

In the same run, over the same frames, it measures the copy floor (find each
UDP payload and copy it into the batch's raw column, nothing else:
lc_copy_floor_buffer) and reports decode against it; and decode with the
senders table on (appliance/live.py), as its extra cost against plain
decode: gap detection alone (senders.traffic false: only records with a
sequence number touch the table) and with every record counted per sender
(the default: what `top` shows). Prints a table and one JSON line
(msgs_per_s, ns_per_msg, copy_floor_ns_per_msg, ratio_vs_copy_floor,
gap_detection_overhead, senders_overhead). Not a test: `make bench` runs it; figures go to
docs/BENCHMARKS.md with this command.

    python bench/decode.py [--messages 1000000] [--distinct 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import array
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.batch import Batch  # noqa: E402
from appliance.config import SendersConfig  # noqa: E402
from appliance.decoder import Decoder  # noqa: E402
from appliance.live import LiveQueue  # noqa: E402
from appliance.sample import frames  # noqa: E402
from dpdk_shim import ffi, lib  # noqa: E402


def build_input(messages: int, distinct: int) -> tuple[bytes, array.array, int]:
    """`distinct` sample frames, repeated to `messages`, back to back in one buffer."""
    pool = [f for _, f in frames(distinct)]
    picked = [pool[i % distinct] for i in range(messages)]
    lens = array.array("I", (len(f) for f in picked))
    payload_bytes = sum(len(f) for f in pool) * messages // distinct
    return b"".join(picked), lens, payload_bytes


def run(messages: int, distinct: int, repeat: int, capacity: int) -> dict:
    buf, lens, frame_bytes = build_input(messages, distinct)
    cbuf = ffi.from_buffer(buf)
    clens = ffi.from_buffer("uint32_t[]", lens)
    batch = Batch(capacity=capacity)
    nbatches = ffi.new("uint64_t *")
    best = floor = with_senders = gaps_only = float("inf")
    records = 0
    for _ in range(repeat):              # interleaved: all see the same machine state
        t0 = time.perf_counter_ns()
        copied = lib.lc_copy_floor_buffer(batch.hdr, cbuf, clens, messages, time.time_ns(), nbatches)
        floor = min(floor, time.perf_counter_ns() - t0)
        if copied != messages:
            raise SystemExit(f"copy floor found {copied} UDP payloads in {messages} frames")
        batch.reset()
        decoder = Decoder()
        t0 = time.perf_counter_ns()
        records = lib.lc_decode_buffer(decoder.c, batch.hdr, lib.LC_LINK_ETHERNET, cbuf, clens,
                                       messages, time.time_ns(), nbatches)
        elapsed = time.perf_counter_ns() - t0
        if records != messages:
            raise SystemExit(f"decoded {records} records of {messages} frames: {decoder.counters()}")
        best = min(best, elapsed)
        batch.reset()
        for traffic in (False, True):
            live = LiveQueue.create(None, queue=0, label="bench", ring_path="",
                                    senders=SendersConfig(traffic=traffic), budget=None)
            tracked = Decoder(c=live.decoder, senders=live.senders)
            t0 = time.perf_counter_ns()
            got = lib.lc_decode_buffer(tracked.c, batch.hdr, lib.LC_LINK_ETHERNET, cbuf, clens, messages,
                                       time.time_ns(), nbatches)
            took = time.perf_counter_ns() - t0
            if got != messages:
                raise SystemExit(f"decoded {got} records of {messages} frames with the senders table")
            if traffic:
                with_senders = min(with_senders, took)
            else:
                gaps_only = min(gaps_only, took)
            sequenced = tracked.counters()["sequence"]
            batch.reset()
    counters = decoder.counters()
    return {
        "benchmark": "decode",
        "messages": messages,
        "distinct_messages": distinct,
        "batch_capacity": capacity,
        "batches": nbatches[0],
        "mean_frame_bytes": round(frame_bytes / messages, 1),
        "repeat": repeat,
        "best_seconds": best / 1e9,
        "msgs_per_s": round(messages / (best / 1e9)),
        "ns_per_msg": round(best / messages, 1),
        "copy_floor_ns_per_msg": round(floor / messages, 1),
        "ratio_vs_copy_floor": round(best / floor, 2),
        "gap_detection_ns_per_msg": round(gaps_only / messages, 1),
        "gap_detection_overhead": round(gaps_only / best - 1, 3),
        "senders_ns_per_msg": round(with_senders / messages, 1),
        "senders_overhead": round(with_senders / best - 1, 3),
        "sequenced_records": sequenced["records"],
        "formats": counters["formats"],
        "cpu": os.sched_getaffinity(0).pop() if len(os.sched_getaffinity(0)) == 1 else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--distinct", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--capacity", type=int, default=1024, help="records per batch")
    ap.add_argument("--cpu", type=int, default=1, help="pin to this CPU (one core)")
    args = ap.parse_args()
    if args.cpu in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {args.cpu})
    result = run(args.messages, args.distinct, args.repeat, args.capacity)
    print(f"{'benchmark':<12}{'messages':>12}{'msgs/s':>14}{'ns/msg':>10}{'floor ns':>10}{'x floor':>9}"
          f"{'frame B':>10}{'+gaps':>8}{'+senders':>10}")
    print(f"{'decode':<12}{result['messages']:>12}{result['msgs_per_s']:>14,}{result['ns_per_msg']:>10}"
          f"{result['copy_floor_ns_per_msg']:>10}{result['ratio_vs_copy_floor']:>9}"
          f"{result['mean_frame_bytes']:>10}{result['gap_detection_overhead']:>8.1%}{result['senders_overhead']:>10.1%}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
