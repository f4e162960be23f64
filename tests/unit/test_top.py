"""`logcaster top`'s view: rates between two samples, top lists, and the
rich rendering (tests/system/test_upstream_and_budgets.py runs it against an appliance)."""

from __future__ import annotations

from rich.console import Console

from appliance.cli.top_cmd import _render
from appliance.decoder import SEQUENCE_COUNTERS, SEVERITIES
from appliance.top import Sample, view


def _queue(records: int, packets: int, nbytes: int) -> dict:
    dec = {"records": records, "bytes": nbytes, "throttled": 3, "severities": {s: 0 for s in SEVERITIES},
           "sequence": {k: 0 for k in SEQUENCE_COUNTERS}}
    dec["severities"]["info"] = records
    dec["sequence"].update(records=10, lost=4)
    return {"queue": 0, "label": "udp:127.0.0.1:514 q0", "decoder": dec, "packets": packets, "bytes": nbytes,
            "ring_full": 1, "kernel_drops": 0, "ring": {"fill": 0.25, "in_flight": 7, "released": records - 7}}


def _sender(src: str, app: str | None, records: int, nbytes: int, lost: int = 0) -> dict:
    return {"src": src, "app": app, "records": records, "bytes": nbytes, "lost": lost, "gaps": 1 if lost else 0,
            "duplicates": 0, "reorders": 0, "resets": 0, "rule": "cisco" if lost else None, "last_seq": None}


def _sample(t: float, scale: int) -> Sample:
    return Sample(t, {"pid": 42, "backend": "socket", "sink_failed": 2, "throttled_nic": 0, "nic": {"kernel_drops": 5}},
                  [_queue(100 * scale, 110 * scale, 9000 * scale)],
                  [_sender("198.18.0.1", "sshd", 60 * scale, 3000 * scale),
                   _sender("198.18.0.2", None, 40 * scale, 6000 * scale, lost=4)],
                  [{"src": "198.18.0.9", "passed": 5, "throttled": 3}])


def test_view_rates_and_top_lists():
    v = view(_sample(12.0, 2), _sample(10.0, 1), rows=5)
    assert v["total"]["records"] == 200 and v["total"]["records_per_s"] == 50.0
    assert v["queues"][0]["packets_per_s"] == 55.0 and v["queues"][0]["worker_lag_records"] == 7
    assert [r["src"] for r in v["top_senders_by_records"]] == ["198.18.0.1", "198.18.0.2"]
    assert [r["src"] for r in v["top_senders_by_bytes"]] == ["198.18.0.2", "198.18.0.1"]
    assert v["top_senders_by_bytes"][0]["bytes_per_s"] == 3000.0
    assert {r["app"]: r["records"] for r in v["top_apps"]} == {"sshd": 120, None: 80}
    assert v["losses"] == {"ring_full": 1, "sink_failed": 2, "throttled": 3, "nic_kernel_drops": 5}
    assert v["upstream"]["lost"] == 4 and v["upstream"]["top"][0]["src"] == "198.18.0.2"
    assert v["throttled_sources"] == [{"src": "198.18.0.9", "passed": 5, "throttled": 3}]
    first = view(_sample(10.0, 1))                  # one sample: totals, no rates
    assert first["total"]["records_per_s"] is None and first["top_apps"][0]["records_per_s"] is None


def test_render_draws_every_part():
    console = Console(record=True, width=220)
    console.print(_render(view(_sample(12.0, 2), _sample(10.0, 1))))
    text = console.export_text()
    for part in ("queues", "top senders (records)", "top apps", "severities", "losses",
                 "lost before reaching us: 4 messages from 1 senders", "throttled sources", "198.18.0.9", "25.0%"):
        assert part in text, part
