//! The sequence and step APIs' arguments, sequence lengths and ISA selection.

use rnn_kernels::{
    Direction, Error, Isa, PackedCell, RnnConfig, SeqShape, SequenceInput, SequenceOutputMut,
    StepInput, StepOutputMut, TensorLayout, Workspace,
};

use rnn_reference::testkit::variants;

use super::{
    assert_invalid, assert_length, assert_overflow, expect, packed, vals, weights, Outs, Want,
    ALL_CELLS, GRU, GRU_ONNX, LSTM, TANH,
};

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
        attention: None,
    };
    assert!(rnn.forward(&mut ws, shape, input, o.out(true)).is_ok());

    let run = |shape: SeqShape, input: SequenceInput<'_, f32>, o: &mut Outs, lstm: bool| {
        rnn.forward(&mut Workspace::new(), shape, input, o.out(lstm))
    };
    let seq_lens = |lens: &'static [usize]| SequenceInput {
        seq_lens: Some(lens),
        ..input
    };
    for (shape, input, arg, want) in [
        (SeqShape::new(0, 2), input, "steps", Want::Invalid),
        (SeqShape::new(5, 0), input, "batch", Want::Invalid),
        (SeqShape::new(usize::MAX, 2), input, "x", Want::Overflow),
        // T*B*I = usize::MAX - 1 fits, T*B*D*H_out does not.
        (SeqShape::new(usize::MAX / 3, 1), input, "y", Want::Overflow),
        (
            shape,
            SequenceInput {
                x: &x[1..],
                ..input
            },
            "x",
            Want::Length(d.x, d.x - 1),
        ),
        (
            shape,
            SequenceInput {
                h0: Some(&h0[1..]),
                ..input
            },
            "h0",
            Want::Length(d.h, d.h - 1),
        ),
        (
            shape,
            SequenceInput {
                c0: Some(&c0[1..]),
                ..input
            },
            "c0",
            Want::Length(d.c, d.c - 1),
        ),
        // Sequence lengths: one per row, each <= T (0 allowed).
        (shape, seq_lens(&[5]), "seq_lens", Want::Length(2, 1)),
        (shape, seq_lens(&[5, 5, 5]), "seq_lens", Want::Length(2, 3)),
        (shape, seq_lens(&[5, 6]), "seq_lens[1]", Want::Invalid),
        (
            shape,
            seq_lens(&[usize::MAX, 0]),
            "seq_lens[0]",
            Want::Invalid,
        ),
    ] {
        expect(run(shape, input, &mut o, true), arg, want);
    }
    // Outputs of the wrong length.
    type Edit = fn(&mut Outs);
    let outputs: [(Edit, &str, Want); 3] = [
        (|o| _ = o.y.pop(), "y", Want::Length(d.y, d.y - 1)),
        (|o| o.h_n.push(0.0), "h_n", Want::Length(d.h, d.h + 1)),
        (|o| o.c_n.clear(), "c_n", Want::Length(d.c, 0)),
    ];
    for (edit, arg, want) in outputs {
        let mut short = Outs::new(&cfg, shape);
        edit(&mut short);
        expect(run(shape, input, &mut short, true), arg, want);
    }
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
        attention: None,
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
            let att = vals(shape.steps * shape.batch, 4);
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
                        attention: cell.has_attention().then_some(&att[..]),
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
                StepInput {
                    x,
                    h,
                    c,
                    attention: None,
                },
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
                attention: None,
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
                attention: None,
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

/// The AUGRU's attention: required (`[T, B]` for a sequence, `[B]` for a step, `T * B`
/// for `dattention`), refused by every other cell; int8 weights take it too.
#[test]
fn attention_errors() {
    let augru = RnnConfig::new(variants::augru(true), 3, 4);
    let gru = RnnConfig::new(GRU, 3, 4);
    let shape = SeqShape::new(5, 2);
    let d = shape.dims(&augru).unwrap();
    let (x, att) = (vals(d.x, 1), vals(5 * 2, 2));
    let input = SequenceInput::new(&x[..]);
    let forward = |cfg: &RnnConfig, input: SequenceInput<'_, f32>| {
        let mut o = Outs::new(cfg, shape);
        packed(cfg).forward(&mut Workspace::new(), shape, input, o.out(false))
    };
    assert!(forward(&augru, input.with_attention(&att)).is_ok());
    expect(forward(&augru, input), "attention", Want::Invalid);
    expect(
        forward(&augru, input.with_attention(&att[1..])),
        "attention",
        Want::Length(10, 9),
    );
    expect(
        forward(&gru, input.with_attention(&att)),
        "attention",
        Want::Invalid,
    );
    // The training forward checks the same, and the backward its `dattention`.
    let mut tws = rnn_kernels::TrainingWorkspace::new();
    let mut o = Outs::new(&augru, shape);
    let rnn = packed(&augru);
    expect(
        rnn.forward_train(&mut tws, shape, input, o.out(false)),
        "attention",
        Want::Invalid,
    );
    rnn.forward_train(&mut tws, shape, input.with_attention(&att), o.out(false))
        .unwrap();
    let dy = vals(d.y, 3);
    let mut sets = weights(&augru);
    for (len, want) in [(9, Want::Length(10, 9)), (10, Want::Invalid)] {
        let mut da = vec![0.0f32; len];
        let mut g: Vec<_> = sets
            .iter_mut()
            .map(rnn_kernels::LayerGradsMut::from_owned)
            .collect();
        let grads = rnn_kernels::GradientsMut {
            dx: None,
            dh0: None,
            dc0: None,
            dattention: Some(&mut da),
            weights: &mut g,
        };
        // A right-length `dattention` is fine for the AUGRU, refused for the GRU.
        if len == 10 {
            let (gr, mut gtws) = (packed(&gru), rnn_kernels::TrainingWorkspace::new());
            let mut go = Outs::new(&gru, shape);
            gr.forward_train(&mut gtws, shape, input, go.out(false))
                .unwrap();
            let r = gr.backward(&mut gtws, rnn_kernels::OutputGrads::new(&dy[..]), grads);
            expect(r, "dattention", want);
        } else {
            let r = rnn.backward(&mut tws, rnn_kernels::OutputGrads::new(&dy[..]), grads);
            expect(r, "dattention", want);
        }
    }
    // The step API: `[B]`.
    let cell = PackedCell::from_pytorch(&augru, &weights(&augru)[0].view()).unwrap();
    let (h, mut h1) = (vals(2 * 4, 4), vec![0.0f32; 2 * 4]);
    let mut step = |a: Option<&[f32]>| {
        let input = StepInput {
            x: &x[..6],
            h: &h,
            c: None,
            attention: a,
        };
        cell.step(
            &mut Workspace::new(),
            2,
            input,
            StepOutputMut {
                h: &mut h1,
                c: None,
            },
        )
    };
    assert!(step(Some(&att[..2])).is_ok());
    expect(step(None), "attention", Want::Invalid);
    expect(step(Some(&att[..3])), "attention", Want::Length(2, 3));
    // int8 weights: the AUGRU packs (the int8 oracle has its attention).
    let w = weights(&augru);
    assert!(rnn_kernels::PackedRnn::<i8>::pack(&augru, &rnn_reference::views(&w)).is_ok());
}
