#!/usr/bin/env python3
"""Time the peers (PyTorch and ONNX Runtime) on the rnn-kernels benchmark shapes.

Prints one JSON object per line on stdout, with exactly the keys that
`cargo run --release -p rnn-bench-suite --bin report -- --json` prints:

    impl, isa, dtype, cell, batch, hidden, input, steps, threads, s_per_seq, gflops

Progress, the self-check and notes go to stderr, so `peers.py > out.jsonl` keeps
the output clean.

What is timed: one whole-sequence forward of a single-layer, unidirectional
cell on a time-major input [T, B, I] with a zero initial state, random weights
~U(-1/sqrt(H), 1/sqrt(H)) and random inputs ~U(-1, 1).  After a warm-up the
forward is repeated until about `--budget` seconds have passed and at least
`--min-runs` runs were made (at most `--max-runs`); the median is reported.

  torch:        torch.nn.RNN(nonlinearity='tanh') / LSTM / GRU under
                torch.inference_mode(); for f16/bf16 the module is .to(dtype)
                and the input is in that dtype.
  onnxruntime:  an in-process ONNX model with one RNN / LSTM / GRU operator
                (opset 14, weights as initializers, GRU linear_before_reset=1,
                outputs Y and Y_h), CPU execution provider,
                intra_op_num_threads=N, inter_op_num_threads=1, sequential
                execution.  ORT's CPU RNN operators are float32-only, so it is
                only timed for f32.

GFLOP/s uses the GEMM flop count 2*T*B*G*H*(I+H), G = 1, 3, 4 for RNN, GRU, LSTM.

With --pass train (records gain "pass": "train"; without it they say "forward"),
a training step is timed instead, as `report --pass train` times rnn-kernels':

  torch:        the module in train mode, x with requires_grad (so dx is
                computed, as ours is); per run the parameters' .grad are reset to
                None, y = m(x), then y.backward(dy) with a fixed dy ~ U(-1, 1) --
                loss.backward() of L = sum(y * dy) without forming the product.
                Autograd picks oneDNN's RNN backward where torch has one (LSTM),
                else ATen's (GRU, RNN); the isa field names the forward op found.
                f16/bf16: module, x and dy in that dtype (torch's gradients are
                then in that dtype too; ours are always f32).
  onnxruntime:  has no training step; skipped (say --impl torch).

With --dtype int8 (dynamically quantized: int8 weights, activations quantized at run
time), the same forward on the same f32 weights quantized symmetrically per output
channel (scale = max|w| / 127, as `PackedRnn::<i8>::pack` does):

  torch:        torch.ao.quantization.quantize_dynamic(wrapper, {LSTM, GRU}, qint8)
                on a module holding the nn.LSTM / nn.GRU as a child (a bare nn.LSTM
                is not replaced); weights per tensor (torch's dynamic LSTM/GRU
                quantize each matrix per tensor), kernels of the engine
                torch.backends.quantized.engine (isa = "<engine>/<capability>").
                No RNN (quantize_dynamic does not replace nn.RNN).
  onnxruntime:  one com.microsoft.DynamicQuantizeLSTM node: W [1, I, 4H], R [1, H, 4H]
                int8 (transposed, ONNX gate order), per-channel scales [1, 4H], zero
                points 0, B; LSTM only (isa = "mlas"). On a CPU without VNNI its
                u8 x s8 product (vpmaddubsw) saturates pairs of products that
                overflow int16, so its results are not exact there: the self-check
                then proves that (weights within +-63 codes, which cannot saturate,
                must match) and its rows are marked isa = "mlas/saturating".

GFLOP/s of a training step counts the backward's products too: 3*2*T*B*G*H*(I+H)
(forward; backward: dh through W_hh, dW_hh, dW_ih, dx, each the size of a forward
product).
"""

import argparse
import json
import math
import os
import statistics
import sys
import time
import warnings

CONFIGS = [  # (batch, hidden, input, steps), DeepBench-style, scaled to 2 cores
    (1, 256, 256, 100),
    (1, 512, 512, 100),
    (1, 1024, 1024, 100),
    (16, 512, 512, 50),
    (64, 512, 512, 50),
    (64, 1024, 1024, 25),
]
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
ALL_CELLS = ["lstm", "gru", "rnn"]
ALL_DTYPES = ["f32", "f16", "bf16", "int8"]
# int8 peers exist for these cells only (ORT: DynamicQuantizeLSTM; torch: quantize_dynamic).
INT8_CELLS = {"torch": ["lstm", "gru"], "onnxruntime": ["lstm"]}
ALL_IMPLS = ["torch", "onnxruntime"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def parse_list(s, allowed, what):
    items = [x.strip().lower() for x in s.split(",") if x.strip()]
    for x in items:
        if x not in allowed:
            raise SystemExit(f"unknown {what} {x!r}; expected some of {','.join(allowed)}")
    return items


def parse_shapes(s):
    out = []
    for part in s.split(","):
        part = part.strip()
        if not part:
            continue
        dims = part.lower().split("x")
        if len(dims) != 4:
            raise SystemExit(f"bad shape {part!r}: expected BxHxIxT, e.g. 1x256x256x100")
        out.append(tuple(int(d) for d in dims))
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads for both peers (default 1)")
    p.add_argument("--cells", default="lstm,gru,rnn", help="comma list of lstm,gru,rnn")
    p.add_argument("--dtype", default="f32", help="comma list of f32,f16,bf16,int8 (f16/bf16: torch only; int8: dynamically "
                        "quantized LSTM (torch, ORT's DynamicQuantizeLSTM) and GRU (torch))")
    p.add_argument("--impl", default="torch,onnxruntime", help="comma list of torch,onnxruntime")
    p.add_argument("--shapes", default=None,
                   help="comma list of BxHxIxT (default: the six benchmark configurations)")
    p.add_argument("--quick", action="store_true",
                   help="short run: 1 warm-up, >=3 runs, ~0.2 s budget, <=10 runs, first three shapes only "
                        "(unless --shapes is given)")
    p.add_argument("--budget", type=float, default=None, help="seconds of timed runs per case (default 1.0)")
    p.add_argument("--min-runs", type=int, default=None, help="minimum timed runs (default 5)")
    p.add_argument("--max-runs", type=int, default=None, help="maximum timed runs (default 50)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up runs (default 2)")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                   help="before each case, wait up to SECONDS for other processes to use < 0.25 cores "
                        "(default 0: do not wait)")
    p.add_argument("--max-isa", choices=["avx2"], default=None,
                   help="restrict torch to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2, MKL_ENABLE_INSTRUCTIONS=AVX2, "
                        "ATEN_CPU_CAPABILITY=avx2, and for int8 FBGEMM_ENABLE_INSTRUCTIONS=AVX2), to judge the kernels' avx2 path on an AVX-512 machine. "
                        "ONNX Runtime has no such switch (MLAS picks its kernels from CPUID), so it is "
                        "skipped unless --impl names it, and its rows then say 'unrestricted'")
    p.add_argument("--pass", dest="pass_", choices=["forward", "train"], default="forward",
                   help="forward (default) or train: a training step, forward + loss.backward() "
                        "(torch only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-check", action="store_true", help="skip the torch-vs-ORT self-check")
    a = p.parse_args(argv)
    if a.threads < 1:
        raise SystemExit("--threads must be >= 1")
    a.cells = parse_list(a.cells, ALL_CELLS, "cell")
    a.dtype = parse_list(a.dtype, ALL_DTYPES, "dtype")
    a.impl = parse_list(a.impl, ALL_IMPLS, "impl")
    impl_given = "--impl" in " ".join(argv if argv is not None else sys.argv)
    if (a.max_isa or a.pass_ == "train") and not impl_given:
        a.impl = ["torch"]
    if a.shapes:
        a.shapes = parse_shapes(a.shapes)
    else:
        a.shapes = CONFIGS[:3] if a.quick else list(CONFIGS)
    q = a.quick
    a.budget = a.budget if a.budget is not None else (0.2 if q else 1.0)
    a.min_runs = a.min_runs if a.min_runs is not None else (3 if q else 5)
    a.max_runs = a.max_runs if a.max_runs is not None else (10 if q else 50)
    a.warmup = a.warmup if a.warmup is not None else (1 if q else 2)
    a.max_runs = max(a.max_runs, a.min_runs)
    return a


ARGS = parse_args()

# Thread counts must be in the environment before torch / numpy load OpenMP / MKL.
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)
# So must the ISA limits: oneDNN and MKL read them once, when they first dispatch.
if ARGS.max_isa == "avx2":
    os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    os.environ["MKL_ENABLE_INSTRUCTIONS"] = "AVX2"
    os.environ["ATEN_CPU_CAPABILITY"] = "avx2"
    # fbgemm (torch's int8 engine) reads its own variable (fbgemm's src/Utils.cc).
    os.environ["FBGEMM_ENABLE_INSTRUCTIONS"] = "AVX2"

import numpy as np  # noqa: E402

try:
    import torch  # noqa: E402
except ImportError as e:  # pragma: no cover - depends on the environment
    torch = None
    TORCH_ERR = e
try:
    import onnx  # noqa: E402
    from onnx import TensorProto, helper, numpy_helper  # noqa: E402
    import onnxruntime as ort  # noqa: E402
except ImportError as e:  # pragma: no cover
    ort = None
    ORT_ERR = e


def gflops(cell, b, h, i, t, secs, pass_="forward"):
    """GEMM GFLOP/s; a training step does 3 forwards' worth of products (see the docstring)."""
    products = 3.0 if pass_ == "train" else 1.0
    return products * 2.0 * t * b * GATES[cell] * h * (i + h) / secs / 1e9


def cpu_snapshot():
    """(wall s, whole-machine busy CPU s from /proc/stat, this process's CPU s), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    busy = sum(v) - v[3] - (v[4] if len(v) > 4 else 0)  # all but idle and iowait
    t = os.times()
    return time.perf_counter(), busy / os.sysconf("SC_CLK_TCK"), t.user + t.system


def other_load(before, after):
    """Cores' worth of CPU that other processes used between two snapshots (noise indicator)."""
    if before is None or after is None or after[0] <= before[0]:
        return 0.0
    return max(0.0, ((after[1] - before[1]) - (after[2] - before[2])) / (after[0] - before[0]))


def wait_idle(limit):
    """Sleep (sampling 0.5 s at a time) until other processes use < 0.25 cores, for at most limit s."""
    deadline = time.perf_counter() + limit
    while True:
        a = cpu_snapshot()
        time.sleep(0.5)
        busy = other_load(a, cpu_snapshot())
        if busy < 0.25 or time.perf_counter() >= deadline:
            return busy


def time_fn(fn, warmup, budget, min_runs, max_runs):
    """Median seconds of fn() after warm-up; runs until budget and min_runs, capped at max_runs."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_runs:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= min_runs and time.perf_counter() - start >= budget:
            break
    return statistics.median(times), len(times)


# ---------------------------------------------------------------- torch side

TORCH_DTYPES = {}
if torch is not None:
    TORCH_DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def make_torch(cell, h, i, seed):
    """A torch module with weights ~U(-1/sqrt(H), 1/sqrt(H)) (torch's default init, seeded)."""
    torch.manual_seed(seed)
    if cell == "lstm":
        m = torch.nn.LSTM(i, h, num_layers=1, bias=True, batch_first=False)
    elif cell == "gru":
        m = torch.nn.GRU(i, h, num_layers=1, bias=True, batch_first=False)
    else:
        m = torch.nn.RNN(i, h, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False)
    k = 1.0 / math.sqrt(h)
    with torch.no_grad():
        for p in m.parameters():
            p.uniform_(-k, k)
    return m.eval()


class quiet_stderr:
    """Silence file descriptor 2 (the profiler's C++ side logs there) for a with-block."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)
        return False


def torch_isa(cell, tdtype, pass_="forward"):
    """Which torch CPU path runs this cell: profile a tiny forward (train: a training step)
    and look for oneDNN's RNN op."""
    cap = "unknown"
    try:
        cap = torch.backends.cpu.get_cpu_capability().lower()
    except Exception:
        pass
    backend = "aten"
    try:
        m = make_torch(cell, 16, 16, 0).to(tdtype)
        x = torch.zeros(2, 1, 16, dtype=tdtype)
        from torch.profiler import ProfilerActivity, profile
        if pass_ == "train":
            m.train()
            x.requires_grad_(True)
            with quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
                y, _ = m(x)
                y.backward(torch.ones_like(y))
        else:
            with quiet_stderr(), torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
                m(x)
        names = {e.key for e in prof.key_averages()}
        if any("mkldnn_rnn" in n for n in names):
            backend = "onednn"
    except Exception as e:  # profiler unavailable: leave "aten"
        log(f"[peers] note: could not profile torch {cell}: {e}")
    return f"{backend}/{cap}"


def bench_torch(cell, dtype, b, h, i, t, args):
    tdtype = TORCH_DTYPES[dtype]
    m = make_torch(cell, h, i, args.seed).to(tdtype)
    g = torch.Generator().manual_seed(args.seed + 1)
    x = (torch.rand(t, b, i, generator=g) * 2 - 1).to(tdtype)
    with torch.inference_mode():
        med, n = time_fn(lambda: m(x), args.warmup, args.budget, args.min_runs, args.max_runs)
    return med, n


def bench_torch_train(cell, dtype, b, h, i, t, args):
    """A training step: forward with autograd recording, then loss.backward() of sum(y * dy)."""
    tdtype = TORCH_DTYPES[dtype]
    m = make_torch(cell, h, i, args.seed).to(tdtype).train()
    g = torch.Generator().manual_seed(args.seed + 1)
    x = (torch.rand(t, b, i, generator=g) * 2 - 1).to(tdtype).requires_grad_(True)
    dy = (torch.rand(t, b, h, generator=g) * 2 - 1).to(tdtype)
    params = list(m.parameters())

    def step():
        for p in params:
            p.grad = None
        x.grad = None
        y, _ = m(x)
        y.backward(dy)

    step()  # fail here (unsupported dtype / op) rather than inside the timing loop
    if any(p.grad is None for p in params) or x.grad is None:
        raise RuntimeError("autograd left a gradient unset")
    return time_fn(step, args.warmup, args.budget, args.min_runs, args.max_runs)


# ----------------------------------------------------------------- ORT side

def torch_to_onnx_weights(cell, m):
    """ONNX W, R, B (leading num_directions=1 axis) from a float32 torch module, gate orders converted.

    torch LSTM rows i,f,g,o -> ONNX i,o,f,c;  torch GRU rows r,z,n -> ONNX z,r,h;  RNN: single gate.
    """
    wih = m.weight_ih_l0.detach().float().numpy()
    whh = m.weight_hh_l0.detach().float().numpy()
    bih = m.bias_ih_l0.detach().float().numpy()
    bhh = m.bias_hh_l0.detach().float().numpy()
    h = whh.shape[1]

    def reorder(a, order):
        blocks = [a[k * h:(k + 1) * h] for k in range(a.shape[0] // h)]
        return np.concatenate([blocks[k] for k in order], axis=0)

    order = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2], "rnn": [0]}[cell]
    w = reorder(wih, order)[None]
    r = reorder(whh, order)[None]
    bias = np.concatenate([reorder(bih, order), reorder(bhh, order)])[None]
    return (np.ascontiguousarray(w, dtype=np.float32), np.ascontiguousarray(r, dtype=np.float32),
            np.ascontiguousarray(bias, dtype=np.float32))


def random_onnx_weights(cell, h, i, rng):
    g = GATES[cell]
    k = 1.0 / math.sqrt(h)
    w = rng.uniform(-k, k, size=(1, g * h, i)).astype(np.float32)
    r = rng.uniform(-k, k, size=(1, g * h, h)).astype(np.float32)
    bias = rng.uniform(-k, k, size=(1, 2 * g * h)).astype(np.float32)
    return w, r, bias


def make_ort_session(cell, b, h, i, t, w, r, bias, threads):
    op = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[cell]
    attrs = {"hidden_size": h, "direction": "forward"}
    if cell == "gru":
        attrs["linear_before_reset"] = 1  # what torch.nn.GRU computes
    node = helper.make_node(op, ["X", "W", "R", "B"], ["Y", "Y_h"], **attrs)
    graph = helper.make_graph(
        [node], f"{cell}_peer",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [t, b, i])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [t, 1, b, h]),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, b, h])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R"),
                     numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)],
                              producer_name="rnn-kernels-peers")
    model.ir_version = min(model.ir_version, 8)  # opset 14 era; accepted by every recent ORT
    onnx.checker.check_model(model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])


def quantize_per_channel(w, max_code=127):
    """Symmetric per-row int8 codes (within +-max_code) and scales of a [rows, k] float32
    matrix."""
    m = np.abs(w).max(axis=1)
    scale = np.where(m > 0, m / float(max_code), 1.0).astype(np.float32)
    codes = np.clip(np.rint(w / scale[:, None]), -max_code, max_code).astype(np.int8)
    return codes, scale


def make_ort_int8_session(b, h, i, t, w, r, bias, threads, max_code=127):
    """A one-node com.microsoft.DynamicQuantizeLSTM session on f32 ONNX weights w [1, 4H, I],
    r [1, 4H, H], quantized per channel; also returns the dequantized (w, r)."""
    wq, ws = quantize_per_channel(w[0], max_code)
    rq, rs = quantize_per_channel(r[0], max_code)
    inits = [
        numpy_helper.from_array(np.ascontiguousarray(wq.T[None]), "W"),
        numpy_helper.from_array(np.ascontiguousarray(rq.T[None]), "R"),
        numpy_helper.from_array(bias, "B"),
        numpy_helper.from_array(ws[None], "W_scale"),
        numpy_helper.from_array(np.zeros((1, 4 * h), np.int8), "W_zero_point"),
        numpy_helper.from_array(rs[None], "R_scale"),
        numpy_helper.from_array(np.zeros((1, 4 * h), np.int8), "R_zero_point"),
    ]
    node = helper.make_node(
        "DynamicQuantizeLSTM",
        ["X", "W", "R", "B", "", "", "", "", "W_scale", "W_zero_point", "R_scale", "R_zero_point"],
        ["Y", "Y_h"], domain="com.microsoft", hidden_size=h, direction="forward")
    graph = helper.make_graph(
        [node], "dq_lstm_peer",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [t, b, i])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [t, 1, b, h]),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, b, h])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14),
                                                    helper.make_opsetid("com.microsoft", 1)],
                              producer_name="rnn-kernels-peers")
    model.ir_version = min(model.ir_version, 8)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])
    deq = ((wq.astype(np.float32) * ws[:, None])[None], (rq.astype(np.float32) * rs[:, None])[None])
    return sess, deq


class Holder(torch.nn.Module if torch is not None else object):
    """quantize_dynamic replaces child modules only: the RNN must be a child."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)


def make_torch_int8(cell, h, i, seed):
    """torch's dynamic quantized LSTM / GRU (int8 weights; its from_float quantizes each
    weight matrix per tensor, whatever the qconfig), and the f32 module it came from."""
    m = make_torch(cell, h, i, seed)
    kind = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    with warnings.catch_warnings():  # the deprecation notice of torch.ao.quantization
        warnings.simplefilter("ignore")
        q = torch.ao.quantization.quantize_dynamic(Holder(m), {kind}, dtype=torch.qint8)
    if isinstance(q.rnn, kind):
        raise RuntimeError(f"quantize_dynamic left {cell} in f32")
    return q.eval(), m


def bench_torch_int8(cell, b, h, i, t, args):
    q, _ = make_torch_int8(cell, h, i, args.seed)
    g = torch.Generator().manual_seed(args.seed + 1)
    x = torch.rand(t, b, i, generator=g) * 2 - 1
    with torch.inference_mode():
        return time_fn(lambda: q(x), args.warmup, args.budget, args.min_runs, args.max_runs)


def bench_ort_int8(b, h, i, t, args):
    rng = np.random.default_rng(args.seed)
    w, r, bias = random_onnx_weights("lstm", h, i, rng)
    sess, _ = make_ort_int8_session(b, h, i, t, w, r, bias, args.threads)
    x = rng.uniform(-1, 1, size=(t, b, i)).astype(np.float32)
    feeds = {"X": x}
    return time_fn(lambda: sess.run(None, feeds), args.warmup, args.budget, args.min_runs, args.max_runs)


def bench_ort(cell, b, h, i, t, args):
    rng = np.random.default_rng(args.seed)
    w, r, bias = random_onnx_weights(cell, h, i, rng)
    sess = make_ort_session(cell, b, h, i, t, w, r, bias, args.threads)
    x = rng.uniform(-1, 1, size=(t, b, i)).astype(np.float32)
    feeds = {"X": x}
    return time_fn(lambda: sess.run(None, feeds), args.warmup, args.budget, args.min_runs, args.max_runs)


# --------------------------------------------------------------- self-check

def self_check(threads, tol=1e-5):
    """Tiny config: the ORT operator given torch's weights must reproduce torch's output."""
    b, h, i, t = 3, 7, 5, 4
    ok = True
    for cell in ALL_CELLS:
        m = make_torch(cell, h, i, 123)
        x = (torch.rand(t, b, i, generator=torch.Generator().manual_seed(7)) * 2 - 1)
        with torch.inference_mode():
            y_t, _ = m(x)
        w, r, bias = torch_to_onnx_weights(cell, m)
        sess = make_ort_session(cell, b, h, i, t, w, r, bias, threads)
        y_o, yh_o = sess.run(None, {"X": x.numpy()})
        y_o = y_o[:, 0]  # [T, 1, B, H] -> [T, B, H]
        err = float(np.max(np.abs(y_o - y_t.numpy())))
        err_h = float(np.max(np.abs(yh_o[0] - y_t.numpy()[-1])))
        good = max(err, err_h) <= tol
        ok &= good
        log(f"[peers] self-check {cell}: max |ORT - torch| = {max(err, err_h):.2e} over Y and Y_h "
            f"(B={b} H={h} I={i} T={t}) -> {'ok' if good else 'MISMATCH'}")
    return ok


# Set by the self-check when ORT's int8 product saturates on this CPU (module docs).
ORT_INT8_SATURATES = False


def ort_int8_error(threads, max_code):
    """Max |DynamicQuantizeLSTM - torch's f32 LSTM on the dequantized weights| on the
    self-check's tiny config, weights quantized within +-max_code."""
    b, h, i, t = 3, 16, 12, 5
    x = torch.rand(t, b, i, generator=torch.Generator().manual_seed(7)) * 2 - 1
    m = make_torch("lstm", h, i, 123)
    w, r, bias = torch_to_onnx_weights("lstm", m)
    sess, (wd, rd) = make_ort_int8_session(b, h, i, t, w, r, bias, threads, max_code)
    y_o, yh_o = sess.run(None, {"X": x.numpy()})
    # torch's f32 LSTM on the same dequantized weights (ONNX gate order i,o,f,c -> torch i,f,g,o).
    def torch_order(a):
        blocks = np.split(a[0], 4, axis=0)
        return torch.from_numpy(np.concatenate([blocks[k] for k in (0, 2, 3, 1)], axis=0))
    with torch.no_grad():
        m.weight_ih_l0.copy_(torch_order(wd))
        m.weight_hh_l0.copy_(torch_order(rd))
    with torch.inference_mode():
        y_f, yh_f = m(x)
    y_f, yh_f = y_f.numpy(), yh_f[0].numpy()
    return float(max(np.abs(y_o[:, 0] - y_f).max(), np.abs(yh_o - yh_f).max()))


def int8_self_check(threads, tol=1e-2):
    """Tiny config (B=3 H=16 I=12 T=5): ORT's DynamicQuantizeLSTM must stay within `tol` of
    torch's f32 LSTM on the dequantized weights (the difference is the run-time quantization
    of x and h), and torch's dynamic quantized LSTM / GRU within `tol` of the f32 module on
    its dequantized weights. A difference of exactly 0 fails too (the int8 path did not run).

    `tol`: 8-bit activations over a block in [-1, 1] are off by at most half a step, 1/255;
    times the row sums of |W| (about (I + H) / (2 sqrt(H)) = 3.5 here) that is up to 1.4e-2
    on one step's pre-activations, and the gates (slopes <= 1) and the state's decay keep
    the outputs' error below that. Observed: 1.0e-3 (ORT LSTM), 2.0e-3 / 4.4e-3 (torch
    LSTM / GRU). A wrong scale, zero point or gate order is off by 0.1 or more.

    ORT on a CPU without VNNI (vpmaddubsw, whose int16 pair sums saturate) was off by
    9.5e-2 on an AVX2-only Zen 1, and by 1.05e-3 with the weights within +-63 codes (no
    pair can saturate: 2 * 255 * 63 < 32768). So when the full-range check fails, the
    +-63 one runs: if it passes, the only fault is the saturation, ORT is timed (the
    speed of a kernel that skips exactness), and its rows say so (isa
    "mlas/saturating")."""
    global ORT_INT8_SATURATES
    ok = True
    err = ort_int8_error(threads, 127)
    good = 0 < err <= tol
    log(f"[peers] int8 self-check onnxruntime lstm: max |DynamicQuantizeLSTM - torch f32 LSTM on the "
        f"dequantized weights| = {err:.2e} (B=3 H=16 I=12 T=5) -> {'ok' if good else 'MISMATCH'}")
    if not good:
        err63 = ort_int8_error(threads, 63)
        ORT_INT8_SATURATES = 0 < err63 <= tol
        log(f"[peers] int8 self-check onnxruntime lstm, weights within +-63 codes (cannot "
            f"saturate vpmaddubsw): {err63:.2e} -> "
            + ("ok: ORT saturates on this CPU; timed, marked mlas/saturating"
               if ORT_INT8_SATURATES else "MISMATCH"))
        good = ORT_INT8_SATURATES
    ok &= good
    h, i, t = 16, 12, 5
    x = torch.rand(t, 3, i, generator=torch.Generator().manual_seed(7)) * 2 - 1
    for cell in INT8_CELLS["torch"]:
        q, m = make_torch_int8(cell, h, i, 123)
        with torch.no_grad():  # the f32 module on the weights torch quantized, dequantized
            for name, v in q.rnn.get_weight().items():
                getattr(m, name).copy_(v.dequantize())
        with torch.inference_mode():
            y_q, _ = q(x)
            y_t, _ = m(x)
        err = float((y_q - y_t).abs().max())
        good = 0 < err <= tol
        ok &= good
        log(f"[peers] int8 self-check torch {cell}: max |dynamic quantized - f32 on its dequantized "
            f"weights| = {err:.2e} "
            f"-> {'ok' if good else 'MISMATCH'}")
    return ok


# --------------------------------------------------------------------- main

def main(args):
    impls = list(args.impl)
    if "torch" in impls and torch is None:
        raise SystemExit(f"torch is not importable: {TORCH_ERR}")
    if "onnxruntime" in impls and ort is None:
        raise SystemExit(f"onnx/onnxruntime is not importable: {ORT_ERR}")
    if torch is not None:
        torch.set_num_threads(args.threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        log(f"[peers] torch {torch.__version__}, cpu capability "
            f"{torch.backends.cpu.get_cpu_capability()}, mkldnn {torch.backends.mkldnn.is_available()}, "
            f"threads {torch.get_num_threads()}")
    if ort is not None:
        log(f"[peers] onnxruntime {ort.__version__}, onnx {onnx.__version__}, "
            f"providers {ort.get_available_providers()}")

    try:
        log(f"[peers] load average {open('/proc/loadavg').read().split()[0]} on {os.cpu_count()} CPUs "
            f"(timings are only meaningful on an otherwise idle machine)")
    except OSError:
        pass
    if not args.no_check:
        if args.pass_ == "train":
            log("[peers] self-check (torch vs ORT forward) skipped: --pass train times torch only")
        elif torch is None or ort is None:
            log("[peers] self-check skipped: needs both torch and onnxruntime")
        elif not self_check(args.threads):
            raise SystemExit("[peers] self-check FAILED: torch and ORT disagree; not timing")
        elif "int8" in args.dtype and not int8_self_check(args.threads):
            raise SystemExit("[peers] int8 self-check FAILED; not timing")

    # One impl at a time, so the two runtimes' thread pools do not compete.
    for impl in impls:
        for dtype in args.dtype:
            if impl == "onnxruntime" and args.pass_ == "train":
                log("[peers] onnxruntime: skipping (no training step)")
                break
            if impl == "onnxruntime" and dtype not in ("f32", "int8"):
                log(f"[peers] onnxruntime: skipping {dtype} (its CPU RNN/LSTM/GRU kernels are float32-only)")
                continue
            for cell in args.cells:
                if dtype == "int8" and (args.pass_ == "train" or cell not in INT8_CELLS[impl]):
                    log(f"[peers] {impl}: no int8 {cell} {args.pass_} peer; skipping")
                    continue
                if dtype == "int8":
                    isa = ("mlas/saturating" if ORT_INT8_SATURATES else "mlas") if impl == "onnxruntime" else (
                        f"{torch.backends.quantized.engine}/{torch.backends.cpu.get_cpu_capability().lower()}")
                else:
                    isa = torch_isa(cell, TORCH_DTYPES[dtype], args.pass_) if impl == "torch" else "mlas"
                if impl == "onnxruntime" and args.max_isa:
                    isa = "mlas/unrestricted"
                for (b, h, i, t) in args.shapes:
                    if args.wait_idle > 0:
                        wait_idle(args.wait_idle)
                    snap = cpu_snapshot()
                    try:
                        if dtype == "int8" and impl == "torch":
                            med, n = bench_torch_int8(cell, b, h, i, t, args)
                        elif dtype == "int8":
                            med, n = bench_ort_int8(b, h, i, t, args)
                        elif impl == "torch" and args.pass_ == "train":
                            med, n = bench_torch_train(cell, dtype, b, h, i, t, args)
                        elif impl == "torch":
                            med, n = bench_torch(cell, dtype, b, h, i, t, args)
                        else:
                            med, n = bench_ort(cell, b, h, i, t, args)
                    except Exception as e:  # an unsupported dtype/op on this build: report, go on
                        log(f"[peers] {impl} {dtype} {cell} B={b} H={h} I={i} T={t}: FAILED: {e}")
                        continue
                    busy = other_load(snap, cpu_snapshot())
                    rec = {
                        "impl": impl, "isa": isa, "dtype": dtype, "cell": cell,
                        "batch": b, "hidden": h, "input": i, "steps": t,
                        "threads": args.threads, "s_per_seq": med,
                        "gflops": gflops(cell, b, h, i, t, med, args.pass_),
                        "pass": args.pass_,
                    }
                    print(json.dumps(rec), flush=True)
                    log(f"[peers] {impl:11s} {isa:18s} {args.pass_:7s} {dtype:4s} {cell:4s} B={b:<3d} H={h:<4d} I={i:<4d} "
                        f"T={t:<3d} thr={args.threads}: {med * 1e3:9.3f} ms/seq "
                        f"{rec['gflops']:7.2f} GFLOP/s ({n} runs)"
                        + (f"  WARNING: other processes used {busy:.2f} cores meanwhile" if busy > 0.25 else ""))


if __name__ == "__main__":
    main(ARGS)
