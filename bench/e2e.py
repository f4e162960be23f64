"""End-to-end benchmark over a veth: lcgen -> veth -> receiver, per capture backend and rsyslog.

Two network namespaces of its own (sender `lcbs-<pid>`, capture `lcbc-<pid>`)
and a veth pair between them (198.18.0.2/15 and 198.18.0.1/15, permanent
neighbour entries, IPv6 off so the wire carries only the benchmark's frames).
bench/gen/lcgen (C, built here into bench/gen/build/) replays the realistic
sample pcap (its IPv4 frames, VLAN tags stripped, rewritten once at load to
198.18.0.1:514 and the capture veth's MAC) out of the sender end, at top
speed or at a fixed rate, for a bounded time. For every (scenario, rate) a
fresh receiver starts in the capture namespace, lcgen runs, the receiver
drains, stops (SIGTERM) and is read out:

  dpdk-afxdp     logcaster, backend dpdk, vdev net_af_xdp on the capture veth
  dpdk-afpacket  logcaster, backend dpdk, vdev net_af_packet on the capture veth
  afxdp          logcaster, backend afxdp (XDP program + AF_XDP socket) on the veth
  socket         logcaster, backend socket (recvmmsg) bound to 198.18.0.1:514
  afxdp-parquet  afxdp, socket with the default Parquet sink (a store in the run's
  socket-parquet   tmpfs directory) instead of the null sink
  rsyslog        rsyslogd (its own instance, bench/peers/rsyslog.conf.tmpl), imudp -> file
  ceiling        no receiver: frames dropped by a blackhole route in the capture namespace;
                 what lcgen and the veth manage here (top speed only)

The appliance runs with the default ring size. Per result: offered and achieved
(sent) rate, delivered and delivered/s, loss by kind (the appliance's own
counters from --stats-json; veth drops and UDP receive-buffer drops from the
kernel), what the receiver did not count itself, RX core cost per message
(the appliance's busy cycles / packet and busy share; the RX thread's CPU time
as the kernel counts it), the whole receiver's CPU per message (up to the end
of the drain, and up to the receiver's exit), what it stored per message,
latency rx_time -> sink hand-off (p50/p99/p99.9, appliance only). A scenario
that fails is reported as failed with its error; the others still run.

Two ways to run:

  the loss-free rate search (default; scenarios ceiling, afxdp-parquet,
      socket-parquet, rsyslog): `ceiling` first; then per scenario offered
      rates of --step, 2 x --step, ... up to that ceiling, stopping after the
      first rate that loses anything, and one more run offered the ceiling.
      Adds one `e2e-summary` JSON line per scenario (loss_free_pps,
      ceiling_pps, store_bytes_per_msg at the ceiling run, CPU per message
      at 100k offered and its ratio to rsyslog's). ~10 s per run at 5 s of
      sending; the full search ~12-15 min on this machine.
  --rates: those rates for every scenario (default: all of them).

Prints a table and one JSON line per (scenario, rate); saves docs/bench-e2e.png
when matplotlib is installed. Root only. Every send is bounded in count and
time; namespaces and processes are removed afterwards, whatever happens.

    python bench/e2e.py [--quick] [--seconds 5] [--step 25k] [--scenarios ...]
    python bench/e2e.py --rates max,100k,300k [--seconds 8] [--scenarios ceiling,afxdp,...]
                        [--tx-mode mmsg|ring] [--gen-batch 64] [--plot PATH | --no-plot]

Results and the exact commands: docs/BENCHMARKS-e2e.md.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.sample import write_pcap  # noqa: E402
from bench.machine import cpu_jiffies, wait_quiet  # noqa: E402
from bench.store import parquet_store, text_store  # noqa: E402

GEN_SRC = ROOT / "bench" / "gen" / "lcgen.c"
GEN_BIN = ROOT / "bench" / "gen" / "build" / "lcgen"
RSYSLOG_TMPL = ROOT / "bench" / "peers" / "rsyslog.conf.tmpl"
PLOT = ROOT / "docs" / "bench-e2e.png"

SCENARIOS = ("ceiling", "dpdk-afxdp", "dpdk-afpacket", "afxdp", "socket", "afxdp-parquet", "socket-parquet",
             "rsyslog")
SEARCH_SCENARIOS = ("ceiling", "afxdp-parquet", "socket-parquet", "rsyslog")
CAPTURE_V4, SENDER_V4, PREFIX = "198.18.0.1", "198.18.0.2", 15
SYSLOG_PORT = 514
READY_TIMEOUT_S = 120.0          # EAL, bcc compiling the XDP program, workers importing pyarrow
DRAIN_QUIET_S = 1.0              # receiver counters unchanged this long: drained
DRAIN_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0
MAX_SEND_PPS = 3_000_000         # bound on lcgen's --count at top speed
QUIET_WAIT_S = 30.0
# Loss kinds the harness reads from the kernel, which the receiver itself does not report.
RECEIVER_BLIND = ("veth_dropped", "veth_dropped_other", "udp_rcvbuf_errors")


def parse_rate(text: str) -> int:
    """'max' -> 0 (top speed); '100k' / '100000' -> 100000."""
    t = text.strip().lower()
    if t in ("max", "top", "0"):
        return 0
    mult = 1000 if t.endswith("k") else 1_000_000 if t.endswith("m") else 1
    return int(float(t.rstrip("km")) * mult)


def rate_label(pps: int) -> str:
    return "max" if pps == 0 else f"{pps // 1000}k" if pps % 1000 == 0 else str(pps)


# ---- build and input ---------------------------------------------------------

def build_lcgen() -> Path:
    if GEN_BIN.exists() and GEN_BIN.stat().st_mtime >= GEN_SRC.stat().st_mtime:
        return GEN_BIN
    GEN_BIN.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["cc", "-O2", "-g", "-Wall", "-Wextra", "-std=gnu11", "-o", str(GEN_BIN), str(GEN_SRC), "-lpcap"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise SystemExit(f"building lcgen failed: {' '.join(cmd)}\n{res.stderr}")
    return GEN_BIN


def sample_pcap(messages: int) -> Path:
    pcap = ROOT / "logcaster-data" / "sample" / f"bench-{messages}.pcap"
    if not pcap.exists():
        write_pcap(pcap, messages)
    return pcap


# ---- machine and kernel counters ---------------------------------------------

def sh(cmd: list[str], timeout: float = 30, check: bool = True) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")
    return res.stdout


def link_stats(ns: str, dev: str) -> dict:
    info = json.loads(sh(["ip", "-n", ns, "-j", "-s", "link", "show", "dev", dev]))[0]
    return info["stats64"]


def udp_snmp(ns: str) -> dict:
    lines = [ln.split() for ln in sh(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"]).splitlines()
             if ln.startswith("Udp:")]
    return dict(zip(lines[0][1:], map(int, lines[1][1:])))


def delta(after: dict, before: dict) -> dict:
    return {k: after[k] - before.get(k, 0) for k in after if isinstance(after[k], int)}


# ---- namespaces --------------------------------------------------------------

@dataclass(frozen=True)
class Link:
    sender_ns: str
    capture_ns: str
    sender_if: str
    capture_if: str
    sender_mac: str
    capture_mac: str


@contextmanager
def veth_link():
    """Sender and capture namespaces with a veth between them; deleted afterwards."""
    pid = os.getpid()
    s_ns, c_ns = f"lcbs-{pid}", f"lcbc-{pid}"
    s_if, c_if = f"lcbs{pid}"[:15], f"lcbc{pid}"[:15]
    existing = sh(["ip", "netns", "list"]).split()
    if s_ns in existing or c_ns in existing:
        raise SystemExit(f"network namespace {s_ns} or {c_ns} exists already")
    made = []
    try:
        for ns in (s_ns, c_ns):
            sh(["ip", "netns", "add", ns])
            made.append(ns)
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
            # No IPv6 on the link: no router solicitations or MLD among the benchmark's frames.
            sh(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1", "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0"])
        sh(["ip", "link", "add", s_if, "netns", s_ns, "type", "veth", "peer", "name", c_if, "netns", c_ns])
        for ns, dev, addr in ((s_ns, s_if, SENDER_V4), (c_ns, c_if, CAPTURE_V4)):
            sh(["ip", "-n", ns, "addr", "add", f"{addr}/{PREFIX}", "dev", dev])
            sh(["ip", "-n", ns, "link", "set", dev, "up"])
        macs = {ns: json.loads(sh(["ip", "-n", ns, "-j", "link", "show", "dev", dev]))[0]["address"]
                for ns, dev in ((s_ns, s_if), (c_ns, c_if))}
        sh(["ip", "-n", s_ns, "neigh", "replace", CAPTURE_V4, "lladdr", macs[c_ns], "dev", s_if, "nud", "permanent"])
        sh(["ip", "-n", c_ns, "neigh", "replace", SENDER_V4, "lladdr", macs[s_ns], "dev", c_if, "nud", "permanent"])
        yield Link(s_ns, c_ns, s_if, c_if, macs[s_ns], macs[c_ns])
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


# ---- processes ---------------------------------------------------------------

class Proc:
    """A subprocess in a session of its own, its output read on a thread.
    kill() ends its whole process group (ours: it was started here)."""

    def __init__(self, cmd: list[str], **kw):
        self.cmd = cmd
        self.lines: list[str] = []
        self.exit_cpu_s: float | None = None   # set when reaped by terminate()
        self._q: queue.Queue[str | None] = queue.Queue()
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  text=True, errors="replace", start_new_session=True, **kw)
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))
            self._q.put(self.lines[-1])
        self._q.put(None)

    def wait_line(self, pattern: str, timeout: float) -> re.Match:
        rx, deadline = re.compile(pattern), time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"no output line matching {pattern!r} after {timeout:.0f} s: {self.tail()}")
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self._q.put(None)
                raise RuntimeError(f"exited ({self.p.wait()}) before {pattern!r}: {self.tail()}")
            m = rx.search(line)
            if m:
                return m

    def tail(self, n: int = 15) -> str:
        return " | ".join(self.lines[-n:])

    def terminate(self, timeout: float) -> int | None:
        """SIGTERM, then wait up to `timeout` for the exit; None if it did not."""
        if self.p.returncode is None and not self._reap():
            os.kill(self.p.pid, signal.SIGTERM)     # not Popen.send_signal: its poll() would reap
        deadline = time.monotonic() + timeout
        while not self._reap():
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)
        return self.p.returncode

    def _reap(self) -> bool:
        """Reap the process with wait4 if it has ended: its rusage then counts the
        process and every descendant it waited for (kept in exit_cpu_s)."""
        if self.p.returncode is not None:
            return True
        try:
            pid, status, ru = os.wait4(self.p.pid, os.WNOHANG)
        except ChildProcessError:           # reaped by Popen (an error path): no rusage
            self.p.poll()
            return True
        if pid == 0:
            return False
        self.p.returncode = os.waitstatus_to_exitcode(status)
        self.exit_cpu_s = ru.ru_utime + ru.ru_stime
        return True

    def tree_cpu_s(self) -> float:
        """CPU seconds (user+sys) the process tree has used so far, counted the way
        wait4 counts it at the exit: each live process's own time plus what the
        children it reaped used. exit_cpu_s - this = the tree's CPU from now to
        its end, a final commit at SIGTERM included."""
        return tree_cpu_s(self.p.pid, reaped=True)

    def kill(self) -> None:
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.p.wait()
        self._t.join(5)


def tree_cpu_s(pid: int, *, reaped: bool = False) -> float:
    """user+system CPU seconds of a process and its live children (psutil);
    with `reaped`, also what the children each of them reaped used."""
    import psutil

    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system + ((t.children_user + t.children_system) if reaped else 0.0)
        except psutil.NoSuchProcess:
            pass
    return total


# ---- receivers ---------------------------------------------------------------

class Appliance:
    """`logcaster run` in the capture namespace: the null sink, or for the
    `-parquet` scenarios the default Parquet sink (its defaults: zstd,
    row_group_rows 262,144, rotate_seconds 60) on a store in the run's tmpfs
    directory; the default ring size either way."""

    kind = "appliance"

    def __init__(self, scenario: str, link: Link, work: Path, rx_cpu: int, worker_cpu: int, bound_s: float):
        self.scenario, self.link, self.work = scenario, link, work
        self.cfg_path, self.stats_path = work / "logcaster.yaml", work / "stats.json"
        self.store = work / "store" if scenario.endswith("-parquet") else None
        self.cfg = self.config(scenario, link, rx_cpu, worker_cpu, self.store)
        self.rx_cpu = rx_cpu
        self.bound_s = bound_s
        self.proc: Proc | None = None

    @staticmethod
    def config(scenario: str, link: Link, rx_cpu: int, worker_cpu: int, store: Path | None) -> dict:
        iface = link.capture_if
        backend = scenario.removesuffix("-parquet")
        if scenario == "dpdk-afxdp":
            capture = {"backend": "dpdk", "ports": [{
                "name": "net_af_xdp0", "vdev": f"net_af_xdp0,iface={iface},start_queue=0,queue_count=1",
                "link_timeout_ms": 0}]}
        elif scenario == "dpdk-afpacket":
            capture = {"backend": "dpdk", "ports": [{
                "name": "net_af_packet0", "vdev": f"net_af_packet0,iface={iface},qpairs=1,framecnt=4096",
                "link_timeout_ms": 0}]}
        elif backend == "afxdp":
            capture = {"backend": "afxdp", "ports": [{"name": iface}]}
        elif backend == "socket":
            capture = {"backend": "socket", "ports": [{"name": CAPTURE_V4}]}
        else:
            raise ValueError(scenario)
        capture.update({"udp_ports": [SYSLOG_PORT], "burst": 64, "batch_size": 1024})
        return {
            "capture": capture,
            "sinks": [{"type": "parquet", "path": str(store)} if store else {"type": "null"}],
            "dpdk": {"in_memory": True, "file_prefix": f"lce2e{os.getpid()}", "log_level": "error"},
            "cores": {"rx": [rx_cpu], "workers": [worker_cpu]},
            "stats_interval_s": 0.2,
        }

    def start(self) -> None:
        self.cfg_path.write_text(yaml.safe_dump(self.cfg, sort_keys=False))
        cmd = ["ip", "netns", "exec", self.link.capture_ns, sys.executable, "-m", "appliance.cli.main", "run",
               "-c", str(self.cfg_path), "--stats-json", str(self.stats_path), "--duration", str(self.bound_s)]
        self.proc = Proc(cmd, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.proc.wait_line(r"^capturing: ", READY_TIMEOUT_S)

    def cpu_now(self) -> float:
        return tree_cpu_s(self.proc.p.pid)

    def tree_cpu_now(self) -> float:
        return self.proc.tree_cpu_s()

    def exit_cpu_s(self) -> float | None:
        return self.proc.exit_cpu_s

    def rx_thread_cpu_s(self) -> float:
        """CPU seconds of the capture process's RX thread(s): its threads pinned to
        the RX CPU alone, the main thread excepted (the OS's own count, whatever
        the loop counts as busy or idle)."""
        pid, total = self.proc.p.pid, 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir():
            tid = int(task.name)
            try:
                if tid == pid or os.sched_getaffinity(tid) != {self.rx_cpu}:
                    continue
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            total += (int(fields[11]) + int(fields[12])) / tick     # utime + stime
        return total

    def progress(self) -> tuple[int, ...]:
        """(received, delivered) of the latest stats line."""
        for line in reversed(self.proc.lines):
            m = re.search(r"^stats: .*received ([\d,]+), delivered ([\d,]+), in flight ([\d,]+)", line)
            if m:
                return tuple(int(g.replace(",", "")) for g in m.groups())
        return (0, 0, 0)

    def stop(self) -> dict:
        rc = self.proc.terminate(STOP_TIMEOUT_S)
        if rc is None:
            raise RuntimeError(f"logcaster still running {STOP_TIMEOUT_S:.0f} s after SIGTERM: {self.proc.tail()}")
        if not self.stats_path.exists():
            raise RuntimeError(f"logcaster exited {rc} without stats JSON: {self.proc.tail()}")
        s = json.loads(self.stats_path.read_text())
        s["exit_code"] = rc
        if self.store:
            s["store"] = parquet_store(self.store)
            s["store"].pop("last_file_done")
        return s

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate(STOP_TIMEOUT_S)
            self.proc.kill()


class Blackhole:
    """The ceiling: no receiver. For the run the capture veth loses its address and
    198.18.0.0/15 is a blackhole route in the capture namespace, so every frame is
    dropped right after the IP input's route lookup (no socket lookup, no ICMP).
    'delivered' = frames the capture veth received: what lcgen and the veth manage
    here with the least receive work (the veth's receive path runs on lcgen's CPU)."""

    kind = "ceiling"

    def __init__(self, link: Link):
        self.link = link
        self.rx0 = 0
        self.changed = False

    def start(self) -> None:
        ns, dev = self.link.capture_ns, self.link.capture_if
        self.changed = True
        sh(["ip", "-n", ns, "addr", "del", f"{CAPTURE_V4}/{PREFIX}", "dev", dev])
        sh(["ip", "-n", ns, "route", "add", "blackhole", f"198.18.0.0/{PREFIX}"])
        self.rx0 = self.progress()[0]

    def cpu_now(self) -> float:
        return 0.0

    def tree_cpu_now(self) -> float:
        return 0.0

    def exit_cpu_s(self) -> float | None:
        return None

    def progress(self) -> tuple[int, ...]:
        return (link_stats(self.link.capture_ns, self.link.capture_if)["rx"]["packets"],)

    def stop(self) -> dict:
        return {"arrived": self.progress()[0] - self.rx0}

    def close(self) -> None:
        if not self.changed:
            return
        ns, dev = self.link.capture_ns, self.link.capture_if
        sh(["ip", "-n", ns, "route", "del", "blackhole", f"198.18.0.0/{PREFIX}"], check=False)
        sh(["ip", "-n", ns, "addr", "replace", f"{CAPTURE_V4}/{PREFIX}", "dev", dev])
        sh(["ip", "-n", ns, "neigh", "replace", SENDER_V4, "lladdr", self.link.sender_mac, "dev", dev,
            "nud", "permanent"])
        self.changed = False


class Rsyslog:
    """rsyslogd of our own (bench/peers/rsyslog.conf.tmpl) in the capture namespace,
    imudp on 198.18.0.1:514, every message written to a file on tmpfs."""

    kind = "rsyslog"
    quiet_s = 2.5            # impstats writes once a second; the file grows by 1 MiB buffers

    def __init__(self, link: Link, work: Path, cpus: str, bound_s: float):
        self.link, self.work, self.cpus, self.bound_s = link, work, cpus, bound_s
        self.out = work / "messages.log"
        self.conf = work / "rsyslog.conf"
        self.pidfile = work / "rsyslogd.pid"
        self.proc: Proc | None = None
        self.pid = 0

    def start(self) -> None:
        if shutil.which("rsyslogd") is None:
            raise RuntimeError("rsyslogd is not installed (Debian package rsyslog; scripts/setup.sh installs it)")
        conf = RSYSLOG_TMPL.read_text()
        for key, value in {"WORKDIR": self.work, "ADDRESS": CAPTURE_V4, "PORT": SYSLOG_PORT, "RCVBUF": "8m",
                           "OUTFILE": self.out}.items():
            conf = conf.replace(f"@{key}@", str(value))
        self.conf.write_text(conf)
        # `timeout` bounds the daemon's life even if this script dies; SIGTERM to it reaches rsyslogd.
        cmd = ["ip", "netns", "exec", self.link.capture_ns, "timeout", "--kill-after=10", str(int(self.bound_s)),
               "taskset", "-c", self.cpus, "rsyslogd", "-n", "-f", str(self.conf), "-i", str(self.pidfile)]
        self.proc = Proc(cmd)
        deadline = time.monotonic() + 30
        while not self._listening():
            if self.proc.p.poll() is not None:
                raise RuntimeError(f"rsyslogd exited ({self.proc.p.returncode}): {self.proc.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"rsyslogd not listening on {CAPTURE_V4}:{SYSLOG_PORT} after 30 s: "
                                   f"{self.proc.tail()}")
            time.sleep(0.1)
        self.pid = int(self.pidfile.read_text().split()[0])

    def cpu_now(self) -> float:
        return tree_cpu_s(self.pid)

    def tree_cpu_now(self) -> float:
        return self.proc.tree_cpu_s()       # `timeout` and its child rsyslogd

    def exit_cpu_s(self) -> float | None:
        return self.proc.exit_cpu_s

    def _listening(self) -> bool:
        if not self.pidfile.exists():
            return False
        try:
            pid = int(self.pidfile.read_text().split()[0])
            with open(f"/proc/{pid}/net/udp") as f:
                return any(int(ln.split()[1].split(":")[1], 16) == SYSLOG_PORT for ln in f.readlines()[1:])
        except (OSError, ValueError, IndexError):
            return False

    def progress(self) -> tuple[int, ...]:
        imudp = self._impstats().get("imudp", {})
        return (self.out.stat().st_size if self.out.exists() else 0, imudp.get("msgs.received", 0))

    def _impstats(self) -> dict:
        """The latest impstats record per origin ('imudp': what imudp took off its
        socket; 'core.queue': the main queue, with its discards). Written every second."""
        path = self.work / "impstats.json"
        last: dict = {}
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                i = line.find("{")
                if i < 0:
                    continue
                try:
                    rec = json.loads(line[i:])
                except json.JSONDecodeError:
                    continue
                if rec.get("origin") == "imudp" or rec.get("name") == "main Q":
                    last[rec["origin"]] = rec
        return last

    def stop(self) -> dict:
        rc = self.proc.terminate(STOP_TIMEOUT_S)
        if rc is None:
            raise RuntimeError(f"rsyslogd still running {STOP_TIMEOUT_S:.0f} s after SIGTERM")
        stats = self._impstats()
        store = text_store(self.out)
        self.out.unlink(missing_ok=True)
        queue = stats.get("core.queue", {})
        return {"exit_code": rc, "lines": store["messages"], "store": store,
                "imudp_received": stats.get("imudp", {}).get("msgs.received"),
                "queue_discarded": queue.get("discarded.full", 0) + queue.get("discarded.nf", 0),
                "queue_full": queue.get("full", 0), "queue_maxqsize": queue.get("maxqsize")}

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate(STOP_TIMEOUT_S)
            self.proc.kill()


# ---- one measurement ---------------------------------------------------------

def run_lcgen(link: Link, pcap: Path, pps: int, seconds: float, gen_cpu: int, mode: str, batch: int) -> dict:
    count = int((pps or MAX_SEND_PPS) * seconds) + 1
    cmd = ["ip", "netns", "exec", link.sender_ns, str(GEN_BIN), "--iface", link.sender_if, "--pcap", str(pcap),
           "--dst-mac", link.capture_mac, "--dst-ip", CAPTURE_V4, "--dst-port", str(SYSLOG_PORT),
           "--rate", str(pps), "--count", str(count), "--duration", str(seconds), "--cpu", str(gen_cpu),
           "--mode", mode, "--batch", str(batch), "--family", "4"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    if res.returncode != 0:
        raise RuntimeError(f"lcgen failed ({res.returncode}): {res.stderr.strip() or res.stdout.strip()}")
    return json.loads(res.stdout)


def wait_drained(receiver) -> float:
    """Wait until the receiver's counters stop moving; returns the seconds it took."""
    quiet = getattr(receiver, "quiet_s", DRAIN_QUIET_S)
    t0 = time.monotonic()
    last, since = None, time.monotonic()
    while time.monotonic() - t0 < DRAIN_TIMEOUT_S:
        time.sleep(0.1)
        now = receiver.progress()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return time.monotonic() - t0


def measure(scenario: str, pps: int, link: Link, pcap: Path, args, phase: str = "grid") -> dict:
    base = {"benchmark": "e2e", "scenario": scenario, "rate": rate_label(pps), "offered_pps": pps or None,
            "phase": phase}
    busy_before = wait_quiet(args.quiet_wait)
    with tempfile.TemporaryDirectory(prefix=f"lce2e-{scenario}-", dir="/dev/shm") as tmp, ExitStack() as stack:
        work = Path(tmp)
        os.chmod(work, 0o755)
        bound = args.seconds + READY_TIMEOUT_S + DRAIN_TIMEOUT_S + 60
        if scenario == "rsyslog":
            rcv = Rsyslog(link, work, args.peer_cpus, bound)
        elif scenario == "ceiling":
            rcv = Blackhole(link)
        else:
            rcv = Appliance(scenario, link, work, args.rx_cpu, args.worker_cpu, bound)
        stack.callback(rcv.close)
        rcv.start()
        veth0 = (link_stats(link.sender_ns, link.sender_if), link_stats(link.capture_ns, link.capture_if))
        snmp0 = udp_snmp(link.capture_ns)
        rx_thread = getattr(rcv, "rx_thread_cpu_s", lambda: None)
        tree0 = rcv.tree_cpu_now()
        jiffies0, rcv_cpu0, rx_thr0, wall0 = cpu_jiffies(), rcv.cpu_now(), rx_thread(), time.monotonic()
        gen = run_lcgen(link, pcap, pps, args.seconds, args.gen_cpu, args.tx_mode, args.gen_batch)
        drain_s = wait_drained(rcv)
        jiffies1, rcv_cpu1, rx_thr1, wall1 = cpu_jiffies(), rcv.cpu_now(), rx_thread(), time.monotonic()
        snmp = delta(udp_snmp(link.capture_ns), snmp0)
        veth_s = delta(link_stats(link.sender_ns, link.sender_if)["tx"], veth0[0]["tx"])
        veth_c = delta(link_stats(link.capture_ns, link.capture_if)["rx"], veth0[1]["rx"])
        out = rcv.stop()
        exit_cpu = rcv.exit_cpu_s()
    receiver_cpu_s = rcv_cpu1 - rcv_cpu0
    # The receiver's whole tree from lcgen's start to the receiver's exit: also what
    # it does after SIGTERM (the Parquet sink's last row group and footer, rsyslog's
    # last buffer), which receiver_cpu_s (up to the end of the drain) leaves out.
    tree_cpu_s = exit_cpu - tree0 if exit_cpu is not None else None
    # CPU time of the whole machine from lcgen's start to the end of the drain:
    # lcgen, the receiver, and the rest (other users of these CPUs, ksoftirqd).
    hz = os.sysconf("SC_CLK_TCK")
    busy_s = (jiffies1[0] - jiffies0[0]) / hz
    irq_s = (jiffies1[2] - jiffies0[2]) / hz
    gen_cpu_s = gen["cpu_user_s"] + gen["cpu_sys_s"]
    # Without CONFIG_IRQ_TIME_ACCOUNTING (this kernel) softirq ticks are charged to the
    # task they interrupt as well (mostly lcgen: the veth's receive path runs on its
    # CPU), so irq_softirq_s is a part of the others, not an addend.
    cpu_split = {"window_s": round(wall1 - wall0, 2), "machine_busy_s": round(busy_s, 2),
                 "lcgen_s": round(gen_cpu_s, 2), "receiver_s": round(receiver_cpu_s, 2),
                 "irq_softirq_s": round(irq_s, 2),
                 "other_s": round(max(0.0, busy_s - gen_cpu_s - receiver_cpu_s), 2)}
    sent = gen["sent"]
    secs = gen["seconds"]
    # Frames the veth dropped before any receiver saw them (the peer's backlog or,
    # with XDP attached, its NAPI ring; also AF_XDP sockets whose RX ring was full:
    # the failed redirect is a veth drop too, so those are not added twice below).
    veth_dropped = veth_s.get("dropped", 0) + veth_c.get("dropped", 0) + gen["dropped"]
    r = {**base, "seconds": round(secs, 3), "sent": sent, "sent_pps": round(sent / secs) if secs else 0,
         "frame_bytes": gen["mean_frame_bytes"], "tx_mode": gen["mode"], "gen_tokens_lost": gen["tokens_lost"],
         "veth_dropped": veth_dropped, "udp_rcvbuf_errors": snmp.get("RcvbufErrors", 0)}
    if scenario == "ceiling":
        delivered = out["arrived"]
        losses = {"veth_dropped": veth_dropped}
        r.update({"received": delivered, "delivered": delivered, "rx_ns_per_msg": None, "rx_busy_fraction": None,
                  "rx_thread_load": None, "rx_thread_ns_per_msg": None,
                  "latency_us": {"p50": None, "p99": None, "p999": None}, "accounting_ok": None})
    elif scenario == "rsyslog":
        delivered = out["lines"]
        # rsyslog counts its queue's discards (impstats); the veth's and the socket's
        # drops only the kernel counts.
        losses = {"queue_discarded": out["queue_discarded"], "veth_dropped": veth_dropped,
                  "udp_rcvbuf_errors": snmp.get("RcvbufErrors", 0)}
        r.update({"rx_thread_load": None, "rx_thread_ns_per_msg": None,
                  "received": out["imudp_received"], "delivered": delivered, "rsyslog_queue_full": out["queue_full"],
                  "rsyslog_queue_maxqsize": out["queue_maxqsize"], "exit_code": out["exit_code"],
                  "rx_ns_per_msg": None, "rx_busy_fraction": None,
                  "latency_us": {"p50": None, "p99": None, "p999": None}, "accounting_ok": None})
    else:
        q = out["queues"][0]
        rx = q["rx"]
        delivered = out["delivered"]
        nic = {f"nic_{k}": v for k, v in out["nic"].items()}
        # The appliance's own counters. The socket backend's kernel_drops are the UDP
        # RcvbufErrors above (the same datagrams); AF_XDP's kernel_drops and failed
        # redirects show at the veth as well: only veth drops beyond those are extra.
        seen_at_veth = nic.get("nic_kernel_drops", 0) + nic.get("nic_xdp_redirect_failed", 0) + \
            nic.get("nic_imissed", 0) if scenario.removesuffix("-parquet") in ("afxdp", "dpdk-afxdp") else 0
        losses = {"ring_full": out["ring_full"], "sink_failed": out["sink_failed"], **nic,
                  "veth_dropped_other": max(0, veth_dropped - seen_at_veth)}
        busy_ns = rx["cycles_busy"] / rx["tsc_hz"] * 1e9 if rx["tsc_hz"] else 0
        r.update({"received": out["received"], "not_syslog": out["not_syslog"], "delivered": delivered,
                  "rx_batches": rx["batches"], "ring_full_batches": rx["ring_full_batches"],
                  "records_per_batch": round(out["records"] / (rx["batches"] + rx["ring_full_batches"]), 1)
                  if rx["batches"] + rx["ring_full_batches"] else None,
                  "rx_ns_per_msg": round(busy_ns / rx["packets"], 1) if rx["packets"] else None,
                  "rx_busy_fraction": round(q["rx_busy_fraction"], 3),
                  # The OS's count for the RX thread over the same window as "cpu" below.
                  "rx_thread_cpu_s": round(rx_thr1 - rx_thr0, 2),
                  "rx_thread_load": round((rx_thr1 - rx_thr0) / (wall1 - wall0), 3),
                  "rx_thread_ns_per_msg": round((rx_thr1 - rx_thr0) * 1e9 / rx["packets"], 1)
                  if rx["packets"] else None,
                  "latency_us": out["latency_us"], "accounting_ok": out["accounting_ok"],
                  "exit_code": out["exit_code"], "appliance_seconds": round(out["seconds"], 3),
                  "appliance_ports": out.get("ports")})
    lost = sent - delivered
    r.update({
        "delivered_per_s": round(delivered / secs) if secs else 0,
        "lost": lost, "loss_pct": round(100.0 * lost / sent, 3) if sent else None,
        "losses": losses,
        # Lost but counted nowhere (neither by the receiver nor by the kernel): should be 0.
        "unaccounted": lost - sum(losses.values()),
        # Lost and not counted by the receiver itself (its stats / summary do not show it).
        "receiver_uncounted": lost - sum(v for k, v in losses.items() if k not in RECEIVER_BLIND),
        "receiver_cpu_s": round(receiver_cpu_s, 3),
        "receiver_cpu_ns_per_msg": round(receiver_cpu_s * 1e9 / delivered, 1)
        if delivered and scenario != "ceiling" else None,
        "tree_cpu_s": round(tree_cpu_s, 3) if tree_cpu_s is not None else None,
        "tree_cpu_ns_per_msg": round(tree_cpu_s * 1e9 / delivered, 1) if delivered and tree_cpu_s is not None
        else None,
        "store": out.get("store"),
        "cpu": cpu_split,
        "veth": {"sender_tx": veth_s, "capture_rx": veth_c},
        "udp_snmp": {k: v for k, v in snmp.items() if v},
        "drain_s": round(drain_s, 2),
        "machine_busy_cpus_before": round(busy_before, 2),
        "status": "ok",
    })
    return r


# ---- output ------------------------------------------------------------------

def fmt(v, spec: str = ",.0f", none: str = "-") -> str:
    return none if v is None else format(v, spec)


def others_cpus(r: dict) -> float:
    c = r["cpu"]
    return c["other_s"] / c["window_s"] if c["window_s"] else 0.0


def print_table(results: list[dict]) -> None:
    """RX ns/msg, RX busy: the appliance's own busy cycles per packet and busy share;
    RXthr ns, RXthr: the RX thread's CPU time (the OS's count) per packet and load;
    CPU ns/msg: the whole receiver's CPU time (all processes) per delivered message,
    lcgen's start to the end of the drain; tree ns: the same from lcgen's start to the
    receiver's exit (what it does after SIGTERM included: the last Parquet row group);
    B/msg: bytes stored per message (Parquet store, rsyslog's file);
    uncounted: lost messages the receiver's own counters do not show;
    others: CPUs busy with other work during the run (this machine is shared)."""
    print(f"{'scenario':<16}{'rate':>7}{'sent/s':>11}{'deliv/s':>11}{'loss %':>8}{'uncounted':>10}"
          f"{'RX ns/msg':>10}{'RX busy':>8}{'RXthr ns':>9}{'RXthr':>6}{'CPU ns/msg':>11}{'tree ns':>8}{'B/msg':>6}"
          f"{'p50 µs':>9}{'p99 µs':>10}{'p99.9 µs':>10}"
          f"{'others':>7}  losses")
    for r in results:
        if r["status"] != "ok":
            print(f"{r['scenario']:<16}{r['rate']:>7}  FAILED: {r['error'][:150]}")
            continue
        lat = r["latency_us"]
        kinds = ", ".join(f"{k} {v:,}" for k, v in r["losses"].items() if v) or "none"
        busy = fmt(r["rx_busy_fraction"], ".0%")
        print(f"{r['scenario']:<16}{r['rate']:>7}{r['sent_pps']:>11,}{r['delivered_per_s']:>11,}"
              f"{fmt(r['loss_pct'], '.2f'):>8}{r['receiver_uncounted']:>10,}{fmt(r['rx_ns_per_msg']):>10}{busy:>8}"
              f"{fmt(r['rx_thread_ns_per_msg']):>9}{fmt(r['rx_thread_load'], '.0%'):>6}"
              f"{fmt(r['receiver_cpu_ns_per_msg']):>11}{fmt(r['tree_cpu_ns_per_msg']):>8}"
              f"{fmt((r['store'] or {}).get('bytes_per_msg'), '.0f'):>6}{fmt(lat['p50'], ',.1f'):>9}"
              f"{fmt(lat['p99'], ',.1f'):>10}"
              f"{fmt(lat['p999'], ',.1f'):>10}{others_cpus(r):>7.2f}  {kinds}")


def plot(results: list[dict], path: Path) -> str:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed"
    ok = [r for r in results if r["status"] == "ok"]
    if not ok:
        return "plot skipped: no scenario ran"
    if any(r["phase"] == "step" for r in ok):
        return plot_search(ok, path, plt)
    scen = list(dict.fromkeys(r["scenario"] for r in ok))
    rates = list(dict.fromkeys(r["rate"] for r in ok))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(rates)
    for j, rate in enumerate(rates):
        by = {r["scenario"]: r for r in ok if r["rate"] == rate}
        xs = [i + (j - (len(rates) - 1) / 2) * width for i in range(len(scen))]
        axes[0].bar(xs, [by[s]["delivered_per_s"] / 1e3 if s in by else 0 for s in scen], width, label=rate)
        axes[0].scatter(xs, [by[s]["sent_pps"] / 1e3 if s in by else float("nan") for s in scen], marker="_",
                        s=300, color="black", label="sent" if j == 0 else None, zorder=3)
        axes[1].bar(xs, [by[s]["loss_pct"] if s in by else 0 for s in scen], width, label=rate)
    for ax, title in ((axes[0], "delivered (bars) and sent (—), thousand msgs/s"), (axes[1], "loss (% of sent)")):
        ax.set_xticks(range(len(scen)), scen, rotation=15)
        ax.set_title(title)
        ax.legend(title="offered rate")
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(bottom=0)
    fig.suptitle("LogCaster end-to-end over a veth (bench/e2e.py)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return f"plot: {path}"


def plot_search(ok: list[dict], path: Path, plt) -> str:
    """The search: delivered/s and loss % against the offered rate, per scenario."""
    ceiling = next((r["sent_pps"] for r in ok if r["scenario"] == "ceiling"), None)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for scenario in dict.fromkeys(r["scenario"] for r in ok if r["scenario"] != "ceiling"):
        runs = sorted((r for r in ok if r["scenario"] == scenario), key=lambda r: r["offered_pps"])
        xs = [r["offered_pps"] / 1e3 for r in runs]
        axes[0].plot(xs, [r["delivered_per_s"] / 1e3 for r in runs], marker="o", ms=3, label=scenario)
        axes[1].plot(xs, [r["loss_pct"] for r in runs], marker="o", ms=3, label=scenario)
    for ax, title in ((axes[0], "delivered, thousand msgs/s"), (axes[1], "loss (% of sent)")):
        if ceiling:
            ax.axvline(ceiling / 1e3, color="grey", ls="--", lw=1, label=f"lcgen ceiling {ceiling / 1e3:.0f}k")
        ax.set_xlabel("offered, thousand msgs/s")
        ax.set_title(title)
        ax.legend()
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    fig.suptitle("LogCaster end-to-end over a veth (bench/e2e.py): loss-free rate search")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return f"plot: {path}"


def run_one(scenario: str, pps: int, link: Link, pcap: Path, args, phase: str) -> dict:
    t0 = time.monotonic()
    try:
        r = measure(scenario, pps, link, pcap, args, phase)
    except Exception as exc:  # noqa: BLE001 - a failed scenario is a result, not the end
        r = {"benchmark": "e2e", "scenario": scenario, "rate": rate_label(pps), "offered_pps": pps or None,
             "phase": phase, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    done = (f"sent {r['sent_pps']:,}/s, delivered {r['delivered_per_s']:,}/s, lost {r['lost']:,}"
            if r["status"] == "ok" else r["error"])
    print(f"e2e: {scenario} {rate_label(pps)} ({phase}, {time.monotonic() - t0:.0f} s): {done}",
          file=sys.stderr, flush=True)
    return r


def lossy(r: dict) -> bool:
    return r["status"] != "ok" or r["lost"] != 0


def search(scenarios: list[str], link: Link, pcap: Path, args) -> list[dict]:
    """The loss-free rate search. The ceiling first (top speed into a blackhole);
    then per scenario the offered rates step, 2 x step, ... up to the ceiling,
    stopping after the first rate with any loss (or a failed run), and one run
    offered the ceiling itself whatever happened before."""
    ceiling = run_one("ceiling", 0, link, pcap, args, "ceiling")
    results = [ceiling]
    if ceiling["status"] != "ok":
        raise SystemExit(f"the ceiling run failed, nothing to search up to: {ceiling['error']}")
    top = ceiling["sent_pps"]
    steps = list(range(args.step, top + 1, args.step))
    for scenario in scenarios:
        for pps in steps:
            r = run_one(scenario, pps, link, pcap, args, "step")
            results.append(r)
            if lossy(r):
                break
        if not steps or steps[-1] != top:
            results.append(run_one(scenario, top, link, pcap, args, "ceiling"))
        else:
            results[-1]["phase"] = "ceiling"
    return results


def summaries(results: list[dict], step: int) -> list[dict]:
    """One line per searched scenario: the loss-free rate (the highest offered rate
    below which every step lost nothing; the ceiling when the ceiling run lost
    nothing either), the figures of the run at the ceiling, and the whole
    receiver's CPU per delivered message at 100k offered next to rsyslog's."""
    ceiling = next(r for r in results if r["scenario"] == "ceiling")
    top = ceiling["sent_pps"]
    at = {(r["scenario"], r["offered_pps"]): r for r in results if r["status"] == "ok"}
    rsyslog_100k = at.get(("rsyslog", 100_000), {}).get("tree_cpu_ns_per_msg")
    out = []
    for scenario in dict.fromkeys(r["scenario"] for r in results if r["scenario"] != "ceiling"):
        runs = [r for r in results if r["scenario"] == scenario]
        steps = [r for r in runs if r["phase"] in ("step", "ceiling")]
        steps.sort(key=lambda r: r["offered_pps"])
        clean, first_lossy = None, None
        for r in steps:
            if lossy(r):
                first_lossy = r
                break
            clean = r
        top_run = next((r for r in runs if r["phase"] == "ceiling"), None)
        top_ok = top_run is not None and top_run["status"] == "ok"
        cpu_100k = at.get((scenario, 100_000), {}).get("tree_cpu_ns_per_msg")
        store = top_run.get("store") if top_ok else None
        out.append({
            "benchmark": "e2e-summary", "scenario": scenario,
            "loss_free_pps": clean["offered_pps"] if clean else 0,
            "loss_free_sent_pps": clean["sent_pps"] if clean else None,
            "first_lossy_rate": first_lossy["offered_pps"] if first_lossy else None,
            "first_lossy_lost": first_lossy.get("lost") if first_lossy else None,
            "ceiling_pps": top, "step_pps": step,
            "ceiling_run": {k: top_run.get(k) for k in ("status", "sent_pps", "delivered_per_s", "lost", "loss_pct")}
            if top_run else None,
            "store_bytes_per_msg": store["bytes_per_msg"] if store else None,
            "store": store,
            "tree_cpu_ns_per_msg_at_100k": cpu_100k,
            "tree_cpu_vs_rsyslog_at_100k": round(cpu_100k / rsyslog_100k, 3)
            if cpu_100k and rsyslog_100k and scenario != "rsyslog" else None,
        })
    return out


def print_summary(lines: list[dict]) -> None:
    """loss-free: highest offered rate with no loss at it or below (sent/s: what lcgen
    reached there); ceiling run: sent and delivered/s, loss, when offered the ceiling;
    store B/msg: bytes stored per message at the ceiling run; CPU@100k: the receiver's
    whole tree, user+sys, from lcgen's start to its exit, per delivered message."""
    print(f"\n{'scenario':<16}{'loss-free':>10}{'(sent/s)':>10}{'1st lossy':>10}{'ceiling':>9}"
          f"{'ceil sent/s':>12}{'ceil deliv/s':>13}{'ceil loss %':>12}{'store B/msg':>12}{'CPU@100k ns':>12}"
          f"{'vs rsyslog':>11}")
    for s in lines:
        c = s["ceiling_run"] or {}
        ok = c.get("status") == "ok"
        print(f"{s['scenario']:<16}{s['loss_free_pps']:>10,}{fmt(s['loss_free_sent_pps']):>10}"
              f"{fmt(s['first_lossy_rate']):>10}{s['ceiling_pps']:>9,}"
              f"{fmt(c.get('sent_pps') if ok else None):>12}{fmt(c.get('delivered_per_s') if ok else None):>13}"
              f"{fmt(c.get('loss_pct') if ok else None, '.3f'):>12}{fmt(s['store_bytes_per_msg'], '.1f'):>12}"
              f"{fmt(s['tree_cpu_ns_per_msg_at_100k']):>12}{fmt(s['tree_cpu_vs_rsyslog_at_100k'], '.2f'):>11}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default=None,
                    help=f"comma-separated (default: {','.join(SEARCH_SCENARIOS)} for the search, "
                         f"every scenario with --rates)")
    ap.add_argument("--rates", default=None,
                    help="'max' (top speed) and/or msgs/s, comma-separated: these rates instead of the search")
    ap.add_argument("--step", default=None, help="the search's rate step (default 25k; --quick 50k)")
    ap.add_argument("--seconds", type=float, default=None,
                    help="lcgen send time per (scenario, rate) (default: search 5, rates 8; --quick 3 / 2)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: search in steps of 50k, 3 s each; with --rates: 2 s per rate")
    ap.add_argument("--messages", type=int, default=20_000, help="distinct messages in the sample pcap")
    ap.add_argument("--tx-mode", default="mmsg", choices=("mmsg", "ring"), help="lcgen's TX path")
    ap.add_argument("--gen-batch", type=int, default=64, help="lcgen's frames per syscall")
    ap.add_argument("--gen-cpu", type=int, default=0)
    ap.add_argument("--rx-cpu", type=int, default=1)
    ap.add_argument("--worker-cpu", type=int, default=0)
    ap.add_argument("--peer-cpus", default="1", help="CPUs rsyslogd may use (taskset list)")
    ap.add_argument("--quiet-wait", type=float, default=QUIET_WAIT_S,
                    help="wait up to this long for other load on the machine to end before each run")
    ap.add_argument("--plot", type=Path, default=PLOT)
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args()
    # SIGTERM unwinds like Ctrl-C: receivers stopped, namespaces deleted (finally blocks).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    searching = args.rates is None
    if args.seconds is None:
        args.seconds = (3.0 if args.quick else 5.0) if searching else (2.0 if args.quick else 8.0)
    if not 0 < args.seconds <= 60:
        raise SystemExit("--seconds: more than 0, at most 60")
    args.step = parse_rate(args.step or ("50k" if args.quick else "25k"))
    if args.step <= 0:
        raise SystemExit("--step: a rate of at least 1 msg/s")
    if os.geteuid() != 0:
        raise SystemExit("bench/e2e.py needs root (network namespaces, AF_PACKET, XDP, DPDK)")
    default = SEARCH_SCENARIOS if searching else SCENARIOS
    scenarios = [s.strip() for s in (args.scenarios or ",".join(default)).split(",") if s.strip()]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise SystemExit(f"--scenarios: unknown {', '.join(unknown)} (known: {', '.join(SCENARIOS)})")

    build_lcgen()
    pcap = sample_pcap(args.messages)
    results = []
    with veth_link() as link:
        if searching:
            results = search([s for s in scenarios if s != "ceiling"], link, pcap, args)
        else:
            for scenario in scenarios:
                for pps in map(parse_rate, args.rates.split(",")):
                    if scenario == "ceiling" and pps:
                        continue            # the ceiling is a top-speed figure
                    results.append(run_one(scenario, pps, link, pcap, args, "grid"))
    print_table(results)
    lines = summaries(results, args.step) if searching else []
    if lines:
        print_summary(lines)
    for r in results + lines:
        print(json.dumps(r))
    if not args.no_plot:
        print(plot(results, args.plot))


if __name__ == "__main__":
    main()
