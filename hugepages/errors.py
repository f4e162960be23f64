"""Errors of the hugepages package, the only ones it raises. All derive from
LogCasterError (a leaf module) and carry errno where a system call failed,
so the CLI prints one line; their category picks the exit code."""

from __future__ import annotations

import errno as _errno

from appliance.errors import CONFIG, ENVIRONMENT, LogCasterError


class HugepageError(LogCasterError):
    """A hugepage operation failed (sysfs write, mount, unlink, ...): the
    machine refused it."""

    category = ENVIRONMENT


class HugepageUsageError(HugepageError):
    """What was asked makes no sense here (a size, node, count or mount
    point that does not fit this machine): nothing was changed."""

    category = CONFIG


class ReservationError(HugepageError):
    """The kernel granted fewer pages than asked for.

    `reservation` describes the counts seen (before, asked, after); when the
    caller asked to be strict, `gave_back` says the granted pages were returned.
    """

    def __init__(self, message: str, *, reservation, gave_back: bool):
        super().__init__(message, errno=_errno.ENOMEM)
        self.reservation = reservation
        self.gave_back = gave_back

    @property
    def granted(self) -> int:
        """Pages the kernel did add (before any give-back)."""
        return self.reservation.granted
