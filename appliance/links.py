"""Network interfaces LogCaster made, and the rule for touching any other.

An interface LogCaster creates (a TAP of `logcaster replay`, the TAP of a
DPDK net_tap port) carries an alias starting with ALIAS_PREFIX (IFLA_IFALIAS,
shown by `ip link`), so a later command can tell it from the machine's own
interfaces. The interface with the default route (IPv4 or IPv6) is never
touched, whatever the flags; any other interface not marked as ours only
with --force. Everything runs in the calling process's network namespace.
"""

from __future__ import annotations

import errno
from pathlib import Path

from pyroute2 import IPRoute

from appliance.errors import ConfigError, EnvironmentProblem
from appliance.ports import default_route_ifaces

ALIAS_PREFIX = "logcaster:"


def exists(ifname: str) -> bool:
    return Path(f"/sys/class/net/{ifname}").exists()


def is_tap(ifname: str) -> bool:
    return Path(f"/sys/class/net/{ifname}/tun_flags").exists()


def alias(ifname: str) -> str:
    try:
        return Path(f"/sys/class/net/{ifname}/ifalias").read_text().strip()
    except OSError:
        return ""


def is_ours(ifname: str) -> bool:
    return alias(ifname).startswith(ALIAS_PREFIX)


def mark_ours(ifname: str, what: str) -> None:
    """Set the alias that says LogCaster made this interface (and for what)."""
    with IPRoute() as ipr:
        [index] = ipr.link_lookup(ifname=ifname) or [None]
        if index is None:
            raise EnvironmentProblem(f"interface {ifname}: no such interface", errno=errno.ENODEV)
        ipr.link("set", index=index, ifalias=f"{ALIAS_PREFIX} {what}")


def check_may_use(ifname: str, *, force: bool, doing: str) -> None:
    """Refuse the default-route interface always, and an interface LogCaster
    did not make unless `force`; say which and why."""
    if not exists(ifname):
        raise ConfigError(f"{doing}: no interface {ifname!r} in this network namespace (`ip -br link` lists them)")
    routes = default_route_ifaces()
    if ifname in routes:
        raise ConfigError(f"{doing}: refusing {ifname}: it carries the default route (this machine's own link; "
                          f"--force does not apply)")
    if not force and not is_ours(ifname):
        said = f"its alias is {alias(ifname)!r}" if alias(ifname) else "it has no alias"
        raise ConfigError(f"{doing}: refusing {ifname}: LogCaster did not create it ({said}); use --force for "
                          f"an interface you made for this, or --tap NAME to let replay create a TAP")
