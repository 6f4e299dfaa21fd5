//! Property tests: the reference in f32 agrees with the reference in f64, element by
//! element, within the bound the test kit computes alongside the f64 reference
//! (`rnn_reference::testkit::bound`, error model `StdF32`: f32 arithmetic in any
//! order, std's `expf` (1 ulp) and `tanhf` (2 ulp), the sigmoid composed as the
//! reference writes it), for random small problems of every variant, 1 to 4 layers.
//! Both runs see the same numbers (every input and weight is an f32 value, widened
//! exactly for the f64 run), so the difference is the f32 run's own rounding.
//!
//! The weights are drawn with magnitude <= 0.5/(I_l + H_out) while biases (<= 1) and
//! inputs (<= 2) still reach saturating pre-activations; the bound must stay below 1%
//! of the largest output (asserted, so the test has teeth), and over many problems the
//! observed error must use a visible fraction of it.

mod common;

use proptest::prelude::*;
use rnn_reference::testkit::bound::{forward_bounded, StdF32};
use rnn_reference::testkit::compare::excess;
use rnn_reference::testkit::convert::weights_f32;
use rnn_reference::testkit::{proptest_cases, to_f32, variants, Lcg};
use rnn_reference::{
    forward, views, LayerWeights, OwnedLayerWeights, RnnConfig, SeqShape, SequenceInput,
};

#[derive(Debug, Clone)]
struct Problem {
    cfg: RnnConfig,
    shape: SeqShape,
    weights: Vec<OwnedLayerWeights<f64>>,
    x: Vec<f64>,
    h0: Vec<f64>,
    c0: Vec<f64>,
    seq_lens: Option<Vec<usize>>,
    /// AUGRU's attention (`[T, B]` or `[B, T]`, like `x`); empty for other cells.
    att: Vec<f64>,
}

#[allow(clippy::too_many_arguments)]
fn build(
    variant: usize,
    i: usize,
    h: usize,
    layers: usize,
    dir: usize,
    t: usize,
    b: usize,
    batch_major: bool,
    clip: Option<f32>,
    lens: bool,
    seed: u64,
) -> Problem {
    // Projected variants need room for a projection (1 <= proj < h).
    let projected = variants::all(1)[variant].proj_size().is_some();
    let h = if projected { h.max(2) } else { h };
    let proj = if projected {
        1 + (seed as usize % (h - 1))
    } else {
        1
    };
    let cell = variants::all(proj)[variant];
    let mut rng = Lcg::new(seed);
    let common::Setup {
        cfg,
        shape,
        weights,
        seq_lens,
    } = common::setup(
        cell,
        (i, h, b, t),
        layers,
        dir,
        clip,
        batch_major,
        lens,
        seed,
        (0.5, 0.25),
        &mut rng,
    );
    let d = shape.dims(&cfg).unwrap();
    let mut p = Problem {
        cfg,
        shape,
        weights,
        x: rng.vec_f32_exact(d.x, 2.0),
        h0: rng.vec_f32_exact(d.h, 1.0),
        c0: rng.vec_f32_exact(d.c, 1.0),
        seq_lens,
        att: Vec::new(),
    };
    if cell.has_attention() {
        p.att = rng
            .vec_f32_exact(t * b, 1.0)
            .into_iter()
            .map(f64::abs)
            .collect();
    }
    p
}

/// `f` on the problem's values as f32 (exactly: they are f32 numbers).
fn with_f32<R>(
    p: &Problem,
    f: impl FnOnce(&[LayerWeights<'_, f32>], SequenceInput<'_, f32>) -> R,
) -> R {
    let weights: Vec<OwnedLayerWeights<f32>> =
        p.weights.iter().map(|w| weights_f32(&w.view())).collect();
    let (x, h0, c0) = (to_f32(&p.x), to_f32(&p.h0), to_f32(&p.c0));
    let att = to_f32(&p.att);
    f(
        &views(&weights),
        SequenceInput {
            x: &x,
            h0: Some(&h0),
            c0: p.cfg.cell.has_cell_state().then_some(&c0[..]),
            seq_lens: p.seq_lens.as_deref(),
            attention: p.cfg.cell.has_attention().then_some(&att[..]),
        },
    )
}

/// `(usage, largest bound / largest |output|)`: usage is the largest
/// `|f32 − f64| / bound` over the outputs (at most 1 when the bound holds). The f64
/// reference is `Expected::want` (bit for bit `forward` in f64, a test kit test).
fn measure(p: &Problem) -> (f64, f64) {
    let e = with_f32(p, |w, input| {
        forward_bounded::<StdF32>(&p.cfg, w, p.shape, input).unwrap()
    });
    let out = with_f32(p, |w, input| forward(&p.cfg, w, p.shape, input).unwrap());
    let got = out.y.iter().chain(&out.h_n).chain(&out.c_n);
    let want = || e.want.y.iter().chain(&e.want.h_n).chain(&e.want.c_n);
    let bound = || e.bound.y.iter().chain(&e.bound.h_n).chain(&e.bound.c_n);
    let usage = got
        .zip(want())
        .zip(bound())
        .map(|((&g, &w), &b)| excess(f64::from(g), w, b))
        .fold(0.0, f64::max);
    let max_out = want().fold(0.0f64, |m, v| m.max(v.abs()));
    let max_bound = bound().fold(0.0f64, |m, &b| m.max(b));
    let relative = if max_bound == 0.0 {
        0.0
    } else {
        max_bound / max_out
    };
    (usage, relative)
}

fn problems() -> impl Strategy<Value = Problem> {
    (
        (
            0..variants::COUNT,
            1usize..6,
            1usize..7,
            1usize..5,
            0usize..3,
        ),
        (1usize..6, 1usize..4, any::<bool>()),
        (
            proptest::option::of(0.25f32..3.0),
            any::<bool>(),
            any::<u64>(),
        ),
    )
        .prop_map(|((v, i, h, l, d), (t, b, bm), (clip, lens, seed))| {
            build(v, i, h, l, d, t, b, bm, clip, lens, seed)
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: proptest_cases(1000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn f32_agrees_with_f64_within_the_bound(p in problems()) {
        let (usage, relative) = measure(&p);
        prop_assert!(usage <= 1.0, "error {usage} x the bound for {:?}", p.cfg);
        // The bound must say something: far below the outputs.
        prop_assert!(relative <= 0.01, "vacuous bound ({relative:e} of the outputs) for {:?}", p.cfg);
    }
}

/// The bound is also not loose: over many problems, the observed error uses a visible
/// fraction of it (within ~100x at the median).
#[test]
fn bound_is_within_a_hundred_times_the_observed_error() {
    let mut usages = Vec::new();
    for seed in 0..300u64 {
        let p = build(
            (seed % variants::COUNT as u64) as usize,
            1 + (seed % 5) as usize,
            2 + (seed % 5) as usize,
            1 + (seed % 4) as usize,
            (seed % 3) as usize,
            1 + (seed % 5) as usize,
            1 + (seed % 3) as usize,
            seed % 2 == 0,
            (seed % 4 == 0).then_some(1.0),
            seed % 3 == 0,
            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let (usage, relative) = measure(&p);
        assert!(
            usage <= 1.0 && relative <= 0.01,
            "{usage} {relative} {:?}",
            p.cfg
        );
        usages.push(usage);
    }
    usages.sort_by(f64::total_cmp);
    let (p10, median, max) = (usages[30], usages[150], usages[299]);
    eprintln!("observed error / bound: p10 {p10:.2e}, median {median:.2e}, max {max:.2e}");
    assert!(median >= 1e-2, "bound too loose: median usage {median:e}");
}
