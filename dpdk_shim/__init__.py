"""The one boundary to the compiled cffi modules of the C shim.

Three out-of-line modules with underscore names: `_core` (decoder, batches,
rings, pcap reader, JSON lines, socket RX loop; no DPDK), `_dpdk` (EAL,
ports, RX loop) and `_xsk` (AF_XDP). Only this package imports them:
`load(name)` does, once, and refuses a build whose ABI version differs from
the one the headers declare (a stale .so after a header change fails loudly
with the fix, not with a crash). `_core` is loaded at import and re-exported
as `ffi`, `lib`; the backends call `load("_dpdk")` / `load("_xsk")` when
they start, so a machine without DPDK or libxdp still decodes and captures
with sockets.

Every shim function returns an int: >= 0 a count, < 0 -errno; some also
write what they were doing into an error buffer (`errbuf()`). `check()` is
the one helper that turns both into an exception.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from appliance.errors import ENVIRONMENT, ShimError

ERRLEN = 256                    # bytes of an error buffer (errbuf)
_ABI_HEADER = Path(__file__).with_name("src") / "lc_abi.h"
_WHY = {
    "_core": "every backend (decoder, batches, rings)",
    "_dpdk": "the dpdk backend (needs libdpdk-dev when built)",
    "_xsk": "the afxdp backend (needs libxdp-dev and libbpf-dev when built)",
}
_loaded: dict = {}


class ShimUnavailable(ShimError, ImportError):
    """A compiled module is missing or stale. An ImportError too, so code
    that works without the shim (config validation) can carry on."""

    category = ENVIRONMENT


def expected_abi() -> int:
    match = re.search(r"#define\s+LC_ABI_VERSION\s+(\d+)", _ABI_HEADER.read_text())
    if not match:
        raise ShimUnavailable(f"no LC_ABI_VERSION in {_ABI_HEADER}")
    return int(match.group(1))


def load(name: str):
    """The compiled module `name` ("_core", "_dpdk", "_xsk"), ABI-checked."""
    if name in _loaded:
        return _loaded[name]
    if name not in _WHY:
        raise ValueError(f"no shim module {name!r}: one of {', '.join(_WHY)}")
    fix = "rebuild it: `make setup` (pip install . builds the cffi modules)"
    try:
        module = importlib.import_module(f"dpdk_shim.{name}")
    except ImportError as exc:
        raise ShimUnavailable(f"dpdk_shim.{name} is not built, needed by {_WHY[name]} ({exc}): {fix}") from None
    built, want = module.lib.lc_abi_version(), expected_abi()
    if built != want:
        raise ShimUnavailable(f"dpdk_shim.{name} is a stale build (ABI {built}, the headers say {want}): {fix}")
    _loaded[name] = module
    return module


def errbuf(ffi=None):
    """A C buffer of ERRLEN bytes for a shim call's error text."""
    return (ffi or _core.ffi).new("char[]", ERRLEN)


def check(rc: int, doing: str, err=None, *, error: type = ShimError, category: str | None = None) -> int:
    """A shim return code as a count, or an exception of type `error` that
    says what was being done, the shim's own text from `err` when it wrote
    one, and errno."""
    if rc >= 0:
        return rc
    text = doing
    if err is not None and err[0] != b"\0":
        text = f"{doing}: {_core.ffi.string(err).decode(errors='replace')}"
    raise error(text, errno=-rc, **({"category": category} if category else {}))


_core = load("_core")
ffi, lib = _core.ffi, _core.lib
