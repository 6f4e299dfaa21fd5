#!/usr/bin/env bash
# Bounded fuzzing for CI: every cargo-fuzz target for ${FUZZ_SECONDS:-60} s with the
# nightly toolchain and AddressSanitizer (cargo-fuzz's default sanitizer), starting
# from the committed seed corpus. Exits non-zero on the first crash, panic, leak or
# mismatch (the crashing input is left in fuzz/artifacts/<target>/).
#
#   FUZZ_SECONDS=60 fuzz/run-bounded.sh            # all targets
#   FUZZ_SECONDS=600 fuzz/run-bounded.sh api_contract
#
# FUZZ_PHASES (default "build run asan") picks the phases: `build` installs cargo-fuzz
# if missing and builds every target; `run` fuzzes (and rebuilds nothing when `build`
# ran first); `asan`, unless ASAN_TESTS=0, runs fuzz/asan-tests.sh (the kernels' test
# suite under ASan). `.ci/run` builds early, in the background, and fuzzes later. FUZZ_JOBS
# (default 1) targets fuzz at once: libFuzzer runs one process per target, so on a
# 2-core machine two at a time halve the wall time for the same fuzzing per target.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
PHASES=" ${FUZZ_PHASES:-build run asan} "
JOBS="${FUZZ_JOBS:-1}"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(step_vs_reference backward_vs_reference int8_vs_reference output_vs_reference api_contract weights_import)
fi

# cargo-fuzz builds with one codegen unit unless told otherwise; since the kernels are
# compiled once, in rnn-kernels (not again in each target), that one crate is most of
# the build, and one unit left the second core idle (13 min on a 2-vCPU Zen 1 VM).
# `run` must pass the same flags, or it rebuilds.
CGU=(--codegen-units "${FUZZ_CODEGEN_UNITS:-4}")

if [[ "$PHASES" == *" build "* ]]; then
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "installing cargo-fuzz"
        cargo install cargo-fuzz --locked
    fi
    # Build once (all targets), so the time budget is spent fuzzing.
    cargo "+$TOOLCHAIN" fuzz build --sanitizer address "${CGU[@]}"
fi

# Fuzzes target $1 for the time budget; its log in target/fuzz-$1.log.
fuzz_one() {
    local t="$1"
    # Work on a scratch copy of the seed corpus so CI never rewrites the committed one.
    local work="target/ci-corpus/$t"
    rm -rf "$work" && mkdir -p "$work"
    cp corpus/"$t"/* "$work"/ 2>/dev/null || true
    cargo "+$TOOLCHAIN" fuzz run --sanitizer address "${CGU[@]}" "$t" "$work" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=4096 -print_final_stats=1 \
        > "target/fuzz-$t.log" 2>&1
}

# Reports target $1's run (exit status $2, started at $3); fails on a non-zero status.
report() {
    local t="$1" status="$2" start="$3"
    echo "=== fuzzed $t for ${SECONDS_PER_TARGET}s"
    grep -E "^(Done|stat::number_of_executed_units|==[0-9]+==|thread .* panicked)" "target/fuzz-$t.log" || true
    echo "=== $t: exit $status after $(( $(date +%s) - start ))s"
    if [ "$status" -ne 0 ]; then
        echo "fuzz target $t failed; see fuzz/target/fuzz-$t.log and fuzz/artifacts/$t/" >&2
        tail -n 60 "target/fuzz-$t.log" >&2
        exit "$status"
    fi
}

if [[ "$PHASES" == *" run "* ]]; then
    # The targets in batches of JOBS, each batch's processes side by side.
    for ((i = 0; i < ${#targets[@]}; i += JOBS)); do
        batch=("${targets[@]:i:JOBS}")
        pids=()
        start=$(date +%s)
        for t in "${batch[@]}"; do
            fuzz_one "$t" &
            pids+=($!)
        done
        for j in "${!batch[@]}"; do
            status=0
            wait "${pids[$j]}" || status=$?
            report "${batch[$j]}" "$status" "$start"
        done
    done
fi

if [[ "$PHASES" == *" asan "* ]] && [ "${ASAN_TESTS:-1}" != "0" ]; then
    ./asan-tests.sh
fi
