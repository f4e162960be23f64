"""The project's exception base class, its kinds, and their categories.

Errors carry errno (when the cause is a system call), what was being done,
and a category — why it failed, not which module raised it — from which the
top-level CLI picks the exit code (appliance/cli/exitcodes.py):

    CONFIG       the command line or configuration is wrong: nothing started
    INPUT        a file the user gave is missing or unreadable
    ENVIRONMENT  this machine lacks something (privileges, headers, a built module, a driver)
    FAILURE      the run itself failed

Each kind has its category; a raise site may name another where the same
kind has several causes (an XDP load refused for lack of CAP_BPF is
ENVIRONMENT, a verifier rejection FAILURE). This module imports nothing of
the project, so every package (hugepages/, ebpf/, dpdk_shim/) can use it.
"""

import errno as _errno
import os

CONFIG = "config"
INPUT = "input"
ENVIRONMENT = "environment"
FAILURE = "failure"
CATEGORIES = (CONFIG, INPUT, ENVIRONMENT, FAILURE)


class LogCasterError(Exception):
    """Base of every error LogCaster raises on purpose."""

    category = FAILURE

    def __init__(self, message: str, *, errno: int | None = None, category: str | None = None):
        super().__init__(message)
        self.errno = errno
        if category is not None:
            if category not in CATEGORIES:
                raise ValueError(f"error category {category!r}: one of {', '.join(CATEGORIES)}")
            self.category = category

    def __str__(self) -> str:
        text = super().__str__()
        if self.errno:
            return f"{text}: {os.strerror(self.errno)} ({_errno.errorcode.get(self.errno, self.errno)})"
        return text


class ConfigError(LogCasterError):
    """The configuration (file or command line) is invalid."""

    category = CONFIG


class InputError(LogCasterError):
    """A file the user gave cannot be read or is not what it should be."""

    category = INPUT


class EnvironmentProblem(LogCasterError):
    """This machine lacks something the run needs (privileges, headers, hugepages, a driver)."""

    category = ENVIRONMENT


class ShimError(LogCasterError):
    """A call into the C shim failed (dpdk_shim.check turns its -errno into this)."""
