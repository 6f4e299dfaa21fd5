#!/usr/bin/env bash
# Training step side by side with PyTorch autograd on this machine, 1 and 2 threads:
# ours is `report --pass train` (forward_train + backward, f32 gradients), torch's is
# the forward plus loss.backward() (peers.py --pass train; ONNX Runtime has no training
# step). Each side is run REPS times, alternating, and join.py keeps each side's
# fastest median per configuration (so both sides get the same treatment).
# Needs: pip install -r bench-suite/peers/requirements.txt
#   bench-suite/compare-train.sh [OUT_DIR]      (default bench-suite/results)
# Environment: REPS (default 2); DTYPES (default f32; e.g. f32,f16,bf16: weights, x
# and dy in the type on both sides); SHAPES (BxHxIxT,...; default the six bench
# shapes); QUICK=1 (--quick on both sides, to check the script, not to time).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-suite/results}"
reps="${REPS:-2}"
dtypes="${DTYPES:-f32}"
ours_args=(--json --pass train --dtype "$dtypes")
peer_args=(--pass train --impl torch --dtype "$dtypes")
if [ -n "${SHAPES:-}" ]; then
    ours_args+=(--configs "$SHAPES")
    peer_args+=(--shapes "$SHAPES")
fi
if [ "${QUICK:-0}" = 1 ]; then
    ours_args+=(--quick)
    peer_args+=(--quick)
fi
mkdir -p "$out"
cargo build --release -p rnn-bench-suite --bin report
rm -f "$out"/ours-train-*.jsonl "$out"/peers-train-*.jsonl
for rep in $(seq 1 "$reps"); do
    for t in 1 2; do
        ./target/release/report "${ours_args[@]}" --threads "$t" >> "$out/ours-train-${t}t.jsonl"
        python3 bench-suite/peers/peers.py "${peer_args[@]}" --threads "$t" \
            >> "$out/peers-train-${t}t.jsonl"
    done
done
python3 bench-suite/peers/join.py --pass train "$out"/ours-train-*.jsonl \
    "$out"/peers-train-*.jsonl > "$out/train.md"
cat "$out/train.md"
