"""The project's exception base class and its kinds.

Errors carry errno (when the cause is a system call) and what was being
done, so the top-level CLI prints one clear line and picks the exit code.
"""

import errno as _errno
import os


class LogCasterError(Exception):
    """Base of every error LogCaster raises on purpose."""

    def __init__(self, message: str, *, errno: int | None = None):
        super().__init__(message)
        self.errno = errno

    def __str__(self) -> str:
        text = super().__str__()
        if self.errno:
            return f"{text}: {os.strerror(self.errno)} ({_errno.errorcode.get(self.errno, self.errno)})"
        return text


class ConfigError(LogCasterError):
    """The configuration (file or command line) is invalid."""


class InputError(LogCasterError):
    """A file the user gave cannot be read or is not what it should be."""


class ShimError(LogCasterError):
    """A call into the C shim failed."""


def check(rc: int, doing: str) -> int:
    """Turn a shim return code (>= 0 count, < 0 -errno) into a count or an exception."""
    if rc < 0:
        raise ShimError(doing, errno=-rc)
    return rc


class EnvironmentProblem(LogCasterError):
    """This machine lacks something the run needs (privileges, headers, hugepages, a driver)."""
