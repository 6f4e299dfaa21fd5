//! The bound every comparison uses (`rnn_reference::testkit::bound`) is not vacuous:
//! over many generated problems (every variant, 1 to 4 layers, every direction,
//! contracting and ill-conditioned), no element's bound exceeds 1% of the problem's
//! largest |output|, and on typical (contracting) problems the kernels' observed error
//! uses a visible fraction of it (the bound is within ~100x of the error).
//!
//! "Usage" of a problem is the largest `|kernel − reference| / bound` over its output
//! elements and the ISAs: at most 1 (the bound holds), and the closer to 1, the tighter.

mod common;

use common::run_kernels;
use rnn_kernels::Isa;
use rnn_reference::testkit::compare::excess;
use rnn_reference::testkit::{problem, Expected, Problem, SplitMix64};

/// Problems per run (each through every ISA).
const PROBLEMS: u64 = 600;

/// `(usage, largest bound / largest |output|)` of one problem.
fn measure(p: &Problem) -> (f64, f64) {
    let Expected { want, bound } = p.expected();
    let wants = || want.y.iter().chain(&want.h_n).chain(&want.c_n);
    let bounds = || bound.y.iter().chain(&bound.h_n).chain(&bound.c_n);
    let max_y = wants().fold(0.0f64, |m, v| m.max(v.abs()));
    let max_b = bounds().fold(0.0f64, |m, v| m.max(*v));
    let relative = if max_b == 0.0 { 0.0 } else { max_b / max_y };
    let mut usage = 0.0f64;
    for isa in Isa::available() {
        let (y, h_n, c_n) = run_kernels(p, isa);
        let got = y.iter().chain(&h_n).chain(&c_n);
        for ((&g, &w), &b) in got.zip(wants()).zip(bounds()) {
            usage = usage.max(excess(f64::from(g), w, b));
        }
    }
    (usage, relative)
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Prints the distribution of the usages `v` of a class of problems.
fn summary(class: &str, v: &mut [f64]) {
    let exact = v.iter().filter(|&&u| u == 0.0).count();
    let q = [0.1, 0.5, 0.9, 1.0].map(|x| quantile(v, x));
    eprintln!(
        "usage, {class} ({} problems, {exact} exact): p10 {:.2e} median {:.2e} p90 {:.2e} max {:.2e}",
        v.len(),
        q[0],
        q[1],
        q[2],
        q[3]
    );
}

#[test]
fn bounds_are_tight_and_never_vacuous() {
    let mut rng = SplitMix64::new(2024);
    let (mut contracting, mut ill) = (Vec::new(), Vec::new());
    let mut worst_relative = (0.0f64, String::new());
    for seed in 0..PROBLEMS {
        let dims = (
            1 + rng.below(70),
            1 + rng.below(70),
            1 + rng.below(9),
            1 + rng.below(6),
        );
        let layers = 1 + rng.below(4);
        let p = problem(seed, dims, layers, None);
        let (usage, relative) = measure(&p);
        let what = format!("seed {seed} {dims:?} {:?} gain {}", p.cfg, p.gain);
        assert!(usage <= 1.0, "bound exceeded ({usage}): {what}");
        assert!(
            relative <= 0.01,
            "vacuous bound: {relative:e} of the largest output: {what}"
        );
        if relative > worst_relative.0 {
            worst_relative = (relative, what);
        }
        if p.gain < 1.0 {
            contracting.push(usage);
        } else {
            ill.push(usage);
        }
    }
    summary("contracting", &mut contracting);
    summary("ill-conditioned", &mut ill);
    eprintln!(
        "largest bound / largest |output|: {:.2e} ({})",
        worst_relative.0, worst_relative.1
    );
    let median = quantile(&mut contracting, 0.5);
    assert!(median >= 1e-2, "bound too loose: median usage {median:e}");
}
