"""The machine's CPU load, for benchmarks on a shared machine (bench/pipeline.py, bench/e2e.py)."""

from __future__ import annotations

import os
import time

QUIET_BUSY_CPUS = 0.25           # the machine counts as quiet below this many busy CPUs


def cpu_jiffies() -> tuple[int, int, int]:
    """(busy, total, irq + softirq) jiffies of all CPUs, /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    total = sum(v[:8])
    return total - idle, total, v[5] + v[6]


def busy_cpus(seconds: float) -> float:
    """How many CPUs were busy, on average, over the next `seconds`."""
    b0, t0, _ = cpu_jiffies()
    time.sleep(seconds)
    b1, t1, _ = cpu_jiffies()
    return (b1 - b0) / (t1 - t0) * os.cpu_count() if t1 > t0 else 0.0


def wait_quiet(max_wait: float) -> float:
    """Wait (at most max_wait) for the machine to be quiet: others share these
    CPUs. Returns the busy CPUs measured last (recorded with each result)."""
    deadline = time.monotonic() + max_wait
    while True:
        busy = busy_cpus(1.0)
        if busy < QUIET_BUSY_CPUS or time.monotonic() > deadline:
            return busy
