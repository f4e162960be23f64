"""`logcaster decode`: pcap/pcapng -> JSON lines or Parquet, offline, at C speed."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path

import click
import pyarrow.parquet as pq

from appliance import preflight
from appliance.batch import SCHEMA, Batch
from appliance.config import SendersConfig
from appliance.decoder import NOT_RECORDS, Decoder, PcapReader
from appliance.errors import ConfigError, LogCasterError
from appliance.jsonl import JsonlEncoder
from appliance.live import LiveQueue
from appliance.timezone import utc_offset_seconds


@click.command()
@click.argument("pcap", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet"]), default="jsonl", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Output file (default: JSON lines on stdout; required for parquet).")
@click.option("--raw", "with_raw", is_flag=True, help="Include the raw payload (base64) in JSON lines.")
@click.option("--tz", default="UTC", show_default=True,
              help="Zone of RFC 3164 timestamps (IANA name, e.g. Europe/Berlin).")
@click.option("--port", "ports", type=click.IntRange(1, 65535), multiple=True,
              help="Keep only UDP to these destination ports (default: every UDP port).")
@click.option("-q", "--quiet", is_flag=True, help="No summary on stderr.")
def decode(pcap: Path, fmt: str, output: Path | None, with_raw: bool, tz: str, ports: tuple[int, ...],
           quiet: bool) -> int:
    """Decode the UDP syslog in PCAP (pcap or pcapng) into schema records.

    \b
    Examples:
      logcaster decode capture.pcap | jq .message
      logcaster decode capture.pcapng --format parquet -o out.parquet --tz Europe/Berlin
    """
    if fmt == "parquet" and output is None:
        raise ConfigError("--format parquet needs -o/--output FILE")
    # Sequence gaps per sender, as a run with the default `senders` config finds them: the
    # same input gets the same flags (seq_gap) offline and live.
    live = LiveQueue.create(None, queue=0, label="decode", ring_path="", senders=SendersConfig(), budget=None)
    decoder = Decoder(tz_offset_s=utc_offset_seconds(tz), ports=ports, c=live.decoder, senders=live.senders)
    batch = Batch()
    started = time.perf_counter()
    with PcapReader(pcap) as reader:  # a bad input is reported before the output is created
        out = preflight.open_output(output, "-o/--output") if output else sys.stdout.buffer
        with _writing(output):
            try:
                if fmt == "parquet":
                    with pq.ParquetWriter(out, SCHEMA, compression="zstd") as writer:
                        for rb in reader.batches(decoder, batch):
                            writer.write_batch(rb)
                else:
                    encoder = JsonlEncoder(with_raw=with_raw)
                    for _ in reader.batches(decoder, batch):
                        encoder.write(batch.hdr, out)
            finally:
                if output:
                    out.close()
                else:
                    out.flush()
        packets = reader.packets
    if not quiet:
        _summary(pcap, packets, decoder.counters(), time.perf_counter() - started)
    return 0


@contextmanager
def _writing(output: Path | None):
    """A write to the output that fails midway (a full disk) fails the run: exit 1, one line."""
    try:
        yield
    except OSError as exc:
        where = f"-o/--output: cannot write {output}" if output else "cannot write to stdout"
        raise LogCasterError(where, errno=exc.errno) from None


def _summary(pcap: Path, packets: int, c: dict, seconds: float) -> None:
    skipped = sum(c[k] for k in NOT_RECORDS)
    formats = ", ".join(f"{k} {v}" for k, v in c["formats"].items())
    flagged = ", ".join(f"{k} {v}" for k, v in c["flags"].items() if v) or "none"
    click.echo(
        f"{pcap}: {packets} packets, {c['records']} records ({formats}); "
        f"skipped {skipped} (not IP {c['not_ip']}, not UDP {c['not_udp']}, other port {c['port_filtered']}, "
        f"malformed {c['malformed']}); flags: {flagged}; {seconds:.2f} s",
        err=True,
    )
    seq = c["sequence"]
    if seq["records"]:
        click.echo(f"  sender sequence numbers: {seq['records']} records; lost before the capture {seq['lost']} "
                   f"(gaps {seq['gaps']}), duplicates {seq['duplicates']}, reordered {seq['reorders']}, "
                   f"resets {seq['resets']}", err=True)
