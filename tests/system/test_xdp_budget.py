"""Per-source budgets in the XDP program (ebpf/xdp_syslog.c, issue 12): GCRA
per source address at the NIC, loaded from a BudgetConfig by ebpf/loader.py.

The program is compiled and loaded with bcc but attached nowhere: every
frame goes through BPF_PROG_TEST_RUN (loader.test_run), so no interface is
touched. No AF_XDP socket is bound, so a datagram within its budget is
redirected with the fallback: XDP_PASS, counted redirect_failed. Frames are
built with scapy with both MACs given (nothing is resolved); addresses come
from 198.18.0.0/15, 203.0.113.0/24 and 2001:db8::/32. The last test runs the AF_XDP
backend with a budget on a veth pair between namespaces of its own
(tests/system/test_afxdp.py's helpers), never on another interface.

Budgets of 1 message/s never refill during a test (100 frames take a few
milliseconds; the next token is due after one second), so every count below
is exact and nothing depends on the clock.
"""

from __future__ import annotations

import errno
import json
import time

import pytest

from appliance.config import BudgetConfig, BudgetOverride

pytestmark = [pytest.mark.root, pytest.mark.xdp]

SYSLOG_PORT, OTHER_PORT = 514, 9999
MAC_S, MAC_C = "02:00:00:00:18:02", "02:00:00:00:18:01"
CAPTURE_V4, CAPTURE_V6 = "198.18.0.1", "2001:db8:18::1"
FLOODER = "198.18.0.5"
XDP_DROP, XDP_PASS = 1, 2
RATE_1_BURST_5 = BudgetConfig(rate=1.0, burst=5, table_size=1024)


def frame(src: str, dport: int = SYSLOG_PORT) -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    ip = IPv6(src=src, dst=CAPTURE_V6) if ":" in src else IP(src=src, dst=CAPTURE_V4)
    return bytes(Ether(src=MAC_S, dst=MAC_C) / ip / UDP(sport=40000, dport=dport) / b"<13>1 - h app - - - hi")


class Program:
    """xdp_syslog.c loaded (not attached) with a budget; cleaned up after."""

    def __init__(self, budget: BudgetConfig | None, deny=()):
        from ebpf.loader import compile_program

        self.bpf, self.fn = compile_program([SYSLOG_PORT], deny=deny, budget=budget)

    def send(self, src: str, n: int, dport: int = SYSLOG_PORT) -> dict[int, int]:
        """n frames from src, one BPF_PROG_TEST_RUN each: {action: count}."""
        from ebpf.loader import test_run

        data = frame(src, dport)
        actions: dict[int, int] = {}
        for _ in range(n):
            a = test_run(self.fn.fd, data)
            actions[a] = actions.get(a, 0) + 1
        return actions

    def counters(self) -> dict:
        from ebpf.loader import read_counters

        return read_counters(self.bpf, [SYSLOG_PORT])

    def rows(self) -> list[dict]:
        from ebpf.loader import throttled_sources

        return throttled_sources(self.bpf)


@pytest.fixture
def program():
    pytest.importorskip("bcc", reason="needs python3-bpfcc")
    pytest.importorskip("scapy", reason="needs scapy")
    made = []

    def load(budget: BudgetConfig | None, **kw) -> Program:
        p = Program(budget, **kw)
        made.append(p)
        return p

    yield load
    for p in made:
        p.bpf.cleanup()


def test_a_flooder_gets_its_burst_and_the_rest_is_dropped_at_the_nic(program):
    prog = program(RATE_1_BURST_5)
    assert prog.send(FLOODER, 100) == {XDP_PASS: 5, XDP_DROP: 95}
    c = prog.counters()
    assert c == {"seen": 100, "redirected": 0, "passed": 5, "redirect_failed": 5, "denied": 0,
                 "frag_passed": 0, "throttled": 95, "port_hits": {SYSLOG_PORT: 100}}
    assert c["seen"] == c["redirected"] + c["passed"] + c["denied"] + c["throttled"]
    assert prog.rows() == [{"src": FLOODER, "passed": 5, "throttled": 95}]


def test_other_sources_keep_their_own_budget_while_one_floods(program):
    prog = program(RATE_1_BURST_5)
    others = [f"198.18.1.{i}" for i in range(1, 11)]
    assert prog.send(FLOODER, 100) == {XDP_PASS: 5, XDP_DROP: 95}
    for src in others:
        assert prog.send(src, 5) == {XDP_PASS: 5}, src          # a whole burst each, after the flood
    assert prog.send(FLOODER, 10) == {XDP_DROP: 10}              # the flooder is still over
    c = prog.counters()
    assert (c["seen"], c["passed"], c["throttled"]) == (160, 5 + 50, 105)
    assert prog.rows() == [{"src": FLOODER, "passed": 5, "throttled": 105}]   # only sources over budget


def test_traffic_that_is_not_syslog_is_never_budgeted(program):
    prog = program(RATE_1_BURST_5)
    assert prog.send(FLOODER, 50, dport=OTHER_PORT) == {XDP_PASS: 50}
    assert prog.send(FLOODER, 6) == {XDP_PASS: 5, XDP_DROP: 1}   # its syslog budget is whole
    assert prog.counters()["throttled"] == 1


def test_an_override_with_rate_0_is_never_throttled(program):
    prog = program(BudgetConfig(rate=1.0, burst=5, table_size=1024,
                                overrides=(BudgetOverride("198.18.2.0/24", 0.0, 0),)))
    assert prog.send("198.18.2.7", 100) == {XDP_PASS: 100}
    assert prog.send("198.18.3.7", 100) == {XDP_PASS: 5, XDP_DROP: 95}   # outside the prefix: the default
    assert prog.counters()["throttled"] == 95
    assert prog.rows() == [{"src": "198.18.3.7", "passed": 5, "throttled": 95}]


def test_the_longest_matching_prefix_decides_for_ipv4_and_ipv6(program):
    prog = program(BudgetConfig(rate=1.0, burst=5, table_size=1024, overrides=(
        BudgetOverride("198.18.0.0/15", 1.0, 2),
        BudgetOverride("198.18.4.0/24", 1.0, 10),
        BudgetOverride("198.18.4.128/25", 0.0, 0),
        BudgetOverride("2001:db8:18::/48", 1.0, 3),
        BudgetOverride("2001:db8:18:5::/64", 1.0, 7),
    )))
    assert prog.send("198.18.9.9", 20) == {XDP_PASS: 2, XDP_DROP: 18}       # /15
    assert prog.send("198.18.4.9", 20) == {XDP_PASS: 10, XDP_DROP: 10}      # /24
    assert prog.send("198.18.4.200", 20) == {XDP_PASS: 20}                  # /25, no limit
    assert prog.send("203.0.113.9", 20) == {XDP_PASS: 5, XDP_DROP: 15}      # no prefix: the default
    assert prog.send("2001:db8:18::9", 20) == {XDP_PASS: 3, XDP_DROP: 17}   # /48
    assert prog.send("2001:db8:18:5::9", 20) == {XDP_PASS: 7, XDP_DROP: 13} # /64
    assert prog.send("2001:db8:99::9", 20) == {XDP_PASS: 5, XDP_DROP: 15}   # default
    assert prog.rows() == [
        {"src": "198.18.9.9", "passed": 2, "throttled": 18},
        {"src": "2001:db8:18::9", "passed": 3, "throttled": 17},
        {"src": "2001:db8:99::9", "passed": 5, "throttled": 15},       # ties: by the text
        {"src": "203.0.113.9", "passed": 5, "throttled": 15},
        {"src": "2001:db8:18:5::9", "passed": 7, "throttled": 13},
        {"src": "198.18.4.9", "passed": 10, "throttled": 10},
    ]
    assert prog.counters()["throttled"] == 18 + 10 + 15 + 17 + 13 + 15


def test_an_ipv4_mapped_prefix_holds_ipv4_sources_as_in_the_rx_loop(program):
    """Sources and prefixes are keyed as in dpdk_shim/lc_senders.h: IPv4 as
    ::ffff:a.b.c.d, so an IPv6 prefix over ::ffff:0:0/96 covers IPv4."""
    prog = program(BudgetConfig(rate=1.0, burst=5, table_size=1024, overrides=(
        BudgetOverride("::ffff:198.18.6.0/120", 1.0, 2),
        BudgetOverride("::/0", 0.0, 0),                 # every IPv6 and IPv4 source: no limit ...
        BudgetOverride("198.18.7.0/24", 1.0, 3),        # ... but longer prefixes
    )))
    assert prog.send("198.18.6.1", 10) == {XDP_PASS: 2, XDP_DROP: 8}
    assert prog.send("198.18.7.1", 10) == {XDP_PASS: 3, XDP_DROP: 7}
    assert prog.send("198.18.8.1", 10) == {XDP_PASS: 10}
    assert prog.send("2001:db8:18::1", 10) == {XDP_PASS: 10}


def test_every_throttled_source_is_listed_from_a_large_map(program):
    """throttled_sources() reads the map in chunks of 4096 (BPF_MAP_LOOKUP_BATCH):
    9000 entries, written from here, come back whole."""
    import ipaddress

    prog = program(BudgetConfig(rate=1.0, table_size=16384))
    table = prog.bpf[b"budget"]
    base = int(ipaddress.IPv4Address("198.18.0.0"))
    for i in range(9000):
        key = table.Key.from_buffer_copy(bytes(10) + b"\xff\xff" + (base + i).to_bytes(4, "big"))
        leaf = table.Leaf()
        leaf.passed, leaf.throttled = i % 3, i if i % 2 else 0
        table[key] = leaf
    rows = prog.rows()
    assert len(rows) == 4500
    assert rows[0] == {"src": str(ipaddress.IPv4Address(base + 8999)), "passed": 8999 % 3, "throttled": 8999}
    assert {r["src"]: (r["passed"], r["throttled"]) for r in rows} == \
        {str(ipaddress.IPv4Address(base + i)): (i % 3, i) for i in range(1, 9000, 2)}


def test_budgets_only_for_overrides_leave_other_sources_unlimited(program):
    prog = program(BudgetConfig(rate=0.0, table_size=1024, overrides=(BudgetOverride("198.18.0.0/24", 1.0, 5),)))
    assert prog.send(FLOODER, 100) == {XDP_PASS: 5, XDP_DROP: 95}
    assert prog.send("198.18.1.5", 100) == {XDP_PASS: 100}
    assert prog.rows() == [{"src": FLOODER, "passed": 5, "throttled": 95}]


def test_budgets_off_drop_nothing(program):
    prog = program(BudgetConfig())                      # the default: rate 0, no overrides
    assert prog.send(FLOODER, 100) == {XDP_PASS: 100}
    c = prog.counters()
    assert (c["seen"], c["passed"], c["throttled"]) == (100, 100, 0)
    assert prog.rows() == []
    assert len(prog.bpf[b"budget"]) == 0                # nothing tracked either
    prog2 = program(None)                               # no budget given at all
    assert prog2.send(FLOODER, 100) == {XDP_PASS: 100}
    assert prog2.counters()["throttled"] == 0


def test_deny_comes_before_the_budget(program):
    prog = program(RATE_1_BURST_5, deny=["198.18.0.0/24"])
    assert prog.send(FLOODER, 20) == {XDP_DROP: 20}
    c = prog.counters()
    assert (c["denied"], c["throttled"]) == (20, 0)
    assert prog.rows() == []


def test_a_new_budget_at_run_time_starts_every_source_again(program):
    from ebpf.loader import XdpError, set_budget

    prog = program(RATE_1_BURST_5)
    assert prog.send(FLOODER, 10) == {XDP_PASS: 5, XDP_DROP: 5}
    set_budget(prog.bpf, BudgetConfig(rate=1.0, burst=8, table_size=1024))
    assert prog.rows() == []                            # the map was emptied
    assert prog.send(FLOODER, 10) == {XDP_PASS: 8, XDP_DROP: 2}
    set_budget(prog.bpf, BudgetConfig())                # off
    assert prog.send(FLOODER, 10) == {XDP_PASS: 10}
    assert prog.counters()["throttled"] == 5 + 2

    off = program(None)                                 # loaded without room for sources
    with pytest.raises(XdpError) as exc:
        set_budget(off.bpf, RATE_1_BURST_5)
    assert exc.value.errno == errno.EINVAL
    assert off.send(FLOODER, 10) == {XDP_PASS: 10}      # and still off


def test_the_backend_drops_a_flood_at_the_nic_and_names_the_source(tmp_path):
    """The AF_XDP backend on a veth with budget {rate 1, burst 5}: of 100
    datagrams from one address (16 source ports: one source), 5 become
    records and 95 are dropped by the program; 3 from the IPv6 address are
    within its own budget."""
    from test_afxdp import SENDER_V4, SENDER_V6, Driver, _ping, _plan, _send, veth_link

    plan = _plan(100, ("v4",))
    with veth_link(queues=1) as link, Driver(link, 1, budget={"rate": 1, "burst": 5, "table_size": 1024}) as drv:
        ready = drv.line(60)
        assert ready.get("ready"), ready
        for args in ((CAPTURE_V4,), ("-6", CAPTURE_V6)):      # neighbours known before the datagrams go
            assert _ping(link, *args).returncode == 0
        _send(link, plan, tmp_path)
        _send(link, _plan(3, ("v6",)), tmp_path)
        time.sleep(0.5)
        out = drv.stop()

    context = f"\nstart-up: {ready['describe']}\nresult: {json.dumps({k: v for k, v in out.items() if k != 'records'})}"
    assert any("budget 1/s burst 5 per source" in line for line in ready["describe"]), context
    nic = out["nic"][link.capture_if]
    assert nic["throttled"] == 95 and nic["xdp_redirected"] == 5 + 3, context          # pings: passed
    assert nic["xdp_seen"] == nic["xdp_redirected"] + nic["xdp_passed"] + nic["xdp_denied"] + nic["throttled"]
    assert nic["port_hits"] == {"514": 103} and nic["kernel_drops"] == 0, context
    assert out["throttled_sources"] == [{"src": SENDER_V4, "passed": 5, "throttled": 95}], context
    records = out["records"][0]
    assert sorted(r["src_ip"] for r in records) == [SENDER_V4] * 5 + [SENDER_V6] * 3, context
