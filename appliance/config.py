"""The configuration: one YAML file, validated once at start-up into frozen objects.

An error names the key (dotted path), the bad value and what is allowed, and
nothing starts. Workers and the capture loop receive these objects, never the
file path. The commented example is docs/logcaster.example.yaml.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from appliance.errors import ConfigError
from appliance.timezone import utc_offset_seconds

BACKENDS = ("dpdk", "afxdp", "socket", "auto")
MAX_UDP_PORTS = 16                 # capture.udp_ports: the XDP program's port map has this many entries
MAX_QUEUES = 16                    # capture.ports[i].queues
SINK_TYPES = ("parquet", "jsonl", "null", "relay", "kafka")
RELAY_SCHEMES = ("udp", "tcp", "tls")
_SIZE_UNITS = {"": 1, "k": 1 << 10, "ki": 1 << 10, "m": 1 << 20, "mi": 1 << 20, "g": 1 << 30, "gi": 1 << 30}


@dataclass(frozen=True)
class PortConfig:
    name: str                      # DPDK device name (net_pcap0, 0000:01:00.0)
    vdev: str | None = None        # DPDK --vdev argument creating the device, if virtual
    queues: int = 1
    rx_descriptors: int | None = None   # RX ring size; None: the backend's default (DPDK 1024, AF_XDP 4096)
    promiscuous: bool = True
    link_timeout_ms: int = 3000
    extra_mbufs: int = 0           # net_pcap infinite_rx keeps the whole file in mbufs


@dataclass(frozen=True)
class CaptureConfig:
    backend: str = "dpdk"
    ports: tuple[PortConfig, ...] = ()
    udp_ports: tuple[int, ...] = ()        # keep UDP to these ports only; () = all
    burst: int = 64
    batch_size: int = 1024                 # records per batch at most
    batch_avg_payload: int = 256           # sizing of a batch's string areas while it fills
    batch_max_delay_us: int = 200
    timezone: str = "UTC"
    stop_at_end_of_file: bool = True       # net_pcap without infinite_rx: end the run at EOF

    @property
    def tz_offset_s(self) -> int:
        return utc_offset_seconds(self.timezone)


@dataclass(frozen=True)
class DpdkConfig:
    in_memory: bool = True                 # no hugepage files: two runs never eat each other's
    file_prefix: str = "logcaster"
    huge_dir: str | None = None
    socket_mem_mb: int | None = None
    log_level: str = "notice"
    extra_args: tuple[str, ...] = ()
    idle_spin_us: int = 50                 # a dry RX queue is polled this long, then the loop naps
    idle_sleep_us: int = 100               # each nap (bounded by the open batch's deadline); 0 = busy-poll


@dataclass(frozen=True)
class AfXdpConfig:
    xdp_mode: str = "auto"                 # auto (native, else generic) | native | generic
    zerocopy: str = "auto"                 # auto (zero-copy, else copy) | on | off
    hugepages: bool = True                 # UMEM on huge pages when free ones exist
    need_wakeup: bool = True
    deny: tuple[str, ...] = ()             # source prefixes dropped in XDP (a flooding sender)
    idle_spin_us: int = 50                 # an idle RX loop spins this long, then sleeps in poll()
    idle_sleep_ms: int = 10


@dataclass(frozen=True)
class SocketConfig:
    rcvbuf: int = 32 << 20                 # SO_RCVBUF(FORCE) asked for; the kernel's grant is reported
    timestamps: bool = True                # rx_time from the kernel (SO_TIMESTAMPNS), else when recvmmsg returned


# One second of 1 M msgs/s of 200-byte messages: a record of such a message
# takes ~500 bytes in a batch (raw, message, the short fields, offsets,
# fixed columns; measured by tests/unit/test_ring.py's sizing test).
DEFAULT_RING_BYTES = 512 << 20


@dataclass(frozen=True)
class RingConfig:
    dir: str | None = None                 # None: first writable hugetlbfs mount, else /dev/shm
    size: int = DEFAULT_RING_BYTES         # bytes of batches per ring (per RX queue)


@dataclass(frozen=True)
class SinkConfig:
    type: str
    path: str | None = None
    rotate_seconds: float = 60.0
    rotate_bytes: int = 256 << 20
    row_group_rows: int = 256 * 1024
    compression: str = "zstd"
    delay_ms: float = 0.0                  # null sink: slow down on purpose, per batch (tests, overload drills)
    # relay sink: every record's raw payload to each target (fan-out)
    targets: tuple[tuple[str, str, int], ...] = ()   # (scheme, host, port): udp | tcp | tls
    framing: str = "octet-counting"        # TCP/TLS: RFC 6587 octet counting, or "lf"
    tls_ca: str | None = None              # CA file the receiver's certificate is checked against
    tls_cert: str | None = None            # client certificate (PEM) and its key, if the receiver asks
    tls_key: str | None = None
    tls_verify_hostname: bool = True
    settle_s: float = 1.0                  # TCP/TLS: a batch is committed once the peer ACKed it and
                                           # the connection stayed up this long after (docs/RELAY.md)
    connect_timeout_s: float = 5.0
    # kafka sink (docs/KAFKA.md)
    brokers: str | None = None             # bootstrap servers, "host:port[,host:port]"
    topic: str | None = None
    key: str = "hostname"                  # hostname | src_ip | none (round robin)
    value: str = "raw"                     # raw | json (the record as `logcaster decode` prints it)
    linger_ms: float = 5.0
    batch_bytes: int = 1 << 20
    properties: tuple[tuple[str, str], ...] = ()   # any librdkafka property, passed through


@dataclass(frozen=True)
class MetricsConfig:
    listen: tuple[str, int] | None = None  # (host, port) of the Prometheus endpoint; None: off


@dataclass(frozen=True)
class SequenceRule:
    """Where a sender's sequence number is (docs/SENDERS.md)."""

    kind: str                              # "cisco" (IOS/NX-OS "000123: ") | "sd" (an RFC 5424 SD-PARAM)
    sd_id: str = ""                        # sd: the SD-ID ("meta") and PARAM-NAME ("sequenceId")
    param: str = ""
    per_app: bool = True                   # the sender is (source, app_name); False: the source alone
    min: int = 1                           # the number after a wrap
    max: int = (1 << 31) - 1               # the last number before it

    @property
    def name(self) -> str:
        return "cisco" if self.kind == "cisco" else f"{self.sd_id}/{self.param}"


DEFAULT_SEQUENCE_RULES = (
    SequenceRule("cisco", per_app=False, min=0, max=(1 << 32) - 1),
    SequenceRule("sd", "meta", "sequenceId", per_app=True, min=1, max=(1 << 31) - 1),   # RFC 5424 7.3.1
)
MAX_SEQUENCE_RULES = 8                     # struct lc_senders.rules


@dataclass(frozen=True)
class SendersConfig:
    enabled: bool = True                   # the senders table: sequence gaps (and traffic) per sender
    traffic: bool = True                   # every record counts in its sender's row (top senders and apps);
                                           # false: only records with a sequence number (cheaper)
    table_size: int = 16384                # senders kept per RX queue; the least recently heard go first
    max_gap: int = 1_000_000               # a jump forward by more is a restart, not loss
    sequence: tuple[SequenceRule, ...] = DEFAULT_SEQUENCE_RULES


@dataclass(frozen=True)
class BudgetOverride:
    prefix: str                            # CIDR; the longest prefix holding a source wins
    rate: float                            # messages/s; 0: no limit for these sources
    burst: int


MAX_BUDGET_OVERRIDES = 64                  # struct lc_budget.overrides; the XDP trie holds as many


@dataclass(frozen=True)
class BudgetConfig:
    rate: float = 0.0                      # messages/s per source address; 0: off (the default)
    burst: int = 0                         # messages a source may send at once; 0: one second's worth
    overrides: tuple[BudgetOverride, ...] = ()
    table_size: int = 65536                # sources tracked per RX queue (and in the XDP map)

    @property
    def enabled(self) -> bool:
        return self.rate > 0 or any(o.rate > 0 for o in self.overrides)


def budget_burst(rate: float, burst: int) -> int:
    """The burst a budget allows: the configured one, else one second of `rate`."""
    return burst if burst > 0 else max(1, int(rate))


@dataclass(frozen=True)
class CoresConfig:
    rx: tuple[int, ...] = ()               # () = planned from the topology
    workers: tuple[int, ...] = ()


@dataclass(frozen=True)
class Config:
    capture: CaptureConfig
    sinks: tuple[SinkConfig, ...]
    dpdk: DpdkConfig = DpdkConfig()
    afxdp: AfXdpConfig = AfXdpConfig()
    socket: SocketConfig = SocketConfig()
    ring: RingConfig = RingConfig()
    cores: CoresConfig = CoresConfig()
    metrics: MetricsConfig = MetricsConfig()
    senders: SendersConfig = SendersConfig()
    budget: BudgetConfig = BudgetConfig()
    stats_interval_s: float = 5.0
    restart_workers: bool = True
    source: str = "<defaults>"


class _Reader:
    """Walks a YAML mapping, naming each key by its dotted path in errors."""

    def __init__(self, data: Any, path: str):
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path or 'config'}: expected a mapping, got {_show(data)}")
        self.data = dict(data)
        self.path = path

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def take(self, name: str, default: Any = None) -> Any:
        return self.data.pop(name, default)

    def done(self, allowed: list[str]) -> None:
        if self.data:
            unknown = sorted(map(str, self.data))[0]
            raise ConfigError(f"{self.key(unknown)}: unknown key (allowed: {', '.join(allowed)})")


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else f"a {type(v).__name__}"


def _int(r: _Reader, name: str, default: int, lo: int, hi: int) -> int:
    v = r.take(name, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ConfigError(f"{r.key(name)}: {_show(v)} is not allowed (an integer from {lo} to {hi})")
    return v


def _float(r: _Reader, name: str, default: float, lo: float, hi: float) -> float:
    v = r.take(name, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise ConfigError(f"{r.key(name)}: {_show(v)} is not allowed (a number from {lo} to {hi})")
    return float(v)


def _bool(r: _Reader, name: str, default: bool) -> bool:
    v = r.take(name, default)
    if not isinstance(v, bool):
        raise ConfigError(f"{r.key(name)}: {_show(v)} is not allowed (true or false)")
    return v


def _str(r: _Reader, name: str, default: str | None, *, choices: tuple[str, ...] = (),
         pattern: str | None = None) -> str | None:
    v = r.take(name, default)
    if v is None and default is None:
        return None
    if not isinstance(v, str) or not v:
        raise ConfigError(f"{r.key(name)}: {_show(v)} is not allowed (a non-empty string)")
    if choices and v not in choices:
        raise ConfigError(f"{r.key(name)}: {v!r} is not allowed (one of: {', '.join(choices)})")
    if pattern and not re.fullmatch(pattern, v):
        raise ConfigError(f"{r.key(name)}: {v!r} is not allowed (must match {pattern})")
    return v


def _size(r: _Reader, name: str, default: int) -> int:
    v = r.take(name, default)
    if isinstance(v, int) and not isinstance(v, bool) and v > 0:
        return v
    m = re.fullmatch(r"\s*(\d+)\s*([kmg]i?b?|)\s*", str(v).lower()) if isinstance(v, str) else None
    unit = m.group(2).rstrip("b") if m else ""
    if not m or unit not in _SIZE_UNITS or int(m.group(1)) <= 0:
        raise ConfigError(f"{r.key(name)}: {_show(v)} is not allowed (a size in bytes, e.g. 268435456 or 256MiB)")
    return int(m.group(1)) * _SIZE_UNITS[unit]


def _int_list(r: _Reader, name: str, lo: int, hi: int) -> tuple[int, ...]:
    v = r.take(name, [])
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) and lo <= x <= hi for x in v):
        raise ConfigError(f"{r.key(name)}: {_show(v)} is not allowed (a list of integers from {lo} to {hi})")
    return tuple(v)


def _port(data: Any, path: str) -> PortConfig:
    if isinstance(data, str):
        data = {"name": data}
    r = _Reader(data, path)
    p = PortConfig(
        name=_str(r, "name", "", pattern=r"[A-Za-z0-9_:.\-]+"),
        vdev=_str(r, "vdev", None),
        queues=_int(r, "queues", 1, 1, MAX_QUEUES),
        rx_descriptors=_int(r, "rx_descriptors", 1024, 64, 32768) if r.data.get("rx_descriptors") is not None
        else r.take("rx_descriptors"),
        promiscuous=_bool(r, "promiscuous", True),
        link_timeout_ms=_int(r, "link_timeout_ms", 3000, 0, 60000),
        extra_mbufs=_int(r, "extra_mbufs", 0, 0, 1 << 24),
    )
    r.done([f.name for f in dataclasses.fields(PortConfig)])
    if p.vdev and not p.vdev.split(",", 1)[0] == p.name:
        raise ConfigError(f"{path}.vdev: {p.vdev!r} must start with the port name {p.name!r} "
                          f"(e.g. {p.name},rx_pcap=/path/file.pcap)")
    return p


def _capture(data: Any) -> CaptureConfig:
    r = _Reader(data, "capture")
    backend = _str(r, "backend", "dpdk", choices=BACKENDS)
    ports_raw = r.take("ports", [])
    if not isinstance(ports_raw, list) or not ports_raw:
        raise ConfigError(f"capture.ports: {_show(ports_raw)} is not allowed (a non-empty list of ports)")
    ports = tuple(_port(p, f"capture.ports[{i}]") for i, p in enumerate(ports_raw))
    names = [p.name for p in ports]
    if len(set(names)) != len(names):
        raise ConfigError(f"capture.ports: port names repeat ({', '.join(names)})")
    c = CaptureConfig(
        backend=backend,
        ports=ports,
        udp_ports=_int_list(r, "udp_ports", 1, 65535),
        burst=_int(r, "burst", 64, 1, 512),
        batch_size=_int(r, "batch_size", 1024, 1, 65536),
        batch_avg_payload=_int(r, "batch_avg_payload", 256, 16, 65535),
        batch_max_delay_us=_int(r, "batch_max_delay_us", 200, 1, 10_000_000),
        timezone=_str(r, "timezone", "UTC"),
        stop_at_end_of_file=_bool(r, "stop_at_end_of_file", True),
    )
    r.done([f.name for f in dataclasses.fields(CaptureConfig)])
    if len(c.udp_ports) > MAX_UDP_PORTS:
        raise ConfigError(f"capture.udp_ports: {len(c.udp_ports)} ports is too many (at most {MAX_UDP_PORTS})")
    try:  # the C batch layout is the judge of the pair; config stays importable without the built shim
        from dpdk_shim import lib
    except ImportError:
        lib = None
    if lib is not None and lib.lc_batch_size(c.batch_size, c.batch_avg_payload) < 0:
        import bisect

        records = bisect.bisect_left(range(1, c.batch_size), True,
                                     key=lambda n: lib.lc_batch_size(n, c.batch_avg_payload) < 0)
        payload = 15 + bisect.bisect_left(range(16, c.batch_avg_payload), True,
                                          key=lambda a: lib.lc_batch_size(c.batch_size, a) < 0)
        raise ConfigError(f"capture.batch_size x capture.batch_avg_payload: {c.batch_size} x {c.batch_avg_payload} "
                          f"is too large (a batch must stay under 4 GiB: at most {records} records of "
                          f"{c.batch_avg_payload} bytes, or batch_avg_payload at most {payload} for "
                          f"{c.batch_size} records)")
    try:
        utc_offset_seconds(c.timezone)  # validated now, not when the decoder is set up
    except ConfigError as exc:
        raise ConfigError(f"capture.timezone: {exc}") from None
    return c


def _dpdk(data: Any) -> DpdkConfig:
    r = _Reader(data, "dpdk")
    extra = r.take("extra_args", [])
    if not isinstance(extra, list) or not all(isinstance(a, str) for a in extra):
        raise ConfigError(f"dpdk.extra_args: {_show(extra)} is not allowed (a list of strings)")
    socket_mem = r.take("socket_mem_mb", None)
    if socket_mem is not None and (not isinstance(socket_mem, int) or socket_mem <= 0):
        raise ConfigError(f"dpdk.socket_mem_mb: {_show(socket_mem)} is not allowed (a positive integer)")
    d = DpdkConfig(
        in_memory=_bool(r, "in_memory", True),
        file_prefix=_str(r, "file_prefix", "logcaster", pattern=r"[A-Za-z0-9_\-]+"),
        huge_dir=_str(r, "huge_dir", None),
        socket_mem_mb=socket_mem,
        log_level=_str(r, "log_level", "notice",
                       choices=("emerg", "alert", "crit", "error", "warning", "notice", "info", "debug")),
        extra_args=tuple(extra),
        idle_spin_us=_int(r, "idle_spin_us", 50, 0, 1_000_000),
        idle_sleep_us=_int(r, "idle_sleep_us", 100, 0, 10_000),
    )
    r.done([f.name for f in dataclasses.fields(DpdkConfig)])
    return d


def _afxdp(data: Any) -> AfXdpConfig:
    import ipaddress

    r = _Reader(data, "afxdp")
    deny = r.take("deny", [])
    if not isinstance(deny, list) or not all(isinstance(d, str) for d in deny):
        raise ConfigError(f"afxdp.deny: {_show(deny)} is not allowed (a list of CIDR prefixes)")
    for d in deny:
        try:
            ipaddress.ip_network(d, strict=False)
        except ValueError:
            raise ConfigError(f"afxdp.deny: {d!r} is not allowed (a CIDR prefix such as 192.0.2.0/24)") from None
    a = AfXdpConfig(
        xdp_mode=_str(r, "xdp_mode", "auto", choices=("auto", "native", "generic")),
        zerocopy=_str(r, "zerocopy", "auto", choices=("auto", "on", "off")),
        hugepages=_bool(r, "hugepages", True),
        need_wakeup=_bool(r, "need_wakeup", True),
        deny=tuple(deny),
        idle_spin_us=_int(r, "idle_spin_us", 50, 0, 1_000_000),
        idle_sleep_ms=_int(r, "idle_sleep_ms", 10, 1, 1000),
    )
    r.done([f.name for f in dataclasses.fields(AfXdpConfig)])
    return a


def _socket(data: Any) -> SocketConfig:
    r = _Reader(data, "socket")
    s = SocketConfig(rcvbuf=_size(r, "rcvbuf", 32 << 20), timestamps=_bool(r, "timestamps", True))
    r.done([f.name for f in dataclasses.fields(SocketConfig)])
    return s


def _ring(data: Any) -> RingConfig:
    r = _Reader(data, "ring")
    if "slots" in r.data:
        raise ConfigError(f"ring.slots: no longer used (rings are sized in bytes: set ring.size, e.g. 512MiB; "
                          f"default {DEFAULT_RING_BYTES >> 20}MiB)")
    ring = RingConfig(dir=_str(r, "dir", None), size=_size(r, "size", DEFAULT_RING_BYTES))
    r.done(["dir", "size"])
    return ring


def _check_ring_geometry(cfg: "Config") -> None:
    """A ring holds at least two batches of the largest size the capture
    settings open: checked against the shim's own sizing, so what passes
    here is what the C side accepts. Skipped when the shim is not built
    (config is read by tools that do not need it)."""
    try:
        from dpdk_shim import lib
    except ImportError:
        return
    cap = cfg.capture
    batch = lib.lc_ring_batch_max(cap.batch_size, cap.batch_avg_payload)
    if batch < 0:
        return          # capture.batch_* are checked on their own
    if lib.lc_ring_size(cfg.ring.size, cap.batch_size, cap.batch_avg_payload) < 0:
        need = -(-lib.LC_RING_MIN_BATCHES * batch // (1 << 20))
        raise ConfigError(f"ring.size: {cfg.ring.size} bytes is not allowed (at least {need}MiB: "
                          f"{lib.LC_RING_MIN_BATCHES} batches of capture.batch_size {cap.batch_size} x "
                          f"batch_avg_payload {cap.batch_avg_payload}, {batch:,} bytes each)")


def _sink(data: Any, path: str) -> SinkConfig:
    if isinstance(data, str):
        data = {"type": data}
    r = _Reader(data, path)
    s = SinkConfig(
        type=_str(r, "type", "parquet", choices=SINK_TYPES),
        path=_str(r, "path", None),
        rotate_seconds=_float(r, "rotate_seconds", 60.0, 0.1, 86400.0),
        rotate_bytes=_size(r, "rotate_bytes", 256 << 20),
        row_group_rows=_int(r, "row_group_rows", 256 * 1024, 1024, 16 << 20),
        compression=_str(r, "compression", "zstd", choices=("zstd", "snappy", "lz4", "gzip", "none")),
        delay_ms=_float(r, "delay_ms", 0.0, 0.0, 60000.0),
        targets=_relay_targets(r, "targets"),
        framing=_str(r, "framing", "octet-counting", choices=("octet-counting", "lf")),
        tls_ca=_str(r, "tls_ca", None),
        tls_cert=_str(r, "tls_cert", None),
        tls_key=_str(r, "tls_key", None),
        tls_verify_hostname=_bool(r, "tls_verify_hostname", True),
        settle_s=_float(r, "settle_s", 1.0, 0.0, 60.0),
        connect_timeout_s=_float(r, "connect_timeout_s", 5.0, 0.1, 300.0),
        brokers=_str(r, "brokers", None),
        topic=_str(r, "topic", None, pattern=r"[A-Za-z0-9._-]{1,249}"),
        key=_str(r, "key", "hostname", choices=("hostname", "src_ip", "none")),
        value=_str(r, "value", "raw", choices=("raw", "json")),
        linger_ms=_float(r, "linger_ms", 5.0, 0.0, 60000.0),
        batch_bytes=_size(r, "batch_bytes", 1 << 20),
        properties=_properties(r, "properties"),
    )
    r.done([f.name for f in dataclasses.fields(SinkConfig)])
    if s.type in ("parquet", "jsonl") and not s.path:
        raise ConfigError(f"{path}.path: missing (the {s.type} sink needs a directory)")
    if s.type == "relay" and not s.targets:
        raise ConfigError(f"{path}.targets: missing (the relay sink needs at least one, "
                          f'e.g. ["tcp://198.51.100.7:514"])')
    if any(t[0] == "tls" for t in s.targets) and not s.tls_ca:
        raise ConfigError(f"{path}.tls_ca: missing (a tls:// target checks the receiver against a CA file)")
    if bool(s.tls_cert) != bool(s.tls_key):
        raise ConfigError(f"{path}: tls_cert and tls_key go together")
    if s.type == "kafka":
        for key in ("brokers", "topic"):
            if not getattr(s, key):
                raise ConfigError(f'{path}.{key}: missing (the kafka sink needs brokers and a topic, e.g. '
                                  f'brokers: "kafka1:9092,kafka2:9092", topic: syslog)')
        acks = dict(s.properties).get("acks", "all")
        if acks not in ("all", "-1"):
            raise ConfigError(f"{path}.properties.acks: {acks!r} is not allowed (all: a batch leaves the ring "
                              f"on delivery reports, which must mean the in-sync replicas have it)")
    data_keys = set(data) if isinstance(data, dict) else set()
    for kind, keys in _KIND_KEYS.items():
        stray = sorted(data_keys & keys) if s.type != kind else []
        if stray:
            raise ConfigError(f"{path}: {', '.join(stray)} belong{'s' if len(stray) == 1 else ''} to a {kind} "
                              f"sink, not to a {s.type} sink")
    return s


# Keys only one kind of sink reads (given to another kind, they are a mistake).
_KIND_KEYS = {
    "relay": {"targets", "framing", "tls_ca", "tls_cert", "tls_key", "tls_verify_hostname", "settle_s",
              "connect_timeout_s"},
    "kafka": {"brokers", "topic", "key", "value", "linger_ms", "batch_bytes", "properties"},
}


def _properties(r: _Reader, name: str) -> tuple[tuple[str, str], ...]:
    """librdkafka properties, passed through as strings ({"queue.buffering.max.kbytes": 1048576})."""
    raw = r.take(name, {})
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, (str, int, float, bool))
                                            for k, v in raw.items()):
        raise ConfigError(f"{r.key(name)}: {_show(raw)} is not allowed (a mapping of librdkafka "
                          f"properties to values)")
    return tuple((k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in raw.items())


def _relay_targets(r: _Reader, name: str) -> tuple[tuple[str, str, int], ...]:
    """targets: ["udp://HOST:PORT", "tcp://[::1]:514", "tls://relay.example.com:6514"]."""
    raw = r.take(name, [])
    if isinstance(raw, str):
        raw = [raw]
    allowed = 'a list of "udp://HOST:PORT", "tcp://HOST:PORT" or "tls://HOST:PORT"'
    if not isinstance(raw, list):
        raise ConfigError(f"{r.key(name)}: {_show(raw)} is not allowed ({allowed})")
    out = []
    for i, text in enumerate(raw):
        m = re.fullmatch(r"(udp|tcp|tls)://(?:\[([0-9A-Fa-f:.]+)\]|([^:/\[\]]+)):(\d{1,5})",
                         text) if isinstance(text, str) else None
        if not m or not 1 <= int(m.group(4)) <= 65535:
            raise ConfigError(f"{r.key(name)}[{i}]: {_show(text)} is not allowed ({allowed})")
        out.append((m.group(1), m.group(2) or m.group(3), int(m.group(4))))
    if len(set(out)) != len(out):
        raise ConfigError(f"{r.key(name)}: a target is listed twice")
    return tuple(out)


def _metrics(data: Any) -> MetricsConfig:
    """metrics.listen: "HOST:PORT" ("127.0.0.1:9721", "[::1]:9721", ":9721" for every address)."""
    import ipaddress

    r = _Reader(data, "metrics")
    text = r.take("listen", None)
    r.done(["listen"])
    if text is None:
        return MetricsConfig()
    allowed = 'an address and port such as "127.0.0.1:9721", "[::1]:9721" or ":9721" (every address)'
    m = re.fullmatch(r"(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]*)):(\d{1,5})", text) if isinstance(text, str) else None
    if not m or not 1 <= int(m.group(3)) <= 65535:
        raise ConfigError(f"metrics.listen: {_show(text)} is not allowed ({allowed})")
    host = m.group(1) or m.group(2) or "::"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9.-]+", host):
            raise ConfigError(f"metrics.listen: {text!r} is not allowed ({allowed})") from None
    return MetricsConfig(listen=(host, int(m.group(3))))


def _sequence_rule(v: Any, path: str) -> SequenceRule:
    if v == "cisco":
        return DEFAULT_SEQUENCE_RULES[0]
    allowed = '"cisco" or a mapping {sd_id, param[, per_app, min, max]}'
    if not isinstance(v, dict):
        raise ConfigError(f"{path}: {_show(v)} is not allowed ({allowed})")
    r = _Reader(v, path)
    sd_id = _str(r, "sd_id", None, pattern=r'[!#-<>-\\^-~]{1,32}')     # SD-NAME: printable but = ] " SP
    param = _str(r, "param", None, pattern=r'[!#-<>-\\^-~]{1,32}')
    if sd_id is None or param is None:
        raise ConfigError(f"{path}: needs sd_id and param ({allowed})")
    rule = SequenceRule("sd", sd_id, param, per_app=_bool(r, "per_app", True), min=_int(r, "min", 1, 0, 1 << 62),
                        max=_int(r, "max", (1 << 31) - 1, 1, (1 << 63) - 1))
    r.done(["sd_id", "param", "per_app", "min", "max"])
    if rule.max <= rule.min:
        raise ConfigError(f"{path}.max: {rule.max} is not allowed (above min, {rule.min})")
    return rule


def _senders(data: Any) -> SendersConfig:
    r = _Reader(data, "senders")
    rules = r.take("sequence", None)
    if rules is None:
        seq = DEFAULT_SEQUENCE_RULES
    elif isinstance(rules, list) and len(rules) <= MAX_SEQUENCE_RULES:
        seq = tuple(_sequence_rule(v, f"senders.sequence[{i}]") for i, v in enumerate(rules))
    else:
        raise ConfigError(f"senders.sequence: {_show(rules)} is not allowed (a list of at most "
                          f"{MAX_SEQUENCE_RULES} rules: \"cisco\" or {{sd_id, param}})")
    s = SendersConfig(enabled=_bool(r, "enabled", True), traffic=_bool(r, "traffic", True),
                      table_size=_int(r, "table_size", 16384, 8, 1 << 24),
                      max_gap=_int(r, "max_gap", 1_000_000, 1, 1 << 62), sequence=seq)
    r.done([f.name for f in dataclasses.fields(SendersConfig)])
    return s


def _budget(data: Any) -> BudgetConfig:
    import ipaddress

    r = _Reader(data, "budget")
    raw = r.take("overrides", [])
    if not isinstance(raw, list) or len(raw) > MAX_BUDGET_OVERRIDES:
        raise ConfigError(f"budget.overrides: {_show(raw)} is not allowed (a list of at most {MAX_BUDGET_OVERRIDES} "
                          f"{{prefix, rate[, burst]}})")
    overrides = []
    for i, o in enumerate(raw):
        orr = _Reader(o, f"budget.overrides[{i}]")
        prefix = _str(orr, "prefix", None)
        try:
            net = ipaddress.ip_network(prefix, strict=False) if prefix else None
        except ValueError:
            net = None
        if net is None:
            raise ConfigError(f"budget.overrides[{i}].prefix: {_show(prefix)} is not allowed "
                              f"(a CIDR prefix such as 198.18.0.0/24)")
        overrides.append(BudgetOverride(str(net), _float(orr, "rate", 0.0, 0.0, 1e9), _int(orr, "burst", 0, 0, 1 << 30)))
        orr.done(["prefix", "rate", "burst"])
    b = BudgetConfig(rate=_float(r, "rate", 0.0, 0.0, 1e9), burst=_int(r, "burst", 0, 0, 1 << 30),
                     overrides=tuple(overrides), table_size=_int(r, "table_size", 65536, 8, 1 << 24))
    r.done([f.name for f in dataclasses.fields(BudgetConfig)])
    return b


def _cores(data: Any) -> CoresConfig:
    r = _Reader(data, "cores")
    c = CoresConfig(rx=_int_list(r, "rx", 0, 4095), workers=_int_list(r, "workers", 0, 4095))
    r.done(["rx", "workers"])
    return c


def from_dict(data: Any, source: str = "<dict>") -> Config:
    r = _Reader(data, "")
    sinks_raw = r.take("sinks", [{"type": "parquet", "path": "./logcaster-data"}])
    if not isinstance(sinks_raw, list) or not sinks_raw:
        raise ConfigError(f"sinks: {_show(sinks_raw)} is not allowed (a non-empty list of sinks)")
    cfg = Config(
        capture=_capture(r.take("capture")),
        sinks=tuple(_sink(s, f"sinks[{i}]") for i, s in enumerate(sinks_raw)),
        dpdk=_dpdk(r.take("dpdk")),
        afxdp=_afxdp(r.take("afxdp")),
        socket=_socket(r.take("socket")),
        ring=_ring(r.take("ring")),
        cores=_cores(r.take("cores")),
        metrics=_metrics(r.take("metrics")),
        senders=_senders(r.take("senders")),
        budget=_budget(r.take("budget")),
        stats_interval_s=_float(r, "stats_interval_s", 5.0, 0.1, 3600.0),
        restart_workers=_bool(r, "restart_workers", True),
        source=source,
    )
    r.done(["capture", "sinks", "dpdk", "afxdp", "socket", "ring", "cores", "metrics", "senders", "budget",
            "stats_interval_s", "restart_workers"])
    _check_ring_geometry(cfg)
    return cfg


def load(path: str | Path) -> Config:
    """Read and validate a config file; ConfigError names what is wrong."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return from_dict(data, source=str(path))



__all__ = ["Config", "CaptureConfig", "PortConfig", "DpdkConfig", "AfXdpConfig", "SocketConfig", "RingConfig",
           "SinkConfig", "CoresConfig", "MetricsConfig", "SendersConfig", "SequenceRule", "BudgetConfig",
           "BudgetOverride", "budget_burst", "load", "from_dict"]
