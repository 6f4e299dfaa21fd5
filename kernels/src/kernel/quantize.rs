//! Run-time quantization of an int8 product's operand rows (`rnn_reference::quant`
//! defines it): the range of a block of rows, the parameters it gives, and the `uint8`
//! codes of each row with their sum. Vector code over [`V16`], run by each path through
//! [`SimdOp`]; the arithmetic is the reference's, operation for operation (`f32`
//! division, clamp, rounding half to even), so the codes are bit-identical.

use std::ops::Range;

use super::walk::Rows;
use super::walk_i8::RowQuant;
use super::SimdOp;
use crate::pack::LANES;
use crate::simd::V16;

/// The smallest and largest value of rows `rows` of `a` (first `k` values of each), and
/// whether all are finite (the empty set: `(0, 0, true)`).
pub(crate) struct RangeOp<'a> {
    pub(crate) a: &'a Rows,
    pub(crate) rows: Range<usize>,
    pub(crate) k: usize,
}

/// A block's range, `(lo, hi, finite)`.
pub(crate) type BlockRange = (f32, f32, bool);

/// Merges two ranges (exact, so any split of a block gives the same range).
pub(crate) fn merge((lo, hi, f): BlockRange, (lo2, hi2, f2): BlockRange) -> BlockRange {
    (lo.min(lo2), hi.max(hi2), f && f2)
}

/// Scale and zero point of a block with range `r`: `rnn_reference::quant::block_params`
/// (a NaN scale for a non-finite block; else the range widened to include 0,
/// `s = (hi − lo) / qmax` or 1, `zp = round_half_even(clamp(−lo / s, 0, qmax))`).
pub(crate) fn params((lo, hi, finite): BlockRange, qmax: u8) -> (f32, u8) {
    if !finite {
        return (f32::NAN, 0);
    }
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let q = f32::from(qmax);
    let s = if hi == lo { 1.0 } else { (hi - lo) / q };
    (s, (-lo / s).clamp(0.0, q).round_ties_even() as u8)
}

impl SimdOp for RangeOp<'_> {
    type Output = BlockRange;

    #[inline(always)]
    unsafe fn run<V: V16>(self) -> BlockRange {
        let mut r = (0.0f32, 0.0f32, true);
        for row in self.rows.clone() {
            // SAFETY: the caller validated the rows, each `k` readable floats.
            r = merge(r, unsafe { row_range::<V>(self.a.ptr(row), self.k) });
        }
        r
    }
}

/// The range of `k` floats at `p`.
///
/// # Safety
/// `V`'s ISA must be available; `p` valid for `k` reads.
#[inline(always)]
unsafe fn row_range<V: V16>(p: *const f32, k: usize) -> BlockRange {
    let full = k / LANES * LANES;
    // SAFETY: the caller guarantees V's ISA and `k` readable floats from `p`.
    unsafe {
        let zero = V::zero();
        let (mut lo, mut hi, mut nan) = (zero, zero, zero);
        let mut c = 0;
        while c < full {
            let v = V::load(p.add(c));
            lo = lo.min_keep_nan(v);
            hi = hi.max_keep_nan(v);
            // 0 for finite values, NaN for NaN and infinities.
            nan = nan.add(v.mul(zero));
            c += LANES;
        }
        let mut r = (0.0f32, 0.0f32, true);
        let (mut l, mut h, mut n) = ([0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES]);
        lo.store(l.as_mut_ptr());
        hi.store(h.as_mut_ptr());
        nan.store(n.as_mut_ptr());
        for i in 0..LANES {
            r = merge(r, (l[i], h[i], n[i] == 0.0));
        }
        for i in full..k {
            let v = *p.add(i);
            r = merge(r, (v, v, v.is_finite()));
        }
        r
    }
}

/// Quantizes rows `rows` of `a` (first `k` values each) to codes at `dst + r * stride`
/// (bytes `k..stride` of a row set to 0) with parameters at `params + r`: per row
/// (`block` `None`) or the block's `(scale, zero point)`.
pub(crate) struct QuantizeOp<'a> {
    pub(crate) a: &'a Rows,
    pub(crate) rows: Range<usize>,
    pub(crate) k: usize,
    pub(crate) dst: *mut u8,
    pub(crate) stride: usize,
    pub(crate) params: *mut RowQuant,
    pub(crate) qmax: u8,
    pub(crate) block: Option<(f32, u8)>,
}

impl SimdOp for QuantizeOp<'_> {
    type Output = ();

    #[inline(always)]
    unsafe fn run<V: V16>(self) {
        for row in self.rows.clone() {
            // SAFETY: the caller validated the rows (`k` floats each) and sized `dst`
            // (`stride >= k` bytes per row) and `params` for them.
            unsafe {
                let src = self.a.ptr(row);
                let (s, zp) = match self.block {
                    Some(b) => b,
                    None => params(row_range::<V>(src, self.k), self.qmax),
                };
                let d = self.dst.add(row * self.stride);
                let sum = quantize_row::<V>(src, self.k, d, s, zp, self.qmax);
                std::ptr::write_bytes(d.add(self.k), 0, self.stride - self.k);
                *self.params.add(row) = RowQuant {
                    scale: s,
                    zero_point: i32::from(zp),
                    sum,
                };
            }
        }
    }
}

/// Writes the codes of `k` floats at `p` to `d` and returns their sum:
/// `clamp(round_half_even(a / s) + zp, 0, qmax)` (a NaN gives 0).
///
/// # Safety
/// `V`'s ISA must be available; `p` valid for `k` reads and `d` for `k` writes.
#[inline(always)]
unsafe fn quantize_row<V: V16>(
    p: *const f32,
    k: usize,
    d: *mut u8,
    s: f32,
    zp: u8,
    qmax: u8,
) -> i32 {
    let (zf, qf) = (f32::from(zp), f32::from(qmax));
    let full = k / LANES * LANES;
    // SAFETY: the caller guarantees V's ISA, `k` reads from `p` and `k` writes to `d`.
    unsafe {
        let (sv, lo, hi, zv) = (V::splat(s), V::splat(-zf), V::splat(qf - zf), V::splat(zf));
        // Codes are integers below 256 and a row has at most 2^15 of them: the f32
        // sum is exact.
        let mut sum = V::zero();
        let mut tmp = [0.0f32; LANES];
        let mut c = 0;
        while c < full {
            let q = V::load(p.add(c))
                .div(sv)
                .max_keep_nan(lo)
                .min_keep_nan(hi)
                .round_nearest()
                .add(zv);
            sum = sum.add(q);
            q.store_codes(d.add(c));
            c += LANES;
        }
        sum.store(tmp.as_mut_ptr());
        let mut total: f32 = tmp.iter().sum();
        for i in full..k {
            let v = (*p.add(i) / s).clamp(-zf, qf - zf).round_ties_even() + zf;
            *d.add(i) = v as u8;
            total += v;
        }
        total as i32
    }
}
