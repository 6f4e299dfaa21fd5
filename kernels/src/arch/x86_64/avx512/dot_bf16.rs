//! The input projection with AVX512-BF16: bf16 input rows times bf16 weights stored in
//! row pairs ([`PairPanels`](crate::pack::PairPanels)), `vdpbf16ps` doing two
//! multiply-adds per lane per instruction, twice the `f32` FMA rate.
//!
//! Products of two bf16 values are exact in `f32`, so the only differences from the
//! FMA path are the summation order (pairs) and the instruction's fixed
//! denormals-are-zero / flush-to-zero: subnormal operands count as zero and a
//! subnormal partial sum becomes zero (an absolute error below 2^-126 per step).

use core::arch::x86_64::*;
use std::ops::Range;

use super::Avx512;
use crate::arch::{Blocked, DotJob};
use crate::isa::isa_features;
use crate::kernel::walk::ROW_CHUNK_FLOATS;
use crate::kernel::{Epilogue, Store};
use crate::pack::LANES;

/// Vectors per panel: the width of the packing [`DotJob`] carries.
const NP: usize = 4;
/// Rows per register block: 6 x 4 = 24 accumulators, as for the `f32` product.
const MR: usize = <Avx512 as Blocked<NP>>::MR;

/// Defines [`gemm`] with the AVX512-BF16 path's features (from `isa_features!`).
macro_rules! dot_gemm {
    ([$($f:tt),*]) => {
        /// Computes rows `0..g.nrows` for panels in `panels` into `epi`.
        ///
        /// # Safety
        /// The CPU must have the AVX512-BF16 path's features (the dispatcher hands this
        /// out only for [`Isa::Avx512Bf16`](crate::Isa::Avx512Bf16) after detection);
        /// `g.a` must hold `g.nrows` rows of `g.w.k` readable u16; `panels` must lie
        /// within `g.w.panels`; `epi.out` must hold `g.nrows` rows of
        /// `epi.stride >= g.w.panels * 64` floats and `epi.bias` (or null) as many.
        $(#[target_feature(enable = $f)])*
        pub(crate) unsafe fn gemm(g: &DotJob, panels: Range<usize>, epi: &Store) {
            debug_assert!(panels.end <= g.w.panels);
            let width = NP * LANES;
            let kq = g.w.k.div_ceil(2);
            // Row chunks whose left operand stays in L2 while the panels pass over it (bf16
            // rows: twice the rows of the f32 product for the same bytes).
            let chunk = (2 * ROW_CHUNK_FLOATS / g.w.k.max(1)).max(1).div_ceil(MR) * MR;
            let mut r0 = 0;
            while r0 < g.nrows {
                let r1 = g.nrows.min(r0 + chunk);
                for p in panels.clone() {
                    // SAFETY: `p < w.panels`: the panel lies inside the packed data.
                    let panel = unsafe { g.w.ptr.add(p * kq * width) };
                    let mut r = r0;
                    // SAFETY: (every block) rows stay below `nrows`; forwarded contract.
                    unsafe {
                        while r + MR <= r1 {
                            block::<MR>(g, r, panel, p, epi);
                            r += MR;
                        }
                        while r < r1 {
                            let left = r1 - r;
                            if left >= 4 {
                                block::<4>(g, r, panel, p, epi);
                                r += 4;
                            } else if left >= 2 {
                                block::<2>(g, r, panel, p, epi);
                                r += 2;
                            } else {
                                block::<1>(g, r, panel, p, epi);
                                r += 1;
                            }
                        }
                    }
                }
                r0 = r1;
            }
        }
    };
}
isa_features!(avx512bf16, dot_gemm!());

/// One `M x 64` block: pairs of `k` in increasing order, then the odd last row.
#[inline(always)]
unsafe fn block<const M: usize>(g: &DotJob, r0: usize, panel: *const u32, p: usize, epi: &Store) {
    let k = g.w.k;
    let width = NP * LANES;
    let mut rows = [std::ptr::null::<u16>(); M];
    for (i, q) in rows.iter_mut().enumerate() {
        // SAFETY: rows r0..r0+M are below nrows (caller's contract).
        *q = unsafe { g.a.ptr(r0 + i) };
    }
    // SAFETY: avx512f is available (caller's contract).
    let mut acc = [[unsafe { _mm512_setzero_ps() }; NP]; M];
    let full = k / 2;
    for q in 0..full {
        // SAFETY: pair `q < k / 2` of the panel holds `width` words at `q * width`;
        // each row holds `k > 2q + 1` u16, so the 4-byte read at `2q` is in bounds.
        // `__m512i` and `__m512bh` are both 64 plain bytes, so the transmutes only
        // re-type the lanes.
        unsafe {
            let w = panel.add(q * width);
            let mut wv = [std::mem::transmute::<__m512i, __m512bh>(_mm512_setzero_si512()); NP];
            for (j, v) in wv.iter_mut().enumerate() {
                *v = std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                    w.add(j * LANES).cast(),
                ));
            }
            for i in 0..M {
                let pair = rows[i].add(2 * q).cast::<i32>().read_unaligned();
                let a = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(pair));
                for j in 0..NP {
                    acc[i][j] = _mm512_dpbf16_ps(acc[i][j], a, wv[j]);
                }
            }
        }
    }
    if k % 2 == 1 {
        // SAFETY: as above for the last pair, whose high weight half is zero; only
        // element `k - 1` of each row is read (the high half of the broadcast is 0).
        unsafe {
            let w = panel.add(full * width);
            for (row, acc_row) in rows.iter().zip(acc.iter_mut()) {
                let last = i32::from(row.add(k - 1).read());
                let a = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(last));
                for (j, acc_j) in acc_row.iter_mut().enumerate() {
                    let wj = std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                        w.add(j * LANES).cast(),
                    ));
                    *acc_j = _mm512_dpbf16_ps(*acc_j, a, wj);
                }
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: (r0 + i, p) lies inside `out` (caller's contract); avx512f available.
        unsafe { Epilogue::<__m512, NP>::finish(epi, r0 + i, p, row) };
    }
}
