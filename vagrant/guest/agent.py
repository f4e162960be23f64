"""The test guest's agent: runs the host's commands, read as JSON lines from
a virtio-serial port (/dev/hvc0), answered as JSON lines on the same port
(vagrant/guest.py is the other end). The guest has no network device but
the capture NIC, so this is its only control channel.

Requests: {"id": n, "op": ...} with op
  run      argv, timeout, cwd, env, input: run to the end; rc, stdout, stderr
  spawn    argv, log, cwd, env: start in the background (output to `log`); pid
  wait     pid, timeout: rc (None if it is still running), the log's tail
  signal   pid, sig
  poweroff
Each request runs on a thread of its own: a long `run` does not hold up a
`wait` or a `signal`. Every wait is bounded by the request's timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import tty

LOG_TAIL = 20000


class Agent:
    def __init__(self, port: str):
        self.fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)         # a console: no echo of the requests, no line editing
        self.lock = threading.Lock()
        self.children: dict[int, tuple[subprocess.Popen, str]] = {}

    def reply(self, msg: dict) -> None:
        data = (json.dumps(msg) + "\n").encode()
        with self.lock:
            while data:
                data = data[os.write(self.fd, data):]

    def serve(self) -> None:
        self.reply({"id": 0, "ready": True, "pid": os.getpid()})
        buf = b""
        while True:
            chunk = os.read(self.fd, 65536)
            if not chunk:
                continue
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    req = json.loads(line)
                    threading.Thread(target=self.handle, args=(req,), daemon=True).start()

    def handle(self, req: dict) -> None:
        try:
            self.reply({"id": req["id"], **getattr(self, "op_" + req["op"])(req)})
        except Exception as exc:  # noqa: BLE001 -- every failure goes back to the host
            self.reply({"id": req["id"], "error": f"{type(exc).__name__}: {exc}"})

    @staticmethod
    def _env(req: dict) -> dict:
        return {**os.environ, "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                **req.get("env", {})}

    def op_run(self, req: dict) -> dict:
        try:
            p = subprocess.run(req["argv"], capture_output=True, text=True, errors="replace", cwd=req.get("cwd"),
                               env=self._env(req), timeout=req.get("timeout", 120), input=req.get("input"))
            return {"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr}
        except subprocess.TimeoutExpired as exc:
            return {"rc": None, "stdout": exc.stdout or "", "stderr": f"timed out after {req.get('timeout')} s"}

    def op_spawn(self, req: dict) -> dict:
        log = open(req["log"], "w")
        p = subprocess.Popen(req["argv"], stdout=log, stderr=subprocess.STDOUT, cwd=req.get("cwd"),
                             env=self._env(req), start_new_session=True)
        self.children[p.pid] = (p, req["log"])
        return {"pid": p.pid}

    def op_wait(self, req: dict) -> dict:
        p, log = self.children[req["pid"]]
        try:
            rc = p.wait(req.get("timeout", 60))
        except subprocess.TimeoutExpired:
            rc = None
        with open(log, errors="replace") as f:
            text = f.read()
        return {"rc": rc, "log": text[-LOG_TAIL:]}

    def op_signal(self, req: dict) -> dict:
        os.killpg(req["pid"], req.get("sig", signal.SIGTERM))
        return {}

    def op_poweroff(self, req: dict) -> dict:
        os.sync()
        threading.Timer(0.5, lambda: os.system("poweroff -f")).start()
        return {}


if __name__ == "__main__":
    Agent(sys.argv[1]).serve()
