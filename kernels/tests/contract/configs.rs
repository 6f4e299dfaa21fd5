//! Configs, PyTorch-layout weights and ONNX-layout weights.

use rnn_kernels::{
    Activation, CellKind, Direction, GateActivations, GateCoupling, LayerWeights, LstmVariant,
    OnnxWeights, PackedRnn, RnnConfig,
};

use super::{assert_invalid, expect, views, weights, Want, GRU, LSTM, LSTM_PEEP, LSTM_PROJ, TANH};

#[test]
fn config_errors() {
    let ok = RnnConfig::new(LSTM, 3, 4);
    let bad = |c: RnnConfig| PackedRnn::from_pytorch(&c, &views(&weights(&ok))).map(|_| ());
    let mut cases = vec![
        (
            RnnConfig {
                input_size: 0,
                ..ok
            },
            "input_size",
            Want::Invalid,
        ),
        (
            RnnConfig {
                hidden_size: 0,
                ..ok
            },
            "hidden_size",
            Want::Invalid,
        ),
        (
            RnnConfig {
                num_layers: 0,
                ..ok
            },
            "num_layers",
            Want::Invalid,
        ),
        // Products that do not fit: G*H*max(I, D*H_out) above i32::MAX, or usize
        // overflow.
        (
            RnnConfig::new(LSTM, 1, 1 << 16),
            "hidden_size",
            Want::Overflow,
        ),
        (
            RnnConfig::new(GRU, usize::MAX, 2),
            "hidden_size",
            Want::Overflow,
        ),
        (
            RnnConfig::new(GRU, 2, usize::MAX / 2),
            "hidden_size",
            Want::Overflow,
        ),
        (
            ok.with_layers(usize::MAX)
                .with_direction(Direction::Bidirectional),
            "num_layers",
            Want::Overflow,
        ),
    ];
    for p in [0, 4, 5] {
        let c = RnnConfig::new(super::variants::lstm(false, Some(p)), 3, 4);
        cases.push((c, "proj_size", Want::Invalid));
    }
    for clip in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        cases.push((ok.with_clip(Some(clip)), "clip", Want::Invalid));
    }
    // ONNX activations with a non-finite parameter, in a slot the cell uses (the
    // reverse direction's of a bidirectional network too).
    for (alpha, bidirectional) in [
        (f32::NAN, false),
        (f32::INFINITY, true),
        (f32::NEG_INFINITY, false),
    ] {
        let mut acts = [GateActivations::standard(LSTM); 2];
        acts[usize::from(bidirectional)].h = Activation::Elu { alpha };
        let c = ok
            .with_direction(if bidirectional {
                Direction::Bidirectional
            } else {
                Direction::Forward
            })
            .with_activations(Some(acts));
        cases.push((c, "activations", Want::Invalid));
    }
    // Coupled gates with a projection or a layer norm (no peer defines either pair).
    let coupled_projected = LstmVariant {
        proj_size: Some(2),
        coupling: GateCoupling::InputForget,
        ..Default::default()
    };
    let coupled_normalised = LstmVariant {
        coupling: GateCoupling::InputForget,
        layer_norm: true,
        ..Default::default()
    };
    for cell in [coupled_projected, coupled_normalised] {
        cases.push((
            RnnConfig::new(CellKind::Lstm(cell), 3, 4),
            "cell",
            Want::Invalid,
        ));
    }
    // A layer-norm LSTM with ONNX's clip.
    let layer_norm = RnnConfig::new(super::variants::lstm_layer_norm(false, None, false), 3, 4);
    cases.push((layer_norm.with_clip(Some(1.0)), "clip", Want::Invalid));
    for (cfg, arg, want) in cases {
        expect(bad(cfg), arg, want);
    }
    // The layer-norm LSTM: the kernels run it forward, with f32 and int8 weights, and
    // train it.
    for cell in super::variants::layer_norm_lstms(2) {
        let cfg = RnnConfig::new(cell, 3, 4);
        let w = weights(&cfg);
        let rnn = PackedRnn::from_pytorch(&cfg, &views(&w)).unwrap();
        let shape = rnn_kernels::SeqShape::new(2, 1);
        let x = vec![0.5f32; 2 * 3];
        let mut y = vec![0.0f32; 2 * cfg.output_size()];
        let input = rnn_kernels::SequenceInput::new(&x);
        fn out(y: &mut [f32]) -> rnn_kernels::SequenceOutputMut<'_, f32> {
            rnn_kernels::SequenceOutputMut {
                y,
                h_n: None,
                c_n: None,
            }
        }
        let mut ws = rnn_kernels::Workspace::new();
        rnn.forward(&mut ws, shape, input, out(&mut y)).unwrap();
        let mut tws = rnn_kernels::TrainingWorkspace::new();
        rnn.forward_train(&mut tws, shape, input, out(&mut y))
            .unwrap();
        let int8 = PackedRnn::<i8>::pack(&cfg, &views(&w)).unwrap();
        int8.forward(&mut ws, shape, input, out(&mut y)).unwrap();
    }
    // validate() itself says the same.
    assert_eq!(
        RnnConfig {
            input_size: 0,
            ..ok
        }
        .validate()
        .unwrap_err()
        .arg(),
        "input_size"
    );
    assert!(ok.validate().is_ok());
}

/// `w` with part `part` (`"w_ih"`, `"b_hh"`, ...) replaced by `v` (`None`: removed).
fn with_part<'a>(
    mut w: LayerWeights<'a, f32>,
    part: &str,
    v: Option<&'a [f32]>,
) -> LayerWeights<'a, f32> {
    match part {
        "w_ih" => w.w_ih = v.unwrap(),
        "w_hh" => w.w_hh = v.unwrap(),
        "b_ih" => w.b_ih = v,
        "b_hh" => w.b_hh = v,
        "w_hr" => w.w_hr = v,
        "peephole" => w.peephole = v,
        other => unreachable!("no weight part {other}"),
    }
    w
}

#[test]
fn weight_errors() {
    let cfg = RnnConfig::new(GRU, 3, 4).with_direction(Direction::Bidirectional);
    let w = weights(&cfg);
    // Wrong number of sets.
    expect(
        PackedRnn::from_pytorch(&cfg, &views(&w[..1])).map(|_| ()),
        "weights (sets, layer * directions)",
        Want::Length(2, 1),
    );
    let short = [0.0f32; 5];
    let proj = RnnConfig::new(LSTM_PROJ, 3, 4);
    let peep = RnnConfig::new(LSTM_PEEP, 3, 4);
    let (short, none) = (Some(&short[..]), None);
    for (cfg, set, part, value, want) in [
        // Wrong lengths, named by set and part.
        (cfg, 1, "w_hh", short, Want::Length(48, 5)),
        (cfg, 0, "w_ih", short, Want::Length(36, 5)),
        (cfg, 1, "b_ih", short, Want::Length(12, 5)),
        (cfg, 0, "b_hh", short, Want::Length(12, 5)),
        // Optional parts present exactly when the cell needs them.
        (cfg, 0, "w_hr", short, Want::Invalid),
        (cfg, 0, "peephole", short, Want::Invalid),
        (proj, 0, "w_hr", none, Want::Invalid),
        (peep, 0, "peephole", none, Want::Invalid),
        (peep, 0, "peephole", short, Want::Length(12, 5)),
    ] {
        let w = weights(&cfg);
        let mut v = views(&w);
        v[set] = with_part(v[set], part, value);
        let arg = format!("weights[{set}].{part}");
        expect(PackedRnn::from_pytorch(&cfg, &v).map(|_| ()), &arg, want);
    }
    // Second layer's input width is D * H_out.
    let two = RnnConfig::new(TANH, 3, 4).with_layers(2);
    let w = weights(&two);
    let mut v = views(&w);
    v[1].w_ih = &w[0].w_ih; // 4 x 3 instead of 4 x 4
    expect(
        PackedRnn::from_pytorch(&two, &v).map(|_| ()),
        "weights[1].w_ih",
        Want::Length(16, 12),
    );
}

#[test]
fn onnx_errors() {
    let cfg = RnnConfig::new(LSTM_PEEP, 3, 4);
    let (w, r, b, p) = (
        super::vals(48, 1),
        super::vals(64, 2),
        super::vals(32, 3),
        super::vals(12, 4),
    );
    let ok = OnnxWeights {
        w: &w,
        r: &r,
        b: Some(&b),
        p: Some(&p),
    };
    assert!(PackedRnn::from_onnx(&cfg, ok).is_ok());
    let proj = RnnConfig::new(LSTM_PROJ, 3, 4);
    let gru_peep = RnnConfig::new(super::variants::gru_peephole(false), 3, 4);
    for (c, o, arg, want) in [
        (cfg.with_layers(2), ok, "num_layers", Want::Invalid),
        // ONNX's GRU has no peepholes, and ONNX has no AUGRU.
        (
            gru_peep,
            OnnxWeights { p: None, ..ok },
            "cell",
            Want::Invalid,
        ),
        (
            RnnConfig::new(super::variants::augru(true), 3, 4),
            OnnxWeights { p: None, ..ok },
            "cell",
            Want::Invalid,
        ),
        // Nor a CIFG (TFLite's coupling), with or without peepholes.
        (
            RnnConfig::new(super::variants::lstm_cifg(false, None), 3, 4),
            OnnxWeights { p: None, ..ok },
            "cell",
            Want::Invalid,
        ),
        (
            RnnConfig::new(super::variants::lstm_cifg(true, None), 3, 4),
            ok,
            "cell",
            Want::Invalid,
        ),
        (
            proj,
            OnnxWeights { p: None, ..ok },
            "proj_size",
            Want::Invalid,
        ),
        (
            RnnConfig {
                hidden_size: 0,
                ..cfg
            },
            ok,
            "hidden_size",
            Want::Invalid,
        ),
        (
            cfg,
            OnnxWeights { w: &w[1..], ..ok },
            "W",
            Want::Length(48, 47),
        ),
        (
            cfg,
            OnnxWeights { r: &r[1..], ..ok },
            "R",
            Want::Length(64, 63),
        ),
        (
            cfg,
            OnnxWeights {
                b: Some(&b[1..]),
                ..ok
            },
            "B",
            Want::Length(32, 31),
        ),
        (
            cfg,
            OnnxWeights {
                p: Some(&p[1..]),
                ..ok
            },
            "P",
            Want::Length(12, 11),
        ),
        (cfg, OnnxWeights { p: None, ..ok }, "P", Want::Invalid),
        (RnnConfig::new(LSTM, 3, 4), ok, "P", Want::Invalid),
        // Bidirectional: every tensor has a leading D = 2.
        (
            cfg.with_direction(Direction::Bidirectional),
            ok,
            "W",
            Want::Length(96, 48),
        ),
    ] {
        expect(PackedRnn::from_onnx(&c, o).map(|_| ()), arg, want);
    }
    // The reference's exporter rejects what ONNX cannot express.
    let pw = weights(&proj);
    assert_invalid(rnn_reference::export_onnx(&proj, &views(&pw)), "proj_size");
}
