#!/usr/bin/env bash
# Side-by-side f32 comparison with PyTorch and ONNX Runtime on this machine, 1 and 2
# threads: each side is run REPS times, alternating, and join.py keeps each side's
# fastest median per configuration (so both sides get the same treatment).
# Needs: pip install -r bench-suite/peers/requirements.txt
#   bench-suite/compare.sh [OUT_DIR]      (default bench-suite/results)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-suite/results}"
reps="${REPS:-2}"
mkdir -p "$out"
cargo build --release -p rnn-bench-suite --bin report --bin bound
rm -f "$out"/ours-f32-*.jsonl "$out"/peers-f32-*.jsonl "$out"/bound-f32-*.jsonl
for rep in $(seq 1 "$reps"); do
    for t in 1 2; do
        ./target/release/report --json --threads "$t" >> "$out/ours-f32-${t}t.jsonl"
        python3 bench-suite/peers/peers.py --threads "$t" >> "$out/peers-f32-${t}t.jsonl"
    done
done
# The machine's limit per configuration (peak FMA rate, measured read bandwidth), for
# the "ceiling" column: the largest speedup over the peers this machine allows.
for t in 1 2; do
    ./target/release/bound --all --json --threads "$t" > "$out/bound-f32-${t}t.jsonl"
done
python3 bench-suite/peers/join.py "$out"/ours-f32-*.jsonl "$out"/peers-f32-*.jsonl \
    "$out"/bound-f32-*.jsonl > "$out/f32.md"
cat "$out/f32.md"
