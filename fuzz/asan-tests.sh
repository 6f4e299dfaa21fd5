#!/usr/bin/env bash
# The kernels' test suite once under AddressSanitizer (nightly), in its own target
# directory so the instrumented build never mixes with the normal one. Optimized
# (--release) so the property tests stay fast; PROPTEST_CASES trims them further.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
HOST="${ASAN_TARGET:-x86_64-unknown-linux-gnu}"
export PROPTEST_CASES="${PROPTEST_CASES:-32}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:detect_odr_violation=0}"
start=$(date +%s)
RUSTFLAGS="-Zsanitizer=address ${RUSTFLAGS:-}" RUSTDOCFLAGS="-Zsanitizer=address" \
    cargo "+$TOOLCHAIN" test --release --target "$HOST" --target-dir target/asan \
    -p rnn-kernels --tests
echo "=== ASan test suite passed in $(( $(date +%s) - start ))s"
