//! Property tests: every instruction set this CPU has, every variant, 1 to 4 layers,
//! both layouts, with and without sequence lengths, contracting and ill-conditioned
//! problems, against the f64 reference within the per-element bound computed alongside
//! it (`rnn_reference::testkit::bound`). Sizes cross every SIMD width and tile edge
//! (16-unit tiles, 64-unit panels, 6-row blocks).

mod common;

use common::run_kernels;
use proptest::prelude::*;
use rnn_kernels::{Isa, PackedCell, StepInput, StepOutputMut, Workspace};
use rnn_reference::testkit::bound::{step_bounded, Kernels};
use rnn_reference::testkit::{
    compare_outputs, compare_outputs_ill, planted, problem, proptest_cases, variants, Problem,
};
use rnn_reference::RnnConfig;

fn check_sequence(p: &Problem) -> Result<(), String> {
    let expected = p.expected();
    for isa in Isa::available() {
        let (y, h_n, c_n) = run_kernels(p, isa);
        let ctx = format!("{isa} {:?} {:?} gain {}", p.cfg, p.shape, p.gain);
        // An ill-conditioned array (bound >= 1% of its largest value: a recurrence
        // that amplifies errors, dot products that cancel into tiny outputs) is still
        // compared, within its rigorous bound; proptest meets one in ~50..300 problems
        // (4 layers mostly), and `bound_quality.rs` asserts there is none in its 600.
        compare_outputs_ill(&ctx, (&y, &h_n, &c_n), &expected, true)?;
    }
    Ok(())
}

/// The single-step API against the reference step (layer 0, forward direction).
fn check_step(p: &Problem) -> Result<(), String> {
    let cfg = RnnConfig {
        num_layers: 1,
        direction: rnn_reference::Direction::Forward,
        ..p.cfg
    };
    let b = p.shape.batch;
    let w = p.weights[0].view();
    let x = &p.x[..b * cfg.input_size];
    let h: Vec<f32> = (0..b * cfg.output_size())
        .map(|k| ((k * 7) % 13) as f32 / 13.0 - 0.5)
        .collect();
    let lstm = cfg.cell.has_cell_state();
    let c: Vec<f32> = (0..b * cfg.hidden_size)
        .map(|k| ((k * 5) % 11) as f32 / 5.0 - 1.0)
        .collect();
    // AUGRU: any B of the problem's attention values in [0, 1].
    let att = p.attention.as_deref().map(|a| &a[..b]);
    let args = (x, &h[..], lstm.then_some(&c[..]), att);
    let expected = step_bounded::<Kernels>(&cfg, &w, b, args).unwrap();
    for isa in Isa::available() {
        let cell = PackedCell::from_pytorch(&cfg, &w)
            .unwrap()
            .with_isa(Some(isa))
            .unwrap();
        let (mut h1, mut c1) = (vec![f32::NAN; h.len()], vec![f32::NAN; c.len()]);
        cell.step(
            &mut Workspace::new(),
            b,
            StepInput {
                x,
                h: &h,
                c: lstm.then_some(&c[..]),
                attention: att,
            },
            StepOutputMut {
                h: &mut h1,
                c: lstm.then_some(&mut c1[..]),
            },
        )
        .unwrap();
        let ctx = format!("step {isa} {cfg:?} batch {b}");
        let c1 = if lstm { &c1[..] } else { &[] };
        // Compared like the sequence's: an output array whose bound is >= 1% of its
        // largest value, which one step meets when its terms cancel into a tiny `h`
        // (found at 10 000 cases: a reset-after GRU, H = 1, h' = 3.9e-4 with a bound of
        // 5.6e-6); `bound_quality.rs` asserts there is none in its 600 sequences.
        compare_outputs_ill(&ctx, (&[], &h1, c1), &expected, true)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: proptest_cases(1000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn sequence_matches_reference(
        seed in any::<u64>(),
        i in 1usize..=70,
        h in 1usize..=70,
        b in 1usize..=9,
        t in 1usize..=6,
        layers in 1usize..=4,
    ) {
        let p = problem(seed, (i, h, b, t), layers, None);
        check_sequence(&p).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn step_matches_reference(
        seed in any::<u64>(),
        i in 1usize..=70,
        h in 1usize..=70,
        b in 1usize..=9,
    ) {
        let p = problem(seed, (i, h, b, 1), 1, None);
        check_step(&p).map_err(TestCaseError::fail)?;
    }
}

/// Cases proptest once found (formerly `props.proptest-regressions`, whose saved
/// proptest seeds stop naming these cases when a strategy changes): pinned by the test
/// kit's problem seed instead.
#[test]
fn pinned_cases() {
    let p = problem(527300191506027013, (16, 8, 1, 1), 1, None);
    check_sequence(&p).unwrap();
}

/// Larger shapes that cross the 6-row block and several panels per thread.
#[test]
fn larger_shapes_match_reference() {
    for (seed, dims) in [
        (1u64, (100, 130, 13, 3)),
        (2, (33, 200, 7, 2)),
        (3, (64, 64, 16, 2)),
        (4, (17, 96, 25, 2)),
    ] {
        // Every variant at these sizes regardless of the draw, and one random draw.
        let every = variants::all(dims.1 / 3).map(|cell| problem(seed, dims, 1, Some(cell)));
        for p in every.iter().chain([&problem(seed * 10 + 2, dims, 1, None)]) {
            if let Err(e) = check_sequence(p) {
                panic!("{e}");
            }
        }
    }
}

/// No check can pass vacuously: on problems of every variant and depth, the kernels'
/// outputs pass, and the same outputs with one element moved by 2% of the array's
/// largest value (first, middle, last element of `y`, `h_n`, `c_n`) fail the very
/// comparison `check_sequence` uses (its bounds, refused at 1% or more, cannot absorb
/// it).
#[test]
fn planted_errors_are_caught() {
    for (k, cell) in variants::all(9).into_iter().enumerate() {
        for layers in 1..=4 {
            let seed = 900 + 8 * k as u64 + layers as u64;
            let p = problem(seed, (9, 20, 3, 4), layers, Some(cell));
            let e = p.expected();
            let (y, h_n, c_n) = run_kernels(&p, Isa::best());
            let ctx = format!("{cell:?} layers {layers}");
            compare_outputs(&ctx, (&y, &h_n, &c_n), &e).unwrap();
            for which in 0..3 {
                let mut out = [y.clone(), h_n.clone(), c_n.clone()];
                let want = [&e.want.y, &e.want.h_n, &e.want.c_n][which];
                let n = out[which].len();
                for at in [0, n / 2, n.saturating_sub(1)]
                    .into_iter()
                    .filter(|_| n > 0)
                {
                    out[which] = planted(&out[which], want, at);
                    let r = compare_outputs(&ctx, (&out[0], &out[1], &out[2]), &e);
                    assert!(
                        r.is_err(),
                        "{ctx}: planted error in array {which}[{at}] passed"
                    );
                }
            }
        }
    }
}
