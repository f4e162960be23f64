"""Suite-wide rules: in CI (CI set) a skipped test fails the run, since a
dependency missing there is a setup bug, not a reason to skip."""

import os

import pytest
import scapy.layers.inet
import scapy.layers.inet6
import scapy.layers.l2

# scapy fills in a missing destination MAC by resolving it on the network:
# Ether()/IP(dst=...) sends an ARP request out of the interface of the route
# (here, for test addresses, the machine's own NIC via the default route) and
# puts that NIC in promiscuous mode while it waits. Tests build frames, they
# never resolve anything: a frame without a dst MAC gets broadcast, offline.


def _offline_mac(*args, **kwargs) -> str:
    return "ff:ff:ff:ff:ff:ff"


# Every module that calls the resolvers by name (scapy's neighbor table uses
# scapy.layers.inet's and inet6's).
scapy.layers.l2.getmacbyip = _offline_mac
scapy.layers.inet.getmacbyip = _offline_mac
scapy.layers.inet6.getmacbyip6 = _offline_mac


def _ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if _ci() and skipped and session.exitstatus == 0:
        reporter.write_line(f"CI: {skipped} test(s) skipped; in CI a skip is a failure", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
