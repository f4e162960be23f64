"""Relay sink benchmark: the sink's msgs/s on one worker against the ceiling
of the same transport in the same run, over the same batches.

  udp   RelaySink over UDP  vs  sendmmsg of the same payloads (lc_relay_udp
        over each batch, nothing else)
  tcp   RelaySink over TCP (octet counting)  vs  one sendall per batch of
        the same frames, framed beforehand

The receivers are on loopback: a UDP socket nobody reads (the kernel drops
what does not fit; the sender does not wait) and a process that reads and
discards the TCP stream. Prints a table and one JSON line per transport.
Not a test: figures go to docs/BENCHMARKS.md with this command.

    python bench/relay.py [--messages 500000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import array
import json
import multiprocessing
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.batch import Batch  # noqa: E402
from appliance.config import SinkConfig  # noqa: E402
from appliance.decoder import Decoder  # noqa: E402
from appliance.sample import frames  # noqa: E402
from appliance.sinks.relay import RelaySink  # noqa: E402
from dpdk_shim import ffi, lib  # noqa: E402

CAPACITY = 1024


class _Taken:
    def __init__(self, index: int, batch: Batch):
        self.first, self.end, self.hdrs, self.records = index, index + 1, [batch.hdr], batch.hdr.count


def build_batches(messages: int) -> list[Batch]:
    """The sample's frames decoded into full batches (the last one partial)."""
    pool = [f for _, f in frames(20_000)]
    batches, decoder = [], Decoder()
    for start in range(0, messages, CAPACITY):
        picked = [pool[i % len(pool)] for i in range(start, min(messages, start + CAPACITY))]
        batch = Batch(capacity=CAPACITY)
        buf, lens = b"".join(picked), array.array("I", map(len, picked))
        n = lib.lc_decode_buffer(decoder.c, batch.hdr, lib.LC_LINK_ETHERNET, ffi.from_buffer(buf),
                                 ffi.from_buffer("uint32_t[]", lens), len(picked), 0, ffi.NULL)
        if n != len(picked) or batch.hdr.count != n:
            raise SystemExit(f"batch of {len(picked)} frames holds {batch.hdr.count} records")
        batches.append(batch)
    return batches


def _discard(listener: socket.socket) -> None:
    conn, _ = listener.accept()
    while conn.recv(1 << 20):
        pass


def tcp_receiver() -> tuple[socket.socket, multiprocessing.Process]:
    listener = socket.create_server(("127.0.0.1", 0))
    proc = multiprocessing.Process(target=_discard, args=(listener,), daemon=True)
    proc.start()
    return listener, proc


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_udp(batches: list[Batch], repeat: int) -> dict:
    sink_rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink_rx.bind(("127.0.0.1", 0))
    port = sink_rx.getsockname()[1]
    messages = sum(b.hdr.count for b in batches)
    cfg = SinkConfig(type="relay", targets=(("udp", "127.0.0.1", port),))

    def through_sink():
        sink = RelaySink(cfg, 0)
        for i, b in enumerate(batches):
            sink.write(_Taken(i, b))
        sink.close()

    ceiling_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ceiling_sock.connect(("127.0.0.1", port))

    def ceiling():
        fd = ceiling_sock.fileno()
        for b in batches:
            row = 0
            while row < b.hdr.count:
                n = lib.lc_relay_udp(fd, b.hdr, row, b.hdr.count - row)
                row += max(n, 0)

    best_sink = min(timed(through_sink) for _ in range(repeat))
    best_ceiling = min(timed(ceiling) for _ in range(repeat))
    sink_rx.close()
    ceiling_sock.close()
    return result("udp", messages, best_sink, best_ceiling)


def bench_tcp(batches: list[Batch], repeat: int) -> dict:
    messages = sum(b.hdr.count for b in batches)
    framed, buf, used = [], ffi.new("char[]", 64 << 20), ffi.new("uint64_t *")
    for b in batches:
        n = lib.lc_relay_frame(b.hdr, 0, b.hdr.count, lib.LC_RELAY_OCTETS, buf, 64 << 20, used)
        assert n == b.hdr.count
        framed.append(bytes(ffi.buffer(buf, used[0])))
    best_sink = best_ceiling = float("inf")
    for _ in range(repeat):
        listener, proc = tcp_receiver()
        cfg = SinkConfig(type="relay", targets=(("tcp", "127.0.0.1", listener.getsockname()[1]),), settle_s=0.0)
        sink = RelaySink(cfg, 0)

        def through_sink():
            for i, b in enumerate(batches):
                sink.write(_Taken(i, b))

        best_sink = min(best_sink, timed(through_sink))
        sink.close()
        proc.join(10)
        listener.close()

        listener, proc = tcp_receiver()
        sock = socket.create_connection(listener.getsockname())

        def ceiling():
            for data in framed:
                sock.sendall(data)

        best_ceiling = min(best_ceiling, timed(ceiling))
        sock.close()
        proc.join(10)
        listener.close()
    return result("tcp", messages, best_sink, best_ceiling)


def result(transport: str, messages: int, sink_s: float, ceiling_s: float) -> dict:
    return {
        "benchmark": "relay",
        "transport": transport,
        "messages": messages,
        "sink_msgs_per_s": round(messages / sink_s),
        "ceiling_msgs_per_s": round(messages / ceiling_s),
        "ratio_vs_ceiling": round(ceiling_s / sink_s, 2),
        "cpu": os.sched_getaffinity(0).pop() if len(os.sched_getaffinity(0)) == 1 else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    batches = build_batches(args.messages)
    results = [bench_udp(batches, args.repeat), bench_tcp(batches, args.repeat)]
    print(f"{'transport':<10}{'messages':>10}{'sink msgs/s':>14}{'ceiling msgs/s':>16}{'ratio':>8}")
    for r in results:
        print(f"{r['transport']:<10}{r['messages']:>10}{r['sink_msgs_per_s']:>14,}{r['ceiling_msgs_per_s']:>16,}"
              f"{r['ratio_vs_ceiling']:>8}")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
