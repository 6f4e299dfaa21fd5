//! Every public entry point rejects bad input with an `Err` naming the argument (and
//! never panics, including on sizes whose products overflow).

use rnn_reference::testkit::errors::{assert_invalid, assert_length, assert_overflow};
use rnn_reference::testkit::variants::{self, lstm};
use rnn_reference::{
    check_len, check_seq_lens, check_weights, export_onnx, forward, import_onnx, step, views,
    Activation, CellKind, Direction, GateActivations, LayerWeights, OnnxWeights, OwnedLayerWeights,
    RnnConfig, SeqShape, SequenceInput,
};

const RNN: CellKind = variants::RNN_TANH;
const GRU: CellKind = variants::GRU;

/// Zero-filled owned weights of the right shape for `cfg`.
fn zero_weights(cfg: &RnnConfig) -> Vec<OwnedLayerWeights<f64>> {
    (0..cfg.num_weight_sets())
        .map(|k| {
            let l = cfg.weight_lens(k / cfg.num_directions());
            OwnedLayerWeights {
                w_ih: vec![0.0; l.w_ih],
                w_hh: vec![0.0; l.w_hh],
                b_ih: Some(vec![0.0; l.bias]),
                b_hh: Some(vec![0.0; l.bias]),
                w_hr: l.w_hr.map(|n| vec![0.0; n]),
                peephole: l.peephole.map(|n| vec![0.0; n]),
                layer_norm: l.layer_norm.map(|n| vec![1.0; n]),
            }
        })
        .collect()
}

// ---- RnnConfig::validate ----

#[test]
fn validate_rejects_zero_sizes() {
    assert_invalid(RnnConfig::new(RNN, 0, 4).validate(), "input_size");
    assert_invalid(RnnConfig::new(RNN, 4, 0).validate(), "hidden_size");
    assert_invalid(
        RnnConfig::new(RNN, 4, 4).with_layers(0).validate(),
        "num_layers",
    );
    assert_invalid(
        RnnConfig::new(lstm(false, None), 0, 4).validate(),
        "input_size",
    );
}

/// A non-finite parameter of a function a used slot of a used direction applies is
/// refused; the slots and directions the config does not use are not checked.
#[test]
fn validate_rejects_non_finite_activation_parameters() {
    let bad = Activation::LeakyRelu { alpha: f32::NAN };
    let with = |cell: CellKind, dir: Direction, acts: [GateActivations; 2]| {
        RnnConfig::new(cell, 3, 4)
            .with_direction(dir)
            .with_activations(Some(acts))
            .validate()
    };
    let std_gru = GateActivations::standard(GRU);
    let in_g = GateActivations { g: bad, ..std_gru };
    let in_h = GateActivations { h: bad, ..std_gru };
    let one = Direction::Forward;
    let both = Direction::Bidirectional;
    assert_invalid(with(GRU, one, [in_g, std_gru]), "activations");
    assert_invalid(with(GRU, both, [std_gru, in_g]), "activations");
    // The GRU has no `h` slot; a unidirectional config no second direction.
    assert!(with(GRU, one, [in_h, std_gru]).is_ok());
    assert!(with(GRU, one, [std_gru, in_g]).is_ok());
    let lstm_cell = lstm(false, None);
    let std_lstm = GateActivations::standard(lstm_cell);
    let in_h = GateActivations { h: bad, ..std_lstm };
    assert_invalid(with(lstm_cell, one, [in_h, std_lstm]), "activations");
    let inf = Activation::ScaledTanh {
        alpha: 1.0,
        beta: f32::INFINITY,
    };
    let in_f = GateActivations { f: inf, ..std_lstm };
    assert_invalid(with(lstm_cell, one, [in_f, std_lstm]), "activations");
}

#[test]
fn validate_rejects_bad_proj_and_clip() {
    assert_invalid(
        RnnConfig::new(lstm(false, Some(0)), 3, 4).validate(),
        "proj_size",
    );
    assert_invalid(
        RnnConfig::new(lstm(false, Some(4)), 3, 4).validate(),
        "proj_size",
    );
    assert_invalid(
        RnnConfig::new(lstm(false, Some(9)), 3, 4).validate(),
        "proj_size",
    );
    assert_invalid(
        RnnConfig::new(lstm(false, Some(1)), 3, 1).validate(),
        "proj_size",
    );
    assert!(RnnConfig::new(lstm(true, Some(3)), 3, 4).validate().is_ok());
    for clip in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert_invalid(
            RnnConfig::new(RNN, 3, 4).with_clip(Some(clip)).validate(),
            "clip",
        );
    }
    assert!(RnnConfig::new(RNN, 3, 4)
        .with_clip(Some(0.5))
        .validate()
        .is_ok());
    // The layer-norm LSTM: with a projection and peepholes, CIFG or not; not with
    // ONNX's clip or input_forget (no peer defines either with it).
    for cell in variants::layer_norm_lstms(3) {
        let cfg = RnnConfig::new(cell, 3, 4);
        assert!(cfg.validate().is_ok());
        assert_invalid(cfg.with_clip(Some(1.0)).validate(), "clip");
    }
    let coupled = CellKind::Lstm(rnn_reference::LstmVariant {
        coupling: rnn_reference::GateCoupling::InputForget,
        layer_norm: true,
        ..Default::default()
    });
    assert_invalid(RnnConfig::new(coupled, 3, 4).validate(), "cell");
}

#[test]
fn validate_rejects_overflowing_sizes() {
    assert_overflow(
        RnnConfig::new(RNN, 4, usize::MAX / 2).validate(),
        "hidden_size",
    );
    assert_overflow(
        RnnConfig::new(GRU, usize::MAX / 2, 4).validate(),
        "hidden_size",
    );
    assert_overflow(
        RnnConfig::new(lstm(false, None), 4, usize::MAX)
            .with_direction(Direction::Bidirectional)
            .validate(),
        "hidden_size",
    );
    // Fits in usize but not in the i32 element range.
    assert_overflow(
        RnnConfig::new(GRU, 1 << 20, 1 << 12).validate(),
        "hidden_size",
    );
    // The limit is inclusive: a 1-unit RNN's W_ih of i32::MAX elements is valid, one
    // more is not.
    let max = i32::MAX as usize;
    assert!(RnnConfig::new(RNN, max, 1).validate().is_ok());
    assert_overflow(RnnConfig::new(RNN, max + 1, 1).validate(), "hidden_size");
    assert_overflow(
        RnnConfig::new(RNN, 4, 4)
            .with_layers(usize::MAX)
            .with_direction(Direction::Bidirectional)
            .validate(),
        "num_layers",
    );
}

// ---- SeqShape::dims / check_seq_lens / check_len ----

#[test]
fn dims_rejects_zero_and_overflow() {
    let cfg = RnnConfig::new(lstm(false, None), 3, 4);
    assert_invalid(SeqShape::new(0, 2).dims(&cfg), "steps");
    assert_invalid(SeqShape::new(2, 0).dims(&cfg), "batch");
    assert_overflow(SeqShape::new(usize::MAX, 2).dims(&cfg), "x");
    assert_overflow(SeqShape::new(usize::MAX / 4, 2).dims(&cfg), "x");
    let wide = RnnConfig::new(RNN, 1, 1 << 20);
    assert_overflow(SeqShape::new(1 << 22, 1 << 22).dims(&wide), "y");
    let deep = RnnConfig::new(lstm(false, None), 1, 1 << 20).with_layers(1 << 30);
    assert_overflow(SeqShape::new(1, 1 << 20).dims(&deep), "h0");
    // A config `validate` would reject must not make `dims` panic either.
    let huge = RnnConfig::new(lstm(false, None), 1, 1)
        .with_layers(usize::MAX)
        .with_direction(Direction::Bidirectional);
    assert_overflow(SeqShape::new(1, 1).dims(&huge), "h0");
    let d = SeqShape::new(5, 2).dims(&cfg).unwrap();
    assert_eq!((d.x, d.y, d.h, d.c), (30, 40, 8, 8));
}

#[test]
fn seq_lens_wrong_count_or_too_long() {
    let shape = SeqShape::new(4, 3);
    assert_length(check_seq_lens(Some(&[1, 2]), &shape), "seq_lens", 3, 2);
    assert_length(
        check_seq_lens(Some(&[1, 2, 3, 4]), &shape),
        "seq_lens",
        3,
        4,
    );
    assert_invalid(check_seq_lens(Some(&[1, 5, 2]), &shape), "seq_lens[1]");
    assert_invalid(
        check_seq_lens(Some(&[1, 2, usize::MAX]), &shape),
        "seq_lens[2]",
    );
    assert!(check_seq_lens(Some(&[0, 4, 2]), &shape).is_ok());
    assert!(check_seq_lens(None, &shape).is_ok());
}

#[test]
fn check_len_names_the_argument() {
    assert_length(check_len("foo", 3, 4), "foo", 3, 4);
    assert!(check_len("foo", 3, 3).is_ok());
}

// ---- check_weights ----

#[test]
fn check_weights_wrong_count_and_lengths() {
    let cfg = RnnConfig::new(lstm(false, None), 3, 2)
        .with_layers(2)
        .with_direction(Direction::Bidirectional);
    let owned = zero_weights(&cfg);
    assert!(check_weights(&cfg, &views(&owned)).is_ok());
    let v = views(&owned);
    assert_length(
        check_weights(&cfg, &v[..3]),
        "weights (sets, layer * directions)",
        4,
        3,
    );
    assert_length(
        check_weights::<f64>(&cfg, &[]),
        "weights (sets, layer * directions)",
        4,
        0,
    );

    let short = vec![0.0; 5];
    let mut bad = views(&owned);
    bad[2].w_ih = &short; // layer 1 reads D*H = 4 inputs: 8*4 = 32
    assert_length(check_weights(&cfg, &bad), "weights[2].w_ih", 32, 5);
    let mut bad = views(&owned);
    bad[1].w_hh = &short;
    assert_length(check_weights(&cfg, &bad), "weights[1].w_hh", 16, 5);
    let mut bad = views(&owned);
    bad[3].b_ih = Some(&short);
    assert_length(check_weights(&cfg, &bad), "weights[3].b_ih", 8, 5);
    let mut bad = views(&owned);
    bad[0].b_hh = Some(&short);
    assert_length(check_weights(&cfg, &bad), "weights[0].b_hh", 8, 5);
    // Missing biases are fine.
    let mut ok = views(&owned);
    ok[0].b_ih = None;
    ok[1].b_hh = None;
    assert!(check_weights(&cfg, &ok).is_ok());
}

#[test]
fn check_weights_missing_or_extra_peephole_and_projection() {
    let extra = vec![0.0; 6];
    // Extra peephole / w_hr on a plain LSTM, and on a GRU.
    for cell in [lstm(false, None), GRU] {
        let cfg = RnnConfig::new(cell, 3, 2);
        let owned = zero_weights(&cfg);
        let mut bad = views(&owned);
        bad[0].peephole = Some(&extra);
        assert_invalid(check_weights(&cfg, &bad), "weights[0].peephole");
        let mut bad = views(&owned);
        bad[0].w_hr = Some(&extra);
        assert_invalid(check_weights(&cfg, &bad), "weights[0].w_hr");
    }
    // Layer-norm scales: required by a layer-norm LSTM (`[G*H]`), refused elsewhere.
    let scales = vec![1.0; 12];
    let plain = RnnConfig::new(lstm(false, None), 3, 3);
    let owned = zero_weights(&plain);
    let mut bad = views(&owned);
    bad[0].layer_norm = Some(&scales);
    assert_invalid(check_weights(&plain, &bad), "weights[0].layer_norm");
    let normed = RnnConfig::new(variants::lstm_layer_norm(false, None, true), 3, 3);
    let owned = zero_weights(&normed);
    assert!(check_weights(&normed, &views(&owned)).is_ok());
    let mut bad = views(&owned);
    bad[0].layer_norm = Some(&scales);
    assert_length(check_weights(&normed, &bad), "weights[0].layer_norm", 9, 12);
    bad[0].layer_norm = None;
    assert_invalid(check_weights(&normed, &bad), "weights[0].layer_norm");
    // Missing ones.
    let cfg = RnnConfig::new(lstm(true, Some(1)), 3, 2);
    let owned = zero_weights(&cfg);
    let mut bad = views(&owned);
    bad[0].peephole = None;
    assert_invalid(check_weights(&cfg, &bad), "weights[0].peephole");
    let mut bad = views(&owned);
    bad[0].w_hr = None;
    assert_invalid(check_weights(&cfg, &bad), "weights[0].w_hr");
    // Wrong lengths.
    let mut bad = views(&owned);
    bad[0].peephole = Some(&extra[..5]);
    assert_length(check_weights(&cfg, &bad), "weights[0].peephole", 6, 5);
    let mut bad = views(&owned);
    bad[0].w_hr = Some(&extra[..3]);
    assert_length(check_weights(&cfg, &bad), "weights[0].w_hr", 2, 3);
    // And it validates the config first.
    let bad_cfg = RnnConfig::new(RNN, 3, 0);
    assert_invalid(check_weights::<f64>(&bad_cfg, &[]), "hidden_size");
    assert_overflow(
        check_weights::<f64>(&RnnConfig::new(RNN, 3, usize::MAX / 2), &[]),
        "hidden_size",
    );
}

// ---- import_onnx / export_onnx ----

#[test]
fn import_onnx_bad_inputs() {
    let cfg = RnnConfig::new(lstm(false, None), 2, 3);
    let (w, r, b, p) = (vec![0.0; 24], vec![0.0; 36], vec![0.0; 24], vec![0.0; 9]);
    let ok = OnnxWeights {
        w: &w,
        r: &r,
        b: Some(&b[..]),
        p: None,
    };
    assert!(import_onnx(&cfg, ok).is_ok());
    assert_length(
        import_onnx(&cfg, OnnxWeights { w: &w[1..], ..ok }),
        "W",
        24,
        23,
    );
    assert_length(
        import_onnx(&cfg, OnnxWeights { r: &r[1..], ..ok }),
        "R",
        36,
        35,
    );
    assert_length(
        import_onnx(
            &cfg,
            OnnxWeights {
                b: Some(&b[..12]),
                ..ok
            },
        ),
        "B",
        24,
        12,
    );
    assert_invalid(import_onnx(&cfg, OnnxWeights { p: Some(&p), ..ok }), "P");
    let peep = RnnConfig::new(lstm(true, None), 2, 3);
    assert_invalid(import_onnx(&peep, ok), "P");
    assert_length(
        import_onnx(
            &peep,
            OnnxWeights {
                p: Some(&p[1..]),
                ..ok
            },
        ),
        "P",
        9,
        8,
    );
    // Bidirectional needs D = 2 sets of everything.
    let bi = cfg.with_direction(Direction::Bidirectional);
    assert_length(import_onnx(&bi, ok), "W", 48, 24);
    // ONNX operators are single-layer and have no projection.
    assert_invalid(import_onnx(&cfg.with_layers(2), ok), "num_layers");
    assert_invalid(
        import_onnx(&RnnConfig::new(lstm(false, Some(2)), 2, 3), ok),
        "proj_size",
    );
    // Invalid and overflowing configs.
    assert_invalid(import_onnx(&RnnConfig::new(GRU, 0, 3), ok), "input_size");
    assert_overflow(
        import_onnx(&RnnConfig::new(GRU, 2, usize::MAX / 2), ok),
        "hidden_size",
    );
}

#[test]
fn export_onnx_bad_inputs() {
    let cfg = RnnConfig::new(GRU, 2, 3);
    let owned = zero_weights(&cfg);
    assert!(export_onnx(&cfg, &views(&owned)).is_ok());
    assert_invalid(
        export_onnx(&cfg.with_layers(2), &views(&owned)),
        "num_layers",
    );
    let proj = RnnConfig::new(lstm(false, Some(1)), 2, 3);
    assert_invalid(
        export_onnx(&proj, &views(&zero_weights(&proj))),
        "proj_size",
    );
    let normed = RnnConfig::new(variants::lstm_layer_norm(false, None, false), 2, 3);
    assert_invalid(export_onnx(&normed, &views(&zero_weights(&normed))), "cell");
    // The cells ONNX has no operator for: a CIFG LSTM, a peephole GRU, an AUGRU.
    for cell in [
        variants::lstm_cifg(false, None),
        variants::gru_peephole(false),
        variants::augru(true),
    ] {
        let c = RnnConfig::new(cell, 2, 3);
        assert_invalid(export_onnx(&c, &views(&zero_weights(&c))), "cell");
    }
    let short = vec![0.0; 3];
    let mut bad = views(&owned);
    bad[0].w_hh = &short;
    assert_length(export_onnx(&cfg, &bad), "weights[0].w_hh", 27, 3);
    assert_length(
        export_onnx(
            &cfg.with_direction(Direction::Bidirectional),
            &views(&owned),
        ),
        "weights (sets, layer * directions)",
        2,
        1,
    );
    assert_overflow(
        export_onnx::<f64>(&RnnConfig::new(GRU, 2, usize::MAX / 2), &[]),
        "hidden_size",
    );
}

// ---- step ----

#[test]
fn step_bad_inputs() {
    let cfg = RnnConfig::new(lstm(false, None), 2, 3);
    let owned = zero_weights(&cfg);
    let w = owned[0].view();
    let (x, h, c) = (vec![0.0; 4], vec![0.0; 6], vec![0.0; 6]);
    assert!(step(&cfg, &w, 2, &x, &h, Some(&c)).is_ok());
    assert_invalid(
        step(&cfg.with_layers(2), &w, 2, &x, &h, Some(&c)),
        "num_layers",
    );
    assert_invalid(
        step(&cfg.with_layers(0), &w, 2, &x, &h, Some(&c)),
        "num_layers",
    );
    assert_invalid(
        step(
            &cfg.with_direction(Direction::Reverse),
            &w,
            2,
            &x,
            &h,
            Some(&c),
        ),
        "direction",
    );
    assert_invalid(
        step(
            &cfg.with_direction(Direction::Bidirectional),
            &w,
            2,
            &x,
            &h,
            Some(&c),
        ),
        "direction",
    );
    assert_invalid(step(&cfg, &w, 0, &[], &[], Some(&[])), "batch");
    assert_length(step(&cfg, &w, 2, &x[1..], &h, Some(&c)), "x", 4, 3);
    assert_length(step(&cfg, &w, 2, &x, &h[1..], Some(&c)), "h", 6, 5);
    assert_length(step(&cfg, &w, 2, &x, &h, Some(&c[1..])), "c", 6, 5);
    assert_invalid(step(&cfg, &w, 2, &x, &h, None), "c");
    assert_overflow(step(&cfg, &w, usize::MAX, &x, &h, Some(&c)), "x");
    // Wrong weights.
    let mut bad = w;
    bad.w_ih = &x;
    assert_length(
        step(&cfg, &bad, 2, &x, &h, Some(&c)),
        "weights[0].w_ih",
        24,
        4,
    );
    // Invalid / overflowing configs.
    assert_invalid(
        step(&RnnConfig::new(RNN, 2, 0), &w, 2, &x, &h, None),
        "hidden_size",
    );
    assert_overflow(
        step(&RnnConfig::new(RNN, 2, usize::MAX / 2), &w, 2, &x, &h, None),
        "hidden_size",
    );
    // `c` on a cell without cell state.
    let gru = RnnConfig::new(GRU, 2, 3);
    let gw = zero_weights(&gru);
    assert!(step(&gru, &gw[0].view(), 2, &x, &h, None).is_ok());
    assert_invalid(step(&gru, &gw[0].view(), 2, &x, &h, Some(&c)), "c");
    // Projected LSTM: h is [B, P], c is [B, H].
    let proj = RnnConfig::new(lstm(false, Some(1)), 2, 3);
    let pw = zero_weights(&proj);
    assert!(step(&proj, &pw[0].view(), 2, &x, &h[..2], Some(&c)).is_ok());
    assert_length(step(&proj, &pw[0].view(), 2, &x, &h, Some(&c)), "h", 2, 6);
}

// ---- forward ----

#[test]
fn forward_bad_inputs() {
    let cfg = RnnConfig::new(lstm(false, None), 2, 3)
        .with_layers(2)
        .with_direction(Direction::Bidirectional);
    let owned = zero_weights(&cfg);
    let w = views(&owned);
    let shape = SeqShape::new(4, 2);
    let (x, h0, c0) = (vec![0.0; 16], vec![0.0; 24], vec![0.0; 24]);
    let input = SequenceInput {
        x: &x,
        h0: Some(&h0[..]),
        c0: Some(&c0[..]),
        seq_lens: Some(&[4, 0][..]),
        attention: None,
    };
    let out = forward(&cfg, &w, shape, input).unwrap();
    assert_eq!((out.y.len(), out.h_n.len(), out.c_n.len()), (48, 24, 24));

    assert_length(
        forward(
            &cfg,
            &w,
            shape,
            SequenceInput {
                x: &x[1..],
                ..input
            },
        ),
        "x",
        16,
        15,
    );
    assert_length(
        forward(
            &cfg,
            &w,
            shape,
            SequenceInput {
                h0: Some(&h0[1..]),
                ..input
            },
        ),
        "h0",
        24,
        23,
    );
    assert_length(
        forward(
            &cfg,
            &w,
            shape,
            SequenceInput {
                c0: Some(&c0[1..]),
                ..input
            },
        ),
        "c0",
        24,
        23,
    );
    assert_length(
        forward(
            &cfg,
            &w,
            shape,
            SequenceInput {
                seq_lens: Some(&[1][..]),
                ..input
            },
        ),
        "seq_lens",
        2,
        1,
    );
    assert_invalid(
        forward(
            &cfg,
            &w,
            shape,
            SequenceInput {
                seq_lens: Some(&[1, 5][..]),
                ..input
            },
        ),
        "seq_lens[1]",
    );
    assert_invalid(forward(&cfg, &w, SeqShape::new(0, 2), input), "steps");
    assert_invalid(forward(&cfg, &w, SeqShape::new(4, 0), input), "batch");
    assert_overflow(
        forward(&cfg, &w, SeqShape::new(usize::MAX / 2, 2), input),
        "x",
    );
    assert_length(
        forward(&cfg, &w[..3], shape, input),
        "weights (sets, layer * directions)",
        4,
        3,
    );
    assert_invalid(forward(&cfg.with_layers(0), &w, shape, input), "num_layers");
    assert_overflow(
        forward(&RnnConfig::new(RNN, 2, usize::MAX / 2), &w, shape, input),
        "hidden_size",
    );
    // c0 for a cell without a cell state.
    let gru = RnnConfig::new(GRU, 2, 3);
    let gw = zero_weights(&gru);
    let gi = SequenceInput {
        x: &x,
        h0: Some(&h0[..6]),
        c0: None,
        seq_lens: None,
        attention: None,
    };
    assert!(forward(&gru, &views(&gw), shape, gi).is_ok());
    assert_invalid(
        forward(
            &gru,
            &views(&gw),
            shape,
            SequenceInput {
                c0: Some(&c0[..6]),
                ..gi
            },
        ),
        "c0",
    );
}

/// The sequence forward checks its attention input: an AUGRU needs `T * B` values, the
/// other cells none.
#[test]
fn forward_checks_the_attention_input() {
    let shape = SeqShape::new(4, 2);
    let x = vec![0.5; 4 * 2 * 2];
    let att = [0.5; 4 * 2];
    let run = |cell: CellKind, n: Option<usize>| {
        let cfg = RnnConfig::new(cell, 2, 3);
        let owned = zero_weights(&cfg);
        let input = SequenceInput {
            x: &x,
            h0: None,
            c0: None,
            seq_lens: None,
            attention: n.map(|n| &att[..n]),
        };
        forward(&cfg, &views(&owned), shape, input)
    };
    let augru = variants::augru(true);
    assert_invalid(run(augru, None), "attention");
    assert_length(run(augru, Some(7)), "attention", 8, 7);
    assert!(run(augru, Some(8)).is_ok());
    assert_invalid(run(GRU, Some(8)), "attention");
    assert!(run(GRU, None).is_ok());
}

#[test]
fn errors_display_what_was_expected_and_given() {
    let e = check_len("weights[0].w_ih", 12, 7).unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("weights[0].w_ih") && s.contains("12") && s.contains('7'),
        "{s}"
    );
    let e = RnnConfig::new(RNN, 3, 4)
        .with_clip(Some(-1.0))
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("clip"));
    let _unused: LayerWeights<'_, f32> = LayerWeights::new(&[], &[]);
}
