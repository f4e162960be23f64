"""A real rsyslog of the test's own: the receiving end of the relay sink.

rsyslogd runs in the foreground (`-n`) from a config written here, never
the system's: imudp and imtcp (and imtcp with TLS when a certificate is
given) on 127.0.0.1, each input writing `%rawmsg%` (the payload as it
arrived, framing removed) one per line to its own file. `timeout` bounds
its life even if the test dies.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

CONF = """
global(workDirectory="{work}" net.enableDNS="off" maxMessageSize="64k"
       parser.escapeControlCharactersOnReceive="off"{tls_global})
template(name="raw" type="string" string="%rawmsg%\\n")
module(load="imudp")
module(load="imtcp" maxSessions="100")
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="udp" rcvbufSize="32m")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="tcp")
{tls_input}
ruleset(name="udp") {{ action(type="omfile" file="{work}/udp.log" template="raw" flushOnTXEnd="on") }}
ruleset(name="tcp") {{ action(type="omfile" file="{work}/tcp.log" template="raw" flushOnTXEnd="on") }}
ruleset(name="tls") {{ action(type="omfile" file="{work}/tls.log" template="raw" flushOnTXEnd="on") }}
"""


def make_test_ca(work: Path, name: str = "localhost") -> tuple[Path, Path, Path]:
    """A CA of the test's own and a server certificate for `name` (DNS only)
    signed by it, with openssl: (ca.pem, server.pem, server.key)."""
    work.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=work, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=LogCaster test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", f"/CN={name}")
    (work / "ext.cnf").write_text(f"subjectAltName=DNS:{name}\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return work / "ca.pem", work / "server.pem", work / "server.key"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rsyslog:
    def __init__(self, work: Path, *, tls: tuple[Path, Path, Path] | None = None, bound_s: int = 300):
        """tls: (ca, cert, key) files for an imtcp TLS input."""
        if shutil.which("rsyslogd") is None:
            raise RuntimeError("rsyslogd is not installed (Debian package rsyslog; scripts/setup.sh installs it)")
        self.work = work
        self.work.mkdir(parents=True, exist_ok=True)
        self.udp, self.tcp = free_port(socket.SOCK_DGRAM), free_port()
        self.tls_port = free_port() if tls else None
        self.tls, self.bound_s = tls, bound_s
        self.proc: subprocess.Popen | None = None
        self.conf = work / "rsyslog.conf"
        self.pidfile = work / "rsyslogd.pid"
        tls_global = tls_input = ""
        if tls:
            ca, cert, key = tls
            tls_global = (f' defaultNetstreamDriverCAFile="{ca}" defaultNetstreamDriverCertFile="{cert}"'
                          f' defaultNetstreamDriverKeyFile="{key}"')
            tls_input = (f'input(type="imtcp" address="127.0.0.1" port="{self.tls_port}" ruleset="tls" '
                         f'streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")')
        self.conf.write_text(CONF.format(work=work, udp=self.udp, tcp=self.tcp, tls_global=tls_global,
                                         tls_input=tls_input))

    def start(self) -> "Rsyslog":
        self.pidfile.unlink(missing_ok=True)
        with open(self.work / "rsyslogd.out", "ab") as out:    # its own group: killpg ends it for sure
            self.proc = subprocess.Popen(
                ["timeout", "--kill-after=5", str(self.bound_s), "rsyslogd", "-n", "-f", str(self.conf),
                 "-i", str(self.pidfile)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        ports = [p for p in (self.tcp, self.tls_port) if p]
        while not (all(self._listening(p) for p in ports) and self._udp_bound()):
            if self.proc.poll() is not None:
                raise RuntimeError(f"rsyslogd exited ({self.proc.returncode}): "
                                   f"{(self.work / 'rsyslogd.out').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("rsyslogd is not listening after 30 s")
            time.sleep(0.05)
        return self

    def _udp_bound(self) -> bool:
        """imudp holds its port: ours cannot bind it."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", self.udp))
            except OSError:
                return True
            return False

    @staticmethod
    def _listening(port: int) -> bool:
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex(("127.0.0.1", port)) == 0

    def kill(self) -> None:
        """SIGKILL to rsyslogd itself (what a crash does), then reap `timeout`."""
        pid = int(self.pidfile.read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)   # timeout passes it on to rsyslogd
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def lines(self, name: str) -> list[bytes]:
        path = self.work / f"{name}.log"
        if not path.exists():
            return []
        data = path.read_bytes()
        return data.split(b"\n")[:-1] if data else []

    def count(self, name: str) -> int:
        path = self.work / f"{name}.log"
        return path.read_bytes().count(b"\n") if path.exists() else 0
