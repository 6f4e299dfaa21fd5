//! Half precision (f16 and bf16 weights, inputs and outputs) at every instruction set,
//! 1 to 4 layers, against the f64 reference run on the same half-rounded weight
//! matrices and inputs (biases and peepholes stay `f32` when packed, as the kernels
//! keep them).
//!
//! Bound: the f32 bound computed alongside the reference (`Problem::expected`: all
//! arithmetic is f32; the half values widen exactly) plus one rounding of each output
//! to the half type when the outputs are half: half an ulp of the computed value, i.e.
//! `2^-11` relative for f16 (plus half the smallest f16 subnormal, `2^-25`, below the
//! normal range) and `2^-8` for bf16 (plus `2^-134`).

mod common;

use common::run_typed as run;
use proptest::prelude::*;
use rnn_kernels::half::{bf16, f16};
use rnn_kernels::{
    Element, Isa, PackedCell, PackedRnn, SequenceInput, SequenceOutputMut, StepInput,
    StepOutputMut, Workspace,
};
use rnn_reference::testkit::bound::{BF16_ROUNDING, F16_ROUNDING};
use rnn_reference::testkit::golden::{golden_dir, load_all};
use rnn_reference::testkit::{
    compare_outputs, compare_outputs_ill, planted, problem, proptest_cases, variants, Problem,
};

fn round<T: Element>(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| T::from_f32(x).to_f32()).collect()
}

/// The problem with every value rounded to `H` (what a caller holding half values
/// has).
fn rounded<H: Element>(p: &Problem) -> Problem {
    p.map_values(round::<H>)
}

/// What the kernels compute on: the weight matrices rounded to the storage type `W`
/// (biases and peepholes are kept in f32), the inputs to the I/O type `T`.
fn as_computed<W: Element, T: Element>(p: &Problem) -> Problem {
    let mut q = p.clone();
    for w in &mut q.weights {
        for m in [Some(&mut w.w_ih), Some(&mut w.w_hh), w.w_hr.as_mut()]
            .into_iter()
            .flatten()
        {
            *m = round::<W>(m);
        }
    }
    q.x = round::<T>(&q.x);
    q.h0 = q.h0.as_deref().map(round::<T>);
    q.c0 = q.c0.as_deref().map(round::<T>);
    q.attention = q.attention.as_deref().map(round::<T>);
    q
}

/// One rounding to element type `T` (none for f32).
fn output_rounding<T: Element>() -> (f64, f64) {
    match T::NAME {
        "f16" => F16_ROUNDING,
        "bf16" => BF16_ROUNDING,
        _ => (0.0, 0.0),
    }
}

fn check<W: Element, T: Element>(p: &Problem) -> Result<(), String> {
    let q = as_computed::<W, T>(p);
    let expected = q.expected().rounded_outputs(output_rounding::<T>());
    for isa in Isa::available() {
        let (y, h_n, c_n) = run::<W, T>(&q, isa);
        let ctx = format!(
            "W={} T={} {isa} {:?} {:?} gain {}",
            W::NAME,
            T::NAME,
            q.cfg,
            q.shape,
            q.gain
        );
        // An ill-conditioned array (bound >= 1% of its largest value: a recurrence
        // that amplifies errors, dot products that cancel into tiny outputs) is still
        // compared, within its rigorous bound; proptest meets one in ~50..300 problems
        // (4 layers mostly), and `bound_quality.rs` asserts there is none in its 600.
        compare_outputs_ill(&ctx, (&y, &h_n, &c_n), &expected, true)?;
    }
    Ok(())
}

/// The weight and I/O type combinations with a half type in it, by number.
const COMBOS: usize = 6;

/// Combination `k` (of [`COMBOS`]): (weights, inputs and outputs).
fn check_combo(k: usize, p: &Problem) -> Result<(), String> {
    match k {
        0 => check::<f16, f32>(p),
        1 => check::<bf16, f32>(p),
        2 => check::<f16, f16>(p),
        3 => check::<bf16, bf16>(p),
        4 => check::<f32, f16>(p),
        _ => check::<bf16, f16>(p),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: proptest_cases(1000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn half_weights_and_io_match_reference(
        seed in any::<u64>(),
        i in 1usize..=70,
        h in 1usize..=70,
        b in 1usize..=9,
        t in 1usize..=5,
        layers in 1usize..=4,
        combo in 0..COMBOS,
    ) {
        let p = problem(seed, (i, h, b, t), layers, None);
        check_combo(combo, &p).map_err(TestCaseError::fail)?;
    }
}

/// A case proptest once found (formerly `half.proptest-regressions`, whose saved
/// proptest seed stops naming it when the strategy changes), pinned by problem seed.
#[test]
fn pinned_cases() {
    let p = problem(4027141324443650759, (2, 9, 1, 1), 1, None);
    for k in 0..COMBOS {
        check_combo(k, &p).unwrap();
    }
}

/// The golden cases with weights and inputs rounded to each half type first, against
/// the f64 reference on those rounded values.
#[test]
fn golden_cases_in_half_precision() {
    let cases = load_all(&golden_dir());
    for case in &cases {
        let p = case.problem_f32();
        for r in [
            check::<f16, f16>(&p),
            check::<bf16, bf16>(&p),
            check::<f16, f32>(&p),
        ] {
            if let Err(e) = r {
                panic!("{}: {e}", case.name);
            }
        }
    }
}

/// Values beyond the f16 range: f32 weights over 65504 pack to inf, and the result is
/// what the reference gives on inf weights (NaN or saturated values, never a panic);
/// f32 outputs past the range round to inf when written as f16.
#[test]
fn beyond_f16_range() {
    let mut p = problem(7, (5, 9, 2, 3), 1, None);
    p.weights[0].w_ih[0] = 1.0e5;
    p.weights[0].w_ih[1] = -7.0e4;
    let q = rounded::<f16>(&p);
    assert!(q.weights[0].w_ih[0].is_infinite() && q.weights[0].w_ih[1] == f32::NEG_INFINITY);
    let want = q.reference();
    for isa in Isa::available() {
        let (y, _, _) = run::<f16, f32>(&q, isa);
        for (g, w) in y.iter().zip(&want.y) {
            assert_eq!(g.is_nan(), w.is_nan(), "{isa}: {g} vs {w}");
        }
    }
    assert_eq!(f16::from_f32(1.0e5).to_f32(), f32::INFINITY);
    assert_eq!(bf16::from_f32(1.0e5).to_f32(), 99840.0);
}

/// bf16 inputs and weights with long rows: on AVX512-BF16 the first layer's `vdpbf16ps`
/// product takes its rows in several L2-sized chunks (about 196 K bf16 per chunk), and
/// a large odd `I` has a lone last row; every path must still meet the bound.
#[test]
fn bf16_long_input_rows() {
    for (seed, i) in [(1u64, 1001usize), (2, 1536)] {
        let mut p = problem(seed, (i, 24, 3, 150), 1, None);
        p.seq_lens = None;
        check::<bf16, bf16>(&p).unwrap();
    }
}

/// bf16 inputs holding NaN, ±inf and subnormals: NaN and inf spread exactly as in the
/// reference at every path (the `vdpbf16ps` product included); subnormal inputs, which
/// that product reads as zero, change results by far less than the bound.
#[test]
fn bf16_input_specials() {
    for seed in 0..8u64 {
        let mut p = problem(seed, (33, 20, 2, 4), 1, None);
        let n = p.x.len();
        let tiny = f32::from_bits(0x0001_0000); // a bf16 subnormal (2^-133)
        for (k, v) in p.x.iter_mut().enumerate() {
            if k % 7 == 3 {
                *v = tiny * if k % 2 == 0 { 1.0 } else { -5.0 };
            }
        }
        p.x[n / 3] = f32::NAN;
        p.x[n / 2] = f32::INFINITY;
        p.x[2 * n / 3 + 1] = f32::NEG_INFINITY;
        check::<bf16, bf16>(&p).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

/// Infinite inputs meeting subnormal bf16 weights (and subnormal inputs meeting
/// infinite weights): IEEE gives ±inf, so the gates saturate and the outputs stay
/// finite. `vdpbf16ps` would read the subnormal as 0 and make NaN, so the AVX512-BF16
/// path must not use it for such weights (found by the `step_vs_reference` fuzzer).
#[test]
fn bf16_subnormal_weights_meet_infinite_inputs() {
    let lstm = variants::LSTM;
    let tiny = f32::from_bits(0x0001_0000); // a bf16 subnormal
    for seed in 0..6u64 {
        let mut p = problem(seed, (6, 37, 4, 2), 1, Some(lstm));
        p.seq_lens = None;
        let i = p.cfg.input_size;
        for w in &mut p.weights {
            w.w_ih[0] = tiny; // unit 0 of gate i, input 0
            w.w_ih[1] = if seed % 2 == 0 { f32::INFINITY } else { 1.0 };
        }
        p.x[0] = f32::INFINITY; // meets the subnormal weight
        p.x[i + 1] = tiny; // meets the infinite weight (even seeds)
        check::<bf16, bf16>(&p).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

/// A first layer whose products are all subnormal (`x` the smallest normal bf16,
/// weights below 1, no biases, `h0 = 0`): the exact outputs are tiny, `vdpbf16ps`
/// flushes them to zero. An infinite weight the tiny values then meet (the next
/// layer's `W_ih`, or the projection `W_hr` of the same layer) gives ±inf exactly
/// and NaN after the flush, so the AVX512-BF16 path must not use the product for such
/// networks (found by the `step_vs_reference` fuzzer: a 3-layer `input_forget` LSTM).
#[test]
fn bf16_flushed_products_meet_later_infinite_weights() {
    let tiny_normal = f32::from_bits(0x0080_0000); // 2^-126, the smallest normal bf16
    for (seed, proj) in [(0u64, false), (1, false), (2, true), (3, true)] {
        let cell = variants::lstm(false, proj.then_some(3));
        let mut p = problem(seed, (3, 5, 2, 2), if proj { 1 } else { 2 }, Some(cell));
        p.cfg.direction = rnn_reference::Direction::Forward;
        p.weights.truncate(p.cfg.num_layers);
        p.seq_lens = None;
        (p.cfg.activations, p.cfg.clip) = (None, None);
        p.h0 = None;
        p.c0 = None;
        p.x.iter_mut().for_each(|v| *v = tiny_normal);
        let w0 = &mut p.weights[0];
        w0.b_ih = None;
        w0.b_hh = None;
        w0.peephole = None;
        w0.w_ih.iter_mut().for_each(|w| *w = w.clamp(-0.9, 0.9));
        w0.w_hh.iter_mut().for_each(|w| *w = w.clamp(-0.9, 0.9));
        if proj {
            w0.w_hr.as_mut().unwrap()[0] = f32::INFINITY;
        } else {
            p.weights[1].w_ih[0] = f32::NEG_INFINITY;
        }
        check::<bf16, bf16>(&p).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

/// The single-step API with half weights and half inputs/outputs.
#[test]
fn half_step_matches_sequence_of_one_step() {
    for seed in 0..24u64 {
        let mut p = problem(seed, (13, 37, 3, 1), 1, None);
        p.cfg.direction = rnn_reference::Direction::Forward;
        p.weights.truncate(1);
        p.seq_lens = None;
        let d1 = p.shape.dims(&p.cfg).unwrap();
        p.h0 = p.h0.map(|v| v[..d1.h].to_vec());
        p.c0 = p.c0.map(|v| v[..d1.c].to_vec());
        let q = rounded::<bf16>(&p);
        let lstm = q.cfg.cell.has_cell_state();
        let d = q.shape.dims(&q.cfg).unwrap();
        let h0 = q.h0.clone().unwrap_or(vec![0.0; d.h]);
        let c0 = q.c0.clone().unwrap_or(vec![0.0; d.c]);
        let (y, _, c_n) = run::<bf16, bf16>(
            &Problem {
                h0: Some(h0.clone()),
                c0: lstm.then(|| c0.clone()),
                ..rounded::<bf16>(&q)
            },
            Isa::best(),
        );
        let cell = PackedCell::<bf16>::pack(&q.cfg, &q.weights[0].view()).unwrap();
        let to = |v: &[f32]| v.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>();
        let (x16, h16, c16) = (to(&q.x), to(&h0), to(&c0));
        // One step: the attention is [1, B].
        let a16 = q.attention.as_deref().map(to);
        let mut h1 = vec![bf16::ZERO; d.h];
        let mut c1 = vec![bf16::ZERO; d.c];
        cell.step(
            &mut Workspace::new(),
            q.shape.batch,
            StepInput {
                x: &x16,
                h: &h16,
                c: lstm.then_some(&c16[..]),
                attention: a16.as_deref(),
            },
            StepOutputMut {
                h: &mut h1,
                c: lstm.then_some(&mut c1[..]),
            },
        )
        .unwrap();
        let h1: Vec<f32> = h1.iter().map(|v| v.to_f32()).collect();
        // Same kernels, same rounding points: identical bits (y of a one-step,
        // one-direction sequence is h_1).
        assert_eq!(h1, y, "seed {seed} {:?}", q.cfg);
        if lstm {
            let c1: Vec<f32> = c1.iter().map(|v| v.to_f32()).collect();
            assert_eq!(c1, c_n, "seed {seed}");
        }
    }
}

/// An LSTM cell state that grows past the f16 range: 65504 (f16 max) plus one per step
/// with saturated gates. In f32 outputs it is exact; written as f16 it becomes +inf.
#[test]
fn f16_outputs_beyond_the_range_become_inf() {
    let (i, h, t) = (2usize, 3usize, 20usize);
    let cfg = rnn_reference::RnnConfig::new(variants::LSTM, i, h);
    let (w_ih, w_hh) = (vec![0.0f32; 4 * h * i], vec![0.0f32; 4 * h * h]);
    let bias = vec![50.0f32; 4 * h]; // i = f = o = 1, g = tanh(50) = 1
    let sets = [rnn_reference::LayerWeights::new(&w_ih, &w_hh).with_bias(&bias, &bias)];
    for isa in Isa::available() {
        let rnn = PackedRnn::<f16>::pack(&cfg, &sets)
            .unwrap()
            .with_isa(Some(isa))
            .unwrap();
        let shape = rnn_reference::SeqShape::new(t, 1);
        let x = vec![f16::ZERO; t * i];
        let c0 = vec![f16::MAX; h];
        let mut y = vec![f16::ZERO; t * h];
        let mut c_n = vec![f16::ZERO; h];
        rnn.forward(
            &mut Workspace::new(),
            shape,
            SequenceInput {
                x: &x,
                h0: None,
                c0: Some(&c0),
                seq_lens: None,
                attention: None,
            },
            SequenceOutputMut {
                y: &mut y,
                h_n: None,
                c_n: Some(&mut c_n),
            },
        )
        .unwrap();
        assert!(
            c_n.iter().all(|c| c.to_f32() == f32::INFINITY),
            "{isa}: {c_n:?}"
        );
        assert!(
            y.iter().all(|v| v.to_f32() == 1.0),
            "{isa}: h = o * tanh(c) = 1"
        );
        let (mut y32, mut c32) = (vec![0.0f32; t * h], vec![0.0f32; h]);
        let x32 = vec![0.0f32; t * i];
        let c0_32 = vec![65504.0f32; h];
        rnn.forward(
            &mut Workspace::new(),
            shape,
            SequenceInput {
                x: &x32,
                h0: None,
                c0: Some(&c0_32),
                seq_lens: None,
                attention: None,
            },
            SequenceOutputMut {
                y: &mut y32,
                h_n: None,
                c_n: Some(&mut c32),
            },
        )
        .unwrap();
        assert!(
            c32.iter().all(|&c| c == 65504.0 + t as f32),
            "{isa}: {c32:?}"
        );
    }
}

/// No half check can pass vacuously: the outputs of half weights and half I/O pass
/// `check`'s comparison, and with one element of `y` moved by 2% of its largest value
/// they fail it (the bound, output rounding included, is refused at 1% or more).
#[test]
fn planted_errors_are_caught() {
    fn run_planted<W: Element, T: Element>() {
        for (k, cell) in variants::all(9).into_iter().enumerate() {
            let p = problem(700 + k as u64, (9, 20, 3, 4), 1 + k % 4, Some(cell));
            let q = as_computed::<W, T>(&p);
            let e = q.expected().rounded_outputs(output_rounding::<T>());
            let (y, h_n, c_n) = run::<W, T>(&q, Isa::best());
            let ctx = format!("W={} T={} {cell:?}", W::NAME, T::NAME);
            compare_outputs(&ctx, (&y, &h_n, &c_n), &e).unwrap();
            for at in [0, y.len() / 2, y.len() - 1] {
                let bad = planted(&y, &e.want.y, at);
                let r = compare_outputs(&ctx, (&bad, &h_n, &c_n), &e);
                assert!(r.is_err(), "{ctx}: planted error in y[{at}] passed");
            }
        }
    }
    run_planted::<f16, f16>();
    run_planted::<bf16, bf16>();
    run_planted::<bf16, f32>();
}
