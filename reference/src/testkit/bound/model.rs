//! Error models: what one operation of the implementation under test may get wrong.
//! [`Kernels`] describes `rnn-kernels` (f32 arithmetic, the activations of
//! `kernels/src/simd/math.rs`); [`StdF32`] the reference itself instantiated in `f32`
//! (and any code using `std`'s `f32` `exp` / `tanh`).

use std::fmt::Debug;

use crate::quant::ActivationQuant;

/// `f32`'s unit roundoff, `2^-24`.
pub const U32: f64 = 1.0 / (1u64 << 24) as f64;

/// `f64`'s unit roundoff, `2^-53`: the f64 reference's own rounding, added to every
/// `f32` rounding so the bound holds against the computed f64 reference rather than
/// the exact result.
pub const U64: f64 = 1.0 / (1u64 << 53) as f64;

/// Absolute slack of one rounding, for underflow: `2^-126`, the smallest normal `f32`.
/// A rounding into the subnormals errs by at most `2^-150` beyond `u |x|`, a flush to
/// zero (`vdpbf16ps` flushes subnormal products and sums) by less than `2^-126`.
pub const ETA: f64 = 1.0 / (1u128 << 126) as f64;

/// One rounding to IEEE binary16 (`half::f16`): `(unit, floor)`, the error being at
/// most `unit |v| + floor` (unit roundoff `2^-11`, half the subnormal spacing `2^-25`).
pub const F16_ROUNDING: (f64, f64) = (1.0 / 2048.0, 1.0 / (1u64 << 25) as f64);

/// One rounding to bfloat16 (`half::bf16`): unit roundoff `2^-8`, half the subnormal
/// spacing `2^-134` (see [`F16_ROUNDING`]).
pub const BF16_ROUNDING: (f64, f64) = (1.0 / 256.0, f64::from_bits((1023 - 134) << 52));

/// Spacing of `f32` at the real number `y`: `2^(k−23)` for `|y|` in `[2^k, 2^(k+1))`,
/// at least `2^−149` (the unit of the accuracy tables of `simd::math`).
pub fn ulp(y: f64) -> f64 {
    let k = ((y.to_bits() >> 52) & 0x7ff) as i64 - 1023;
    f64::from_bits((((k - 23).max(-149) + 1023) as u64) << 52)
}

/// The accuracy of one activation: for every `f32` input `x`, `|computed(x) − f(x)| <=
/// ulps · ulp(f(x))`, and where `|f(x)| <= 1` also `<= abs` (the accuracy tables
/// measure the absolute error over those results only; above 1 no absolute bound can
/// hold: the result's own rounding to `f32` may err by half an ulp, more than `2^-24`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActErr {
    /// Largest error in units of the last place of the exact result.
    pub ulps: f64,
    /// Largest absolute error on results `|f(x)| <= 1` (`f64::INFINITY`: none stated).
    pub abs: f64,
}

impl ActErr {
    /// The largest error on a result of magnitude at most `mag`.
    pub fn at(self, mag: f64) -> f64 {
        let relative = self.ulps * ulp(mag);
        if mag <= 1.0 {
            relative.min(self.abs)
        } else {
            relative
        }
    }
}

/// The accuracy of the activations the kernels use, every ISA: the bounds the tests of
/// `kernels/src/simd/math.rs` assert (`dense_sweep`, and `exhaustive_all_f32` over all
/// 2³² inputs), which are the measured maxima of that module's table rounded up.
pub mod kernel_activations {
    use super::ActErr;

    /// `exp`: 1.05 ulp (measured 1.010).
    pub const EXP: ActErr = ActErr {
        ulps: 1.05,
        abs: f64::INFINITY,
    };
    /// `sigmoid`: 2.5 ulp (measured 2.402), 1.2e-7 absolute (measured 7.09e-8).
    pub const SIGMOID: ActErr = ActErr {
        ulps: 2.5,
        abs: 1.2e-7,
    };
    /// `tanh`: 1.5 ulp (measured 1.456), 1.2e-7 absolute (measured 8.68e-8).
    pub const TANH: ActErr = ActErr {
        ulps: 1.5,
        abs: 1.2e-7,
    };
    /// `expm1` on `x ≤ 0` (ONNX's Elu below 0, before the scale `alpha`): 2.45 ulp
    /// (measured 2.386), 9e-8 absolute (measured 8.53e-8).
    pub const EXPM1: ActErr = ActErr {
        ulps: 2.45,
        abs: 9e-8,
    };
    /// `softplus` (ONNX's Softplus): 2.7 ulp (measured 2.639), 1.45e-7 absolute
    /// (measured 1.39e-7).
    pub const SOFTPLUS: ActErr = ActErr {
        ulps: 2.7,
        abs: 1.45e-7,
    };
}

/// What one operation of an implementation may get wrong: the unit roundoff of its
/// arithmetic and the accuracy of its activations.
pub trait ErrorModel: Copy + Debug + Send + Sync + 'static {
    /// Unit roundoff of additions and multiplications.
    const U: f64;
    /// `exp`.
    const EXP: ActErr;
    /// `tanh`.
    const TANH: ActErr;
    /// `e^x − 1` for `x ≤ 0` (ONNX's Elu).
    const EXPM1: ActErr;
    /// `ln(1 + e^x)` (ONNX's Softplus).
    const SOFTPLUS: ActErr;
    /// The sigmoid as one function with this accuracy, or `None` when it is computed
    /// as `1 / (1 + exp(-x))` from the other operations (as the reference does).
    const SIGMOID: Option<ActErr>;
    /// Whether a product may read a subnormal operand as zero (then it may lose the
    /// whole product).
    const FLUSHES_SUBNORMAL_OPERANDS: bool;
    /// `Some(scheme)` when the matrix products are int8 products on the dequantized
    /// weights, their operands quantized at run time per `scheme`
    /// ([`Real::product_operand`](crate::Real::product_operand) then widens each
    /// operand value's bound by [`operand_error`](crate::quant::error::operand_error)).
    const QUANTIZED: Option<ActivationQuant> = None;
}

/// `rnn-kernels`: `f32` arithmetic (FMA or not, any summation order), the fused
/// activations of `simd::math` ([`kernel_activations`]), and subnormal operands read as
/// zero by `vdpbf16ps` (the AVX512-BF16 input projection).
#[derive(Clone, Copy, Debug)]
pub struct Kernels;

impl ErrorModel for Kernels {
    const U: f64 = U32;
    const EXP: ActErr = kernel_activations::EXP;
    const TANH: ActErr = kernel_activations::TANH;
    const EXPM1: ActErr = kernel_activations::EXPM1;
    const SOFTPLUS: ActErr = kernel_activations::SOFTPLUS;
    const SIGMOID: Option<ActErr> = Some(kernel_activations::SIGMOID);
    const FLUSHES_SUBNORMAL_OPERANDS: bool = true;
}

/// `rnn-kernels` with int8 weights, activations quantized per
/// [`ActivationQuant::PerRow`]: [`Kernels`]' arithmetic around int8 products.
#[derive(Clone, Copy, Debug)]
pub struct Int8PerRow;

/// [`Int8PerRow`] with [`ActivationQuant::PerRowReduced`].
#[derive(Clone, Copy, Debug)]
pub struct Int8PerRowReduced;

/// [`Int8PerRow`] with [`ActivationQuant::OnnxRuntime`].
#[derive(Clone, Copy, Debug)]
pub struct Int8OnnxRuntime;

macro_rules! int8_model {
    ($t:ty, $scheme:expr) => {
        impl ErrorModel for $t {
            const U: f64 = Kernels::U;
            const EXP: ActErr = Kernels::EXP;
            const TANH: ActErr = Kernels::TANH;
            const EXPM1: ActErr = Kernels::EXPM1;
            const SOFTPLUS: ActErr = Kernels::SOFTPLUS;
            const SIGMOID: Option<ActErr> = Kernels::SIGMOID;
            const FLUSHES_SUBNORMAL_OPERANDS: bool = Kernels::FLUSHES_SUBNORMAL_OPERANDS;
            const QUANTIZED: Option<ActivationQuant> = Some($scheme);
        }
    };
}

int8_model!(Int8PerRow, ActivationQuant::PerRow);
int8_model!(Int8PerRowReduced, ActivationQuant::PerRowReduced);
int8_model!(Int8OnnxRuntime, ActivationQuant::OnnxRuntime);

/// `f32` code on `std`'s `f32::exp` and `f32::tanh` (glibc's `expf`, `tanhf` on
/// Linux): the reference instantiated in `f32`, the bench-suite's unfused baseline.
/// glibc documents at most 1 ulp for `expf` and 2 ulp for `tanhf` on x86_64
/// (`libm-test-ulps`); the sigmoid is composed, `1 / (1 + exp(-x))`; ONNX's other
/// activations are evaluated in `f64` and rounded once.
#[derive(Clone, Copy, Debug)]
pub struct StdF32;

impl ErrorModel for StdF32 {
    const U: f64 = U32;
    const EXP: ActErr = ActErr {
        ulps: 1.0,
        abs: f64::INFINITY,
    };
    const TANH: ActErr = ActErr {
        ulps: 2.0,
        abs: f64::INFINITY,
    };
    // ONNX's other activations: evaluated in `f64` and rounded once
    // (`Real::gate_activation`).
    const EXPM1: ActErr = ActErr {
        ulps: 1.0,
        abs: f64::INFINITY,
    };
    const SOFTPLUS: ActErr = ActErr {
        ulps: 1.0,
        abs: f64::INFINITY,
    };
    const SIGMOID: Option<ActErr> = None;
    const FLUSHES_SUBNORMAL_OPERANDS: bool = false;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulp_is_the_f32_spacing() {
        assert_eq!(ulp(1.0), U32 * 2.0);
        assert_eq!(ulp(0.75), U32);
        assert_eq!(ulp(-3.0), 4.0 * U32);
        assert_eq!(ulp(0.0), f64::from(f32::from_bits(1)));
        assert_eq!(ulp(1e-40), f64::from(f32::from_bits(1)));
        assert_eq!(kernel_activations::TANH.at(0.9), 1.5 * U32);
        assert_eq!(kernel_activations::SIGMOID.at(0.9), 1.2e-7);
    }

    /// Above 1 only the relative bound holds: a result rounded to `f32` may be off by
    /// half an ulp, which the absolute bounds (measured where `|y| <= 1`) undercut.
    /// (Softplus at `x` near 11.7 once erred by more than its absolute bound, found by
    /// the `int8_vs_reference` fuzz target.)
    #[test]
    fn absolute_bounds_hold_only_up_to_one() {
        for y in [1.5, 11.735711, 1e6] {
            let at = kernel_activations::SOFTPLUS.at(y);
            assert_eq!(at, 2.7 * ulp(y));
            assert!(at >= 0.5 * ulp(y));
        }
        assert_eq!(kernel_activations::SOFTPLUS.at(1.0), 1.45e-7);
    }
}
