"""Where a running appliance keeps its files: one home for each path and name.

RUN_DIR holds, per `dpdk.file_prefix`, the instance lock (`<prefix>.lock`,
appliance/instance.py), the live counters (`<prefix>.stats.json`, read by
`logcaster stats`), the XDP interface locks (ebpf/loader.py) and, while a
`logcaster tap` runs, its control file (`<prefix>.tap.json`) and each
worker's side ring of recent records (`<prefix>.tap.q<N>`, appliance/tap.py).
systemd creates it (`RuntimeDirectory=logcaster`, owned by the service
user); the environment variable LOGCASTER_RUN_DIR moves it (tests,
unprivileged runs).

Rings live in a directory of their own user inside a hugetlbfs mount or
/dev/shm (appliance/ring.py), named RING_HOME_PREFIX + uid; their files are
RING_FILE_PREFIX + file prefix + queue label (hugepages/stale.py finds them
by these names).
"""

from __future__ import annotations

import os
from pathlib import Path

RUN_DIR = Path(os.environ.get("LOGCASTER_RUN_DIR", "/run/logcaster"))
# What the appliance creates (Parquet files, JSON lines, stats, locks) is
# 0640 / directories 0750: its own user and group read the captured logs,
# nobody else does (rings are 0600 in a 0700 directory: ring.c, ring.py).
UMASK = 0o027
SHM_DIR = "/dev/shm"
RING_HOME_PREFIX = "logcaster-"
RING_FILE_PREFIX = "logcaster-ring-"


def ring_home_name(uid: int) -> str:
    return f"{RING_HOME_PREFIX}{uid}"


def tap_control_path(file_prefix: str) -> Path:
    """The control file a `logcaster tap` keeps while it runs (appliance/tap.py)."""
    return RUN_DIR / f"{file_prefix}.tap.json"


def tap_ring_path(file_prefix: str, queue: int) -> Path:
    """A worker's side ring of recent records, there while a tap runs."""
    return RUN_DIR / f"{file_prefix}.tap.q{queue}"


def tap_ring_paths(file_prefix: str) -> list[Path]:
    """The side rings of a running appliance, in queue order."""
    found = [p for p in RUN_DIR.glob(f"{file_prefix}.tap.q*") if p.name.rsplit(".q", 1)[1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.rsplit(".q", 1)[1]))
