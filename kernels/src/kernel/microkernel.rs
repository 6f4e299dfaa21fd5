//! The register-tile micro-kernel: `MR` rows times `NP` 16-lane column blocks.

use crate::element::Storage;
use crate::pack::LANES;
use crate::simd::{self, V16};

/// Cache lines of the next panel that a row block fetches into L2 while its product
/// runs (`lines` lines from `ptr`; none when `lines` is 0). See `walk::run`.
#[derive(Clone, Copy)]
pub(crate) struct Ahead {
    pub(crate) ptr: *const u8,
    pub(crate) lines: usize,
}

impl Ahead {
    /// Nothing to fetch.
    pub(crate) const NONE: Ahead = Ahead {
        ptr: std::ptr::null(),
        lines: 0,
    };

    /// Over a product of `k` panel rows (row groups of 4 `k` in the int8 walk): the
    /// lines to fetch per row (at most [`AHEAD_PER_ROW`]) and the rows that fetch,
    /// from the first.
    #[inline(always)]
    pub(crate) fn per_row(self, k: usize) -> (usize, usize) {
        if self.lines == 0 || k == 0 {
            return (0, 0);
        }
        let per_row = self.lines.div_ceil(k).min(AHEAD_PER_ROW);
        (per_row, self.lines.div_ceil(per_row).min(k))
    }
}

/// Most lines [`tile_in_order`] fetches per panel row (one panel row of 4 `f32`
/// vectors is 4 lines, its product 12 cycles of multiply-adds at 6 rows).
const AHEAD_PER_ROW: usize = 4;

/// Accumulates `acc[i][j] = sum_p a_i[p] * panel[p][16 j .. 16 j + 16]` for `p` in
/// `0..k`, weights widened from `W` to `f32` in registers; the in-order form (every
/// accumulator in registers, 3 rows or more) also fetches `ahead` into L2, the others
/// ignore it (the walk gives them none).
///
/// Blocks of one or two rows (batch-1 steps) hold too few accumulators to hide the
/// multiply-add latency, so they keep two partial sums (even and odd `p`) and add them
/// at the end; larger blocks sum in increasing `p`. Either way the order depends only
/// on the block height, never on the thread split or the tile order, so results are
/// bit-identical for any thread count.
///
/// `striped`: the panel is `[NP][k][16]` (`PanelsView::striped`); only paths whose
/// `V::READS_STRIPES` get such panels (the others compile no code for them).
///
/// # Safety
/// `V`'s instruction set must be available; each `rows[i]` must be valid for `k` reads
/// and `panel` for `k * NP * 16` reads; `striped` only for a `V` that reads stripes.
#[inline(always)]
pub(crate) unsafe fn tile<V: V16, W: Storage, const MR: usize, const NP: usize>(
    rows: &[*const f32; MR],
    k: usize,
    panel: *const W,
    first: bool,
    ahead: Ahead,
    striped: bool,
) -> [[V; NP]; MR] {
    // SAFETY: (both) forwarded contract.
    unsafe {
        if const { V::READS_STRIPES && NP > 1 } && striped {
            tile_as::<V, W, MR, NP, true>(rows, k, panel, first, ahead)
        } else {
            tile_as::<V, W, MR, NP, false>(rows, k, panel, first, ahead)
        }
    }
}

/// Where panel row `p` starts (`[k][NP * 16]`, the storage type placing its lanes) or,
/// with `S`, where vector `j` of it does (in the vector's stripe, `[NP][k][16]`).
///
/// # Safety
/// `p < k` and `j < NP` of a panel of `k` rows.
#[inline(always)]
unsafe fn at<W: Storage, const NP: usize, const S: bool>(
    panel: *const W,
    k: usize,
    p: usize,
    j: usize,
) -> *const W {
    // SAFETY: inside the panel (caller's contract).
    unsafe {
        if S {
            panel.add((j * k + p) * LANES)
        } else {
            panel.add(p * NP * LANES)
        }
    }
}

/// Vector `j` of panel row `p` (see [`at`]).
///
/// # Safety
/// As for [`tile`], with `p < k`, `j < NP`.
#[inline(always)]
unsafe fn load_at<V: V16, W: Storage, const NP: usize, const S: bool>(
    panel: *const W,
    k: usize,
    p: usize,
    j: usize,
) -> V {
    // SAFETY: the vector lies inside the panel (caller's contract), placed in its
    // stripe as `load_stripe` reads it.
    unsafe {
        if S {
            W::load_stripe::<V>(at::<W, NP, S>(panel, k, p, j))
        } else {
            W::load_vec::<V>(at::<W, NP, S>(panel, k, p, j), j, NP)
        }
    }
}

/// [`tile`] in layout `S`.
#[inline(always)]
unsafe fn tile_as<V: V16, W: Storage, const MR: usize, const NP: usize, const S: bool>(
    rows: &[*const f32; MR],
    k: usize,
    panel: *const W,
    first: bool,
    ahead: Ahead,
) -> [[V; NP]; MR] {
    // Every choice is a `const` block: the compiler instantiates only the form taken
    // (a condition computed at run time, even from constants, would have it
    // instantiate and optimize every form before dropping all but one).
    if const { MR <= 2 && 2 * MR * NP <= V::MAX_ACC } {
        // SAFETY: forwarded contract.
        unsafe { tile_split::<V, W, MR, NP, S>(rows, k, panel) }
    } else if const { MR * NP <= V::MAX_ACC } {
        // SAFETY: forwarded contract.
        unsafe { tile_in_order::<V, W, MR, NP, S>(rows, k, panel, ahead) }
    } else {
        // Too many accumulators for the register file (AVX2, portable): the panel's
        // vectors in groups of the largest divisor of NP that fits.
        // SAFETY: (all arms) forwarded contract.
        unsafe {
            match const { group_size(NP, V::MAX_ACC / MR) } {
                1 => tile_groups::<V, W, MR, NP, 1, S>(rows, k, panel, first),
                2 => tile_groups::<V, W, MR, NP, 2, S>(rows, k, panel, first),
                3 => tile_groups::<V, W, MR, NP, 3, S>(rows, k, panel, first),
                _ => tile_groups::<V, W, MR, NP, 4, S>(rows, k, panel, first),
            }
        }
    }
}

/// The largest divisor of `np` (vectors per panel) that is at most `fit` (the
/// accumulators' room), at least 1: how many vectors a tile takes per group.
pub(crate) const fn group_size(np: usize, fit: usize) -> usize {
    let mut g = if fit < np { fit } else { np };
    while g > 1 && !np.is_multiple_of(g) {
        g -= 1;
    }
    if g == 0 {
        1
    } else {
        g
    }
}

/// Like [`tile_in_order`], `GS` of the panel's `NP` vectors at a time (`GS` divides
/// `NP`): the same sums in the same order, with `MR * GS` accumulators live.
///
/// Each group reads only its own vectors of every panel row, a strided walk that the
/// hardware prefetchers follow poorly when the panel comes from L3 (the first row
/// block of a step to use it). So when `first`, the first group also prefetches whole
/// panel rows ahead of itself, and the later groups find them in L2 (AVX2 on an AMD
/// Zen 1 VM: batch-6 and batch-16 LSTM and GRU recurrent steps 6-25% faster, whole
/// sequences at batch >= 6 3-10%; later blocks, whose panel is already in L2, gain
/// nothing from it).
#[inline(always)]
unsafe fn tile_groups<
    V: V16,
    W: Storage,
    const MR: usize,
    const NP: usize,
    const GS: usize,
    const S: bool,
>(
    rows: &[*const f32; MR],
    k: usize,
    panel: *const W,
    first: bool,
) -> [[V; NP]; MR] {
    // SAFETY: the caller guarantees the ISA; `zero` reads no memory.
    let mut out = [[unsafe { V::zero() }; NP]; MR];
    let mut g0 = 0;
    while g0 + GS <= NP {
        // SAFETY: forwarded contract.
        let acc = unsafe {
            // Stripes are contiguous streams, which the hardware prefetchers follow.
            if const { !S } && first && g0 == 0 {
                group::<V, W, MR, NP, GS, true, S>(rows, k, panel, g0)
            } else {
                group::<V, W, MR, NP, GS, false, S>(rows, k, panel, g0)
            }
        };
        for i in 0..MR {
            for j in 0..GS {
                // A volatile store: the finished group must leave the registers now.
                // Kept in registers (LLVM promotes `out` to them), the earlier groups'
                // sums crowd the next group's accumulators and the AVX2 loop spills.
                // SAFETY: `out[i][g0 + j]` is a valid, aligned local.
                unsafe { std::ptr::write_volatile(&mut out[i][g0 + j], acc[i][j]) };
            }
        }
        g0 += GS;
    }
    out
}

/// Panel rows ahead of the product that [`tile_groups`]' first group prefetches
/// (16 rows of a 4-vector `f32` panel are 4 KiB).
const PREFETCH_ROWS: usize = 16;

/// Vectors `g0..g0 + GS` of the product over all `k` panel rows. With `PF`, also
/// prefetches whole panel rows `PREFETCH_ROWS` ahead (past the panel's end these are
/// the next panel's first rows; a prefetch never faults).
///
/// # Safety
/// As for [`tile`].
#[inline(always)]
unsafe fn group<
    V: V16,
    W: Storage,
    const MR: usize,
    const NP: usize,
    const GS: usize,
    const PF: bool,
    const S: bool,
>(
    rows: &[*const f32; MR],
    k: usize,
    panel: *const W,
    g0: usize,
) -> [[V; GS]; MR] {
    // SAFETY: the caller guarantees the ISA; `zero` reads no memory.
    let mut acc = [[unsafe { V::zero() }; GS]; MR];
    // One panel row, in floats' worth of bytes (half as many for 16-bit weights).
    let row_floats = NP * LANES * std::mem::size_of::<W>() / 4;
    for p in 0..k {
        if PF {
            // `prefetch` steps one cache line (16 floats) at a time over the row.
            let ahead = panel.wrapping_add((p + PREFETCH_ROWS) * NP * LANES);
            simd::prefetch(ahead.cast::<f32>(), row_floats);
        }
        // SAFETY: `p < k`; vectors g0..g0+GS of panel row `p`; rows valid for `k`.
        unsafe {
            let mut wv = [V::zero(); GS];
            for (j, v) in wv.iter_mut().enumerate() {
                *v = load_at::<V, W, NP, S>(panel, k, p, g0 + j);
            }
            for i in 0..MR {
                let a = V::splat(*rows[i].add(p));
                for j in 0..GS {
                    acc[i][j] = wv[j].mul_add(a, acc[i][j]);
                }
            }
        }
    }
    acc
}

/// One step of the product: `acc[i][j] += a_i[p] * w[p][j]`.
///
/// # Safety
/// As for [`tile`], with `p < k`.
#[inline(always)]
unsafe fn fma_row<V: V16, W: Storage, const MR: usize, const NP: usize, const S: bool>(
    acc: &mut [[V; NP]; MR],
    rows: &[*const f32; MR],
    p: usize,
    panel: *const W,
    k: usize,
) {
    // SAFETY: caller's contract: row `p` of the panel is valid for NP * 16 reads, each
    // row of the left operand for `p`.
    unsafe {
        let wv = if S {
            let mut wv = [V::zero(); NP];
            for (j, v) in wv.iter_mut().enumerate() {
                *v = load_at::<V, W, NP, S>(panel, k, p, j);
            }
            wv
        } else {
            W::load_row::<V, NP>(at::<W, NP, S>(panel, k, p, 0))
        };
        for i in 0..MR {
            let a = V::splat(*rows[i].add(p));
            for j in 0..NP {
                acc[i][j] = wv[j].mul_add(a, acc[i][j]);
            }
        }
    }
}

/// In increasing `p`, one accumulator per output vector; during the first panel rows,
/// up to [`AHEAD_PER_ROW`] lines of `ahead` per row (the sums do not change).
#[inline(always)]
unsafe fn tile_in_order<V: V16, W: Storage, const MR: usize, const NP: usize, const S: bool>(
    rows: &[*const f32; MR],
    k: usize,
    panel: *const W,
    ahead: Ahead,
) -> [[V; NP]; MR] {
    // SAFETY: the caller guarantees the ISA; `zero` reads no memory.
    let mut acc = [[unsafe { V::zero() }; NP]; MR];
    if ahead.lines == 0 || k == 0 {
        for p in 0..k {
            fetch_row::<V, W, NP, S>(panel, p);
            // SAFETY: `p < k`.
            unsafe { fma_row::<V, W, MR, NP, S>(&mut acc, rows, p, panel, k) };
        }
        return acc;
    }
    let (per_row, fetching) = ahead.per_row(k);
    for p in 0..fetching {
        for j in 0..per_row {
            simd::prefetch_l2(ahead.ptr.wrapping_add((p * per_row + j) * 64));
        }
        fetch_row::<V, W, NP, S>(panel, p);
        // SAFETY: `p < k`.
        unsafe { fma_row::<V, W, MR, NP, S>(&mut acc, rows, p, panel, k) };
    }
    for p in fetching..k {
        fetch_row::<V, W, NP, S>(panel, p);
        // SAFETY: `p < k`.
        unsafe { fma_row::<V, W, MR, NP, S>(&mut acc, rows, p, panel, k) };
    }
    acc
}

/// Asks for panel row `p + V::PANEL_AHEAD` in L1 (rows layout; nothing when
/// `PANEL_AHEAD` is 0 or the panel is striped). A panel of more than a few dozen rows
/// does not fit L1, so every row block streams it from L2, and the hardware
/// prefetchers leave part of that latency exposed (AVX-512 on a Xeon model 167: the
/// tile alone from L2 69-75% -> 73-78% of the FMA probe, the training step at batch 64
/// 0.95-0.975x the time; `bench-suite/results/panel-l1-ahead-ab-xeon167.md`). Past the
/// panel's end the hint touches whatever follows (the next panel, or nothing: a
/// prefetch never faults).
#[inline(always)]
fn fetch_row<V: V16, W: Storage, const NP: usize, const S: bool>(panel: *const W, p: usize) {
    if const { V::PANEL_AHEAD > 0 && !S } {
        let row = panel.wrapping_add((p + V::PANEL_AHEAD) * NP * LANES);
        // The row's bytes in floats (a bf16 or f16 row is half as long).
        let floats = NP * LANES * std::mem::size_of::<W>() / 4;
        simd::prefetch(row.cast::<f32>(), floats);
    }
}

/// Even and odd `p` into separate accumulators, added at the end.
#[inline(always)]
unsafe fn tile_split<V: V16, W: Storage, const MR: usize, const NP: usize, const S: bool>(
    rows: &[*const f32; MR],
    k: usize,
    panel: *const W,
) -> [[V; NP]; MR] {
    // SAFETY: the caller guarantees the ISA; `zero` reads no memory.
    let mut even = [[unsafe { V::zero() }; NP]; MR];
    let mut odd = even;
    let mut p = 0;
    while p + 2 <= k {
        // SAFETY: `p + 1 < k`.
        unsafe {
            fma_row::<V, W, MR, NP, S>(&mut even, rows, p, panel, k);
            fma_row::<V, W, MR, NP, S>(&mut odd, rows, p + 1, panel, k);
        }
        p += 2;
    }
    if p < k {
        // SAFETY: `p < k`.
        unsafe { fma_row::<V, W, MR, NP, S>(&mut even, rows, p, panel, k) };
    }
    for i in 0..MR {
        for j in 0..NP {
            // SAFETY: the caller guarantees the ISA.
            even[i][j] = unsafe { even[i][j].add(odd[i][j]) };
        }
    }
    even
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A group is the largest divisor of the panel's vectors that fits, never 0.
    #[test]
    fn groups_divide_the_panel_and_fit() {
        for np in 1..=6 {
            for fit in 0..=8 {
                let g = group_size(np, fit);
                let best = (1..=np.min(fit.max(1)))
                    .rev()
                    .find(|g| np.is_multiple_of(*g))
                    .unwrap();
                assert_eq!(g, best, "np {np}, fit {fit}");
            }
        }
        assert_eq!(group_size(6, 4), 3);
        assert_eq!(group_size(4, 6), 4);
    }

    /// The rows that fetch never pass the product's `k` (the first loop of
    /// `tile_in_order` runs them), fetch at most `AHEAD_PER_ROW` lines each, and fetch
    /// every line when `AHEAD_PER_ROW` a row suffice.
    #[test]
    fn fetching_rows_stay_inside_the_product() {
        let p = std::ptr::null::<u8>();
        for k in [0, 1, 3, 100, 1100] {
            for lines in [0, 1, 5, 99, 100, 101, 399, 400, 401, 4400, 6600] {
                let (per_row, rows) = Ahead { ptr: p, lines }.per_row(k);
                assert!(
                    rows <= k && per_row <= AHEAD_PER_ROW,
                    "k {k}, {lines} lines"
                );
                if k == 0 || lines == 0 {
                    assert_eq!((per_row, rows), (0, 0));
                    continue;
                }
                assert!(
                    per_row * rows >= lines.min(AHEAD_PER_ROW * k),
                    "k {k}, {lines} lines"
                );
                assert!(
                    per_row * (rows - 1) < lines,
                    "k {k}, {lines} lines: a row past the end"
                );
            }
        }
    }
}
