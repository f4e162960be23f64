"""cffi build script for dpdk_shim._xsk: AF_XDP UMEMs, sockets and the RX loop.

Built on the core (build_core.extension_ffi): same C types as dpdk_shim._core,
core sources compiled in. libxdp (xsk API) and libbpf come from pkg-config;
the XDP program itself is loaded by bcc (ebpf/).
"""

import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("lc_build_core", HERE / "build_core.py")
core = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(core)

ffi = core.extension_ffi("dpdk_shim._xsk", ("lc_xsk.h",), ("xsk_rx.c",), ["libxdp", "libbpf"])

if __name__ == "__main__":
    ffi.compile(verbose=True)
