"""cffi build script for dpdk_shim._core: batch builder, decoder, pcap reader, JSON lines, rings,
the socket RX loop, pcap replay.

Only reads files (STYLE.md): the declarations come from the shim's own
headers, the code from dpdk_shim/src/. This module has no DPDK dependency,
so the AF_XDP and socket backends work on machines without DPDK.
"""

import re
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
HEADERS = ("lc_batch.h", "lc_decode.h", "lc_senders.h", "lc_ring.h", "lc_latency.h", "lc_rx.h", "lc_sock.h", "lc_replay.h",
           "lc_relay.h")
SOURCES = ("batch.c", "decode_net.c", "decode_syslog.c", "syslog_time.c", "decode_buffer.c", "pcap_reader.c",
           "jsonl.c", "ring.c", "arrow_export.c", "latency.c", "decode_datagram.c", "sock_rx.c", "replay.c",
           "relay.c", "senders.c")
LIBRARIES = ["pcap"]
CFLAGS = ["-O3", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-strict-aliasing",
          "-Werror=implicit-function-declaration"]


def cdef_text(header: str) -> str:
    """A shim header as cdef input: C needs `#pragma once`, cffi's parser does not take it."""
    return re.sub(r"^#pragma once\s*$", "", (HERE / header).read_text(), flags=re.M)


def source_paths(names) -> list[str]:
    """C sources as setuptools wants them: relative to the project root."""
    return [str((HERE / "src" / s).relative_to(HERE.parent)) for s in names]


def extension_ffi(module: str, headers: tuple[str, ...], sources: tuple[str, ...], packages: list[str]) -> FFI:
    """An FFI for a module built on the core (_dpdk, _xsk): it includes the
    core's declarations (ffi.include), so batches, rings and decoders made
    through dpdk_shim._core are the same C types there, and compiles the core
    sources in, so its RX loop calls the decoder and the ring directly.
    pkg-config flags are merged by hand: set_source(pkgconfig=...) would let
    our include_dirs and extra_compile_args replace the package's."""
    from cffi import pkgconfig

    ext = FFI()
    ext.include(ffi)
    for header in headers:
        ext.cdef(cdef_text(header))
    pkg = pkgconfig.flags_from_pkgconfig(packages)
    ext.set_source(
        module,
        "#include <stdint.h>\n" + "".join(f'#include "{h}"\n' for h in HEADERS + headers),
        sources=source_paths(SOURCES + sources),
        include_dirs=[str(HERE)] + pkg["include_dirs"],
        library_dirs=pkg["library_dirs"],
        libraries=LIBRARIES + pkg["libraries"],
        define_macros=pkg["define_macros"],
        extra_compile_args=CFLAGS + pkg["extra_compile_args"],
        extra_link_args=pkg["extra_link_args"],
    )
    return ext


ffi = FFI()
for header in HEADERS:
    ffi.cdef(cdef_text(header))

ffi.set_source(
    "dpdk_shim._core",
    "#include <stdint.h>\n" + "".join(f'#include "{h}"\n' for h in HEADERS),
    sources=source_paths(SOURCES),
    include_dirs=[str(HERE)],
    libraries=LIBRARIES,
    extra_compile_args=CFLAGS,
)

if __name__ == "__main__":
    ffi.compile(verbose=True)
