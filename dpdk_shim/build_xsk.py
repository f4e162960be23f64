"""cffi build script for dpdk_shim._xsk: AF_XDP UMEMs, sockets and the RX loop.

Modelled on build_dpdk.py: the module includes _core's declarations
(ffi.include), so batches, rings and decoders made through dpdk_shim._core
are the same C types here, and compiles the core sources in as well, so the
RX loop calls the decoder and the ring directly. libxdp (xsk API) and libbpf
come from pkg-config; the XDP program itself is loaded by bcc (ebpf/).
"""

import importlib.util
from pathlib import Path

from cffi import FFI, pkgconfig

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("lc_build_core", HERE / "build_core.py")
core = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(core)

HEADERS = ("lc_xsk.h",)
SOURCES = ("xsk_rx.c",)

ffi = FFI()
ffi.include(core.ffi)
for header in HEADERS:
    ffi.cdef(core.cdef_text(header))

# Merged by hand, like build_dpdk.py: our include_dirs and flags stay ours.
xdp = pkgconfig.flags_from_pkgconfig(["libxdp", "libbpf"])

ffi.set_source(
    "dpdk_shim._xsk",
    "#include <stdint.h>\n" + "".join(f'#include "{h}"\n' for h in core.HEADERS + HEADERS),
    sources=core.source_paths(core.SOURCES + SOURCES),
    include_dirs=[str(HERE)] + xdp["include_dirs"],
    library_dirs=xdp["library_dirs"],
    libraries=core.LIBRARIES + xdp["libraries"],
    define_macros=xdp["define_macros"],
    extra_compile_args=core.CFLAGS + xdp["extra_compile_args"],
    extra_link_args=xdp["extra_link_args"],
)

if __name__ == "__main__":
    ffi.compile(verbose=True)
