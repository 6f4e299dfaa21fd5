//! The LSTM's backward step. With `m = o ⊙ tanh(c')` (`h' = m`, or `W_hr m` when
//! projected), per unit:
//!
//! ```text
//! d_o = ∂m · tanh(c') · σ'(o)                      dc' = dc + ∂m · o · tanh'(c') + d_o p_o
//! d_i = dc' · g · σ'(i)    d_f = dc' · c · σ'(f)    d_g = dc' · i · tanh'(g)
//! dc  = dc' · f + d_i p_i + d_f p_f                 (each gate gradient zero where clipped)
//! ```
//!
//! Coupled (`input_forget`, `f = 1 − i`): `d_i = dc' · (g − c) · σ'(i)`, `d_f = 0`.
//!
//! One pass per step over `W_hhᵀ` (its epilogue adds the carried and upstream
//! gradients and finishes the units of its tile); a projected cell first writes
//! `∂L/∂h'` (its rows also feed `∂W_hr`), then a second pass over `W_hrᵀ` gives `∂m`.
//! Activations are recomputed from the kept pre-activations with the forward's own
//! functions, so they are the forward's values bit for bit.

use rnn_reference::RnnConfig;

use super::Weights;
use crate::aligned::AlignedVec;
use crate::arch::Backend;
use crate::cells::backward::{
    back_pass, dh_in, dsigmoid, dtanh, final_pass, keep_units, unclipped, BackPtrs, GradJob, Left,
    Param, Right,
};
use crate::cells::clip;
use crate::element::Element;
use crate::kernel::{Epilogue, Rows};
use crate::pack::runtime::{forward_cols, panels_len, transpose_panels};
use crate::pack::{padded, PanelsView, LANES};
use crate::parallel::Team;
use crate::simd::{math, V16};

/// The transposed weights of one LSTM layer and direction.
pub(crate) struct BackWeights {
    /// `W_hhᵀ`: `k` = the gate-interleaved units (4 gates per tile), columns `H_out`.
    pub(crate) w_hh_t: PanelsView<f32, 4>,
    /// `W_hrᵀ`: `k` = `padded(H_out)`, columns `H`.
    w_hr_t: Option<PanelsView<f32, 4>>,
    /// Peepholes `[3][padded(H)]` (i, f, o) of the forward's packing, or null.
    peephole: *const f32,
    /// ONNX `input_forget`: `f = 1 − i`.
    coupled: bool,
}

const ALL: &[usize] = &[0, 1, 2, 3];

static JOBS: &[GradJob] = &[
    GradJob {
        left: Left::Input,
        right: Right::Gates(ALL),
        param: Param::Input,
        gates: ALL,
        ones: true,
    },
    GradJob {
        left: Left::HPrev,
        right: Right::Gates(ALL),
        param: Param::Recurrent,
        gates: ALL,
        ones: true,
    },
    // Projected: ∂W_hr = Σ ∂h' ⊗ m.
    GradJob {
        left: Left::Ext,
        right: Right::DhRows,
        param: Param::Projection,
        gates: &[0],
        ones: false,
    },
];

impl BackWeights {
    /// The weight-gradient products (with `∂W_hr` when projected).
    pub(crate) fn grad_jobs(&self) -> &'static [GradJob] {
        if self.w_hr_t.is_some() {
            JOBS
        } else {
            &JOBS[..2]
        }
    }
}

/// `(k of W_hhᵀ, k of W_hrᵀ)`.
fn ks(cfg: &RnnConfig) -> (usize, usize) {
    (
        forward_cols(cfg.hidden_size, 4, 4),
        padded(cfg.output_size()),
    )
}

/// Floats of the packed transposed weights.
pub(crate) fn packed_len(cfg: &RnnConfig) -> usize {
    let (k_hh, k_hr) = ks(cfg);
    let hr = match cfg.cell.proj_size() {
        Some(_) => panels_len(k_hr, cfg.hidden_size),
        None => 0,
    };
    panels_len(k_hh, cfg.output_size()) + hr
}

/// Writes `W_hhᵀ` (and `W_hrᵀ`) into `mem` (zeroed, `packed_len` floats).
///
/// # Safety
/// `mem` valid for `packed_len(cfg)` writes.
pub(crate) unsafe fn write<W: Element>(w: &Weights<W>, cfg: &RnnConfig, mem: *mut f32) {
    let (k_hh, k_hr) = ks(cfg);
    // SAFETY: `mem` holds both packings (`packed_len`); `k` = the forward panels'
    // packed columns.
    unsafe {
        transpose_panels(&w.w_hh, mem, k_hh, 0, |u| u);
        if let Some(p) = &w.w_hr {
            transpose_panels(
                p,
                mem.add(panels_len(k_hh, cfg.output_size())),
                k_hr,
                0,
                |j| j,
            );
        }
    }
}

/// The views of what [`write`] wrote at `mem`.
pub(crate) fn views<W: Element>(w: &Weights<W>, cfg: &RnnConfig, mem: *const f32) -> BackWeights {
    let (h, ho) = (cfg.hidden_size, cfg.output_size());
    let (k_hh, k_hr) = ks(cfg);
    BackWeights {
        w_hh_t: PanelsView {
            ptr: mem,
            k: k_hh,
            panels: ho.div_ceil(64),
            quant: None,
        },
        w_hr_t: w.w_hr.as_ref().map(|_| PanelsView {
            ptr: mem.wrapping_add(panels_len(k_hh, ho)),
            k: k_hr,
            panels: h.div_ceil(64),
            quant: None,
        }),
        peephole: w
            .peephole
            .as_ref()
            .map_or(std::ptr::null(), |p: &AlignedVec| p.as_slice().as_ptr()),
        coupled: w.coupled,
    }
}

/// One backward step.
///
/// # Safety
/// `B` came from `arch::dispatch`; `s` describes buffers sized for its rows.
pub(crate) unsafe fn step<B: Backend>(w: &BackWeights, s: &BackPtrs, first: bool, team: &Team<'_>) {
    let a = s.later_rows();
    // SAFETY: forwarded contract; `later` rows hold `k` gate gradients, the `dh_rows`
    // `padded(H_out)` floats.
    unsafe {
        match w.w_hr_t {
            None => {
                let epi = Plain {
                    s,
                    p: w.peephole,
                    coupled: w.coupled,
                };
                back_pass::<B, _>(team, a, s.batch, w.w_hh_t, first, s.zigzag, &epi)
            }
            Some(w_hr_t) => {
                let epi = Projected { s };
                back_pass::<B, _>(team, a, s.batch, w.w_hh_t, first, s.zigzag, &epi);
                let dh = Rows::strided(s.dh_rows, s.h_stride, s.batch);
                let epi = Update {
                    s,
                    p: w.peephole,
                    coupled: w.coupled,
                };
                back_pass::<B, _>(team, dh, s.batch, w_hr_t, false, s.zigzag, &epi)
            }
        }
    }
}

/// After the earliest step: `∂L/∂h0`.
///
/// # Safety
/// As for [`step`].
pub(crate) unsafe fn finish<B: Backend>(w: &BackWeights, s: &BackPtrs, team: &Team<'_>) {
    // SAFETY: forwarded contract.
    unsafe { final_pass::<B>(w.w_hh_t, s, team) }
}

/// The unprojected cell: `∂m = ∂L/∂h'` (product + carried + dy), then the update.
struct Plain<'a> {
    s: &'a BackPtrs,
    p: *const f32,
    coupled: bool,
}

// SAFETY: `p` points into the packed weights, which outlive the team and are only read.
unsafe impl Sync for Plain<'_> {}

impl<V: V16> Epilogue<V, 4> for Plain<'_> {
    #[inline(always)]
    unsafe fn finish(&self, row: usize, panel: usize, acc: &[V; 4]) {
        let s = self.s;
        let active = s.active(row);
        for (q, &a) in acc.iter().enumerate() {
            let u = (panel * 4 + q) * LANES;
            // SAFETY: `(row, u)` inside every padded buffer.
            unsafe {
                let dh = dh_in(s, row, u, a, active);
                let carry = if active { V::zero() } else { dh };
                carry.store(s.dhc.add(row * s.h_stride + u));
                cell(s, self.p, self.coupled, row, u, dh, active);
            }
        }
    }
}

/// Projected, first pass: `∂L/∂h'` (product + carried + dy) into the step's `dh` rows.
struct Projected<'a> {
    s: &'a BackPtrs,
}

impl<V: V16> Epilogue<V, 4> for Projected<'_> {
    #[inline(always)]
    unsafe fn finish(&self, row: usize, panel: usize, acc: &[V; 4]) {
        let s = self.s;
        let active = s.active(row);
        for (q, &a) in acc.iter().enumerate() {
            let u = (panel * 4 + q) * LANES;
            // SAFETY: `(row, u)` inside the padded `dh` and carry rows.
            unsafe {
                let dh = dh_in(s, row, u, a, active);
                let (out, carry) = if active {
                    (keep_units(dh, u, s.out_units), V::zero())
                } else {
                    (V::zero(), dh)
                };
                out.store(s.dh_rows.add(row * s.h_stride + u));
                carry.store(s.dhc.add(row * s.h_stride + u));
            }
        }
    }
}

/// Projected, second pass: `acc = ∂m`, then the update.
struct Update<'a> {
    s: &'a BackPtrs,
    p: *const f32,
    coupled: bool,
}

// SAFETY: as for `Plain`.
unsafe impl Sync for Update<'_> {}

impl<V: V16> Epilogue<V, 4> for Update<'_> {
    #[inline(always)]
    unsafe fn finish(&self, row: usize, panel: usize, acc: &[V; 4]) {
        let active = self.s.active(row);
        for (q, &a) in acc.iter().enumerate() {
            // SAFETY: `(row, u)` inside every padded buffer.
            unsafe {
                cell(
                    self.s,
                    self.p,
                    self.coupled,
                    row,
                    (panel * 4 + q) * LANES,
                    a,
                    active,
                )
            };
        }
    }
}

/// The cell's backward for units `u..u + 16` of `row` given `∂m`: gate gradients to
/// `dg` (zero if the row did not run), the cell-state carry, peephole gradients.
///
/// # Safety
/// `V`'s ISA; `(row, u)` inside every padded buffer; `p` null or `[3][c_stride]`.
#[inline(always)]
unsafe fn cell<V: V16>(
    s: &BackPtrs,
    p: *const f32,
    coupled: bool,
    row: usize,
    u: usize,
    dm: V,
    active: bool,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let dg = s.dg.add(row * s.dg_stride + 4 * u);
        if !active {
            for g in 0..4 {
                V::zero().store(dg.add(g * LANES));
            }
            return;
        }
        let z = s.z.add(row * s.z_stride + 4 * u);
        let (zi, zf, zg, zo) = (
            V::load(z),
            V::load(z.add(LANES)),
            V::load(z.add(2 * LANES)),
            V::load(z.add(3 * LANES)),
        );
        let i = math::sigmoid(clip(zi, s.clip));
        let g = math::tanh(clip(zg, s.clip));
        let o = math::sigmoid(clip(zo, s.clip));
        let c_old = V::load(s.c_prev.add(row * s.c_stride + u));
        let c_new = V::load(s.c_after.add(row * s.c_stride + u));
        let dcp = s.dc.add(row * s.c_stride + u);
        let tc = math::tanh(c_new);
        let d_o = unclipped(dm.mul(tc).mul(dsigmoid(o)), zo, s.clip);
        let mut dcn = dm.mul(o).mul_add(dtanh(tc), V::load(dcp));
        if !p.is_null() {
            dcn = d_o.mul_add(V::load(p.add(2 * s.c_stride + u)), dcn);
        }
        // Coupled: c' = c + i ⊙ (g − c), and the forget row acts nowhere.
        let (f, d_i, d_f) = if coupled {
            let d_i = unclipped(dcn.mul(g.sub(c_old)).mul(dsigmoid(i)), zi, s.clip);
            (V::splat(1.0).sub(i), d_i, V::zero())
        } else {
            let f = math::sigmoid(clip(zf, s.clip));
            let d_i = unclipped(dcn.mul(g).mul(dsigmoid(i)), zi, s.clip);
            let d_f = unclipped(dcn.mul(c_old).mul(dsigmoid(f)), zf, s.clip);
            (f, d_i, d_f)
        };
        let d_g = unclipped(dcn.mul(i).mul(dtanh(g)), zg, s.clip);
        let mut dc = dcn.mul(f);
        if !p.is_null() {
            dc = d_i.mul_add(V::load(p.add(u)), dc);
            dc = d_f.mul_add(V::load(p.add(s.c_stride + u)), dc);
            for (k, (d, c)) in [(d_i, c_old), (d_f, c_old), (d_o, c_new)]
                .into_iter()
                .enumerate()
            {
                let acc = s.dp.add(k * s.c_stride + u);
                d.mul_add(c, V::load(acc)).store(acc);
            }
        }
        dc.store(dcp);
        for (k, d) in [d_i, d_f, d_g, d_o].into_iter().enumerate() {
            keep_units(d, u, s.hid).store(dg.add(k * LANES));
        }
    }
}
