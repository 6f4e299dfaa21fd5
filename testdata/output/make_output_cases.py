#!/usr/bin/env python3
"""Writes `output_layer.json`: PyTorch's `nn.Linear` followed by identity, `torch.sigmoid`
and `torch.softmax(dim=-1)`, in float64 on float32-exact weights and inputs, with the
autograd gradients of L = sum(y * dy). Checked by `kernels/tests/output_layer.rs`.

    pip install torch
    python3 testdata/output/make_output_cases.py
"""
import json
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def f32(t):
    return t.to(torch.float32).to(torch.float64)


def case(name, act, t, b, i, o, bias, scale, seed):
    g = torch.Generator().manual_seed(seed)
    lin = torch.nn.Linear(i, o, bias=bias).to(torch.float64)
    with torch.no_grad():
        lin.weight.copy_(f32(torch.rand(o, i, generator=g, dtype=torch.float64) * 2 - 1))
        if bias:
            lin.bias.copy_(f32(torch.rand(o, generator=g, dtype=torch.float64) - 0.5))
    x = f32((torch.rand(t, b, i, generator=g, dtype=torch.float64) * 2 - 1) * scale).requires_grad_()
    dy = f32(torch.rand(t, b, o, generator=g, dtype=torch.float64) * 2 - 1)
    z = lin(x)
    y = {"identity": z, "sigmoid": torch.sigmoid(z), "softmax": torch.softmax(z, dim=-1)}[act]
    (y * dy).sum().backward()
    flat = lambda v: v.detach().reshape(-1).tolist()
    return {
        "name": name,
        "activation": act,
        "rows": t * b,
        "in_features": i,
        "out_features": o,
        "w": flat(lin.weight),
        "b": flat(lin.bias) if bias else None,
        "x": flat(x),
        "y": flat(y),
        "dy": flat(dy),
        "dx": flat(x.grad),
        "dw": flat(lin.weight.grad),
        "db": flat(lin.bias.grad) if bias else None,
    }


cases = [
    case("identity", "identity", 3, 2, 5, 7, True, 1.0, 1),
    case("sigmoid_nobias", "sigmoid", 2, 3, 17, 20, False, 2.0, 2),
    case("softmax", "softmax", 4, 2, 9, 33, True, 1.0, 3),
    case("softmax_large_logits", "softmax", 2, 2, 6, 70, True, 30.0, 4),
]
out = {"source": f"torch {torch.__version__}, float64", "cases": cases}
with open(os.path.join(HERE, "output_layer.json"), "w") as f:
    json.dump(out, f)
print(f"wrote {len(cases)} cases")
