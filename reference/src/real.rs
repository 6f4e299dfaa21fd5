//! The scalar types the reference is generic over: `f32` and `f64`.

use std::borrow::Cow;
use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

use crate::activation::Activation;

/// A floating-point scalar (`f32` or `f64`) with the few functions the cell equations
/// need. Plain `std` math, nothing clever: this is the definition of correct.
pub trait Real:
    Copy
    + Debug
    + PartialOrd
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
{
    /// `0`.
    const ZERO: Self;
    /// `1`.
    const ONE: Self;

    /// Converts from `f64` (rounding to nearest for `f32`).
    fn from_f64(v: f64) -> Self;
    /// Converts to `f64` (exact).
    fn to_f64(self) -> f64;
    /// `e^self`.
    fn exp(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Whether `self` is NaN.
    fn is_nan(self) -> bool;
    /// Square root (correctly rounded, as IEEE 754 requires of every implementation).
    fn sqrt(self) -> Self;

    /// Logistic sigmoid `1 / (1 + exp(-x))`: exactly 0 at `-inf`, 1 at `+inf`, NaN for NaN.
    fn sigmoid(self) -> Self {
        Self::ONE / (Self::ONE + (-self).exp())
    }

    /// `max(0, x)`, except that NaN stays NaN.
    fn relu(self) -> Self {
        if self.is_nan() || self > Self::ZERO {
            self
        } else {
            Self::ZERO
        }
    }

    /// `self + t (b - self)`, i.e. `(1 - t) self + t b`, evaluated in that form (PyTorch
    /// ATen's GRU update `n + z (h - n)`). One method rather than three operations so
    /// that an error-tracking `Real` (the test kit's `Bounded`) sees `self` once: an
    /// error in `self` moves the result by `(1 - t)` times it, not `(1 + t)`.
    fn lerp_to(self, b: Self, t: Self) -> Self {
        self + t * (b - self)
    }

    /// The bound on an implementation's error that an error-tracking number carries
    /// (the test kit's `Bounded`); `None` for plain floats. Lets code that must
    /// know how far an implementation's value may be (the int8 oracle: may a value
    /// round to another code?) use the rigorous bound where one is tracked.
    fn error_bound(self) -> Option<f64> {
        None
    }

    /// `self` as an implementation holds it once stored (an `f32` array element): the
    /// value itself for plain floats. The test kit's error-tracking number rounds a
    /// pending sum here, so that a later sum over stored values (a layer norm's mean
    /// of the gate sums) is bounded as one sum of those values, each with its own
    /// error, not flattened into one sum of all their terms (a bound `n` times wider).
    fn stored(self) -> Self {
        self
    }

    /// The operand rows `a` (`rows × k`) of matrix products as the implementation this
    /// number models reads them: unchanged, except under an error-tracking number
    /// that models int8 products (the test kit's `Bounded` with an int8 error model),
    /// which widens each value's bound by the error of its quantized code. The slice
    /// is one quantization block (or `k`-wide rows of blocks): [`forward`](crate::forward)
    /// passes each layer's whole input, [`step`](crate::step) the step's `h` and its
    /// second operands (a projection's `o ⊙ tanh(c')`, a reset-before GRU's `r ⊙ h`),
    /// [`output_layer`](crate::output_layer) all its rows.
    fn product_operand(a: &[Self], _k: usize) -> Cow<'_, [Self]> {
        Cow::Borrowed(a)
    }

    /// ONNX activation `a` at `self`: Sigmoid, Tanh and Relu through the methods above
    /// (so a configuration that names the standard functions computes exactly what the
    /// standard cell does), the others through [`Activation::eval`] in `f64`, rounded
    /// once. The test kit's error-tracking number overrides it.
    fn gate_activation(self, a: Activation) -> Self {
        match a {
            Activation::Sigmoid => self.sigmoid(),
            Activation::Tanh => self.tanh(),
            Activation::Relu => self.relu(),
            _ => Self::from_f64(a.eval(self.to_f64())),
        }
    }

    /// The slope of ONNX activation `a` at `self`, given its value `y` there: `y (1 −
    /// y)` and `1 − y²` for the sigmoid and tanh (as the standard cells'), else
    /// [`Activation::derivative_f64`] rounded once. The test kit's error-tracking
    /// number overrides it.
    fn gate_slope(self, a: Activation, y: Self) -> Self {
        match a {
            Activation::Sigmoid => y * (Self::ONE - y),
            Activation::Tanh => Self::ONE - y * y,
            _ => Self::from_f64(a.derivative_f64(self.to_f64())),
        }
    }

    /// Clamps to `[-c, c]` (ONNX `clip`, `c > 0`); NaN stays NaN.
    fn clamp_to(self, c: Self) -> Self {
        if self > c {
            c
        } else if self < -c {
            -c
        } else {
            self
        }
    }
}

macro_rules! impl_real {
    ($t:ty) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;

            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
        }
    };
}

impl_real!(f32);
impl_real!(f64);

#[cfg(test)]
mod tests {
    use super::Real;
    use crate::activation::Activation;

    /// For the sigmoid and tanh, `gate_activation` and `gate_slope` are the standard
    /// cells' own formulas in the number type (`sigmoid`, `tanh`, `y (1 - y)`, `1 - y²`),
    /// bit for bit, so a config naming the standard functions computes exactly what
    /// the standard cell does; `Activation::eval` / `derivative_f64` in `f64` rounded
    /// once differ from them in the last bit at some of these `f32` points (checked,
    /// so the test can tell the two apart).
    #[test]
    fn standard_gate_functions_are_the_cells_own_formulas() {
        let (mut sig_differs, mut tanh_differs, mut slopes_differ) = (false, false, false);
        for i in 0..20_000 {
            let x = (i as f32 - 10_000.0) * 1e-3;
            let (s, t) = (x.sigmoid(), x.tanh());
            let (ds, dt) = (s * (1.0 - s), 1.0 - t * t);
            assert_eq!(
                x.gate_activation(Activation::Sigmoid).to_bits(),
                s.to_bits()
            );
            assert_eq!(x.gate_activation(Activation::Tanh).to_bits(), t.to_bits());
            assert_eq!(x.gate_slope(Activation::Sigmoid, s).to_bits(), ds.to_bits());
            assert_eq!(x.gate_slope(Activation::Tanh, t).to_bits(), dt.to_bits());
            let once = |v: f64| v as f32;
            sig_differs |= once(Activation::Sigmoid.eval(f64::from(x))) != s;
            tanh_differs |= once(Activation::Tanh.eval(f64::from(x))) != t;
            slopes_differ |= once(Activation::Sigmoid.derivative_f64(f64::from(x))) != ds
                && once(Activation::Tanh.derivative_f64(f64::from(x))) != dt;
        }
        assert!(sig_differs && tanh_differs && slopes_differ);
    }

    fn special<T: Real>() {
        let inf = T::from_f64(f64::INFINITY);
        let nan = T::from_f64(f64::NAN);
        assert_eq!(inf.sigmoid(), T::ONE);
        assert_eq!((-inf).sigmoid(), T::ZERO);
        assert!(nan.sigmoid().is_nan());
        assert_eq!(T::ZERO.sigmoid(), T::from_f64(0.5));
        assert!(nan.relu().is_nan());
        assert_eq!(T::from_f64(-2.0).relu(), T::ZERO);
        assert_eq!(T::from_f64(2.5).relu(), T::from_f64(2.5));
        assert_eq!(inf.relu(), inf);
        let c = T::from_f64(0.5);
        assert!(nan.clamp_to(c).is_nan());
        assert_eq!(T::from_f64(3.0).clamp_to(c), c);
        assert_eq!(T::from_f64(-3.0).clamp_to(c), -c);
        assert_eq!(inf.clamp_to(c), c);
        assert_eq!((-inf).clamp_to(c), -c);
        assert_eq!(T::from_f64(0.25).clamp_to(c), T::from_f64(0.25));
        assert_eq!(inf.tanh(), T::ONE);
        assert_eq!((-inf).tanh(), -T::ONE);
        assert!(nan.tanh().is_nan());
        assert_eq!(T::from_f64(1.5).to_f64(), 1.5);
    }

    #[test]
    fn special_values_f32() {
        special::<f32>();
    }

    #[test]
    fn special_values_f64() {
        special::<f64>();
    }

    #[test]
    fn sigmoid_saturates_without_nan() {
        assert_eq!(f32::from_f64(-1000.0).sigmoid(), 0.0);
        assert_eq!(f32::from_f64(1000.0).sigmoid(), 1.0);
        assert_eq!((-1000.0f64).sigmoid(), 0.0);
        assert_eq!(1000.0f64.sigmoid(), 1.0);
    }
}
