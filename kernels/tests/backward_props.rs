//! Property tests of the backward: every instruction set this CPU has, both
//! [`Activations`] modes, every variant, both layouts, with and without sequence
//! lengths, against the f64 reference backward, with the bound of
//! `rnn_reference::testkit::grad_tolerance` (derivation there). Sizes cross the
//! 16-unit tiles and 64-unit panels.

mod common;

use common::train::{try_train, Trained, Upstream};
use proptest::prelude::*;
use rnn_kernels::half;
use rnn_kernels::{Activations, Element, Isa, TrainingWorkspace};
use rnn_reference::testkit::golden::named_parts;
use rnn_reference::testkit::oracle::kink_margin_f64;
use rnn_reference::testkit::{
    compare, grad_tolerance, maxima, problem, variants, GradTolerance, Problem, SplitMix64,
};
use rnn_reference::{views, Gradients, OutputGrads};

/// Scales every column of `w` (`[rows, k]`) to an absolute sum of at most `limit`.
fn limit_cols(w: &mut [f32], k: usize, limit: f32) {
    for c in 0..k {
        let s: f32 = w.chunks(k).map(|r| r[c].abs()).sum();
        if s > limit {
            w.chunks_mut(k).for_each(|r| r[c] *= limit / s);
        }
    }
}

/// A problem for the backward: the forward tests' problem with inputs in ±1 and the
/// columns of `W_hh` and `W_ih` also scaled to absolute sums ≤ 0.9 and ≤ 1 / D (the
/// bound's assumptions: the transposed products contract), and upstream gradients in
/// ±1.
fn backward_problem(
    seed: u64,
    dims: (usize, usize, usize, usize),
    layers: usize,
    cell: Option<rnn_kernels::CellKind>,
) -> (Problem, Upstream) {
    let mut p = problem(seed, dims, layers, cell);
    let (ho, nd) = (p.cfg.output_size(), p.cfg.num_directions());
    for (k, w) in p.weights.iter_mut().enumerate() {
        limit_cols(&mut w.w_hh, ho, 0.9);
        let il = p.cfg.layer_input_size(k / nd);
        limit_cols(&mut w.w_ih, il, 1.0 / nd as f32);
    }
    let s = p.x_scale;
    p.x.iter_mut().for_each(|v| *v /= s);
    p.x_scale = 1.0;
    let d = p.shape.dims(&p.cfg).unwrap();
    let mut rng = SplitMix64::new(seed ^ 0xD1CE);
    let lstm = p.cfg.cell.has_cell_state();
    let up = Upstream {
        dy: rng.vec(d.y, 1.0),
        dh_n: rng.coin().then(|| rng.vec(d.h, 1.0)),
        dc_n: (lstm && rng.coin()).then(|| rng.vec(d.c, 1.0)),
    };
    (p, up)
}

/// The reference backward of `p` and the bound, or `None` if a kink argument lies
/// within the forward's error of its kink (the derivative there depends on the last
/// bit of the pre-activation).
fn reference(p: &Problem, up: &Upstream) -> Option<(Gradients<f64>, GradTolerance)> {
    let e_z = 4.4 * p.tolerance().0;
    if kink_margin_f64(&p.cfg, &views(&p.weights), p.shape, p.input()) <= 2.0 * e_z {
        return None;
    }
    let (g, m) = maxima(
        p,
        OutputGrads {
            dy: &up.dy,
            dh_n: up.dh_n.as_deref(),
            dc_n: up.dc_n.as_deref(),
        },
    );
    Some((g, grad_tolerance(p, &m)))
}

/// Every gradient of `got` against `want` with its bound.
fn compare_grads(got: &Trained, want: &Gradients<f64>, tol: &GradTolerance) -> Result<(), String> {
    let r = tol.rtol;
    compare("dx", &got.dx, &want.dx, (tol.dx, r))?;
    compare("dh0", &got.dh0, &want.dh0, (tol.dh0, r))?;
    compare("dc0", &got.dc0, &want.dc0, (tol.dc0, r))?;
    for (k, (g, w)) in got.weights.iter().zip(&want.weights).enumerate() {
        for ((n, g), (_, w)) in named_parts(g).into_iter().zip(named_parts(w)) {
            compare(&format!("d{n}[{k}]"), g, w, tol.for_part(n))?;
        }
    }
    Ok(())
}

fn check(p: &Problem, up: &Upstream) -> Result<(), String> {
    let Some((want, tol)) = reference(p, up) else {
        return Ok(());
    };
    let mut tws = TrainingWorkspace::new();
    for isa in Isa::available() {
        for mode in [Activations::Keep, Activations::Recompute] {
            let got = try_train::<f32, f32>(p, up, isa, mode, &mut tws)?;
            compare_grads(&got, &want, &tol).map_err(|e| {
                format!(
                    "{isa} {mode:?} {:?} {:?} lens {:?}: {e}",
                    p.cfg, p.shape, p.seq_lens
                )
            })?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn backward_matches_reference(
        seed in any::<u64>(),
        i in 1usize..=40,
        h in 1usize..=70,
        b in 1usize..=5,
        t in 1usize..=4,
        layers in 1usize..=2,
    ) {
        let (p, up) = backward_problem(seed, (i, h, b, t), layers, None);
        prop_assert!(check(&p, &up).is_ok(), "{}", check(&p, &up).unwrap_err());
    }
}

/// Every variant at sizes that cross several panels, regardless of the draws.
#[test]
fn every_variant_matches_reference() {
    for (k, cell) in variants::all(23).into_iter().enumerate() {
        for seed in 0..3u64 {
            let (p, up) = backward_problem(seed * 31 + k as u64, (37, 70, 6, 3), 2, Some(cell));
            check(&p, &up).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// The bound bites: on typical problems it lies well below the gradients themselves,
/// so a bug that moves a gradient by more than a few percent fails (the golden cases
/// hold every path to 1e-4 relative); and the observed errors are a measurable part of
/// it (it is not vacuous).
#[test]
fn bound_is_far_below_the_gradients() {
    let mut ratios = Vec::new();
    let mut used = 0.0f64;
    for (k, cell) in variants::all(5).into_iter().enumerate() {
        for seed in 0..4u64 {
            let (p, up) =
                backward_problem(100 + seed * 8 + k as u64, (12, 24, 3, 3), 1, Some(cell));
            let Some((want, tol)) = reference(&p, &up) else {
                continue;
            };
            let got = try_train::<f32, f32>(
                &p,
                &up,
                Isa::best(),
                Activations::Keep,
                &mut TrainingWorkspace::new(),
            )
            .unwrap();
            let biggest = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let err = |g: &[f32], w: &[f64]| {
                g.iter()
                    .zip(w)
                    .fold(0.0f64, |m, (g, w)| m.max((f64::from(*g) - w).abs()))
            };
            let mut items = vec![
                (tol.dx, biggest(&want.dx), err(&got.dx, &want.dx)),
                (tol.dh0, biggest(&want.dh0), err(&got.dh0, &want.dh0)),
            ];
            for (gw, w) in got.weights.iter().zip(&want.weights) {
                for ((n, g), (_, v)) in named_parts(gw).into_iter().zip(named_parts(w)) {
                    items.push((tol.for_part(n).0, biggest(v), err(g, v)));
                }
            }
            for (bound, mag, e) in items {
                if mag > 1e-3 {
                    ratios.push(bound / mag);
                    used = used.max(e / bound);
                }
            }
        }
    }
    ratios.sort_by(f64::total_cmp);
    let (median, worst) = (ratios[ratios.len() / 2], ratios[ratios.len() - 1]);
    eprintln!("bound / largest gradient: median {median:e}, worst {worst:e}; largest error / bound {used:e}");
    assert!(
        worst < 0.25 && median < 0.02,
        "the bound is too loose to catch a bug: median {median:e}, worst {worst:e}"
    );
    assert!(used > 1e-6, "the errors use {used:e} of the bound");
}

/// `problem` with the weight matrices rounded to `W` and the inputs and upstream
/// gradients to `T` (biases and peepholes stay f32): exactly what a training step with
/// weights stored as `W` and tensors in `T` computes on.
fn rounded<W: Element, T: Element>(p: &Problem, up: &Upstream) -> (Problem, Upstream) {
    let via_w = |v: &mut Vec<f32>| v.iter_mut().for_each(|x| *x = W::from_f32(*x).to_f32());
    let via_t = |v: &mut Vec<f32>| v.iter_mut().for_each(|x| *x = T::from_f32(*x).to_f32());
    let mut q = p.clone();
    for w in &mut q.weights {
        via_w(&mut w.w_ih);
        via_w(&mut w.w_hh);
        w.w_hr.iter_mut().for_each(via_w);
    }
    via_t(&mut q.x);
    q.h0.iter_mut().for_each(via_t);
    q.c0.iter_mut().for_each(via_t);
    let mut u = up.clone();
    via_t(&mut u.dy);
    u.dh_n.iter_mut().for_each(via_t);
    u.dc_n.iter_mut().for_each(via_t);
    (q, u)
}

/// Half-precision weights (and tensors): `f32` gradients of the half-rounded network,
/// within the same bound as `f32` (the rounding happens before the computation).
#[test]
fn half_precision_weights_give_f32_gradients() {
    fn run<W: Element, T: Element>(label: &str) {
        for (k, cell) in variants::all(7).into_iter().enumerate() {
            let (p, up) = backward_problem(300 + k as u64, (20, 33, 3, 3), 2, Some(cell));
            let (q, u) = rounded::<W, T>(&p, &up);
            let Some((want, tol)) = reference(&q, &u) else {
                continue;
            };
            for isa in Isa::available() {
                for mode in [Activations::Keep, Activations::Recompute] {
                    let mut tws = TrainingWorkspace::new();
                    let got = try_train::<W, T>(&q, &u, isa, mode, &mut tws).unwrap();
                    compare_grads(&got, &want, &tol)
                        .unwrap_or_else(|e| panic!("{label} {isa} {mode:?} {cell:?}: {e}"));
                }
            }
        }
    }
    run::<half::bf16, f32>("bf16 weights");
    run::<half::f16, f32>("f16 weights");
    run::<half::bf16, half::bf16>("bf16 weights and tensors");
    run::<half::f16, half::f16>("f16 weights and tensors");
}
