"""The XDP program (ebpf/xdp_syslog.c) seen from Python: compile and load it
with bcc, fill its maps from the config, attach it to one interface, read its
per-CPU counters, detach it.

    with XdpProgram("veth0", [514]) as prog:      # native mode when the driver can
        fd = prog.xsks_map_fd                      # for the AF_XDP sockets (dpdk_shim._xsk)
        ...
        prog.counters()                            # once per stats interval, not per packet

Per-source budgets (issue 12; `budget=` a config.BudgetConfig, XdpProgram
.set_budget() at run time): the program drops a source's syslog datagrams
over its budget at the NIC, GCRA as in dpdk_shim/src/senders.h;
`throttled_sources()` names the sources it throttled.

Attaching goes through libbpf (bpf_xdp_attach, loaded with ctypes) so every
failure carries its errno, and always with XDP_FLAGS_UPDATE_IF_NOEXIST: a
program already on the interface is never replaced by accident. A program
of ours left behind by a run that crashed is detached first (and said so in
`replaced`); anyone else's program is left alone and the attach refused
(XdpError, EBUSY). Attached programs get close() and a context manager,
never the garbage collector.

"Ours" does not need CAP_SYS_ADMIN: a service holding only the capabilities
appliance/probe.py names cannot open a program by its id, so it cannot read
the name of what is attached. It knows its own program's id from its own
fd, and writes it into the interface's lock file; a program attached under
a free lock (its holder died) whose id the lock file records is ours. With
CAP_SYS_ADMIN the name (PROG_NAME) tells as well.

Whether this process may load and attach XDP at all is appliance/probe.py's
to say (check_privileges asks it).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import ipaddress
import logging
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from appliance import paths, probe
from appliance.config import MAX_BUDGET_OVERRIDES, MAX_UDP_PORTS, BudgetConfig, budget_burst
from appliance.errors import ENVIRONMENT, LogCasterError

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("xdp_syslog.c")
PROG_NAME = "lc_xdp_syslog"          # the function in xdp_syslog.c; how we recognise our program
COUNTERS = ("seen", "redirected", "passed", "redirect_failed", "denied", "frag_passed", "throttled")
MAX_PORTS = MAX_UDP_PORTS            # entries of the ports map: capture.udp_ports at most
DENY_MAX = 1024                      # prefixes per address family
MIN_XSKS = 64                        # XSKMAP entries at least (index = RX queue)
BUDGET_OFF_MAX = 8                   # entries of the budget map when loaded with budgets off
MODES = ("auto", "native", "generic")
_CFG_DENY_ENABLED = 0
_CFG_BUDGET_ENABLED = 1

# linux/if_link.h
XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_HW_MODE = 1 << 3
_MODE_FLAGS = {"native": XDP_FLAGS_DRV_MODE, "generic": XDP_FLAGS_SKB_MODE, "offload": XDP_FLAGS_HW_MODE}


class XdpError(LogCasterError):
    """Loading, attaching or detaching the XDP program failed."""


# ---- libbpf through ctypes: attach/detach/query with errno ------------------------

class _AttachOpts(ctypes.Structure):          # struct bpf_xdp_attach_opts
    _fields_ = [("sz", ctypes.c_size_t), ("old_prog_fd", ctypes.c_int), ("_pad", ctypes.c_int)]


class _ProgInfo(ctypes.Structure):            # the head of struct bpf_prog_info, up to `name`
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("tag", ctypes.c_uint8 * 8),
                ("jited_prog_len", ctypes.c_uint32), ("xlated_prog_len", ctypes.c_uint32),
                ("jited_prog_insns", ctypes.c_uint64), ("xlated_prog_insns", ctypes.c_uint64),
                ("load_time", ctypes.c_uint64), ("created_by_uid", ctypes.c_uint32),
                ("nr_map_ids", ctypes.c_uint32), ("map_ids", ctypes.c_uint64), ("name", ctypes.c_char * 16)]


class TestRunOpts(ctypes.Structure):          # struct bpf_test_run_opts (libbpf 1.x)
    _fields_ = [("sz", ctypes.c_size_t), ("data_in", ctypes.c_void_p), ("data_out", ctypes.c_void_p),
                ("data_size_in", ctypes.c_uint32), ("data_size_out", ctypes.c_uint32),
                ("ctx_in", ctypes.c_void_p), ("ctx_out", ctypes.c_void_p),
                ("ctx_size_in", ctypes.c_uint32), ("ctx_size_out", ctypes.c_uint32),
                ("retval", ctypes.c_uint32), ("repeat", ctypes.c_int), ("duration", ctypes.c_uint32),
                ("flags", ctypes.c_uint32), ("cpu", ctypes.c_uint32), ("batch_size", ctypes.c_uint32)]


_libbpf = None


def libbpf() -> ctypes.CDLL:
    """libbpf.so.1 (its functions return -errno)."""
    global _libbpf
    if _libbpf is None:
        try:
            lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
        except OSError as exc:
            raise XdpError(f"libbpf is not installed ({exc}): apt-get install libbpf1 / run `make setup`") from None
        lib.bpf_xdp_attach.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_uint32, ctypes.POINTER(_AttachOpts)]
        lib.bpf_xdp_detach.argtypes = [ctypes.c_int, ctypes.c_uint32, ctypes.POINTER(_AttachOpts)]
        lib.bpf_xdp_query_id.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_uint32)]
        lib.bpf_prog_get_fd_by_id.argtypes = [ctypes.c_uint32]
        lib.bpf_obj_get_info_by_fd.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)]
        lib.bpf_prog_test_run_opts.argtypes = [ctypes.c_int, ctypes.POINTER(TestRunOpts)]
        lib.bpf_map_lookup_batch.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                             ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32), ctypes.c_void_p]
        _libbpf = lib
    return _libbpf


@dataclass(frozen=True)
class Attached:
    """An XDP program attached to an interface. `name` is None when this
    process may not look it up (no CAP_SYS_ADMIN), '' when it is gone."""

    prog_id: int
    name: str | None
    mode: str                     # native | generic | offload

    def shown(self) -> str:
        return repr(self.name) if self.name else "?"


def prog_info(fd: int) -> _ProgInfo:
    """The head of bpf_prog_info of a program fd (our own needs no privilege)."""
    info = _ProgInfo()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    rc = libbpf().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size))
    if rc < 0:
        raise XdpError(f"reading the info of BPF program fd {fd}", errno=-rc)
    return info


def prog_name(prog_id: int) -> str | None:
    """The name of a loaded BPF program: '' if it is gone, None if this
    process may not open programs by id (that needs CAP_SYS_ADMIN)."""
    fd = libbpf().bpf_prog_get_fd_by_id(prog_id)
    if fd < 0:
        return None if -fd in (errno.EPERM, errno.EACCES) else ""
    try:
        return prog_info(fd).name.decode(errors="replace")
    except XdpError:
        return ""
    finally:
        os.close(fd)


def attached_programs(ifindex: int) -> list[Attached]:
    """XDP programs attached to an interface, one per attach mode in use."""
    lib = libbpf()
    out = []
    for mode, flag in _MODE_FLAGS.items():
        pid = ctypes.c_uint32(0)
        rc = lib.bpf_xdp_query_id(ifindex, flag, ctypes.byref(pid))
        if rc < 0:
            raise XdpError(f"querying the XDP program of interface {ifindex}", errno=-rc)
        if pid.value:
            out.append(Attached(pid.value, prog_name(pid.value), mode))
    return out


def detach(ifindex: int, prog: Attached, fd: int | None = None) -> None:
    """Detach `prog` if it is still the one attached: XDP_FLAGS_REPLACE with
    its fd (ours, or opened by id), so a program attached meanwhile by
    someone else stays. Without CAP_SYS_ADMIN a stale program of ours cannot
    be opened by id: it is detached by mode right after its id was checked."""
    lib = libbpf()
    own = fd is not None
    if fd is None:
        fd = lib.bpf_prog_get_fd_by_id(prog.prog_id)
        if fd < 0 and -fd not in (errno.EPERM, errno.EACCES):
            return                              # gone already
    try:
        opts = ctypes.byref(_AttachOpts(ctypes.sizeof(_AttachOpts), fd, 0)) if fd >= 0 else None
        rc = lib.bpf_xdp_detach(ifindex, _MODE_FLAGS[prog.mode], opts)
        if rc < 0 and -rc not in (errno.ENODEV, errno.EEXIST):
            raise XdpError(f"detaching XDP program {prog.shown()} (id {prog.prog_id}, {prog.mode})", errno=-rc)
    finally:
        if fd >= 0 and not own:
            os.close(fd)


def test_run(prog_fd: int, frame: bytes) -> int:
    """Run the program once over `frame` (BPF_PROG_TEST_RUN); the XDP action."""
    return test_run_repeat(prog_fd, frame, 1)[0]


def test_run_repeat(prog_fd: int, frame: bytes, repeat: int) -> tuple[int, int]:
    """Run the program `repeat` times over `frame` in the kernel
    (BPF_PROG_TEST_RUN, bpf_test_run_opts.repeat): (the XDP action of the
    last run, the kernel's average duration per run in ns)."""
    buf = ctypes.create_string_buffer(bytes(frame), len(frame))
    out = ctypes.create_string_buffer(len(frame) + 256)
    opts = TestRunOpts(sz=ctypes.sizeof(TestRunOpts), data_in=ctypes.cast(buf, ctypes.c_void_p),
                       data_out=ctypes.cast(out, ctypes.c_void_p), data_size_in=len(frame),
                       data_size_out=len(out), repeat=repeat)
    rc = libbpf().bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts))
    if rc < 0:
        raise XdpError("BPF_PROG_TEST_RUN", errno=-rc)
    return opts.retval, opts.duration


# ---- privileges -------------------------------------------------------------------

def check_privileges(what: str = "loading an XDP program", host: probe.Host | None = None) -> None:
    """What XDP needs here (appliance/probe.py), else XdpError (EPERM when a
    capability is missing), category ENVIRONMENT: the fix is the machine's."""
    host = host or probe.probe()
    missing = host.xdp_missing()
    if missing:
        caps = any(m.what.startswith("CAP_") for m in missing)
        raise XdpError(f"{what}: " + "; ".join(str(m) for m in missing),
                       errno=errno.EPERM if caps else errno.ENOENT, category=ENVIRONMENT)


def ifindex_of(ifname: str) -> int:
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        raise XdpError(f"interface {ifname}: no such interface (in this network namespace)",
                       errno=errno.ENODEV) from None


def rx_queue_count(ifname: str) -> int:
    """RX queues of an interface (sysfs of the current network namespace)."""
    try:
        return sum(1 for e in os.listdir(f"/sys/class/net/{ifname}/queues") if e.startswith("rx-"))
    except OSError:
        return 1


# ---- the program ---------------------------------------------------------------------

def _deny_networks(deny: Iterable[str]) -> tuple[list, list]:
    v4, v6 = [], []
    for text in deny:
        try:
            net = ipaddress.ip_network(str(text), strict=False)
        except ValueError as exc:
            raise XdpError(f"deny list: {text!r} is not an IP prefix ({exc})", errno=errno.EINVAL) from None
        (v4 if net.version == 4 else v6).append(net)
    if len(v4) > DENY_MAX or len(v6) > DENY_MAX:
        raise XdpError(f"deny list: at most {DENY_MAX} prefixes per address family", errno=errno.EINVAL)
    return v4, v6


def compile_program(udp_ports: Iterable[int], *, deny: Iterable[str] = (), max_queues: int = MIN_XSKS,
                    budget: BudgetConfig | None = None):
    """Compile and load xdp_syslog.c with bcc and fill its maps; returns
    (bpf, function). Not attached anywhere (see XdpProgram). The budget map
    holds budget.table_size sources when the budget is enabled, else
    BUDGET_OFF_MAX (budgets cannot be turned on later in that program)."""
    ports = list(dict.fromkeys(int(p) for p in udp_ports))
    if not ports:
        raise XdpError("no UDP port to redirect: give at least one (e.g. 514)", errno=errno.EINVAL)
    if len(ports) > MAX_PORTS or not all(1 <= p <= 65535 for p in ports):
        raise XdpError(f"UDP ports {ports}: 1 to {MAX_PORTS} ports from 1 to 65535", errno=errno.EINVAL)
    v4, v6 = _deny_networks(deny)
    budget_max = budget.table_size if budget is not None and budget.enabled else BUDGET_OFF_MAX
    check_privileges()
    probe.raise_memlock()
    from bcc import BPF
    cflags = [f"-DLC_MAX_QUEUES={max(MIN_XSKS, max_queues)}", f"-DLC_MAX_PORTS={MAX_PORTS}",
              f"-DLC_DENY_MAX={DENY_MAX}", f"-DLC_BUDGET_MAX={budget_max}",
              f"-DLC_BUDGET_OVERRIDES_MAX={MAX_BUDGET_OVERRIDES}", "-Wno-unused-function"]
    try:
        bpf = BPF(src_file=str(SOURCE).encode(), cflags=cflags)
    except Exception as exc:  # bcc raises bare Exception
        raise XdpError(f"compiling {SOURCE.name} with bcc failed ({exc}); if bcc complained about kernel "
                       f"headers: apt-get install linux-headers-{os.uname().release} / run `make setup`") from None
    try:
        fn = bpf.load_func(PROG_NAME.encode(), BPF.XDP)
    except Exception as exc:
        text = str(exc)
        refused = "Operation not permitted" in text or "Permission denied" in text
        bpf.cleanup()
        raise XdpError(f"loading {PROG_NAME} into the kernel failed ({text})", errno=errno.EPERM if refused else None,
                       category=ENVIRONMENT if refused else None) from None
    try:
        set_ports(bpf, ports)
        set_deny(bpf, v4, v6)
        set_budget(bpf, budget or BudgetConfig())
    except BaseException:
        bpf.cleanup()
        raise
    return bpf, fn


def set_ports(bpf, ports: list[int], old: Iterable[int] = ()) -> None:
    table = bpf[b"ports"]
    for p in old:
        table[table.Key(p)] = table.Leaf(0)
    for i, p in enumerate(ports):
        table[table.Key(p)] = table.Leaf(i + 1)


def set_deny(bpf, v4: list, v6: list) -> None:
    """Replace the deny list (prefixes of ipaddress networks); off when empty."""
    for name, nets, width in (("deny_v4", v4, 4), ("deny_v6", v6, 16)):
        table = bpf[name.encode()]
        table.clear()
        for net in nets:
            key = table.Key()
            key.prefixlen = net.prefixlen
            key.addr = (ctypes.c_ubyte * width)(*net.network_address.packed)
            table[key] = table.Leaf(1)
    cfg = bpf[b"config"]
    cfg[cfg.Key(_CFG_DENY_ENABLED)] = cfg.Leaf(1 if (v4 or v6) else 0)


def _budget_prefix(table, text: str):
    """An override prefix as budget_overrides keys it: 128 bits of the
    16-byte source address, IPv4 /n as ::ffff:a.b.c.d/(96 + n) (the same
    key as struct lc_budget_override, appliance/live.py)."""
    from appliance.live import addr16

    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise XdpError(f"budget.overrides: {text!r} is not an IP prefix ({exc})", errno=errno.EINVAL) from None
    key = table.Key()
    key.prefixlen = net.prefixlen + (96 if net.version == 4 else 0)
    key.addr = (ctypes.c_ubyte * 16)(*addr16(net.network_address))
    return key


def set_budget(bpf, budget: BudgetConfig) -> None:
    """Load a BudgetConfig: the default (rate, burst), the override
    prefixes, on/off (budget.enabled). Forgets every tracked source, so
    each starts again under its new budget with a full burst."""
    if len(budget.overrides) > MAX_BUDGET_OVERRIDES:
        raise XdpError(f"budget.overrides: at most {MAX_BUDGET_OVERRIDES} prefixes", errno=errno.EINVAL)
    if budget.enabled and bpf[b"budget"].max_entries < budget.table_size:
        raise XdpError(f"budgets: the XDP program was loaded with room for {bpf[b'budget'].max_entries} sources, "
                       f"budget.table_size is {budget.table_size}: reload it (restart)", errno=errno.EINVAL)
    from appliance.live import budget_params          # interval and tolerance: the RX loops' too

    cfg = bpf[b"config"]
    cfg[cfg.Key(_CFG_BUDGET_ENABLED)] = cfg.Leaf(0)          # off while the tables change
    default = bpf[b"budget_default"]
    default[default.Key(0)] = default.Leaf(*budget_params(budget.rate, budget.burst))
    tries = bpf[b"budget_overrides"]
    tries.clear()
    for o in budget.overrides:
        tries[_budget_prefix(tries, o.prefix)] = tries.Leaf(*budget_params(o.rate, o.burst))
    bpf[b"budget"].clear()
    cfg[cfg.Key(_CFG_BUDGET_ENABLED)] = cfg.Leaf(1 if budget.enabled else 0)


def read_counters(bpf, ports: list[int]) -> dict:
    """Per-CPU counters summed, and per-port hits {port: n}."""
    c = bpf[b"counters"]
    out = {name: int(c.sum(c.Key(i)).value) for i, name in enumerate(COUNTERS)}
    h = bpf[b"port_hits"]
    out["port_hits"] = {p: int(h.sum(h.Key(i)).value) for i, p in enumerate(ports)}
    return out


def _lookup_all(table, chunk: int = 4096) -> list:
    """Every (key, value) of a hash map, BPF_MAP_LOOKUP_BATCH in chunks (a
    few system calls for the whole map, not two per entry)."""
    keys, values = (table.Key * chunk)(), (table.Leaf * chunk)()
    token_in, token_out = ctypes.c_uint32(0), ctypes.c_uint32(0)
    out, first = [], True
    lib = libbpf()
    while True:
        count = ctypes.c_uint32(chunk)
        rc = lib.bpf_map_lookup_batch(table.map_fd, None if first else ctypes.byref(token_in),
                                      ctypes.byref(token_out), keys, values, ctypes.byref(count), None)
        out += [(bytes(keys[i]), table.Leaf.from_buffer_copy(values[i])) for i in range(count.value)]
        if rc < 0 and -rc == errno.ENOENT:
            return out                       # the end of the map
        if rc < 0:
            raise XdpError("reading the budget map (BPF_MAP_LOOKUP_BATCH)", errno=-rc)
        token_in.value, first = token_out.value, False


def throttled_sources(bpf) -> list[dict]:
    """Sources the budget throttled (dropped at least one datagram of), the
    most throttled first: [{"src": "198.18.0.5", "passed": n, "throttled": m}]
    with each source's datagrams within and over its budget since it was
    last (re)made in the map."""
    from appliance.live import addr_text

    rows = [{"src": addr_text(k), "passed": int(v.passed), "throttled": int(v.throttled)}
            for k, v in _lookup_all(bpf[b"budget"]) if v.throttled]
    return sorted(rows, key=lambda r: (-r["throttled"], r["src"]))


def describe_budget(budget: BudgetConfig) -> str:
    """The budget as describe() says it."""
    if not budget.enabled:
        return "budget off"
    if budget.rate > 0:
        text = f"budget {budget.rate:g}/s burst {budget_burst(budget.rate, budget.burst)} per source"
    else:
        text = "budget only for override prefixes"
    if budget.overrides:
        text += f", {len(budget.overrides)} override{'s' if len(budget.overrides) != 1 else ''}"
    return text + f", dropped at the NIC (up to {budget.table_size} sources tracked)"


class _InterfaceLock:
    """flock on a file per (network namespace, interface) in RUN_DIR while a
    program of ours is attached. A held lock belongs to a live LogCaster
    (refused, EBUSY); a free one whose file survives was left by a process
    that died, and the file says which program it had attached (`stale_id`:
    the line after the PID). The kernel drops the lock when its holder dies;
    the holder removes the file once its program is detached, and keeps it
    (with the record) when the detach failed. RUN_DIR outlives a stop of the
    service (RuntimeDirectoryPreserve=yes) and ends at reboot, as XDP
    attachments do."""

    def __init__(self, ifname: str, ifindex: int):
        try:
            netns = os.stat("/proc/self/ns/net").st_ino
        except OSError:
            netns = 0
        try:
            paths.RUN_DIR.mkdir(mode=0o750, parents=True, exist_ok=True)
        except OSError as exc:
            raise XdpError(f"cannot create the run directory {paths.RUN_DIR} for the interface lock "
                           f"(set LOGCASTER_RUN_DIR to a writable directory)", errno=exc.errno,
                           category=ENVIRONMENT) from None
        self.path = str(paths.RUN_DIR / f"xdp-{netns}-{ifindex}.lock")
        while True:
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            except OSError as exc:
                raise XdpError(f"interface {ifname}: cannot open the lock {self.path}", errno=exc.errno,
                               category=ENVIRONMENT) from None
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(self.fd, 32, 0).decode(errors="replace").split("\n")[0].strip() or "?"
                os.close(self.fd)
                raise XdpError(f"interface {ifname}: another LogCaster (pid {holder}) is capturing on it "
                               f"(lock {self.path})", errno=errno.EBUSY) from None
            try:
                if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                    break                   # locked the file that is there, not one just removed
            except FileNotFoundError:
                pass
            os.close(self.fd)
        # The record of a run that died, trusted only from a file of this user (RUN_DIR is the
        # service's own; a file someone else put there names no program of ours).
        left = os.pread(self.fd, 64, 0).decode(errors="replace").split("\n")
        ours = os.fstat(self.fd).st_uid == os.geteuid()
        self.stale_id = int(left[1]) if ours and len(left) > 1 and left[1].strip().isdigit() else 0
        self.record(0)

    def record(self, prog_id: int) -> None:
        """PID, and the id of the program attached (0: none yet)."""
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n{prog_id}\n".encode(), 0)

    def release(self, remove: bool = True) -> None:
        """Unlock; remove the file too (while still holding the lock, so
        nobody else holds this inode) unless it must keep its record."""
        if self.fd >= 0:
            if remove:
                try:
                    os.unlink(self.path)
                except OSError:
                    pass
            os.close(self.fd)
            self.fd = -1


class XdpProgram:
    """xdp_syslog.c attached to one interface (of the current network namespace).

    mode: "auto" (native when the driver supports it, else generic), "native"
    or "generic". `mode` afterwards says which one is in use, `fallback` why
    auto fell back, `replaced` which stale program of ours was removed.
    attach=False loads and fills the maps but attaches only on attach().
    """

    def __init__(self, ifname: str, udp_ports: Iterable[int], *, mode: str = "auto", deny: Iterable[str] = (),
                 budget: BudgetConfig | None = None, attach: bool = True):
        if mode not in MODES:
            raise XdpError(f"XDP mode {mode!r}: one of {', '.join(MODES)}", errno=errno.EINVAL)
        self.ifname = ifname
        self.ifindex = ifindex_of(ifname)
        self.ports = list(dict.fromkeys(int(p) for p in udp_ports))
        self.deny = tuple(str(d) for d in deny)
        self.budget = budget or BudgetConfig()
        self.requested_mode = mode
        self.mode: str | None = None
        self.fallback: str | None = None
        self.replaced: Attached | None = None
        self.prog_id = 0
        self._attached = False
        self.rx_queues = rx_queue_count(ifname)
        self.bpf = None
        self._lock = None
        check_privileges()
        self._lock = _InterfaceLock(self.ifname, self.ifindex)
        try:
            self._check_foreign()
            self.bpf, self.fn = compile_program(self.ports, deny=self.deny, max_queues=self.rx_queues,
                                                budget=self.budget)
            if attach:
                self.attach()
        except BaseException:
            self.close()
            raise

    # -- attach / detach -----------------------------------------------------------

    def _ours(self, prog: Attached) -> bool:
        """Left by a run of ours that died: the lock file it left names its id,
        or (when this process may read names) it has our program's name."""
        return prog.prog_id == self._lock.stale_id or prog.name == PROG_NAME

    def _check_foreign(self) -> None:
        for prog in attached_programs(self.ifindex):
            if not self._ours(prog):
                raise XdpError(
                    f"interface {self.ifname} already has XDP program {prog.shown()} (id {prog.prog_id}, "
                    f"{prog.mode} mode) that is not LogCaster's; not stacking on it nor removing it: detach it "
                    f"yourself (ip link set dev {self.ifname} xdp off) or capture on another interface",
                    errno=errno.EBUSY)

    def _remove_stale(self) -> None:
        """Ours, and no live LogCaster holds the interface's lock: a crashed
        run left it. Detach it (the caller attaches the new one)."""
        self._check_foreign()
        for prog in attached_programs(self.ifindex):
            log.warning("%s: detaching a stale %s (id %d, %s mode) left by an earlier run", self.ifname,
                        prog.name or PROG_NAME, prog.prog_id, prog.mode)
            detach(self.ifindex, prog)
            self.replaced = prog

    def _attach_flags(self, mode: str) -> int:
        rc = libbpf().bpf_xdp_attach(self.ifindex, self.fn.fd, XDP_FLAGS_UPDATE_IF_NOEXIST | _MODE_FLAGS[mode], None)
        return rc

    def attach(self) -> None:
        """Remove a stale program of ours, then attach (native first in auto
        mode). With attach=False at construction, call this once the AF_XDP
        sockets are in xsks_map, so no datagram meets an empty queue."""
        if self._attached:
            return
        self._remove_stale()
        modes = ["native", "generic"] if self.requested_mode == "auto" else [self.requested_mode]
        for mode in modes:
            rc = self._attach_flags(mode)
            if rc == 0:
                self.mode = mode
                self._attached = True
                break
            if -rc == errno.EBUSY or -rc == errno.EEXIST:
                raise XdpError(f"attaching {PROG_NAME} to {self.ifname}: another XDP program got there first",
                               errno=-rc)
            if -rc == errno.EPERM:
                raise XdpError(f"attaching {PROG_NAME} to {self.ifname} (needs CAP_NET_ADMIN)", errno=-rc)
            if mode == "native" and self.requested_mode == "auto":
                self.fallback = f"native mode refused: {os.strerror(-rc)}"
                log.info("%s: %s; using generic (SKB) mode", self.ifname, self.fallback)
                continue
            raise XdpError(f"attaching {PROG_NAME} to {self.ifname} in {mode} mode", errno=-rc)
        self.prog_id = prog_info(self.fn.fd).id
        self._lock.record(self.prog_id)

    def close(self) -> None:
        """Detach (only if our program is still the one attached), unload,
        give the interface lock back."""
        if self.bpf is None:
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            return
        detached = not self._attached
        try:
            if self._attached:
                try:
                    ifindex = socket.if_nametoindex(self.ifname)
                except OSError:
                    ifindex = 0                     # the interface is gone, and the program with it
                if ifindex:
                    for prog in attached_programs(ifindex):
                        if prog.prog_id == self.prog_id:
                            detach(ifindex, prog, self.fn.fd)
                detached = True
        finally:
            self.bpf.cleanup()
            self.bpf = None
            self._attached = False
            # A program still attached keeps its record: the next start recognises it as ours.
            self._lock.release(remove=detached)
            self._lock = None

    def __enter__(self) -> "XdpProgram":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- maps -----------------------------------------------------------------------

    @property
    def xsks_map_fd(self) -> int:
        return self.bpf[b"xsks_map"].map_fd

    def counters(self) -> dict:
        """Summed per-CPU counters: seen, redirected, passed, redirect_failed,
        denied, frag_passed, throttled, and port_hits {port: datagrams}."""
        return read_counters(self.bpf, self.ports)

    def throttled_sources(self) -> list[dict]:
        """[{"src", "passed", "throttled"}] of the sources over budget (module throttled_sources)."""
        return throttled_sources(self.bpf)

    def set_budget(self, budget: BudgetConfig) -> None:
        """A new budget at run time (every source starts again); turning
        budgets on needs a program loaded with them on (its map's size)."""
        set_budget(self.bpf, budget)
        self.budget = budget

    def set_deny(self, deny: Iterable[str]) -> None:
        v4, v6 = _deny_networks(deny)
        set_deny(self.bpf, v4, v6)
        self.deny = tuple(str(d) for d in deny)

    def describe(self) -> str:
        how = f"{self.mode} mode" + (f" ({self.fallback})" if self.fallback else "")
        deny = f"deny list {len(self.deny)} prefixes" if self.deny else "deny list off"
        text = (f"XDP {PROG_NAME} (id {self.prog_id}) on {self.ifname}: {how}, UDP ports "
                f"{', '.join(map(str, self.ports))} -> AF_XDP, {deny}, {describe_budget(self.budget)}")
        if self.replaced:
            text += f"; replaced a stale {self.replaced.name or PROG_NAME} (id {self.replaced.prog_id})"
        return text
