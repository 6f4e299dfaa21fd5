//! Vectorized activations over any [`V16`]: [`exp`], [`sigmoid`], [`tanh`], [`relu`],
//! [`clip`].
//!
//! All are `#[inline(always)]` generic functions meant to be instantiated inside the
//! `#[target_feature]` kernels (like the [`V16`] methods themselves).
//!
//! # Algorithms
//! - `exp(x)`: `x` is clamped to `[-104, 89]` (outside, the f32 result is 0 or +inf
//!   anyway), `n = round(x·log2 e)`, `r = x − n·ln2` (two-constant Cody–Waite split,
//!   the first product exact even without FMA), `e^r ≈ 1 + r + r²·P(r)` with the
//!   published Cephes `expf` minimax coefficients (degree 5), then `·2^n` with one
//!   rounding ([`V16::ldexp`]), so subnormal results are gradual.
//! - `sigmoid(x)`: with `e = e^−|x|` ∈ (0, 1] (never overflows) and
//!   `q = e/(1+e) = sigmoid(−|x|)` ∈ [0, 0.5] (one division), `sigmoid(x) = q` for
//!   `x < 0` and `1 − q` for `x ≥ 0`: no cancellation on either side, gradual
//!   subnormal results for `x < −87.3`, exactly 0 for `x ≤ −104` and `−inf`, and
//!   exactly 1 where `q ≤ 2⁻²⁵`, i.e. where the true value rounds to 1 (`x ≳ 17.33`).
//! - `tanh(x)`: for `|x| < 0.625` the odd polynomial `x + x·z·Q(z)`, `z = x²`
//!   (published Cephes `tanhf` coefficients), which is exact for tiny and subnormal
//!   `x` and keeps the sign of ±0; otherwise `copysign(1 − 2·sigmoid(−2|x|), x)`:
//!   exactly ±1 where the true value rounds to ±1 (`|x| ≳ 9.01`) and for ±inf.
//! - `relu(x) = max(x, 0)`, `clip(x, c) = min(max(x, −c), c)`, NaN kept.
//!
//! NaN in gives NaN out for every function (the clamps use
//! [`V16::min_keep_nan`]/[`V16::max_keep_nan`], and every branch propagates NaN).
//!
//! # Accuracy
//! Measured against `f64` (`exp`, `tanh`, `1/(1+exp(−x))`) over **all** 2³² `f32`
//! inputs with `cargo test --release -p rnn-kernels simd::math -- --include-ignored`
//! (test `exhaustive_all_f32`); the default sweep test (`dense_sweep`) checks every
//! 97th bit pattern against the same bounds. "ulp" is the spacing of `f32` at the
//! exact result (`2^(k−23)` for results in `[2^k, 2^(k+1))`, at least 2⁻¹⁴⁹), the error is
//! `|computed − exact|` in that unit, so 0.5 ulp is correct rounding.
//!
//! | function  | ISA              | max error (ulp) at          | max abs error at |
//! |-----------|------------------|-----------------------------|------------------|
//! | `exp`     | AVX-512, AVX2    | 1.010 (x = −5.8778844) | — (relative only) |
//! | `exp`     | portable (SSE2)  | 0.990 (x = 70.4031)    | — (relative only) |
//! | `sigmoid` | all three        | 2.402 (x = −4.157294)  | 7.09e−8 (x = 0.6779159) |
//! | `tanh`    | all three        | 1.456 (x = 0.6335302)  | 8.68e−8 (x = 0.6335302) |
//!
//! The tests assert `exp ≤ 1.05`, `sigmoid ≤ 2.5`, `tanh ≤ 1.5` ulp and, for
//! `sigmoid`/`tanh`, absolute error `≤ 1.2e−7`, at every ISA.
//!
//! `relu` and `clip` are exact. Results of the AVX-512 and AVX2 paths are
//! bit-identical (same FMA sequence, `ldexp` rounds once on both); the portable path
//! uses unfused multiply-add on x86_64 and may differ from them by an ulp or so,
//! always within the bounds above.

use crate::simd::V16;

#[cfg(test)]
#[path = "math_tests/mod.rs"]
mod tests;

/// `log2(e)`.
const LOG2E: f32 = core::f32::consts::LOG2_E;
/// High part of `ln 2` (9 significant bits: `n · LN2_HI` is exact for |n| < 2¹⁵).
const LN2_HI: f32 = 355.0 / 512.0;
/// `ln 2 − LN2_HI`.
const LN2_LO: f32 = -2.121_944_4e-4;

/// Cephes `expf`: `e^r ≈ 1 + r + r²·(P0·r⁵ + … + P5)` on `|r| ≤ ln2/2`.
const EXP_P: [f32; 6] = [
    1.987_569_2e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    5e-1, // Cephes 5.0000001201e-1, which rounds to 0.5 in f32
];

/// Cephes `tanhf`: `tanh(x) ≈ x + x·z·(Q0·z⁴ + … + Q4)`, `z = x²`, on `|x| < 0.625`.
const TANH_Q: [f32; 5] = [
    -5.704_988_7e-3,
    2.063_909e-2,
    -5.373_971_6e-2,
    1.333_144_2e-1,
    -3.333_328e-1,
];

/// `|x|` below which [`tanh`] uses its odd polynomial.
const TANH_SMALL: f32 = 0.625;

/// Horner evaluation of `c[0]·t^(k−1) + … + c[k−1]`.
#[inline(always)]
pub(crate) unsafe fn horner<V: V16, const K: usize>(t: V, c: &[f32; K]) -> V {
    // SAFETY: the caller runs on a CPU with `V`'s features (contract of `V16`).
    unsafe {
        let mut p = V::splat(c[0]);
        for &ci in &c[1..] {
            p = p.mul_add(t, V::splat(ci));
        }
        p
    }
}

/// `e^x` for `x` already clamped to `[-104, 89]` (or NaN).
#[inline(always)]
unsafe fn exp_clamped<V: V16>(x: V) -> V {
    // SAFETY: the caller runs on a CPU with `V`'s features (contract of `V16`).
    unsafe {
        let n = x.mul(V::splat(LOG2E)).round_nearest();
        let r = n.mul_add(V::splat(-LN2_HI), x);
        let r = n.mul_add(V::splat(-LN2_LO), r);
        let p = horner(r, &EXP_P);
        let y = p.mul_add(r.mul(r), r).add(V::splat(1.0));
        y.ldexp(n)
    }
}

/// `e^x` for `x ≤ 0` (or NaN): only the lower clamp is needed.
#[inline(always)]
unsafe fn exp_nonpos<V: V16>(x: V) -> V {
    // SAFETY: the caller runs on a CPU with `V`'s features (contract of `V16`).
    unsafe { exp_clamped(x.max_keep_nan(V::splat(-104.0))) }
}

/// `e^x` lane-wise: 0 for `x ≤ −104` and `−inf`, `+inf` for `x > 88.72` and `+inf`,
/// NaN for NaN; error bound in the module docs.
///
/// # Safety
/// The CPU must have the features `V` needs (see [`V16`]).
#[inline(always)]
// A building block next to the activations; the kernels themselves only need the
// `x ≤ 0` variant inside `sigmoid`/`tanh`.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) unsafe fn exp<V: V16>(x: V) -> V {
    // SAFETY: forwarded caller contract.
    unsafe {
        exp_clamped(
            x.max_keep_nan(V::splat(-104.0))
                .min_keep_nan(V::splat(89.0)),
        )
    }
}

/// The logistic function `1 / (1 + e^−x)` lane-wise: exactly 0 for `x ≤ −104` and
/// `−inf`, exactly 1 for `x ≥ 17.34` and `+inf`, NaN for NaN, `sigmoid(±0) = 0.5`;
/// error bound in the module docs.
///
/// # Safety
/// The CPU must have the features `V` needs (see [`V16`]).
#[inline(always)]
pub(crate) unsafe fn sigmoid<V: V16>(x: V) -> V {
    // SAFETY: forwarded caller contract.
    unsafe {
        let q = sigmoid_nonpos(V::zero().sub(x.abs()));
        x.select_lt(V::zero(), q, V::splat(1.0).sub(q))
    }
}

/// `sigmoid(t) = e/(1 + e)`, `e = e^t`, for `t ≤ 0` (or NaN): in `[0, 0.5]`, no
/// cancellation, one division.
#[inline(always)]
unsafe fn sigmoid_nonpos<V: V16>(t: V) -> V {
    // SAFETY: the caller runs on a CPU with `V`'s features (contract of `V16`).
    unsafe {
        let e = exp_nonpos(t);
        e.div(V::splat(1.0).add(e))
    }
}

/// `tanh(x)` lane-wise: exactly ±1 for `|x| ≥ 9.02` and ±inf, `tanh(x) = x` for tiny
/// and subnormal `x` (sign of ±0 kept), NaN for NaN; error bound in the module docs.
///
/// # Safety
/// The CPU must have the features `V` needs (see [`V16`]).
#[inline(always)]
pub(crate) unsafe fn tanh<V: V16>(x: V) -> V {
    // SAFETY: forwarded caller contract.
    unsafe {
        let a = x.abs();
        // Small |x|: odd polynomial on |x| (inf/NaN here are discarded by the select).
        let z = a.mul(a);
        let small = a.mul(z).mul_add(horner(z, &TANH_Q), a);
        // Large |x|: 1 − 2·sigmoid(−2|x|) ∈ [0.55, 1]; NaN propagates.
        let q = sigmoid_nonpos(a.mul(V::splat(-2.0)));
        let large = q.mul_add(V::splat(-2.0), V::splat(1.0));
        // tanh is odd; copysign also gives tanh(−0) = −0.
        a.select_lt(V::splat(TANH_SMALL), small, large).copysign(x)
    }
}

/// `max(x, 0)` lane-wise; NaN stays NaN, `relu(−0.0)` may be either zero.
///
/// # Safety
/// The CPU must have the features `V` needs (see [`V16`]).
#[inline(always)]
pub(crate) unsafe fn relu<V: V16>(x: V) -> V {
    // SAFETY: forwarded caller contract.
    unsafe { x.max_keep_nan(V::zero()) }
}

/// Clamps `x` to `[−c, c]` lane-wise; NaN stays NaN. `c` must be `≥ 0` (not NaN).
///
/// # Safety
/// The CPU must have the features `V` needs (see [`V16`]).
#[inline(always)]
pub(crate) unsafe fn clip<V: V16>(x: V, c: f32) -> V {
    // SAFETY: forwarded caller contract.
    unsafe { x.max_keep_nan(V::splat(-c)).min_keep_nan(V::splat(c)) }
}
