#!/usr/bin/env bash
# Fuzz the frame + syslog decoders with libFuzzer (ASan + UBSan) for SECONDS.
#
#   scripts/fuzz.sh [SECONDS]      (default 60; `make fuzz FUZZ_SECONDS=...`)
#
# Builds dpdk_shim/fuzz/fuzz_decode.c with the decoder sources (no pcap, no
# JSON), seeds a corpus in $FUZZ_OUT (default ./fuzz-out) from
# dpdk_shim/fuzz/seeds/, tests/data/fuzz/ (past crashes), the lines of
# tests/data/**/*.txt, the lines of tests/data/syslog/collectors.jsonl and
# the frames of tests/data/**/*.pcap*, and runs.
# Exits non-zero on a crash or a broken invariant; the input that did it is
# left in $FUZZ_OUT/crashes/: copy it to tests/data/fuzz/ (a regression test
# decodes every file there) and fix the decoder.
#
# Environment: FUZZ_OUT, FUZZ_MAX_LEN (default 4096), CC (default clang),
# FUZZ_FLAGS (extra libFuzzer flags).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECS="${1:-60}"
OUT="${FUZZ_OUT:-$ROOT/fuzz-out}"
CC="${CC:-clang}"
MAX_LEN="${FUZZ_MAX_LEN:-4096}"
SHIM="$ROOT/dpdk_shim"
PY="${PYTHON:-$ROOT/.venv/bin/python}"

log() { printf '[fuzz] %s\n' "$*"; }
die() { printf 'fuzz.sh: %s\n' "$*" >&2; exit 2; }

case "$SECS" in ''|*[!0-9]*) die "SECONDS must be a whole number, got '$SECS'";; esac

# clang with the libFuzzer/sanitizer runtimes (Debian: clang + libclang-rt-14-dev).
have_toolchain() {
    command -v "$CC" >/dev/null &&
        echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){return 0;}' |
        "$CC" -x c -fsanitize=fuzzer,address,undefined -o /dev/null - 2>/dev/null
}
if ! have_toolchain; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        log "installing clang and libclang-rt-14-dev"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev
    fi
    have_toolchain || die "$CC cannot build -fsanitize=fuzzer: apt-get install clang libclang-rt-14-dev"
fi

mkdir -p "$OUT/corpus" "$OUT/crashes"

# The decoder: frame layers, syslog layer and its helpers, batch layout.
SOURCES=("$SHIM/src/batch.c" "$SHIM/src/decode_net.c" "$SHIM/src/senders.c")
for f in "$SHIM"/src/decode_syslog*.c "$SHIM"/src/syslog_*.c; do
    [ -e "$f" ] && SOURCES+=("$f")
done
log "building $OUT/fuzz_decode"
"$CC" -g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -fno-omit-frame-pointer -I "$SHIM" -I "$SHIM/src" \
    "$SHIM/fuzz/fuzz_decode.c" "${SOURCES[@]}" -o "$OUT/fuzz_decode"

# Seeds (the corpus keeps what earlier runs found).
cp -f "$SHIM"/fuzz/seeds/* "$OUT/corpus/" 2>/dev/null || true
if [ -d "$ROOT/tests/data" ]; then
    [ -d "$ROOT/tests/data/fuzz" ] && find "$ROOT/tests/data/fuzz" -maxdepth 1 -type f \
        -exec cp -f {} "$OUT/corpus/" \;
    while IFS= read -r -d '' txt; do
        tag="$(printf '%s' "${txt#"$ROOT"/tests/data/}" | tr '/.' '__')"
        head -n 2000 "$txt" | awk -v p="$OUT/corpus/line_${tag}_" \
            '{ f = p NR; printf "%s", $0 > f; close(f) }'
    done < <(find "$ROOT/tests/data" -name '*.txt' -type f -print0)
    # the other collectors' lines (tests/data/syslog/collectors.jsonl), one seed each
    if [ -f "$ROOT/tests/data/syslog/collectors.jsonl" ] && [ -x "$PY" ]; then
        "$PY" - "$OUT/corpus" "$ROOT/tests/data/syslog/collectors.jsonl" <<'PYEOF'
import json
import sys
from pathlib import Path
out = Path(sys.argv[1])
for i, line in enumerate(Path(sys.argv[2]).read_text().splitlines()):
    (out / f"collectors_{i}").write_bytes(json.loads(line)["line"].encode())
PYEOF
    fi
    mapfile -d '' pcaps < <(find "$ROOT/tests/data" \( -name '*.pcap' -o -name '*.pcapng' \) -type f -print0)
    if [ ${#pcaps[@]} -gt 0 ] && [ -x "$PY" ]; then
        "$PY" - "$OUT/corpus" "${pcaps[@]}" <<'PYEOF' || log "could not read the pcaps (scapy missing?), skipped"
import sys
from pathlib import Path
from scapy.utils import RawPcapReader
out = Path(sys.argv[1])
for path in sys.argv[2:]:
    try:
        with RawPcapReader(path) as r:
            for i, (data, _) in enumerate(r):
                if i >= 500:
                    break
                (out / f"pcap_{Path(path).stem}_{i}").write_bytes(data)
    except Exception as e:  # a deliberately broken test capture
        print(f"[fuzz] {path}: {e}", file=sys.stderr)
PYEOF
    fi
fi
log "corpus: $(find "$OUT/corpus" -type f | wc -l) inputs; running ${SECS}s"

set +e
(cd "$OUT" && ./fuzz_decode -max_total_time="$SECS" -max_len="$MAX_LEN" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$OUT/crashes/" \
    ${FUZZ_FLAGS:-} "$OUT/corpus")
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
    echo "fuzz.sh: fuzz_decode failed (exit $rc); inputs in $OUT/crashes/:" >&2
    ls -1 "$OUT/crashes/" >&2 || true
    echo "copy them to tests/data/fuzz/ and run tests/unit/test_fuzz_regressions.py" >&2
    exit 1
fi
log "no crash in ${SECS}s"
