//! The register-tile micro-kernel: `MR` rows times `NP` 16-lane column blocks.

use crate::arch::vector::V16;
use crate::element::WeightLoad;
use crate::pack::LANES;

/// Accumulates (weights converted from `W` to `f32` in registers) `acc[i][j] = sum_p a_i[p] * panel[p][16 j .. 16 j + 16]` for `p` in
/// `0..k`, in increasing `p` with one fused multiply-add per term, so every output
/// element's rounding is the same whatever `MR`, thread split or tile order.
///
/// # Safety
/// `V`'s instruction set must be available; each `rows[i]` must be valid for `k` reads
/// and `panel` for `k * NP * 16` reads.
#[inline(always)]
pub(crate) unsafe fn tile<V: V16, W: WeightLoad, const MR: usize, const NP: usize>(
    rows: &[*const f32; MR],
    k: usize,
    panel: *const W,
) -> [[V; NP]; MR] {
    // SAFETY: the caller guarantees the ISA; `zero` reads no memory.
    let mut acc = [[unsafe { V::zero() }; NP]; MR];
    let mut w = panel;
    for p in 0..k {
        // SAFETY: `w` points at row `p` of the panel, valid for NP * 16 reads; each
        // `rows[i].add(p)` is in bounds because `p < k` (caller's contract).
        unsafe {
            let mut wv = [V::zero(); NP];
            for (j, v) in wv.iter_mut().enumerate() {
                *v = W::load16::<V>(w.add(LANES * j));
            }
            for i in 0..MR {
                let a = V::splat(*rows[i].add(p));
                for j in 0..NP {
                    acc[i][j] = wv[j].mul_add(a, acc[i][j]);
                }
            }
            w = w.add(LANES * NP);
        }
    }
    acc
}
