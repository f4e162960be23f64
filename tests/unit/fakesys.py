"""Fake sysfs and procfs trees for unit tests (no root, no NUMA hardware).

FakeSys lays out the files the hugepages package and appliance.topology read;
FakeKernel stands in for the kernel's side of a write to nr_hugepages (grant
up to what the node can spare, turn busy pages into surplus on shrink);
FakeProc lays out /proc/mounts and /proc/<pid>/{maps,fd}.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from hugepages import sysfs as hp_sysfs

SIZES_KB = (2048, 1048576)
POOL_FILES = ("nr_hugepages", "free_hugepages", "surplus_hugepages")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n")


def _cpulist(cpus: Iterable[int]) -> str:
    from appliance.topology import format_cpulist

    return format_cpulist(cpus)


class FakeSys:
    """A fake /sys. Build a machine with `machine()` or piece by piece."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    # -- hugepages ---------------------------------------------------------
    def global_pool(self, size_kb: int) -> Path:
        return self.root / hp_sysfs.GLOBAL_DIR / f"hugepages-{size_kb}kB"

    def node_pool(self, node: int, size_kb: int) -> Path:
        return self.root / hp_sysfs.NODE_DIR / f"node{node}" / "hugepages" / f"hugepages-{size_kb}kB"

    def hugepage_sizes(self, sizes_kb: Iterable[int] = SIZES_KB) -> None:
        for size in sizes_kb:
            base = self.global_pool(size)
            for name in (*POOL_FILES, "resv_hugepages"):
                _write(base / name, "0")

    def set_pool(self, node: int | None, size_kb: int, total: int, free: int | None = None,
                 surplus: int = 0) -> None:
        """Set one pool's counts; node None sets the global (non-NUMA) pool."""
        base = self.global_pool(size_kb) if node is None else self.node_pool(node, size_kb)
        _write(base / "nr_hugepages", str(total))
        _write(base / "free_hugepages", str(total if free is None else free))
        _write(base / "surplus_hugepages", str(surplus))
        if node is not None:
            self.sum_globals()

    def set_reserved(self, size_kb: int, reserved: int) -> None:
        _write(self.global_pool(size_kb) / "resv_hugepages", str(reserved))

    def pool(self, node: int | None, size_kb: int) -> dict[str, int]:
        base = self.global_pool(size_kb) if node is None else self.node_pool(node, size_kb)
        return {name: int((base / name).read_text()) for name in POOL_FILES}

    def sum_globals(self) -> None:
        """Global counts = sum over nodes, as the kernel reports them."""
        node_dir = self.root / hp_sysfs.NODE_DIR
        for size_dir in (self.root / hp_sysfs.GLOBAL_DIR).iterdir():
            for name in POOL_FILES:
                total = sum(int(p.read_text()) for p in node_dir.glob(f"node*/hugepages/{size_dir.name}/{name}"))
                _write(size_dir / name, str(total))

    # -- CPUs and nodes ----------------------------------------------------
    def cpus(self, online: Iterable[int], siblings: dict[int, Iterable[int]] | None = None,
             write_online_file: bool = True) -> None:
        online = sorted(online)
        cpu_dir = self.root / "devices/system/cpu"
        if write_online_file:
            _write(cpu_dir / "online", _cpulist(online))
        for cpu in online:
            sib = sorted((siblings or {}).get(cpu, (cpu,)))
            _write(cpu_dir / f"cpu{cpu}/topology/thread_siblings_list", _cpulist(sib))
            if cpu != 0:
                _write(cpu_dir / f"cpu{cpu}/online", "1")

    def node(self, node: int, cpus: Iterable[int], sizes_kb: Iterable[int] = SIZES_KB) -> None:
        base = self.root / hp_sysfs.NODE_DIR / f"node{node}"
        _write(base / "cpulist", _cpulist(cpus))
        for size in sizes_kb:
            for name in POOL_FILES:
                _write(self.node_pool(node, size) / name, "0")

    def distances(self, table: dict[int, list[int]]) -> None:
        for node, row in table.items():
            _write(self.root / hp_sysfs.NODE_DIR / f"node{node}" / "distance", " ".join(map(str, row)))

    # -- NICs --------------------------------------------------------------
    def pci_device(self, addr: str, numa_node: int | None) -> Path:
        device = self.root / "devices" / f"pci{addr[:7]}" / addr
        device.mkdir(parents=True, exist_ok=True)
        if numa_node is not None:
            _write(device / "numa_node", str(numa_node))
        link = self.root / "bus/pci/devices" / addr
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(device, link.parent))
        return device

    def nic(self, name: str, *, pci: str | None = None, numa_node: int | None = None,
            virtio: bool = False) -> None:
        """An interface; with `pci` a device link (through a virtioN child when
        `virtio`, as virtio-net does), without it a virtual interface."""
        iface = self.root / "class/net" / name
        iface.mkdir(parents=True, exist_ok=True)
        if pci is None:
            return
        device = self.pci_device(pci, numa_node)
        if virtio:
            device = device / "virtio0"
            device.mkdir(exist_ok=True)
        (iface / "device").symlink_to(os.path.relpath(device, iface))


def machine(root: Path, nodes: list[list[int]] | int = 1, cores_per_node: int = 2, smt: bool = False,
            sizes_kb: Iterable[int] = SIZES_KB) -> FakeSys:
    """A machine numbered like Linux on x86: physical cores node-major, and
    with SMT the second threads numbered after all first threads (cpu c and
    c + cores are siblings). `nodes` as a list gives each node's CPUs as is
    (no SMT), e.g. [[0, 1], []] for a memory-only node 1."""
    fake = FakeSys(root)
    fake.hugepage_sizes(sizes_kb)
    if isinstance(nodes, list):
        for node, cpus in enumerate(nodes):
            fake.node(node, cpus, sizes_kb)
        fake.cpus([c for cpus in nodes for c in cpus])
        return fake
    cores = nodes * cores_per_node
    threads = 2 if smt else 1
    siblings = {core + t * cores: [core + u * cores for u in range(threads)]
                for core in range(cores) for t in range(threads)}
    for node in range(nodes):
        node_cores = range(node * cores_per_node, (node + 1) * cores_per_node)
        fake.node(node, [c + t * cores for c in node_cores for t in range(threads)], sizes_kb)
    fake.cpus(siblings, siblings)
    return fake


class FakeKernel:
    """Answers writes to nr_hugepages under a FakeSys like the kernel would.

    `capacity[node][size_kb]` is how many more pages the node can allocate
    (default: unlimited). Install with `install(monkeypatch)`.
    """

    def __init__(self, fake: FakeSys, capacity: dict[int, dict[int, int]] | None = None):
        self.fake = fake
        self.capacity = capacity or {}
        self.writes: list[tuple[Path, int]] = []

    def install(self, monkeypatch) -> FakeKernel:
        monkeypatch.setattr(hp_sysfs, "write_count", self.write_count)
        return self

    def write_count(self, path: Path, value: int) -> None:
        path = Path(path)
        self.writes.append((path, int(value)))
        base = path.parent
        size_kb = int(base.name.removeprefix("hugepages-").removesuffix("kB"))
        node = int(base.parent.parent.name[4:]) if base.parent.name == "hugepages" else 0
        nr, free, _ = (int((base / n).read_text()) for n in POOL_FILES)
        if value >= nr:
            room = self.capacity.get(node, {}).get(size_kb, 1 << 40)
            grant = min(value - nr, room)
            self.capacity.setdefault(node, {})[size_kb] = room - grant
            nr, free = nr + grant, free + grant
        else:
            freed = min(free, nr - value)
            nr, free = nr - freed, free - freed
            if node in self.capacity and size_kb in self.capacity[node]:
                self.capacity[node][size_kb] += freed
        surplus = max(0, nr - value)  # busy pages past the target become surplus
        for name, count in zip(POOL_FILES, (nr, free, surplus)):
            _write(base / name, str(count))
        if base.parent.name == "hugepages":
            self.fake.sum_globals()


class FakeProc:
    """A fake /proc: mounts, meminfo, and processes with maps and fds."""

    def __init__(self, root: Path, hugepagesize_kb: int = 2048):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.mount_lines: list[str] = ["proc /proc proc rw,relatime 0 0", "sysfs /sys sysfs rw,relatime 0 0"]
        _write(self.root / "meminfo", f"MemTotal: 1000000 kB\nHugepagesize:    {hugepagesize_kb} kB")
        self._flush()

    def _flush(self) -> None:
        _write(self.root / "mounts", "\n".join(self.mount_lines))

    def add_mount(self, path: str | Path, fstype: str = "hugetlbfs", options: str = "rw,relatime,pagesize=2M",
                  source: str = "hugetlbfs") -> None:
        escaped = str(path).replace("\\", "\\134").replace(" ", "\\040")
        self.mount_lines.append(f"{source} {escaped} {fstype} {options} 0 0")
        self._flush()

    def remove_mount(self, path: str | Path) -> None:
        self.mount_lines = [line for line in self.mount_lines if line.split()[1] != str(path)]
        self._flush()

    def process(self, pid: int, *, maps: Iterable[str | Path] = (), fds: Iterable[str | Path] = (),
                deleted: bool = False) -> Path:
        """Process `pid` mapping `maps` and holding `fds` open (by path)."""
        pid_dir = self.root / str(pid)
        lines = ["55d0c0000000-55d0c0001000 r-xp 00000000 fd:01 1234 /usr/bin/python3"]
        for i, path in enumerate(maps):
            st = os.stat(path)
            start = 0x7F0000000000 + i * 0x200000
            suffix = " (deleted)" if deleted else ""
            lines.append(f"{start:x}-{start + 0x200000:x} rw-s 00000000 "
                         f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x} {st.st_ino}"
                         f"                      {path}{suffix}")
        lines.append("7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]")
        _write(pid_dir / "maps", "\n".join(lines))
        fd_dir = pid_dir / "fd"
        fd_dir.mkdir(exist_ok=True)
        (fd_dir / "0").symlink_to("/dev/null")
        for n, path in enumerate(fds, start=3):
            (fd_dir / str(n)).symlink_to(path)
        return pid_dir
