"""Thin Python layer over the compiled cffi modules of the C shim.

The compiled module has an underscore name (`_core`); only this package
imports it, and it refuses a build whose ABI version differs from the one
the headers declare (a stale .so after a header change fails loudly).
"""

from pathlib import Path
import re

from dpdk_shim._core import ffi, lib  # noqa: F401  (re-exported)

_ABI_HEADER = Path(__file__).with_name("src") / "lc_abi.h"


def _expected_abi() -> int:
    match = re.search(r"#define\s+LC_ABI_VERSION\s+(\d+)", _ABI_HEADER.read_text())
    if not match:
        raise ImportError(f"no LC_ABI_VERSION in {_ABI_HEADER}")
    return int(match.group(1))


if lib.lc_abi_version() != _expected_abi():
    raise ImportError(
        f"dpdk_shim._core is a stale build (ABI {lib.lc_abi_version()}, headers say "
        f"{_expected_abi()}): rebuild with `make setup`"
    )
