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
# Example (what docs/mutation-testing.md records):
#   MUTANTS_TESTS="--lib --test golden --test isa_env --test props" \
#     scripts/mutants.sh 0/1 -F 'StateBufs::swap|default_for_process'
set -euo pipefail
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

mkdir -p target
PROPTEST_CASES="${PROPTEST_CASES:-64}" nice -n 10 cargo mutants \
    --profile release \
    --shard "$shard" \
    --timeout "${MUTANTS_TIMEOUT:-900}" \
    --output "target/mutants-${shard//\//-of-}" \
    "${args[@]}" "${test_args[@]}" "$@"
