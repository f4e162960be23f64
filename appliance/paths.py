"""Where a running appliance keeps its run-time files: one home for the path.

RUN_DIR holds, per `dpdk.file_prefix`, the instance lock (`<prefix>.lock`,
appliance/instance.py) and the live counters (`<prefix>.stats.json`, read by
`logcaster stats`). systemd creates it (`RuntimeDirectory=logcaster`); the
environment variable LOGCASTER_RUN_DIR moves it (tests, unprivileged runs).
"""

from __future__ import annotations

import os
from pathlib import Path

RUN_DIR = Path(os.environ.get("LOGCASTER_RUN_DIR", "/run/logcaster"))
