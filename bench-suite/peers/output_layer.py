#!/usr/bin/env python3
"""PyTorch's nn.Linear (f32) and its dynamic int8 form (torch.ao.quantization.quantize_dynamic,
int8 weights per tensor, activations quantized per call; fbgemm on x86) on the shapes of
`bench-suite/examples/output_layer.rs`: median ms per call.

    python3 bench-suite/peers/output_layer.py 1x1024x4096,100x512x4096 [THREADS]
"""
import statistics
import sys
import time
import warnings

import torch

# quantize_dynamic still works in this version; its deprecation notices are noise here.
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=UserWarning)


def median_ms(f, min_runs=5, min_time=0.5, max_time=3.0):
    f()  # warm-up
    samples, start = [], time.perf_counter()
    while True:
        t0 = time.perf_counter()
        f()
        samples.append(time.perf_counter() - t0)
        el = time.perf_counter() - start
        if el >= max_time or (len(samples) >= min_runs and el >= min_time):
            break
    return 1e3 * statistics.median(samples)


def main():
    shapes = sys.argv[1].split(",")
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {threads} thread(s), engine {torch.backends.quantized.engine}")
    print("rows x I x O | torch f32 ms | torch int8 ms | torch f32 backward ms")
    with torch.inference_mode():
        for s in shapes:
            rows, i, o = (int(v) for v in s.split("x"))
            lin = torch.nn.Sequential(torch.nn.Linear(i, o, bias=False)).eval()
            q = torch.ao.quantization.quantize_dynamic(lin, {torch.nn.Linear}, dtype=torch.qint8)
            x = torch.randn(rows, i)
            t32 = median_ms(lambda: lin(x))
            t8 = median_ms(lambda: q(x))
            # The backward alone (dx, dW, db of nn.Linear with a bias) from a kept graph.
            with torch.inference_mode(False), torch.enable_grad():
                lb = torch.nn.Linear(i, o)
                xb = torch.randn(rows, i, requires_grad=True)
                yb = lb(xb)
                dy = torch.randn(rows, o)
                tb = median_ms(lambda: torch.autograd.grad(yb, [xb, lb.weight, lb.bias], dy, retain_graph=True))
            print(f"{s} | {t32:.3f} | {t8:.3f} | {tb:.3f}")


if __name__ == "__main__":
    main()
