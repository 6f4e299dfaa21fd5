//! ONNX's RNN activation functions ([`Activation`]) over any [`V16`]: [`affine`],
//! [`leaky_relu`], [`thresholded_relu`], [`scaled_tanh`], [`hard_sigmoid`], [`elu`]
//! (with its [`expm1`]), [`softsign`], [`softplus`], and [`activation`], which
//! dispatches on an [`Activation`] (`Relu`, `Tanh`, `Sigmoid` are [`math`]'s).
//!
//! All are `#[inline(always)]` generic functions meant to be instantiated inside the
//! `#[target_feature]` kernels, like [`math`]'s. The definitions are
//! [`Activation::eval`]'s (the oracle of the tests).
//!
//! # Algorithms
//! - `affine(x) = alpha·x + beta`: one [`V16::mul_add`].
//! - `leaky_relu`, `thresholded_relu`, `elu`: a [`V16::select_lt`] between `x` and
//!   the other branch; the compare is false for NaN, so NaN takes the `x` side (or
//!   `clip(x, 0)`, which is 0 for every other `x` and NaN for NaN).
//! - `scaled_tanh(x) = alpha·tanh(beta·x)` with [`math::tanh`].
//! - `hard_sigmoid(x) = min(1, max(0, alpha·x + beta))` with the NaN-keeping min/max.
//! - `expm1(x)` for `x ≤ 0`: with `t = tanh(x/2)` ∈ [−1, 0], `e^x − 1 = 2t/(1 − t)`:
//!   no cancellation (`1 − t` ∈ [1, 2]), the sign and size of `x` near 0 kept, exactly
//!   −1 where `tanh` saturates (`x ≲ −18`) and for −inf.
//! - `elu(x) = x` for `x ≥ 0`, `alpha·expm1(x)` below.
//! - `softsign(x) = x / (1 + |x|)` (NaN for ±inf, `inf/inf`, as [`Activation::eval`]).
//! - `softplus(x) = max(x, 0) + log1p(e^−|x|)` (never overflows, no cancellation), with
//!   `log1p(t)` for `t = e^−|x|` ∈ [0, 1] as `2·atanh(s)`, `s = t/(2 + t)` ∈ [0, 1/3]:
//!   `u = 2s = 2t/(2 + t)` (one rounding, also in the subnormal range), then
//!   `log1p(t) = u + u·w·Q(w)`, `w = u²` ≤ 4/9, `Q` the atanh series
//!   `Σ_{k≥1} w^(k−1) / ((2k+1)·4^k)` cut after 6 terms (truncation ≤ 0.16 ulp, at
//!   `softplus(0)`; it falls off as `w⁷` away from `x = 0`).
//!   +inf gives +inf, −inf exactly 0.
//!
//! NaN in gives NaN out for every function and every parameter.
//!
//! # Accuracy
//! Measured against [`Activation::eval`] (`f64`) at every ISA with
//! `cargo test --release -p rnn-kernels simd::math::tests::onnx -- --nocapture`: every
//! 97th `f32` bit pattern for `expm1` (negative patterns), `elu` (alpha 1), `softsign`
//! and `softplus`; for the parameterised functions every 4099th bit pattern plus a
//! grid of `[−20, 20]`, for each of several parameter sets (negative, zero and large
//! alpha and beta; see the tests). "ulp" is as in [`math`]'s table (spacing of `f32`
//! at the exact result, at least 2⁻¹⁴⁹), except for `affine` and `hard_sigmoid`, where
//! it is taken at `max(|y|, |alpha·x|)`: without FMA (the portable path) `alpha·x` is
//! rounded before `beta` is added, and that rounding is not small relative to a `y`
//! that cancels. "Max abs error" is over the results with `|y| ≤ 1`.
//!
//! | function           | ISA           | max error (ulp) at                  | max abs error at |
//! |--------------------|---------------|-------------------------------------|------------------|
//! | `expm1` (`x ≤ 0`)  | AVX-512, AVX2 | 2.386 (x = −0.015740836)            | 8.53e−8 (x = −1.2093669) |
//! | `expm1` (`x ≤ 0`)  | portable      | 2.386 (x = −0.015740836)            | 8.18e−8 (x = −1.229013) |
//! | `affine`           | AVX-512, AVX2 | 0.500 (correctly rounded)           | — (relative only) |
//! | `affine`           | portable      | 1.000 (x = 1.1203946e7; α −0.75, β 0.5) | — (relative only) |
//! | `leaky_relu`       | all three     | 0.500 (one rounded product)         | — (relative only) |
//! | `thresholded_relu` | all three     | 0 (exact)                           | 0 |
//! | `scaled_tanh`      | all three     | 2.402 (x = −0.87981427; α −2.5, β −0.75) | 1.17e−7 (x = −1.2512207; α 1.5, β 0.5) |
//! | `hard_sigmoid`     | AVX-512, AVX2 | 0.500 (correctly rounded)           | 2.98e−8 (0.5 ulp of 1) |
//! | `hard_sigmoid`     | portable      | 0.750 (x = −0.62547773; α −0.3, β 0.25) | 4.47e−8 (x = −1.2536424; same) |
//! | `elu`              | AVX-512, AVX2 | 2.808 (x = −0.0023278017; α −1.5), 2.384 with α 1 | 1.27e−7 (x = −1.0251465; α −1.5) |
//! | `elu`              | portable      | 2.808 (same), 2.384 with α 1        | 1.35e−7 (x = −0.7774444; α −1.5) |
//! | `softsign`         | all three     | 1.497 (x = 1023.34406)              | 8.92e−8 (x = 1023.34406) |
//! | `softplus`         | all three     | 2.639 (x = −3.4542696)              | 1.39e−7 (x = 0.10717997) |
//!
//! The tests assert, at every ISA: `expm1 ≤ 2.45` ulp and `9e−8` absolute;
//! `affine` and `hard_sigmoid ≤ 0.501` ulp with FMA (the slack is the `f64`
//! reference's own rounding) and `≤ 1` ulp without (their maximum by construction),
//! `hard_sigmoid` absolute `≤ 3e−8` / `5e−8`; `leaky_relu ≤ 0.5` ulp;
//! `thresholded_relu` exact; `scaled_tanh ≤ 2.5` ulp and `1.25e−7`; `elu ≤ 2.85` ulp
//! and `1.4e−7`; `softsign ≤ 1.55` ulp and `9.5e−8`; `softplus ≤ 2.7` ulp and
//! `1.45e−7`. The absolute errors of `scaled_tanh` and `elu` scale with `|alpha|` (the
//! bounds are for the tested sets, `|alpha| ≤ 2.5`).
//!
//! `leaky_relu` and `elu` for `x ≥ 0`, `thresholded_relu` and `hard_sigmoid`'s clamps
//! are exact (`leaky_relu` below 0 is one rounded product). Results of the AVX-512 and
//! AVX2 paths are bit-identical; the portable path (unfused multiply-add) may differ
//! from them within the bounds.

use rnn_reference::Activation;

use crate::simd::math;
use crate::simd::V16;

/// `log1p(t) = u + u·w·Q(w)` with `u = 2t/(2 + t)`, `w = u²`: the atanh series
/// coefficients `1/((2k+1)·4^k)`, highest power first (`k = 6` down to `k = 1`). The
/// first omitted term, `u·w⁷/(15·4⁷)`, is at most 0.16 ulp of the result (at `t = 1`,
/// i.e. `softplus(0)`) and falls off as `w⁷` (below 0.01 ulp for `t < 0.6`).
const LOG1P_Q: [f32; 6] = [
    1.0 / 53_248.0, // k = 6: 1/(13·4⁶)
    1.0 / 11_264.0, // k = 5: 1/(11·4⁵)
    1.0 / 2_304.0,  // k = 4: 1/(9·4⁴)
    1.0 / 448.0,    // k = 3: 1/(7·4³)
    1.0 / 80.0,     // k = 2: 1/(5·4²)
    1.0 / 12.0,     // k = 1: 1/(3·4)
];

/// `alpha·x + beta` lane-wise (one fused multiply-add where the ISA has FMA).
///
/// # Safety
/// The CPU must have the features `V` needs (see [`V16`]).
#[inline(always)]
pub(crate) unsafe fn affine<V: V16>(x: V, alpha: f32, beta: f32) -> V {
    // SAFETY: forwarded caller contract.
    unsafe { x.mul_add(V::splat(alpha), V::splat(beta)) }
}

/// `x` if `x ≥ 0`, else `alpha·x`, lane-wise; NaN stays NaN, −0 stays −0.
///
/// # Safety
/// The CPU must have the features `V` needs (see [`V16`]).
#[inline(always)]
pub(crate) unsafe fn leaky_relu<V: V16>(x: V, alpha: f32) -> V {
    // SAFETY: forwarded caller contract.
    unsafe { x.select_lt(V::zero(), x.mul(V::splat(alpha)), x) }
}

/// `x` if `x > alpha`, else 0, lane-wise; NaN stays NaN (`−0` may come out for
/// negative `x`).
///
/// # Safety
/// The CPU must have the features `V` needs (see [`V16`]).
#[inline(always)]
pub(crate) unsafe fn thresholded_relu<V: V16>(x: V, alpha: f32) -> V {
    // SAFETY: forwarded caller contract.
    unsafe {
        // `clip(x, 0)` is ±0 for every non-NaN `x` (±inf included) and NaN for NaN, the
        // lanes where `alpha < x` is false.
        V::splat(alpha).select_lt(x, x, math::clip(x, 0.0))
    }
}

/// `alpha·tanh(beta·x)` lane-wise; NaN stays NaN (also `beta = 0` with `x = ±inf`, as
/// in `f64`). Error bound in the module docs.
///
/// # Safety
/// The CPU must have the features `V` needs (see [`V16`]).
#[inline(always)]
pub(crate) unsafe fn scaled_tanh<V: V16>(x: V, alpha: f32, beta: f32) -> V {
    // SAFETY: forwarded caller contract.
    unsafe { math::tanh(x.mul(V::splat(beta))).mul(V::splat(alpha)) }
}

/// `max(0, min(1, alpha·x + beta))` lane-wise; NaN stays NaN (also `alpha = 0` with
/// `x = ±inf`, as in `f64`).
///
/// # Safety
/// The CPU must have the features `V` needs (see [`V16`]).
#[inline(always)]
pub(crate) unsafe fn hard_sigmoid<V: V16>(x: V, alpha: f32, beta: f32) -> V {
    // SAFETY: forwarded caller contract.
    unsafe {
        affine(x, alpha, beta)
            .max_keep_nan(V::zero())
            .min_keep_nan(V::splat(1.0))
    }
}

/// `e^x − 1` lane-wise, accurate (relative error in the module docs) for `x ≤ 0`:
/// exactly −1 for `x ≲ −18` and −inf, `expm1(−0) = −0`, NaN for NaN. For `x > 0` the
/// result is not specified (it becomes +inf once `tanh(x/2)` rounds to 1); callers
/// clamp to `x ≤ 0` first, as [`elu`] does.
///
/// # Safety
/// The CPU must have the features `V` needs (see [`V16`]).
#[inline(always)]
pub(crate) unsafe fn expm1<V: V16>(x: V) -> V {
    // SAFETY: forwarded caller contract.
    unsafe {
        // e^x − 1 = 2t/(1 − t), t = tanh(x/2) ∈ [−1, 0]: 1 − t ∈ [1, 2] never cancels.
        let t = math::tanh(x.mul(V::splat(0.5)));
        t.add(t).div(V::splat(1.0).sub(t))
    }
}

/// `x` if `x ≥ 0`, else `alpha·(e^x − 1)`, lane-wise: `−alpha` for −inf, NaN for NaN.
/// Error bound in the module docs.
///
/// # Safety
/// The CPU must have the features `V` needs (see [`V16`]).
#[inline(always)]
pub(crate) unsafe fn elu<V: V16>(x: V, alpha: f32) -> V {
    // SAFETY: forwarded caller contract.
    unsafe {
        // `min(x, 0)` keeps `expm1` in its domain on the lanes that discard it.
        let neg = expm1(x.min_keep_nan(V::zero())).mul(V::splat(alpha));
        x.select_lt(V::zero(), neg, x)
    }
}

/// `x / (1 + |x|)` lane-wise: NaN for NaN and for ±inf (`inf/inf`, as
/// [`Activation::eval`] in `f64`), ±1 for `|x| ≥ 2²⁴`. Error bound in the module docs.
///
/// # Safety
/// The CPU must have the features `V` needs (see [`V16`]).
#[inline(always)]
pub(crate) unsafe fn softsign<V: V16>(x: V) -> V {
    // SAFETY: forwarded caller contract.
    unsafe { x.div(V::splat(1.0).add(x.abs())) }
}

/// `ln(1 + t)` for `t` in `[0, 1]` (or NaN): `2·atanh(t/(2 + t))` by its series (see
/// the module docs); exact for subnormal `t`.
#[inline(always)]
unsafe fn log1p_unit<V: V16>(t: V) -> V {
    // SAFETY: the caller runs on a CPU with `V`'s features (contract of `V16`).
    unsafe {
        // u = 2s = 2t/(2 + t) ∈ [0, 2/3]; t + t is exact.
        let u = t.add(t).div(V::splat(2.0).add(t));
        let w = u.mul(u);
        u.mul(w).mul_add(math::horner(w, &LOG1P_Q), u)
    }
}

/// `ln(1 + e^x)` lane-wise, as `max(x, 0) + log1p(e^−|x|)`: +inf for +inf, 0 for −inf
/// and `x ≤ −104`, `x` itself for `x ≳ 17`, NaN for NaN. Error bound in the module
/// docs.
///
/// # Safety
/// The CPU must have the features `V` needs (see [`V16`]).
#[inline(always)]
pub(crate) unsafe fn softplus<V: V16>(x: V) -> V {
    // SAFETY: forwarded caller contract.
    unsafe {
        let e = math::exp(V::zero().sub(x.abs())); // ∈ [0, 1], or NaN
        x.max_keep_nan(V::zero()).add(log1p_unit(e))
    }
}

/// The ONNX activation `a` lane-wise ([`Activation::eval`]'s definition, the accuracy
/// of the functions above and of [`math`]'s `relu`, `tanh`, `sigmoid`).
///
/// # Safety
/// The CPU must have the features `V` needs (see [`V16`]).
#[inline(always)]
pub(crate) unsafe fn activation<V: V16>(x: V, a: Activation) -> V {
    // SAFETY: forwarded caller contract.
    unsafe {
        match a {
            Activation::Relu => math::relu(x),
            Activation::Tanh => math::tanh(x),
            Activation::Sigmoid => math::sigmoid(x),
            Activation::Affine { alpha, beta } => affine(x, alpha, beta),
            Activation::LeakyRelu { alpha } => leaky_relu(x, alpha),
            Activation::ThresholdedRelu { alpha } => thresholded_relu(x, alpha),
            Activation::ScaledTanh { alpha, beta } => scaled_tanh(x, alpha, beta),
            Activation::HardSigmoid { alpha, beta } => hard_sigmoid(x, alpha, beta),
            Activation::Elu { alpha } => elu(x, alpha),
            Activation::Softsign => softsign(x),
            Activation::Softplus => softplus(x),
            // `Activation` is `#[non_exhaustive]` (another crate), so a wildcard is
            // required; every variant is mapped above. Only a variant added to the
            // reference later could get here, and the configuration's validation would
            // have to let it through first: poison the lanes with NaN rather than
            // compute something plausible but wrong.
            _ => x.mul(V::splat(f32::NAN)),
        }
    }
}
