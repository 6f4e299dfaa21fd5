//! The Elman RNN's backward step: `∂L/∂h = (later gate gradients) × W_hh + carried + dy`
//! over panels of `W_hhᵀ`, and in the epilogue `dz = ∂L/∂h · act'(z)` (zero where clip
//! clamped `z`), with `tanh' = 1 - h²` from the kept state and `relu' = [z > 0]`.

use rnn_reference::RnnConfig;

use super::Weights;
use crate::arch::Backend;
use crate::cells::backward::{
    back_pass, dh_in, dtanh, final_pass, keep_units, unclipped, Acts, BackPtrs, GradJob, Grads,
    Param,
};
use crate::cells::clip;
use crate::element::Element;
use crate::kernel::Epilogue;
use crate::pack::runtime::{forward_cols, panels_len, transpose_panels, TransposeBlocksFn};
use crate::pack::{PanelsView, LANES};
use crate::parallel::{Share, Team};
use crate::simd::V16;

/// `W_hhᵀ` (f32 panels; `k` = the gate-interleaved units, columns = `H_out`).
pub(crate) struct BackWeights {
    pub(crate) w_hh_t: PanelsView<f32, 4>,
    relu: bool,
}

/// Input and recurrent products of every gate, with their biases.
pub(crate) static GRAD_JOBS: &[GradJob] = &[
    GradJob {
        acts: Acts::Input,
        grads: Grads::Gates(&[0]),
        param: Param::Input,
        gates: &[0],
        ones: true,
    },
    GradJob {
        acts: Acts::HPrev,
        grads: Grads::Gates(&[0]),
        param: Param::Recurrent,
        gates: &[0],
        ones: true,
    },
];

/// Floats of the packed `W_hhᵀ`.
pub(crate) fn packed_len(cfg: &RnnConfig) -> usize {
    panels_len(forward_cols(cfg.hidden_size, 1, 4), cfg.output_size())
}

/// Writes `share` of `W_hhᵀ` into `mem` (zeroed, `packed_len` floats).
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
    let k = forward_cols(cfg.hidden_size, 1, 4);
    // SAFETY: `mem` holds k rows of panels covering H_out columns, `k` = the forward
    // panels' packed columns.
    unsafe { transpose_panels(&w.w_hh, mem, k, 0, |u| u, share, blocks) };
}

/// The views of what [`write`] wrote at `mem`.
pub(crate) fn views<W: Element>(w: &Weights<W>, cfg: &RnnConfig, mem: *const f32) -> BackWeights {
    BackWeights {
        w_hh_t: PanelsView {
            ptr: mem,
            k: forward_cols(cfg.hidden_size, 1, 4),
            panels: cfg.output_size().div_ceil(64),
            quant: None,
            striped: crate::pack::runtime::striped(),
        },
        relu: w.relu,
    }
}

/// One backward step.
///
/// # Safety
/// `B` came from `arch::dispatch`; `s` describes buffers sized for its rows.
pub(crate) unsafe fn step<B: Backend>(w: &BackWeights, s: &BackPtrs, first: bool, team: &Team<'_>) {
    let epi = Grad { s, relu: w.relu };
    // SAFETY: forwarded contract; `later` rows hold `k` gate gradients.
    unsafe {
        back_pass::<B, _>(
            team,
            s.later_rows(),
            s.batch,
            w.w_hh_t,
            first,
            s.zigzag,
            &epi,
        )
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

/// `∂L/∂h` in, `dz` out, for the tiles of one panel.
struct Grad<'a> {
    s: &'a BackPtrs,
    relu: bool,
}

impl<V: V16> Epilogue<V, 4> for Grad<'_> {
    #[inline(always)]
    unsafe fn finish(&self, row: usize, panel: usize, acc: &[V; 4]) {
        let s = self.s;
        let active = s.active(row);
        for (q, &a) in acc.iter().enumerate() {
            let u = (panel * 4 + q) * LANES;
            // SAFETY: rows are padded to whole panels; `(row, u)` is inside every
            // buffer the driver sized.
            unsafe {
                let dh = dh_in(s, row, u, a, active);
                let (dz, carry) = if active {
                    let z = V::load(s.z.add(row * s.z_stride + u));
                    let d = match s.acts.f() {
                        Some(f) => dh.mul(clip(z, s.clip).activation_slope(f).1),
                        None if self.relu => V::zero().select_lt(z, dh, V::zero()),
                        None => dh.mul(dtanh(V::load(s.h_after.add(row * s.h_stride + u)))),
                    };
                    (keep_units(unclipped(d, z, s.clip), u, s.hid), V::zero())
                } else {
                    (V::zero(), dh)
                };
                dz.store(s.dg.add(row * s.dg_stride + u));
                carry.store(s.dhc.add(row * s.h_stride + u));
            }
        }
    }
}
