"""The worker and the sinks across a crash, in one process (no root):
a first worker writes part of the ring into complete files and leaves an
incomplete one (and unreleased batches) behind; the next one drops the
incomplete file, skips what complete files hold, writes the rest, and its
counters say so: every record exactly once in Parquet, at least once in
JSON lines, `delivered`, `duplicates_suppressed`, `sink_failed` exact."""

from __future__ import annotations

import json
import re

import pyarrow.dataset as ds
import pytest

from appliance.config import SinkConfig
from appliance.decoder import Decoder
from appliance.ring import Ring, batch_max
from appliance.sinks import make_sink
from appliance.worker import Worker, WorkerSpec
from helpers import udp_frame

CAP, AVG = 16, 64
BATCHES = 12
ID = re.compile(r"id=(\d+)")


def fill_ring(path: str, run_id: int) -> Ring:
    ring = Ring.create(path, size=8 * batch_max(CAP, AVG), capacity=CAP, avg_payload=AVG, run_id=run_id)
    decoder = Decoder()
    for b in range(BATCHES):
        slot = ring.acquire()
        n = b % 5 + 1                                     # batches of every size
        decoder.decode_frames([udp_frame(f"<14>1 2026-03-14T09:26:53Z h app - - - id={b * 100 + j}".encode())
                               for j in range(n)], slot)
        ring.publish()
    return ring


def all_ids() -> list[int]:
    return sorted(b * 100 + j for b in range(BATCHES) for j in range(b % 5 + 1))


def crashed_first_worker(ring_path: str, sink_cfg: SinkConfig, run_id: int, complete_upto: int) -> None:
    """What a worker that died leaves: batches [0, complete_upto) committed by
    the sink but not released, the rest written to an open (incomplete) file."""
    with Ring.attach(ring_path) as ring:
        sink = make_sink(sink_cfg, 0, run_id)
        first = ring.take(timeout=0, max_batches=complete_upto)
        sink.write(first)
        sink.tick(1e12, ring.data_size)                   # rotate: the file is complete
        rest = ring.take(timeout=0)
        sink.write(rest)                                  # ... and dies before completing this one
        del sink


@pytest.mark.parametrize("kind", ["parquet", "jsonl"])
def test_next_worker_recovers_from_an_incomplete_file_and_unreleased_batches(tmp_path, kind):
    run_id = 4242
    path = str(tmp_path / "ring-q0")
    ring = fill_ring(path, run_id)
    cfg = SinkConfig(type=kind, path=str(tmp_path / kind), rotate_seconds=3600)
    crashed_first_worker(path, cfg, run_id, complete_upto=5)
    committed_records = sum(b % 5 + 1 for b in range(5))
    assert ring.tail == 0, "the dead worker released nothing"
    ring.set_closed()

    heir = Worker(WorkerSpec(queue_id=0, ring_path=path, sinks=(cfg,), cpu=None, run_id=999))
    assert heir.run_id == run_id, "the batches' run is the ring's"
    assert heir.run() == 0
    st = heir.stats()
    total = len(all_ids())
    s = ring.stats()
    assert (s["tail"], s["records_released"]) == (BATCHES, total)
    assert (st["delivered"], st["sink_failed"]) == (total, 0)
    if kind == "parquet":
        assert st["duplicates_suppressed"] == committed_records
        assert st["sinks"][0]["dropped_partial"] == 1
        store = tmp_path / "parquet"
        assert not list((store / ".staging").iterdir())
        table = ds.dataset(str(store), format="parquet", partitioning="hive").to_table()
        ids = sorted(int(ID.search(m).group(1)) for m in table.column("message").to_pylist())
        assert ids == all_ids(), "every record exactly once"
        names = sorted(p.name for p in store.glob("date=*/hour=*/*.parquet"))
        assert names == [f"q0-{run_id}-0-4.parquet", f"q0-{run_id}-5-{BATCHES - 1}.parquet"]
    else:
        lines = [json.loads(line) for f in (tmp_path / "jsonl").glob("date=*/hour=*/*.jsonl")
                 for line in f.read_text().splitlines()]
        ids = sorted(int(ID.search(r["message"]).group(1)) for r in lines)
        # the dead worker's part files are finished (cut to whole lines) and
        # their .seq says every batch is in: the heir skips them all
        assert ids == all_ids() and st["duplicates_suppressed"] == total
    ring.close()


def test_a_failing_sink_keeps_the_batches_and_catches_up(tmp_path, monkeypatch):
    """A sink whose writes fail (ENOSPC opening its file, three times) releases
    nothing; the worker retries and then delivers everything once. A real
    full disk is tests/system/test_delivery_faults.py's."""
    import appliance.sinks.parquet as parquet_mod
    import appliance.worker as worker_mod

    monkeypatch.setattr(worker_mod, "RETRY_S", 0.01)
    path = str(tmp_path / "ring-q0")
    ring = fill_ring(path, 7)
    cfg = SinkConfig(type="parquet", path=str(tmp_path / "pq"), rotate_seconds=3600)
    worker = Worker(WorkerSpec(queue_id=0, ring_path=path, sinks=(cfg,), cpu=None, run_id=7))
    real_open, calls = parquet_mod.ParquetSink._open, {"n": 0}

    def flaky_open(self, hour, first_seq):
        calls["n"] += 1
        if calls["n"] <= 3:
            raise OSError(28, "No space left on device")
        return real_open(self, hour, first_seq)

    monkeypatch.setattr(parquet_mod.ParquetSink, "_open", flaky_open)
    ring.set_closed()
    assert worker.run() == 0
    st = worker.stats()
    assert st["sink_errors"] == 3 and st["delivered"] == len(all_ids()) and st["sink_failed"] == 0
    assert "No space left on device" in st["errors"][0]
    table = ds.dataset(str(tmp_path / "pq"), format="parquet", partitioning="hive").to_table()
    assert sorted(int(ID.search(m).group(1)) for m in table.column("message").to_pylist()) == all_ids()
    ring.close()


def test_row_groups_have_row_group_rows_whatever_the_takes(tmp_path):
    """A take larger than a row group is split; the rest waits for the next."""
    import pyarrow.parquet as pq

    path = str(tmp_path / "ring-q0")
    ring = fill_ring(path, 5)                       # 33 records in 12 batches, one take
    # below the config file's minimum (checked by config._sink, not the dataclass): small test data
    cfg = SinkConfig(type="parquet", path=str(tmp_path / "pq"), rotate_seconds=3600, row_group_rows=10)
    ring.set_closed()
    assert Worker(WorkerSpec(queue_id=0, ring_path=path, sinks=(cfg,), cpu=None, run_id=5)).run() == 0
    [f] = (tmp_path / "pq").glob("date=*/hour=*/*.parquet")
    md = pq.ParquetFile(f).metadata
    assert [md.row_group(i).num_rows for i in range(md.num_row_groups)] == [10, 10, 10, 3]
    ring.close()
