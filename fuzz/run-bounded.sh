#!/usr/bin/env bash
# Bounded fuzzing for CI: every cargo-fuzz target for ${FUZZ_SECONDS:-60} s with the
# nightly toolchain and AddressSanitizer (cargo-fuzz's default sanitizer), starting
# from the committed seed corpus. Exits non-zero on the first crash, panic, leak or
# mismatch (the crashing input is left in fuzz/artifacts/<target>/).
#
#   FUZZ_SECONDS=60 fuzz/run-bounded.sh            # all targets
#   FUZZ_SECONDS=600 fuzz/run-bounded.sh api_contract
#
# Then, unless ASAN_TESTS=0, runs fuzz/asan-tests.sh (the kernels' test suite under ASan).
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(step_vs_reference backward_vs_reference int8_vs_reference output_vs_reference api_contract weights_import)
fi

# Build once (all targets), so the time budget is spent fuzzing.
# cargo-fuzz builds with one codegen unit unless told otherwise; since the kernels are
# compiled once, in rnn-kernels (not again in each target), that one crate is most of
# the build, and one unit left the second core idle (13 min on a 2-vCPU Zen 1 VM).
# `run` must pass the same flags, or it rebuilds.
CGU=(--codegen-units "${FUZZ_CODEGEN_UNITS:-4}")
cargo "+$TOOLCHAIN" fuzz build --sanitizer address "${CGU[@]}"

for t in "${targets[@]}"; do
    # Work on a scratch copy of the seed corpus so CI never rewrites the committed one.
    work="target/ci-corpus/$t"
    rm -rf "$work" && mkdir -p "$work"
    cp corpus/"$t"/* "$work"/ 2>/dev/null || true
    echo "=== fuzzing $t for ${SECONDS_PER_TARGET}s"
    start=$(date +%s)
    set +e
    cargo "+$TOOLCHAIN" fuzz run --sanitizer address "${CGU[@]}" "$t" "$work" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=4096 -print_final_stats=1 \
        > "target/fuzz-$t.log" 2>&1
    status=$?
    set -e
    grep -E "^(Done|stat::number_of_executed_units|==[0-9]+==|thread .* panicked)" "target/fuzz-$t.log" || true
    echo "=== $t: exit $status after $(( $(date +%s) - start ))s"
    if [ "$status" -ne 0 ]; then
        echo "fuzz target $t failed; see fuzz/target/fuzz-$t.log and fuzz/artifacts/$t/" >&2
        tail -n 60 "target/fuzz-$t.log" >&2
        exit "$status"
    fi
done

if [ "${ASAN_TESTS:-1}" != "0" ]; then
    ./asan-tests.sh
fi
