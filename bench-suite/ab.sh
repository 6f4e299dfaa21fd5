#!/usr/bin/env bash
# A/B timing of two revisions of this crate in one run: `report` built at BASE_REV and
# at the working tree, run alternately ROUNDS times each with the same arguments, so
# both sides see the same machine state. Prints, per configuration, each side's median
# over the rounds (each round's figure is itself report's median) and new ÷ base.
#
#   bench-suite/ab.sh BASE_REV [ROUNDS] [-- REPORT_ARGS...]
#   e.g. bench-suite/ab.sh 0f395e1 5 -- --threads 1 --isa avx2 --cells lstm,gru
#
# BASE_REV is checked out into target/ab-base (a git worktree, kept for the next run).
# Both revisions' `report` must accept REPORT_ARGS. Ratios within about ±5% are noise
# on a shared 2-core VM; run on an idle machine and compare ratios, not absolute times.
set -euo pipefail
cd "$(dirname "$0")/.."
base="${1:?usage: bench-suite/ab.sh BASE_REV [ROUNDS] [-- REPORT_ARGS...]}"
shift
rounds=3
if [ $# -gt 0 ] && [ "$1" != "--" ]; then rounds="$1"; shift; fi
if [ $# -gt 0 ] && [ "$1" = "--" ]; then shift; fi

wt=target/ab-base
if [ ! -d "$wt" ]; then git worktree add --detach "$wt" "$base" >&2; fi
git -C "$wt" checkout -q --detach "$base"
(cd "$wt" && cargo build --release -q -p rnn-bench-suite --bin report)
cargo build --release -q -p rnn-bench-suite --bin report

out=$(mktemp -d)
for r in $(seq 1 "$rounds"); do
    echo "round $r/$rounds" >&2
    "$wt/target/release/report" --json "$@" | sed 's/^{/{"side":"base",/' >> "$out/runs.jsonl"
    ./target/release/report --json "$@" | sed 's/^{/{"side":"new",/' >> "$out/runs.jsonl"
done
python3 bench-suite/ab_join.py "$base" < "$out/runs.jsonl"
rm -r "$out"
