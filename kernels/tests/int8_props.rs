//! int8 weights through the kernels against the naive int8 oracle
//! (`rnn_reference::quant::forward_quantized`), every variant, every instruction set,
//! every activation scheme, with sequence lengths too (ONNX Runtime's scheme in its
//! order: rows aligned at their first step, `kernels/src/sequence_aligned.rs`).
//!
//! The oracle runs each step on the kernels' own `y` as its recurrent input
//! (`forced_y`), so both quantize bit-identical `h` (and `x`) values to the same codes;
//! the integer sums are exact and scaled with the same two `f32` roundings, so the
//! products agree bit for bit and what is left is the `f32` cell after them. The
//! oracle runs that cell on the test kit's `Bounded` numbers
//! (`forward_quantized_as::<Bounded<Kernels>>`), which carry, element by element, the
//! rigorous bound on an `f32` implementation's error (the same error model as the
//! float paths' tests, `testkit::bound`); to it is added the oracle's `slack`, where a
//! step's *second* operand (a projection's `o ⊙ tanh(c')`, a reset-before GRU's
//! `r ⊙ h`, computed by each side in its own precision) may round to another code or
//! move its block's scale. A bound of 1% of an array's values or more (ill-conditioned)
//! is still compared and counted; the test asserts that few are.
//!
//! Also: packing f32 weights as int8 (`PackedRnn::<i8>::pack`) gives exactly what the
//! reference's symmetric per-channel quantization (`quantize_weights`) imported with
//! `from_quantized` gives.

mod common;

use common::{run_packed, Outputs};
use rnn_kernels::{ActivationQuant, Isa, PackedRnn};
use rnn_reference::quant::{forward_quantized_as, quantize_weights, quantized_views};
use rnn_reference::testkit::bound::{Bounded, Expected, Kernels};
use rnn_reference::testkit::{
    class, compare, compare_outputs_ill, planted, problem, refuse_vacuous, variants, Problem,
};
use rnn_reference::views;
use rnn_reference::{Direction, Real, SequenceOutput};

/// The kernels' outputs on the problem.
fn run(rnn: &PackedRnn<i8>, p: &Problem) -> Outputs {
    run_packed(rnn, p, &p.inputs_as(|v| v)).unwrap()
}

/// `p`'s network from its quantized weights `q` (`from_quantized`), at `isa` with
/// `scheme`.
fn imported(
    p: &Problem,
    q: &[rnn_reference::quant::OwnedQuantizedLayerWeights],
    isa: Isa,
    scheme: ActivationQuant,
) -> PackedRnn<i8> {
    PackedRnn::<i8>::from_quantized(&p.cfg, &quantized_views(q))
        .unwrap()
        .with_isa(Some(isa))
        .unwrap()
        .with_activation_quant(scheme)
}

/// The oracle's values and bounds (the tracked bound plus the slack) on the kernels'
/// own `y`.
fn expected(
    p: &Problem,
    q: &[rnn_reference::quant::QuantizedLayerWeights<'_>],
    scheme: ActivationQuant,
    y: &[f32],
) -> Expected {
    let o =
        forward_quantized_as::<Bounded<Kernels>>(&p.cfg, q, scheme, p.shape, p.input(), Some(y))
            .unwrap();
    let value = |v: &[Bounded<Kernels>]| v.iter().map(|b| b.to_f64()).collect();
    let bound = |v: &[Bounded<Kernels>], slack: Option<&[f64]>| {
        v.iter()
            .enumerate()
            .map(|(k, b)| b.bound() + slack.map_or(0.0, |s| s[k]))
            .collect()
    };
    Expected {
        want: SequenceOutput {
            y: value(&o.y),
            h_n: value(&o.h_n),
            c_n: value(&o.c_n),
        },
        bound: SequenceOutput {
            y: bound(&o.y, Some(&o.y_slack)),
            h_n: bound(&o.h_n, Some(&o.h_n_slack)),
            c_n: bound(&o.c_n, None),
        },
    }
}

/// Checks one problem at every ISA and scheme (see [`check_one`]). The oracle follows
/// the kernels' `y` as each direction's `h`, which summed directions do not give: such
/// a problem is checked with its directions concatenated, and its sum bit for bit
/// against the concatenated run's two halves added in `f32` (their states are the
/// same computation).
fn check(p: &Problem, used: &mut f64) -> (usize, usize) {
    if p.cfg.direction != Direction::BidirectionalSum {
        return check_one(p, used);
    }
    let mut cat = p.clone();
    cat.cfg.direction = Direction::Bidirectional;
    let ho = p.cfg.output_size();
    for scheme in ActivationQuant::ALL {
        for isa in Isa::available() {
            let rnn = |q: &Problem| {
                PackedRnn::<i8>::pack(&q.cfg, &views(&q.weights))
                    .unwrap()
                    .with_isa(Some(isa))
                    .unwrap()
                    .with_activation_quant(scheme)
            };
            let (s, c) = (run(&rnn(p), p), run(&rnn(&cat), &cat));
            let added: Vec<f32> =
                c.0.chunks_exact(2 * ho)
                    .flat_map(|r| (0..ho).map(move |j| r[j] + r[ho + j]))
                    .collect();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&s.0), bits(&added), "{isa} {scheme:?}: summed y");
            assert_eq!(bits(&s.1), bits(&c.1), "{isa} {scheme:?}: h_n");
            assert_eq!(bits(&s.2), bits(&c.2), "{isa} {scheme:?}: c_n");
        }
    }
    check_one(&cat, used)
}

/// Checks one problem at every ISA and scheme; returns how many output arrays had an
/// ill-conditioned (1% or more) bound, and how many were compared; raises `used` to
/// the largest fraction of its bound an error used.
fn check_one(p: &Problem, used: &mut f64) -> (usize, usize) {
    let q = quantize_weights(&p.cfg, &views(&p.weights)).unwrap();
    let (mut ill, mut arrays) = (0, 0);
    for scheme in ActivationQuant::ALL {
        for isa in Isa::available() {
            let rnn = imported(p, &q, isa, scheme);
            let got = run(&rnn, p);
            let packed = PackedRnn::<i8>::pack(&p.cfg, &views(&p.weights))
                .unwrap()
                .with_isa(Some(isa))
                .unwrap()
                .with_activation_quant(scheme);
            let bits = |o: &Outputs| -> Vec<u32> {
                o.0.iter()
                    .chain(&o.1)
                    .chain(&o.2)
                    .map(|v| v.to_bits())
                    .collect()
            };
            assert_eq!(
                bits(&run(&packed, p)),
                bits(&got),
                "pack vs from_quantized {isa}"
            );
            let e = expected(p, &quantized_views(&q), scheme, &got.0);
            let ctx = format!("{isa} {scheme:?} {:?} {:?}", p.cfg, p.shape);
            let c_n: &[f32] = if p.cfg.cell.has_cell_state() {
                &got.2
            } else {
                &[]
            };
            ill += compare_outputs_ill(&ctx, (&got.0, &got.1, c_n), &e, true)
                .unwrap_or_else(|e| panic!("{e}"));
            // The check bites: a result off by 2% of the largest output fails it.
            let k = got.0.len() / 2;
            if refuse_vacuous("y", &e.want.y, &e.bound.y).is_ok() {
                let wrong = planted(&got.0, &e.want.y, k);
                assert!(
                    compare("y", &wrong, &e.want.y, &e.bound.y).is_err(),
                    "{ctx}: planted"
                );
            }
            for (g, w, b) in [
                (&got.0, &e.want.y, &e.bound.y),
                (&got.1, &e.want.h_n, &e.bound.h_n),
            ] {
                for ((&g, &w), &b) in g.iter().zip(w).zip(b) {
                    if b > 0.0 {
                        *used = used.max((f64::from(g) - w).abs() / b);
                    }
                }
            }
            arrays += 2 + usize::from(p.cfg.cell.has_cell_state());
        }
    }
    (ill, arrays)
}

#[test]
fn int8_kernels_match_the_oracle_every_variant_isa_and_scheme() {
    let (mut ill, mut arrays, mut used) = (0, 0, 0.0f64);
    for (n, cell) in variants::all_with_layer_norm(5)
        .into_iter()
        .filter(|&c| variants::int8_capable(c))
        .enumerate()
    {
        // The last: 17 rows of 64-deep products, so on a CPU with AMX both the input
        // projection and the recurrent steps run a 16-row block on its tiles and one
        // row on `vpdpbusd` (as (64, 20, 7, 3) does for the projection's 21 rows).
        for (k, dims) in [
            (3, 7, 1, 4),
            (17, 33, 3, 5),
            (64, 20, 7, 3),
            (64, 64, 17, 3),
        ]
        .into_iter()
        .enumerate()
        {
            let p = problem(1000 + (n * 3 + k) as u64, dims, 1, Some(cell));
            let (i, a) = check(&p, &mut used);
            ill += i;
            arrays += a;
        }
    }
    // Summed directions at least once per variant (the draw gives them 1 time in 9).
    for (n, cell) in variants::all_with_layer_norm(5)
        .into_iter()
        .filter(|&c| variants::int8_capable(c))
        .enumerate()
    {
        let mut p = (0..)
            .map(|s| problem(5000 + 50 * n as u64 + s, (9, 21, 3, 4), 1, Some(cell)))
            .find(|p| p.cfg.num_directions() == 2)
            .unwrap();
        p.cfg.direction = Direction::BidirectionalSum;
        let (i, a) = check(&p, &mut used);
        ill += i;
        arrays += a;
    }
    println!("{ill} of {arrays} output arrays with a bound of 1% of their values or more; largest error / bound {used:.3e}");
    assert!(
        ill * 20 <= arrays,
        "{ill} of {arrays} arrays ill-conditioned"
    );
}

/// A NaN or an infinity in `x` (in a vector's body and in its tail) reaches exactly the
/// outputs the oracle says, at every ISA and scheme: the codes of its row (per-row
/// schemes) or of every row (ONNX Runtime's one range over the input) get a NaN scale,
/// and every product of theirs is NaN. An infinity taken for a finite value would give
/// an infinite scale instead, and infinite sums (hence finite gates) where the oracle
/// has NaN.
#[test]
fn nan_and_inf_in_x_propagate_like_the_oracle() {
    let cells = variants::all_with_layer_norm(5)
        .into_iter()
        .filter(|&c| variants::int8_capable(c));
    let (mut runs, mut with_nan) = (0, 0);
    for (n, cell) in cells.enumerate() {
        let mut p = problem(3000 + n as u64, (20, 9, 3, 4), 1, Some(cell));
        if p.cfg.direction == Direction::BidirectionalSum {
            p.cfg.direction = Direction::Bidirectional; // the oracle follows each direction
        }
        let q = quantize_weights(&p.cfg, &views(&p.weights)).unwrap();
        // Rows of x hold I = 20 values: 16 in a vector, 4 in the tail.
        for (at, bad) in [(3, f32::NAN), (38, f32::INFINITY), (47, f32::NEG_INFINITY)] {
            let mut bad_p = p.clone();
            bad_p.x[at] = bad;
            for scheme in ActivationQuant::ALL {
                for isa in Isa::available() {
                    let got = run(&imported(&p, &q, isa, scheme), &bad_p);
                    let o = forward_quantized_as::<f64>(
                        &p.cfg,
                        &quantized_views(&q),
                        scheme,
                        bad_p.shape,
                        bad_p.input(),
                        Some(&got.0),
                    )
                    .unwrap();
                    let ctx = format!("x[{at}] = {bad}, {isa} {scheme:?} {:?}", p.cfg);
                    for (name, g, w) in [("y", &got.0, &o.y), ("h_n", &got.1, &o.h_n)] {
                        for (k, (&g, &w)) in g.iter().zip(w).enumerate() {
                            assert_eq!(
                                class(f64::from(g)),
                                class(w),
                                "{ctx}: {name}[{k}] {g} vs {w}"
                            );
                        }
                    }
                    runs += 1;
                    with_nan += usize::from(got.0.iter().any(|v| v.is_nan()));
                }
            }
        }
    }
    // The check bites: nearly every run carries the NaN into y (736 of 792; ReLU-like
    // functions may map a NaN argument to 0, as the oracle's do).
    assert!(
        with_nan * 10 >= runs * 9,
        "{with_nan} of {runs} runs with NaN in y"
    );
}
