"""The null sink: counts only (benchmarks), optionally slow on purpose (overload drills)."""

from __future__ import annotations

import time

from appliance.sinks.base import BatchView, Sink


class NullSink(Sink):
    kind = "null"

    def write(self, view: BatchView) -> None:
        if self.cfg.delay_ms:
            time.sleep(self.cfg.delay_ms / 1000.0)
        self.records += view.hdr.count
        self.batches += 1
        self.last_seq = view.seq
