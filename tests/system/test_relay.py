"""The relay sink end to end: `logcaster run` (DPDK net_pcap) -> ring ->
worker -> relay sink -> a real rsyslog of the test's own (UDP, TCP with
RFC 6587 octet counting or LF framing, TLS with a CA made here), every
payload arriving byte for byte; a receiver killed and restarted mid-stream
loses nothing over TCP or TLS."""

from __future__ import annotations

import time

import pytest

from appliance.sample import udp_frame, write_frames
from appliance.config import SinkConfig
from appliance.sinks import SinkError
from appliance.sinks.relay import RelaySink
from rsyslog_peer import Rsyslog, make_test_ca
from runner import Appliance, base_config, run_to_end, sink_stats

pytestmark = pytest.mark.dpdk


def payload(i: int) -> bytes:
    """Dialects as devices send them, each unique; no LF (the receiver's file is line based)."""
    kind = i % 4
    if kind == 0:
        return f'<165>1 2026-03-14T09:26:53.{i % 1000:03d}Z host{i % 50} app - ID{i} [ex@32473 k="v"] id={i} grüße'.encode()
    if kind == 1:
        return f"<34>Mar 14 09:26:{i % 60:02d} host{i % 50} sshd[{i}]: id={i} Failed password".encode()
    if kind == 2:
        return f"<189>{i}: *Mar 14 09:26:53.123: %LINK-3-UPDOWN: id={i} Interface Gi0/{i % 48}".encode()
    return f"<13>id={i} no header at all \t tab".encode()


def write_pcap(path, n: int) -> list[bytes]:
    payloads = [payload(i) for i in range(n)]
    t0 = 1_773_480_413.0
    write_frames(path, ((t0 + i * 1e-5, udp_frame(f"198.18.{1 + i % 3}.{i % 250 + 2}", p))
                        for i, p in enumerate(payloads)))
    return payloads


def wait_for(rsyslog: Rsyslog, name: str, n: int, timeout: float = 20.0) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while rsyslog.count(name) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)                      # and nothing more comes
    return rsyslog.lines(name)


@pytest.fixture
def rsyslog(tmp_path):
    ca = make_test_ca(tmp_path / "ca")
    peer = Rsyslog(tmp_path / "rsyslog", tls=ca).start()
    peer.ca = ca[0]
    yield peer
    peer.stop()


@pytest.mark.parametrize("framing", ["octet-counting", "lf"])
def test_every_record_reaches_rsyslog_byte_for_byte(tmp_path, rsyslog, framing):
    n = 20_000
    payloads = write_pcap(tmp_path / "in.pcap", n)
    cfg = base_config(tmp_path, tmp_path / "in.pcap")
    cfg["sinks"].append({"type": "relay", "framing": framing, "settle_s": 0.2, "tls_ca": str(rsyslog.ca),
                         "targets": [f"udp://127.0.0.1:{rsyslog.udp}", f"tcp://127.0.0.1:{rsyslog.tcp}",
                                     f"tls://localhost:{rsyslog.tls_port}"]})
    run = run_to_end(cfg, tmp_path)
    assert run.rc == 0, run.stderr
    assert run.stats["delivered"] == n and run.stats["lost"] == 0
    assert (f"relay -> udp://127.0.0.1:{rsyslog.udp}, tcp://127.0.0.1:{rsyslog.tcp}, "
            f"tls://localhost:{rsyslog.tls_port}") in run.stdout
    relay = sink_stats(run, "relay")
    assert (relay["records"], relay["resent_records"], relay["failures"]) == (n, 0, 0)
    framing_bytes = n if framing == "lf" else sum(len(f"{len(p)} ") for p in payloads)
    assert relay["bytes"] == 3 * sum(map(len, payloads)) + 2 * framing_bytes
    for name in ("tcp", "tls", "udp"):
        assert sorted(wait_for(rsyslog, name, n)) == sorted(payloads), name


@pytest.mark.parametrize("scheme", ["tcp", "tls"])
def test_receiver_killed_mid_stream_loses_nothing(tmp_path, rsyslog, scheme):
    n = 100_000
    payloads = write_pcap(tmp_path / "in.pcap", n)
    cfg = base_config(tmp_path, tmp_path / "in.pcap")
    target = f"tcp://127.0.0.1:{rsyslog.tcp}" if scheme == "tcp" else f"tls://localhost:{rsyslog.tls_port}"
    # settle_s longer than the kill comes after the first lines: everything unsettled is sent again
    cfg["sinks"].append({"type": "relay", "settle_s": 3.0, "targets": [target], "tls_ca": str(rsyslog.ca)})
    with Appliance(cfg, tmp_path) as app:
        deadline = time.monotonic() + 60
        while rsyslog.count(scheme) == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        before = rsyslog.count(scheme)
        rsyslog.kill()                   # SIGKILL: its queue and socket buffers die with it
        time.sleep(1.5)                  # the sink fails, and retries every 0.5 s
        rsyslog.start()                  # same ports, same files
        run = app.wait(120)
    assert run.rc == 0, run.stderr
    assert run.stats["delivered"] == n and run.stats["lost"] == 0
    relay = sink_stats(run, "relay")
    got = wait_for(rsyslog, scheme, n)
    print(f"\nlines before the kill >= {before}; after: {len(got)} for {n} records; "
          f"sent again: {relay['resent_records']}; failures: {relay['failures']}")
    assert set(payloads) <= set(got), "every record arrived"
    torn = set(got) - set(payloads)
    assert len(torn) <= 1, f"at most the line rsyslogd was writing when it was killed: {torn}"
    assert relay["failures"] >= 1 and relay["targets"][target]["connects"] >= 2
    assert len(got) - len(torn) - n <= relay["resent_records"], "duplicates only from what was sent again"



class _Taken:
    """One batch as the worker hands it (first, end, hdrs, records)."""

    def __init__(self, batch):
        self.first, self.end, self.hdrs, self.records = 0, 1, [batch.hdr], batch.hdr.count


def one_batch(payloads: list[bytes]):
    """A batch holding these payloads, decoded by the C decoder."""
    from appliance.batch import Batch
    from appliance.decoder import Decoder
    from dpdk_shim import lib

    batch, decoder = Batch(capacity=1024), Decoder()
    for p in payloads:
        frame = udp_frame("198.18.1.2", p)
        assert lib.lc_decode_frame(decoder.c, batch.hdr, lib.LC_LINK_ETHERNET, frame, len(frame), 0) == 1
    return batch


def test_tls_checks_the_receivers_name(tmp_path, rsyslog):
    """The certificate names localhost only: 127.0.0.1 is refused unless
    tls_verify_hostname is off; a CA that did not sign it is refused."""
    batch = one_batch([b"<13>hello"])
    addr = ("tls", "127.0.0.1", rsyslog.tls_port)
    sink = RelaySink(SinkConfig(type="relay", targets=(addr,), tls_ca=str(rsyslog.ca)), 0)
    with pytest.raises(SinkError, match="IP address mismatch"):
        sink.write(_Taken(batch))
    other_ca = make_test_ca(tmp_path / "other")[0]
    sink = RelaySink(SinkConfig(type="relay", targets=(("tls", "localhost", rsyslog.tls_port),),
                                tls_ca=str(other_ca)), 0)
    with pytest.raises(SinkError, match="certificate verify failed"):
        sink.write(_Taken(batch))
    sink = RelaySink(SinkConfig(type="relay", targets=(addr,), tls_ca=str(rsyslog.ca), tls_verify_hostname=False,
                                settle_s=0.1), 0)
    sink.write(_Taken(batch))
    sink.close()
    assert wait_for(rsyslog, "tls", 1) == [b"<13>hello"]


def test_a_receiver_that_is_not_there_is_retried_not_lost(tmp_path):
    from rsyslog_peer import free_port

    port = free_port()
    sink = RelaySink(SinkConfig(type="relay", targets=(("tcp", "127.0.0.1", port),), connect_timeout_s=1), 0)
    with pytest.raises(SinkError, match=f"cannot connect to tcp://127.0.0.1:{port}: Connection refused"):
        sink.write(_Taken(one_batch([b"<13>x"])))
    assert sink.committed() == 0 and sink.need == 0     # nothing released: the ring keeps it
