"""Senders through the real pipeline: loss before the box seen in the senders'
sequence numbers, per-source budgets at the NIC and in the RX loop, and the
live views (`top --json`, `stats --sources`) of a running appliance.

Counts are exact: sequences with known gaps, duplicates, reorders, a
restart and a wrap; a budget whose refill takes ~15 minutes per datagram,
so what passes in a test is exactly the burst.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pyarrow.compute as pc
import pytest

from appliance.sample import udp_frame, write_frames
from netns import REPO, Appliance, ip, read_jsonl_sink
from runner import base_config, run_to_end
from test_capture_veth import _backend_config, veth_link  # noqa: F401  (a fixture)
from test_pipeline_pcap import read_store

# meta sequenceId wraps after 100 here (RFC 5424's is 2147483647), so a test can wrap it.
RULES = ["cisco", {"sd_id": "meta", "param": "sequenceId", "max": 100}]


def meta(seq: int, app: str, sev: int = 6) -> bytes:
    return f'<{8 + sev}>1 2026-03-14T09:26:53Z dev {app} - - [meta sequenceId="{seq}"] n={seq}'.encode()


def cisco(seq: int) -> bytes:
    return f"<189>{seq:06d}: *Mar 14 09:26:53.123: %LINK-3-UPDOWN: Interface Gi0/1, changed state to up".encode()


# (source, payloads): what each sender's sequence does, and what it must count.
SENDERS = [
    ("198.18.5.1", [meta(s, "a") for s in (1, 2, 3, 5, 6, 4, 4, 10, 11, 9, 9, 12)]),  # lost 7, 8; 4 and 9 late, twice
    ("198.18.5.2", [cisco(s) for s in (1000, 1001, 1002, 1003, 1004, 1, 2, 5)]),      # reboot to 1; lost 3, 4
    ("198.18.5.3", [meta(s, "w") for s in (98, 99, 2, 3)]),                            # wrap: lost 100 and 1
    ("198.18.5.4", [b"<14>Mar 14 09:26:53 dev sshd[7]: no sequence here"] * 5),
]
EXPECTED = {"records": 12 + 8 + 4, "lost": 2 + 2 + 2, "gaps": 2 + 1 + 1, "duplicates": 2, "reorders": 2,
            "resets": 1 + 1}


def test_sequence_gaps_through_net_pcap_are_counted_exactly(tmp_path):
    frames = [udp_frame(src, p, sport=40000 + i) for i, (src, ps) in enumerate(SENDERS) for p in ps]
    pcap = write_frames(tmp_path / "in.pcap", ((1_773_480_413 + i * 1e-4, f) for i, f in enumerate(frames)))
    cfg = base_config(tmp_path, pcap)
    cfg["senders"] = {"sequence": RULES}
    run = run_to_end(cfg, tmp_path)
    assert run.rc == 0, run.stderr
    up = run.stats["upstream"]
    assert {k: up[k] for k in EXPECTED} == EXPECTED
    assert up["senders_with_loss"] == 3
    assert [(t["src"], t["app"], t["lost"], t["rule"]) for t in up["top"]] == [
        ("198.18.5.1", "a", 2, "meta/sequenceId"), ("198.18.5.2", None, 2, "cisco"),
        ("198.18.5.3", "w", 2, "meta/sequenceId")]
    assert run.stats["flags"]["seq_gap"] == EXPECTED["gaps"]
    assert "lost before reaching us: 6 messages from 3 senders" in run.stdout
    store = read_store(tmp_path / "parquet")
    gapped = store.filter(pc.not_equal(pc.bit_wise_and(store["flags"], 0x4000), 0))
    assert sorted(gapped["message"].to_pylist()) == sorted(
        ["n=5", "n=10", "n=2", "%LINK-3-UPDOWN: Interface Gi0/1, changed state to up"])
    assert run.stats["accounting_ok"] and run.stats["lost"] == 0


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance.cli.main", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_top_and_stats_sources_show_a_running_appliance(tmp_path):
    """Socket backend on loopback: five senders (127.0.0.x), one over its
    budget; `top --json` and `stats --sources` while it runs."""
    port = 20000 + os.getpid() % 20000
    prefix = f"lctop{os.getpid()}"
    cfg = {"capture": {"backend": "socket", "ports": [{"name": "127.0.0.1"}], "udp_ports": [port]},
           "sinks": [{"type": "jsonl", "path": str(tmp_path / "sink")}], "stats_interval_s": 0.2,
           "dpdk": {"file_prefix": prefix}, "ring": {"dir": "/dev/shm"},
           "senders": {"sequence": RULES},
           "budget": {"rate": 0.001, "burst": 20},          # 20 at once, then one per ~17 minutes
           "metrics": {"listen": f"127.0.0.1:{port + 1}"}}
    plan = [(f"127.0.0.{10 + i}", ps) for i, (_, ps) in enumerate(SENDERS)]
    plan.append(("127.0.0.20", [b"<11>1 2026-03-14T09:26:53Z dev flood - - - x"] * 200))
    with Appliance(cfg, tmp_path) as app:
        app.wait_ready()
        for src, payloads in plan:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((src, 0))
            for p in payloads:
                s.sendto(p, ("127.0.0.1", port))
                time.sleep(0.0005)
            s.close()
        want = sum(len(p) for _, p in plan[:-1]) + 20
        assert app.wait_delivered(want, timeout=20) == want, app.output
        top = _cli("top", "--json", "--prefix", prefix, "--interval", "0.3")
        sources = _cli("stats", "--sources", "--json", "--prefix", prefix)
        text = _cli("stats", "--sources", "--prefix", prefix)
        with urllib.request.urlopen(f"http://127.0.0.1:{port + 1}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        rc = app.stop()
    assert rc == 0, app.output
    assert top.returncode == 0, top.stderr
    view = json.loads(top.stdout)
    assert view["total"]["records"] == want
    assert view["queues"][0]["records"] == want and view["queues"][0]["worker_lag_records"] == 0
    assert 0 <= view["queues"][0]["ring_fill"] < 1
    assert view["total"]["records_per_s"] == 0          # nothing sent between the two samples
    by_src = {r["src"]: r["records"] for r in view["top_senders_by_records"]}
    assert by_src == {"127.0.0.10": 12, "127.0.0.11": 8, "127.0.0.12": 4, "127.0.0.13": 5, "127.0.0.20": 20}
    assert view["top_senders_by_records"][0]["src"] == "127.0.0.20"
    apps = {r["app"]: r["records"] for r in view["top_apps"]}
    assert apps == {"a": 12, None: 8, "w": 4, "sshd": 5, "flood": 20}    # Cisco counts per device (no app)
    assert view["severities"] == {"emerg": 0, "alert": 0, "crit": 0, "err": 20, "warning": 0, "notice": 8,
                                  "info": 12 + 4 + 5, "debug": 0, "none": 0}
    assert {k: view["upstream"][k] for k in EXPECTED} == EXPECTED
    assert view["losses"]["throttled"] == 180 and view["losses"]["ring_full"] == 0
    assert view["throttled_sources"] == [{"src": "127.0.0.20", "passed": 20, "throttled": 180}]

    assert sources.returncode == 0, sources.stderr
    rep = json.loads(sources.stdout)
    assert [(r["src"], r["app"], r["lost"], r["duplicates"], r["reorders"], r["resets"]) for r in rep["senders"]] == [
        ("127.0.0.10", "a", 2, 2, 2, 0), ("127.0.0.11", None, 2, 0, 0, 1), ("127.0.0.12", "w", 2, 0, 0, 1)]
    assert rep["sources"] == [{"src": "127.0.0.20", "passed": 20, "throttled": 180}]
    assert "127.0.0.20" in text.stdout and "meta/sequenceId" in text.stdout

    for line in ("logcaster_upstream_lost_total 6.0", "logcaster_upstream_resets_total 2.0",
                 'logcaster_sender_upstream_lost_messages{app="a",source="127.0.0.10"} 2.0',
                 'logcaster_sender_upstream_lost_messages{app="",source="127.0.0.11"} 2.0',
                 'logcaster_throttled_packets_total{where="rx"} 180.0',
                 'logcaster_source_throttled_packets{source="127.0.0.20"} 180.0',
                 'logcaster_records_by_severity_total{severity="err"} 20.0'):
        assert line in metrics.splitlines(), line

    stats = app.stats()
    assert (stats["throttled"], stats["throttled_nic"], stats["delivered"]) == (180, 0, want)
    assert stats["accounting_ok"], stats
    assert len(read_jsonl_sink(tmp_path / "sink")) == want


QUIET = [f"198.18.0.{10 + i}" for i in range(10)]
FLOODER = "198.18.0.2"
FLOOD, PER_QUIET, BURST = 3000, 30, 100

# Runs in the sender namespace: the plan (source, count) from real UDP sockets, interleaved, pausing
# 5 ms every 10 datagrams (the af_packet ring holds 512 frames). Bounded by the plan: about 2 s.
SENDER = r"""
import socket, sys, time
port = int(sys.argv[1])
plan = [(a.split("=")[0], int(a.split("=")[1])) for a in sys.argv[3:]]
socks = {}
for src, _ in plan:
    s = socks[src] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
left = dict(plan)
sent = 0
while any(left.values()):
    for src in left:
        if left[src]:
            socks[src].sendto(f"<13>1 - {src} app - - - lcid={sent}".encode(), (sys.argv[2], port))
            left[src] -= 1
            sent += 1
            if sent % 10 == 0:
                time.sleep(0.005)
print(f"sent {sent}")
"""


@pytest.mark.root
@pytest.mark.parametrize("backend", ["afxdp", "dpdk", "socket"], ids=["xdp", "dpdk-af_packet-rx-loop",
                                                                     "socket-rx-loop"])
def test_a_flooding_sender_is_held_to_its_budget_and_the_quiet_ones_lose_nothing(veth_link, tmp_path,
                                                                                  backend):  # noqa: F811
    for addr in QUIET:
        ip("addr", "add", f"{addr}/24", "dev", veth_link.sender_if, ns=veth_link.sender_ns)
    prefix = f"lcbud{os.getpid()}"
    cfg = _backend_config(backend, veth_link, tmp_path / "sink", prefix=prefix)
    cfg["budget"] = {"rate": 0.001, "burst": BURST}       # exactly the burst passes within the test
    cfg["senders"] = {"traffic": True}
    with Appliance(cfg, tmp_path, ns=veth_link.capture_ns) as app:
        app.wait_ready()
        plan = [f"{FLOODER}={FLOOD}"] + [f"{q}={PER_QUIET}" for q in QUIET]
        sender = subprocess.run(["ip", "netns", "exec", veth_link.sender_ns, sys.executable, "-c", SENDER, "5514",
                                 "198.18.0.1", *plan], capture_output=True, text=True, timeout=60)
        assert sender.returncode == 0, sender.stderr
        want = BURST + PER_QUIET * len(QUIET)
        delivered = app.wait_delivered(want, timeout=20)
        sources = _cli("stats", "--sources", "--json", "--prefix", prefix)
        rc = app.stop()
    assert rc == 0, app.output
    assert delivered == want, app.output
    records = read_jsonl_sink(tmp_path / "sink")
    per_src: dict[str, int] = {}
    for r in records:
        per_src[r["src_ip"]] = per_src.get(r["src_ip"], 0) + 1
    assert per_src == {FLOODER: BURST, **{q: PER_QUIET for q in QUIET}}     # the quiet ones lose nothing
    stats = app.stats()
    assert stats["throttled"] == FLOOD - BURST
    assert stats["throttled_nic"] == (FLOOD - BURST if backend == "afxdp" else 0)   # XDP: before any copy
    assert stats["throttled_sources"] == [{"src": FLOODER, "passed": BURST, "throttled": FLOOD - BURST}]
    assert stats["accounting_ok"], stats
    assert f"throttled {FLOOD - BURST:,}" in app.output
    rep = json.loads(sources.stdout)
    assert rep["sources"] == [{"src": FLOODER, "passed": BURST, "throttled": FLOOD - BURST}]
