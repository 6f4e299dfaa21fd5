//! The bad-input contract (docs/errors.md): every kind of bad argument to every kernels
//! entry point gives the documented `Error` variant naming the argument; NaN/inf inputs
//! give the NaN/inf outputs the f64 reference gives; values beyond the f32 range give
//! inf/NaN, never a panic. The fuzz targets in `fuzz/` check the same at random.
//!
//! Regression tests for fuzz findings are at the end, `#[ignore]`d until fixed.

use rnn_kernels::{
    CellKind, Direction, Error, Isa, LayerWeights, OnnxWeights, OwnedLayerWeights, PackedCell,
    PackedRnn, RnnActivation, RnnConfig, SeqShape, SequenceInput, SequenceOutputMut, StepInput,
    StepOutputMut, TensorLayout, Workspace,
};

// ---------------------------------------------------------------- helpers

const LSTM: CellKind = CellKind::Lstm {
    peephole: false,
    proj_size: None,
};
const LSTM_PEEP: CellKind = CellKind::Lstm {
    peephole: true,
    proj_size: None,
};
const LSTM_PROJ: CellKind = CellKind::Lstm {
    peephole: false,
    proj_size: Some(2),
};
const GRU: CellKind = CellKind::Gru {
    linear_before_reset: true,
};
const GRU_ONNX: CellKind = CellKind::Gru {
    linear_before_reset: false,
};
const TANH: CellKind = CellKind::Rnn {
    activation: RnnActivation::Tanh,
};
const RELU: CellKind = CellKind::Rnn {
    activation: RnnActivation::Relu,
};
const ALL_CELLS: [CellKind; 7] = [
    TANH,
    RELU,
    LSTM,
    LSTM_PEEP,
    CellKind::Lstm {
        peephole: true,
        proj_size: Some(2),
    },
    GRU,
    GRU_ONNX,
];

/// Deterministic small values in [-0.3, 0.3].
fn vals(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|k| (((k * 7919 + seed * 104_729) % 601) as f32 / 1000.0) - 0.3)
        .collect()
}

/// Valid weights for every set of `cfg`, with biases.
fn weights(cfg: &RnnConfig) -> Vec<OwnedLayerWeights<f32>> {
    (0..cfg.num_weight_sets())
        .map(|k| {
            let l = cfg.weight_lens(k / cfg.num_directions());
            OwnedLayerWeights {
                w_ih: vals(l.w_ih, 6 * k),
                w_hh: vals(l.w_hh, 6 * k + 1),
                b_ih: Some(vals(l.bias, 6 * k + 2)),
                b_hh: Some(vals(l.bias, 6 * k + 3)),
                w_hr: l.w_hr.map(|n| vals(n, 6 * k + 4)),
                peephole: l.peephole.map(|n| vals(n, 6 * k + 5)),
            }
        })
        .collect()
}

fn views(w: &[OwnedLayerWeights<f32>]) -> Vec<LayerWeights<'_, f32>> {
    rnn_reference::views(w)
}

fn packed(cfg: &RnnConfig) -> PackedRnn {
    PackedRnn::from_pytorch(cfg, &views(&weights(cfg))).unwrap()
}

#[track_caller]
fn assert_length(
    r: Result<impl std::fmt::Debug, Error>,
    arg: &str,
    expected: usize,
    actual: usize,
) {
    match r {
        Err(Error::Length {
            arg: a,
            expected: e,
            actual: got,
        }) => {
            assert_eq!((a.as_str(), e, got), (arg, expected, actual));
        }
        other => panic!("expected Length {{ arg: {arg} }}, got {other:?}"),
    }
}

#[track_caller]
fn assert_invalid(r: Result<impl std::fmt::Debug, Error>, arg: &str) {
    match r {
        Err(e @ Error::Invalid { .. }) => {
            assert_eq!(e.arg(), arg, "{e}");
            assert!(e.to_string().contains(arg));
        }
        other => panic!("expected Invalid {{ arg: {arg} }}, got {other:?}"),
    }
}

#[track_caller]
fn assert_overflow(r: Result<impl std::fmt::Debug, Error>, arg: &str) {
    match r {
        Err(e @ Error::Overflow { .. }) => assert_eq!(e.arg(), arg, "{e}"),
        other => panic!("expected Overflow {{ arg: {arg} }}, got {other:?}"),
    }
}

/// Output buffers of the right size for `cfg` and `shape`.
struct Outs {
    y: Vec<f32>,
    h_n: Vec<f32>,
    c_n: Vec<f32>,
}

impl Outs {
    fn new(cfg: &RnnConfig, shape: SeqShape) -> Self {
        let d = shape.dims(cfg).unwrap();
        Outs {
            y: vec![f32::NAN; d.y],
            h_n: vec![f32::NAN; d.h],
            c_n: vec![f32::NAN; d.c],
        }
    }
    fn out(&mut self, lstm: bool) -> SequenceOutputMut<'_> {
        SequenceOutputMut {
            y: &mut self.y,
            h_n: Some(&mut self.h_n),
            c_n: lstm.then_some(&mut self.c_n[..]),
        }
    }
}

// ---------------------------------------------------------------- configs and weights

#[test]
fn config_errors() {
    let ok = RnnConfig::new(LSTM, 3, 4);
    let bad = |c: RnnConfig| PackedRnn::from_pytorch(&c, &views(&weights(&ok))).map(|_| ());
    assert_invalid(
        bad(RnnConfig {
            input_size: 0,
            ..ok
        }),
        "input_size",
    );
    assert_invalid(
        bad(RnnConfig {
            hidden_size: 0,
            ..ok
        }),
        "hidden_size",
    );
    assert_invalid(
        bad(RnnConfig {
            num_layers: 0,
            ..ok
        }),
        "num_layers",
    );
    for p in [0, 4, 5] {
        let c = RnnConfig::new(
            CellKind::Lstm {
                peephole: false,
                proj_size: Some(p),
            },
            3,
            4,
        );
        assert_invalid(bad(c), "proj_size");
    }
    for clip in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert_invalid(bad(ok.with_clip(Some(clip))), "clip");
    }
    // Products that do not fit: G*H*max(I, D*H_out) above i32::MAX, or usize overflow.
    assert_overflow(bad(RnnConfig::new(LSTM, 1, 1 << 16)), "hidden_size");
    assert_overflow(bad(RnnConfig::new(GRU, usize::MAX, 2)), "hidden_size");
    assert_overflow(bad(RnnConfig::new(GRU, 2, usize::MAX / 2)), "hidden_size");
    assert_overflow(
        bad(ok
            .with_layers(usize::MAX)
            .with_direction(Direction::Bidirectional)),
        "num_layers",
    );
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

#[test]
fn weight_errors() {
    let cfg = RnnConfig::new(GRU, 3, 4).with_direction(Direction::Bidirectional);
    let w = weights(&cfg);
    // Wrong number of sets.
    assert_length(
        PackedRnn::from_pytorch(&cfg, &views(&w[..1])).map(|_| ()),
        "weights (sets, layer * directions)",
        2,
        1,
    );
    // Wrong lengths, named by set and part.
    let short = vec![0.0f32; 5];
    let mut v = views(&w);
    v[1].w_hh = &short;
    assert_length(
        PackedRnn::from_pytorch(&cfg, &v).map(|_| ()),
        "weights[1].w_hh",
        48,
        5,
    );
    let mut v = views(&w);
    v[0].w_ih = &short;
    assert_length(
        PackedRnn::from_pytorch(&cfg, &v).map(|_| ()),
        "weights[0].w_ih",
        36,
        5,
    );
    let mut v = views(&w);
    v[1].b_ih = Some(&short);
    assert_length(
        PackedRnn::from_pytorch(&cfg, &v).map(|_| ()),
        "weights[1].b_ih",
        12,
        5,
    );
    let mut v = views(&w);
    v[0].b_hh = Some(&short);
    assert_length(
        PackedRnn::from_pytorch(&cfg, &v).map(|_| ()),
        "weights[0].b_hh",
        12,
        5,
    );
    // Optional parts present exactly when the cell needs them.
    let mut v = views(&w);
    v[0].w_hr = Some(&short);
    assert_invalid(
        PackedRnn::from_pytorch(&cfg, &v).map(|_| ()),
        "weights[0].w_hr",
    );
    let mut v = views(&w);
    v[0].peephole = Some(&short);
    assert_invalid(
        PackedRnn::from_pytorch(&cfg, &v).map(|_| ()),
        "weights[0].peephole",
    );
    let proj = RnnConfig::new(LSTM_PROJ, 3, 4);
    let w = weights(&proj);
    let mut v = views(&w);
    v[0].w_hr = None;
    assert_invalid(
        PackedRnn::from_pytorch(&proj, &v).map(|_| ()),
        "weights[0].w_hr",
    );
    let peep = RnnConfig::new(LSTM_PEEP, 3, 4);
    let w = weights(&peep);
    let mut v = views(&w);
    v[0].peephole = None;
    assert_invalid(
        PackedRnn::from_pytorch(&peep, &v).map(|_| ()),
        "weights[0].peephole",
    );
    v[0].peephole = Some(&short);
    assert_length(
        PackedRnn::from_pytorch(&peep, &v).map(|_| ()),
        "weights[0].peephole",
        12,
        5,
    );
    // Second layer's input width is D * H_out.
    let two = RnnConfig::new(TANH, 3, 4).with_layers(2);
    let w = weights(&two);
    let mut v = views(&w);
    v[1].w_ih = &w[0].w_ih; // 4 x 3 instead of 4 x 4
    assert_length(
        PackedRnn::from_pytorch(&two, &v).map(|_| ()),
        "weights[1].w_ih",
        16,
        12,
    );
}

#[test]
fn onnx_errors() {
    let cfg = RnnConfig::new(LSTM_PEEP, 3, 4);
    let (w, r, b, p) = (vals(48, 1), vals(64, 2), vals(32, 3), vals(12, 4));
    let ok = OnnxWeights {
        w: &w,
        r: &r,
        b: Some(&b),
        p: Some(&p),
    };
    assert!(PackedRnn::from_onnx(&cfg, ok).is_ok());
    let f = |c: &RnnConfig, o: OnnxWeights<'_, f32>| PackedRnn::from_onnx(c, o).map(|_| ());
    assert_invalid(f(&cfg.with_layers(2), ok), "num_layers");
    assert_invalid(
        f(
            &RnnConfig::new(LSTM_PROJ, 3, 4),
            OnnxWeights { p: None, ..ok },
        ),
        "proj_size",
    );
    assert_invalid(
        f(
            &RnnConfig {
                hidden_size: 0,
                ..cfg
            },
            ok,
        ),
        "hidden_size",
    );
    assert_length(f(&cfg, OnnxWeights { w: &w[1..], ..ok }), "W", 48, 47);
    assert_length(f(&cfg, OnnxWeights { r: &r[1..], ..ok }), "R", 64, 63);
    assert_length(
        f(
            &cfg,
            OnnxWeights {
                b: Some(&b[1..]),
                ..ok
            },
        ),
        "B",
        32,
        31,
    );
    assert_length(
        f(
            &cfg,
            OnnxWeights {
                p: Some(&p[1..]),
                ..ok
            },
        ),
        "P",
        12,
        11,
    );
    assert_invalid(f(&cfg, OnnxWeights { p: None, ..ok }), "P");
    assert_invalid(f(&RnnConfig::new(LSTM, 3, 4), ok), "P");
    // Bidirectional: every tensor has a leading D = 2.
    assert_length(
        f(&cfg.with_direction(Direction::Bidirectional), ok),
        "W",
        96,
        48,
    );
    // The reference's exporter rejects what ONNX cannot express.
    let proj = RnnConfig::new(LSTM_PROJ, 3, 4);
    let pw = weights(&proj);
    assert_invalid(rnn_reference::export_onnx(&proj, &views(&pw)), "proj_size");
}

// ---------------------------------------------------------------- sequence API

#[test]
fn forward_errors() {
    let cfg = RnnConfig::new(LSTM, 3, 4).with_direction(Direction::Bidirectional);
    let rnn = packed(&cfg);
    let shape = SeqShape::new(5, 2);
    let d = shape.dims(&cfg).unwrap();
    let x = vals(d.x, 9);
    let h0 = vals(d.h, 10);
    let c0 = vals(d.c, 11);
    let mut ws = Workspace::new();
    let mut o = Outs::new(&cfg, shape);
    let input = SequenceInput {
        x: &x,
        h0: Some(&h0),
        c0: Some(&c0),
        seq_lens: None,
    };
    assert!(rnn.forward(&mut ws, shape, input, o.out(true)).is_ok());

    let run = |shape: SeqShape, input: SequenceInput<'_, f32>, o: &mut Outs, lstm: bool| {
        rnn.forward(&mut Workspace::new(), shape, input, o.out(lstm))
    };
    assert_invalid(run(SeqShape::new(0, 2), input, &mut o, true), "steps");
    assert_invalid(run(SeqShape::new(5, 0), input, &mut o, true), "batch");
    assert_overflow(run(SeqShape::new(usize::MAX, 2), input, &mut o, true), "x");
    // T*B*I = usize::MAX - 1 fits, T*B*D*H_out does not.
    assert_overflow(
        run(SeqShape::new(usize::MAX / 3, 1), input, &mut o, true),
        "y",
    );
    assert_length(
        run(
            shape,
            SequenceInput {
                x: &x[1..],
                ..input
            },
            &mut o,
            true,
        ),
        "x",
        d.x,
        d.x - 1,
    );
    assert_length(
        run(
            shape,
            SequenceInput {
                h0: Some(&h0[1..]),
                ..input
            },
            &mut o,
            true,
        ),
        "h0",
        d.h,
        d.h - 1,
    );
    assert_length(
        run(
            shape,
            SequenceInput {
                c0: Some(&c0[1..]),
                ..input
            },
            &mut o,
            true,
        ),
        "c0",
        d.c,
        d.c - 1,
    );
    // Outputs.
    let mut short = Outs::new(&cfg, shape);
    short.y.pop();
    assert_length(run(shape, input, &mut short, true), "y", d.y, d.y - 1);
    let mut short = Outs::new(&cfg, shape);
    short.h_n.push(0.0);
    assert_length(run(shape, input, &mut short, true), "h_n", d.h, d.h + 1);
    let mut short = Outs::new(&cfg, shape);
    short.c_n.clear();
    assert_length(run(shape, input, &mut short, true), "c_n", d.c, 0);
    // Sequence lengths: one per row, each <= T (0 allowed).
    assert_length(
        run(
            shape,
            SequenceInput {
                seq_lens: Some(&[5]),
                ..input
            },
            &mut o,
            true,
        ),
        "seq_lens",
        2,
        1,
    );
    assert_length(
        run(
            shape,
            SequenceInput {
                seq_lens: Some(&[5, 5, 5]),
                ..input
            },
            &mut o,
            true,
        ),
        "seq_lens",
        2,
        3,
    );
    assert_invalid(
        run(
            shape,
            SequenceInput {
                seq_lens: Some(&[5, 6]),
                ..input
            },
            &mut o,
            true,
        ),
        "seq_lens[1]",
    );
    assert_invalid(
        run(
            shape,
            SequenceInput {
                seq_lens: Some(&[usize::MAX, 0]),
                ..input
            },
            &mut o,
            true,
        ),
        "seq_lens[0]",
    );
    // A cell without a cell state rejects c0 and c_n.
    let gcfg = RnnConfig::new(GRU, 3, 4).with_direction(Direction::Bidirectional);
    let grnn = packed(&gcfg);
    let gd = shape.dims(&gcfg).unwrap();
    let gh0 = vals(gd.h, 3);
    let mut go = Outs::new(&gcfg, shape);
    let cn = vec![0.0f32; 16];
    let ginput = SequenceInput {
        x: &x,
        h0: Some(&gh0),
        c0: None,
        seq_lens: None,
    };
    assert!(grnn.forward(&mut ws, shape, ginput, go.out(false)).is_ok());
    assert_invalid(
        grnn.forward(
            &mut ws,
            shape,
            SequenceInput {
                c0: Some(&cn),
                ..ginput
            },
            go.out(false),
        ),
        "c0",
    );
    let mut c_n = vec![0.0f32; 16];
    assert_invalid(
        grnn.forward(
            &mut ws,
            shape,
            ginput,
            SequenceOutputMut {
                y: &mut go.y,
                h_n: None,
                c_n: Some(&mut c_n),
            },
        ),
        "c_n",
    );
    // y overflowing while x does not: T*B*I fits, T*B*D*H_out does not.
    let wide = RnnConfig::new(TANH, 1, 8);
    let wrnn = packed(&wide);
    let mut y = vec![0.0f32; 8];
    assert_overflow(
        wrnn.forward(
            &mut ws,
            SeqShape::new(usize::MAX / 4, 1),
            SequenceInput::new(&x[..1]),
            SequenceOutputMut {
                y: &mut y,
                h_n: None,
                c_n: None,
            },
        ),
        "y",
    );
    // SeqShape::dims directly.
    assert_overflow(SeqShape::new(1 << 40, 1 << 30).dims(&cfg), "x");
    assert_invalid(SeqShape::new(0, 1).dims(&cfg), "steps");
}

/// Zero-length rows: y is zero and the final state is the initial state; x beyond a
/// row's length is never read (NaN there changes nothing).
#[test]
fn zero_and_short_sequence_lengths() {
    for cell in ALL_CELLS {
        for dir in [
            Direction::Forward,
            Direction::Reverse,
            Direction::Bidirectional,
        ] {
            let cfg = RnnConfig::new(cell, 3, 4).with_direction(dir);
            let shape = SeqShape::new(4, 3).with_layout(TensorLayout::BatchMajor);
            let d = shape.dims(&cfg).unwrap();
            let lens = [0usize, 2, 4];
            let mut x = vals(d.x, 1);
            for (b, &len) in lens.iter().enumerate() {
                for t in len..4 {
                    let r = shape.row(t, b);
                    x[r * 3..(r + 1) * 3].fill(f32::NAN);
                }
            }
            let h0 = vals(d.h, 2);
            let c0 = vals(d.c, 3);
            let lstm = cell.has_cell_state();
            for isa in Isa::available() {
                let rnn = packed(&cfg).with_isa(Some(isa)).unwrap();
                let mut o = Outs::new(&cfg, shape);
                rnn.forward(
                    &mut Workspace::new(),
                    shape,
                    SequenceInput {
                        x: &x,
                        h0: Some(&h0),
                        c0: lstm.then_some(&c0[..]),
                        seq_lens: Some(&lens),
                    },
                    o.out(lstm),
                )
                .unwrap();
                assert!(
                    o.y.iter().all(|v| v.is_finite()),
                    "{isa} {cfg:?}: NaN leaked from padding"
                );
                let ho = cfg.output_size();
                let w = cfg.num_directions() * ho;
                for t in 0..4 {
                    let r = shape.row(t, 0);
                    assert!(o.y[r * w..(r + 1) * w].iter().all(|&v| v == 0.0));
                }
                for k in 0..cfg.num_directions() {
                    let row = &o.h_n[(k * 3) * ho..(k * 3 + 1) * ho];
                    assert_eq!(row, &h0[(k * 3) * ho..(k * 3 + 1) * ho], "row 0 keeps h0");
                }
            }
        }
    }
}

// ---------------------------------------------------------------- step API

#[test]
fn cell_errors() {
    let cfg = RnnConfig::new(LSTM, 3, 4);
    let w = weights(&cfg);
    assert_invalid(
        PackedCell::from_pytorch(&cfg.with_layers(2), &w[0].view()).map(|_| ()),
        "num_layers",
    );
    assert_invalid(
        PackedCell::from_pytorch(&cfg.with_direction(Direction::Reverse), &w[0].view()).map(|_| ()),
        "direction",
    );
    assert_invalid(
        PackedCell::from_pytorch(
            &RnnConfig {
                input_size: 0,
                ..cfg
            },
            &w[0].view(),
        )
        .map(|_| ()),
        "input_size",
    );
    let mut v = w[0].view();
    v.w_hh = &v.w_hh[1..];
    assert_length(
        PackedCell::from_pytorch(&cfg, &v).map(|_| ()),
        "weights[0].w_hh",
        64,
        63,
    );

    let cell = PackedCell::from_pytorch(&cfg, &w[0].view()).unwrap();
    let b = 2;
    let (x, h, c) = (vals(b * 3, 1), vals(b * 4, 2), vals(b * 4, 3));
    let (mut h1, mut c1) = (vec![0.0f32; b * 4], vec![0.0f32; b * 4]);
    let mut ws = Workspace::new();
    let mut step =
        |batch: usize, x: &[f32], h: &[f32], c: Option<&[f32]>, ho: usize, co: Option<usize>| {
            cell.step(
                &mut ws,
                batch,
                StepInput { x, h, c },
                StepOutputMut {
                    h: &mut h1[..ho],
                    c: co.map(|n| &mut c1[..n]),
                },
            )
        };
    assert!(step(b, &x, &h, Some(&c), 8, Some(8)).is_ok());
    assert_invalid(step(0, &x, &h, Some(&c), 8, Some(8)), "batch");
    assert_length(step(b, &x[1..], &h, Some(&c), 8, Some(8)), "x", 6, 5);
    assert_length(step(b, &x, &h[1..], Some(&c), 8, Some(8)), "h", 8, 7);
    assert_length(step(b, &x, &h, Some(&c[1..]), 8, Some(8)), "c", 8, 7);
    assert_length(step(b, &x, &h, Some(&c), 7, Some(8)), "h_out", 8, 7);
    assert_length(step(b, &x, &h, Some(&c), 8, Some(7)), "c_out", 8, 7);
    assert_invalid(step(b, &x, &h, None, 8, Some(8)), "c");
    assert_invalid(step(b, &x, &h, Some(&c), 8, None), "c_out");
    assert_overflow(step(usize::MAX / 2, &x, &h, Some(&c), 8, Some(8)), "x");

    let gcfg = RnnConfig::new(GRU_ONNX, 3, 4);
    let gw = weights(&gcfg);
    let gcell = PackedCell::from_pytorch(&gcfg, &gw[0].view()).unwrap();
    let mut h1 = vec![0.0f32; 8];
    let mut c1 = vec![0.0f32; 8];
    assert_invalid(
        gcell.step(
            &mut ws,
            b,
            StepInput {
                x: &x,
                h: &h,
                c: Some(&c),
            },
            StepOutputMut {
                h: &mut h1,
                c: None,
            },
        ),
        "c",
    );
    assert_invalid(
        gcell.step(
            &mut ws,
            b,
            StepInput {
                x: &x,
                h: &h,
                c: None,
            },
            StepOutputMut {
                h: &mut h1,
                c: Some(&mut c1),
            },
        ),
        "c_out",
    );
}

// ---------------------------------------------------------------- ISA selection

#[test]
fn isa_errors() {
    for name in ["avx9", "", "sse5", "AVX-1024"] {
        match name.parse::<Isa>() {
            Err(e @ Error::IsaUnavailable { .. }) => {
                assert_eq!(e.arg(), "isa");
                assert!(e.to_string().contains("unknown instruction set"), "{e}");
            }
            other => panic!("{name:?} parsed to {other:?}"),
        }
    }
    assert_eq!(" AVX2 ".parse::<Isa>().unwrap(), Isa::Avx2);
    assert_eq!("portable".parse::<Isa>().unwrap(), Isa::Portable);
    let cfg = RnnConfig::new(GRU, 3, 4);
    let w = weights(&cfg);
    for &isa in Isa::ALL {
        let r = packed(&cfg).with_isa(Some(isa));
        let c = PackedCell::from_pytorch(&cfg, &w[0].view())
            .unwrap()
            .with_isa(Some(isa));
        if isa.is_available() {
            assert!(r.is_ok() && c.is_ok());
        } else {
            // A forced path the CPU lacks is an error, never an illegal instruction.
            for e in [r.err().unwrap(), c.err().unwrap()] {
                assert!(
                    matches!(&e, Error::IsaUnavailable { requested, .. } if requested == isa.name()),
                    "{e:?}"
                );
                assert_eq!(e.arg(), "isa");
            }
        }
    }
    assert!(Isa::Portable.is_available());
}

// ---------------------------------------------------------------- NaN / inf / overflow

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// NaN / +inf / -inf / finite.
fn class(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v == f64::INFINITY {
        "+inf"
    } else if v == f64::NEG_INFINITY {
        "-inf"
    } else {
        "finite"
    }
}

struct Case {
    cfg: RnnConfig,
    shape: SeqShape,
    w: Vec<OwnedLayerWeights<f32>>,
    x: Vec<f32>,
    h0: Vec<f32>,
    c0: Vec<f32>,
}

fn case(cell: CellKind, dir: Direction, layers: usize) -> Case {
    let cfg = RnnConfig::new(cell, 3, 4)
        .with_direction(dir)
        .with_layers(layers);
    let shape = SeqShape::new(3, 2);
    let d = shape.dims(&cfg).unwrap();
    Case {
        w: weights(&cfg),
        x: vals(d.x, 20),
        h0: vals(d.h, 21),
        c0: vals(d.c, 22),
        cfg,
        shape,
    }
}

/// Runs `c` through the f64 reference and every ISA; returns the reference outputs
/// and panics if any kernel output's class (NaN/±inf/finite) differs from it.
fn same_classes(c: &Case, what: &str) -> Vec<f64> {
    let lstm = c.cfg.cell.has_cell_state();
    let w64: Vec<OwnedLayerWeights<f64>> =
        c.w.iter()
            .map(|w| OwnedLayerWeights {
                w_ih: f64s(&w.w_ih),
                w_hh: f64s(&w.w_hh),
                b_ih: w.b_ih.as_deref().map(f64s),
                b_hh: w.b_hh.as_deref().map(f64s),
                w_hr: w.w_hr.as_deref().map(f64s),
                peephole: w.peephole.as_deref().map(f64s),
            })
            .collect();
    let (x, h0, c0) = (f64s(&c.x), f64s(&c.h0), f64s(&c.c0));
    let want = rnn_reference::forward(
        &c.cfg,
        &rnn_reference::views(&w64),
        c.shape,
        SequenceInput {
            x: &x,
            h0: Some(&h0),
            c0: lstm.then_some(&c0[..]),
            seq_lens: None,
        },
    )
    .unwrap();
    let all_want: Vec<f64> = [&want.y[..], &want.h_n, &want.c_n].concat();
    for isa in Isa::available() {
        let rnn = PackedRnn::from_pytorch(&c.cfg, &views(&c.w))
            .unwrap()
            .with_isa(Some(isa))
            .unwrap();
        let mut o = Outs::new(&c.cfg, c.shape);
        rnn.forward(
            &mut Workspace::new(),
            c.shape,
            SequenceInput {
                x: &c.x,
                h0: Some(&c.h0),
                c0: lstm.then_some(&c.c0[..]),
                seq_lens: None,
            },
            o.out(lstm),
        )
        .unwrap();
        let got: Vec<f32> = [&o.y[..], &o.h_n, if lstm { &o.c_n } else { &[][..] }].concat();
        for (k, (&g, &w)) in got.iter().zip(&all_want).enumerate() {
            assert_eq!(
                class(g as f64),
                class(w),
                "{what}: {isa} {:?} output {k}: kernel {g}, reference {w}",
                c.cfg
            );
        }
    }
    all_want
}

#[test]
fn nan_in_x_gives_nan_where_the_reference_does() {
    for cell in ALL_CELLS {
        for dir in [
            Direction::Forward,
            Direction::Reverse,
            Direction::Bidirectional,
        ] {
            let mut c = case(cell, dir, 2);
            c.x[4] = f32::NAN; // step 0, row 1
            let want = same_classes(&c, "NaN in x");
            assert!(want.iter().any(|v| v.is_nan()));
        }
    }
}

#[test]
fn nan_in_state_and_weights() {
    for cell in ALL_CELLS {
        let mut c = case(cell, Direction::Bidirectional, 1);
        c.h0[1] = f32::NAN;
        same_classes(&c, "NaN in h0");
        let mut c = case(cell, Direction::Forward, 2);
        c.w[0].w_hh[3] = f32::NAN;
        same_classes(&c, "NaN in w_hh");
        let mut c = case(cell, Direction::Forward, 1);
        c.w[0].b_ih.as_mut().unwrap()[0] = f32::NAN;
        same_classes(&c, "NaN in b_ih");
        if cell.has_cell_state() {
            let mut c = case(cell, Direction::Forward, 1);
            c.c0[2] = f32::NAN;
            same_classes(&c, "NaN in c0");
        }
    }
}

#[test]
fn infinities_give_what_the_reference_gives() {
    for cell in ALL_CELLS {
        for v in [f32::INFINITY, f32::NEG_INFINITY] {
            let mut c = case(cell, Direction::Bidirectional, 2);
            c.x[0] = v;
            same_classes(&c, "inf in x");
            let mut c = case(cell, Direction::Forward, 1);
            c.w[0].w_ih[0] = v;
            c.w[0].w_ih[1] = -v; // inf - inf = NaN in the first gate row
            same_classes(&c, "inf and -inf in one row of w_ih");
            let mut c = case(cell, Direction::Forward, 2);
            c.w[0].b_hh.as_mut().unwrap()[1] = v;
            same_classes(&c, "inf in b_hh");
            let mut c = case(cell, Direction::Forward, 1);
            c.h0[0] = v;
            same_classes(&c, "inf in h0");
        }
    }
}

/// An infinite initial cell state with peepholes: the peephole products are inf, as
/// the reference computes.
#[test]
fn infinite_cell_state_with_peephole() {
    for v in [f32::INFINITY, f32::NEG_INFINITY] {
        let mut c = case(LSTM_PEEP, Direction::Forward, 1);
        c.c0[0] = v;
        same_classes(&c, "inf in c0 (peephole LSTM)");
    }
}

/// Values beyond the f32 range (1e38 * weights overflow): outputs are inf or NaN or
/// saturated, the calls succeed, nothing panics.
#[test]
fn values_beyond_f32_range() {
    for cell in ALL_CELLS {
        for scale in [1e38f32, f32::MAX, -f32::MAX] {
            let mut c = case(cell, Direction::Bidirectional, 2);
            c.x.iter_mut().for_each(|v| *v *= scale);
            c.w[0].w_ih.iter_mut().for_each(|v| *v *= 1e10);
            let lstm = cell.has_cell_state();
            for isa in Isa::available() {
                let rnn = PackedRnn::from_pytorch(&c.cfg, &views(&c.w))
                    .unwrap()
                    .with_isa(Some(isa))
                    .unwrap();
                let mut o = Outs::new(&c.cfg, c.shape);
                rnn.forward(
                    &mut Workspace::new(),
                    c.shape,
                    SequenceInput {
                        x: &c.x,
                        h0: Some(&c.h0),
                        c0: lstm.then_some(&c.c0[..]),
                        seq_lens: None,
                    },
                    o.out(lstm),
                )
                .unwrap();
                // Bounded cells stay in [-1, 1] (or NaN from inf - inf); ReLU is >= 0.
                let bounded = !matches!(
                    cell,
                    CellKind::Rnn {
                        activation: RnnActivation::Relu
                    } | CellKind::Lstm {
                        proj_size: Some(_),
                        ..
                    }
                );
                for &v in &o.y {
                    if bounded {
                        assert!(
                            v.is_nan() || (-1.0..=1.0).contains(&v),
                            "{isa} {cell:?}: {v}"
                        );
                    } else if matches!(cell, CellKind::Rnn { .. }) {
                        assert!(v.is_nan() || v >= 0.0, "{isa} {cell:?}: {v}");
                    }
                }
            }
        }
    }
}

/// The single-step API gives the reference's classes too.
#[test]
fn step_nan_and_inf() {
    for cell in [TANH, RELU, LSTM, LSTM_PEEP, GRU, GRU_ONNX] {
        let cfg = RnnConfig::new(cell, 3, 4);
        let w = weights(&cfg);
        let b = 2;
        let mut x = vals(b * 3, 1);
        x[0] = f32::NAN;
        x[4] = f32::INFINITY;
        let h = vals(b * 4, 2);
        let c = vals(b * 4, 3);
        let lstm = cell.has_cell_state();
        let w64 = OwnedLayerWeights {
            w_ih: f64s(&w[0].w_ih),
            w_hh: f64s(&w[0].w_hh),
            b_ih: w[0].b_ih.as_deref().map(f64s),
            b_hh: w[0].b_hh.as_deref().map(f64s),
            w_hr: None,
            peephole: w[0].peephole.as_deref().map(f64s),
        };
        let want = rnn_reference::step(
            &cfg,
            &w64.view(),
            b,
            &f64s(&x),
            &f64s(&h),
            lstm.then(|| f64s(&c)).as_deref(),
        )
        .unwrap();
        for isa in Isa::available() {
            let cell = PackedCell::from_pytorch(&cfg, &w[0].view())
                .unwrap()
                .with_isa(Some(isa))
                .unwrap();
            let (mut h1, mut c1) = (vec![0.0f32; 8], vec![0.0f32; 8]);
            cell.step(
                &mut Workspace::new(),
                b,
                StepInput {
                    x: &x,
                    h: &h,
                    c: lstm.then_some(&c[..]),
                },
                StepOutputMut {
                    h: &mut h1,
                    c: lstm.then_some(&mut c1[..]),
                },
            )
            .unwrap();
            for (g, w) in h1.iter().zip(&want.h).chain(c1.iter().zip(&want.c)) {
                assert_eq!(class(*g as f64), class(*w), "{isa} {cfg:?}: {g} vs {w}");
            }
        }
    }
}

// ---------------------------------------------------------------- fuzz findings

/// Finding (hand-derived while writing the fuzz oracle, confirmed by this test): an
/// LSTM **without** peepholes and an infinite initial cell state. The reference
/// computes the absent peephole as `0 * c` (`p(k, j) = 0` when `peephole` is `None`,
/// reference/src/cell.rs), so `0 * inf = NaN` enters the i and f gates and every
/// output is NaN; the kernels skip the term and give `c' = f*inf + i*g = inf`,
/// `h = o * tanh(inf) = o` (finite), which is also what PyTorch gives. One of the two
/// must change (the reference, most likely: PyTorch has no peephole term at all).
/// Fixed in the reference: an absent peephole adds no term.
#[test]
fn finding_lstm_no_peephole_infinite_c0() {
    let mut c = case(LSTM, Direction::Forward, 1);
    c.c0[0] = f32::INFINITY;
    same_classes(&c, "inf in c0 (LSTM without peephole)");
}
