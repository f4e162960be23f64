"""Parquet writer settings measured: codec level, dictionary columns, statistics.

Writes the same records (a Parquet store's rows, e.g. the demo's) with each
candidate setting for a bounded time and prints rows/s and stored bytes per
row, so the choice in appliance/sinks/parquet.py is a measured one
(docs/PARQUET.md records the figures and the command).

    python bench/parquet_settings.py STORE_DIR [--seconds 4]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.batch import SCHEMA  # noqa: E402
from appliance.sinks import parquet as sink  # noqa: E402

ROWS = 256 * 1024       # the sink's default row group


def candidates() -> dict[str, dict]:
    chosen = dict(compression="zstd", compression_level=1, use_dictionary=sink.DICTIONARY_COLUMNS,
                  write_statistics=sink.STATISTICS_COLUMNS)
    return {
        "chosen (zstd 1, dict repeating, stats useful)": chosen,
        "zstd 3": {**chosen, "compression_level": 3},
        "zstd 6": {**chosen, "compression_level": 6},
        "lz4": {**chosen, "compression": "lz4", "compression_level": None},
        "dictionary on every column": {**chosen, "use_dictionary": True},
        "statistics on every column": {**chosen, "write_statistics": True},
    }


def measure(table: pa.Table, opts: dict, seconds: float, tmp: Path) -> dict:
    path = tmp / "x.parquet"
    t0, rows = time.perf_counter(), 0
    with pq.ParquetWriter(str(path), SCHEMA, **opts) as w:
        while time.perf_counter() - t0 < seconds:
            w.write_table(table, row_group_size=table.num_rows)
            rows += table.num_rows
    dt = time.perf_counter() - t0
    return {"rows_per_s": round(rows / dt), "bytes_per_row": round(os.path.getsize(path) / rows, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    files = glob.glob(os.path.join(args.store, "date=*", "hour=*", "*.parquet"))
    if not files:
        raise SystemExit(f"{args.store}: no Parquet files (run `logcaster demo --data-dir DIR` first)")
    column_bytes: dict[str, int] = {}
    for f in files:                       # where the input store's bytes go, per column
        md = pq.ParquetFile(f).metadata
        for g in range(md.num_row_groups):
            for c in range(md.num_columns):
                col = md.row_group(g).column(c)
                column_bytes[col.path_in_schema] = column_bytes.get(col.path_in_schema, 0) + col.total_compressed_size
    rows = pa.concat_tables(pq.read_table(f).select(SCHEMA.names).cast(SCHEMA) for f in files)
    print("stored bytes per row by column: " + ", ".join(
        f"{k} {v / rows.num_rows:.1f}" for k, v in sorted(column_bytes.items(), key=lambda kv: -kv[1])))
    table = pa.concat_tables([rows] * (ROWS // rows.num_rows + 1)).slice(0, ROWS).combine_chunks()
    print(f"{'setting':48s} {'rows/s':>12s} {'B/row':>7s}")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        for name, opts in candidates().items():
            r = measure(table, opts, args.seconds, Path(tmp))
            print(f"{name:48s} {r['rows_per_s']:>12,} {r['bytes_per_row']:>7}")
            print(json.dumps({"benchmark": "parquet-settings", "setting": name, **r}))


if __name__ == "__main__":
    main()
