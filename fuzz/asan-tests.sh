#!/usr/bin/env bash
# The kernels' test suite once under AddressSanitizer (nightly), in its own target
# directory so the instrumented build never mixes with the normal one. Optimized
# (--release) so the property tests stay fast; PROPTEST_CASES trims them further.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
HOST="${ASAN_TARGET:-x86_64-unknown-linux-gnu}"
export PROPTEST_CASES="${PROPTEST_CASES:-32}"
# Every test that drives the kernels' unsafe code (packing, every micro-kernel and
# epilogue at every ISA, threads, workspaces, bad input): not `bound_quality` and
# `accuracy`, which measure the error bound's tightness and activation accuracy on the
# same paths `props` and `half` already run (53 s and 7 s under ASan), nor the tests
# that only read files (`module_graph`, `docs_errors`, `readme`). Each test binary is
# a separate ASan build of its own (most of this step's time), so three more whose
# paths others here run are left to the plain run: `golden_grads` (the training
# kernels `backward_props` runs), `isa_env` (the golden cases under an environment
# variable: `golden` runs them at every ISA) and `int8_golden` (the int8 paths
# `int8_props` and `int8_cell` run).
ASAN_TESTS_LIST=(contract alloc props half threads golden backward_props int8_props int8_half_io int8_cell)
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:detect_odr_violation=0}"
start=$(date +%s)
RUSTFLAGS="-Zsanitizer=address ${RUSTFLAGS:-}" RUSTDOCFLAGS="-Zsanitizer=address" \
    cargo "+$TOOLCHAIN" test --release --target "$HOST" --target-dir target/asan \
    -p rnn-kernels --lib $(printf -- '--test %s ' "${ASAN_TESTS_LIST[@]}")
echo "=== ASan test suite passed in $(( $(date +%s) - start ))s"
