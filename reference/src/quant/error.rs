//! How far an int8 product is from the `f32` product on the dequantized weights: the
//! derivation of the bound the kernels' int8 results are held to against the `f32`
//! reference (`testkit::bound::forward_dequantized`, `kernels/tests/int8_vs_f32.rs`).
//!
//! # One value
//!
//! A block of operand values `a` (an implementation's `f32` values) gets, in `f32`
//! ([`ActivationQuant`](super::ActivationQuant)), `lo' = min(0, min a)`,
//! `hi' = max(0, max a)`, `s = fl(fl(hi' − lo') / qmax)`,
//! `zp = round(clamp(fl(−lo' / s), 0, qmax))` and codes
//! `q = clamp(round(fl(a / s)) + zp, 0, qmax)`. With `u = 2⁻²⁴`, the exact
//! `r = −lo' / s` and `v = a / s + zp`, the dequantized code `(q − zp) s` errs by
//! `s |v − q|`, and:
//!
//! - `(hi' − lo') / s <= qmax / (1 − u)² <= qmax (1 + 2.01u)` (two roundings of `s`),
//!   so `|a / s|` and `r` are at most `qmax (1 + 2.01u)`, and `|zp − r| <= ½ + u r`;
//! - no clamp: `|v − q| = |a / s − round(fl(a / s))| <= ½ + u |a / s|
//!   <= ½ + 1.01 u qmax`;
//! - clamped to `qmax`: `0 < v − qmax <= hi' / s + zp − qmax
//!   = (hi' − lo') / s − qmax + (zp − r) <= ½ + 3.02 u qmax`: the zero point's rounding
//!   puts `hi' / s + zp` at most half a code above `qmax`, so the clamp costs half a
//!   code step too, not a whole one;
//! - clamped to 0: `0 < −v <= r − zp <= ½ + 1.01 u qmax`;
//! - `hi' = lo'` (`s = 1`): every value is 0 and gets code `zp`, exactly.
//!
//! So every value is within `B s` of its dequantized code, `B = ½ + 4u·qmax`
//! ([`code_error`]).
//!
//! # One product
//!
//! Output `n` of the int8 product is `P = fl(fl(s s_w) · fl(Σ_k (q_k − zp) c_k))`
//! (an exact integer sum) where the `f32` reference's dequantized weights are
//! `w_k = fl(s_w c_k)` (`c_k` the code minus its zero point). With `d_k = (q_k − zp) s`:
//! `|Σ d_k w_k − Σ a_k w_k| <= B s Σ|w_k|`, `|s s_w Σ (q_k − zp) c_k − Σ d_k w_k| <=
//! 1.01u Σ|d_k w_k|` (the weights' own rounding) and `P` errs by three more roundings,
//! `3.01u |P|`. In all, away from underflow,
//!
//! ```text
//! |P − Σ a_k w_k| <= B s Σ_k |w_k| + 4.03u Σ_k (|a_k| + B s) |w_k|
//! ```
//!
//! which is the error of an exact product on the dequantized weights whose operands
//! each err by `B s + 5u (|a| + B s)` ([`operand_error`]). The implementation's `s`
//! comes from its own values: any interval `[lo, hi]` holding them all bounds it from
//! above ([`scale_bound`]).

/// `f32`'s unit roundoff, `2⁻²⁴`.
const U: f64 = 1.0 / (1u64 << 24) as f64;

/// `B`: the largest distance of a value from its dequantized code `(q − zp) s`, in
/// units of the block's scale `s`, for codes in `[0, qmax]`: `½ + 4u·qmax` (half a
/// code step, plus the `f32` roundings of `s`, `zp` and `a / s`; see the module docs).
pub fn code_error(qmax: u8) -> f64 {
    0.5 + 4.0 * U * f64::from(qmax)
}

/// An upper bound on the scale `s = fl(fl(hi' − lo') / qmax)` of a block whose values
/// all lie in `[lo, hi]` (`hi' − lo' <= max(hi, 0) − min(lo, 0)`, two roundings up).
/// 0 when the interval is `[0, 0]`: the values are then all exactly 0, and so are
/// their codes' errors.
pub fn scale_bound(lo: f64, hi: f64, qmax: u8) -> f64 {
    (hi.max(0.0) - lo.min(0.0)) / f64::from(qmax) * (1.0 + 3.0 * U)
}

/// The error to add to an operand value `v` (magnitude `|v| + e` at most, `e` its own
/// bound) of an int8 product whose block's scale is at most `s`, for the product to
/// be bounded as an exact product on the dequantized weights: `B s` for its code and
/// `5u (|v| + e + B s)` for the roundings of the product and of the weights (module
/// docs).
pub fn operand_error(v: f64, e: f64, s: f64, qmax: u8) -> f64 {
    let code = code_error(qmax) * s;
    code + 5.0 * U * (v.abs() + e + code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{block_params, block_range, quantize};
    use crate::testkit::SplitMix64;

    /// Every value of random blocks (skewed, one-signed, tiny, wide) is within
    /// `B s` of its dequantized code, and `s` within `scale_bound`; the worst case
    /// comes close to `B` (a clamp at the top after the zero point rounded down).
    #[test]
    fn codes_are_within_half_a_step() {
        let mut rng = SplitMix64::new(7);
        for qmax in [255u8, 127] {
            let mut worst = 0.0f64;
            for n in 0..20_000 {
                let len = 1 + rng.below(40);
                // Scales from tiny to wide; centred, skewed or one-signed.
                let scale = [1e-3f32, 1.0, 50.0][n % 3];
                let shift = rng.sym() * [0.0, 1.0, 3.0][rng.below(3)];
                let a: Vec<f32> = (0..len).map(|_| scale * (rng.sym() + shift)).collect();
                let p = block_params(block_range(a.iter().copied()), qmax);
                let (lo, hi, _) = block_range(a.iter().copied());
                let s = f64::from(p.scale);
                assert!(s <= scale_bound(lo.into(), hi.into(), qmax).max(1.0));
                for &v in &a {
                    let q = f64::from(quantize(v, p, qmax)) - f64::from(p.zero_point);
                    let err = (f64::from(v) - q * s).abs() / s;
                    assert!(err <= code_error(qmax), "{err} {a:?}");
                    worst = worst.max(err);
                }
            }
            assert!(worst > 0.49, "{worst}");
        }
    }
}
