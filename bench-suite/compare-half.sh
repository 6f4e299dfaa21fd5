#!/usr/bin/env bash
# Half precision side by side, 1 thread: our f32/f16/bf16 (weights, x and y in the
# type) and PyTorch's f16/bf16 LSTM/GRU (ONNX Runtime has no half RNN kernels), each
# run REPS times alternating; join.py keeps each side's fastest median, and
# --half-vs-f32 adds our half rows against the peers' f32 rows (from compare.sh, if
# present in OUT_DIR).
# Needs: pip install -r bench-suite/peers/requirements.txt
#   bench-suite/compare-half.sh [OUT_DIR]      (default bench-suite/results)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-suite/results}"
reps="${REPS:-2}"
mkdir -p "$out"
cargo build --release -p rnn-bench-suite --bin report --bin bound
rm -f "$out"/ours-half-1t.jsonl "$out"/peers-half-1t.jsonl
for rep in $(seq 1 "$reps"); do
    ./target/release/report --json --dtype f32,f16,bf16 --cells lstm,gru >> "$out/ours-half-1t.jsonl"
    python3 bench-suite/peers/peers.py --dtype f16,bf16 --impl torch --cells lstm,gru \
        >> "$out/peers-half-1t.jsonl"
done
peers_f32=()
[ -f "$out/peers-f32-1t.jsonl" ] && peers_f32=("$out/peers-f32-1t.jsonl")
python3 bench-suite/peers/join.py --half-vs-f32 "$out/ours-half-1t.jsonl" \
    "$out/peers-half-1t.jsonl" "${peers_f32[@]}" > "$out/half.md"
# The batch-1 bound of the half types (recurrent bytes halved; bf16 input projection
# at the vdpbf16ps rate where the CPU has it), beside the kernels' time.
for d in bf16 f16; do
    ./target/release/bound --dtype "$d" > "$out/bound-$d-1t.md"
done
cat "$out/half.md"
