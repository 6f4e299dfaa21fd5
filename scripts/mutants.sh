#!/usr/bin/env bash
# Mutation testing (issue 17): cargo-mutants on the kernels' and the reference's
# sources, in the release test profile, one shard at a time (2 cores: run shards on
# different machines or one after another). Record the result in docs/mutation-testing.md.
#
# Usage: scripts/mutants.sh [SHARD] [extra cargo-mutants arguments]
#   SHARD            k/n (default 0/1: every mutant of the scope).
#   MUTANTS_SCOPE    the files to mutate, space-separated globs (default below: cell
#                    math, packing, drivers, dispatch, threading, training, reference).
#   MUTANTS_TESTS    arguments after `cargo test` selecting the test targets (default:
#                    every test of the mutated package).
#   MUTANTS_TIMEOUT  seconds per test run (default 900).
#   PROPTEST_CASES   cases per property test (default 64: the pinned and table-driven
#                    tests carry the coverage; 10 000 would take hours per mutant).
#   MUTANTS_RECORD   a directory of outcome lists of earlier runs of the same scope
#                    (e.g. docs/mutants/reference): the mutants caught or unviable there
#                    are skipped (cargo-mutants --iterate, matched by file, line, column
#                    and description, so edited code is tested again), and the lists
#                    are updated after the run, also an interrupted one.
#
# Builds use the `mutants` profile (Cargo.toml: opt-level 1, incremental, 16 codegen
# units, no debug info). Fastest on 2 cores (about a minute a mutant of the kernels,
# 2026-12-08): in a scratch clone (--in-place edits the sources it tests), build the
# test targets once in that profile, then one job at a time in place, reusing that
# incremental build with both cores:
#   git clone . /tmp/mut && cd /tmp/mut
#   cargo test --profile mutants -p rnn-kernels --all-features --tests --no-run
#   MUTANTS_TESTS=--tests MUTANTS_TIMEOUT=240 MUTANTS_RECORD=docs/mutants/kernels \
#     scripts/mutants.sh 0/1 --all-features --in-place --baseline skip
# Example (what docs/mutation-testing.md records):
#   MUTANTS_TESTS="--lib --test golden --test isa_env --test props" \
#     scripts/mutants.sh 0/1 -F 'StateBufs::swap|default_for_process'
set -euo pipefail
export LC_ALL=C # one collation for sort and comm
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || nice -n 10 cargo install cargo-mutants --locked

shard="${1:-0/1}"
shift || true
scope="${MUTANTS_SCOPE:-kernels/src/cells/**/*.rs kernels/src/simd/math.rs kernels/src/pack/*.rs \
kernels/src/kernel/*.rs kernels/src/sequence.rs kernels/src/passes.rs kernels/src/packed.rs \
kernels/src/packed_cell.rs kernels/src/parallel.rs kernels/src/dispatch.rs kernels/src/isa.rs \
kernels/src/training/*.rs reference/src/*.rs reference/src/backward/*.rs}"
args=()
set -f # the globs are cargo-mutants', not the shell's
for f in $scope; do args+=(--file "$f"); done
set +f
test_args=()
for a in ${MUTANTS_TESTS:-}; do test_args+=(--cargo-test-arg="$a"); done

out="target/mutants-${shard//\//-of-}"
record="${MUTANTS_RECORD:-}"
iterate=()
if [ -n "$record" ]; then
    mkdir -p "$record" "$out/mutants.out"
    # --iterate reads caught.txt, previously_caught.txt and unviable.txt from the last
    # output; the record is that output.
    for f in caught previously_caught unviable; do
        if [ -f "$record/$f.txt" ]; then cp "$record/$f.txt" "$out/mutants.out/$f.txt"; fi
    done
    iterate=(--iterate)
fi

# The files given that exist, concatenated (nothing for none).
cat_existing() {
    local f
    for f in "$@"; do
        if [ -f "$f" ]; then cat "$f"; fi
    done
}

# Copies the outcome lists back into the record (caught: every mutant caught so far).
save_record() {
    [ -n "$record" ] || return 0
    local o="$out/mutants.out"
    [ -d "$o" ] || return 0
    cat_existing "$record/unviable.txt" "$o/unviable.txt" | sort -u > "$record/unviable.tmp"
    mv "$record/unviable.tmp" "$record/unviable.txt"
    # cargo-mutants' previously_caught.txt also lists the earlier unviable mutants.
    cat_existing "$o/previously_caught.txt" "$o/caught.txt" | sort -u \
        | comm -23 - "$record/unviable.txt" > "$record/caught.txt"
    rm -f "$record/previously_caught.txt"
    # Missed or timed out before and not tested again (an interrupted run) stay listed
    # until a run catches them.
    for f in missed timeout; do
        cat_existing "$record/$f.txt" "$o/$f.txt" | sort -u \
            | comm -23 - "$record/caught.txt" > "$record/$f.tmp"
        mv "$record/$f.tmp" "$record/$f.txt"
    done
    echo "record updated: $record ($(wc -l < "$record/caught.txt") caught)"
}
trap save_record EXIT

mkdir -p target
status=0
PROPTEST_CASES="${PROPTEST_CASES:-64}" nice -n 10 cargo mutants \
    --profile mutants \
    --shard "$shard" \
    --timeout "${MUTANTS_TIMEOUT:-900}" \
    --output "$out" \
    "${iterate[@]}" "${args[@]}" "${test_args[@]}" "$@" || status=$?
exit "$status"
