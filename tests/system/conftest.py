"""System tests run on the real machine as root: every test in tests/system
is marked `root` (deselect with -m "not root") and skips, naming what is
missing, when it runs without root. In CI a skip fails the run (tests/conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    # A conftest hook sees the whole session's items: mark only ours.
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.root)


@pytest.fixture(autouse=True)
def _require_root(request):
    if _HERE not in Path(request.node.path).resolve().parents:
        return
    if os.geteuid() != 0:
        pytest.skip(f"needs root (running as uid {os.geteuid()}): system tests change hugepages, mounts, "
                    "network namespaces and XDP; run them with sudo")


@pytest.fixture(scope="session", autouse=True)
def _service_user_left_as_found():
    """scripts/install.sh adds the system user `logcaster` (the machine's,
    also with --destdir); remove it at the end if this session added it."""
    import grp
    import pwd
    import subprocess

    def exists(lookup) -> bool:
        try:
            lookup("logcaster")
            return True
        except KeyError:
            return False

    had_user, had_group = exists(pwd.getpwnam), exists(grp.getgrnam)
    yield
    if not had_user and exists(pwd.getpwnam):
        subprocess.run(["userdel", "logcaster"], check=False)
    if not had_group and exists(grp.getgrnam):
        subprocess.run(["groupdel", "logcaster"], check=False)
