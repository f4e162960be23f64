"""What a receiver stored: a Parquet store (the appliance) or a text file (rsyslog).
Used by bench/pipeline.py and bench/e2e.py."""

from __future__ import annotations

from pathlib import Path


def parquet_store(root: Path) -> dict:
    """Complete files of a Parquet store (not .staging): files, messages (rows),
    row groups, bytes, and when the last one was completed (its mtime, in
    seconds since the epoch: written, closed, then renamed into the store)."""
    import pyarrow.parquet as pq

    files = [f for f in root.rglob("*.parquet") if ".staging" not in f.parts]
    metas = [pq.read_metadata(f) for f in files]
    rows, groups = sum(m.num_rows for m in metas), sum(m.num_row_groups for m in metas)
    size = sum(f.stat().st_size for f in files)
    return {"kind": "parquet", "files": len(files), "messages": rows, "row_groups": groups, "bytes": size,
            "rows_per_row_group": round(rows / groups) if groups else None,
            "bytes_per_msg": round(size / rows, 1) if rows else None,
            "last_file_done": max((f.stat().st_mtime_ns for f in files), default=0) / 1e9}


def text_store(path: Path) -> dict:
    """A text file of one message per line: bytes, lines."""
    lines = size = 0
    if path.exists():
        with open(path, "rb") as f:
            while chunk := f.read(1 << 24):
                lines += chunk.count(b"\n")
                size += len(chunk)
    return {"kind": "text", "files": int(path.exists()), "messages": lines, "bytes": size,
            "bytes_per_msg": round(size / lines, 1) if lines else None}
