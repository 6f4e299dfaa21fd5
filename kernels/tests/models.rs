//! The model loaders on real files (`testdata/models/`, written by PyTorch, its ONNX
//! exporter and the `onnx` package: see `make_models.py` there) and on files built
//! here to be wrong in one named way. Needs `--features models`.

#[path = "../examples/run_model/case.rs"]
#[allow(dead_code)]
mod case;
#[path = "../examples/run_model/runner.rs"]
#[allow(dead_code)]
mod runner;

use std::path::{Path, PathBuf};

use rnn_kernels::models::{Dtype, LoadOptions, OnnxModel, SafetensorsRnn};
use rnn_kernels::{
    CellKind, Direction, Error, Isa, LstmVariant, PackedRnn, RnnConfig, SeqShape, SequenceInput,
    SequenceOutputMut, TensorLayout, Workspace,
};
use safetensors::tensor::{Dtype as StDtype, TensorView};

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/models")
}

fn files(ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(models_dir())
        .expect("testdata/models exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// The model arguments a case's `run` object gives.
fn args_of(c: &case::Case) -> runner::ModelArgs {
    runner::ModelArgs {
        prefix: c.run.prefix.clone(),
        cell: c
            .run
            .cell
            .as_deref()
            .map(|s| runner::parse_cell(s).expect("valid cell")),
        ..Default::default()
    }
}

/// Every committed case, run through the model file it names at every ISA this CPU
/// has, matches its stored outputs (PyTorch float64 or ONNX Runtime) within the
/// golden tolerance; every committed model file is used by at least one case.
#[test]
fn every_committed_model_matches_its_outputs() {
    let cases = files("json");
    assert!(
        cases.len() >= 13,
        "expected the committed cases, found {}",
        cases.len()
    );
    let mut used = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for path in &cases {
        let c = case::load(path).unwrap_or_else(|e| panic!("{e}"));
        let model = c
            .run
            .model
            .clone()
            .expect("every committed case names its model");
        used.insert(model.canonicalize().expect("model file exists"));
        let loaded = runner::load(&model, &args_of(&c)).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !c.outputs.is_empty(),
            "{}: no expected outputs",
            path.display()
        );
        for &isa in Isa::available().iter() {
            let rnn = loaded.rnn.with_isa(isa).expect("available ISA");
            let out = rnn
                .run(&c)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for (name, want) in &c.outputs {
                let cmp = case::compare(out.get(name), want);
                if cmp.outside > 0 {
                    failures.push(format!(
                        "{} at {isa}: {name} max abs error {:.3e}, {} of {} outside",
                        c.name, cmp.max_abs, cmp.outside, cmp.len
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "outside the golden tolerance:\n{}",
        failures.join("\n")
    );
    for model in files("safetensors").into_iter().chain(files("onnx")) {
        let m = model.canonicalize().expect("exists");
        assert!(used.contains(&m), "{} is used by no case", model.display());
    }
}

fn load_onnx(name: &str) -> OnnxModel {
    OnnxModel::open(models_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn pytorch_onnx_exports_load_as_one_stacked_network() {
    let m = load_onnx("torch_lstm_bidir_2layer.onnx");
    let net = m.single().expect("one network");
    assert_eq!(net.nodes(), ["/LSTM", "/LSTM_1"]);
    let cfg = net.config();
    assert_eq!(
        (
            cfg.num_layers,
            cfg.direction,
            cfg.input_size,
            cfg.hidden_size
        ),
        (2, Direction::Bidirectional, 4, 5)
    );
    assert_eq!(net.layout(), TensorLayout::TimeMajor);
    let (i, o) = (net.inputs(), net.outputs());
    assert_eq!(
        (i.x.as_str(), i.h0.as_deref(), i.c0.as_deref()),
        ("x", Some("h0"), Some("c0"))
    );
    assert_eq!(
        (o.y.as_deref(), o.h_n.as_deref(), o.c_n.as_deref()),
        (Some("y"), Some("h_n"), Some("c_n"))
    );
    assert!(!net.raw_node_outputs());
    assert_eq!(net.weights().len(), 4);

    let m = load_onnx("torch_gru_2layer_batch_first.onnx");
    let net = m.single().expect("one network");
    assert_eq!(net.config().num_layers, 2);
    assert_eq!(net.layout(), TensorLayout::BatchMajor);
    assert_eq!(
        (net.inputs().x.as_str(), net.outputs().y.as_deref()),
        ("x", Some("y"))
    );
    assert_eq!(m.find("/GRU_1").expect("by node name").nodes().len(), 2);
    assert_eq!(m.find("nope").unwrap_err().arg(), "node");

    let single = load_onnx("onnx_lstm_peephole_clip_seqlens.onnx");
    let net = single.single().expect("one node");
    assert!(net.raw_node_outputs());
    assert_eq!(net.inputs().seq_lens.as_deref(), Some("sequence_lens"));
    assert_eq!(net.config().clip, Some(0.8));
    assert!(matches!(
        net.config().cell,
        CellKind::Lstm(LstmVariant {
            peephole: true,
            proj_size: None,
            ..
        })
    ));
    let coupled = load_onnx("onnx_lstm_input_forget_bidir.onnx");
    let cell = coupled.single().expect("one node").config().cell;
    assert!(cell.input_forget() && cell.has_peephole(), "{cell:?}");
}

/// A batch-first export run in its own layout (`x` `[B, T, I]`) gives the case's `y`
/// transposed: the layout the loader reports is the graph's.
#[test]
fn batch_major_export_runs_in_its_layout() {
    let net = load_onnx("torch_gru_2layer_batch_first.onnx");
    let net = net.single().expect("one network");
    let rnn: PackedRnn = net.pack().expect("packs");
    let c = case::load(&models_dir().join("torch_gru_2layer_batch_first.json")).expect("case");
    let (t, b, i) = (c.x.shape[0], c.x.shape[1], c.x.shape[2]);
    let h = net.config().hidden_size;
    let x = c.x.to_f32();
    let mut xb = vec![0.0f32; x.len()];
    for (tt, bb) in (0..t).flat_map(|tt| (0..b).map(move |bb| (tt, bb))) {
        xb[(bb * t + tt) * i..][..i].copy_from_slice(&x[(tt * b + bb) * i..][..i]);
    }
    let shape = SeqShape::new(t, b).with_layout(net.layout());
    let h0 = c.h0.as_ref().expect("h0").to_f32();
    let mut y = vec![0.0f32; t * b * h];
    let input = SequenceInput {
        h0: Some(&h0),
        ..SequenceInput::new(&xb)
    };
    let out = SequenceOutputMut {
        y: &mut y,
        h_n: None,
        c_n: None,
    };
    rnn.forward(&mut Workspace::new(), shape, input, out)
        .expect("runs");
    let want = &c.outputs.iter().find(|(n, _)| *n == "y").expect("y").1;
    let mut y_tm = vec![0.0f32; y.len()];
    for (tt, bb) in (0..t).flat_map(|tt| (0..b).map(move |bb| (tt, bb))) {
        y_tm[(tt * b + bb) * h..][..h].copy_from_slice(&y[(bb * t + tt) * h..][..h]);
    }
    assert_eq!(case::compare(&y_tm, want).outside, 0);
}

/// Attributes the kernels do not implement are errors naming the node and attribute.
#[test]
fn unsupported_onnx_attributes_are_named() {
    for (file, node, attribute) in [
        ("lstm_input_forget_2.onnx", "lstm_node", "input_forget"),
        ("gru_swish.onnx", "gru_node", "activations"),
        ("rnn_activation_alpha.onnx", "rnn_node", "activation_alpha"),
    ] {
        let path = models_dir().join("unsupported").join(file);
        let err = OnnxModel::open(&path).expect_err(file);
        let arg = err.arg().to_string();
        assert!(
            arg.contains(node) && arg.ends_with(&format!("attribute {attribute}")),
            "{file}: {err}"
        );
        assert!(matches!(err, Error::Invalid { .. }), "{file}: {err:?}");
    }
}

/// `unsupported/gru_hardsigmoid.onnx` was refused before ONNX activations landed; it
/// loads now, with ONNX's default parameters of HardSigmoid.
#[test]
fn onnx_activation_defaults_load() {
    let path = models_dir()
        .join("unsupported")
        .join("gru_hardsigmoid.onnx");
    let model = OnnxModel::open(&path).expect("loads");
    let acts = model
        .single()
        .expect("one network")
        .config()
        .activations
        .expect("custom");
    assert_eq!(
        acts[0].f,
        rnn_kernels::Activation::HardSigmoid {
            alpha: 0.2,
            beta: 0.5
        }
    );
    assert_eq!(acts[0].g, rnn_kernels::Activation::Tanh);
}

/// Truncated and corrupted ONNX files are errors, never panics.
#[test]
fn damaged_onnx_files_are_errors() {
    let bytes = std::fs::read(models_dir().join("torch_lstm_bidir_2layer.onnx")).expect("read");
    for cut in [0, 1, 7, 100, bytes.len() / 2, bytes.len() - 1] {
        if let Err(e) = OnnxModel::from_bytes(&bytes[..cut]) {
            assert!(!e.to_string().is_empty());
        }
    }
    let mut flipped = bytes.clone();
    for k in (0..flipped.len()).step_by(97) {
        flipped[k] ^= 0x5a;
        let _ = OnnxModel::from_bytes(&flipped);
    }
    let err = OnnxModel::from_bytes(b"not a model at all").expect_err("garbage");
    assert_eq!(err.arg(), "onnx bytes");
    let err = OnnxModel::open(models_dir().join("missing.onnx")).expect_err("missing");
    assert!(err.to_string().contains("a readable file"), "{err}");
}

// ---------------------------------------------------------------------------------
// safetensors
// ---------------------------------------------------------------------------------

fn load_st(name: &str, opts: &LoadOptions) -> Result<SafetensorsRnn, Error> {
    SafetensorsRnn::open(models_dir().join(name), opts)
}

#[test]
fn safetensors_infers_the_configuration() {
    let enc = load_st(
        "encoder_decoder.safetensors",
        &LoadOptions::new().prefix("encoder.rnn"),
    )
    .expect("prefix without the trailing dot");
    assert_eq!(enc.prefix(), "encoder.rnn.");
    assert_eq!(
        *enc.config(),
        RnnConfig::new(
            CellKind::Lstm(LstmVariant {
                proj_size: Some(3),
                ..Default::default()
            }),
            5,
            6
        )
        .with_layers(2)
        .with_direction(Direction::Bidirectional)
    );
    assert_eq!(enc.dtype(), Dtype::F32);
    let f16 = load_st("lstm_f16.safetensors", &LoadOptions::new()).expect("bare state_dict");
    assert_eq!(
        (f16.dtype(), f16.prefix(), f16.config().num_layers),
        (Dtype::F16, "", 2)
    );
    let bf16 = load_st("gru_bf16_bidir.safetensors", &LoadOptions::new()).expect("bf16");
    assert_eq!(bf16.dtype(), Dtype::Bf16);
    assert!(matches!(bf16.config().cell, CellKind::GRU));
    // A given config is checked field by field, and its clip kept.
    let want = *enc.config();
    let opts = LoadOptions::new()
        .prefix("encoder.rnn.")
        .config(want.with_clip(Some(3.0)));
    let with_clip = load_st("encoder_decoder.safetensors", &opts).expect("matching config");
    assert_eq!(with_clip.config().clip, Some(3.0));
    let wrong = LoadOptions::new().prefix("encoder.rnn.").config(RnnConfig {
        hidden_size: 7,
        ..want
    });
    let err = load_st("encoder_decoder.safetensors", &wrong).expect_err("hidden 7");
    assert_eq!(err.arg(), "config.hidden_size", "{err}");
}

#[test]
fn safetensors_errors_name_what_is_missing() {
    let err = load_st("encoder_decoder.safetensors", &LoadOptions::new()).expect_err("two modules");
    assert_eq!(err.arg(), "prefix");
    assert!(
        err.to_string()
            .contains("\"decoder.rnn.\", \"encoder.rnn.\""),
        "{err}"
    );
    let err = load_st(
        "encoder_decoder.safetensors",
        &LoadOptions::new().prefix("head"),
    )
    .expect_err("no module there");
    assert_eq!(err.arg(), "prefix");
    let err = load_st("rnn_relu_nobias.safetensors", &LoadOptions::new()).expect_err("nn.RNN");
    assert_eq!(err.arg(), "cell");
    assert!(
        err.to_string().contains("--cell rnn-tanh or rnn-relu"),
        "{err}"
    );
    let gru_as_lstm = LoadOptions::new()
        .prefix("decoder.rnn.")
        .cell(CellKind::LSTM);
    let err = load_st("encoder_decoder.safetensors", &gru_as_lstm).expect_err("GRU weights");
    assert_eq!(err.arg(), "cell");
    let err = SafetensorsRnn::from_bytes(vec![1, 2, 3], &LoadOptions::new()).expect_err("garbage");
    assert_eq!(err.arg(), "safetensors bytes");
    let bytes = std::fs::read(models_dir().join("lstm.safetensors")).expect("read");
    for cut in [0, 8, 9, 100, bytes.len() - 1] {
        assert!(SafetensorsRnn::from_bytes(bytes[..cut].to_vec(), &LoadOptions::new()).is_err());
    }
}

/// A synthetic state_dict: every tensor of `(name, dtype, shape)` filled with a value
/// that encodes its position in the list (so a mix-up of tensors is visible).
fn state_dict(tensors: &[(&str, StDtype, &[usize])]) -> Vec<u8> {
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .enumerate()
        .map(|(k, (_, dt, shape))| {
            let n: usize = shape.iter().product();
            let v = (k + 1) as f32 / 8.0;
            match dt {
                StDtype::F16 => (0..n)
                    .flat_map(|_| rnn_kernels::half::f16::from_f32(v).to_le_bytes())
                    .collect(),
                StDtype::I32 => (0..n).flat_map(|_| 1i32.to_le_bytes()).collect(),
                StDtype::F64 => (0..n).flat_map(|_| f64::from(v).to_le_bytes()).collect(),
                _ => (0..n).flat_map(|_| v.to_le_bytes()).collect(),
            }
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .zip(&data)
        .map(|((name, dt, shape), d)| {
            (
                name.to_string(),
                TensorView::new(*dt, shape.to_vec(), d).expect("consistent"),
            )
        })
        .collect();
    safetensors::serialize(views, None).expect("serializes")
}

const F32: StDtype = StDtype::F32;

/// Names map to weight sets `layer * D + direction` and parts exactly.
#[test]
fn safetensors_names_map_to_weight_sets() {
    let (g, h, i) = (4, 2, 3);
    let mut t: Vec<(String, StDtype, Vec<usize>)> = Vec::new();
    for l in 0..2 {
        for sfx in ["", "_reverse"] {
            let il = if l == 0 { i } else { 2 * h };
            t.push((format!("m.weight_ih_l{l}{sfx}"), F32, vec![g * h, il]));
            t.push((format!("m.weight_hh_l{l}{sfx}"), F32, vec![g * h, h]));
            t.push((format!("m.bias_ih_l{l}{sfx}"), F32, vec![g * h]));
            t.push((format!("m.bias_hh_l{l}{sfx}"), F32, vec![g * h]));
        }
    }
    let list: Vec<(&str, StDtype, &[usize])> = t
        .iter()
        .map(|(n, d, s)| (n.as_str(), *d, s.as_slice()))
        .collect();
    let m = SafetensorsRnn::from_bytes(state_dict(&list), &LoadOptions::new()).expect("loads");
    let w = m.weights::<f32>().expect("weights");
    assert_eq!(w.len(), 4);
    for (k, set) in w.iter().enumerate() {
        // Tensor 4k + j holds (4k + j + 1) / 8.
        let v = |j: usize| (4 * k + j + 1) as f32 / 8.0;
        assert!(set.w_ih.iter().all(|&x| x == v(0)), "set {k} w_ih");
        assert!(set.w_hh.iter().all(|&x| x == v(1)), "set {k} w_hh");
        assert!(
            set.b_ih.as_ref().expect("bias").iter().all(|&x| x == v(2)),
            "set {k} b_ih"
        );
        assert!(
            set.b_hh.as_ref().expect("bias").iter().all(|&x| x == v(3)),
            "set {k} b_hh"
        );
    }
}

#[test]
fn safetensors_tensor_errors_name_the_tensor() {
    // An LSTM with H = 2 (4 gate blocks: 8 rows) and I = 3.
    let good: Vec<(&str, StDtype, &[usize])> = vec![
        ("weight_ih_l0", F32, &[8, 3]),
        ("weight_hh_l0", F32, &[8, 2]),
        ("bias_ih_l0", F32, &[8]),
        ("bias_hh_l0", F32, &[8]),
    ];
    let ok = SafetensorsRnn::from_bytes(state_dict(&good), &LoadOptions::new()).expect("good");
    assert!(matches!(ok.config().cell, CellKind::Lstm(_)));
    let expect_err = |tensors: Vec<(&str, StDtype, &[usize])>, arg: &str| {
        let err =
            SafetensorsRnn::from_bytes(state_dict(&tensors), &LoadOptions::new()).expect_err(arg);
        assert_eq!(err.arg(), arg, "{err}");
    };
    let with = |k: usize, t: (&'static str, StDtype, &'static [usize])| {
        let mut v = good.clone();
        v[k] = t;
        v
    };
    expect_err(with(2, ("bias_ih_l0", F32, &[7])), "bias_ih_l0");
    expect_err(with(3, ("bias_hh_l0", StDtype::F16, &[8])), "bias_hh_l0");
    expect_err(
        with(1, ("weight_hh_l0", StDtype::I32, &[8, 2])),
        "weight_hh_l0",
    );
    expect_err(with(3, ("bias_xx_l0", F32, &[8])), "bias_hh_l0");
    expect_err(with(1, ("weight_hh_l0", F32, &[7, 2])), "weight_hh_l0");
    let mut extra = good.clone();
    extra.push(("weight_hh_l1", F32, &[8, 2]));
    expect_err(extra, "weight_hh_l1");
    let mut half_dir = good.clone();
    half_dir.push(("weight_ih_l0_reverse", F32, &[8, 3]));
    expect_err(half_dir, "weight_hh_l0_reverse");
    // An RNN given its activation loads; relu and tanh differ only there.
    let rnn: Vec<(&str, StDtype, &[usize])> = vec![
        ("weight_ih_l0", F32, &[2, 3]),
        ("weight_hh_l0", F32, &[2, 2]),
    ];
    let relu = CellKind::RNN_RELU;
    let m = SafetensorsRnn::from_bytes(state_dict(&rnn), &LoadOptions::new().cell(relu))
        .expect("an RNN with its cell");
    assert_eq!(m.config().cell, relu);
    // f64 tensors are read by rounding to f32 (exact for these values).
    let f64s: Vec<(&str, StDtype, &[usize])> = vec![
        ("weight_ih_l0", StDtype::F64, &[2, 3]),
        ("weight_hh_l0", StDtype::F64, &[2, 2]),
    ];
    let m = SafetensorsRnn::from_bytes(state_dict(&f64s), &LoadOptions::new().cell(relu))
        .expect("f64 tensors");
    assert_eq!(m.dtype(), Dtype::F64);
    let w = m.weights::<f32>().expect("weights");
    assert_eq!((w[0].w_ih[0], w[0].w_hh[3]), (0.125, 0.25));
    assert!(m.pack::<f32>().is_ok());
}

/// f16 weights packed as f32 (exact widening) and as f16 (no rounding) give the same
/// network: both match the f16 case, and the f32 packing of the widened weights is
/// identical to packing them from a copy.
#[test]
fn half_files_pack_in_any_weight_type() {
    let m = load_st("lstm_f16.safetensors", &LoadOptions::new()).expect("f16 file");
    let c = case::load(&models_dir().join("st_lstm_f16.json")).expect("case");
    for dtype in [Dtype::F32, Dtype::F16, Dtype::Bf16] {
        let args = runner::ModelArgs {
            dtype: Some(dtype),
            ..Default::default()
        };
        let loaded =
            runner::load(&models_dir().join("lstm_f16.safetensors"), &args).expect("loads");
        let out = loaded.rnn.run(&c).expect("runs");
        let y = &c.outputs.iter().find(|(n, _)| *n == "y").expect("y").1;
        let cmp = case::compare(&out.y, y);
        if dtype == Dtype::Bf16 {
            // Rounding f16 weights to bf16 (8 mantissa bits) must show: the tolerance bites.
            assert!(cmp.outside > 0, "bf16 rounding went unnoticed: {cmp:?}");
        } else {
            assert_eq!(cmp.outside, 0, "{dtype}: {cmp:?}");
        }
    }
    let owned = m.weights::<f32>().expect("copy");
    let direct: PackedRnn = m.pack().expect("pack");
    let copied = PackedRnn::from_pytorch(m.config(), &rnn_kernels::views(&owned)).expect("pack");
    let x = c.x.to_f32();
    let shape = SeqShape::new(c.x.shape[0], c.x.shape[1]);
    let run = |r: &PackedRnn| {
        let mut y = vec![0.0f32; shape.dims(r.config()).expect("dims").y];
        let out = SequenceOutputMut {
            y: &mut y,
            h_n: None,
            c_n: None,
        };
        r.forward(&mut Workspace::new(), shape, SequenceInput::new(&x), out)
            .expect("runs");
        y
    };
    assert_eq!(run(&direct), run(&copied));
}
