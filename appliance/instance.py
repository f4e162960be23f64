"""One owner per resource: a `dpdk.file_prefix` (its rings and live stats
file) and a sink directory belong to exactly one running appliance.

Two appliances with the same file prefix delete each other's live rings and
stats files; two writing the same Parquet or JSON lines store corrupt each
other's data. So before anything starts, the appliance takes an exclusive
flock(2) on

    RUN_DIR/<file_prefix>.lock          for the prefix (rings, stats file)
    <sink.path>/.logcaster.lock         for each parquet/jsonl sink

and writes its PID into each. A second appliance fails at once with one line
naming the resource and the PID of the holder (exit code 2: two owners is an
operator error). flock locks belong to the open file, so they vanish when the
holder exits or is killed: a lock file left by a killed appliance is no lock,
and nobody cleans up after anybody. Only the holder removes its lock file, on
release and while still holding it; whoever locks a file checks that it is
still the one at the path (else it locked a file just removed, and tries
again), so two processes never hold "the" lock on two files of one name.
The parent process holds the locks until Supervisor.run returns, which is
after its workers have exited.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from appliance import paths
from appliance.config import Config
from appliance.errors import ConfigError, EnvironmentProblem
from appliance.preflight import file_sinks

SINK_LOCK = ".logcaster.lock"
_PID_WAIT_S = 0.5           # a holder writes its PID right after taking the lock
_RETRIES = 10


class InstanceBusy(ConfigError):
    """A resource of this configuration belongs to another running appliance."""

    def __init__(self, message: str, *, holder: int | None):
        super().__init__(message)
        self.holder = holder


def prefix_lock_path(file_prefix: str, run_dir: Path | None = None) -> Path:
    return (run_dir or paths.RUN_DIR) / f"{file_prefix}.lock"


class InstanceLock:
    """Context manager holding every lock of one appliance run (see the module doc).

    Sink directories must exist (appliance.preflight.check_sinks creates them).
    """

    def __init__(self, cfg: Config, *, run_dir: Path | None = None):
        self.run_dir = run_dir or paths.RUN_DIR
        self.prefix = cfg.dpdk.file_prefix
        self.sinks = file_sinks(cfg)
        self._held: list[tuple[Path, int]] = []    # (lock file, its descriptor), in order taken

    def __enter__(self) -> "InstanceLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        try:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise EnvironmentProblem(f"cannot create the run directory {self.run_dir} for the instance lock "
                                         f"(set LOGCASTER_RUN_DIR to a writable directory)", errno=exc.errno) from None
            self._take(prefix_lock_path(self.prefix, self.run_dir), f"dpdk.file_prefix {self.prefix!r}",
                       EnvironmentProblem)
            seen: set[tuple[int, int]] = set()
            for key, directory in self.sinks:
                try:
                    st = directory.stat()
                except OSError as exc:
                    raise ConfigError(f"{key}: {directory}", errno=exc.errno) from None
                if (st.st_dev, st.st_ino) in seen:  # two sinks of this run in one directory: one lock
                    continue
                seen.add((st.st_dev, st.st_ino))
                self._take(directory / SINK_LOCK, f"{key} {directory}", ConfigError)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Remove the lock files while still holding them, then drop the locks."""
        while self._held:
            path, fd = self._held.pop()
            try:
                os.unlink(path)
            except OSError:
                pass
            os.close(fd)

    def _take(self, path: Path, what: str, open_error: type) -> None:
        for _ in range(_RETRIES):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
            except OSError as exc:
                raise open_error(f"{what}: cannot open the lock file {path}", errno=exc.errno) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                busy = exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
                holder = _holder(fd) if busy else None
                os.close(fd)
                if not busy:
                    raise open_error(f"{what}: cannot lock {path}", errno=exc.errno) from None
                who = f"pid {holder}" if holder else "pid unknown"
                raise InstanceBusy(f"{what} belongs to another running appliance ({who}; lock {path}): "
                                   f"one appliance per file prefix and sink path", holder=holder) from None
            if _same_file(fd, path):
                self._held.append((path, fd))
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                return
            os.close(fd)  # its holder removed it as we locked it: lock the file now at the path
        raise open_error(f"{what}: the lock file {path} keeps being replaced", errno=errno.EAGAIN)


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _holder(fd: int) -> int | None:
    """The PID the lock's holder wrote into it (it may be writing it right now)."""
    deadline = time.monotonic() + _PID_WAIT_S
    while True:
        text = os.pread(fd, 32, 0).decode(errors="replace")
        if text.endswith("\n") and text.strip().isdigit():
            return int(text)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)


def process_alive(pid) -> bool:
    """Whether a process with this pid runs (the pid an appliance wrote in
    its stats file); another user's process counts as running."""
    try:
        os.kill(int(pid), 0)
        return True
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
