//! The output layer's weight gradient over a call of a few rows, `∂W_o = dzᵀ · x`, as a
//! sum of outer products written row by row of `∂W_o`: with `k` = the rows (1 in an
//! online step), the product is bound by writing `O · I` floats, and a register-blocked
//! product's tiles (accumulators spilled and reloaded on AVX2, a column strip of
//! panels at a time) only add work to each store.

use std::ops::Range;

use crate::kernel::SimdOp;
use crate::pack::LANES;
use crate::simd::V16;

/// The most rows (the product's `k`) taken as outer products; more go to the product.
/// 1 thread, avx2, Zen 3, `∂W_o` of a 4096 x 1024 layer: see `PackedOutput::backward`.
pub(crate) const OUTER_MAX_ROWS: usize = 4;

/// Rows `outs` of `∂W_o` (`[O, I]`, `i` floats a row) as `Σ_r dz[r][o] · x[r]` over the
/// call's `rows` rows in increasing `r`, each term fused into its sum from zero as the
/// product's micro-kernel adds its terms: `dz`'s rows `dz_stride` floats apart (at
/// least `O`), `x`'s `i` floats apart.
pub(crate) struct OuterRows {
    pub(crate) dz: *const f32,
    pub(crate) dz_stride: usize,
    pub(crate) x: *const f32,
    pub(crate) i: usize,
    pub(crate) rows: usize,
    pub(crate) dw: *mut f32,
    pub(crate) outs: Range<usize>,
}

// SAFETY: the pointers point into the caller's `dz` (or scratch), `x` and `dw`, which
// outlive the team; members write disjoint rows of `dw` and only read the rest.
unsafe impl Sync for OuterRows {}

impl SimdOp for OuterRows {
    type Output = ();

    #[inline(always)]
    unsafe fn run<V: V16>(self) {
        // One instantiation per row count, so the sums over `r` unroll.
        const { assert!(OUTER_MAX_ROWS == 4) };
        // SAFETY: (all arms) forwarded contract, with `R == self.rows`.
        unsafe {
            match self.rows {
                1 => outer::<V, 1>(&self),
                2 => outer::<V, 2>(&self),
                3 => outer::<V, 3>(&self),
                4 => outer::<V, 4>(&self),
                // The caller takes this op for 1..=OUTER_MAX_ROWS rows only.
                _ => {}
            }
        }
    }
}

/// [`OuterRows`] with `R == op.rows`.
///
/// # Safety
/// `V`'s ISA is available; `op.rows == R`; `op.dz` holds `R` rows (`dz_stride` apart)
/// reaching every `o` in `op.outs`, `op.x` `R` rows of `op.i` floats, `op.dw` the rows
/// `op.outs` of `op.i` floats.
#[inline(always)]
unsafe fn outer<V: V16, const R: usize>(op: &OuterRows) {
    let i = op.i;
    let full = i / LANES;
    let tail = i - full * LANES;
    // Each row's last, partial vector of `x`, zero past `i`.
    let mut x_tail = [[0.0f32; LANES]; R];
    for (r, t) in x_tail.iter_mut().enumerate() {
        // SAFETY: row `r` of `x` holds `i` floats, the last `tail` from `full * LANES`.
        unsafe {
            std::ptr::copy_nonoverlapping(op.x.add(r * i + full * LANES), t.as_mut_ptr(), tail)
        };
    }
    for o in op.outs.clone() {
        // SAFETY: the caller's contract (`o` is a column of every row of `dz`, row `o`
        // of `dw` holds `i` floats); the ISA is available.
        unsafe {
            let mut a = [V::zero(); R];
            for (r, a) in a.iter_mut().enumerate() {
                *a = V::splat(*op.dz.add(r * op.dz_stride + o));
            }
            let out = op.dw.add(o * i);
            for c in 0..full {
                let mut acc = V::zero();
                for (r, a) in a.iter().enumerate() {
                    acc = a.mul_add(V::load(op.x.add(r * i + c * LANES)), acc);
                }
                acc.store(out.add(c * LANES));
            }
            if tail > 0 {
                let mut acc = V::zero();
                for (a, t) in a.iter().zip(&x_tail) {
                    acc = a.mul_add(V::load(t.as_ptr()), acc);
                }
                let mut lanes = [0.0f32; LANES];
                acc.store(lanes.as_mut_ptr());
                std::ptr::copy_nonoverlapping(lanes.as_ptr(), out.add(full * LANES), tail);
            }
        }
    }
}
