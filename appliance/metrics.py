"""The Prometheus endpoint (`metrics.listen`, off by default).

The supervisor publishes a Snapshot of its counters every second and at
every stats line (appliance/supervisor.py: `queue_counts()`, the same figures
the summary adds up), and a final one after the run's last accounting; a
scrape renders the latest Snapshot, so it never touches the data path, the
rings or the backend from the HTTP thread, and the last scrape of a run
that stopped shows the final summary's counters.

Paths: /metrics (Prometheus text format), /-/healthy (200 while the
supervisor runs and every worker is alive), /-/ready (200 while capturing:
after the RX loops started, before the stop). Names follow Prometheus
conventions (`_total` counters, base units: seconds, bytes, ratios) and,
where the same thing exists, DPDK's ethdev counters and node_exporter's
(`rx_packets`, `rx_bytes`; drops by `kind`). docs/METRICS.md lists them;
docs/grafana-logcaster.json is a dashboard over them.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from appliance import __version__
from appliance.capture.base import NIC_LOSSES
from appliance.decoder import NOT_RECORDS
from appliance.errors import ConfigError
from appliance.stats import Totals

log = logging.getLogger(__name__)

# Upper bounds (seconds) of the latency histogram's buckets: the C histogram
# has 512 log-linear buckets; these are the ones a dashboard asks about.
LATENCY_BOUNDS_S = (10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3,
                    100e-3, 250e-3, 500e-3, 1.0, 2.5, 5.0, 10.0)
HEALTH_STALE_S = 10.0           # /-/healthy fails when no snapshot came for this long while capturing


@dataclass(frozen=True)
class Snapshot:
    """What one scrape shows (built by the supervisor; never mutated)."""

    totals: Totals
    queues: list                # Supervisor.queue_counts()
    nic: dict                   # backend.nic_stats(): per port or interface
    backend: str
    capturing: bool
    workers_alive: bool
    final: bool = False
    taken: float = field(default_factory=time.monotonic)


def _latency_buckets(counts: dict[int, int]) -> tuple[list[tuple[str, float]], float]:
    """Cumulative (le, count) pairs and the sum in seconds, from C bucket counts."""
    from dpdk_shim import lib

    total, acc, sum_s = sum(counts.values()), 0, 0.0
    uppers = {b: lib.lc_latency_bucket_floor(b + 1) / 1e9 for b in counts}
    for b, n in counts.items():
        sum_s += n * (lib.lc_latency_bucket_floor(b) / 1e9 + uppers[b]) / 2   # bucket middles
    out = []
    for le in LATENCY_BOUNDS_S:
        acc = sum(n for b, n in counts.items() if uppers[b] <= le)
        out.append((repr(le), acc))
    out.append(("+Inf", total))
    return out, sum_s


class _Collector:
    """Renders the latest Snapshot (prometheus_client calls collect() per scrape)."""

    def __init__(self, server: "MetricsServer"):
        self.server = server

    def collect(self):
        snap = self.server.snapshot
        info = GaugeMetricFamily("logcaster_info", "LogCaster version and capture backend", labels=["version", "backend"])
        info.add_metric([__version__, snap.backend if snap else ""], 1)
        yield info
        up = GaugeMetricFamily("logcaster_capturing", "1 while the RX loops capture, 0 before start and after stop")
        up.add_metric([], 1 if snap and snap.capturing else 0)
        yield up
        if snap is None:
            return
        yield from self._queues(snap)
        yield from self._nic(snap)
        t = snap.totals
        rec = CounterMetricFamily("logcaster_recovered_records_total",
                                  "Records of rings a crashed run left, delivered at this start")
        rec.add_metric([], t.recovered)
        yield rec
        flags = CounterMetricFamily("logcaster_flagged_records_total", "Records with a flag bit set (docs/FLAGS.md)",
                                    labels=["flag"])
        for name, n in sorted(t.flags.items()):
            flags.add_metric([name], n)
        yield flags
        yield from self._senders(snap)
        ok = GaugeMetricFamily("logcaster_accounting_ok",
                               "1 when received = records + other frames and records = delivered + losses + in flight")
        ok.add_metric([], 0 if t.check() else 1)
        yield ok

    def _queues(self, snap: Snapshot):
        q_labels = ["queue", "port", "backend"]
        fams = {
            "packets": CounterMetricFamily("logcaster_rx_packets", "Packets the RX loop took off the queue",
                                           labels=q_labels),
            "bytes": CounterMetricFamily("logcaster_rx_bytes", "Bytes of those packets", labels=q_labels),
            "records": CounterMetricFamily("logcaster_records", "Syslog records decoded, by format",
                                           labels=["queue", "format"]),
            "other": CounterMetricFamily("logcaster_other_frames",
                                         "Frames that are not syslog records (not IP, not UDP, other port, "
                                         "malformed)", labels=["queue", "reason"]),
            "delivered": CounterMetricFamily("logcaster_delivered_records",
                                             "Records every sink committed (released from the ring)",
                                             labels=["queue"]),
            "dropped": CounterMetricFamily("logcaster_dropped_records",
                                           "Records lost inside the box, by kind (ring_full, sink_failed)",
                                           labels=["queue", "kind"]),
            "dups": CounterMetricFamily("logcaster_duplicates_suppressed_records",
                                        "Records a ring delivered again after a worker restart that the sinks "
                                        "already held", labels=["queue"]),
            "restarts": CounterMetricFamily("logcaster_worker_restarts", "Worker processes restarted",
                                            labels=["queue"]),
            "busy": CounterMetricFamily("logcaster_rx_busy_seconds", "Time the RX loop spent on polls that "
                                        "returned packets (decode included)", labels=["queue"]),
            "idle": CounterMetricFamily("logcaster_rx_idle_seconds", "Time the RX loop spent on empty polls and "
                                        "naps", labels=["queue"]),
        }
        in_flight = GaugeMetricFamily("logcaster_in_flight_records", "Records in the ring not yet committed by "
                                      "every sink", labels=["queue"])
        fill = GaugeMetricFamily("logcaster_ring_fill_ratio", "Share of the ring's bytes not yet released",
                                 labels=["queue"])
        size = GaugeMetricFamily("logcaster_ring_size_bytes", "Bytes of the ring's data area", labels=["queue"])
        busy_ratio = GaugeMetricFamily("logcaster_rx_busy_ratio", "Busy share of the RX loop since it started",
                                       labels=["queue"])
        latency = HistogramMetricFamily("logcaster_latency_seconds", "Time from rx_time to the hand-off to the "
                                        "sinks, per record", labels=["queue"])
        for q in snap.queues:
            qid, rx, dec = str(q["queue"]), q["rx"], q["decoder"]
            port = q["label"].rsplit(" q", 1)[0]
            fams["packets"].add_metric([qid, port, snap.backend], rx["packets"])
            fams["bytes"].add_metric([qid, port, snap.backend], rx["bytes"])
            for fmt, n in dec["formats"].items():
                fams["records"].add_metric([qid, fmt], n)
            for reason in NOT_RECORDS:
                fams["other"].add_metric([qid, reason], dec[reason])
            fams["delivered"].add_metric([qid], q["delivered"])
            fams["dropped"].add_metric([qid, "ring_full"], q["ring_full"])
            fams["dropped"].add_metric([qid, "sink_failed"], q["sink_failed"])
            fams["dups"].add_metric([qid], q["duplicates_suppressed"])
            fams["restarts"].add_metric([qid], q["restarts"])
            hz = rx["tsc_hz"] or 1
            fams["busy"].add_metric([qid], rx["cycles_busy"] / hz)
            fams["idle"].add_metric([qid], rx["cycles_idle"] / hz)
            in_flight.add_metric([qid], q["in_flight"])
            fill.add_metric([qid], q["ring_fill"])
            size.add_metric([qid], q["ring"]["data_size"])
            busy_ratio.add_metric([qid], q["rx_busy_fraction"])
            buckets, sum_s = _latency_buckets(q["latency_counts"])
            latency.add_metric([qid], buckets, sum_s)
        yield from fams.values()
        yield from (in_flight, fill, size, busy_ratio, latency)

    def _senders(self, snap: Snapshot):
        """Severities, budgets and upstream loss; per-source series only for
        the TOP_N worst (bounded cardinality: stats --sources has them all)."""
        t = snap.totals
        sev = CounterMetricFamily("logcaster_records_by_severity", "Syslog records by severity (none: no valid PRI)",
                                  labels=["severity"])
        for name, n in t.severities.items():
            sev.add_metric([name], n)
        yield sev
        thr = CounterMetricFamily("logcaster_throttled_packets", "Datagrams over their source's budget, by where "
                                  "they were cut (xdp: before a copy; rx: in the RX loop)", labels=["where"])
        thr.add_metric(["xdp"], t.throttled_nic)
        thr.add_metric(["rx"], t.throttled - t.throttled_nic)
        yield thr
        per_src = GaugeMetricFamily("logcaster_source_throttled_packets", "Datagrams throttled, for the sources "
                                    "throttled most", labels=["source"])
        for r in t.throttled_sources:
            per_src.add_metric([r["src"]], r["throttled"])
        yield per_src
        up = t.upstream
        for key, help_ in (("lost", "Messages the senders' sequence numbers say never arrived (lost upstream)"),
                           ("gaps", "Records that came after a gap in their sender's sequence"),
                           ("duplicates", "Records whose sequence number was already seen"),
                           ("reorders", "Records that came after later ones (no longer counted lost)"),
                           ("resets", "Sender sequences that restarted or wrapped"),
                           ("records", "Records that carried a sender sequence number")):
            fam = CounterMetricFamily(f"logcaster_upstream_{key}", help_)
            fam.add_metric([], up.get(key, 0))
            yield fam
        worst = GaugeMetricFamily("logcaster_sender_upstream_lost_messages", "Messages lost upstream, for the "
                                  "senders that lost most", labels=["source", "app"])
        for r in up.get("top", []):
            worst.add_metric([r["src"], r["app"] or ""], r["lost"])
        yield worst

    def _nic(self, snap: Snapshot):
        drops = CounterMetricFamily("logcaster_rx_dropped_packets", "Packets lost before the RX loop, by kind "
                                    "(imissed, ierrors, rx_nombuf, xdp_redirect_failed, kernel_drops)",
                                    labels=["port", "backend", "kind"])
        for port, stats in snap.nic.items():
            for kind in NIC_LOSSES:
                if kind in stats:
                    drops.add_metric([port, snap.backend, kind], stats[kind])
        yield drops


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, fmt, *args) -> None:      # a scrape is not worth a log line
        pass


class MetricsServer:
    """The HTTP endpoint on a thread of its own; `publish()` swaps the snapshot."""

    def __init__(self, listen: tuple[str, int]):
        host, port = listen
        self.snapshot: Snapshot | None = None
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self))
        metrics_app = make_wsgi_app(registry)

        def app(environ, start_response):
            path = environ.get("PATH_INFO", "")
            if path in ("/-/healthy", "/-/ready"):
                ok, why = self.healthy() if path == "/-/healthy" else self.ready()
                start_response("200 OK" if ok else "503 Service Unavailable",
                               [("Content-Type", "text/plain; charset=utf-8")])
                return [f"{why}\n".encode()]
            return metrics_app(environ, start_response)

        family = _Server6 if ":" in host else _Server
        try:
            self.httpd = make_server(host, port, app, server_class=family, handler_class=_QuietHandler)
        except OSError as exc:
            hint = {errno.EADDRINUSE: "the port is in use", errno.EACCES: "a port below 1024 needs "
                    "CAP_NET_BIND_SERVICE", errno.EADDRNOTAVAIL: "not an address of this host"}.get(exc.errno, "")
            raise ConfigError(f"metrics.listen: cannot listen on {host}:{port}" + (f" ({hint})" if hint else ""),
                              errno=exc.errno) from None
        bound_host, bound_port = self.httpd.server_address[:2]
        self.url = f"http://{'[' + bound_host + ']' if ':' in bound_host else bound_host}:{bound_port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="logcaster-metrics", daemon=True)
        self._thread.start()

    def publish(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def healthy(self) -> tuple[bool, str]:
        snap = self.snapshot
        if snap is None:
            return True, "starting"
        if snap.final:
            return True, "stopped"
        if not snap.workers_alive:
            return False, "a worker is down (being restarted)"
        if snap.capturing and time.monotonic() - snap.taken > HEALTH_STALE_S:
            return False, f"no counters for {time.monotonic() - snap.taken:.0f} s: the supervisor is stuck"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        snap = self.snapshot
        if snap is None or not snap.capturing:
            return False, "stopped" if snap is not None and snap.final else "not capturing"
        return True, "capturing"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)
