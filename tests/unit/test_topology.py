"""appliance.topology against fake sysfs trees: discovery, NIC locality, and
core plans for 1-, 2- and 4-node machines with and without SMT."""

from __future__ import annotations

import pytest

from appliance import topology as topo
from appliance.errors import ConfigError
from fakesys import FakeSys, machine


def plan(tmp_path, queues, port_node=0, **shape):
    return topo.plan_cores(topo.discover(machine(tmp_path, **shape).root), port_node, queues)


def assert_runnable(p: topo.CorePlan, t: topo.Topology):
    assert len(p.rx_cores) == len(p.worker_cores) == p.queues >= 1
    assert set(p.rx_cores) | set(p.worker_cores) <= set(t.online)
    assert len(set(p.rx_cores)) == len(p.rx_cores)          # one RX lcore per queue
    assert len(set(p.worker_cores)) == len(p.worker_cores)  # one worker process per queue


# -- cpulists -----------------------------------------------------------------
@pytest.mark.parametrize("text,cpus", [("0-3,8,10-11\n", (0, 1, 2, 3, 8, 10, 11)), ("", ()), ("\n", ()),
                                       ("5", (5,))])
def test_cpulist_round_trip(text, cpus):
    assert topo.parse_cpulist(text) == cpus
    assert topo.parse_cpulist(topo.format_cpulist(cpus)) == cpus


# -- discovery ----------------------------------------------------------------
def test_discover_two_nodes_smt(tmp_path):
    t = topo.discover(machine(tmp_path, nodes=2, cores_per_node=2, smt=True).root)
    assert t.online == tuple(range(8))
    assert t.nodes == {0: (0, 1, 4, 5), 1: (2, 3, 6, 7)}
    assert t.siblings[1] == (1, 5) and t.core_of(6) == frozenset({2, 6})
    assert t.node_of(6) == 1 and t.notes == ()


def test_discover_without_numa_puts_everything_on_node_0(tmp_path):
    fake = FakeSys(tmp_path)
    fake.cpus([0, 1, 2])
    t = topo.discover(fake.root)
    assert t.nodes == {0: (0, 1, 2)} and "no NUMA nodes" in t.notes[0]


def test_discover_online_from_cpu_dirs_and_affinity(tmp_path):
    fake = FakeSys(tmp_path)
    fake.cpus([0, 1, 2, 3], write_online_file=False)
    fake.node(0, [0, 1, 2, 3])
    (tmp_path / "devices/system/cpu/cpu3/online").write_text("0\n")  # taken offline
    t = topo.discover(fake.root, allowed_cpus={0, 2, 3})
    assert t.online == (0, 2) and t.nodes == {0: (0, 2)}
    assert "outside this process's affinity" in t.notes[0]


def test_discover_reads_distances(tmp_path):
    fake = machine(tmp_path, nodes=2)
    fake.distances({0: [10, 21], 1: [21, 10]})
    assert topo.discover(fake.root).distances == {0: {0: 10, 1: 21}, 1: {0: 21, 1: 10}}


# -- NIC locality -------------------------------------------------------------
def test_nic_on_pci_device(tmp_path):
    fake = FakeSys(tmp_path)
    fake.nic("ens1f0", pci="0000:81:00.0", numa_node=1)
    loc = topo.nic_locality("ens1f0", fake.root)
    assert (loc.node, loc.pci, loc.note) == (1, "0000:81:00.0", None)
    assert topo.nic_locality("0000:81:00.0", fake.root).node == 1
    assert topo.nic_locality("81:00.0", fake.root).pci == "0000:81:00.0"


def test_nic_virtio_reads_the_pci_parent(tmp_path):
    fake = FakeSys(tmp_path)
    fake.nic("eth0", pci="0000:00:03.0", numa_node=1, virtio=True)
    loc = topo.nic_locality("eth0", fake.root)
    assert (loc.node, loc.pci) == (1, "0000:00:03.0")


@pytest.mark.parametrize("numa_node,reason", [(-1, "numa_node -1"), (None, "no NUMA node")])
def test_nic_without_affinity_is_node_0_with_a_note(tmp_path, numa_node, reason):
    fake = FakeSys(tmp_path)
    fake.nic("eth0", pci="0000:00:03.0", numa_node=numa_node)
    loc = topo.nic_locality("eth0", fake.root)
    assert loc.node == 0 and reason in loc.note


def test_virtual_and_missing_nics(tmp_path):
    fake = FakeSys(tmp_path)
    fake.nic("veth0")
    loc = topo.nic_locality("veth0", fake.root)
    assert loc.node == 0 and "virtual interface" in loc.note
    with pytest.raises(ConfigError, match="no network interface"):
        topo.nic_locality("nope0", fake.root)
    with pytest.raises(ConfigError, match="no PCI device 0000:02:00.0"):
        topo.nic_locality("0000:02:00.0", fake.root)


# -- plans: one node, 1/2/4/8 CPUs --------------------------------------------
def test_one_cpu_shares_it_and_says_so(tmp_path):
    p = plan(tmp_path, 1, nodes=[[0]])
    assert (p.rx_cores, p.worker_cores) == ((0,), (0,))
    assert any("share cpu 0" in w and "busy-polls" in w for w in p.warnings)
    assert any("RX lcore on cpu 0 shares it with the OS housekeeping" in w for w in p.warnings)


def test_two_cpus_rx_on_1_worker_on_0(tmp_path):
    p = plan(tmp_path, 1, nodes=[[0, 1]])
    assert (p.rx_cores, p.worker_cores, p.node) == ((1,), (0,), 0)
    assert p.warnings == ("worker on cpu 0 shares it with the OS housekeeping (interrupts, timers, system services)",)


def test_two_cpus_smt_siblings_say_they_share_a_core(tmp_path):
    p = plan(tmp_path, 2, nodes=1, cores_per_node=1, smt=True)
    assert (p.rx_cores, p.worker_cores) == ((1,), (0,))
    text = "\n".join(p.warnings)
    assert "asked for 2 RX queues" in text and "using 1" in text
    assert "SMT sibling of RX cpu 1" in text and "OS housekeeping" in text


def test_four_cpus_leave_cpu_0_alone_and_reduce_queues(tmp_path):
    p = plan(tmp_path, 2, nodes=1, cores_per_node=4)
    assert (p.rx_cores, p.worker_cores) == ((1,), (2,))
    assert 0 not in p.rx_cores + p.worker_cores
    assert p.warnings == ("asked for 2 RX queues; node 0 has 3 usable CPU(s) (each queue needs one for its RX "
                          "lcore and one for its worker): using 1",)


def test_eight_cpus_three_queues(tmp_path):
    p = plan(tmp_path, 3, nodes=1, cores_per_node=8)
    assert (p.rx_cores, p.worker_cores, p.warnings) == ((1, 2, 3), (4, 5, 6), ())


def test_eight_cpus_smt_rx_on_distinct_cores_workers_off_their_siblings(tmp_path):
    # 4 cores x 2 threads: siblings (0,4) (1,5) (2,6) (3,7).
    p = plan(tmp_path, 2, nodes=1, cores_per_node=4, smt=True)
    assert (p.rx_cores, p.worker_cores, p.warnings) == ((1, 2), (3, 4), ())


def test_eight_cpus_smt_no_choice_left_warns_siblings(tmp_path):
    p = plan(tmp_path, 4, nodes=1, cores_per_node=4, smt=True)
    # Forced onto siblings, workers 5 and 6 serve their own core's queue.
    assert (p.rx_cores, p.worker_cores) == ((1, 2, 3), (5, 6, 4))
    text = "\n".join(p.warnings)
    assert "using 3" in text
    assert "queue 0: worker cpu 5 is an SMT sibling of RX cpu 1" in text
    assert "queue 1: worker cpu 6 is an SMT sibling of RX cpu 2" in text
    assert "RX cpus" not in text  # RX lcores never share a core when cores remain


# -- plans: two and four nodes ------------------------------------------------
def test_two_nodes_port_on_node_1(tmp_path):
    p = plan(tmp_path, 2, port_node=1, nodes=2, cores_per_node=4)
    assert (p.rx_cores, p.worker_cores, p.node, p.warnings) == ((4, 5), (6, 7), 1, ())


def test_two_nodes_smt_port_on_node_1(tmp_path):
    # node 1 = cores 2,3 = cpus 2,3,6,7; siblings (2,6) (3,7).
    one = plan(tmp_path / "a", 1, port_node=1, nodes=2, cores_per_node=2, smt=True)
    assert (one.rx_cores, one.worker_cores, one.warnings) == ((2,), (3,), ())
    two = plan(tmp_path / "b", 2, port_node=1, nodes=2, cores_per_node=2, smt=True)
    assert (two.rx_cores, two.worker_cores) == ((2, 3), (6, 7))
    assert sum("SMT sibling" in w for w in two.warnings) == 2


def test_two_nodes_port_on_node_0_without_cpu_0(tmp_path):
    p = plan(tmp_path, 2, port_node=0, nodes=2, cores_per_node=4)
    assert (p.rx_cores, p.worker_cores, p.node) == ((1,), (2,), 0)
    assert "using 1" in p.warnings[0]


def test_remote_node_with_one_usable_cpu_puts_worker_on_nearest_node(tmp_path):
    fake = machine(tmp_path, nodes=4, cores_per_node=2)
    # Node 3 is nearer to node 0 than nodes 1 and 2 are.
    fake.distances({0: [10, 21, 31, 12], 1: [21, 10, 21, 31], 2: [31, 21, 10, 21], 3: [12, 31, 21, 10]})
    t = topo.discover(fake.root)
    p = topo.plan_cores(t, 0, 1)
    assert (p.rx_cores, p.worker_cores, p.node) == ((1,), (6,), 0)
    assert "worker on cpu 6 of node 3" in p.warnings[0]
    assert_runnable(p, t)


@pytest.mark.parametrize("smt", [False, True])
@pytest.mark.parametrize("port_node", [0, 1, 2, 3])
@pytest.mark.parametrize("queues", [1, 2, 4, 8])
def test_four_nodes_every_port_node_gets_a_local_runnable_plan(tmp_path, smt, port_node, queues):
    t = topo.discover(machine(tmp_path, nodes=4, cores_per_node=4, smt=smt).root)
    p = topo.plan_cores(t, port_node, queues)
    assert_runnable(p, t)
    assert p.node == port_node
    assert all(t.node_of(c) == port_node for c in p.rx_cores + p.worker_cores)
    assert 0 not in p.rx_cores + p.worker_cores
    assert p.queues <= queues
    assert (p.queues < queues) == any("using" in w for w in p.warnings)
    # Distinct physical cores for RX lcores; no worker on an RX sibling while a non-sibling sat idle.
    assert len({t.core_of(c) for c in p.rx_cores}) == p.queues
    rx_siblings = set().union(*(t.core_of(c) for c in p.rx_cores))
    idle = set(t.nodes[port_node]) - set(p.rx_cores) - set(p.worker_cores) - {0}
    if any(w in rx_siblings for w in p.worker_cores):
        assert idle <= rx_siblings


def test_port_on_memory_only_node_runs_on_the_nearest_node_with_cpus(tmp_path):
    fake = machine(tmp_path, nodes=[[0, 1, 2, 3], [], [4, 5, 6, 7]])
    fake.distances({0: [10, 21, 31], 1: [21, 10, 12], 2: [31, 12, 10]})
    t = topo.discover(fake.root)
    p = topo.plan_cores(t, 1, 2)
    assert (p.rx_cores, p.worker_cores, p.node, p.port_node) == ((4, 5), (6, 7), 2, 1)
    assert "node 1 has no usable CPU: RX lcores on node 2" in p.warnings[0]
    assert "(port on node 1)" in p.describe()


def test_port_on_unknown_node(tmp_path):
    p = plan(tmp_path, 1, port_node=7, nodes=2, cores_per_node=2)
    assert p.node == 0 and "not a NUMA node of this machine" in p.warnings[0]
    assert (p.rx_cores, p.worker_cores) == ((1,), (2,))  # node 0 has one usable CPU: worker borrowed


def test_plan_from_nic_locality_carries_its_note_on_numa_machines(tmp_path):
    fake = machine(tmp_path / "two", nodes=2, cores_per_node=4)
    fake.nic("eth0", pci="0000:00:03.0", numa_node=-1)
    loc = topo.nic_locality("eth0", fake.root)
    p = topo.plan_cores(topo.discover(fake.root), loc, 1)
    assert p.node == 0 and "numa_node -1" in p.warnings[0]
    single = machine(tmp_path / "one", nodes=1, cores_per_node=4)
    assert topo.plan_cores(topo.discover(single.root), loc, 1).warnings == ()


def test_describe_lists_queues_and_warnings(tmp_path):
    p = plan(tmp_path, 2, nodes=1, cores_per_node=2)
    assert p.describe().splitlines() == [
        "core plan: 1 RX queue(s) on node 0",
        "  queue 0: rx lcore cpu 1 -> worker cpu 0",
        "  warning: asked for 2 RX queues; node 0 has 2 usable CPU(s) (each queue needs one for its RX lcore "
        "and one for its worker): using 1",
        "  warning: worker on cpu 0 shares it with the OS housekeeping (interrupts, timers, system services)",
    ]


def test_bad_queue_count(tmp_path):
    with pytest.raises(ConfigError):
        plan(tmp_path, 0, nodes=1)


def test_plan_is_frozen(tmp_path):
    p = plan(tmp_path, 1, nodes=1)
    with pytest.raises(AttributeError):
        p.node = 3


def test_this_machine_gets_a_runnable_plan():
    import os

    t = topo.discover(allowed_cpus=os.sched_getaffinity(0))
    p = topo.plan_cores(t, next(iter(t.nodes)), 2)
    assert_runnable(p, t)
    assert p.describe().startswith("core plan:")
