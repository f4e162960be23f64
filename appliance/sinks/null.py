"""The null sink: counts only (benchmarks), optionally slow on purpose (overload drills)."""

from __future__ import annotations

import time

from appliance.sinks.base import Sink


class NullSink(Sink):
    kind = "null"

    def write(self, taken) -> None:
        if self.cfg.delay_ms:    # per batch: a slow sink costs in proportion to what it takes
            time.sleep(self.cfg.delay_ms / 1000.0 * len(taken))
        self.records += taken.records
        self.batches += len(taken)
        self.need = taken.end
