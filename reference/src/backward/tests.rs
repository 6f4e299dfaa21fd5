//! The tape is the forward: recording a run gives bit-identical states.

use super::tape::record;
use crate::testkit::convert::weights_f64;
use crate::testkit::{problem, to_f64, variants};
use crate::{forward, views, SequenceInput};

#[test]
fn tape_reproduces_the_forward_bit_for_bit() {
    let cells = variants::all(3)
        .into_iter()
        .chain(variants::layer_norm_lstms(3));
    for (k, cell) in cells.enumerate() {
        for seed in 0..4u64 {
            let p = problem(seed * 16 + k as u64, (5, 7, 3, 4), 2, Some(cell));
            let owned: Vec<_> = p.weights.iter().map(|w| weights_f64(&w.view())).collect();
            let w = views(&owned);
            let (x, h0, c0) = (
                to_f64(&p.x),
                p.h0.as_deref().map(to_f64),
                p.c0.as_deref().map(to_f64),
            );
            let att = p.attention.as_deref().map(to_f64);
            let input = SequenceInput {
                x: &x,
                h0: h0.as_deref(),
                c0: c0.as_deref(),
                seq_lens: p.seq_lens.as_deref(),
                attention: att.as_deref(),
            };
            let out = forward(&p.cfg, &w, p.shape, input).unwrap();
            let tapes = record(&p.cfg, &w, p.shape, &input);
            let (yw, ho) = (p.cfg.y_width(), p.cfg.output_size());
            let at = |r: usize, d: usize| r * yw + p.cfg.direction.output_block(d) * ho;
            // A layer's output from its recorded steps (summed directions added in
            // direction order, as the forward adds them).
            let y_of = |dirs: &[Vec<super::tape::RowStep<f64>>], len: usize| {
                let mut y = vec![0.0f64; len];
                for (d, steps) in dirs.iter().enumerate() {
                    for s in steps {
                        let o = at(p.shape.row(s.t, s.b), d);
                        for (a, &v) in y[o..o + ho].iter_mut().zip(&s.h_new) {
                            *a += v;
                        }
                    }
                }
                y
            };
            let last = tapes.last().unwrap();
            assert_eq!(y_of(&last.dirs, out.y.len()), out.y, "{cell:?} seed {seed}");
            // Each layer's recorded input is the previous layer's output.
            for (l, pair) in tapes.windows(2).enumerate() {
                let y = y_of(&pair[0].dirs, pair[1].input.len());
                assert_eq!(pair[1].input, y, "{cell:?} layer {l}");
            }
        }
    }
}

/// `kink_margins().margin` is the distance of the nearest gate argument to a kink: an
/// activation's (ThresholdedRelu's at its alpha, Relu's at 0), the clip's `±c` (where
/// the argument is clipped first), and for an LSTM the output function's at `c'`.
#[test]
fn kink_margin_is_the_distance_to_the_nearest_kink() {
    use crate::{Activation, CellKind, GateActivations, LayerWeights, RnnConfig, SeqShape};
    // One unit, one step, zero states: every gate's argument is `x` itself.
    let margin = |cell: CellKind, f: Activation, h: Activation, clip: Option<f32>, x: f64| {
        let acts = GateActivations {
            f,
            g: Activation::Tanh,
            h,
        };
        let cfg = RnnConfig::new(cell, 1, 1)
            .with_clip(clip)
            .with_activations(Some([acts; 2]));
        let (w_ih, w_hh) = (vec![1.0f64; cfg.gates()], vec![0.0f64; cfg.gates()]);
        let x = [x];
        super::kink_margins(
            &cfg,
            &[LayerWeights::new(&w_ih, &w_hh)],
            SeqShape::new(1, 1),
            &SequenceInput::new(&x),
        )
        .margin
    };
    let (tanh, relu) = (Activation::Tanh, Activation::Relu);
    let thr = Activation::ThresholdedRelu { alpha: 0.5 };
    let rnn = CellKind::RNN_TANH;
    let close = |got: f64, want: f64| (got - want).abs() < 1e-12;
    assert!(close(margin(rnn, thr, tanh, None, 0.3), 0.2));
    assert!(close(margin(rnn, thr, tanh, None, 0.9), 0.4));
    assert_eq!(margin(rnn, tanh, tanh, None, 0.3), f64::INFINITY);
    // The clip's kinks, on either side.
    assert!(close(margin(rnn, tanh, tanh, Some(0.5), 0.3), 0.2));
    assert!(close(margin(rnn, tanh, tanh, Some(0.5), -0.35), 0.15));
    // Relu's kink at 0 after the clip: 0.1 from it, 1.9 from the clip at 2.
    assert!(close(margin(rnn, relu, tanh, Some(2.0), 0.1), 0.1));
    assert!(close(margin(rnn, relu, tanh, Some(2.0), -0.1), 0.1));
    // Past the clip the argument sits at ±c: 1 from the clip, 2 from relu's kink.
    assert!(close(margin(rnn, relu, tanh, Some(2.0), 3.0), 1.0));
    // An LSTM's output function at c' = σ(x) · tanh(x) (c0 = 0): 0.25 is 1.75 from
    // every gate argument (2) but closer to c'.
    let x = 2.0f64;
    let c = x.tanh() / (1.0 + (-x).exp());
    let h_thr = Activation::ThresholdedRelu { alpha: 0.25 };
    let lstm = margin(CellKind::LSTM, Activation::Sigmoid, h_thr, None, x);
    assert!(close(lstm, c - 0.25), "{lstm} against {}", c - 0.25);
}

/// The layer-norm LSTM's kinked argument is the normalised, scaled `u = γ n + b`, not
/// the gate sum `z`: two units with sums (2, 12) normalise to about (−1, 1), so with
/// `γ = 1` and a bias −0.5 every block's `u` is about (−1.5, 0.5), 0.25 from the
/// ThresholdedRelu's kink at −1.25 (the sums are 3.25 and more from it, and `c'` =
/// (0, 0.5 tanh 0.5) 1.25 and more).
#[test]
fn kink_margin_of_the_layer_norm_lstm_is_on_the_normalised_argument() {
    use crate::{Activation, CellKind, GateActivations, LayerWeights, RnnConfig, SeqShape};
    let mut cell = CellKind::LSTM;
    if let CellKind::Lstm(v) = &mut cell {
        v.layer_norm = true;
    }
    let acts = GateActivations {
        f: Activation::ThresholdedRelu { alpha: -1.25 },
        g: Activation::Tanh,
        h: Activation::Tanh,
    };
    let cfg = RnnConfig::new(cell, 1, 2).with_activations(Some([acts; 2]));
    let g = cfg.gates() * 2;
    let w_ih: Vec<f64> = (0..g)
        .map(|r| if r % 2 == 0 { 2.0 } else { 12.0 })
        .collect();
    let (w_hh, gamma) = (vec![0.0f64; g * 2], vec![1.0f64; g]);
    let (b_ih, b_hh) = (vec![-0.25f64; g], vec![-0.25f64; g]);
    let mut w = LayerWeights::new(&w_ih, &w_hh).with_bias(&b_ih, &b_hh);
    w.layer_norm = Some(&gamma);
    let x = [1.0f64];
    let m = super::kink_margins(&cfg, &[w], SeqShape::new(1, 1), &SequenceInput::new(&x)).margin;
    assert!((m - 0.25).abs() < 1e-6, "{m}");
}

/// `kink_margins().clearance` is the distance to the kink in units of the argument's tracked
/// error: 0 on the kink, `inf` for a type that tracks none (`f64`) or an exact
/// argument, and `|pre − kink| / bound` for a rounded one (one relu unit: `pre = w x`,
/// as the tape forms it, `w x` not an `f32`).
#[test]
fn kink_clearance_is_the_distance_over_the_error() {
    use super::tape::{h_part, x_part};
    use crate::testkit::bound::{Bounded, Kernels};
    use crate::{CellKind, LayerWeights, RnnConfig, SeqShape};
    type B = Bounded<Kernels>;
    let cfg = RnnConfig::new(CellKind::RNN_RELU, 1, 1);
    let clearance_f64 = |w: f64, x: f64| {
        let (w_ih, w_hh, x) = ([w], [0.0], [x]);
        let w = [LayerWeights::new(&w_ih[..], &w_hh[..])];
        super::kink_margins(&cfg, &w, SeqShape::new(1, 1), &SequenceInput::new(&x)).clearance
    };
    assert_eq!(clearance_f64(1.0 / 3.0, 0.3), f64::INFINITY);
    assert_eq!(clearance_f64(0.5, 0.0), 0.0);
    let (w, x) = (f64::from(1.0f32 / 3.0), f64::from(0.3f32));
    let (w_ih, w_hh, xs) = ([B::exact(w)], [B::exact(0.0)], [B::exact(x)]);
    let lw = LayerWeights::new(&w_ih[..], &w_hh[..]);
    let shape = SeqShape::new(1, 1);
    let got = super::kink_margins(&cfg, &[lw], shape, &SequenceInput::new(&xs)).clearance;
    let pre = x_part(&lw, 0, &xs) + h_part(&lw, 0, &[B::exact(0.0)]);
    let want = pre.value().abs() / pre.bound();
    assert!(pre.bound() > 0.0 && want.is_finite(), "{pre:?}");
    assert!((got - want).abs() <= 1e-12 * want, "{got} against {want}");
    // Exact products: nothing to fear from rounding.
    let (w_ih, xs) = ([B::exact(0.5)], [B::exact(0.25)]);
    let lw = LayerWeights::new(&w_ih[..], &w_hh[..]);
    let exact = super::kink_margins(&cfg, &[lw], shape, &SequenceInput::new(&xs)).clearance;
    assert_eq!(exact, f64::INFINITY);
}
