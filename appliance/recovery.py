"""Rings left by a crashed appliance: drained into the sinks before new traffic.

A ring file outlives the processes that used it (hugetlbfs or /dev/shm),
and its batches stay there until every sink committed them. When the
appliance starts and finds rings of its own prefix, they belong to a run
that died (the instance lock in appliance/instance.py rules out a live
owner): each one with records not yet released is closed on behalf of its
dead producer and drained by an ordinary worker, under the run id the ring
was made with, so the sinks skip what they already hold and write the rest
exactly once. The records delivered this way are counted as `recovered`.
A ring that cannot be read (another layout version, truncated) is reported
and removed; so is an empty one.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import LogCasterError, ShimError
from appliance.ring import Ring
from appliance.worker import WorkerSpec, worker_main

log = logging.getLogger(__name__)

CLAIM_WAIT_S = 30.0             # an orphaned worker of the dead run may still be draining
DRAIN_TIMEOUT_S = 600.0


@dataclass
class Recovered:
    rings: int = 0              # rings of a crashed run that held records
    records: int = 0            # records of those rings delivered now
    duplicates: int = 0         # records the sinks already held (written before the crash)
    left: int = 0               # records still in a kept ring (a sink kept failing)
    stale_removed: int = 0      # unreadable rings removed


def _wait_claimable(path: Path) -> None:
    deadline = time.monotonic() + CLAIM_WAIT_S
    while True:
        try:
            Ring.attach(path).close()
            return
        except ShimError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise


def _drain(path: Path, queue_id: int, run_id: int, sinks, mp) -> dict:
    """Run a worker on the ring until it is drained; its final report."""
    spec = WorkerSpec(queue_id=queue_id, ring_path=str(path), sinks=sinks, cpu=None, run_id=run_id)
    parent, child = mp.Pipe(duplex=False)
    proc = mp.Process(target=worker_main, args=(spec, child), name=f"logcaster-recovery-q{queue_id}")
    proc.start()
    child.close()
    report: dict = {}
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    try:
        while True:
            try:
                while parent.poll(0.1):
                    report = parent.recv()
            except EOFError:        # the worker closed its end: it is exiting
                proc.join(max(0.0, deadline - time.monotonic()))
                break
            if not proc.is_alive():
                break
            if time.monotonic() > deadline:
                raise LogCasterError(f"recovering {path}: not drained after {DRAIN_TIMEOUT_S:.0f} s")
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(10)
    if proc.exitcode != 0:
        raise LogCasterError(f"recovering {path}: the worker failed (exit code {proc.exitcode}); the ring is kept")
    return report


def recover_rings(dirs: list[str], prefix: str, sinks, mp, echo=print) -> Recovered:
    rec = Recovered()
    for d in dirs:
        for path in sorted(Path(d).glob(prefix + "*")):
            st = path.lstat()
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                echo(f"ignoring {path}: not a ring file of this user (left alone)")
                continue
            try:
                ring = Ring.attach(path, consumer=False)
            except ShimError as exc:
                if exc.errno == errno.ENOENT:
                    continue
                echo(f"removing stale ring {path}: {exc} (cannot be recovered)")
                Ring.unlink(path)
                rec.stale_removed += 1
                continue
            with ring:
                s = ring.stats()
                left = s["records_published"] - s["records_released"]
                queue_id, run_id = ring.queue_id, ring.run_id
                if left:
                    ring.set_closed()       # its producer is gone: the worker drains, then stops
            if not left:
                Ring.unlink(path)
                continue
            echo(f"recovering {left:,} records from {path}, left by run {run_id}")
            _wait_claimable(path)
            report = _drain(path, queue_id, run_id, sinks, mp)
            with Ring.attach(path, consumer=False) as ring:
                after = ring.stats()
            still = after["records_published"] - after["records_released"]
            delivered = left - still
            rec.rings += 1
            rec.records += delivered
            rec.duplicates += report.get("duplicates_suppressed", 0)
            if still:
                rec.left += still
                echo(f"ring {path} still holds {still:,} records its sinks did not take; kept for the next start")
                continue
            Ring.unlink(path)
            echo(f"recovered {delivered:,} records from {path.name} "
                 f"({report.get('duplicates_suppressed', 0):,} already in the sinks)")
    return rec
