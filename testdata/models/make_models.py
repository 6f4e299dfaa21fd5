#!/usr/bin/env python3
"""Writes the small model files of `testdata/models/` and their cases.

    pip install torch onnx onnxruntime safetensors   # versions used: see MANIFEST below
    python3 testdata/models/make_models.py

Every model file is written once by the system a user would have exported it with:

* `*.safetensors`: PyTorch `state_dict()`s of `nn.LSTM` / `nn.GRU` / `nn.RNN` (some
  inside a bigger module, so their names carry a prefix such as `encoder.rnn.`), saved
  by `safetensors.torch.save_file`; f32, f16 and bf16.
* `torch_*.onnx`: `torch.onnx.export(..., dynamo=False)` of multi-layer modules: one
  ONNX node per layer, joined by Slice / Transpose / Reshape / Squeeze / Concat.
* `onnx_*.onnx`: single `LSTM` / `GRU` / `RNN` nodes built with `onnx.helper`
  (peephole, clip, reverse, `sequence_lens` as a graph input, ...).
* `unsupported/*.onnx`: nodes the loader must refuse with an error naming the attribute.

Each case file `<name>.json` holds `inputs` and `outputs` in the golden-vector format
(`testdata/golden/README.md`: `x` [T, B, I] time-major, `y` [T, B, D*H_out], states
[L*D, B, ·]) and `run` (the model file and the `--prefix` / `--cell` arguments
`run_model` needs). Expected outputs:

* safetensors: PyTorch in float64 on the stored weights (exact widenings of the f32,
  f16 or bf16 values) and on inputs rounded to float32, like the golden `torch_*`
  cases: an f32 implementation's only error is its own rounding;
* ONNX: ONNX Runtime (float32) on the file itself; for the `torch_*` exports also
  checked here against the module in float64 within the golden tolerance.

Seeds are fixed; rerunning rewrites the same shapes (values may move with the torch
version).
"""

import copy
import json
import os
import zlib

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
TOL_ABS, TOL_REL = 1e-5, 1e-4  # the golden tolerance


def arr(a):
    a = np.asarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


def f32(t):
    """Rounds a tensor to float32 values (kept as float64)."""
    return t.to(torch.float32).to(torch.float64)


def write_case(name, run, inputs, outputs, source):
    case = {"name": name, "source": source, "run": run, "inputs": inputs, "outputs": outputs}
    with open(os.path.join(HERE, name + ".json"), "w") as f:
        json.dump(case, f)
    print(f"wrote {name}.json ({run['model']})")


def check_close(what, got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    bad = np.abs(got - want) > TOL_ABS + TOL_REL * np.abs(want)
    assert not bad.any(), f"{what}: max abs diff {np.abs(got - want).max()}"


# ---------------------------------------------------------------------------------
# PyTorch state_dicts in safetensors
# ---------------------------------------------------------------------------------


def torch_expected(rnn, x, h0, c0, seq_lens):
    """Runs `rnn` (already float64) on time-major `x`; returns (y, h_n, c_n) with y
    zero past each row's length (PyTorch packed-sequence semantics)."""
    state = (h0, c0) if c0 is not None else h0
    with torch.no_grad():
        if seq_lens is None:
            y, hn = rnn(x, state)
        else:
            packed = torch.nn.utils.rnn.pack_padded_sequence(
                x, torch.tensor(seq_lens), enforce_sorted=False
            )
            yp, hn = rnn(packed, state)
            y, _ = torch.nn.utils.rnn.pad_packed_sequence(yp, total_length=x.shape[0])
    h_n, c_n = (hn if c0 is not None else (hn, None))
    return y, h_n, c_n


def state_inputs(rnn, b, gen):
    d = 2 if rnn.bidirectional else 1
    ho = rnn.proj_size if getattr(rnn, "proj_size", 0) else rnn.hidden_size
    h0 = f32(torch.randn(rnn.num_layers * d, b, ho, generator=gen) * 0.5)
    c0 = None
    if isinstance(rnn, torch.nn.LSTM):
        c0 = f32(torch.randn(rnn.num_layers * d, b, rnn.hidden_size, generator=gen) * 0.5)
    return h0, c0


def safetensors_case(name, model, rnn_attr, file, dtype, t, b, seq_lens, prefix, cell, tensors=None):
    """Saves `model.state_dict()` as `file` in `dtype` and writes the case for the
    recurrent submodule `rnn_attr` (a dotted path, "" for the model itself)."""
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    model = model.to(dtype)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    if tensors is not None:
        sd = tensors(sd)
    save_file(sd, os.path.join(HERE, file))
    rnn = model
    for part in filter(None, rnn_attr.split(".")):
        rnn = getattr(rnn, part)
    rnn = copy.deepcopy(rnn).to(torch.float64)  # exact: widening the stored values
    x = f32(torch.randn(t, b, rnn.input_size, generator=gen))
    h0, c0 = state_inputs(rnn, b, gen)
    y, h_n, c_n = torch_expected(rnn, x, h0, c0, seq_lens)
    inputs = {"x": arr(x), "h0": arr(h0)}
    outputs = {"y": arr(y), "h_n": arr(h_n)}
    if c0 is not None:
        inputs["c0"], outputs["c_n"] = arr(c0), arr(c_n)
    if seq_lens is not None:
        inputs["seq_lens"] = list(seq_lens)
    run = {"model": file, "prefix": prefix, "cell": cell}
    write_case(name, run, inputs, outputs, f"torch {torch.__version__} float64, weights stored as {dtype}")


class EncoderDecoder(torch.nn.Module):
    """Two recurrent modules and a linear head in one state_dict: the loader needs a
    prefix to pick one."""

    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Module()
        self.encoder.rnn = torch.nn.LSTM(5, 6, num_layers=2, bidirectional=True, proj_size=3)
        self.decoder = torch.nn.Module()
        self.decoder.rnn = torch.nn.GRU(6, 4, num_layers=1)
        self.head = torch.nn.Linear(4, 2)


def make_safetensors():
    torch.manual_seed(1)
    enc_dec = EncoderDecoder()
    safetensors_case("st_encoder_lstm_proj", enc_dec, "encoder.rnn", "encoder_decoder.safetensors",
                     torch.float32, 5, 2, None, "encoder.rnn.", None)
    safetensors_case("st_decoder_gru", enc_dec, "decoder.rnn", "encoder_decoder.safetensors",
                     torch.float32, 4, 3, [4, 2, 3], "decoder.rnn.", None)
    torch.manual_seed(2)
    safetensors_case("st_lstm_seqlens", torch.nn.LSTM(4, 5), "", "lstm.safetensors",
                     torch.float32, 6, 3, [6, 1, 4], None, None)
    torch.manual_seed(3)
    safetensors_case("st_gru_bidir_2layer", torch.nn.GRU(3, 4, num_layers=2, bidirectional=True), "",
                     "gru_bidir_2layer.safetensors", torch.float32, 5, 2, None, None, None)
    torch.manual_seed(4)
    safetensors_case("st_rnn_relu_nobias", torch.nn.RNN(4, 5, nonlinearity="relu", bias=False), "",
                     "rnn_relu_nobias.safetensors", torch.float32, 5, 2, None, None, "rnn-relu")
    torch.manual_seed(5)
    safetensors_case("st_rnn_tanh_bidir", torch.nn.RNN(3, 4, bidirectional=True), "",
                     "rnn_tanh_bidir.safetensors", torch.float32, 4, 2, [4, 3], None, "rnn-tanh")
    torch.manual_seed(6)
    safetensors_case("st_lstm_f16", torch.nn.LSTM(4, 6, num_layers=2), "", "lstm_f16.safetensors",
                     torch.float16, 5, 2, None, None, None)
    torch.manual_seed(7)
    safetensors_case("st_gru_bf16_bidir", torch.nn.GRU(5, 4, bidirectional=True), "",
                     "gru_bf16_bidir.safetensors", torch.bfloat16, 5, 2, None, None, None)


# ---------------------------------------------------------------------------------
# ONNX: torch.onnx.export chains and single nodes built with onnx.helper
# ---------------------------------------------------------------------------------


def ort_run(path, feeds):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


def torch_onnx_case(name, rnn, t, b, batch_first):
    """Exports `rnn` (f32) with h0 (and c0) as graph inputs; the case's outputs are
    ONNX Runtime's, checked against the module in float64."""
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    file = name + ".onnx"
    x = f32(torch.randn(t, b, rnn.input_size, generator=gen))
    h0, c0 = state_inputs(rnn, b, gen)
    xb = x.transpose(0, 1) if batch_first else x
    state = (h0.float(), c0.float()) if c0 is not None else h0.float()
    names = ["x", "h0"] + (["c0"] if c0 is not None else [])
    outs = ["y", "h_n"] + (["c_n"] if c0 is not None else [])
    torch.onnx.export(rnn, (xb.float(), state), os.path.join(HERE, file), input_names=names,
                      output_names=outs, dynamo=False, opset_version=17)
    feeds = {"x": xb.float().numpy(), "h0": h0.float().numpy()}
    if c0 is not None:
        feeds["c0"] = c0.float().numpy()
    got = ort_run(os.path.join(HERE, file), feeds)
    y = got["y"].transpose(1, 0, 2) if batch_first else got["y"]
    rnn64 = copy.deepcopy(rnn).to(torch.float64)
    with torch.no_grad():
        yy, hh = rnn64(xb, (h0, c0) if c0 is not None else h0)
    want = (yy.transpose(0, 1) if batch_first else yy,) + (tuple(hh) if c0 is not None else (hh, None))
    check_close(name + " y (ORT vs torch f64)", y, want[0])
    check_close(name + " h_n", got["h_n"], want[1])
    inputs = {"x": arr(x), "h0": arr(h0)}
    outputs = {"y": arr(y), "h_n": arr(got["h_n"])}
    if c0 is not None:
        check_close(name + " c_n", got["c_n"], want[2])
        inputs["c0"], outputs["c_n"] = arr(c0), arr(got["c_n"])
    run = {"model": file, "prefix": None, "cell": None}
    write_case(name, run, inputs, outputs,
               f"torch {torch.__version__} torch.onnx.export(dynamo=False, opset 17), "
               f"onnxruntime {ort.__version__} float32")


def single_node_model(op, attrs, inits, graph_inputs, outputs, file, opset=14):
    """One recurrent node: `inits` {name: array} become initializers, `graph_inputs`
    [(name, elem_type, shape)] graph inputs, `outputs` [(name, shape)] with "" for an
    absent output; the node's inputs are listed in ONNX order with "" for absent ones."""
    node_inputs = attrs.pop("_inputs")
    node = helper.make_node(op, node_inputs, [o for o, _ in outputs], name=op.lower() + "_node", **attrs)
    g = helper.make_graph(
        [node], file,
        [helper.make_tensor_value_info(n, ty, shape) for n, ty, shape in graph_inputs],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, shape) for o, shape in outputs if o],
        [numpy_helper.from_array(v.astype(np.float32), n) for n, v in inits.items()],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(HERE, file))
    return m


def onnx_node_case(name, op, hidden, inp, d, t, b, attrs, peephole=False, seq_lens=None, rng=None):
    """A single-node model with random weights; states and sequence_lens are graph
    inputs. Expected: ONNX Runtime's outputs, converted to the golden layout."""
    g = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    s = 1.0 / np.sqrt(hidden)
    w = rng.uniform(-s, s, (d, g * hidden, inp)).astype(np.float32)
    r = rng.uniform(-s, s, (d, g * hidden, hidden)).astype(np.float32)
    bias = rng.uniform(-s, s, (d, 2 * g * hidden)).astype(np.float32)
    inits = {"W": w, "R": r, "B": bias}
    gi = [("X", TensorProto.FLOAT, [t, b, inp]), ("initial_h", TensorProto.FLOAT, [d, b, hidden])]
    node_inputs = ["X", "W", "R", "B", "sequence_lens" if seq_lens is not None else "", "initial_h"]
    if seq_lens is not None:
        gi.append(("sequence_lens", TensorProto.INT32, [b]))
    outs = [("Y", [t, d, b, hidden]), ("Y_h", [d, b, hidden])]
    if op == "LSTM":
        gi.append(("initial_c", TensorProto.FLOAT, [d, b, hidden]))
        node_inputs.append("initial_c")
        outs.append(("Y_c", [d, b, hidden]))
        if peephole:
            inits["P"] = rng.uniform(-s, s, (d, 3 * hidden)).astype(np.float32)
            node_inputs.append("P")
    attrs = dict(attrs, hidden_size=hidden, _inputs=node_inputs)
    file = name + ".onnx"
    single_node_model(op, attrs, inits, gi, outs, file)
    x = rng.standard_normal((t, b, inp)).astype(np.float32)
    h0 = (rng.standard_normal((d, b, hidden)) * 0.5).astype(np.float32)
    feeds = {"X": x, "initial_h": h0}
    inputs = {"x": arr(x), "h0": arr(h0)}
    if op == "LSTM":
        c0 = (rng.standard_normal((d, b, hidden)) * 0.5).astype(np.float32)
        feeds["initial_c"] = c0
        inputs["c0"] = arr(c0)
    if seq_lens is not None:
        feeds["sequence_lens"] = np.array(seq_lens, np.int32)
        inputs["seq_lens"] = list(seq_lens)
    got = ort_run(os.path.join(HERE, file), feeds)
    y = got["Y"]  # [T, D, B, H] -> golden [T, B, D*H]
    y = y.transpose(0, 2, 1, 3).reshape(t, b, d * hidden)
    outputs = {"y": arr(y), "h_n": arr(got["Y_h"])}
    if op == "LSTM":
        outputs["c_n"] = arr(got["Y_c"])
    run = {"model": file, "prefix": None, "cell": None}
    write_case(name, run, inputs, outputs,
               f"onnx {onnx.__version__} helper (opset 14), onnxruntime {ort.__version__} float32")


def make_unsupported(rng):
    """Nodes the loader must refuse, naming the attribute."""
    os.makedirs(os.path.join(HERE, "unsupported"), exist_ok=True)
    h, i = 3, 2
    for file, op, g, attrs in [
        ("lstm_input_forget_2.onnx", "LSTM", 4, {"input_forget": 2}),
        ("gru_hardsigmoid.onnx", "GRU", 3, {"activations": ["HardSigmoid", "Tanh"]}),
        ("rnn_activation_alpha.onnx", "RNN", 1, {"activations": ["Tanh"], "activation_alpha": [0.5]}),
    ]:
        inits = {"W": rng.uniform(-1, 1, (1, g * h, i)), "R": rng.uniform(-1, 1, (1, g * h, h))}
        attrs = dict(attrs, hidden_size=h, _inputs=["X", "W", "R"])
        single_node_model(op, attrs, inits, [("X", TensorProto.FLOAT, [2, 1, i])], [("Y", [2, 1, 1, h])],
                          os.path.join("unsupported", file))
        print(f"wrote unsupported/{file}")


def make_onnx():
    torch.manual_seed(11)
    torch_onnx_case("torch_lstm_bidir_2layer", torch.nn.LSTM(4, 5, num_layers=2, bidirectional=True),
                    5, 2, False)
    torch.manual_seed(12)
    torch_onnx_case("torch_gru_2layer_batch_first", torch.nn.GRU(3, 4, num_layers=2, batch_first=True),
                    6, 3, True)
    rng = np.random.default_rng(13)
    onnx_node_case("onnx_lstm_peephole_clip_seqlens", "LSTM", 5, 3, 1, 6, 3,
                   {"clip": 0.8}, peephole=True, seq_lens=[6, 2, 4], rng=rng)
    onnx_node_case("onnx_gru_reverse_reset_before", "GRU", 4, 3, 1, 5, 2,
                   {"direction": "reverse", "linear_before_reset": 0}, seq_lens=[5, 3], rng=rng)
    onnx_node_case("onnx_rnn_relu_bidir", "RNN", 4, 3, 2, 5, 2,
                   {"direction": "bidirectional", "activations": ["Relu", "Relu"]}, rng=rng)
    make_unsupported(rng)
    make_later_variants()
    make_activation_models()


def make_later_variants():
    """Variants added after the files above were written, on their own generator so
    that the earlier files stay as they were."""
    rng = np.random.default_rng(14)
    onnx_node_case("onnx_lstm_input_forget_bidir", "LSTM", 4, 3, 2, 5, 3,
                   {"direction": "bidirectional", "input_forget": 1, "clip": 1.5},
                   peephole=True, seq_lens=[5, 2, 4], rng=rng)


def make_activation_models():
    """ONNX activations with parameters (added after the files above, on their own
    generator), and a function name the loader must refuse."""
    rng = np.random.default_rng(15)
    onnx_node_case("onnx_gru_activations_bidir", "GRU", 4, 3, 2, 5, 3,
                   {"direction": "bidirectional", "linear_before_reset": 1,
                    "activations": ["HardSigmoid", "Affine", "Sigmoid", "Softsign"],
                    "activation_alpha": [0.25, 1.5], "activation_beta": [0.5, -0.25]},
                   seq_lens=[5, 2, 4], rng=rng)
    onnx_node_case("onnx_lstm_activations_peephole", "LSTM", 4, 3, 1, 6, 2,
                   {"clip": 2.0, "activations": ["HardSigmoid", "Elu", "Softplus"],
                    "activation_alpha": [0.3, 0.7], "activation_beta": [0.45]},
                   peephole=True, rng=rng)
    onnx_node_case("onnx_rnn_activations_reverse", "RNN", 4, 3, 1, 5, 2,
                   {"direction": "reverse", "activations": ["ScaledTanh"],
                    "activation_alpha": [1.5], "activation_beta": [0.75]}, rng=rng)
    h, i = 3, 2
    inits = {"W": rng.uniform(-1, 1, (1, 3 * h, i)), "R": rng.uniform(-1, 1, (1, 3 * h, h))}
    attrs = {"activations": ["Sigmoid", "Swish"], "hidden_size": h, "_inputs": ["X", "W", "R"]}
    single_node_model("GRU", attrs, inits, [("X", TensorProto.FLOAT, [2, 1, i])], [("Y", [2, 1, 1, h])],
                      os.path.join("unsupported", "gru_swish.onnx"))
    print("wrote unsupported/gru_swish.onnx")


if __name__ == "__main__":
    make_safetensors()
    make_onnx()
    manifest = (f"torch {torch.__version__}, onnx {onnx.__version__}, "
                f"onnxruntime {ort.__version__}, numpy {np.__version__}\n")
    with open(os.path.join(HERE, "MANIFEST"), "w") as f:
        f.write("written by make_models.py with " + manifest)
