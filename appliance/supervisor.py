"""The capture process: plans cores, starts the capture backend and its RX
loops, runs one worker process per RX queue, restarts workers that die, and
stops cleanly.

Start-up order (DPDK's basicfwd/l2fwd): rings left by a crashed run are
drained into the sinks first (appliance/recovery.py) -> backend choice ->
core plan -> backend start (EAL, pools, ports; or XDP program and XSK
sockets; or UDP sockets) -> rings -> workers -> RX loops. Stop order: RX
loops stop (each closes its ring) -> workers drain their rings, commit
their sinks and exit -> backend closes (ports, EAL, XDP detached) -> rings
removed (one that still holds records a failing sink could not take is
kept: the next start delivers them) -> summary.

Runs in the foreground (systemd Type=simple); SIGTERM and SIGINT stop it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from appliance import topology
from appliance.capture.base import NIC_LOSSES, LoopOptions
from appliance.capture.select import choose_backend
from appliance.config import Config
from appliance import sources
from appliance.decoder import NOT_RECORDS, Decoder
from appliance.errors import ConfigError, LogCasterError
from appliance.live import LiveQueue, live_path, live_paths
from appliance.metrics import MetricsServer, Snapshot
from appliance.paths import RING_FILE_PREFIX, RUN_DIR
from appliance.probe import keep_capabilities_to_self
from appliance.ports import PCI_ADDR
from appliance.ring import Ring, ring_bases, ring_dirs
from appliance.stats import Totals, merge_counts, rate_line, summary_text, to_json
from appliance.worker import WorkerSpec, percentiles, worker_main

log = logging.getLogger(__name__)

TICK_S = 0.1
SNAPSHOT_S = 1.0                # counters for /metrics refreshed this often (and at every stats line)
WORKER_DRAIN_TIMEOUT_S = 120.0
WORKER_FAST_FAILS = 5           # a worker dying this many times in a row, each within
WORKER_FAST_FAIL_S = 5.0        # this long of its start, is broken: stop instead of looping


@dataclass
class QueueRun:
    """One RX queue: its ring, decoder, RX loop and worker process."""

    label: str                          # e.g. "net_pcap0 q0", "veth0 q1"
    index: int                          # position in the plan
    ring: Ring
    decoder: Decoder
    rx: object                          # the backend's RxLoop
    spec: WorkerSpec
    live: LiveQueue                     # its counters and sender tables, in shared memory
    process: multiprocessing.Process | None = None
    conn: object = None
    report: dict = field(default_factory=dict)      # latest stats of the live worker
    done_reports: list = field(default_factory=list)  # final stats of workers that ended
    restarts: int = 0
    started_at: float = 0.0
    fast_fails: int = 0




def live_stats_path(file_prefix: str) -> Path:
    return RUN_DIR / f"{file_prefix}.stats.json"


class Supervisor:
    def __init__(self, cfg: Config, *, duration: float | None = None, stats_json: str | None = None,
                 echo=print):
        self.cfg = cfg
        self.duration = duration
        self.stats_json = stats_json
        self.echo = echo
        self.run_id = time.time_ns()
        self.stop_reason: str | None = None
        self.queues: list[QueueRun] = []
        self.capture_started: float | None = None
        self.capture_ended: float | None = None
        self.backend = None
        self.nic: dict[str, dict] = {}
        self._ring_final: dict[int, dict] = {}
        self.recovered = None           # recovery.Recovered: what rings of a crashed run held
        self._mp = multiprocessing.get_context("spawn")
        self._ring_dirs: list[str] | None = None
        self._live_stats_failed = False
        self._live_files_failed = False
        self.metrics: MetricsServer | None = None

    # -- planning -----------------------------------------------------------

    def _core_plan(self, nqueues: int) -> topology.CorePlan:
        """The planned cores, or the config's: cores.rx (one per queue) and
        cores.workers (one per queue; default: the first CPU not in cores.rx)."""
        cores = self.cfg.cores
        if not cores.rx:
            if cores.workers:
                raise ConfigError("cores.workers: given without cores.rx (set both, or neither to plan them)")
            return topology.plan_cores(topology.discover(), self._port_node(), nqueues)
        if len(cores.rx) < nqueues:
            raise ConfigError(f"cores.rx: {list(cores.rx)} has fewer CPUs than the {nqueues} RX queues")
        workers = cores.workers
        if not workers:
            free = [c for c in sorted(os.sched_getaffinity(0)) if c not in cores.rx]
            if not free:
                raise ConfigError(f"cores.rx: {list(cores.rx)} leaves no CPU for the workers (set cores.workers)")
            workers = (free[0],) * nqueues
        if len(workers) < nqueues:
            raise ConfigError(f"cores.workers: {list(workers)} has fewer CPUs than the {nqueues} RX queues")
        return topology.CorePlan(tuple(cores.rx[:nqueues]), tuple(workers[:nqueues]), 0, (), 0, nqueues)

    def _port_node(self):
        """NUMA locality of the first port: a PCI device or a kernel interface
        has one; a DPDK vdev or a socket address does not (node 0)."""
        name = self.cfg.capture.ports[0].name
        if self.cfg.capture.ports[0].vdev is None and (PCI_ADDR.match(name) or Path(f"/sys/class/net/{name}").exists()):
            return topology.nic_locality(name)
        return 0

    # -- start ----------------------------------------------------------------

    def ring_prefix(self) -> str:
        return f"{RING_FILE_PREFIX}{self.cfg.dpdk.file_prefix}-"

    def ring_dirs(self) -> list[str]:
        """This user's private ring directories (in ring.dir, else on
        hugetlbfs and in /dev/shm), computed once per run."""
        if self._ring_dirs is None:
            self._ring_dirs = ring_dirs(self.cfg.ring.dir)
        return self._ring_dirs

    def start(self) -> None:
        from appliance.recovery import recover_rings

        # Rings of a crashed run, in this user's ring directories, and where releases before
        # those directories existed left them (directly in the bases).
        self.recovered = recover_rings(self.ring_dirs() + ring_bases(self.cfg.ring.dir), self.ring_prefix(),
                                       self.cfg.sinks, self._mp, echo=self.echo)
        for stale in live_paths(self.cfg.dpdk.file_prefix):     # a killed run's (this prefix is ours: locked)
            stale.unlink(missing_ok=True)
        self.backend, why = choose_backend(self.cfg)
        self.echo(f"backend: {self.backend.name} ({why})")
        plan = self._core_plan(sum(p.queues for p in self.cfg.capture.ports))
        for line in plan.describe().splitlines():
            self.echo(line)
        labels = self.backend.start(plan)
        for line in self.backend.describe():
            self.echo(line)
        for index, label in enumerate(labels):
            self.queues.append(self._queue(label, index, plan))
        for qr in self.queues:
            self._spawn(qr)
        self._wait_workers_ready()
        self.capture_started = time.monotonic()
        for qr in self.queues:
            qr.rx.launch()
        self.echo(f"capturing: {len(self.queues)} queue(s), sinks: "
                  + ", ".join(f"{s.type}{' ' + s.path if s.path else ''}" + _targets_text(s) for s in self.cfg.sinks))

    def _queue(self, label: str, index: int, plan: topology.CorePlan) -> QueueRun:
        cap = self.cfg.capture
        name = self.ring_prefix() + re.sub(r'[^A-Za-z0-9_.-]', '_', label)
        ring = Ring.create_in(name, self.ring_dirs(), size=self.cfg.ring.size, capacity=cap.batch_size,
                              avg_payload=cap.batch_avg_payload, queue_id=index, run_id=self.run_id)
        live = self._live_queue(index, label, str(ring.path))
        decoder = Decoder(tz_offset_s=cap.tz_offset_s, ports=cap.udp_ports, c=live.decoder, senders=live.senders,
                          budget=live.budget)
        options = LoopOptions(burst=cap.burst, batch_max_delay_us=cap.batch_max_delay_us,
                              batch_size=cap.batch_size, batch_avg_payload=cap.batch_avg_payload)
        rx = self.backend.rx_loop(index, ring.c, decoder.c, plan.rx_cores[index], options, stats=live.rxq)
        spec = WorkerSpec(queue_id=index, ring_path=str(ring.path), sinks=self.cfg.sinks,
                          cpu=plan.worker_cores[index], run_id=self.run_id,
                          stats_interval_s=min(1.0, self.cfg.stats_interval_s),
                          tap_prefix=self.cfg.dpdk.file_prefix)
        return QueueRun(label, index, ring, decoder, rx, spec, live)

    def _live_queue(self, index: int, label: str, ring_path: str) -> LiveQueue:
        """The queue's live file in RUN_DIR; anonymous memory if RUN_DIR is
        not writable (the run works, `top` and `stats --sources` do not see
        it). The XDP program applies budgets itself: no table in the loop."""
        budget = self.cfg.budget if self.backend.name != "afxdp" else None
        kw = dict(queue=index, label=label, ring_path=ring_path, senders=self.cfg.senders, budget=budget)
        if not self._live_files_failed:
            path = live_path(self.cfg.dpdk.file_prefix, index)
            try:
                return LiveQueue.create(path, **kw)
            except OSError as exc:
                self._live_files_failed = True
                self.echo(f"warning: cannot make {path} ({exc.strerror}); `logcaster top` and `stats --sources` "
                          f"will not see this run (set LOGCASTER_RUN_DIR to a writable directory)")
        return LiveQueue.create(None, **kw)

    def _spawn(self, qr: QueueRun) -> None:
        parent, child = self._mp.Pipe(duplex=False)
        proc = self._mp.Process(target=worker_main, args=(qr.spec, child), name=f"logcaster-worker-q{qr.index}",
                                daemon=False)
        proc.start()
        child.close()
        qr.process, qr.conn, qr.report = proc, parent, {}
        qr.started_at = time.monotonic()

    def _wait_workers_ready(self, timeout: float = 60.0) -> None:
        """Workers attach and recover their sinks before RX starts, so the
        first batches do not wait in the ring for a Python start-up."""
        deadline = time.monotonic() + timeout
        while not all(qr.report for qr in self.queues):
            self._poll_workers(restart=True)
            if time.monotonic() > deadline:
                raise LogCasterError(f"workers not ready after {timeout:.0f} s")
            time.sleep(0.02)

    # -- run ------------------------------------------------------------------

    def _on_signal(self, signum, frame) -> None:
        self.stop_reason = signal.Signals(signum).name

    def run(self) -> Totals:
        keep_capabilities_to_self()     # workers and tools it starts inherit none of them
        try:
            return self._run()
        finally:
            if self.metrics is not None:    # after the final counters were published (or a failure)
                self.metrics.close()

    def _run(self) -> Totals:
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            if self.cfg.metrics.listen:     # before anything starts: a bad address is a config error
                self.metrics = MetricsServer(self.cfg.metrics.listen)
                self.echo(f"metrics: {self.metrics.url}/metrics (health {self.metrics.url}/-/healthy, "
                          f"readiness {self.metrics.url}/-/ready)")
            self.start()
            if self.metrics is not None:    # ready from the first scrape after the RX loops started
                queues = self.queue_counts()
                self.metrics.publish(self._snapshot(self.totals(0.0, queues), queues))
            self._monitor()
            self._stop()
        finally:
            self._teardown()
            for s, h in old.items():
                signal.signal(s, h)
        queues = self.queue_counts()
        totals = self.totals(self._capture_seconds(), queues)
        latency = percentiles(self._latency_counts(queues))
        if self.metrics is not None:        # the last scrape sees the final summary's counters
            self.metrics.publish(self._snapshot(totals, queues, final=True))
        self.echo(summary_text(totals, latency, self._port_lines()))
        if self.stats_json:
            Path(self.stats_json).write_text(to_json(totals, latency_us=latency, stop_reason=self.stop_reason,
                                                     backend=self.backend.name if self.backend else None,
                                                     ports=self.nic, queues=self._queue_stats(queues)))
        return totals

    def _monitor(self) -> None:
        """Every tick: workers (restarted when they die), the stop conditions.
        Every SNAPSHOT_S: the counters, NIC included, for /metrics; every
        stats interval: the stats line and the live stats file."""
        last_line = last_snap = time.monotonic()
        prev = None
        while self.stop_reason is None:
            time.sleep(TICK_S)
            now = time.monotonic()
            self._poll_workers(restart=self.cfg.restart_workers)
            if self.duration is not None and now - self.capture_started >= self.duration:
                self.stop_reason = "duration"
            elif all(not qr.rx.running for qr in self.queues):
                self.stop_reason = "end of input"
            line_due = now - last_line >= self.cfg.stats_interval_s
            if not line_due and now - last_snap < SNAPSHOT_S:
                continue
            try:
                self.nic = self.backend.nic_stats()
            except LogCasterError as exc:    # the last reading stands; the one at stop counts
                log.warning("reading the NIC counters: %s", exc)
            queues = self.queue_counts()
            t = self.totals(self._capture_seconds(), queues)
            if self.metrics is not None:
                self.metrics.publish(self._snapshot(t, queues))
            last_snap = now
            if line_due:
                self.echo(rate_line(t, prev, now - last_line))
                self._publish_live(t, queues)
                prev, last_line = t, now

    def _snapshot(self, t: Totals, queues: list[dict], final: bool = False) -> Snapshot:
        return Snapshot(totals=t, queues=queues, nic=self.nic, backend=self.backend.name if self.backend else "",
                        capturing=self.capture_started is not None and self.capture_ended is None and not final,
                        workers_alive=all(qr.process is not None and qr.process.is_alive() for qr in self.queues),
                        final=final)

    def _publish_live(self, t: Totals, queues: list[dict]) -> None:
        """The counters for `logcaster stats`, replaced atomically each interval."""
        path = live_stats_path(self.cfg.dpdk.file_prefix)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            xdp = self.backend.throttled_sources() if hasattr(self.backend, "throttled_sources") else []
            tmp.write_text(to_json(t, pid=os.getpid(), backend=self.backend.name, updated=time.time(),
                                   latency_us=percentiles(self._latency_counts(queues)),
                                   queues=self._queue_stats(queues), xdp_sources=xdp))
            os.replace(tmp, path)
        except OSError as exc:
            if not self._live_stats_failed:     # once, not every interval
                self._live_stats_failed = True
                elsewhere = ["the stats lines here", "the final summary"]
                if self.stats_json:
                    elsewhere.append(f"--stats-json {self.stats_json}")
                if self.metrics is not None:
                    elsewhere.append(f"{self.metrics.url}/metrics")
                self.echo(f"warning: cannot publish live stats to {path} ({exc.strerror}); `logcaster stats` "
                          f"will not see this run, but {', '.join(elsewhere)} have every counter (set "
                          f"LOGCASTER_RUN_DIR to a writable directory for `logcaster stats`)")

    def _capture_seconds(self) -> float:
        """How long the RX loops ran: their own busy + idle cycles (every cycle
        of a loop is one or the other), where the supervisor's clock only sees
        them in ticks; while they run, the wall time since they started."""
        if self.capture_started is None:
            return 0.0
        if self.capture_ended is None:
            return time.monotonic() - self.capture_started
        loops = [(r["cycles_busy"] + r["cycles_idle"]) / r["tsc_hz"]
                 for r in (qr.rx.stats() for qr in self.queues) if r["tsc_hz"]]
        return max(loops, default=self.capture_ended - self.capture_started)

    def _poll_workers(self, restart: bool) -> None:
        for qr in self.queues:
            self._drain_conn(qr)
            if qr.process is not None and not qr.process.is_alive():
                code = qr.process.exitcode
                qr.process.join()
                if qr.report:
                    qr.done_reports.append(qr.report)
                ring = qr.ring.stats()
                if code == 0 and ring["closed"]:    # drained (what a failing sink held stays in the ring)
                    qr.process = None
                    continue
                if restart:
                    qr.fast_fails = qr.fast_fails + 1 if time.monotonic() - qr.started_at < WORKER_FAST_FAIL_S else 0
                    if qr.fast_fails >= WORKER_FAST_FAILS:
                        raise LogCasterError(f"the worker of queue {qr.index} failed {qr.fast_fails} times in a row "
                                             f"right after starting (last: exit code {code}); see its error above")
                    qr.restarts += 1
                    how = f"signal {-code}" if code and code < 0 else f"exit code {code}"
                    self.echo(f"worker of queue {qr.index} died ({how}); restarting it (restart {qr.restarts})")
                    self._spawn(qr)
                else:
                    qr.process = None

    def _drain_conn(self, qr: QueueRun) -> None:
        try:
            while qr.conn is not None and qr.conn.poll():
                qr.report = qr.conn.recv()
        except (EOFError, OSError):
            qr.conn = None

    # -- stop -----------------------------------------------------------------

    def _stop(self) -> None:
        self.echo(f"stopping ({self.stop_reason}): RX loops, then draining the rings")
        self.backend.stop_all()
        for qr in self.queues:
            qr.rx.wait()
        self.capture_ended = time.monotonic()
        self.nic = self.backend.nic_stats()
        deadline = time.monotonic() + WORKER_DRAIN_TIMEOUT_S
        last_snap = 0.0
        while any(qr.process is not None for qr in self.queues):
            if time.monotonic() > deadline:
                raise LogCasterError("workers did not drain their rings in time")
            if self.metrics is not None and time.monotonic() - last_snap >= SNAPSHOT_S:
                queues = self.queue_counts()        # draining: capture stopped, deliveries go on
                self.metrics.publish(self._snapshot(self.totals(self._capture_seconds(), queues), queues))
                last_snap = time.monotonic()
            self._poll_workers(restart=True)  # a worker dying while draining is replaced too
            time.sleep(TICK_S)

    def _teardown(self) -> None:
        for qr in self.queues:
            if qr.process is not None and qr.process.is_alive():
                qr.process.terminate()
                qr.process.join(5)
        if self.backend is not None:
            if self.capture_started is not None and self.capture_ended is None:   # _stop did not get there
                try:
                    self.nic = self.backend.nic_stats()
                except LogCasterError:
                    pass
            self.backend.stop_all()
            for qr in self.queues:
                qr.rx.wait()
            self.backend.close()
        self._ring_final = {}
        live_stats_path(self.cfg.dpdk.file_prefix).unlink(missing_ok=True)
        for qr in self.queues:
            qr.live.unlink()            # the mapping stays: the summary still reads its counters
        for qr in self.queues:
            final = self._ring_final[qr.index] = qr.ring.stats()
            path = qr.ring.path
            qr.ring.close()
            if final["records_published"] > final["records_released"]:
                self.echo(f"ring {path} keeps {final['records_published'] - final['records_released']:,} "
                          f"records the sinks did not commit; the next start delivers them")
                continue
            Ring.unlink(path)

    # -- accounting -----------------------------------------------------------

    def _worker_reports(self, qr: QueueRun) -> list[dict]:
        return qr.done_reports + ([qr.report] if qr.report and qr.process is not None else [])

    def _latency_counts(self, queues: list[dict] | None = None) -> dict[int, int]:
        return merge_counts({}, *(q["latency_counts"] for q in (self.queue_counts() if queues is None else queues)))

    def queue_counts(self) -> list[dict]:
        """Each queue's figures, read once (its RX loop, decoder, ring and
        workers): the one source of the totals, the live stats and /metrics."""
        out = []
        for qr in self.queues:
            rx = qr.rx.stats()
            ring = self._ring_final.get(qr.index) or qr.ring.stats()
            reports = self._worker_reports(qr)
            sink_failed = sum(r.get("sink_failed", 0) for r in reports)
            cycles = rx["cycles_busy"] + rx["cycles_idle"]
            out.append({
                "queue": qr.index, "label": qr.label, "rx": rx, "decoder": qr.decoder.counters(), "ring": ring,
                "delivered": ring["records_released"] - sink_failed,
                "ring_full": rx["ring_full_records"],
                "sink_failed": sink_failed,
                "in_flight": ring["records_published"] - ring["records_released"],
                "duplicates_suppressed": sum(r.get("duplicates_suppressed", 0) for r in reports),
                "ring_fill": ring["bytes_used"] / ring["data_size"] if ring["data_size"] else 0.0,
                "restarts": qr.restarts,
                "rx_busy_fraction": rx["cycles_busy"] / cycles if cycles else 0.0,
                "latency_counts": merge_counts({}, *(r.get("latency_counts", {}) for r in reports)),
                "workers": reports,
            })
        return out

    def totals(self, seconds: float, queues: list[dict] | None = None) -> Totals:
        t = Totals(seconds=seconds)
        sequence: dict = {}
        for q in self.queue_counts() if queues is None else queues:
            rx, dec = q["rx"], q["decoder"]
            t.received += rx["packets"]
            t.bytes += rx["bytes"]
            t.records += dec["records"]
            skipped = {k: dec[k] for k in NOT_RECORDS}
            t.not_syslog += sum(skipped.values())
            merge_counts(t.skipped, skipped)
            merge_counts(t.formats, dec["formats"])
            merge_counts(t.flags, dec["flags"])
            merge_counts(t.severities, dec["severities"])
            merge_counts(sequence, dec["sequence"])
            t.throttled += dec["throttled"]
            for key in ("ring_full", "sink_failed", "duplicates_suppressed", "delivered", "in_flight"):
                setattr(t, key, getattr(t, key) + q[key])
            t.worker_restarts += q["restarts"]
            t.ring_fill = max(t.ring_fill, q["ring_fill"])
        t.recovered = self.recovered.records if self.recovered else 0
        for stats in self.nic.values():
            for kind in NIC_LOSSES:
                if kind in stats:  # only the kinds this backend can lose packets to
                    t.nic[kind] = t.nic.get(kind, 0) + stats[kind]
            t.throttled_nic += stats.get("throttled", 0)     # by the XDP program, before the RX loop
        t.throttled += t.throttled_nic
        senders, throttled = self.source_tables()
        t.upstream = sources.upstream(sequence, senders)
        t.throttled_sources = sources.top(throttled, "throttled")
        return t

    def source_tables(self) -> tuple[list[dict], list[dict]]:
        """The senders with upstream loss and the sources throttled (RX loops
        and XDP program), merged over queues: what the totals' top lists need."""
        lives = [qr.live for qr in self.queues]
        senders, _ = sources.sender_table(lives, lost_only=True)
        in_rx, _ = sources.budget_table(lives, throttled_only=True)
        in_xdp = self.backend.throttled_sources() if hasattr(self.backend, "throttled_sources") else []
        return senders, sources.merge_sources(in_rx, in_xdp)

    def _queue_stats(self, queues: list[dict] | None = None) -> list[dict]:
        """Per queue, for --stats-json and the live stats file."""
        keep = ("queue", "label", "rx", "decoder", "restarts", "rx_busy_fraction", "workers")
        return [{k: q[k] for k in keep} for q in (self.queue_counts() if queues is None else queues)]

    def _port_lines(self) -> list[str]:
        lines = []
        for qr in self.queues:
            rx = qr.rx.stats()
            cycles = rx["cycles_busy"] + rx["cycles_idle"]
            busy = rx["cycles_busy"] / cycles if cycles else 0.0
            per_pkt = rx["cycles_busy"] / rx["tsc_hz"] * 1e9 / rx["packets"] if rx["packets"] and rx["tsc_hz"] else 0
            lines.append(f"  queue {qr.index} ({qr.label}): {rx['packets']:,} packets, "
                         f"{rx['batches']:,} batches, RX core {busy:.1%} busy ({per_pkt:.0f} ns/packet busy)")
        for name, stats in self.nic.items():
            # The backend's own counters (NIC, XDP program, sockets): flat numbers and words only.
            flat = {k: v for k, v in stats.items() if isinstance(v, (int, str)) and not isinstance(v, bool)}
            lines.append(f"  {self.backend.name} {name}: "
                         + ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in flat.items()))
        return lines


def _targets_text(sink) -> str:
    """Where a relay or kafka sink sends (' -> tcp://host:514, udp://...',
    ' -> k1:9092 topic syslog'), '' for the others."""
    if sink.type == "kafka":
        return f" -> {sink.brokers} topic {sink.topic}"
    if not sink.targets:
        return ""
    return " -> " + ", ".join(f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"
                              for scheme, host, port in sink.targets)
