"""Errors of the hugepages package. All derive from LogCasterError and carry
errno where a system call failed, so the CLI prints one line."""

from __future__ import annotations

import errno as _errno

from appliance.errors import LogCasterError


class HugepageError(LogCasterError):
    """A hugepage operation failed (sysfs write, mount, unlink, ...)."""


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
