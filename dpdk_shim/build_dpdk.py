"""cffi build script for dpdk_shim._dpdk: EAL, ports, mbuf pools, the RX loop.

The module includes _core's declarations (ffi.include), so batches, rings
and decoders made through dpdk_shim._core are the same C types here. The
decoder and ring sources are compiled in as well: the RX loop calls them
directly, with no Python in between.
"""

import importlib.util
from pathlib import Path

from cffi import FFI, pkgconfig

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("lc_build_core", HERE / "build_core.py")
core = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(core)

HEADERS = ("lc_dpdk.h",)
SOURCES = ("dpdk_port.c", "dpdk_rx.c")

ffi = FFI()
ffi.include(core.ffi)
for header in HEADERS:
    ffi.cdef(core.cdef_text(header))

# Merged by hand: set_source(pkgconfig=...) lets our own include_dirs and
# extra_compile_args replace DPDK's instead of adding to them.
dpdk = pkgconfig.flags_from_pkgconfig(["libdpdk"])

ffi.set_source(
    "dpdk_shim._dpdk",
    "#include <stdint.h>\n" + "".join(f'#include "{h}"\n' for h in core.HEADERS + HEADERS),
    sources=core.source_paths(core.SOURCES + SOURCES),
    include_dirs=[str(HERE)] + dpdk["include_dirs"],
    library_dirs=dpdk["library_dirs"],
    libraries=core.LIBRARIES + dpdk["libraries"],
    define_macros=dpdk["define_macros"],
    extra_compile_args=core.CFLAGS + dpdk["extra_compile_args"],
    extra_link_args=dpdk["extra_link_args"],
)

if __name__ == "__main__":
    ffi.compile(verbose=True)
