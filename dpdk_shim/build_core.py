"""cffi build script for dpdk_shim._core: batch builder, decoder, pcap reader, JSON lines.

Only reads files (STYLE.md): the declarations come from the shim's own
headers, the code from dpdk_shim/src/. This module has no DPDK dependency,
so the AF_XDP and socket backends work on machines without DPDK.
"""

import re
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
HEADERS = ("lc_batch.h", "lc_decode.h", "lc_ring.h", "lc_latency.h", "lc_rx.h", "lc_sock.h")
SOURCES = ("batch.c", "decode_net.c", "decode_syslog.c", "syslog_time.c", "decode_buffer.c", "pcap_reader.c", "jsonl.c", "ring.c", "latency.c", "decode_datagram.c", "sock_rx.c")
LIBRARIES = ["pcap"]
CFLAGS = ["-O3", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-strict-aliasing"]


def cdef_text(header: str) -> str:
    """A shim header as cdef input: C needs `#pragma once`, cffi's parser does not take it."""
    return re.sub(r"^#pragma once\s*$", "", (HERE / header).read_text(), flags=re.M)


def source_paths(names) -> list[str]:
    """C sources as setuptools wants them: relative to the project root."""
    return [str((HERE / "src" / s).relative_to(HERE.parent)) for s in names]


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
