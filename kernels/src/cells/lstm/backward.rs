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
//! CIFG (`i = 1 − f`, no input gate row, peepholes f and o): `d_f = dc' · (c − g) ·
//! σ'(f)`.
//!
//! One pass per step over `W_hhᵀ` (its epilogue adds the carried and upstream
//! gradients and finishes the units of its tile); a projected cell first writes
//! `∂L/∂h'` (its rows also feed `∂W_hr`), then a second pass over `W_hrᵀ` gives `∂m`.
//! Activations are recomputed from the kept pre-activations with the forward's own
//! functions, so they are the forward's values bit for bit. The layer-norm LSTM's step
//! has its own passes ([`layer_norm`]).

mod layer_norm;

use rnn_reference::{GateCoupling, RnnConfig};

use self::layer_norm::NormPtrs;
use super::{GatePanels, Weights};
use crate::aligned::AlignedVec;
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

/// The transposed weights of one LSTM layer and direction.
pub(crate) struct BackWeights {
    /// `W_hhᵀ`: `k` = the gate-interleaved units (4 gates per tile, CIFG 3), columns
    /// `H_out`.
    pub(crate) w_hh_t: PanelsView<f32, 4>,
    /// `W_hrᵀ`: `k` = `padded(H_out)`, columns `H`.
    w_hr_t: Option<PanelsView<f32, 4>>,
    /// Peepholes `[3][padded(H)]` (i, f, o; CIFG `[2][..]`, f, o) of the forward's
    /// packing, or null.
    peephole: *const f32,
    /// How the input and forget gates are coupled.
    coupling: GateCoupling,
    /// A layer-norm LSTM's scales and biases.
    norm: Option<NormPtrs>,
}

const ALL: &[usize] = &[0, 1, 2, 3];
const CIFG: &[usize] = &[0, 1, 2];

/// The weight-gradient products of an LSTM whose gate rows hold `gates` (all four, or
/// CIFG's three), with `∂W_hr` last; with the biases' rows (`ones`) unless the biases
/// join after a layer norm (whose step sums their gradients itself).
const fn jobs(gates: &'static [usize], ones: bool) -> [GradJob; 3] {
    [
        GradJob {
            acts: Acts::Input,
            grads: Grads::Gates(gates),
            param: Param::Input,
            gates,
            ones,
        },
        GradJob {
            acts: Acts::HPrev,
            grads: Grads::Gates(gates),
            param: Param::Recurrent,
            gates,
            ones,
        },
        // Projected: ∂W_hr = Σ ∂h' ⊗ m.
        GradJob {
            acts: Acts::Ext,
            grads: Grads::DhRows,
            param: Param::Projection,
            gates: &[0],
            ones: false,
        },
    ]
}

static JOBS: [GradJob; 3] = jobs(ALL, true);
static CIFG_JOBS: [GradJob; 3] = jobs(CIFG, true);
static NORM_JOBS: [GradJob; 3] = jobs(ALL, false);
static NORM_CIFG_JOBS: [GradJob; 3] = jobs(CIFG, false);

impl BackWeights {
    /// The weight-gradient products (with `∂W_hr` when projected).
    pub(crate) fn grad_jobs(&self) -> &'static [GradJob] {
        let jobs = match (self.coupling == GateCoupling::Cifg, self.norm.is_some()) {
            (false, false) => &JOBS,
            (true, false) => &CIFG_JOBS,
            (false, true) => &NORM_JOBS,
            (true, true) => &NORM_CIFG_JOBS,
        };
        if self.w_hr_t.is_some() {
            jobs
        } else {
            &jobs[..2]
        }
    }
}

/// `(k of W_hhᵀ, k of W_hrᵀ)` for any storage (CIFG's paired bf16 panels of two tiles
/// may pack one tile more).
fn ks(cfg: &RnnConfig) -> (usize, usize) {
    let h = cfg.hidden_size;
    let k_hh = if cfg.cell.cifg() {
        forward_cols(h, 3, 6)
    } else {
        forward_cols(h, 4, 4)
    };
    (k_hh, padded(cfg.output_size()))
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

/// Writes `share` of `W_hhᵀ` (and `W_hrᵀ`) into `mem` (zeroed, `packed_len` floats).
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
    let (k_max, k_hr) = ks(cfg);
    let k_hh = w.w_hh.cols();
    // SAFETY: `mem` holds both packings (`packed_len`, at `k_max >= k_hh`); `k` = the
    // forward panels' packed columns.
    unsafe {
        match &w.w_hh {
            GatePanels::Four(p) => transpose_panels(p, mem, k_hh, 0, |u| u, share, blocks),
            GatePanels::Three(p) => p.transpose_into(mem, k_hh, share, blocks),
        }
        if let Some(p) = &w.w_hr {
            transpose_panels(
                p,
                mem.add(panels_len(k_max, cfg.output_size())),
                k_hr,
                0,
                |j| j,
                share,
                blocks,
            );
        }
    }
}

#[cfg(test)]
impl BackWeights {
    /// Every transposed matrix (`W_hhᵀ`, then `W_hrᵀ` if any).
    pub(crate) fn panel_views(&self) -> Vec<PanelsView<f32, 4>> {
        std::iter::once(self.w_hh_t).chain(self.w_hr_t).collect()
    }
}

/// The views of what [`write`] wrote at `mem`.
pub(crate) fn views<W: Element>(w: &Weights<W>, cfg: &RnnConfig, mem: *const f32) -> BackWeights {
    let (h, ho) = (cfg.hidden_size, cfg.output_size());
    let (k_max, k_hr) = ks(cfg);
    BackWeights {
        w_hh_t: PanelsView {
            ptr: mem,
            k: w.w_hh.cols(),
            panels: ho.div_ceil(64),
            quant: None,
            striped: crate::pack::runtime::striped(),
        },
        w_hr_t: w.w_hr.as_ref().map(|_| PanelsView {
            ptr: mem.wrapping_add(panels_len(k_max, ho)),
            k: k_hr,
            panels: h.div_ceil(64),
            quant: None,
            striped: crate::pack::runtime::striped(),
        }),
        peephole: w
            .peephole
            .as_ref()
            .map_or(std::ptr::null(), |p: &AlignedVec| p.as_slice().as_ptr()),
        coupling: w.coupling,
        norm: w.norm.as_ref().map(|n| {
            let (gamma, bias) = n.ptrs();
            NormPtrs { gamma, bias }
        }),
    }
}

/// One backward step.
///
/// # Safety
/// `B` came from `arch::dispatch`; `s` describes buffers sized for its rows.
pub(crate) unsafe fn step<B: Backend>(w: &BackWeights, s: &BackPtrs, first: bool, team: &Team<'_>) {
    if let Some(norm) = w.norm {
        // SAFETY: forwarded contract.
        return unsafe { layer_norm::step::<B>(w, norm, s, first, team) };
    }
    let a = s.later_rows();
    // SAFETY: forwarded contract; `later` rows hold `k` gate gradients, the `dh_rows`
    // `padded(H_out)` floats.
    unsafe {
        match w.w_hr_t {
            None => {
                let epi = Plain {
                    s,
                    p: w.peephole,
                    coupling: w.coupling,
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
                    coupling: w.coupling,
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
    coupling: GateCoupling,
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
                cell(s, self.p, self.coupling, row, u, dh, active);
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
    coupling: GateCoupling,
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
                    self.coupling,
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
/// `V`'s ISA; `(row, u)` inside every padded buffer; `p` null or the peephole rows
/// (`[3][c_stride]`; CIFG `[2][c_stride]`).
#[inline(always)]
unsafe fn cell<V: V16>(
    s: &BackPtrs,
    p: *const f32,
    coupling: GateCoupling,
    row: usize,
    u: usize,
    dm: V,
    active: bool,
) {
    // Gate slots in a tile (i, f, g, o; CIFG f, g, o) and peephole rows (i, f, o;
    // CIFG f, o).
    let cifg = coupling == GateCoupling::Cifg;
    let (ng, kf, kg, ko) = if cifg { (3, 0, 1, 2) } else { (4, 1, 2, 3) };
    let (pf, po) = if cifg { (0, 1) } else { (1, 2) };
    // SAFETY: the caller's contract.
    unsafe {
        let dg = s.dg.add(row * s.dg_stride + ng * u);
        if !active {
            for g in 0..ng {
                V::zero().store(dg.add(g * LANES));
            }
            return;
        }
        let z = s.z.add(row * s.z_stride + ng * u);
        let (zf, zg, zo) = (
            V::load(z.add(kf * LANES)),
            V::load(z.add(kg * LANES)),
            V::load(z.add(ko * LANES)),
        );
        let (g, g_d) = tanh_slope(clip(zg, s.clip), s.acts.g());
        let (o, o_d) = sigmoid_slope(clip(zo, s.clip), s.acts.f());
        let c_old = V::load(s.c_prev.add(row * s.c_stride + u));
        let c_new = V::load(s.c_after.add(row * s.c_stride + u));
        let dcp = s.dc.add(row * s.c_stride + u);
        let (tc, tc_d) = tanh_slope(c_new, s.acts.h());
        let d_o = unclipped(dm.mul(tc).mul(o_d), zo, s.clip);
        let mut dcn = dm.mul(o).mul_add(tc_d, V::load(dcp));
        if !p.is_null() {
            dcn = d_o.mul_add(V::load(p.add(po * s.c_stride + u)), dcn);
        }
        let (i, f, d_i, d_f) = match coupling {
            // CIFG: c' = g + f ⊙ (c − g); there is no input gate row.
            GateCoupling::Cifg => {
                let (f, f_d) = sigmoid_slope(clip(zf, s.clip), s.acts.f());
                let d_f = unclipped(dcn.mul(c_old.sub(g)).mul(f_d), zf, s.clip);
                (V::splat(1.0).sub(f), f, V::zero(), d_f)
            }
            // Coupled: c' = c + i ⊙ (g − c), and the forget row acts nowhere.
            GateCoupling::InputForget => {
                let zi = V::load(z);
                let (i, i_d) = sigmoid_slope(clip(zi, s.clip), s.acts.f());
                let d_i = unclipped(dcn.mul(g.sub(c_old)).mul(i_d), zi, s.clip);
                (i, V::splat(1.0).sub(i), d_i, V::zero())
            }
            _ => {
                let zi = V::load(z);
                let (i, i_d) = sigmoid_slope(clip(zi, s.clip), s.acts.f());
                let (f, f_d) = sigmoid_slope(clip(zf, s.clip), s.acts.f());
                let d_i = unclipped(dcn.mul(g).mul(i_d), zi, s.clip);
                let d_f = unclipped(dcn.mul(c_old).mul(f_d), zf, s.clip);
                (i, f, d_i, d_f)
            }
        };
        let d_g = unclipped(dcn.mul(i).mul(g_d), zg, s.clip);
        let mut dc = dcn.mul(f);
        if !p.is_null() {
            if !cifg {
                dc = d_i.mul_add(V::load(p.add(u)), dc);
                let acc = s.dp.add(u);
                d_i.mul_add(c_old, V::load(acc)).store(acc);
            }
            dc = d_f.mul_add(V::load(p.add(pf * s.c_stride + u)), dc);
            for (k, d, c) in [(pf, d_f, c_old), (po, d_o, c_new)] {
                let acc = s.dp.add(k * s.c_stride + u);
                d.mul_add(c, V::load(acc)).store(acc);
            }
        }
        dc.store(dcp);
        let grads = [d_i, d_f, d_g, d_o];
        for (k, &d) in grads[4 - ng..].iter().enumerate() {
            keep_units(d, u, s.hid).store(dg.add(k * LANES));
        }
    }
}
