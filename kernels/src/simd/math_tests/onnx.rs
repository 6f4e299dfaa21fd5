//! ONNX's activation functions (`simd::activations`) at every ISA the CPU has, each
//! run through the crate's dispatcher, against their definition
//! [`Activation::eval`] (`f64`): dense sweeps of bit patterns, parameter sets (negative,
//! zero and large alpha and beta), special values.
//!
//! Print the measured table with
//! `cargo test --release -p rnn-kernels simd::math::tests::onnx -- --nocapture`.

use super::{apply, documented, eval, isas, ulp, Stats};
use crate::Isa;
use rnn_reference::Activation;

/// A function under test: `expm1` itself (on `x ≤ 0`), or `activation` with an ONNX
/// function (the shared `Func`'s two ONNX variants).
use super::Func as Op;

/// Documented bounds, `(max ulp error, max absolute error where |y| ≤ 1)`: the measured
/// maxima of `activations.rs`'s table (over the sweeps and parameter sets below),
/// rounded up a little; `f64::INFINITY` where no absolute bound is stated.
mod bounds {
    use super::documented;

    /// `expm1` on `x ≤ 0`: measured 2.386 ulp, 8.53e-8. One home: the test kit's
    /// error model of the kernels, which the comparisons with the reference use.
    pub const EXPM1: (f64, f64) = (documented::EXPM1.ulps, documented::EXPM1.abs);
    /// `affine` with FMA, ulp at `max(|y|, |alpha·x|)`: correctly rounded (measured
    /// 0.500; the slack is the `f64` reference's own rounding of `alpha·x + beta`).
    pub const AFFINE_FMA: (f64, f64) = (0.501, f64::INFINITY);
    /// `affine` without FMA (`alpha·x` rounded first), ulp at `max(|y|, |alpha·x|)`:
    /// at most 1 by construction (measured 1.000).
    pub const AFFINE_UNFUSED: (f64, f64) = (1.0, f64::INFINITY);
    /// `leaky_relu`: one rounded product (the `f64` reference's product is exact).
    pub const LEAKY_RELU: (f64, f64) = (0.5, f64::INFINITY);
    /// `thresholded_relu`: exact.
    pub const THRESHOLDED_RELU: (f64, f64) = (0.0, 0.0);
    /// `scaled_tanh`: measured 2.402 ulp, 1.169e-7.
    pub const SCALED_TANH: (f64, f64) = (2.5, 1.25e-7);
    /// `hard_sigmoid` with FMA, ulp at `max(|y|, |alpha·x|)`: correctly rounded
    /// (measured 0.500, 2.98e-8).
    pub const HARD_SIGMOID_FMA: (f64, f64) = (0.501, 3.0e-8);
    /// `hard_sigmoid` without FMA, ulp at `max(|y|, |alpha·x|)`: at most 1 by
    /// construction (measured 0.750, 4.466e-8).
    pub const HARD_SIGMOID_UNFUSED: (f64, f64) = (1.0, 5e-8);
    /// `elu`: measured 2.808 ulp (alpha −1.5; 2.384 with alpha 1), 1.354e-7.
    pub const ELU: (f64, f64) = (2.85, 1.4e-7);
    /// `softsign`: measured 1.497 ulp, 8.923e-8.
    pub const SOFTSIGN: (f64, f64) = (1.55, 9.5e-8);
    /// `softplus`: measured 2.639 ulp, 1.386e-7 (the test kit's error model, as
    /// `EXPM1`).
    pub const SOFTPLUS: (f64, f64) = (documented::SOFTPLUS.ulps, documented::SOFTPLUS.abs);
}

/// The bound of `op` at `isa` (see [`bounds`]; `Relu`, `Tanh`, `Sigmoid` are
/// `simd::math`'s). On x86_64 the portable path's multiply-add is unfused.
fn bound(op: Op, isa: Isa) -> (f64, f64) {
    let a = match op {
        Op::Expm1 => return bounds::EXPM1,
        Op::Act(a) => a,
        other => return super::bound(other),
    };
    let pair = |e: rnn_reference::testkit::bound::model::ActErr| (e.ulps, e.abs);
    let fused = isa != Isa::Portable;
    match a {
        Activation::Relu => (0.0, 0.0),
        Activation::Tanh => pair(documented::TANH),
        Activation::Sigmoid => pair(documented::SIGMOID),
        Activation::Affine { .. } if fused => bounds::AFFINE_FMA,
        Activation::Affine { .. } => bounds::AFFINE_UNFUSED,
        Activation::LeakyRelu { .. } => bounds::LEAKY_RELU,
        Activation::ThresholdedRelu { .. } => bounds::THRESHOLDED_RELU,
        Activation::ScaledTanh { .. } => bounds::SCALED_TANH,
        Activation::HardSigmoid { .. } if fused => bounds::HARD_SIGMOID_FMA,
        Activation::HardSigmoid { .. } => bounds::HARD_SIGMOID_UNFUSED,
        Activation::Elu { .. } => bounds::ELU,
        Activation::Softsign => bounds::SOFTSIGN,
        Activation::Softplus => bounds::SOFTPLUS,
        _ => panic!("no bound for {a:?}"),
    }
}

/// The exact (`f64`) value of `op` at `x`: [`Activation::eval`]; `expm1` is `Elu`'s
/// negative branch with alpha 1.
fn reference(op: Op, x: f32) -> f64 {
    match op {
        Op::Expm1 => Activation::Elu { alpha: 1.0 }.eval(f64::from(x)),
        other => super::reference(other, x),
    }
}

/// The magnitude whose `ulp` is the unit of the error: the result's, and for `Affine`
/// and `HardSigmoid` at least `|alpha·x|` (without FMA that product is rounded before
/// `beta` is added).
fn scale(op: Op, x: f32, want: f64) -> f64 {
    match op {
        Op::Act(Activation::Affine { alpha, .. } | Activation::HardSigmoid { alpha, .. }) => {
            want.abs().max((f64::from(alpha) * f64::from(x)).abs())
        }
        _ => want,
    }
}

/// The parameter sets swept (and checked at special values): ONNX's defaults, negative,
/// zero and large alpha and beta.
const PARAMETERISED: &[Activation] = &[
    Activation::Affine {
        alpha: 1.0,
        beta: 0.0,
    },
    Activation::Affine {
        alpha: -0.75,
        beta: 0.5,
    },
    Activation::Affine {
        alpha: 0.0,
        beta: 0.3,
    },
    Activation::Affine {
        alpha: 2.5,
        beta: 0.0,
    },
    Activation::Affine {
        alpha: 1e-3,
        beta: -4.0,
    },
    Activation::LeakyRelu { alpha: 0.01 },
    Activation::LeakyRelu { alpha: -0.5 },
    Activation::LeakyRelu { alpha: 0.0 },
    Activation::LeakyRelu { alpha: 3.0 },
    Activation::ThresholdedRelu { alpha: 1.0 },
    Activation::ThresholdedRelu { alpha: -1.0 },
    Activation::ThresholdedRelu { alpha: 0.0 },
    Activation::ThresholdedRelu { alpha: 2.5 },
    Activation::ScaledTanh {
        alpha: 1.0,
        beta: 1.0,
    },
    Activation::ScaledTanh {
        alpha: 1.5,
        beta: 0.5,
    },
    Activation::ScaledTanh {
        alpha: -2.5,
        beta: -0.75,
    },
    Activation::ScaledTanh {
        alpha: 0.0,
        beta: 1.0,
    },
    Activation::ScaledTanh {
        alpha: 1.0,
        beta: 0.0,
    },
    Activation::ScaledTanh {
        alpha: 0.7,
        beta: 3.0,
    },
    Activation::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    },
    Activation::HardSigmoid {
        alpha: -0.3,
        beta: 0.25,
    },
    Activation::HardSigmoid {
        alpha: 0.0,
        beta: 0.7,
    },
    Activation::HardSigmoid {
        alpha: 1.5,
        beta: 0.0,
    },
    Activation::HardSigmoid {
        alpha: 0.0,
        beta: 0.0,
    },
    Activation::Elu { alpha: 1.0 },
    Activation::Elu { alpha: 0.5 },
    Activation::Elu { alpha: -1.5 },
    Activation::Elu { alpha: 0.0 },
];

/// The functions without parameters (`Relu`, `Tanh`, `Sigmoid` only to check that
/// [`activation`] maps them to `simd::math`'s, which `sweeps` tests in depth).
const FIXED: [Activation; 5] = [
    Activation::Relu,
    Activation::Tanh,
    Activation::Sigmoid,
    Activation::Softsign,
    Activation::Softplus,
];

/// The ONNX functions' checks on [`Stats`].
impl Stats {
    /// Checks `got` against the reference `want` at `x`: the same class (NaN, the same
    /// infinity, finite), and records the error of finite results.
    #[track_caller]
    fn record(&mut self, isa: Isa, op: Op, x: f32, got: f32, want: f64) {
        self.count += 1;
        if want.is_nan() || got.is_nan() {
            assert!(
                want.is_nan() && got.is_nan(),
                "{isa:?} {op:?}({x:e}) = {got:e}, want {want:e}"
            );
            return;
        }
        let want32 = want as f32;
        if want32.is_infinite() || got.is_infinite() {
            assert_eq!(
                got, want32,
                "{isa:?} {op:?}({x:e}): got {got:e}, want {want:e}"
            );
            return;
        }
        let abs = (f64::from(got) - want).abs();
        self.note(x, abs, abs / ulp(scale(op, x, want)), want.abs() <= 1.0);
    }
}

/// Evaluates `op` at every ISA on `x(i) for i in 0..n`, returning the stats per ISA.
/// The AVX-512 and AVX2 paths must be bit-identical.
fn sweep(isas: &[Isa], op: Op, n: u64, x: impl Fn(u64) -> f32) -> Vec<Stats> {
    const BLOCK: usize = 4096;
    let mut stats = vec![Stats::new(); isas.len()];
    let mut xs = Vec::with_capacity(BLOCK);
    let mut outs = vec![vec![0.0f32; BLOCK]; isas.len()];
    let mut i = 0;
    while i < n {
        xs.clear();
        while xs.len() < BLOCK && i < n {
            xs.push(x(i));
            i += 1;
        }
        for (&isa, out) in isas.iter().zip(&mut outs) {
            apply(isa, op, &xs, &mut out[..xs.len()]);
        }
        for (k, &x) in xs.iter().enumerate() {
            let want = reference(op, x);
            let mut fused: Option<f32> = None;
            for (ii, &isa) in isas.iter().enumerate() {
                let got = outs[ii][k];
                stats[ii].record(isa, op, x, got, want);
                if isa != Isa::Portable {
                    let first = *fused.get_or_insert(got);
                    assert!(
                        first.to_bits() == got.to_bits() || (first.is_nan() && got.is_nan()),
                        "{op:?}({x:e}): {isa:?} gives {got:e}, {:?} {first:e}",
                        isas[0]
                    );
                }
            }
        }
    }
    stats
}

/// Prints the stats and checks the bounds.
fn check(isas: &[Isa], op: Op, stats: &[Stats]) {
    for (s, &isa) in stats.iter().zip(isas) {
        eprintln!(
            "{op:?} {isa:?}: max {:.3} ulp at x = {:e}, max abs {:.3e} at x = {:e} ({} inputs)",
            s.max_ulp, s.at_ulp, s.max_abs, s.at_abs, s.count
        );
    }
    for (s, &isa) in stats.iter().zip(isas) {
        let (bu, ba) = bound(op, isa);
        assert!(
            s.max_ulp <= bu,
            "{op:?} {isa:?}: {} ulp at {:e} > {bu}",
            s.max_ulp,
            s.at_ulp
        );
        assert!(
            s.max_abs <= ba,
            "{op:?} {isa:?}: abs {:e} at {:e} > {ba:e}",
            s.max_abs,
            s.at_abs
        );
    }
}

/// Every 97th bit pattern (all signs and exponents, NaN and inf included) of `op`.
fn dense(op: Op) {
    let isas = isas();
    let n = (1u64 << 32) / 97 + 1;
    let stats = sweep(&isas, op, n, |i| f32::from_bits((i * 97) as u32));
    check(&isas, op, &stats);
}

/// `expm1` on every 97th negative bit pattern (−0, −inf and NaN included).
#[test]
fn expm1_dense_sweep() {
    let isas = isas();
    let n = (1u64 << 31) / 97 + 1;
    let stats = sweep(&isas, Op::Expm1, n, |i| {
        f32::from_bits(((i * 97) as u32 & 0x7fff_ffff) | 0x8000_0000)
    });
    check(&isas, Op::Expm1, &stats);
}

/// `elu` with alpha 1 on every 97th bit pattern.
#[test]
fn elu_dense_sweep() {
    dense(Op::Act(Activation::Elu { alpha: 1.0 }));
}

/// `softsign` on every 97th bit pattern.
#[test]
fn softsign_dense_sweep() {
    dense(Op::Act(Activation::Softsign));
}

/// `softplus` on every 97th bit pattern.
#[test]
fn softplus_dense_sweep() {
    dense(Op::Act(Activation::Softplus));
}

/// The inputs of the parameter sweeps: every 4099th bit pattern, and a grid of
/// `[−20, 20]` in steps of 2⁻¹².
fn parameter_xs() -> Vec<f32> {
    let mut xs: Vec<f32> = (0..(1u64 << 32) / 4099 + 1)
        .map(|i| f32::from_bits((i * 4099) as u32))
        .collect();
    xs.extend((-20 * 4096..=20 * 4096).map(|k| k as f32 / 4096.0));
    xs
}

/// Sweeps `ops` over [`parameter_xs`].
fn parameter_sweep(ops: impl IntoIterator<Item = Activation>) {
    let isas = isas();
    let xs = parameter_xs();
    for a in ops {
        let op = Op::Act(a);
        let stats = sweep(&isas, op, xs.len() as u64, |i| xs[i as usize]);
        check(&isas, op, &stats);
    }
}

/// `affine`, `leaky_relu`, `thresholded_relu` over their parameter sets.
#[test]
fn piecewise_linear_parameter_sets() {
    parameter_sweep(PARAMETERISED.iter().copied().filter(|a| {
        matches!(
            a,
            Activation::Affine { .. }
                | Activation::LeakyRelu { .. }
                | Activation::ThresholdedRelu { .. }
        )
    }));
}

/// `scaled_tanh`, `hard_sigmoid`, `elu` over their parameter sets, and the functions
/// without parameters (through [`activation`]).
#[test]
fn smooth_parameter_sets_and_fixed() {
    parameter_sweep(
        PARAMETERISED
            .iter()
            .copied()
            .filter(|a| {
                matches!(
                    a,
                    Activation::ScaledTanh { .. }
                        | Activation::HardSigmoid { .. }
                        | Activation::Elu { .. }
                )
            })
            .chain(FIXED),
    );
}

/// Special values at every ISA, for all 11 functions (every parameter set) and
/// `expm1`: NaN gives NaN; ±inf, ±0, subnormals, the extremes and saturation points
/// give the reference's class (NaN, the same infinity, finite) and finite values within
/// the bound; a few exact values.
#[test]
fn special_values() {
    let nan = f32::NAN;
    let inf = f32::INFINITY;
    let sub = f32::from_bits(1);
    let big_sub = f32::from_bits(0x007f_ffff);
    let mut xs = vec![
        0.0,
        sub,
        big_sub,
        f32::MIN_POSITIVE,
        1e-30,
        1e-8,
        0.5,
        1.0,
        2.5,
        9.0,
        17.0,
        20.0,
        88.0,
        100.0,
        104.0,
        2e7,
        1e30,
        f32::MAX,
        inf,
    ];
    xs.extend(xs.clone().into_iter().map(|x: f32| -x));
    let ops: Vec<Op> = PARAMETERISED
        .iter()
        .chain(&FIXED)
        .map(|&a| Op::Act(a))
        .chain([Op::Expm1])
        .collect();
    // Exact expectations (any NaN accepted; either zero for a zero).
    let exact: &[(Op, f32, f32)] = &[
        (Op::Expm1, -inf, -1.0),
        (Op::Expm1, -200.0, -1.0),
        (Op::Expm1, -20.0, -1.0),
        (Op::Expm1, -0.0, -0.0),
        (Op::Act(Activation::Elu { alpha: 0.5 }), -inf, -0.5),
        (Op::Act(Activation::Elu { alpha: -1.5 }), -inf, 1.5),
        (Op::Act(Activation::Elu { alpha: 0.5 }), inf, inf),
        (Op::Act(Activation::Softplus), inf, inf),
        (Op::Act(Activation::Softplus), -inf, 0.0),
        (Op::Act(Activation::Softplus), -104.0, 0.0),
        (Op::Act(Activation::Softplus), 1e30, 1e30),
        (Op::Act(Activation::Softplus), 20.0, 20.0),
        (Op::Act(Activation::Softsign), inf, nan),
        (Op::Act(Activation::Softsign), -inf, nan),
        (Op::Act(Activation::Softsign), 1e30, 1.0),
        (Op::Act(Activation::Softsign), -1e30, -1.0),
        (Op::Act(Activation::Softsign), -0.0, -0.0),
        (Op::Act(Activation::LeakyRelu { alpha: 0.01 }), -0.0, -0.0),
        (Op::Act(Activation::LeakyRelu { alpha: -0.5 }), -inf, inf),
        (Op::Act(Activation::LeakyRelu { alpha: 0.0 }), -inf, nan),
        (
            Op::Act(Activation::ThresholdedRelu { alpha: 1.0 }),
            1.0,
            0.0,
        ),
        (
            Op::Act(Activation::ThresholdedRelu { alpha: -1.0 }),
            -0.5,
            -0.5,
        ),
        (
            Op::Act(Activation::ThresholdedRelu { alpha: -1.0 }),
            -inf,
            0.0,
        ),
        (
            Op::Act(Activation::ThresholdedRelu { alpha: 1.0 }),
            inf,
            inf,
        ),
        (
            Op::Act(Activation::ScaledTanh {
                alpha: 1.0,
                beta: 0.0,
            }),
            inf,
            nan,
        ),
        (
            Op::Act(Activation::ScaledTanh {
                alpha: -2.5,
                beta: -0.75,
            }),
            inf,
            2.5,
        ),
        (
            Op::Act(Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            }),
            inf,
            1.0,
        ),
        (
            Op::Act(Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            }),
            -inf,
            0.0,
        ),
        (
            Op::Act(Activation::HardSigmoid {
                alpha: 0.0,
                beta: 0.7,
            }),
            inf,
            nan,
        ),
        (
            Op::Act(Activation::Affine {
                alpha: -0.75,
                beta: 0.5,
            }),
            inf,
            -inf,
        ),
    ];
    for isa in isas() {
        for &op in &ops {
            for x in [nan, -nan] {
                let got = eval(isa, op, x);
                assert!(got.is_nan(), "{isa:?} {op:?}(NaN) = {got:e}");
            }
            let (bu, _) = bound(op, isa);
            for &x in &xs {
                if op == Op::Expm1 && x > 0.0 {
                    continue;
                }
                let (got, want) = (eval(isa, op, x), reference(op, x));
                let mut s = Stats::new();
                s.record(isa, op, x, got, want);
                assert!(
                    s.max_ulp <= bu,
                    "{isa:?} {op:?}({x:e}) = {got:e}, want {want:e}: {} ulp",
                    s.max_ulp
                );
            }
        }
        for &(op, x, want) in exact {
            let got = eval(isa, op, x);
            let same = (got.is_nan() && want.is_nan()) || got == want;
            assert!(same, "{isa:?} {op:?}({x:e}) = {got:e}, want {want:e}");
            // The reference rounds to it too (the table is not wishful).
            let r = reference(op, x) as f32;
            assert!(
                (r.is_nan() && want.is_nan()) || r == want,
                "{op:?}({x:e}): reference {r:e}, table {want:e}"
            );
        }
    }
}
