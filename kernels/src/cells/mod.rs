//! One home per cell kind: each file owns what makes its cell that cell, and nothing
//! else in the crate knows it:
//!
//! - how its recurrent weights are packed (gate count, panel widths, extra vectors),
//! - which biases fold into the input projection,
//! - its fused post-GEMM epilogues (the gate math, in registers),
//! - the passes of one step (their order, their left operands, their scratch).
//!
//! [`Cell`] is that contract; [`CellWeights`] is the registry, the one place that
//! lists the cells. A new variant of a cell is a change to that cell's file; a new
//! cell is one more file and one more arm here.

pub(crate) mod backward;
mod gru;
mod lstm;
mod rnn;

use rnn_reference::{Activation, CellKind, Error, GateActivations, LayerWeights, RnnConfig};

use crate::arch::Backend;
use crate::element::{Element, Storage};
use crate::kernel::walk_i8::Q8Scratch;
use crate::kernel::{Epilogue, Rows};
use crate::pack::{padded, Panels, LANES};
use crate::parallel::{Share, Team};
use crate::simd::{self, math, V16};
use crate::Result;

/// What a cell's home provides.
pub(crate) trait Cell {
    /// The packed recurrent weights (and per-unit vectors) of one layer and direction.
    type Weights<W: Storage>: Clone + Send + Sync;

    /// Packs one validated weight set's recurrent part, rounding to `W`.
    fn pack<W: Storage, S: Element>(cfg: &RnnConfig, w: &LayerWeights<'_, S>) -> Self::Weights<W>;

    /// The bias added to the input projection, `[G*H]` in PyTorch gate order: by
    /// default `b_ih + b_hh` (missing biases count as zero).
    fn folded_bias<S: Element>(cfg: &RnnConfig, w: &LayerWeights<'_, S>) -> Vec<f32> {
        sum_biases(cfg, w, |_| true)
    }

    /// Panels of the step's first pass (how far a step can be split over threads).
    fn panels<W: Storage>(w: &Self::Weights<W>) -> usize;

    /// One step for `s.batch` rows, by every member of `team` (each pass ends at a
    /// barrier).
    ///
    /// # Safety
    /// `B` came from `arch::dispatch`; `s` describes buffers sized by [`state_sizes`]
    /// for `s.batch` rows and a `pre` block of `s.batch` rows of `s.pre_stride`.
    unsafe fn step<B: Backend, W: Storage>(w: &Self::Weights<W>, s: &StepPtrs, team: &Team<'_>);
}

/// `b_ih + b_hh` (`[G*H]`) element-wise, taking `b_hh[k]` only where `keep(k)`; missing
/// biases count as zero.
fn sum_biases<S: Element>(
    cfg: &RnnConfig,
    w: &LayerWeights<'_, S>,
    keep: impl Fn(usize) -> bool,
) -> Vec<f32> {
    (0..cfg.gates() * cfg.hidden_size)
        .map(|k| {
            let bi = w.b_ih.map_or(0.0, |b| b[k].to_f32());
            let bh = w.b_hh.filter(|_| keep(k)).map_or(0.0, |b| b[k].to_f32());
            bi + bh
        })
        .collect()
}

/// The recurrent weights of one layer and direction, whichever cell it is.
#[derive(Clone)]
pub(crate) enum CellWeights<W: Storage> {
    /// Elman RNN.
    Rnn(<rnn::Rnn as Cell>::Weights<W>),
    /// LSTM, with or without peephole and projection.
    Lstm(<lstm::Lstm as Cell>::Weights<W>),
    /// GRU, either reset form.
    Gru(<gru::Gru as Cell>::Weights<W>),
}

impl<W: Storage> CellWeights<W> {
    /// Packs the recurrent part of one validated weight set and returns it with the
    /// bias to fold into the input projection (`[G*H]`).
    pub(crate) fn pack<S: Element>(
        cfg: &RnnConfig,
        w: &LayerWeights<'_, S>,
    ) -> Result<(Self, Vec<f32>)> {
        Ok(match cfg.cell {
            CellKind::Rnn(_) => (
                CellWeights::Rnn(rnn::Rnn::pack(cfg, w)),
                rnn::Rnn::folded_bias(cfg, w),
            ),
            CellKind::Lstm(_) => (
                CellWeights::Lstm(lstm::Lstm::pack(cfg, w)),
                lstm::Lstm::folded_bias(cfg, w),
            ),
            CellKind::Gru(_) => (
                CellWeights::Gru(gru::Gru::pack(cfg, w)),
                gru::Gru::folded_bias(cfg, w),
            ),
            // `CellKind` may grow.
            other => {
                return Err(Error::Invalid {
                    arg: "cell".into(),
                    expected: "a cell kind these kernels implement".into(),
                    actual: format!("{other:?}"),
                })
            }
        })
    }

    /// Panels of the step's first pass.
    pub(crate) fn panels(&self) -> usize {
        match self {
            CellWeights::Rnn(w) => rnn::Rnn::panels(w),
            CellWeights::Lstm(w) => lstm::Lstm::panels(w),
            CellWeights::Gru(w) => gru::Gru::panels(w),
        }
    }

    /// One step (see [`Cell::step`]).
    ///
    /// # Safety
    /// As for [`Cell::step`].
    pub(crate) unsafe fn step<B: Backend>(&self, s: &StepPtrs, team: &Team<'_>) {
        // SAFETY: forwarded contract.
        unsafe {
            match self {
                CellWeights::Rnn(w) => rnn::Rnn::step::<B, W>(w, s, team),
                CellWeights::Lstm(w) => lstm::Lstm::step::<B, W>(w, s, team),
                CellWeights::Gru(w) => gru::Gru::step::<B, W>(w, s, team),
            }
        }
    }
}

/// Three gates of a recurrent matrix (the GRU's r, z, n; CIFG's f, g, o): one tile per
/// panel, or two for paired (bf16) storage, so that no vector widens alone.
#[derive(Clone)]
pub(crate) enum ThreeGates<W: Storage> {
    One(Panels<W, 3>),
    Two(Panels<W, 6>),
}

impl<W: Storage> ThreeGates<W> {
    /// Packs gate blocks 0, 1, 2 of `w` (`[3*units, k]`).
    fn pack<S: Element>(w: &[S], units: usize, k: usize) -> Self {
        let gates = [0, 1, 2];
        if W::PAIRED {
            ThreeGates::Two(Panels::pack(w, units, k, &gates))
        } else {
            ThreeGates::One(Panels::pack(w, units, k, &gates))
        }
    }

    /// Panels of the packing.
    fn panels(&self) -> usize {
        match self {
            ThreeGates::One(p) => p.panels(),
            ThreeGates::Two(p) => p.panels(),
        }
    }

    /// Packed columns (the `k` of the transposed matrix).
    pub(crate) fn cols(&self) -> usize {
        match self {
            ThreeGates::One(p) => p.cols(),
            ThreeGates::Two(p) => p.cols(),
        }
    }

    /// Writes the transpose of the packing into `dst` (see
    /// [`transpose_panels`](crate::pack::runtime::transpose_panels), `k0 = 0`, columns
    /// as they are), `share` of it.
    ///
    /// # Safety
    /// As for `transpose_panels`, with `dst_k >= self.cols()`.
    pub(crate) unsafe fn transpose_into(
        &self,
        dst: *mut f32,
        dst_k: usize,
        share: Share,
        blocks: crate::pack::runtime::TransposeBlocksFn,
    ) where
        W: Element,
    {
        // SAFETY: forwarded contract.
        unsafe {
            match self {
                ThreeGates::One(p) => {
                    crate::pack::runtime::transpose_panels(p, dst, dst_k, 0, |u| u, share, blocks)
                }
                ThreeGates::Two(p) => {
                    crate::pack::runtime::transpose_panels(p, dst, dst_k, 0, |u| u, share, blocks)
                }
            }
        }
    }
}

/// An epilogue of three gates written per 16-unit tile (the GRU's r, z, n; CIFG's f, g,
/// o); [`PerTile`] runs it over panels of one tile or of two.
pub(crate) trait TileEpilogue: Sync {
    /// One tile: `acc` holds the three gates' recurrent products.
    ///
    /// # Safety
    /// As for [`Epilogue::finish`], for the tile `tile` (of padded rows).
    unsafe fn tile<V: V16>(&self, row: usize, tile: usize, acc: &[V; 3]);

    /// Prefetches what `tiles` tiles from `tile` of `row` read.
    fn prefetch_tiles(&self, row: usize, tile: usize, tiles: usize);
}

/// A [`TileEpilogue`] as the epilogue of panels of one tile (`NP = 3`) or of two
/// (`NP = 6`, paired storage: tiles `2 panel` and `2 panel + 1`; state rows are padded
/// to 4 tiles, so both exist).
pub(crate) struct PerTile<E>(pub(crate) E);

impl<V: V16, E: TileEpilogue> Epilogue<V, 3> for PerTile<E> {
    #[inline(always)]
    fn prefetch(&self, row: usize, tile: usize) {
        self.0.prefetch_tiles(row, tile, 1);
    }

    #[inline(always)]
    unsafe fn finish(&self, row: usize, tile: usize, acc: &[V; 3]) {
        // SAFETY: forwarded contract.
        unsafe { self.0.tile(row, tile, acc) }
    }
}

impl<V: V16, E: TileEpilogue> Epilogue<V, 6> for PerTile<E> {
    #[inline(always)]
    fn prefetch(&self, row: usize, panel: usize) {
        self.0.prefetch_tiles(row, 2 * panel, 2);
    }

    #[inline(always)]
    unsafe fn finish(&self, row: usize, panel: usize, acc: &[V; 6]) {
        // SAFETY: forwarded contract; the padded rows hold both tiles.
        unsafe {
            self.0.tile(row, 2 * panel, &[acc[0], acc[1], acc[2]]);
            self.0.tile(row, 2 * panel + 1, &[acc[3], acc[4], acc[5]]);
        }
    }
}

/// The lane indices 0..16 as floats (for lane masks).
static IOTA: [f32; LANES] = [
    0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0,
];

/// `g` with the lanes of units `u + lane >= n` set to exactly zero (padding units
/// carry no gradient, and join no layer-norm statistic, whatever their operands held).
///
/// # Safety
/// `V`'s ISA must be available.
#[inline(always)]
pub(crate) unsafe fn keep_units<V: V16>(g: V, u: usize, n: usize) -> V {
    if u + LANES <= n {
        return g;
    }
    // SAFETY: the caller guarantees the ISA; IOTA holds 16 floats.
    unsafe {
        let valid = V::splat(n.saturating_sub(u) as f32);
        V::load(IOTA.as_ptr()).select_lt(valid, g, V::zero())
    }
}

/// ONNX `clip` of a gate pre-activation, when set.
///
/// # Safety
/// `V`'s ISA must be available.
#[inline(always)]
unsafe fn clip<V: V16>(x: V, c: Option<f32>) -> V {
    match c {
        // SAFETY: the caller guarantees V's ISA.
        Some(c) => unsafe { math::clip(x, c) },
        None => x,
    }
}

/// `custom` (an ONNX activation) at `x`, or the sigmoid when the step runs the cell's
/// standard functions.
///
/// # Safety
/// `V`'s ISA must be available.
#[inline(always)]
unsafe fn sigmoid_or<V: V16>(x: V, custom: Option<Activation>) -> V {
    // SAFETY: the caller guarantees V's ISA.
    unsafe {
        match custom {
            None => math::sigmoid(x),
            Some(a) => x.activation(a),
        }
    }
}

/// `custom` at `x`, or `tanh` (see [`sigmoid_or`]).
///
/// # Safety
/// `V`'s ISA must be available.
#[inline(always)]
unsafe fn tanh_or<V: V16>(x: V, custom: Option<Activation>) -> V {
    // SAFETY: the caller guarantees V's ISA.
    unsafe {
        match custom {
            None => math::tanh(x),
            Some(a) => x.activation(a),
        }
    }
}

/// A direction's ONNX activations when they differ from its cell's standard functions
/// (`None`: the standard ones, which the epilogues inline), read slot by slot.
#[derive(Clone, Copy)]
pub(crate) struct CustomActs(pub(crate) Option<GateActivations>);

impl CustomActs {
    /// Slot `f` (the gates; the RNN's function), if custom.
    pub(crate) fn f(self) -> Option<Activation> {
        self.0.map(|a| a.f)
    }

    /// Slot `g` (GRU n, LSTM cell candidate), if custom.
    pub(crate) fn g(self) -> Option<Activation> {
        self.0.map(|a| a.g)
    }

    /// Slot `h` (the LSTM's output function), if custom.
    pub(crate) fn h(self) -> Option<Activation> {
        self.0.map(|a| a.h)
    }
}

/// State rows of one direction; strides are padded so kernels can store whole panels.
#[derive(Clone, Copy)]
pub(crate) struct StateBufs {
    pub(crate) h_prev: *mut f32,
    pub(crate) h_next: *mut f32,
    pub(crate) c_prev: *mut f32,
    pub(crate) c_next: *mut f32,
    /// Scratch rows: the LSTM projection's input `o * tanh(c')`, or the GRU's `r * h`.
    pub(crate) aux: *mut f32,
    /// Scratch rows: the GRU's `z`.
    pub(crate) aux2: *mut f32,
}

impl StateBufs {
    /// After a step: the new state becomes the old one.
    pub(crate) fn swap(&mut self) {
        std::mem::swap(&mut self.h_prev, &mut self.h_next);
        std::mem::swap(&mut self.c_prev, &mut self.c_next);
    }
}

/// Element counts of the state buffers for `batch` rows: `(h, c, aux)` each, where `h`
/// rows have stride `padded(H_out)` and `c`/`aux` rows `padded(H)`.
pub(crate) fn state_sizes(cfg: &RnnConfig, batch: usize) -> (usize, usize, usize) {
    let hs = padded(cfg.hidden_size);
    (batch * padded(cfg.output_size()), batch * hs, batch * hs)
}

/// Multiply-adds of one step of one direction for `batch` rows (for sizing a team).
pub(crate) fn step_fmas(cfg: &RnnConfig, batch: usize) -> usize {
    let (g, h, ho) = (cfg.gates(), cfg.hidden_size, cfg.output_size());
    batch
        .saturating_mul(g * h)
        .saturating_mul(ho)
        .saturating_add(batch.saturating_mul(h).saturating_mul(ho))
}

/// Width of one row of the input projection buffer: `G * padded(H)`.
pub(crate) fn pre_stride(cfg: &RnnConfig) -> usize {
    cfg.gates() * padded(cfg.hidden_size)
}

/// Everything one step of one direction reads and writes, built by the drivers from
/// buffers whose sizes they checked; every row stride is a whole number of padded
/// tiles.
#[derive(Clone, Copy)]
pub(crate) struct StepPtrs {
    /// Rows of this step.
    pub(crate) batch: usize,
    /// Input projection of this step, row `b` at `pre + b * pre_stride`, columns
    /// gate-interleaved per tile (`[tile][gate][16]`), biases folded in.
    pub(crate) pre: *mut f32,
    pub(crate) pre_stride: usize,
    /// Training: the epilogues write every gate's full pre-activation (before clip)
    /// back over `pre`, and extra values the backward needs to `aux` (see
    /// `training`). Off for inference.
    pub(crate) keep_pre: bool,
    /// `h` before and after the step, row stride `h_stride` (`padded(H_out)`).
    pub(crate) h_prev: *const f32,
    pub(crate) h_next: *mut f32,
    pub(crate) h_stride: usize,
    /// LSTM cell state before and after, row stride `c_stride` (`padded(H)`).
    pub(crate) c_prev: *const f32,
    pub(crate) c_next: *mut f32,
    pub(crate) c_stride: usize,
    /// Scratch rows of stride `aux_stride` (`padded(H)`), see [`StateBufs`].
    pub(crate) aux: *mut f32,
    pub(crate) aux2: *mut f32,
    pub(crate) aux_stride: usize,
    /// AUGRU: row `b`'s attention at `att + b * att_stride` (the update gate acts as
    /// `(1 − a) z`); null for every other cell.
    pub(crate) att: *const f32,
    pub(crate) att_stride: usize,
    /// ONNX clip threshold.
    pub(crate) clip: Option<f32>,
    /// ONNX `activations` of this direction when they differ from the cell's standard
    /// functions (`None`: the standard ones, the fused fast path).
    pub(crate) acts: CustomActs,
    /// Walk the panels backwards (every other step: the panels used last are still
    /// in cache).
    pub(crate) zigzag: bool,
    /// Int8 weights: where each pass quantizes its left operand (`None` otherwise).
    pub(crate) q8: Option<Q8Scratch>,
}

// SAFETY: the pointers point into buffers that outlive the team sharing them; members
// write disjoint panels (disjoint columns of every state row) between barriers.
unsafe impl Sync for StepPtrs {}

impl StepPtrs {
    /// The pointers of one step of direction `dir` of `cfg` for `batch` rows reading
    /// the input projection block `pre`.
    pub(crate) fn new(
        cfg: &RnnConfig,
        dir: usize,
        batch: usize,
        pre: *mut f32,
        b: &StateBufs,
        zigzag: bool,
    ) -> Self {
        let hs = padded(cfg.hidden_size);
        StepPtrs {
            batch,
            pre,
            pre_stride: pre_stride(cfg),
            keep_pre: false,
            h_prev: b.h_prev,
            h_next: b.h_next,
            h_stride: padded(cfg.output_size()),
            c_prev: b.c_prev,
            c_next: b.c_next,
            c_stride: hs,
            aux: b.aux,
            aux2: b.aux2,
            aux_stride: hs,
            att: std::ptr::null(),
            att_stride: 0,
            clip: cfg.clip,
            acts: CustomActs(cfg.custom_activations(dir)),
            zigzag,
            q8: None,
        }
    }

    /// Prefetches the input projection of `tiles` tiles from `tile` of `row`, `gates`
    /// gate columns per tile.
    #[inline(always)]
    pub(crate) fn prefetch_pre(&self, row: usize, tile: usize, tiles: usize, gates: usize) {
        let at = self
            .pre
            .wrapping_add(row * self.pre_stride + gates * tile * LANES);
        simd::prefetch(at, gates * LANES * tiles);
    }

    /// The rows of `h_prev` (the recurrent product's left operand).
    pub(crate) fn h_rows(&self) -> Rows {
        Rows::strided(self.h_prev, self.h_stride, self.batch).with_q8(self.q8)
    }

    /// The rows of `aux` (a second pass's left operand).
    pub(crate) fn aux_rows(&self) -> Rows {
        Rows::strided(self.aux, self.aux_stride, self.batch).with_q8(self.q8)
    }
}
