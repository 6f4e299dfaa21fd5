//! The GRU (PyTorch gate order r, z, n) in both reset forms:
//!
//! ```text
//! r = σ(clip(pre_r + W_hr h))        z = σ(clip(pre_z + W_hz h))
//! linear before reset (PyTorch, ONNX linear_before_reset=1):
//!     n = tanh(clip(pre_n + r ⊙ (W_hn h + b_hn)))
//! reset before the product (ONNX default):
//!     n = tanh(clip(pre_n + W_hn (r ⊙ h)))          (b_hn folded into pre_n)
//! h' = (1 − z) ⊙ n + z ⊙ h, evaluated as n + z ⊙ (h − n) (PyTorch ATen's form)
//! ```
//!
//! This crate's peephole GRU adds `p_r ⊙ h` and `p_z ⊙ h` to the r and z arguments
//! (no standard defines one; `h` is the GRU's only memory). The AUGRU (oneDNN) scales
//! the update gate by its row's attention, `z' = (1 − a) z`, before `h'`: one
//! predictable branch per tile on the step's attention pointer.
//!
//! The first form is one pass over panels holding r, z and n of a tile (two tiles for
//! paired bf16 storage, so no vector widens alone). The second needs `r ⊙ h` before
//! its product: a pass over (r, z) panels writes `r ⊙ h` and `z` to scratch, then a
//! pass over `W_hn` panels of four tiles finishes `h'`.

pub(crate) mod backward;

use rnn_reference::{LayerWeights, RnnConfig};

use super::{
    clip, sigmoid_or, sum_biases, tanh_or, Cell, PerTile, StepPtrs, ThreeGates, TileEpilogue,
};
use crate::aligned::AlignedVec;
use crate::arch::Backend;
use crate::element::{Element, Storage};
use crate::kernel::walk::Job;
use crate::kernel::Epilogue;
use crate::pack::{padded_rows, Panels, LANES};
use crate::parallel::Team;
use crate::passes::pass;
use crate::simd::{self, V16};

/// The GRU cell.
pub(crate) struct Gru;

/// Packed recurrent weights of a GRU layer.
#[derive(Clone)]
pub(crate) enum Weights<W: Storage> {
    /// Reset applied to the recurrent product (`linear_before_reset`).
    LinearBeforeReset {
        /// `W_hh`, all three gates; `k = H`.
        w_hh: ThreeGates<W>,
        /// The recurrent bias of the n gate, one padded row (multiplied by `r`, so not
        /// folded into the input projection).
        b_hn: AlignedVec,
        /// Peepholes `[2][padded(H)]` (r, z), this crate's peephole GRU.
        peephole: Option<AlignedVec>,
    },
    /// Reset applied to `h` before the product.
    ResetBefore {
        /// r and z of `W_hh`, one tile per panel; `k = H`.
        w_rz: Panels<W, 2>,
        /// n of `W_hh`, four tiles per panel; `k = H`.
        w_n: Panels<W, 4>,
        /// As for `LinearBeforeReset`.
        peephole: Option<AlignedVec>,
    },
}

fn linear_before_reset(cfg: &RnnConfig) -> bool {
    cfg.cell.gru().is_some_and(|v| v.linear_before_reset)
}

impl Cell for Gru {
    type Weights<W: Storage> = Weights<W>;

    fn pack<W: Storage, S: Element>(cfg: &RnnConfig, w: &LayerWeights<'_, S>) -> Weights<W> {
        let (h, ho) = (cfg.hidden_size, cfg.output_size());
        if linear_before_reset(cfg) {
            let zeros = vec![S::default(); h];
            let b_hn = w.b_hh.map_or(&zeros[..], |b| &b[2 * h..]);
            Weights::LinearBeforeReset {
                w_hh: ThreeGates::pack(w.w_hh, h, ho),
                b_hn: padded_rows(b_hn, 1, h),
                peephole: w.peephole.map(|p| padded_rows(p, 2, h)),
            }
        } else {
            Weights::ResetBefore {
                w_rz: Panels::pack(w.w_hh, h, ho, &[0, 1]),
                w_n: Panels::pack(w.w_hh, h, ho, &[2]),
                peephole: w.peephole.map(|p| padded_rows(p, 2, h)),
            }
        }
    }

    /// `b_ih + b_hh`, except `b_hn` of the linear-before-reset form, which is
    /// multiplied by `r` and stays apart.
    fn folded_bias<S: Element>(cfg: &RnnConfig, w: &LayerWeights<'_, S>) -> Vec<f32> {
        let lbr = linear_before_reset(cfg);
        let h = cfg.hidden_size;
        sum_biases(cfg, w, |k| !(lbr && k >= 2 * h))
    }

    fn panels<W: Storage>(w: &Weights<W>) -> usize {
        match w {
            Weights::LinearBeforeReset { w_hh, .. } => w_hh.panels(),
            Weights::ResetBefore { w_rz, .. } => w_rz.panels(),
        }
    }

    unsafe fn step<B: Backend, W: Storage>(w: &Weights<W>, s: &StepPtrs, team: &Team<'_>) {
        let a = s.h_rows();
        let nrows = s.batch;
        // SAFETY (every pass): forwarded contract; every `k` is `H`, the width of the
        // `h` and `aux` rows.
        // The peephole form is its own instantiation of each epilogue (`PEEP`), so the
        // plain one's code is exactly what it was without the option.
        match w {
            Weights::LinearBeforeReset {
                w_hh,
                b_hn,
                peephole,
            } => {
                let p = peep(peephole);
                let b_hn = b_hn.as_slice();
                let plain = PerTile(LinearBeforeReset::<false> { s, b_hn, p });
                let peeped = PerTile(LinearBeforeReset::<true> { s, b_hn, p });
                match w_hh {
                    ThreeGates::One(pn) => {
                        let job = Job {
                            a,
                            nrows,
                            w: pn.view(),
                        };
                        // SAFETY: see above.
                        unsafe {
                            if p.is_null() {
                                pass::<B, W, _, 3>(team, &job, s.zigzag, &plain)
                            } else {
                                pass::<B, W, _, 3>(team, &job, s.zigzag, &peeped)
                            }
                        }
                    }
                    ThreeGates::Two(pn) => {
                        let job = Job {
                            a,
                            nrows,
                            w: pn.view(),
                        };
                        // SAFETY: see above.
                        unsafe {
                            if p.is_null() {
                                pass::<B, W, _, 6>(team, &job, s.zigzag, &plain)
                            } else {
                                pass::<B, W, _, 6>(team, &job, s.zigzag, &peeped)
                            }
                        }
                    }
                }
            }
            Weights::ResetBefore {
                w_rz,
                w_n,
                peephole,
            } => {
                let job = Job {
                    a,
                    nrows,
                    w: w_rz.view(),
                };
                let p = peep(peephole);
                // SAFETY: see above.
                unsafe {
                    if p.is_null() {
                        let epi = ResetUpdate::<false> { s, p };
                        pass::<B, W, _, 2>(team, &job, s.zigzag, &epi)
                    } else {
                        let epi = ResetUpdate::<true> { s, p };
                        pass::<B, W, _, 2>(team, &job, s.zigzag, &epi)
                    }
                };
                let job = Job {
                    a: s.aux_rows(),
                    nrows,
                    w: w_n.view(),
                };
                // SAFETY: see above; the first pass wrote `r ⊙ h` and `z` for every
                // tile before the barrier that ended it.
                unsafe { pass::<B, W, _, 4>(team, &job, s.zigzag, &New { s }) };
            }
        }
    }
}

/// The peephole rows `[2][padded(H)]` (r, z), or null.
fn peep(p: &Option<AlignedVec>) -> *const f32 {
    p.as_ref()
        .map_or(std::ptr::null(), |p| p.as_slice().as_ptr())
}

/// Adds the peephole terms `p_r ⊙ h`, `p_z ⊙ h` of the tile at unit `u` to the r and z
/// pre-activations (`PEEP`), or leaves them (plain GRU).
///
/// # Safety
/// With `PEEP`, `p` holds `[2][h_stride]` floats and `u + 16 <= h_stride`.
#[inline(always)]
unsafe fn peep_terms<V: V16, const PEEP: bool>(
    p: *const f32,
    stride: usize,
    u: usize,
    h: V,
    zr: V,
    zz: V,
) -> (V, V) {
    if !PEEP {
        return (zr, zz);
    }
    // SAFETY: the caller's contract.
    unsafe {
        (
            V::load(p.add(u)).mul_add(h, zr),
            V::load(p.add(stride + u)).mul_add(h, zz),
        )
    }
}

/// The AUGRU's update gate `(1 − a) z` for `row` (oneDNN's AUGRU), or `z` itself when
/// the step has no attention input.
///
/// # Safety
/// A non-null `s.att` holds row `row` at `row * s.att_stride`.
#[inline(always)]
unsafe fn attended<V: V16>(s: &StepPtrs, row: usize, z: V) -> V {
    if s.att.is_null() {
        return z;
    }
    // SAFETY: the caller's contract.
    unsafe { V::splat(1.0 - *s.att.add(row * s.att_stride)).mul(z) }
}

/// Linear before reset: the recurrent products of r, z and n of one tile in, `h'` out.
/// `PEEP`: this crate's peephole GRU (`p` its `[2][padded(H)]` rows).
struct LinearBeforeReset<'a, const PEEP: bool> {
    s: &'a StepPtrs,
    b_hn: &'a [f32],
    p: *const f32,
}

// SAFETY: `p` points into the packed weights, which outlive the team and are only read.
unsafe impl<const PEEP: bool> Sync for LinearBeforeReset<'_, PEEP> {}

impl<const PEEP: bool> TileEpilogue for LinearBeforeReset<'_, PEEP> {
    /// Prefetches the input projections and `h` of `tiles` tiles from `tile` of `row`.
    #[inline(always)]
    fn prefetch_tiles(&self, row: usize, tile: usize, tiles: usize) {
        let (s, u) = (self.s, tile * LANES);
        s.prefetch_pre(row, tile, tiles, 3);
        simd::prefetch(s.h_prev.wrapping_add(row * s.h_stride + u), LANES * tiles);
    }

    /// One tile: `acc` holds the recurrent products of r, z and n.
    #[inline(always)]
    unsafe fn tile<V: V16>(&self, row: usize, tile: usize, acc: &[V; 3]) {
        let s = self.s;
        let u = tile * LANES;
        // SAFETY: `tile` is a packed tile; rows are padded to whole tiles; `pre` has 3
        // gate columns per tile; `b_hn` is a padded row of hidden units; a non-null
        // `att` holds every row of the step (`StepPtrs::att`).
        unsafe {
            let pre = s.pre.add(row * s.pre_stride + 3 * u);
            let h = V::load(s.h_prev.add(row * s.h_stride + u));
            let (zr, zz) = peep_terms::<V, PEEP>(
                self.p,
                s.h_stride,
                u,
                h,
                acc[0].add(V::load(pre)),
                acc[1].add(V::load(pre.add(LANES))),
            );
            let r = sigmoid_or(clip(zr, s.clip), s.acts.f());
            let z = sigmoid_or(clip(zz, s.clip), s.acts.f());
            let hn = acc[2].add(V::load(self.b_hn.as_ptr().add(u)));
            let zn = r.mul_add(hn, V::load(pre.add(2 * LANES)));
            if s.keep_pre {
                // Training: the pre-activations, and the n gate's recurrent part.
                zr.store(pre);
                zz.store(pre.add(LANES));
                zn.store(pre.add(2 * LANES));
                hn.store(s.aux.add(row * s.aux_stride + u));
            }
            let n = tanh_or(clip(zn, s.clip), s.acts.g());
            let z = attended(s, row, z);
            // (1 - z) n + z h = n + z (h - n)
            z.mul_add(h.sub(n), n)
                .store(s.h_next.add(row * s.h_stride + u));
        }
    }
}

/// Reset before the product, first pass: r and z of one tile per panel; writes
/// `r ⊙ h` (the left operand of the second pass) and `z` to scratch. `PEEP` as for
/// [`LinearBeforeReset`].
struct ResetUpdate<'a, const PEEP: bool> {
    s: &'a StepPtrs,
    p: *const f32,
}

// SAFETY: as for `LinearBeforeReset`.
unsafe impl<const PEEP: bool> Sync for ResetUpdate<'_, PEEP> {}

impl<V: V16, const PEEP: bool> Epilogue<V, 2> for ResetUpdate<'_, PEEP> {
    #[inline(always)]
    unsafe fn finish(&self, row: usize, tile: usize, acc: &[V; 2]) {
        let s = self.s;
        let u = tile * LANES;
        // SAFETY: as for `LinearBeforeReset` (`att` included); `aux`/`aux2` are
        // padded rows.
        unsafe {
            let pre = s.pre.add(row * s.pre_stride + 3 * u);
            let h = V::load(s.h_prev.add(row * s.h_stride + u));
            let (zr, zz) = peep_terms::<V, PEEP>(
                self.p,
                s.h_stride,
                u,
                h,
                acc[0].add(V::load(pre)),
                acc[1].add(V::load(pre.add(LANES))),
            );
            if s.keep_pre {
                zr.store(pre);
                zz.store(pre.add(LANES));
            }
            let r = sigmoid_or(clip(zr, s.clip), s.acts.f());
            let z = sigmoid_or(clip(zz, s.clip), s.acts.f());
            r.mul(h).store(s.aux.add(row * s.aux_stride + u));
            attended(s, row, z).store(s.aux2.add(row * s.aux_stride + u));
        }
    }
}

/// Reset before the product, second pass: `acc = W_hn (r ⊙ h)` for tiles
/// `panel * NP + q`; finishes `h'`.
struct New<'a> {
    s: &'a StepPtrs,
}

impl<V: V16, const NP: usize> Epilogue<V, NP> for New<'_> {
    #[inline(always)]
    unsafe fn finish(&self, row: usize, panel: usize, acc: &[V; NP]) {
        let s = self.s;
        for (q, &a) in acc.iter().enumerate() {
            let u = (panel * NP + q) * LANES;
            // SAFETY: as for `ResetUpdate`; `pre` has 3 gate columns per tile.
            unsafe {
                let pre_n = s.pre.add(row * s.pre_stride + 3 * u + 2 * LANES);
                let zn = a.add(V::load(pre_n));
                if s.keep_pre {
                    zn.store(pre_n);
                }
                let n = tanh_or(clip(zn, s.clip), s.acts.g());
                let z = V::load(s.aux2.add(row * s.aux_stride + u));
                let h = V::load(s.h_prev.add(row * s.h_stride + u));
                z.mul_add(h.sub(n), n)
                    .store(s.h_next.add(row * s.h_stride + u));
            }
        }
    }
}
