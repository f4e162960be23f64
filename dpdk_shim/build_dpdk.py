"""cffi build script for dpdk_shim._dpdk: EAL, ports, mbuf pools, the RX loop.

Built on the core (build_core.extension_ffi): same C types as dpdk_shim._core,
core sources compiled in; DPDK's flags from pkg-config (libdpdk).
"""

import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("lc_build_core", HERE / "build_core.py")
core = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(core)

ffi = core.extension_ffi("dpdk_shim._dpdk", ("lc_dpdk.h",), ("dpdk_port.c", "dpdk_rx.c"), ["libdpdk"])

if __name__ == "__main__":
    ffi.compile(verbose=True)
