#!/usr/bin/env python3
"""The weight-gradient product as PyTorch's autograd computes it, alone: for a cell of G
gates, `grad_W = dG^T @ X` with dG of shape (T*B, G*H) and X of shape (T*B, K), K the
input size I (for W_ih) or H (for W_hh), both row-major f32, as torch's addmm backward
does (MKL sgemm in the x86 wheels). Median GFLOP/s per product, two per shape (W_ih and
W_hh), to put beside `report --pass train`'s "dW products" GFLOP/s and its FMA probe,
run in the same session on the same CPU.

    python3 bench-suite/peers/weight_grad_gemm.py lstm:64x1024x1024x25,gru:64x512x512x50 [THREADS]
"""
import sys

import torch

# The timing loop of the output-layer peer script (same directory, on sys.path when
# run as a script).
from output_layer import median_ms

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def main():
    shapes = sys.argv[1].split(",")
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {threads} thread(s), "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print("cell | B,H,I,T | product | M x N x K | ms | GFLOP/s")
    with torch.no_grad():
        for s in shapes:
            cell, dims = s.split(":")
            b, h, i, t = (int(v) for v in dims.split("x"))
            rows, cols = t * b, GATES[cell] * h
            dg = torch.randn(rows, cols)
            for name, k in (("dW_ih", i), ("dW_hh", h)):
                x = torch.randn(rows, k)
                out = torch.empty(cols, k)
                sec = median_ms(lambda: torch.mm(dg.t(), x, out=out)) / 1e3
                flops = 2 * cols * k * rows
                print(f"{cell} | {b},{h},{i},{t} | {name} | {cols} x {k} x {rows} | "
                      f"{1e3 * sec:.2f} | {flops / sec / 1e9:.1f}")


if __name__ == "__main__":
    main()
