"""Senders in C (dpdk_shim/src/senders.c): sequence gaps, duplicates,
reorders, resets and wraps per sender, the bounded table, per-source budgets."""

from __future__ import annotations

import ipaddress

import pytest

from appliance import sources
from appliance.batch import Batch
from appliance.config import BudgetConfig, BudgetOverride, SendersConfig, SequenceRule
from appliance.decoder import Decoder
from appliance.live import LiveQueue, addr16
from appliance.sample import udp_frame
from dpdk_shim import ffi, lib


def tracked(senders: SendersConfig = SendersConfig(), budget: BudgetConfig | None = None):
    live = LiveQueue.create(None, queue=0, label="t", ring_path="", senders=senders, budget=budget)
    return live, Decoder(c=live.decoder, senders=live.senders, budget=live.budget)


def meta(seq: int, app: str = "app") -> bytes:
    return f'<13>1 2026-03-14T09:26:53Z host {app} - - [origin ip="1"][meta sequenceId="{seq}"] n={seq}'.encode()


def cisco(seq: int) -> bytes:
    return f"<189>{seq:06d}: *Mar 14 09:26:53.123: %LINK-3-UPDOWN: Interface Gi0/1, changed state to up".encode()


def decode(decoder: Decoder, payloads: list[bytes], src: str = "198.18.0.1", rx_ns: int = 0) -> list[int]:
    batch = Batch(capacity=len(payloads) + 1, avg_payload=200)
    decoder.decode_frames([udp_frame(src, p) for p in payloads], batch, rx_ns=rx_ns)
    return batch.to_arrow().column("flags").to_pylist()


def row(live, src: str, app: str | None) -> dict:
    rows, _ = sources.sender_table([live])
    [r] = [r for r in rows if r["src"] == src and r["app"] == app]
    return r


def test_gaps_duplicates_reorders_counted_exactly():
    live, d = tracked()
    seqs = [1, 2, 3, 5, 6, 4, 4, 10, 11, 9, 9, 12]
    flags = decode(d, [meta(s) for s in seqs])
    gap = lib.LC_F_SEQ_GAP
    assert [bool(f & gap) for f in flags] == [s in (5, 10) for s in seqs]
    # 4 skipped then came late; 7, 8 never came; 9 came late; one 4 and one 9 twice
    want = {"records": 12, "lost": 2, "gaps": 2, "duplicates": 2, "reorders": 2, "resets": 0}
    assert d.counters()["sequence"] == want
    r = row(live, "198.18.0.1", "app")
    assert {k: r[k] for k in ("lost", "gaps", "duplicates", "reorders", "resets", "records")} == \
        {k: want[k] for k in ("lost", "gaps", "duplicates", "reorders", "resets", "records")}
    assert r["rule"] == "meta/sequenceId" and r["last_seq"] == 12


def test_senders_are_per_source_and_app_for_meta_per_source_for_cisco():
    live, d = tracked()
    decode(d, [meta(1, "a"), meta(1, "b"), meta(3, "a"), meta(2, "b")])       # a lost 2; b in order
    decode(d, [cisco(1), cisco(2), cisco(5)], src="198.18.0.2")               # one device: lost 3, 4
    decode(d, [cisco(1), cisco(2)], src="198.18.0.3")                         # another, in order
    assert row(live, "198.18.0.1", "a")["lost"] == 1
    assert row(live, "198.18.0.1", "b")["lost"] == 0
    assert row(live, "198.18.0.2", None)["lost"] == 2
    assert row(live, "198.18.0.3", None)["lost"] == 0
    up = sources.upstream(d.counters()["sequence"], sources.sender_table([live])[0])
    assert (up["lost"], up["senders_with_loss"]) == (3, 2)
    assert [(t["src"], t["app"], t["lost"]) for t in up["top"]] == [("198.18.0.2", None, 2), ("198.18.0.1", "a", 1)]


def test_a_restarted_sender_is_a_reset_not_a_loss():
    live, d = tracked()
    decode(d, [cisco(s) for s in (1000, 1001, 1002, 1, 2, 3)], src="198.18.0.4")   # reboot: back to 1
    decode(d, [meta(s) for s in (5, 6, 7, 1, 2)], src="198.18.0.5")                 # back to min, in the window
    c = d.counters()["sequence"]
    assert (c["lost"], c["resets"], c["duplicates"]) == (0, 2, 0)
    assert row(live, "198.18.0.4", None)["last_seq"] == 3


def test_a_wrap_counts_only_what_it_skipped():
    rule = SequenceRule("sd", "meta", "sequenceId", per_app=True, min=1, max=100)
    live, d = tracked(SendersConfig(sequence=(rule,)))
    flags = decode(d, [meta(s) for s in (98, 99, 100, 1, 2, 5)])
    c = d.counters()["sequence"]
    assert (c["resets"], c["lost"], c["gaps"]) == (1, 2, 1)       # 100 -> 1 in order; 3, 4 lost
    assert [bool(f & lib.LC_F_SEQ_GAP) for f in flags] == [False] * 5 + [True]
    flags = decode(d, [meta(s, "w2") for s in (99, 2)])            # a wrap that skips 100 and 1
    c = d.counters()["sequence"]
    assert (c["resets"], c["lost"], c["gaps"]) == (2, 4, 2)
    assert [bool(f & lib.LC_F_SEQ_GAP) for f in flags] == [False, True]


def test_a_jump_beyond_max_gap_is_a_reset():
    live, d = tracked(SendersConfig(max_gap=1000))
    decode(d, [meta(s) for s in (1, 2, 5000, 5001, 5003)])
    c = d.counters()["sequence"]
    assert (c["resets"], c["lost"]) == (1, 1)


def test_sd_rules_take_any_sd_param_and_skip_other_elements():
    rule = SequenceRule("sd", "juniper@2636", "seq", per_app=False, min=0, max=(1 << 32) - 1)
    live, d = tracked(SendersConfig(sequence=(rule,)))
    payloads = [f'<13>1 - h mgd - - [x@1 seq="9" a="]\\"["][juniper@2636 seq="{s}"] m'.encode() for s in (7, 8, 10)]
    decode(d, payloads + [meta(3)])                                # meta is no rule here
    c = d.counters()["sequence"]
    assert (c["records"], c["lost"]) == (3, 1)


def test_records_without_a_sequence_count_as_traffic_only():
    live, d = tracked()
    decode(d, [b"<14>Mar 14 09:26:53 h sshd[1]: hello"] * 3 + [b"plain"])
    r = row(live, "198.18.0.1", "sshd")
    assert (r["records"], r["lost"], r["rule"]) == (3, 0, None)
    assert row(live, "198.18.0.1", None)["records"] == 1
    assert d.counters()["sequence"]["records"] == 0
    live, d = tracked(SendersConfig(traffic=False))
    decode(d, [b"<14>Mar 14 09:26:53 h sshd[1]: hello", cisco(1)])
    assert [(r["app"], r["records"]) for r in sources.sender_table([live])[0]] == [(None, 1)]


def test_the_table_stays_bounded_and_evicts_under_a_million_senders():
    live, d = tracked(SendersConfig(table_size=64))
    t, c = live.senders, d.c
    heavy = addr16(ipaddress.ip_address("2001:db8::1"))    # not among the others (IPv4)
    app = ffi.new("char[]", b"app")
    total = 1_000_000
    for i in range(total):
        addr = addr16(ipaddress.IPv4Address(0xC6120000 + i)) if i % 4 else heavy   # 198.18.0.0/15 and up
        seq = i // 4 + 1 + (i // 4 >= 100)        # the heavy sender skips one number, once
        lib.lc_senders_observe(c, t, addr, app, 3, 2 if i % 4 == 0 else 0, seq, 100, i)
    rows, facts = sources.sender_table([live])
    assert facts["slots"] == len(rows) == 64
    assert facts["evictions"] == (total - total // 4) + 1 - 64       # every sender but the heavy one once
    assert len({(r["src"], r["app"]) for r in rows}) == 64
    [h] = [r for r in rows if r["src"] == "2001:db8::1"]        # heard every 4th record: never the LRU of its set
    assert (h["records"], h["lost"], h["gaps"]) == (total // 4, 1, 1)
    assert d.counters()["sequence"] == {"records": total // 4, "lost": 1, "gaps": 1, "duplicates": 0,
                                        "reorders": 0, "resets": 0}


def test_budget_gcra_exact():
    budget = BudgetConfig(rate=10, burst=5, overrides=(BudgetOverride("198.18.9.0/24", 0, 0),
                                                       BudgetOverride("198.18.9.128/25", 1, 2)))
    live, d = tracked(budget=budget)
    take = lambda ip, ns: lib.lc_budget_take(d.c, live.budget, addr16(ipaddress.ip_address(ip)), ns)  # noqa: E731
    assert sum(take("198.18.0.1", 1_000_000_000) for _ in range(100)) == 5          # the burst
    assert sum(take("198.18.0.1", 1_500_000_000) for _ in range(100)) == 5          # 0.5 s at 10/s
    assert sum(take("198.18.0.2", 1_500_000_000) for _ in range(3)) == 3            # its own budget
    assert sum(take("198.18.9.7", 0) for _ in range(1000)) == 1000                  # override: no limit
    assert sum(take("198.18.9.200", 0) for _ in range(10)) == 2                     # the longest prefix wins
    assert d.c.throttled == 190 + 8
    rows, _ = sources.budget_table([live])
    by = {r["src"]: (r["passed"], r["throttled"]) for r in rows}
    assert by["198.18.0.1"] == (10, 190) and by["198.18.9.200"] == (2, 8) and by["198.18.9.7"] == (1000, 0)


def test_budget_in_the_decoder_counts_throttled_frames():
    live, d = tracked(budget=BudgetConfig(rate=1, burst=3))
    flags = decode(d, [cisco(i) for i in range(1, 11)], rx_ns=5)
    assert len(flags) == 3
    c = d.counters()
    assert (c["frames"], c["records"], c["throttled"]) == (10, 3, 7)


@pytest.mark.parametrize("bad, msg", [
    ({"sequence": ["juniper"]}, "senders.sequence[0]"),
    ({"sequence": [{"sd_id": "a b", "param": "x"}]}, "senders.sequence[0].sd_id"),
    ({"sequence": [{"sd_id": "a", "param": "x", "min": 5, "max": 5}]}, "senders.sequence[0].max"),
    ({"table_size": 0}, "senders.table_size"),
])
def test_senders_config_errors_name_the_key(bad, msg):
    from appliance.config import from_dict
    from appliance.errors import ConfigError

    with pytest.raises(ConfigError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        from_dict({"capture": {"backend": "socket", "ports": [{"name": "127.0.0.1"}]}, "senders": bad})


def test_budget_config_errors_name_the_key():
    from appliance.config import from_dict
    from appliance.errors import ConfigError

    base = {"capture": {"backend": "socket", "ports": [{"name": "127.0.0.1"}]}}
    with pytest.raises(ConfigError, match=r"budget.overrides\[0\].prefix"):
        from_dict({**base, "budget": {"rate": 5, "overrides": [{"prefix": "nonsense", "rate": 1}]}})
    with pytest.raises(ConfigError, match="budget.rate"):
        from_dict({**base, "budget": {"rate": -1}})
