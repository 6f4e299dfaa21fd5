//! The backward pass's side of the cells: what every cell's backward step reads and
//! writes ([`BackPtrs`]), the registry of the cells' backward weights ([`BackCell`]),
//! the weight-gradient products each cell needs ([`GradJob`]), and the helpers their
//! epilogues share. Each cell's own backward (its epilogues and the passes of its
//! step, its transposed weights) lives in `cells/<cell>/backward.rs`.
//!
//! A backward step mirrors a forward step: a product of the later step's gate
//! gradients with a transposed recurrent matrix (`W_hhᵀ`, packed once per backward
//! call), whose epilogue adds the carried and upstream gradients and finishes the
//! cell's elementwise backward for its tile of units, in registers.

use rnn_reference::{Activation, CellKind, RnnConfig};

use crate::arch::Backend;
use crate::element::Element;
use crate::kernel::walk::Job;
use crate::kernel::{Epilogue, Rows};
use crate::pack::runtime::TransposeBlocksFn;
use crate::pack::{PanelsView, LANES};
use crate::parallel::{Share, Team};
use crate::passes::pass;
use crate::simd::{math, V16};

pub(crate) use super::keep_units;
use super::{gru, lstm, rnn, CellWeights, CustomActs};

/// Everything one backward step of one direction reads and writes. Rows are batch
/// rows; every row stride is a whole number of padded tiles. Built by the training
/// driver from buffers it sized.
#[derive(Clone, Copy)]
pub(crate) struct BackPtrs {
    pub(crate) batch: usize,
    /// Time index of the step, and the rows' lengths (null: every row runs every
    /// step): row `b` ran this step iff `t < lens[b]`.
    pub(crate) t: usize,
    pub(crate) lens: *const usize,
    /// `H` and `H_out`: units past them are padding, their gradients are zeroed.
    pub(crate) hid: usize,
    pub(crate) out_units: usize,
    pub(crate) clip: Option<f32>,
    /// ONNX `activations` of this direction when they differ from the cell's
    /// standard functions.
    pub(crate) acts: CustomActs,
    pub(crate) zigzag: bool,
    /// The step's gate pre-activations (as the training forward kept them) and where
    /// its gate gradients go (may be the same memory: each tile reads before writing).
    pub(crate) z: *const f32,
    pub(crate) z_stride: usize,
    pub(crate) dg: *mut f32,
    pub(crate) dg_stride: usize,
    /// Per-unit extra rows of the step (`padded(H)` stride): the GRU's recurrent n part
    /// or `r ⊙ h`, the projected LSTM's `m`.
    pub(crate) ext: *mut f32,
    pub(crate) ext_stride: usize,
    /// States before and after the step.
    pub(crate) h_prev: *const f32,
    pub(crate) h_after: *const f32,
    pub(crate) h_stride: usize,
    pub(crate) c_prev: *const f32,
    pub(crate) c_after: *const f32,
    pub(crate) c_stride: usize,
    /// `∂L/∂y` of the step, this direction's block (`padded(H_out)` units).
    pub(crate) dy: *const f32,
    pub(crate) dy_stride: usize,
    /// Carried gradients (stride `h_stride` / `c_stride`): the part of `∂L/∂h` not
    /// produced by this step's product, and `∂L/∂c`.
    pub(crate) dhc: *mut f32,
    pub(crate) dc: *mut f32,
    /// Left operand of the step's first product: the later step's gate gradients (or a
    /// cell's step buffer), and the cell's step buffer written by this step.
    pub(crate) later: *const f32,
    pub(crate) later_stride: usize,
    pub(crate) carry_out: *mut f32,
    /// Projected LSTM: `∂L/∂h'` rows of the step (`h_stride`).
    pub(crate) dh_rows: *mut f32,
    /// Peephole LSTM: gradient accumulators `[3][c_stride]` (i, f, o).
    pub(crate) dp: *mut f32,
    /// AUGRU: row `b`'s attention at `att + b` (null for every other cell), and where
    /// the step's epilogues write each unit's `∂z' ⊙ z` (`ext_stride` per row), which
    /// the driver sums into `∂L/∂a` after the step.
    pub(crate) att: *const f32,
    pub(crate) da_units: *mut f32,
    /// Layer-norm LSTM (null otherwise): the step's `∂L/∂m` rows (`c_stride`), its
    /// `∂L/∂u` and `∂L/∂u ⊙ n` rows (gate-interleaved like `dg`, `ln_stride` apart), and
    /// the sums over steps and rows of `∂L/∂γ` and of the biases' `∂L/∂u`
    /// (`[2][G][c_stride]`, gates in the weights' order).
    pub(crate) ln_dm: *mut f32,
    pub(crate) ln_du: *mut f32,
    pub(crate) ln_dun: *mut f32,
    pub(crate) ln_stride: usize,
    pub(crate) ln_acc: *mut f32,
}

// SAFETY: the pointers point into buffers that outlive the team sharing them; members
// write disjoint tiles (columns) of every row between barriers.
unsafe impl Sync for BackPtrs {}

impl BackPtrs {
    /// Whether batch row `row` ran this step.
    #[inline(always)]
    pub(crate) fn active(&self, row: usize) -> bool {
        // SAFETY: `lens` (when not null) holds `batch` lengths (driver's contract).
        self.lens.is_null() || self.t < unsafe { *self.lens.add(row) }
    }

    /// Rows of the later step's gradients, `k` floats each.
    pub(crate) fn later_rows(&self) -> Rows {
        Rows::strided(self.later, self.later_stride, self.batch)
    }
}

/// `d` where the gate argument `z` was not clamped by `clip` (`|z| <= clip`), else 0.
///
/// # Safety
/// `V`'s ISA must be available.
#[inline(always)]
pub(crate) unsafe fn unclipped<V: V16>(d: V, z: V, clip: Option<f32>) -> V {
    match clip {
        // SAFETY: the caller guarantees the ISA.
        Some(c) => unsafe { V::splat(c).select_lt(z.abs(), V::zero(), d) },
        None => d,
    }
}

/// The value and slope at `x` of the sigmoid, or of ONNX's `custom` function when the
/// step has one (slot `f`).
///
/// # Safety
/// `V`'s ISA must be available.
#[inline(always)]
pub(crate) unsafe fn sigmoid_slope<V: V16>(x: V, custom: Option<Activation>) -> (V, V) {
    // SAFETY: the caller guarantees the ISA.
    unsafe {
        match custom {
            None => {
                let y = math::sigmoid(x);
                (y, dsigmoid(y))
            }
            Some(a) => x.activation_slope(a),
        }
    }
}

/// The value and slope at `x` of `tanh`, or of ONNX's `custom` function (slots `g`,
/// `h`).
///
/// # Safety
/// `V`'s ISA must be available.
#[inline(always)]
pub(crate) unsafe fn tanh_slope<V: V16>(x: V, custom: Option<Activation>) -> (V, V) {
    // SAFETY: the caller guarantees the ISA.
    unsafe {
        match custom {
            None => {
                let y = math::tanh(x);
                (y, dtanh(y))
            }
            Some(a) => x.activation_slope(a),
        }
    }
}

/// `σ'` from `σ`: `s (1 - s)`.
///
/// # Safety
/// `V`'s ISA must be available.
#[inline(always)]
pub(crate) unsafe fn dsigmoid<V: V16>(s: V) -> V {
    // SAFETY: the caller guarantees the ISA.
    unsafe { s.mul(V::splat(1.0).sub(s)) }
}

/// `tanh'` from `tanh`: `1 - t²`.
///
/// # Safety
/// `V`'s ISA must be available.
#[inline(always)]
pub(crate) unsafe fn dtanh<V: V16>(t: V) -> V {
    // SAFETY: the caller guarantees the ISA.
    unsafe { t.mul(t).mul_add(V::splat(-1.0), V::splat(1.0)) }
}

/// `∂L/∂h` of a step's output units: the product `acc`, the carried part, and `dy` if
/// the row ran the step.
///
/// # Safety
/// `V`'s ISA must be available; `(row, u)` inside the step's rows.
#[inline(always)]
pub(crate) unsafe fn dh_in<V: V16>(s: &BackPtrs, row: usize, u: usize, acc: V, active: bool) -> V {
    // SAFETY: the caller's contract.
    unsafe {
        let dh = acc.add(V::load(s.dhc.add(row * s.h_stride + u)));
        if active {
            dh.add(V::load(s.dy.add(row * s.dy_stride + u)))
        } else {
            dh
        }
    }
}

/// The last pass of a direction: `∂L/∂h0 = acc + carried`, into the carry rows.
pub(crate) struct Final<'a> {
    pub(crate) s: &'a BackPtrs,
}

impl<V: V16, const NP: usize> Epilogue<V, NP> for Final<'_> {
    #[inline(always)]
    unsafe fn finish(&self, row: usize, panel: usize, acc: &[V; NP]) {
        let s = self.s;
        for (q, &a) in acc.iter().enumerate() {
            let u = (panel * NP + q) * LANES;
            // SAFETY: carry rows are padded to whole panels.
            unsafe {
                let p = s.dhc.add(row * s.h_stride + u);
                a.add(V::load(p)).store(p);
            }
        }
    }
}

/// After the earliest step, every cell: `∂L/∂h0` (the product through `w_t`, the cell's
/// transposed recurrent weights) into the carry rows, by the [`Final`] epilogue.
///
/// # Safety
/// As for [`back_pass`], with `s` describing the earliest step.
pub(crate) unsafe fn final_pass<B: Backend>(
    w_t: PanelsView<f32, 4>,
    s: &BackPtrs,
    team: &Team<'_>,
) {
    // SAFETY: forwarded contract.
    unsafe {
        back_pass::<B, _>(
            team,
            s.later_rows(),
            s.batch,
            w_t,
            false,
            s.zigzag,
            &Final { s },
        )
    }
}

/// One pass of a backward step: the product `a × w` (`k = 0` when `first`: no later
/// step, the accumulators are zero) with epilogue `epi`, shared by the team.
///
/// # Safety
/// As for `passes::pass`; `a` holds `batch` rows of `w.k` floats (unless `first`).
pub(crate) unsafe fn back_pass<B: Backend, E: Epilogue<B::V, 4>>(
    team: &Team<'_>,
    a: Rows,
    batch: usize,
    w: PanelsView<f32, 4>,
    first: bool,
    zigzag: bool,
    epi: &E,
) {
    let w = PanelsView {
        k: if first { 0 } else { w.k },
        ..w
    };
    let job = Job { a, nrows: batch, w };
    // SAFETY: forwarded contract.
    unsafe { pass::<B, f32, E, 4>(team, &job, zigzag, epi) }
}

/// The activation side of a weight-gradient product, the gradient's columns: the
/// layer's input, the states before each step, or the step's extra rows (`r ⊙ h`, or
/// the projected LSTM's `m`), gathered into panels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acts {
    Input,
    HPrev,
    Ext,
}

/// The gradient side of a weight-gradient product, the gradient's rows (transposed):
/// the gate gradients (their gate-interleaved row, gates `pick`), the step's extra
/// rows, or the projected LSTM's `∂L/∂h'` rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Grads {
    Gates(&'static [usize]),
    Ext,
    DhRows,
}

/// Which parameter a product's output is the gradient of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Param {
    /// `w_ih` (and `b_ih`).
    Input,
    /// `w_hh` (and `b_hh`).
    Recurrent,
    /// `w_hr`.
    Projection,
}

/// One weight-gradient product over all `T·B` rows: `∂W[gates[j] · units + u][i] =
/// Σ_r grads[r][j, u] · acts[r][i]` (consecutive `gates`; `grads[r][j, u]` is unit
/// `u` of the `j`-th block it picks), plus, when `ones`, the bias `Σ_r grads[r][j,
/// u]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GradJob {
    pub(crate) acts: Acts,
    pub(crate) grads: Grads,
    pub(crate) param: Param,
    pub(crate) gates: &'static [usize],
    pub(crate) ones: bool,
}

/// The transposed recurrent weights of one layer and direction (views into the
/// training workspace), whichever cell it is.
pub(crate) enum BackCell {
    Rnn(rnn::backward::BackWeights),
    Lstm(lstm::backward::BackWeights),
    Gru(gru::backward::BackWeights),
}

impl<W: Element> CellWeights<W> {
    /// Floats of the transposed weights [`CellWeights::pack_backward`] writes.
    pub(crate) fn backward_len(cfg: &RnnConfig) -> usize {
        match cfg.cell {
            CellKind::Rnn(_) => rnn::backward::packed_len(cfg),
            CellKind::Lstm(_) => lstm::backward::packed_len(cfg),
            CellKind::Gru(_) => gru::backward::packed_len(cfg),
            // Packing rejected any other kind.
            _ => 0,
        }
    }

    /// Zeroes `share` of the `backward_len` floats at `mem`, before
    /// [`CellWeights::pack_backward`] (every member its share, then a barrier).
    ///
    /// # Safety
    /// `mem` must be valid for `backward_len(cfg)` writes.
    pub(crate) unsafe fn clear_backward(&self, cfg: &RnnConfig, mem: *mut f32, share: Share) {
        // SAFETY: forwarded contract.
        unsafe { crate::pack::runtime::clear(mem, Self::backward_len(cfg), share) };
    }

    /// Writes `share` of the transposed recurrent weights into `mem` (`backward_len`
    /// floats, zeroed by [`CellWeights::clear_backward`]); the members' shares write
    /// distinct elements; `blocks` transposes whole 16 × 16 blocks.
    ///
    /// # Safety
    /// `mem` must be valid for `backward_len(cfg)` writes; `blocks` is a detected
    /// path's.
    pub(crate) unsafe fn pack_backward(
        &self,
        cfg: &RnnConfig,
        mem: *mut f32,
        share: Share,
        blocks: TransposeBlocksFn,
    ) {
        // SAFETY: forwarded contract.
        unsafe {
            match self {
                CellWeights::Rnn(w) => rnn::backward::write(w, cfg, mem, share, blocks),
                CellWeights::Lstm(w) => lstm::backward::write(w, cfg, mem, share, blocks),
                CellWeights::Gru(w) => gru::backward::write(w, cfg, mem, share, blocks),
            }
        }
    }

    /// Views of the transposed weights [`CellWeights::pack_backward`] wrote at `mem`
    /// (every member of a team builds its own; only the leader writes them).
    pub(crate) fn backward_views(&self, cfg: &RnnConfig, mem: *const f32) -> BackCell {
        match self {
            CellWeights::Rnn(w) => BackCell::Rnn(rnn::backward::views(w, cfg, mem)),
            CellWeights::Lstm(w) => BackCell::Lstm(lstm::backward::views(w, cfg, mem)),
            CellWeights::Gru(w) => BackCell::Gru(gru::backward::views(w, cfg, mem)),
        }
    }
}

impl BackCell {
    /// The weight-gradient products of this cell.
    pub(crate) fn grad_jobs(&self) -> &'static [GradJob] {
        match self {
            BackCell::Rnn(_) => rnn::backward::GRAD_JOBS,
            BackCell::Lstm(w) => w.grad_jobs(),
            BackCell::Gru(w) => w.grad_jobs(),
        }
    }

    /// Floats per row of the cell's step buffers (`later` / `carry_out`), 0 if it
    /// reads the later step's gate gradients directly.
    pub(crate) fn carry_width(&self) -> usize {
        match self {
            BackCell::Gru(w) => w.carry_width(),
            _ => 0,
        }
    }

    /// One backward step (`first`: no later step).
    ///
    /// # Safety
    /// `B` came from `arch::dispatch`; `s` describes buffers sized for its rows.
    pub(crate) unsafe fn step<B: Backend>(&self, s: &BackPtrs, first: bool, team: &Team<'_>) {
        // SAFETY: forwarded contract.
        unsafe {
            match self {
                BackCell::Rnn(w) => rnn::backward::step::<B>(w, s, first, team),
                BackCell::Lstm(w) => lstm::backward::step::<B>(w, s, first, team),
                BackCell::Gru(w) => gru::backward::step::<B>(w, s, first, team),
            }
        }
    }

    /// After the earliest step: `∂L/∂h0` into the carry rows.
    ///
    /// # Safety
    /// As for [`BackCell::step`], with `s` describing the earliest step.
    pub(crate) unsafe fn finish<B: Backend>(&self, s: &BackPtrs, team: &Team<'_>) {
        // SAFETY: forwarded contract.
        unsafe {
            match self {
                BackCell::Rnn(w) => rnn::backward::finish::<B>(w, s, team),
                BackCell::Lstm(w) => lstm::backward::finish::<B>(w, s, team),
                BackCell::Gru(w) => gru::backward::finish::<B>(w, s, team),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use half::{bf16, f16};
    use rnn_reference::testkit::{problem, variants};
    use rnn_reference::views;

    use super::*;
    use crate::element::Storage;
    use crate::pack::runtime::WIDTH;

    impl BackCell {
        /// Every transposed matrix of the cell.
        fn panel_views(&self) -> Vec<PanelsView<f32, 4>> {
            match self {
                BackCell::Rnn(w) => vec![w.w_hh_t],
                BackCell::Lstm(w) => w.panel_views(),
                BackCell::Gru(w) => w.panel_views(),
            }
        }
    }

    /// Floats from `mem` to the end of the last matrix the views of `cfg`'s weights,
    /// packed as `W`, read.
    fn extent<W: Storage + Element>(cfg: &RnnConfig, seed: u64) -> usize {
        let p = problem(seed, (5, cfg.hidden_size, 1, 1), 1, Some(cfg.cell));
        let (cell, _) = CellWeights::<W>::pack(&p.cfg, &views(&p.weights)[0]).unwrap();
        let mem = std::ptr::NonNull::<f32>::dangling().as_ptr();
        let back = cell.backward_views(&p.cfg, mem);
        let end = |v: &PanelsView<f32, 4>| {
            (v.ptr as usize - mem as usize) / size_of::<f32>() + v.panels * WIDTH * v.k
        };
        back.panel_views().iter().map(end).max().unwrap()
    }

    /// `backward_len` (the training workspace's share for the transposed weights) is
    /// exactly what the views of the packed weights span for the storage that packs
    /// the most columns (bf16 pairs two tiles, so it may pack one tile more), and no
    /// less than any storage's: too small would write past it, too large wastes
    /// memory (a product for a sum asked gigabytes at `H = 70`).
    #[test]
    fn backward_len_is_what_the_views_span() {
        for h in [2, 15, 16, 17, 33, 48, 64, 65, 70, 129] {
            // Projections of 1 and of about half the units.
            for (k, cell) in variants::all_with_layer_norm(1.max(h / 2))
                .into_iter()
                .enumerate()
            {
                let cfg = problem(0, (5, h, 1, 1), 1, Some(cell)).cfg;
                let len = CellWeights::<f32>::backward_len(&cfg);
                let seed = (k * 1000 + h) as u64;
                let spans = [
                    extent::<f32>(&cfg, seed),
                    extent::<bf16>(&cfg, seed),
                    extent::<f16>(&cfg, seed),
                ];
                assert!(
                    spans.iter().all(|&s| s <= len),
                    "{cell:?} H {h}: {spans:?} > {len}"
                );
                assert_eq!(spans.iter().max(), Some(&len), "{cell:?} H {h}");
            }
        }
    }
}
