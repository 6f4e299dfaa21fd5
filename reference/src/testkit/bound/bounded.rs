//! [`Bounded`]: a number carried through the reference's own code (it is a [`Real`])
//! together with a rigorous bound on how far an implementation's `f32` value of the
//! same expression may be from it. The rules of every operation live here; see the
//! module docs of [`super`] for the derivation.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::marker::PhantomData;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

use super::model::{ActErr, ErrorModel, ETA, U64};
use crate::quant::error::{operand_error, scale_bound};
use crate::{Activation, Real};

/// `lsb` of zero: zero lies on every grid.
const ANY_GRID: i32 = i32::MAX;

/// Beyond this magnitude an `f32` computation may overflow: the bound gives up
/// (infinite).
const F32_MAX: f64 = f32::MAX as f64;

/// A value of the f64 reference and a bound on the error of an implementation's value
/// of the same expression, under the error model `M`.
///
/// A sum is kept *pending* (its leaves counted, their magnitudes summed) until its
/// value is used by anything but another addition: the rounding error of a sum of `n`
/// leaves in **any** order and grouping, with or without fused multiply-adds, is at
/// most `γ_k Σ|leaf|`, `k = n − 1` (plus one if a leaf is a rounded product),
/// `γ_k = k u / (1 − k u)` (Higham, *Accuracy and Stability of Numerical Algorithms*,
/// §3.1). So the bound holds whatever the summation order of the implementation.
#[derive(Clone, Copy, Debug)]
pub struct Bounded<M> {
    /// The value, computed in `f64` by the same operations in the same order as the
    /// f64 reference (so bit for bit its value).
    v: f64,
    /// Settled part of the bound: the errors of the operands (of every leaf while
    /// pending) and of the roundings already accounted for.
    e: f64,
    /// Pending sum: `Σ (|leaf| + its error)`; 0 when settled.
    mag: f64,
    /// Leaves of the pending sum; 0 when settled.
    n: u32,
    /// Whether a leaf of the pending sum is a (rounded) product.
    prod: bool,
    /// `Some(g)` when every leaf is exactly the implementation's value and a multiple
    /// of `2^g`: a sum of such values is exact in any order while its magnitudes stay
    /// below `2^(g + 24)`.
    grid: Option<i32>,
    model: PhantomData<M>,
}

/// Exponent of the least significant set bit of `v` ([`ANY_GRID`] for 0).
fn lsb(v: f64) -> i32 {
    if v == 0.0 || !v.is_finite() {
        return ANY_GRID;
    }
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let man = bits & ((1u64 << 52) - 1);
    if exp == 0 {
        -1074 + man.trailing_zeros() as i32
    } else {
        exp - 1075 + (man | (1u64 << 52)).trailing_zeros() as i32
    }
}

/// `x * y`, with `0 * inf = 0` (an exact zero contributes nothing, whatever the other
/// bound).
fn mul0(x: f64, y: f64) -> f64 {
    if x == 0.0 || y == 0.0 {
        0.0
    } else {
        x * y
    }
}

/// `γ_k` for the model's unit roundoff plus the f64 reference's own.
fn gamma<M: ErrorModel>(k: u32) -> f64 {
    let ku = f64::from(k) * (M::U + U64);
    ku / (1.0 - ku)
}

/// The smallest `|ξ|` over `[v − e, v + e]`: where an even slope that falls with `|ξ|`
/// (`sigmoid'`, `tanh'`) is largest.
fn closest_to_zero(v: f64, e: f64) -> f64 {
    if v.abs() <= e {
        0.0
    } else {
        v.abs() - e
    }
}

impl<M: ErrorModel> Bounded<M> {
    const fn new(v: f64, e: f64, grid: Option<i32>) -> Self {
        Bounded {
            v,
            e,
            mag: 0.0,
            n: 0,
            prod: false,
            grid,
            model: PhantomData,
        }
    }

    /// An input of the implementation: exact if `v` is an `f32` value, else off by its
    /// rounding to `f32`.
    pub fn exact(v: f64) -> Self {
        let r = f64::from(v as f32);
        if r == v || !v.is_finite() {
            Self::new(v, 0.0, Some(lsb(v)))
        } else {
            Self::new(v, (r - v).abs(), None)
        }
    }

    /// The f64 reference's value.
    pub fn value(self) -> f64 {
        self.v
    }

    /// The bound on `|implementation − value|` (a pending sum's rounding included).
    pub fn bound(self) -> f64 {
        self.settle().e
    }

    fn is_exact_zero(&self) -> bool {
        self.n == 0 && self.v == 0.0 && self.e == 0.0
    }

    /// `(Σ (|leaf| + error), leaves)` of `self` as part of a sum; an infinite (or NaN)
    /// leaf is exact and adds no magnitude (`±inf + finite` is `±inf` in any order).
    fn summand(&self) -> (f64, u32) {
        if self.n > 0 {
            (self.mag, self.n)
        } else if self.v.is_finite() {
            (self.v.abs() + self.e, 1)
        } else {
            (0.0, 1)
        }
    }

    /// Accounts for the rounding of a pending sum (see the type's docs); a settled
    /// value is returned as is.
    fn settle(self) -> Self {
        if self.n == 0 {
            return self;
        }
        let rounds = self.n - 1 + u32::from(self.prod);
        let exact = self.grid.is_some_and(|g| {
            g == ANY_GRID || (g >= -126 && self.mag < f64::powi(2.0, g.saturating_add(24)))
        });
        let r = if exact || rounds == 0 {
            0.0
        } else if rounds == 1 {
            // One rounding, of the result itself.
            (M::U + U64) * (self.v.abs() + self.e) + ETA
        } else {
            gamma::<M>(rounds) * self.mag + f64::from(rounds) * ETA
        };
        let e = if self.mag > F32_MAX {
            // A finite partial sum may overflow in f32.
            f64::INFINITY
        } else if !self.v.is_finite() {
            // An infinite leaf (of known sign) decides the sum exactly; NaN is
            // compared by class.
            if self.e.is_finite() {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            self.e + r
        };
        Self::new(self.v, e, exact.then(|| lsb(self.v))).guarded()
    }

    /// A settled value that may have overflowed in `f32` gets an infinite bound.
    fn guarded(mut self) -> Self {
        if self.v.abs() + self.e > F32_MAX && self.v.is_finite() {
            self.e = f64::INFINITY;
        }
        self
    }

    /// A monotone activation of `x` with value `y`, largest slope `slope` on
    /// `[x − e, x + e]`, accuracy `act`: the propagated error plus the activation's own
    /// (at most `act` at a result of magnitude `|y|` + the propagated error) plus the
    /// f64 reference's own (a few ulp of f64).
    fn activation(y: f64, slope: f64, e_in: f64, act: ActErr) -> Self {
        let prop = mul0(slope, e_in);
        let mag = y.abs() + prop;
        Self::new(y, prop + act.at(mag) + 4.0 * U64 * mag, None).guarded()
    }
}

impl<M: ErrorModel> PartialEq for Bounded<M> {
    fn eq(&self, other: &Self) -> bool {
        self.v == other.v
    }
}

/// Ordered by value, as the reference's comparisons (`relu`, `clamp_to`) see it.
impl<M: ErrorModel> PartialOrd for Bounded<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.v.partial_cmp(&other.v)
    }
}

impl<M: ErrorModel> Add for Bounded<M> {
    type Output = Self;

    fn add(self, b: Self) -> Self {
        if self.is_exact_zero() {
            return b;
        }
        if b.is_exact_zero() {
            return self;
        }
        let ((ma, na), (mb, nb)) = (self.summand(), b.summand());
        Bounded {
            v: self.v + b.v,
            e: self.e + b.e,
            mag: ma + mb,
            n: na + nb,
            prod: self.prod || b.prod,
            grid: self.grid.zip(b.grid).map(|(x, y)| x.min(y)),
            model: PhantomData,
        }
    }
}

impl<M: ErrorModel> AddAssign for Bounded<M> {
    fn add_assign(&mut self, b: Self) {
        *self = *self + b;
    }
}

impl<M: ErrorModel> Neg for Bounded<M> {
    type Output = Self;

    fn neg(self) -> Self {
        Bounded { v: -self.v, ..self }
    }
}

impl<M: ErrorModel> Sub for Bounded<M> {
    type Output = Self;

    fn sub(self, b: Self) -> Self {
        self + -b
    }
}

impl<M: ErrorModel> Mul for Bounded<M> {
    type Output = Self;

    /// `|â b̂ − a b| <= |a| e_b + |b| e_a + e_a e_b`; the product's rounding is pending
    /// (it is a leaf of the sum it joins, or settled alone).
    fn mul(self, b: Self) -> Self {
        let (a, b) = (self.settle(), b.settle());
        let v = a.v * b.v;
        if v == 0.0 && (a.is_exact_zero() || b.is_exact_zero()) {
            // An exact zero times a finite value: an exact zero, whatever the other
            // operand's error.
            return Self::ZERO;
        }
        if !v.is_finite() {
            // `±inf` times a value whose sign is certain is exactly `±inf`.
            let certain = |x: &Self| x.e == 0.0 || x.v.abs() > x.e;
            let e = if certain(&a) && certain(&b) {
                0.0
            } else {
                f64::INFINITY
            };
            return Self::new(v, e, None);
        }
        let subnormal = |x: f64| x != 0.0 && x.abs() < f64::from(f32::MIN_POSITIVE);
        let flushed = M::FLUSHES_SUBNORMAL_OPERANDS && (subnormal(a.v) || subnormal(b.v));
        Bounded {
            v,
            e: mul0(a.v.abs(), b.e)
                + mul0(b.v.abs(), a.e)
                + mul0(a.e, b.e)
                + if flushed { v.abs() } else { 0.0 },
            mag: (a.v.abs() + a.e) * (b.v.abs() + b.e),
            n: 1,
            prod: true,
            grid: a.grid.zip(b.grid).filter(|_| !flushed).map(|_| lsb(v)),
            model: PhantomData,
        }
    }
}

impl<M: ErrorModel> Div for Bounded<M> {
    type Output = Self;

    /// `|â/b̂ − a/b| <= (|b| e_a + |a| e_b) / (|b| (|b| − e_b))` for `e_b < |b|`, plus
    /// one rounding (none when both are exact and the quotient is an `f32`).
    fn div(self, b: Self) -> Self {
        let (a, b) = (self.settle(), b.settle());
        let v = a.v / b.v;
        let bm = b.v.abs();
        let prop = if a.e == 0.0 && b.e == 0.0 {
            0.0
        } else if bm <= b.e {
            f64::INFINITY
        } else {
            (bm * a.e + mul0(a.v.abs(), b.e)) / (bm * (bm - b.e))
        };
        let exact =
            a.grid.is_some() && b.grid.is_some() && f64::from(v as f32) == v && v * b.v == a.v;
        if exact {
            return Self::new(v, 0.0, Some(lsb(v)));
        }
        let mag = v.abs() + prop;
        Self::new(v, prop + (M::U + U64) * mag + ETA, None).guarded()
    }
}

impl<M: ErrorModel> Real for Bounded<M> {
    const ZERO: Self = Self::new(0.0, 0.0, Some(ANY_GRID));
    const ONE: Self = Self::new(1.0, 0.0, Some(0));

    fn from_f64(v: f64) -> Self {
        Self::exact(v)
    }

    fn error_bound(self) -> Option<f64> {
        Some(self.bound())
    }

    fn stored(self) -> Self {
        self.settle()
    }

    fn to_f64(self) -> f64 {
        self.v
    }

    /// Increasing and convex: `|exp(x̂) − exp(x)| <= exp(x) (exp(e) − 1)`.
    fn exp(self) -> Self {
        let x = self.settle();
        let y = x.v.exp();
        let prop = mul0(y, x.e.exp_m1());
        let mag = y + prop;
        Self::new(y, prop + M::EXP.at(mag) + 4.0 * U64 * mag, None).guarded()
    }

    /// Slope `1 / cosh²`, largest at the point of `[x − e, x + e]` nearest 0; `tanh(±0)`
    /// is exactly `±0` (every implementation keeps tiny arguments).
    fn tanh(self) -> Self {
        let x = self.settle();
        if x.is_exact_zero() {
            return x;
        }
        let c = closest_to_zero(x.v, x.e).cosh();
        Self::activation(x.v.tanh(), 1.0 / (c * c), x.e, M::TANH)
    }

    fn is_nan(self) -> bool {
        self.v.is_nan()
    }

    /// `|√x̂ − √x| = |x̂ − x| / (√x̂ + √x) <= e / (√max(x − e, 0) + √x)`, and never
    /// more than `√e`; then one correct rounding.
    fn sqrt(self) -> Self {
        let x = self.settle();
        let y = x.v.sqrt();
        if x.v.is_nan() || x.v < 0.0 {
            return Self::new(y, f64::INFINITY, None); // a NaN to come, in any case
        }
        let prop = if x.e == 0.0 {
            0.0
        } else {
            let lo = (x.v - x.e).max(0.0).sqrt();
            (x.e / (lo + y)).min(x.e.sqrt())
        };
        if prop == 0.0 && x.grid.is_some() && f64::from(y as f32) == y && y * y == x.v {
            return Self::new(y, 0.0, Some(lsb(y)));
        }
        let mag = y + prop;
        Self::new(y, prop + (M::U + U64) * mag + ETA, None).guarded()
    }

    /// The fused sigmoid of the model (slope `q (1 − q)`, `q = sigmoid(−|ξ|)`), or the
    /// reference's composition `1 / (1 + exp(−x))` of bounded operations.
    fn sigmoid(self) -> Self {
        match M::SIGMOID {
            Some(act) => {
                let x = self.settle();
                let t = (-closest_to_zero(x.v, x.e)).exp();
                let q = t / (1.0 + t);
                Self::activation(1.0 / (1.0 + (-x.v).exp()), q * (1.0 - q), x.e, act)
            }
            None => Self::ONE / (Self::ONE + (-self).exp()),
        }
    }

    /// `a + t (b − a)` with `a`'s error entering once: in exact arithmetic the error is
    /// `(1 − t) α + t β + (b − a) τ + τ (β − α)`; then the roundings of the
    /// subtraction (scaled by `t`), the product and the addition, each skipped where it
    /// is exact (exact operands whose difference is an `f32`, a difference that is a
    /// power of two, an exact zero `a`).
    fn lerp_to(self, b: Self, t: Self) -> Self {
        let (a, b, t) = (self.settle(), b.settle(), t.settle());
        let d = b.v - a.v;
        let v = a.v + t.v * d;
        if !v.is_finite() {
            // Compared by class.
            return Self::new(v, 0.0, None);
        }
        let u = M::U + U64;
        let prop = mul0((1.0 - t.v).abs(), a.e)
            + mul0(t.v.abs(), b.e)
            + mul0(d.abs(), t.e)
            + mul0(t.e, a.e + b.e);
        let d_exact = a.grid.is_some() && b.grid.is_some() && f64::from(d as f32) == d;
        let d_mag = d.abs() + a.e + b.e;
        let r_sub = if d_exact { 0.0 } else { u * d_mag + ETA };
        let t_mag = t.v.abs() + t.e;
        let power_of_two = d_exact && d.abs().to_bits() & ((1u64 << 52) - 1) == 0;
        let r_mul = if power_of_two {
            ETA
        } else {
            u * t_mag * (d_mag + r_sub) + ETA
        };
        let before_add = prop + t_mag * r_sub + r_mul;
        let r_add = if a.is_exact_zero() {
            0.0
        } else {
            u * (v.abs() + before_add) + ETA
        };
        Self::new(v, before_add + r_add, None).guarded()
    }

    /// Under an int8 model ([`ErrorModel::QUANTIZED`]) every value's bound grows by
    /// [`operand_error`] at the largest scale its block can get: whatever the
    /// implementation's values, they lie in `[min (v − e), max (v + e)]` over the block
    /// (each `k`-wide row for a per-row scheme, else the whole slice), which bounds its
    /// range and so its scale ([`scale_bound`]). Unchanged under other models.
    fn product_operand(a: &[Self], k: usize) -> Cow<'_, [Self]> {
        let Some(scheme) = M::QUANTIZED else {
            return Cow::Borrowed(a);
        };
        let qmax = scheme.qmax();
        let block = if scheme.per_row() { k } else { a.len() };
        let mut out = Vec::with_capacity(a.len());
        for rows in a.chunks(block.max(1)) {
            let rows: Vec<Self> = rows.iter().map(|x| x.settle()).collect();
            let (lo, hi) = rows.iter().fold((0.0f64, 0.0f64), |(lo, hi), x| {
                (lo.min(x.v - x.e), hi.max(x.v + x.e))
            });
            let s = scale_bound(lo, hi, qmax);
            out.extend(rows.iter().map(|&x| {
                if s == 0.0 {
                    // Every value is exactly 0, and so is its code's error.
                    return x;
                }
                let e = if s.is_finite() && x.v.is_finite() {
                    x.e + operand_error(x.v, x.e, s, qmax)
                } else {
                    f64::INFINITY
                };
                Self::new(x.v, e, None).guarded()
            }));
        }
        Cow::Owned(out)
    }

    /// ONNX's activations, each bounded as the kernels compute it: `Affine`,
    /// `ScaledTanh` and `Softsign` composed from the bounded operations (products,
    /// sums, `tanh`, a division: any order, with or without FMA); `HardSigmoid` an
    /// affine map clamped to `[0, 1]` (exact, 1-Lipschitz, flat outside); `LeakyRelu`,
    /// `Elu` and `Softplus` through their largest slope on `[x − e, x + e]` and the
    /// model's accuracy of the function (a rounded product for `LeakyRelu`, `EXPM1`
    /// and a rounded product for `Elu`, `SOFTPLUS`); `ThresholdedRelu` exact, except
    /// where the interval straddles the threshold: then either branch may be taken,
    /// and the bound is `|x| + e`.
    fn gate_activation(self, a: Activation) -> Self {
        let x = self.settle();
        let c = |v: f32| Self::exact(f64::from(v));
        // One rounding of a result of magnitude `mag`, in ulp.
        let rounded = ActErr {
            ulps: 0.5 + 1e-9,
            abs: f64::INFINITY,
        };
        let (lo, hi) = (x.v - x.e, x.v + x.e);
        match a {
            Activation::Sigmoid => x.sigmoid(),
            Activation::Tanh => x.tanh(),
            Activation::Relu => x.relu(),
            Activation::Affine { alpha, beta } => (c(alpha) * x + c(beta)).settle(),
            Activation::ScaledTanh { alpha, beta } => (c(alpha) * (c(beta) * x).tanh()).settle(),
            Activation::Softsign => {
                let abs = Self::new(x.v.abs(), x.e, x.grid);
                x / (Self::ONE + abs)
            }
            Activation::HardSigmoid { alpha, beta } => {
                let z = (c(alpha) * x + c(beta)).settle();
                let v = if z.v.is_nan() {
                    z.v
                } else {
                    z.v.clamp(0.0, 1.0)
                };
                let flat = z.v - z.e >= 1.0 || z.v + z.e <= 0.0;
                Self::new(v, if flat { 0.0 } else { z.e }, None)
            }
            Activation::LeakyRelu { alpha } => {
                if x.v.is_nan() || lo >= 0.0 {
                    return x;
                }
                let al = f64::from(alpha).abs();
                let slope = if hi < 0.0 { al } else { al.max(1.0) };
                Self::activation(a.eval(x.v), slope, x.e, rounded)
            }
            Activation::ThresholdedRelu { alpha } => {
                let t = f64::from(alpha);
                if x.v.is_nan() || lo > t {
                    return x;
                }
                let y = a.eval(x.v);
                let e = if hi <= t { 0.0 } else { x.v.abs() + x.e };
                Self::new(y, e, None)
            }
            Activation::Elu { alpha } => {
                if x.v.is_nan() || lo >= 0.0 {
                    return x;
                }
                // e^x − 1 has slope e^ξ ≤ e^min(hi, 0); then the product by alpha.
                let em1 = Self::activation(x.v.exp_m1(), hi.min(0.0).exp(), x.e, M::EXPM1);
                let neg = (c(alpha) * em1).settle();
                if hi < 0.0 {
                    return neg;
                }
                // Either branch: Elu is continuous at 0 with slopes 1 and alpha e^ξ.
                let slope = f64::from(alpha).abs().max(1.0);
                let e = mul0(slope, x.e) + neg.e;
                Self::new(a.eval(x.v), e, None).guarded()
            }
            Activation::Softplus => {
                // Increasing slope sigmoid(ξ), largest at `hi`.
                let slope = 1.0 / (1.0 + (-hi).exp());
                Self::activation(a.eval(x.v), slope, x.e, M::SOFTPLUS)
            }
        }
    }

    /// The slope the kernels compute (`simd::activation_slopes`), bounded like the
    /// values: constants where the function is piecewise linear (exact away from a
    /// kink; the callers skip problems with an argument within its error of one),
    /// Elu's `y + alpha` below 0, the scaled tanh's `alpha beta (1 − t²)`, softsign's
    /// `1 / (1 + |x|)²` and softplus's sigmoid composed from bounded operations.
    fn gate_slope(self, a: Activation, y: Self) -> Self {
        let x = self.settle();
        let c = |v: f32| Self::exact(f64::from(v));
        let on = |b: bool, v: Self| if b { v } else { Self::ZERO };
        match a {
            Activation::Sigmoid => y * (Self::ONE - y),
            Activation::Tanh => Self::ONE - y * y,
            Activation::Relu => on(x.v > 0.0, Self::ONE),
            Activation::Affine { alpha, .. } => c(alpha),
            Activation::LeakyRelu { alpha } => {
                if x.v >= 0.0 {
                    Self::ONE
                } else {
                    c(alpha)
                }
            }
            Activation::ThresholdedRelu { alpha } => on(x.v > f64::from(alpha), Self::ONE),
            Activation::HardSigmoid { alpha, beta } => {
                let v = f64::from(alpha) * x.v + f64::from(beta);
                on(v > 0.0 && v < 1.0, c(alpha))
            }
            Activation::Elu { alpha } => {
                if x.v >= 0.0 {
                    Self::ONE
                } else {
                    (y + c(alpha)).settle()
                }
            }
            Activation::ScaledTanh { alpha, beta } => {
                let t = (c(beta) * x).tanh();
                let ab = Self::exact(f64::from(alpha) * f64::from(beta));
                (ab * (Self::ONE - t * t)).settle()
            }
            Activation::Softsign => {
                let d = Self::ONE + Self::new(x.v.abs(), x.e, x.grid);
                Self::ONE / (d * d)
            }
            Activation::Softplus => x.sigmoid(),
        }
    }

    /// Exact, 1-Lipschitz, and flat below 0.
    fn relu(self) -> Self {
        let x = self.settle();
        if x.v.is_nan() || x.v > 0.0 {
            return x;
        }
        let e = if x.v + x.e <= 0.0 { 0.0 } else { x.e };
        Self::new(0.0, e, x.grid.map(|_| ANY_GRID))
    }

    /// Exact, 1-Lipschitz, and flat beyond `±c`.
    fn clamp_to(self, c: Self) -> Self {
        let (x, c) = (self.settle(), c.v);
        let e = if x.v - x.e >= c || x.v + x.e <= -c {
            0.0
        } else {
            x.e
        };
        let v = if x.v > c {
            c
        } else if x.v < -c {
            -c
        } else {
            x.v
        };
        Self::new(v, e, x.grid.map(|_| lsb(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::{Kernels, StdF32, U32};
    use super::*;

    type B = Bounded<Kernels>;

    fn x(v: f64) -> B {
        B::exact(v)
    }

    #[test]
    fn lsb_finds_the_last_set_bit() {
        assert_eq!(lsb(1.0), 0);
        assert_eq!(lsb(3.0), 0);
        assert_eq!(lsb(0.75), -2);
        assert_eq!(lsb(-6.0), 1);
        assert_eq!(lsb(0.0), ANY_GRID);
        assert_eq!(lsb(f64::from_bits(1)), -1074);
    }

    #[test]
    fn exact_sums_and_products_have_no_error() {
        // Small dyadic values: every partial sum is an f32, in any order.
        let s = x(0.5) * x(0.25) + x(-1.5) * x(2.0) + x(0.125);
        assert_eq!(s.value(), 0.125 - 3.0 + 0.125);
        assert_eq!(s.bound(), 0.0);
        // Not on a common 24-bit grid: a rounding is possible.
        let s = x(1.0) + x(f64::from(f32::EPSILON) / 4.0);
        assert!(s.bound() > 0.0);
        // A product of two 24-bit values needs 48 bits.
        let a = f64::from(1.0f32 + f32::EPSILON);
        assert!((x(a) * x(a)).bound() > 0.0);
        // The reference's accumulator starts at an exact zero, which adds nothing.
        assert_eq!((B::ZERO + x(3.0)).bound(), 0.0);
        // A zero weight cancels any error of what it multiplies; tanh(0) = 0.
        let inexact = (x(0.1) * x(0.3)).tanh();
        let s = x(0.0) * inexact + x(0.5) * x(3.0);
        assert_eq!(s.bound(), 0.0);
        assert_eq!((x(0.0) * inexact).tanh().bound(), 0.0);
    }

    #[test]
    fn rounding_of_a_sum_is_gamma_times_the_absolute_sum() {
        let third = f64::from(1.0f32 / 3.0);
        let s = x(third) * x(third) + x(-third) * x(third) + x(third) * x(third);
        // Three product leaves: two additions and the products' roundings.
        let mag = 3.0 * third * third;
        let g = gamma::<Kernels>(3);
        assert!((s.bound() - (g * mag + 3.0 * ETA)).abs() < 1e-30);
        assert!(s.bound() > 3.0 * U32 * mag);
    }

    /// A sum of stored sums is bounded as a sum of `n` values: the `m` dot products'
    /// own bounds plus `γ_(n−1)` of their magnitudes, not `γ_(n·m−1)` of all their
    /// terms as one flattened sum (a layer norm's mean of its gate sums).
    #[test]
    fn a_sum_of_stored_sums_is_bounded_per_sum() {
        let third = f64::from(1.0f32 / 3.0);
        let dot = || (0..64).fold(B::ZERO, |s, _| s + x(third) * x(third));
        let each = dot().bound();
        let stored = (0..64).fold(B::ZERO, |s, _| s + dot().stored());
        let flat = (0..64).fold(B::ZERO, |s, _| s + dot());
        let per_sum = 64.0 * each + gamma::<Kernels>(63) * 64.0 * (64.0 * third * third + each);
        assert!((stored.bound() - per_sum).abs() <= 1e-12 * per_sum);
        assert!(
            flat.bound() > 30.0 * stored.bound(),
            "{} {}",
            flat.bound(),
            stored.bound()
        );
        assert_eq!(stored.value(), flat.value());
        assert_eq!(x(0.1).stored().bound(), x(0.1).bound());
    }

    #[test]
    fn errors_propagate_through_products_and_activations() {
        let a = x(0.1) * x(0.3); // rounded product: a small error
        let ea = a.bound();
        assert!(ea > 0.0 && ea < 1e-8);
        // Saturated: the slope at 30 is 4 e^-30, the error vanishes to the activation's.
        let s = (a + x(30.0)).sigmoid();
        assert!(s.bound() <= 1.2e-7 + 1e-15, "{}", s.bound());
        let t = (a + x(0.0)).tanh();
        assert!(t.bound() >= ea, "slope 1 at 0");
        // relu below 0 and clip beyond c are flat.
        assert_eq!((a - x(1.0)).relu().bound(), 0.0);
        assert_eq!((a + x(5.0)).clamp_to(x(2.0)).bound(), 0.0);
        assert_eq!((a + x(5.0)).clamp_to(x(2.0)).value(), 2.0);
    }

    #[test]
    fn std_sigmoid_is_composed_from_bounded_operations() {
        let s = Bounded::<StdF32>::exact(0.5).sigmoid();
        assert_eq!(s.value(), 1.0 / (1.0 + (-0.5f64).exp()));
        // exp (1 ulp), an addition, a division: a few ulp of 0.62.
        assert!(
            s.bound() > 2.0 * U32 * 0.5 && s.bound() < 8.0 * U32,
            "{}",
            s.bound()
        );
    }

    #[test]
    fn lerp_counts_its_first_operand_once() {
        let n = B::new(0.2, 1e-3, None); // known to 1e-3
        let (h, z) = (x(0.5), x(0.75));
        let l = n.lerp_to(h, z);
        assert_eq!(l.value(), 0.2 + 0.75 * (0.5 - 0.2));
        // (1 − z) 1e-3 and a few roundings, where three operations would give (1 + z).
        assert!((l.bound() - 0.25e-3).abs() < 1e-6, "{}", l.bound());
        assert!((n + z * (h - n)).bound() > 1.75e-3);
        // n = 0, h = 1: the result is z itself, with z's error only.
        let z = x(0.3) * x(0.7);
        let l = B::ZERO.lerp_to(B::ONE, z);
        assert!(
            l.bound() <= z.bound() + 2.0 * ETA,
            "{} {}",
            l.bound(),
            z.bound()
        );
    }

    #[test]
    fn infinite_inputs_are_exact() {
        let inf = x(f64::INFINITY);
        let s = x(0.5) * inf + x(0.1) * x(0.3) + x(1.0);
        assert_eq!((s.value(), s.bound()), (f64::INFINITY, 0.0));
        let g = s.sigmoid();
        assert_eq!(g.value(), 1.0);
        assert!(g.bound() <= 1.2e-7 + 1e-15);
        // A factor of uncertain sign makes the sign of the product uncertain.
        let a = x(0.1) * x(0.3);
        let uncertain = (a - a) + x(1e-30);
        assert!((uncertain * inf).bound().is_infinite());
    }

    #[test]
    fn overflow_makes_the_bound_infinite() {
        let big = x(f64::from(f32::MAX) / 2.0);
        assert!((big + big + big).bound().is_infinite());
        assert!((big * x(4.0)).bound().is_infinite());
    }

    /// The square root: an exact square of an exact value has no error; an operand
    /// known to `e` gives every f32 square root of a value within `e` (the ends and
    /// the middle), correctly rounded, within the bound; near zero the bound is `√e`.
    #[test]
    fn sqrt_bounds_every_root_within_the_operand_error() {
        let four = x(4.0).sqrt();
        assert_eq!((four.value(), four.bound()), (2.0, 0.0));
        for (v, e) in [(2.0f64, 1e-6), (0.01, 1e-5), (3.0e-8, 1e-8), (1e6, 0.5)] {
            let a = B::new(v, e, None);
            let r = a.sqrt();
            assert_eq!(r.value(), v.sqrt());
            for t in [-1.0, -0.5, 0.0, 0.5, 1.0] {
                let got = f64::from(((v + t * e) as f32).sqrt());
                assert!(
                    (got - r.value()).abs() <= r.bound(),
                    "sqrt({v} ± {e}): {got} vs {} ± {}",
                    r.value(),
                    r.bound()
                );
            }
            // Not vacuous: within a few times the propagated error and one rounding.
            let prop = e / (2.0 * (v - e).max(0.0).sqrt()).max(e.sqrt());
            assert!(
                r.bound() <= 4.0 * prop + 4.0 * v.sqrt() * f64::from(f32::EPSILON),
                "{v} ± {e}: {}",
                r.bound()
            );
        }
        let zero = B::new(0.0, 1e-10, None).sqrt();
        assert!(
            zero.bound() >= 1e-5 && zero.bound() < 2e-5,
            "{}",
            zero.bound()
        );
        assert!(x(-1.0).sqrt().value().is_nan());
    }
}
