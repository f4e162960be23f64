"""Checks made before anything starts: every place the run will write to can
be written, so a bad path is one line and exit code 2 (a configuration
error, which systemd does not restart), not worker tracebacks and a restart
loop.

Writability is tried, not guessed from permission bits (os.access is wrong
for root, read-only mounts, /proc, full disks): a sink directory is created
if missing, then a file is created in it, a byte written and synced, and the
file removed. An output file is created (and removed again) or, if it
exists, opened for writing without truncating it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import BinaryIO

from appliance.config import Config
from appliance.errors import ConfigError

# The sink types that keep files under sink.path (config._sink requires a path for them).
FILE_SINKS = ("parquet", "jsonl")

_PROBE_PREFIX = ".logcaster-preflight-"


def file_sinks(cfg: Config) -> list[tuple[str, Path]]:
    """(config key, directory) of every sink that writes under its path."""
    return [(f"sinks[{i}].path", Path(s.path)) for i, s in enumerate(cfg.sinks)
            if s.type in FILE_SINKS and s.path]


def check_sinks(cfg: Config) -> None:
    """Every file sink's directory exists (created if missing) and takes files."""
    for key, path in file_sinks(cfg):
        writable_dir(path, key)


def writable_dir(path: Path, key: str) -> None:
    """mkdir -p `path`, then create, write, fsync and remove a file in it;
    ConfigError naming `key`, the path, the step and the OS reason."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # exist_ok: something that is not a directory
        raise ConfigError(f"{key}: {path} is not a directory", errno=errno.ENOTDIR) from None
    except OSError as exc:
        raise ConfigError(f"{key}: cannot create the directory {path}", errno=exc.errno) from None
    probe = path / f"{_PROBE_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot create a file in {path}", errno=exc.errno) from None
    try:
        try:
            os.write(fd, b"\0")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        _remove(probe)
        raise ConfigError(f"{key}: cannot write a file in {path}", errno=exc.errno) from None
    try:
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot remove a file from {path}", errno=exc.errno) from None


def check_output_file(path: Path, key: str) -> None:
    """The file `path` can be written later: its directory exists and takes a
    new file, or the file exists and opens for writing (left untouched)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
    except FileExistsError:
        if path.is_dir():
            raise ConfigError(f"{key}: {path} is a directory", errno=errno.EISDIR) from None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise ConfigError(f"{key}: cannot write {path}", errno=exc.errno) from None
        os.close(fd)
        return
    except OSError as exc:
        raise ConfigError(f"{key}: cannot create {path}", errno=exc.errno) from None
    os.close(fd)
    _remove(path)


def open_output(path: Path, key: str) -> BinaryIO:
    """Open (create or truncate) an output file for writing; ConfigError when it cannot be."""
    try:
        return open(path, "wb")
    except OSError as exc:
        raise ConfigError(f"{key}: cannot create {path}", errno=exc.errno) from None


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
