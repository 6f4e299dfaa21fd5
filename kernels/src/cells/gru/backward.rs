//! The GRU's backward step, in both reset forms. With `h' = n + z ⊙ (h − n)`:
//!
//! ```text
//! d_n = ∂h' · (1 − z) · tanh'(n)      d_z = ∂h' · (h − n) · σ'(z)      ∂h += ∂h' · z
//! linear before reset (pre_n = … + r ⊙ hn, hn = W_hn h + b_hn):
//!     d_r = d_n · hn · σ'(r); the recurrent side of n is d_n ⊙ r
//! reset before the product (pre_n = … + W_hn (r ⊙ h)):
//!     ∂(r ⊙ h) = d_n × W_hn;  d_r = ∂(r ⊙ h) · h · σ'(r);  ∂h += ∂(r ⊙ h) · r
//! ```
//! (each gate gradient zero where clip clamped it). The AUGRU replaces `z` by `z' = (1
//! − a) z` in `h'`: `d_n` and `∂h` read `z'`, `d_z = ∂h' · (h − n) · (1 − a) · σ'(z)`,
//! and each unit's `∂z' ⊙ z` goes to `da_units` (the driver sums `∂a = −Σ ∂z' z`).
//!
//! The first form is one pass per step over `W_hhᵀ`, its left operand a step buffer of
//! `[d_r, d_z, d_n ⊙ r]` per tile (the gate gradients themselves, `[d_r, d_z, d_n]`, go
//! to `dg` for `∂W_ih` and `dx`; `d_n ⊙ r` also to the extra rows for `∂W_hn`). The
//! second form needs `∂(r ⊙ h)` before `d_r`, so it is two passes, as its forward: over
//! `[W_hr W_hz]ᵀ` (finishing `d_z`, `d_n`), then over `W_hnᵀ` (finishing `d_r`); its
//! step buffer holds `[d_r, d_z]` per tile, then `d_n`.

use rnn_reference::RnnConfig;

use super::Weights;
use crate::arch::Backend;
use crate::cells::backward::{
    back_pass, dh_in, final_pass, keep_units, sigmoid_slope, tanh_slope, unclipped, Acts, BackPtrs,
    GradJob, Grads, Param,
};
use crate::cells::clip;
use crate::element::Element;
use crate::kernel::{Epilogue, Rows};
use crate::pack::runtime::{forward_cols, panels_len, transpose_panels, TransposeBlocksFn};
use crate::pack::{padded, PanelsView, LANES};
use crate::parallel::{Share, Team};
use crate::simd::V16;

/// The transposed recurrent weights of one GRU layer and direction.
pub(crate) enum BackWeights {
    /// `W_hhᵀ`, `k` = the three gates interleaved per tile; `hp = padded(H)` (the
    /// step buffer is `[3 * hp]`, laid out like the pre-activations).
    LinearBeforeReset {
        w_hh_t: PanelsView<f32, 4>,
        hp: usize,
        /// Peepholes `[2][hp]` (r, z) of the forward's packing, or null.
        p: *const f32,
    },
    /// `[W_hr W_hz]ᵀ` (`k` = r and z interleaved per tile) and `W_hnᵀ`.
    ResetBefore {
        w_rz_t: PanelsView<f32, 4>,
        w_n_t: PanelsView<f32, 4>,
        /// `padded(H)`: the step buffer is `[2 * hp]` (r, z) then `[hp]` (n).
        hp: usize,
        /// As for `LinearBeforeReset`.
        p: *const f32,
    },
}

const ALL: &[usize] = &[0, 1, 2];
const RZ: &[usize] = &[0, 1];
const N: &[usize] = &[2];

const INPUT: GradJob = GradJob {
    acts: Acts::Input,
    grads: Grads::Gates(ALL),
    param: Param::Input,
    gates: ALL,
    ones: true,
};
const RECURRENT_RZ: GradJob = GradJob {
    acts: Acts::HPrev,
    grads: Grads::Gates(RZ),
    param: Param::Recurrent,
    gates: RZ,
    ones: true,
};

/// Linear before reset: the n gate's recurrent side (`d_n ⊙ r`, in the extra rows)
/// times `h`.
static LBR_JOBS: &[GradJob] = &[
    INPUT,
    RECURRENT_RZ,
    GradJob {
        acts: Acts::HPrev,
        grads: Grads::Ext,
        param: Param::Recurrent,
        gates: N,
        ones: true,
    },
];

/// Reset before: `d_n` times `r ⊙ h` (in the extra rows).
static RB_JOBS: &[GradJob] = &[
    INPUT,
    RECURRENT_RZ,
    GradJob {
        acts: Acts::Ext,
        grads: Grads::Gates(N),
        param: Param::Recurrent,
        gates: N,
        ones: true,
    },
];

impl BackWeights {
    /// The weight-gradient products.
    pub(crate) fn grad_jobs(&self) -> &'static [GradJob] {
        match self {
            BackWeights::LinearBeforeReset { .. } => LBR_JOBS,
            BackWeights::ResetBefore { .. } => RB_JOBS,
        }
    }

    /// Floats per row of the step buffers.
    pub(crate) fn carry_width(&self) -> usize {
        match self {
            BackWeights::LinearBeforeReset { hp, .. } | BackWeights::ResetBefore { hp, .. } => {
                3 * hp
            }
        }
    }
}

/// Floats of the packed transposed weights (for either storage: paired bf16 panels of
/// two tiles may pack one tile more).
pub(crate) fn packed_len(cfg: &RnnConfig) -> usize {
    let h = cfg.hidden_size;
    if cfg.cell.gru().is_some_and(|v| v.linear_before_reset) {
        panels_len(forward_cols(h, 3, 6), h)
    } else {
        panels_len(forward_cols(h, 2, 2), h) + panels_len(forward_cols(h, 1, 4), h)
    }
}

/// `k` of each transposed matrix: the forward panels' packed columns.
fn ks<W: Element>(w: &Weights<W>) -> (usize, usize) {
    match w {
        Weights::LinearBeforeReset { w_hh, .. } => (w_hh.cols(), 0),
        Weights::ResetBefore { w_rz, w_n, .. } => (w_rz.cols(), w_n.cols()),
    }
}

/// Writes `share` of the transposed weights into `mem` (zeroed, `packed_len` floats).
///
/// # Safety
/// `mem` valid for `packed_len(cfg)` writes; `blocks` a detected path's.
pub(crate) unsafe fn write<W: Element>(
    w: &Weights<W>,
    cfg: &RnnConfig,
    mem: *mut f32,
    share: Share,
    blocks: TransposeBlocksFn,
) {
    let (k0, k1) = ks(w);
    // SAFETY: `mem` holds `packed_len` floats, which cover each packing at `k` = its
    // forward panels' packed columns.
    unsafe {
        match w {
            Weights::LinearBeforeReset { w_hh, .. } => w_hh.transpose_into(mem, k0, share, blocks),
            Weights::ResetBefore { w_rz, w_n, .. } => {
                transpose_panels(w_rz, mem, k0, 0, |u| u, share, blocks);
                let n_mem = mem.add(panels_len(k0, cfg.hidden_size));
                transpose_panels(w_n, n_mem, k1, 0, |u| u, share, blocks);
            }
        }
    }
}

#[cfg(test)]
impl BackWeights {
    /// Every transposed matrix.
    pub(crate) fn panel_views(&self) -> Vec<PanelsView<f32, 4>> {
        match self {
            BackWeights::LinearBeforeReset { w_hh_t, .. } => vec![*w_hh_t],
            BackWeights::ResetBefore { w_rz_t, w_n_t, .. } => vec![*w_rz_t, *w_n_t],
        }
    }
}

/// The views of what [`write`] wrote at `mem`.
pub(crate) fn views<W: Element>(w: &Weights<W>, cfg: &RnnConfig, mem: *const f32) -> BackWeights {
    let h = cfg.hidden_size;
    let (k0, k1) = ks(w);
    let view = |ptr: *const f32, k: usize| PanelsView {
        ptr,
        k,
        panels: h.div_ceil(64),
        quant: None,
        striped: crate::pack::runtime::striped(),
    };
    match w {
        Weights::LinearBeforeReset { peephole, .. } => BackWeights::LinearBeforeReset {
            w_hh_t: view(mem, k0),
            hp: padded(h),
            p: super::peep(peephole),
        },
        Weights::ResetBefore { peephole, .. } => BackWeights::ResetBefore {
            w_rz_t: view(mem, k0),
            w_n_t: view(mem.wrapping_add(panels_len(k0, h)), k1),
            hp: padded(h),
            p: super::peep(peephole),
        },
    }
}

/// One backward step.
///
/// # Safety
/// `B` came from `arch::dispatch`; `s` describes buffers sized for its rows, `later`
/// and `carry_out` step buffers of [`BackWeights::carry_width`] floats per row.
pub(crate) unsafe fn step<B: Backend>(w: &BackWeights, s: &BackPtrs, first: bool, team: &Team<'_>) {
    let a = s.later_rows();
    // SAFETY: forwarded contract; each left operand holds its `k` floats per row (the
    // step buffer's r/z part, or its n part).
    unsafe {
        match w {
            BackWeights::LinearBeforeReset { w_hh_t, p, .. } => {
                let epi = Lbr { s, p: *p };
                back_pass::<B, _>(team, a, s.batch, *w_hh_t, first, s.zigzag, &epi)
            }
            BackWeights::ResetBefore {
                w_rz_t,
                w_n_t,
                hp,
                p,
            } => {
                let epi = RbUpdate { s, hp: *hp, p: *p };
                back_pass::<B, _>(team, a, s.batch, *w_rz_t, first, s.zigzag, &epi);
                let dn = Rows::strided(s.carry_out.add(2 * hp), s.later_stride, s.batch);
                let epi = RbReset { s, p: *p };
                back_pass::<B, _>(team, dn, s.batch, *w_n_t, false, s.zigzag, &epi)
            }
        }
    }
}

/// After the earliest step: `∂L/∂h0`.
///
/// # Safety
/// As for [`step`].
pub(crate) unsafe fn finish<B: Backend>(w: &BackWeights, s: &BackPtrs, team: &Team<'_>) {
    let w_t = match w {
        BackWeights::LinearBeforeReset { w_hh_t, .. } => *w_hh_t,
        BackWeights::ResetBefore { w_rz_t, .. } => *w_rz_t,
    };
    // SAFETY: forwarded contract.
    unsafe { final_pass::<B>(w_t, s, team) }
}

/// The values of `z`, `n` (and their pre-activations) of one tile, and `h`; the
/// AUGRU's `1 − a` of the row and `z' = (1 − a) z` (`z` itself for other GRUs).
struct Zn<V> {
    zz: V,
    zn: V,
    z: V,
    n: V,
    /// The slopes of the z and n gates' functions at their (clipped) pre-activations.
    z_d: V,
    n_d: V,
    h: V,
    keep: Option<V>,
    zp: V,
}

impl<V: V16> Zn<V> {
    /// # Safety
    /// `V`'s ISA; `(row, u)` inside the padded rows.
    #[inline(always)]
    unsafe fn load(s: &BackPtrs, row: usize, u: usize) -> Self {
        // SAFETY: the caller's contract.
        unsafe {
            let zp = s.z.add(row * s.z_stride + 3 * u);
            let (zz, zn) = (V::load(zp.add(LANES)), V::load(zp.add(2 * LANES)));
            let (z, z_d) = sigmoid_slope(clip(zz, s.clip), s.acts.f());
            let (n, n_d) = tanh_slope(clip(zn, s.clip), s.acts.g());
            // A non-null `att` holds the step's rows (driver's contract).
            let keep = (!s.att.is_null()).then(|| V::splat(1.0 - *s.att.add(row)));
            Zn {
                zz,
                zn,
                z,
                n,
                z_d,
                n_d,
                h: V::load(s.h_prev.add(row * s.h_stride + u)),
                keep,
                zp: keep.map_or(z, |k| k.mul(z)),
            }
        }
    }

    /// `(d_z, d_n)` from `∂h'`, lane-masked; an AUGRU's `∂z' ⊙ z` to `da_units`.
    ///
    /// # Safety
    /// `V`'s ISA; `(row, u)` inside the padded rows.
    #[inline(always)]
    unsafe fn grads(&self, s: &BackPtrs, row: usize, u: usize, dh: V) -> (V, V) {
        // SAFETY: the caller's contract.
        unsafe {
            let one_z = V::splat(1.0).sub(self.zp);
            let d_n = unclipped(dh.mul(one_z).mul(self.n_d), self.zn, s.clip);
            let dzp = dh.mul(self.h.sub(self.n));
            let dz = match self.keep {
                Some(k) => {
                    let da = keep_units(dzp.mul(self.z), u, s.hid);
                    da.store(s.da_units.add(row * s.ext_stride + u));
                    dzp.mul(k)
                }
                None => dzp,
            };
            let d_z = unclipped(dz.mul(self.z_d), self.zz, s.clip);
            (keep_units(d_z, u, s.hid), keep_units(d_n, u, s.hid))
        }
    }
}

/// The peephole GRU's terms of one tile: `∂h += d ⊙ p_k` and `∂p_k += d ⊙ h` for gate
/// `k` (0: r, 1: z) at unit `u` of `row`; nothing when `p` is null (plain GRU).
///
/// # Safety
/// `V`'s ISA; `p` null or `[2][c_stride]`, `s.dp` `[2][c_stride]`; `(row, u)` inside.
#[inline(always)]
unsafe fn peep_grad<V: V16>(
    s: &BackPtrs,
    p: *const f32,
    k: usize,
    u: usize,
    d: V,
    h: V,
    dh: V,
) -> V {
    if p.is_null() {
        return dh;
    }
    // SAFETY: the caller's contract.
    unsafe {
        let acc = s.dp.add(k * s.c_stride + u);
        d.mul_add(h, V::load(acc)).store(acc);
        d.mul_add(V::load(p.add(k * s.c_stride + u)), dh)
    }
}

/// Linear before reset: `∂h'` in, `[d_r, d_z, d_n]` out.
struct Lbr<'a> {
    s: &'a BackPtrs,
    p: *const f32,
}

// SAFETY: `p` points into the packed weights, which outlive the team and are only read;
// members write disjoint tiles of the peephole sums.
unsafe impl Sync for Lbr<'_> {}

impl<V: V16> Epilogue<V, 4> for Lbr<'_> {
    #[inline(always)]
    unsafe fn finish(&self, row: usize, panel: usize, acc: &[V; 4]) {
        let s = self.s;
        let active = s.active(row);
        for (q, &a) in acc.iter().enumerate() {
            let u = (panel * 4 + q) * LANES;
            // SAFETY: `(row, u)` inside every padded buffer.
            unsafe {
                let dh = dh_in(s, row, u, a, active);
                let (g, carry, ext, dhc) = if active {
                    let t = Zn::load(s, row, u);
                    let zr = V::load(s.z.add(row * s.z_stride + 3 * u));
                    let (r, r_d) = sigmoid_slope(clip(zr, s.clip), s.acts.f());
                    let (d_z, d_n) = t.grads(s, row, u, dh);
                    let hn = V::load(s.ext.add(row * s.ext_stride + u));
                    let d_r = unclipped(d_n.mul(hn).mul(r_d), zr, s.clip);
                    let d_r = keep_units(d_r, u, s.hid);
                    let d_nr = d_n.mul(r);
                    let dhc = peep_grad(s, self.p, 0, u, d_r, t.h, dh.mul(t.zp));
                    let dhc = peep_grad(s, self.p, 1, u, d_z, t.h, dhc);
                    ([d_r, d_z, d_n], [d_r, d_z, d_nr], d_nr, dhc)
                } else {
                    let z = V::zero();
                    ([z; 3], [z; 3], z, dh)
                };
                let (dg, co) = (
                    s.dg.add(row * s.dg_stride + 3 * u),
                    s.carry_out.add(row * s.later_stride + 3 * u),
                );
                for k in 0..3 {
                    g[k].store(dg.add(k * LANES));
                    carry[k].store(co.add(k * LANES));
                }
                ext.store(s.ext.add(row * s.ext_stride + u));
                dhc.store(s.dhc.add(row * s.h_stride + u));
            }
        }
    }
}

/// Reset before, first pass: `∂h'` in; `d_z`, `d_n` out (the r slot of the kept
/// pre-activations stays for the second pass).
struct RbUpdate<'a> {
    s: &'a BackPtrs,
    hp: usize,
    p: *const f32,
}

// SAFETY: as for `Lbr`.
unsafe impl Sync for RbUpdate<'_> {}

impl<V: V16> Epilogue<V, 4> for RbUpdate<'_> {
    #[inline(always)]
    unsafe fn finish(&self, row: usize, panel: usize, acc: &[V; 4]) {
        let s = self.s;
        let active = s.active(row);
        for (q, &a) in acc.iter().enumerate() {
            let u = (panel * 4 + q) * LANES;
            // SAFETY: `(row, u)` inside every padded buffer; the step buffer row holds
            // `3 * hp` floats.
            unsafe {
                let dh = dh_in(s, row, u, a, active);
                let (d_z, d_n, dhc) = if active {
                    let t = Zn::load(s, row, u);
                    let (d_z, d_n) = t.grads(s, row, u, dh);
                    (d_z, d_n, peep_grad(s, self.p, 1, u, d_z, t.h, dh.mul(t.zp)))
                } else {
                    (V::zero(), V::zero(), dh)
                };
                let dg = s.dg.add(row * s.dg_stride + 3 * u);
                d_z.store(dg.add(LANES));
                d_n.store(dg.add(2 * LANES));
                let co = s.carry_out.add(row * s.later_stride);
                d_z.store(co.add(2 * u + LANES));
                d_n.store(co.add(2 * self.hp + u));
                dhc.store(s.dhc.add(row * s.h_stride + u));
            }
        }
    }
}

/// Reset before, second pass: `acc = ∂(r ⊙ h)`; `d_r` out, `∂h += ∂(r ⊙ h) · r`, and
/// `r ⊙ h` to the extra rows (the left operand of `∂W_hn`).
struct RbReset<'a> {
    s: &'a BackPtrs,
    p: *const f32,
}

// SAFETY: as for `Lbr`.
unsafe impl Sync for RbReset<'_> {}

impl<V: V16> Epilogue<V, 4> for RbReset<'_> {
    #[inline(always)]
    unsafe fn finish(&self, row: usize, panel: usize, acc: &[V; 4]) {
        let s = self.s;
        let active = s.active(row);
        for (q, &a) in acc.iter().enumerate() {
            let u = (panel * 4 + q) * LANES;
            // SAFETY: as for `RbUpdate`.
            unsafe {
                let (d_r, rh) = if active {
                    let zr = V::load(s.z.add(row * s.z_stride + 3 * u));
                    let (r, r_d) = sigmoid_slope(clip(zr, s.clip), s.acts.f());
                    let h = V::load(s.h_prev.add(row * s.h_stride + u));
                    let d_r = keep_units(unclipped(a.mul(h).mul(r_d), zr, s.clip), u, s.hid);
                    let dhc = s.dhc.add(row * s.h_stride + u);
                    let sum = a.mul_add(r, V::load(dhc));
                    peep_grad(s, self.p, 0, u, d_r, h, sum).store(dhc);
                    (d_r, r.mul(h))
                } else {
                    (V::zero(), V::zero())
                };
                d_r.store(s.dg.add(row * s.dg_stride + 3 * u));
                d_r.store(s.carry_out.add(row * s.later_stride + 2 * u));
                rh.store(s.ext.add(row * s.ext_stride + u));
            }
        }
    }
}
