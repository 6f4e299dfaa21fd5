//! The backward pass's side of ONNX's activations: each function's value and slope at
//! a (clipped) pre-activation, lane-wise, for the training kernels' gate gradients.
//!
//! The slopes are those of `rnn_reference::Activation::derivative`: at a kink the
//! branch taken (`Relu`, `ThresholdedRelu`, `HardSigmoid` the flat side, `LeakyRelu`
//! and `Elu` the identity); a NaN argument gives a NaN slope, except Relu's (0, as the
//! standard relu cell's backward has always given). Infinite arguments give the
//! limit (0 for the saturating functions, `alpha` for LeakyRelu below 0).

use rnn_reference::Activation;

use super::{activations, math, V16};

/// `x` where `x` is NaN, else 0 (`min(max(x, −0), 0)` keeps NaN and maps every other
/// value, ±inf included, to zero): added to a slope, it makes a NaN argument's slope
/// NaN and leaves the others as they are.
///
/// # Safety
/// `V`'s ISA must be available.
#[inline(always)]
unsafe fn nan_of<V: V16>(x: V) -> V {
    // SAFETY: the caller guarantees V's ISA.
    unsafe { math::clip(x, 0.0) }
}

/// `(a(x), a'(x))` lane-wise.
///
/// # Safety
/// `V`'s ISA must be available.
#[inline(always)]
pub(crate) unsafe fn value_and_slope<V: V16>(x: V, a: Activation) -> (V, V) {
    // SAFETY: the caller guarantees V's ISA (every call below is a V16 operation or
    // a function of `math` / `activations` over it).
    unsafe {
        let (one, zero) = (V::splat(1.0), V::zero());
        let y = activations::activation(x, a);
        let slope = match a {
            Activation::Sigmoid => return (y, y.mul(one.sub(y))),
            Activation::Tanh => return (y, y.mul(y).mul_add(V::splat(-1.0), one)),
            Activation::Relu => return (y, zero.select_lt(x, one, zero)),
            Activation::Affine { alpha, .. } => V::splat(alpha),
            Activation::LeakyRelu { alpha } => x.select_lt(zero, V::splat(alpha), one),
            Activation::ThresholdedRelu { alpha } => V::splat(alpha).select_lt(x, one, zero),
            Activation::ScaledTanh { alpha, beta } => {
                let t = math::tanh(V::splat(beta).mul(x));
                let dt = t.mul(t).mul_add(V::splat(-1.0), one);
                V::splat(alpha * beta).mul(dt)
            }
            Activation::HardSigmoid { alpha, beta } => {
                let v = V::splat(alpha).mul_add(x, V::splat(beta));
                // alpha where 0 < v < 1 (false for NaN v), else 0.
                let above = zero.select_lt(v, V::splat(alpha), zero);
                v.select_lt(one, above, zero)
            }
            Activation::Elu { alpha } => {
                // Below 0, y = alpha (e^x − 1), so alpha e^x = y + alpha.
                x.select_lt(zero, y.add(V::splat(alpha)), one)
            }
            Activation::Softsign => {
                let d = one.add(x.abs());
                one.div(d.mul(d))
            }
            Activation::Softplus => math::sigmoid(x),
            // `Activation` is `#[non_exhaustive]`; `RnnConfig::validate` lets no other
            // function through. NaN, never a silent wrong value.
            _ => V::splat(f32::NAN),
        };
        (y, slope.add(nan_of(x)))
    }
}
