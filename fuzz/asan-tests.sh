#!/usr/bin/env bash
# The kernels' test suite once under AddressSanitizer (nightly), in its own target
# directory so the instrumented build never mixes with the normal one. Optimized
# (--release) so the property tests stay fast; PROPTEST_CASES trims them further.
# ASAN_NO_RUN=1 only builds them (`.ci/run` builds while other steps run).
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
# a separate ASan build of its own (most of this step's time), so five more whose
# paths others here run are left to the plain run: `golden_grads` (the training
# kernels `backward_props` runs), `isa_env` and `golden` (the golden cases, at every
# ISA: `props` runs the same packing, products and epilogues on generated problems),
# `int8_golden` (the int8 paths `int8_props` and `int8_cell` run) and `alloc` (it
# counts allocations; the forward and step paths it calls run in `props`).
ASAN_TESTS_LIST=(contract props half threads backward_props int8_props int8_half_io int8_cell)
# Line tables are all an ASan report needs (file and line of each frame); full release
# debug info made this build about a quarter slower (637 s against 487 s for the step,
# fresh target directory, 2 cores).
export CARGO_PROFILE_RELEASE_DEBUG="${CARGO_PROFILE_RELEASE_DEBUG:-line-tables-only}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:detect_odr_violation=0}"
start=$(date +%s)
RUSTFLAGS="-Zsanitizer=address ${RUSTFLAGS:-}" RUSTDOCFLAGS="-Zsanitizer=address" \
    cargo "+$TOOLCHAIN" test --release --target "$HOST" --target-dir target/asan \
    -p rnn-kernels --lib $(printf -- '--test %s ' "${ASAN_TESTS_LIST[@]}") ${ASAN_NO_RUN:+--no-run}
if [ -n "${ASAN_NO_RUN:-}" ]; then
    echo "=== ASan test suite built in $(( $(date +%s) - start ))s"
else
    echo "=== ASan test suite passed in $(( $(date +%s) - start ))s"
fi
