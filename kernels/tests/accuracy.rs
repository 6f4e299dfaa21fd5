//! The activations' accuracy, visible end to end: networks built so that every
//! pre-activation is exact in f32 (dyadic weights and inputs, zero recurrent weights),
//! so the only error left in an output is the activation's own, and the bound computed
//! alongside the reference is the activation's documented accuracy
//! (`rnn_reference::testkit::bound::model::kernel_activations`: tanh 1.5 ulp, sigmoid
//! 2.5 ulp, both at most 1.2e-7). Tens of thousands of pre-activations per cell and ISA
//! go through `PackedRnn::forward`, so a regression of an ulp or two in `simd::math`
//! (or in one ISA's vector ops) fails here, not only in the math unit tests.
//!
//! Then long sequences: random contracting problems of 300 steps, every variant,
//! against the same bound, which must hold however far the errors travel.

mod common;

use common::run_kernels;
use rnn_kernels::Isa;
use rnn_reference::testkit::{compare_outputs, problem, variants, Problem};
use rnn_reference::{CellKind, OwnedLayerWeights, RnnConfig, SeqShape};

/// Hidden units: two 16-lane tiles.
const H: usize = 32;

/// Unit `j`'s input weight: `1 + j/64` (7 significant bits).
fn unit_weight(j: usize) -> f32 {
    1.0 + j as f32 / 64.0
}

/// `n` inputs spread evenly over `[-span, span)` on the grid `1/steps` (`steps` a
/// power of two; at most 17 significant bits for `span * steps <= 2^16`): every
/// product with a [`unit_weight`] is exact.
fn grid_inputs(n: usize, span: f32, steps: f32) -> Vec<f32> {
    assert!(span * steps <= 65536.0);
    (0..n)
        .map(|k| ((k as f32 / n as f32 * 2.0 - 1.0) * span * steps).round() / steps)
        .collect()
}

/// A problem of one layer with input size 1 whose gate rows `live` (of `gates`) have
/// the unit weights and every other weight is zero; no biases.
fn exact_problem(cell: CellKind, live: &[usize], shape: SeqShape, x: Vec<f32>) -> Problem {
    let cfg = RnnConfig::new(cell, 1, H);
    let mut w_ih = vec![0.0f32; cfg.gates() * H];
    for &g in live {
        for j in 0..H {
            w_ih[g * H + j] = unit_weight(j);
        }
    }
    Problem {
        cfg,
        shape,
        weights: vec![OwnedLayerWeights {
            w_ih,
            w_hh: vec![0.0; cfg.gates() * H * H],
            b_ih: None,
            b_hh: None,
            w_hr: None,
            peephole: None,
            layer_norm: None,
        }],
        x,
        h0: None,
        c0: None,
        seq_lens: None,
        attention: None,
        x_scale: 16.0,
        gain: 0.0,
    }
}

fn check_every_isa(p: &Problem) {
    let expected = p.expected();
    // The bound is the activation's accuracy alone (the test's premise).
    assert!(expected.bound.y.iter().all(|&b| b <= 1.2e-7 + 1e-14));
    for isa in Isa::available() {
        let (y, h_n, c_n) = run_kernels(p, isa);
        let ctx = format!("{isa} {:?}", p.cfg.cell);
        compare_outputs(&ctx, (&y, &h_n, &c_n), &expected).unwrap();
    }
}

/// `y = tanh(w_j x)` (an Elman RNN with zero recurrent weights) for 2560 inputs in
/// `[-10, 10)` and 12288 in `[-1.5, 1.5)` (where tanh's error peaks), times 32 weights
/// in `[1, 1.5)`.
#[test]
fn tanh_through_the_rnn_cell() {
    for (t, b, span, steps) in [(40, 64, 10.0, 32.0), (96, 128, 1.5, 4096.0)] {
        let x = grid_inputs(t * b, span, steps);
        let p = exact_problem(variants::RNN_TANH, &[0], SeqShape::new(t, b), x);
        check_every_isa(&p);
    }
}

/// `y = z = sigmoid(w_j x)` through both GRU forms: `n = tanh(0) = 0` exactly and
/// `h0 = 1`, so `h' = n + z (h − n) = z`; 1024 inputs in `[-16, 16)` times 32 weights.
#[test]
fn sigmoid_through_both_gru_forms() {
    let b = 1024;
    for cell in [variants::GRU, variants::GRU_ONNX] {
        let x = grid_inputs(b, 16.0, 64.0);
        let mut p = exact_problem(cell, &[1], SeqShape::new(1, b), x);
        p.h0 = Some(vec![1.0; b * H]);
        check_every_isa(&p);
    }
}

/// 300 steps of every variant (contracting problems, two layers, both directions):
/// the bound holds however far errors travel. The standard functions: with ONNX
/// activations (an unbounded candidate, a hard sigmoid that saturates to exactly 1)
/// the state can grow step after step, and no bound stays finite over 300 steps.
#[test]
fn long_sequences_stay_within_the_bound() {
    for (k, cell) in variants::all(5).into_iter().enumerate() {
        let p = (1000 * k as u64..)
            .map(|seed| problem(seed, (7, 11, 2, 300), 2, Some(cell)))
            .find(|p| p.gain < 1.0 && p.cfg.activations.is_none())
            .unwrap();
        let expected = p.expected();
        for isa in Isa::available() {
            let (y, h_n, c_n) = run_kernels(&p, isa);
            let ctx = format!("{isa} {:?} {:?}", p.cfg, p.shape);
            compare_outputs(&ctx, (&y, &h_n, &c_n), &expected).unwrap();
        }
    }
}
