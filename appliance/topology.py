"""CPU and NUMA topology from sysfs, and the plan that pins RX lcores and
worker processes to cores.

The RX loop of each queue busy-polls its core and writes batches into
memory on its node, so it runs on the NIC's node; its worker reads those
batches once, so it sits on another core of the same node. CPU 0 takes the
kernel's housekeeping (timers, unpinned IRQs, system services) and is left
alone when there are more than two CPUs. The sysfs root is a parameter so
plans are tested against fake trees.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from appliance.errors import ConfigError
from appliance.ports import PCI_ADDR

SYSFS_ROOT = "/sys"
HOUSEKEEPING_CPU = 0
_NODE_NAME = re.compile(r"^node(\d+)$")
_CPU_NAME = re.compile(r"^cpu(\d+)$")


def parse_cpulist(text: str) -> tuple[int, ...]:
    """'0-3,8,10-11' -> (0, 1, 2, 3, 8, 10, 11); '' -> () (a node without CPUs)."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return tuple(sorted(cpus))


def format_cpulist(cpus: Iterable[int]) -> str:
    """(0, 1, 2, 5) -> '0-2,5'."""
    runs: list[list[int]] = []
    for cpu in sorted(set(cpus)):
        if runs and cpu == runs[-1][1] + 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


@dataclass(frozen=True)
class Topology:
    online: tuple[int, ...]                  # usable CPUs (online, and allowed when a set was given)
    nodes: dict[int, tuple[int, ...]]        # node -> its usable CPUs (() for a memory-only node)
    siblings: dict[int, tuple[int, ...]]     # cpu -> SMT threads of its core, itself included
    distances: dict[int, dict[int, int]] = field(default_factory=dict)  # node -> {node: distance}
    notes: tuple[str, ...] = ()

    def node_of(self, cpu: int) -> int | None:
        return next((n for n, cpus in self.nodes.items() if cpu in cpus), None)

    def core_of(self, cpu: int) -> frozenset[int]:
        """The CPUs sharing `cpu`'s physical core."""
        return frozenset(self.siblings.get(cpu, (cpu,)))

    def nearest_nodes(self, node: int) -> list[int]:
        """Other nodes, nearest first (by the firmware's distance table, else by id)."""
        table = self.distances.get(node, {})
        others = [n for n in self.nodes if n != node]
        return sorted(others, key=lambda n: (table.get(n, 1 << 30), n))


def _online_cpus(root: Path, notes: list[str]) -> tuple[int, ...]:
    text = _read(root / "devices/system/cpu/online")
    if text is not None:
        return parse_cpulist(text)
    cpu_dir = root / "devices/system/cpu"
    if cpu_dir.is_dir():
        found = []
        for entry in cpu_dir.iterdir():
            match = _CPU_NAME.match(entry.name)
            # cpu0 usually has no 'online' file: it cannot be taken offline.
            if match and _read(entry / "online") in (None, "1"):
                found.append(int(match.group(1)))
        if found:
            return tuple(sorted(found))
    import psutil

    count = psutil.cpu_count(logical=True) or 1
    notes.append(f"no CPU list in {cpu_dir}: assuming CPUs 0-{count - 1} (psutil)")
    return tuple(range(count))


def discover(sysfs_root: str | Path = SYSFS_ROOT, *, allowed_cpus: Iterable[int] | None = None) -> Topology:
    """Read CPUs, NUMA nodes, SMT siblings and node distances.

    `allowed_cpus` (e.g. os.sched_getaffinity(0)) limits the plan to the CPUs
    this process may run on: a cpuset or systemd CPUAffinity= is honoured.
    """
    root = Path(sysfs_root)
    notes: list[str] = []
    online = _online_cpus(root, notes)
    if allowed_cpus is not None:
        allowed = set(allowed_cpus)
        left_out = [c for c in online if c not in allowed]
        online = tuple(c for c in online if c in allowed)
        if left_out:
            notes.append(f"CPUs {format_cpulist(left_out)} are outside this process's affinity: not used")

    nodes: dict[int, tuple[int, ...]] = {}
    node_dir = root / "devices/system/node"
    if node_dir.is_dir():
        for entry in sorted(node_dir.iterdir(), key=lambda e: e.name):
            match = _NODE_NAME.match(entry.name)
            if match:
                cpus = parse_cpulist(_read(entry / "cpulist") or "")
                nodes[int(match.group(1))] = tuple(c for c in cpus if c in online)
    nodes = dict(sorted(nodes.items()))
    if not nodes:
        notes.append("no NUMA nodes in sysfs: all CPUs taken as node 0")
        nodes = {0: online}
    homeless = [c for c in online if not any(c in cpus for cpus in nodes.values())]
    if homeless:
        notes.append(f"CPUs {format_cpulist(homeless)} belong to no node: taken as node 0")
        nodes[0] = tuple(sorted(nodes.get(0, ()) + tuple(homeless)))

    siblings = {}
    for cpu in online:
        text = _read(root / f"devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        siblings[cpu] = parse_cpulist(text) if text else (cpu,)

    distances: dict[int, dict[int, int]] = {}
    ids = sorted(nodes)
    for node in ids:
        row = (_read(node_dir / f"node{node}" / "distance") or "").split()
        if len(row) == len(ids):
            distances[node] = dict(zip(ids, map(int, row)))
    return Topology(online, nodes, siblings, distances, tuple(notes))


@dataclass(frozen=True)
class NicLocality:
    name: str               # interface name or PCI address, as given
    node: int               # node to plan for (0 when the kernel does not say)
    pci: str | None         # PCI address when known
    note: str | None        # why `node` is a guess


def _full_pci(addr: str) -> str:
    return addr.lower() if addr.count(":") == 2 else f"0000:{addr.lower()}"


def _node_value(text: str | None, what: str) -> tuple[int, str | None]:
    if text is None:
        return 0, f"{what}: the kernel gives no NUMA node; assuming node 0"
    node = int(text)
    if node < 0:
        return 0, f"{what}: the firmware gives no NUMA affinity (numa_node {node}); assuming node 0"
    return node, None


def nic_locality(nic: str, sysfs_root: str | Path = SYSFS_ROOT) -> NicLocality:
    """The NUMA node of a NIC given by interface name or PCI address."""
    root = Path(sysfs_root)
    if PCI_ADDR.match(nic):
        pci = _full_pci(nic)
        device = root / "bus/pci/devices" / pci
        if not device.exists():
            raise ConfigError(f"no PCI device {pci} (in {device.parent})")
        node, note = _node_value(_read(device / "numa_node"), f"PCI device {pci}")
        return NicLocality(nic, node, pci, note)
    iface = root / "class/net" / nic
    if not iface.exists():
        raise ConfigError(f"no network interface {nic!r}")
    device = iface / "device"
    if not device.exists():
        return NicLocality(nic, 0, None, f"{nic} is a virtual interface (no device): assuming node 0")
    # virtio and some other NICs hang off a PCI function: numa_node is on a parent.
    path = device.resolve()
    stop = (root / "devices").resolve()
    pci = None
    while path != stop and stop in path.parents:
        if pci is None and PCI_ADDR.match(path.name):
            pci = path.name
        if (path / "numa_node").exists():
            node, note = _node_value(_read(path / "numa_node"), nic)
            return NicLocality(nic, node, pci, note)
        path = path.parent
    node, note = _node_value(None, nic)
    return NicLocality(nic, node, pci, note)


@dataclass(frozen=True)
class CorePlan:
    """Where each RX queue's lcore and its worker process run.

    Queue i is polled on rx_cores[i] and drained by the worker on
    worker_cores[i]. `node` is the node whose CPUs run the RX lcores (the
    port's node unless that one has no usable CPU).
    """

    rx_cores: tuple[int, ...]
    worker_cores: tuple[int, ...]
    node: int
    warnings: tuple[str, ...]
    port_node: int
    queues_requested: int

    @property
    def queues(self) -> int:
        return len(self.rx_cores)

    def describe(self) -> str:
        """Lines for the start-up log."""
        head = f"core plan: {self.queues} RX queue(s) on node {self.node}"
        if self.node != self.port_node:
            head += f" (port on node {self.port_node})"
        lines = [head]
        lines += [f"  queue {q}: rx lcore cpu {rx} -> worker cpu {w}"
                  for q, (rx, w) in enumerate(zip(self.rx_cores, self.worker_cores))]
        lines += [f"  warning: {text}" for text in self.warnings]
        return "\n".join(lines)


def _pick_rx(local: list[int], count: int, topo: Topology) -> list[int]:
    """RX lcores: one per physical core while there are enough cores (two
    busy-polling loops on SMT siblings halve each other), preferring cores
    away from the housekeeping CPU."""
    housekeeping_core = topo.core_of(HOUSEKEEPING_CPU)
    ranked = sorted(local, key=lambda c: (c == HOUSEKEEPING_CPU, c in housekeeping_core, c))
    chosen: list[int] = []
    used_cores: set[frozenset[int]] = set()
    for cpu in ranked:
        if len(chosen) < count and topo.core_of(cpu) not in used_cores:
            chosen.append(cpu)
            used_cores.add(topo.core_of(cpu))
    chosen += [c for c in ranked if c not in chosen][:count - len(chosen)]
    return chosen


def _pick_workers(free: list[int], count: int, rx: list[int], topo: Topology) -> list[int]:
    """Workers: CPUs that are not an SMT sibling of an RX lcore first. A worker
    that must take a sibling serves that core's own queue: the two then at
    least share the cache the batches pass through."""
    rx_siblings = set().union(*(topo.core_of(c) for c in rx))
    chosen = sorted(free, key=lambda c: (c in rx_siblings, c == HOUSEKEEPING_CPU, c))[:count]
    by_queue: list[int | None] = [None] * len(rx)
    for worker in chosen:
        queue = next((q for q, r in enumerate(rx) if worker in topo.core_of(r) and by_queue[q] is None), None)
        if queue is not None:
            by_queue[queue] = worker
    rest = iter(w for w in chosen if w not in by_queue)
    return [w if w is not None else next(rest) for w in by_queue]


def _sharing_warnings(rx: list[int], workers: list[int], topo: Topology, housekeeping_in_pool: bool) -> list[str]:
    """Say plainly what the plan shares, so a loss at high rate has an explanation."""
    out = []
    for queue, (r, w) in enumerate(zip(rx, workers)):
        if r == w:
            out.append(f"queue {queue}: RX lcore and worker share cpu {r}; the RX loop busy-polls, so the "
                       "worker runs only when the scheduler takes the CPU from it: expect drops at high rates")
        elif w in topo.core_of(r):
            out.append(f"queue {queue}: worker cpu {w} is an SMT sibling of RX cpu {r}: they share one core")
    for i, a in enumerate(rx):
        for b in rx[i + 1:]:
            if a != b and b in topo.core_of(a):
                out.append(f"RX cpus {a} and {b} are SMT siblings: two busy-polling loops share one core")
    if housekeeping_in_pool and HOUSEKEEPING_CPU in workers and HOUSEKEEPING_CPU not in rx:
        out.append(f"worker on cpu {HOUSEKEEPING_CPU} shares it with the OS housekeeping "
                   "(interrupts, timers, system services)")
    if housekeeping_in_pool and HOUSEKEEPING_CPU in rx:
        out.append(f"RX lcore on cpu {HOUSEKEEPING_CPU} shares it with the OS housekeeping "
                   "(interrupts, timers, system services)")
    return out


def plan_cores(topology: Topology, port_node: int | NicLocality, rx_queues: int) -> CorePlan:
    """Plan RX lcores and workers for a port on `port_node` with `rx_queues` queues.

    Always returns a runnable plan: fewer queues than asked when the node
    lacks cores, another node when the port's node has no usable CPU, shared
    CPUs on a one- or two-CPU machine; each compromise is a warning.
    """
    if rx_queues < 1:
        raise ConfigError(f"rx_queues {rx_queues}: must be 1 or more")
    if not topology.online:
        raise ConfigError("no usable CPU: the CPU list is empty")
    warnings: list[str] = list(topology.notes)
    if isinstance(port_node, NicLocality):
        # With one node a missing NUMA affinity changes nothing: no warning.
        if port_node.note and len(topology.nodes) > 1:
            warnings.append(port_node.note)
        port_node = port_node.node

    # More than two CPUs: keep the housekeeping CPU out of the plan entirely.
    spare_housekeeping = len(topology.online) > 2
    usable = [c for c in topology.online if not (spare_housekeeping and c == HOUSEKEEPING_CPU)]
    node = port_node
    local = [c for c in topology.nodes.get(node, ()) if c in usable]
    if not local:
        why = "has no usable CPU" if node in topology.nodes else "is not a NUMA node of this machine"
        node = next(n for n in [*topology.nearest_nodes(port_node), *topology.nodes]
                    if any(c in usable for c in topology.nodes[n]))
        local = [c for c in topology.nodes[node] if c in usable]
        warnings.append(f"the port's node {port_node} {why}: RX lcores on node {node}, so every packet "
                        "crosses the interconnect")

    if len(local) >= 2:
        count = min(rx_queues, len(local) // 2)
        rx = _pick_rx(local, count, topology)
        workers = _pick_workers([c for c in local if c not in rx], count, rx, topology)
    else:
        count = 1
        rx = local[:1]
        remote = [c for n in topology.nearest_nodes(node) for c in topology.nodes[n] if c in usable]
        workers = remote[:1] or rx
        if remote:
            warnings.append(f"node {node} has one usable CPU: worker on cpu {workers[0]} of node "
                            f"{topology.node_of(workers[0])} reads the ring across the interconnect")
    if count < rx_queues:
        warnings.append(f"asked for {rx_queues} RX queues; node {node} has {len(local)} usable CPU(s) "
                        f"(each queue needs one for its RX lcore and one for its worker): using {count}")
    warnings += _sharing_warnings(rx, workers, topology, not spare_housekeeping)
    return CorePlan(tuple(rx), tuple(workers), node, tuple(warnings), port_node, rx_queues)
