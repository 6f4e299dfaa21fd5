//! The LSTM (PyTorch gate order i, f, g, o), with ONNX peepholes and PyTorch's
//! projection:
//!
//! ```text
//! i = σ(clip(pre_i + W_hi h (+ p_i ⊙ c)))     g = tanh(clip(pre_g + W_hg h))
//! f = σ(clip(pre_f + W_hf h (+ p_f ⊙ c)))     c' = f ⊙ c + i ⊙ g
//! o = σ(clip(pre_o + W_ho h (+ p_o ⊙ c')))    h' = o ⊙ tanh(c')   (then W_hr h' if projected)
//! ```
//!
//! ONNX's `input_forget` couples the gates: `f = 1 − i` (the forget gate's product
//! still runs in the tile, its result unused: the weights keep ONNX's four blocks).
//! TFLite's CIFG couples them the other way, `i = 1 − f`, and has no input-gate
//! weights: three gate blocks (f, g, o), so its tiles run three products, not four.
//!
//! One pass over panels holding all gates of one 16-unit tile (two tiles for CIFG's
//! paired bf16 storage, as the GRU), the cell update in the epilogue; a projected LSTM
//! writes `o ⊙ tanh(c')` to scratch and a second pass (a plain product with `W_hr`)
//! makes `h'`. TFLite's layer-norm LSTM normalises each gate over a whole row, which
//! no tile sees: its step is the product, then a row pass ([`layer_norm`]).

pub(crate) mod backward;
mod layer_norm;

use rnn_reference::{GateCoupling, LayerWeights, RnnConfig};

use self::layer_norm::{NormVecs, RowUpdate, Sums};
use super::{
    clip, sigmoid_or, sum_biases, tanh_or, Cell, PerTile, StepPtrs, ThreeGates, TileEpilogue,
};
use crate::aligned::AlignedVec;
use crate::arch::Backend;
use crate::element::{Element, Storage};
use crate::kernel::walk::Job;
use crate::kernel::{Epilogue, Store};
use crate::pack::{padded_rows, Panels, LANES};
use crate::parallel::{threads_for, Team};
use crate::passes::{gemm, pass};
use crate::simd::{self, V16};

/// The LSTM cell.
pub(crate) struct Lstm;

/// Packed recurrent weights of an LSTM layer.
#[derive(Clone)]
pub(crate) struct Weights<W: Storage> {
    /// `W_hh`, all gates of one tile per panel; `k = H_out`.
    w_hh: GatePanels<W>,
    /// Projection `W_hr` (`H_out` columns), `k = H`.
    w_hr: Option<Panels<W, 4>>,
    /// Peepholes `[3][padded(H)]` in order i, f, o (CIFG: `[2][padded(H)]`, f, o).
    peephole: Option<AlignedVec>,
    /// How the input and forget gates are coupled.
    coupling: GateCoupling,
    /// A layer-norm LSTM's scales and post-normalisation biases.
    norm: Option<NormVecs>,
}

/// The LSTM's `W_hh` panels: four gates i, f, g, o, or CIFG's three f, g, o.
#[derive(Clone)]
pub(crate) enum GatePanels<W: Storage> {
    Four(Panels<W, 4>),
    Three(ThreeGates<W>),
}

impl<W: Storage> GatePanels<W> {
    /// Panels of the packing.
    fn panels(&self) -> usize {
        match self {
            GatePanels::Four(p) => p.panels(),
            GatePanels::Three(p) => p.panels(),
        }
    }

    /// Packed columns (the `k` of the transposed matrix).
    pub(crate) fn cols(&self) -> usize {
        match self {
            GatePanels::Four(p) => p.cols(),
            GatePanels::Three(p) => p.cols(),
        }
    }
}

impl Cell for Lstm {
    type Weights<W: Storage> = Weights<W>;

    fn pack<W: Storage, S: Element>(cfg: &RnnConfig, w: &LayerWeights<'_, S>) -> Weights<W> {
        let (h, ho) = (cfg.hidden_size, cfg.output_size());
        let cifg = cfg.cell.cifg();
        Weights {
            w_hh: if cifg {
                GatePanels::Three(ThreeGates::pack(w.w_hh, h, ho))
            } else {
                GatePanels::Four(Panels::pack(w.w_hh, h, ho, &[0, 1, 2, 3]))
            },
            w_hr: w.w_hr.map(|p| Panels::pack(p, ho, h, &[0])),
            peephole: w
                .peephole
                .map(|p| padded_rows(p, if cifg { 2 } else { 3 }, h)),
            coupling: cfg.cell.lstm().map_or(GateCoupling::None, |v| v.coupling),
            norm: cfg.cell.layer_norm().then(|| NormVecs::pack(cfg, w)),
        }
    }

    /// `b_ih + b_hh`, except for the layer-norm LSTM, whose biases join after the
    /// normalisation ([`NormVecs`]): nothing folds into its input projection.
    fn folded_bias<S: Element>(cfg: &RnnConfig, w: &LayerWeights<'_, S>) -> Vec<f32> {
        if cfg.cell.layer_norm() {
            vec![0.0; cfg.gates() * cfg.hidden_size]
        } else {
            sum_biases(cfg, w, |_| true)
        }
    }

    fn panels<W: Storage>(w: &Weights<W>) -> usize {
        w.w_hh.panels()
    }

    unsafe fn step<B: Backend, W: Storage>(w: &Weights<W>, s: &StepPtrs, team: &Team<'_>) {
        let epi = Update::<false> {
            s,
            peephole: w.peephole.as_ref().map(AlignedVec::as_slice),
            // A projected cell's epilogue writes `o ⊙ tanh(c')` to scratch.
            m: if w.w_hr.is_some() { s.aux } else { s.h_next },
            m_stride: if w.w_hr.is_some() {
                s.aux_stride
            } else {
                s.h_stride
            },
        };
        // Each coupling is its own instantiation (`COUPLED` for `input_forget`, the
        // three-gate epilogues for CIFG), so the plain cell's code is exactly what it
        // was without the options; the layer-norm LSTM has its own passes.
        // SAFETY: forwarded contract.
        unsafe {
            match &w.norm {
                Some(norm) => layer_norm_passes::<B, W>(w, norm, s, &epi, team),
                None if w.coupling == GateCoupling::InputForget => {
                    gate_pass::<B, W, _, _>(&w.w_hh, s, team, &epi.coupled(), Cifg(epi))
                }
                None => gate_pass::<B, W, _, _>(&w.w_hh, s, team, &epi, Cifg(epi)),
            }
        }
        if let Some(w_hr) = &w.w_hr {
            let job = Job {
                a: s.aux_rows(),
                nrows: s.batch,
                w: w_hr.view(),
            };
            let out = Store {
                out: s.h_next,
                stride: s.h_stride,
                bias: std::ptr::null(),
            };
            // SAFETY: `aux` rows hold `H` floats (`k` of `W_hr`), `h_next` rows
            // `padded(H_out)` >= its packed columns.
            unsafe { gemm::<B, W, _>(team, &job, &out) };
        }
    }
}

/// The recurrent product over `w_hh` (`k = H_out`, the `h` rows) by the team, with
/// `four` as the epilogue of four-gate panels and `three` (per tile) as CIFG's.
///
/// # Safety
/// As for [`Cell::step`]; the epilogues write within the step's buffers.
unsafe fn gate_pass<B, W, E4, E3>(
    w_hh: &GatePanels<W>,
    s: &StepPtrs,
    team: &Team<'_>,
    four: &E4,
    three: E3,
) where
    B: Backend,
    W: Storage,
    E4: Epilogue<B::V, 4>,
    E3: TileEpilogue,
{
    let (a, nrows) = (s.h_rows(), s.batch);
    // SAFETY: forwarded contract.
    unsafe {
        match w_hh {
            GatePanels::Four(p) => {
                let job = Job {
                    a,
                    nrows,
                    w: p.view(),
                };
                pass::<B, W, _, 4>(team, &job, s.zigzag, four)
            }
            GatePanels::Three(ThreeGates::One(p)) => {
                let job = Job {
                    a,
                    nrows,
                    w: p.view(),
                };
                pass::<B, W, _, 3>(team, &job, s.zigzag, &PerTile(three))
            }
            GatePanels::Three(ThreeGates::Two(p)) => {
                let job = Job {
                    a,
                    nrows,
                    w: p.view(),
                };
                pass::<B, W, _, 6>(team, &job, s.zigzag, &PerTile(three))
            }
        }
    }
}

/// The layer-norm LSTM's step before the projection: the recurrent product with the
/// [`Sums`] epilogue, then the [`RowUpdate`] row pass (rows split over the team), each
/// ending at a barrier. `epi` names where `m` goes.
///
/// # Safety
/// As for [`Cell::step`].
unsafe fn layer_norm_passes<B: Backend, W: Storage>(
    w: &Weights<W>,
    norm: &NormVecs,
    s: &StepPtrs,
    epi: &Update<'_, false>,
    team: &Team<'_>,
) {
    let peephole = w.peephole.as_ref().map(AlignedVec::as_slice);
    let nrows = s.batch;
    let four = Sums {
        s,
        peephole,
        peep_rows: [Some(0), Some(1), None, None],
    };
    let three = Sums {
        s,
        peephole,
        peep_rows: [Some(0), None, None],
    };
    // SAFETY: forwarded contract.
    unsafe { gate_pass::<B, W, _, _>(&w.w_hh, s, team, &four, three) };
    let hidden = norm.hidden;
    // Gate slots in a tile and o's peephole row: i, f, g, o and p_o = 2 (peepholes i,
    // f, o); CIFG f, g, o and p_o = 1 (peepholes f, o).
    let (gates, i, f, g, o, p_o) = match w.w_hh {
        GatePanels::Four(_) => (4, Some(0), 1, 2, 3, 2),
        GatePanels::Three(_) => (3, None, 0, 1, 2, 1),
    };
    // About 40 operations per value (two statistics passes, three activations).
    let active = threads_for(nrows * gates * hidden * 40, nrows, usize::MAX);
    let rows = team.chunk(nrows, active);
    if !rows.is_empty() {
        let op = RowUpdate {
            s,
            norm,
            peephole,
            hidden,
            gates,
            i,
            f,
            g,
            o,
            p_o,
            m: epi.m,
            m_stride: epi.m_stride,
            rows,
        };
        // SAFETY: this member's rows of the step's buffers (the caller's contract);
        // the sums were written before the product's barrier.
        unsafe { B::run_op(op) };
    }
    team.sync();
}

/// The cell update of one tile (`NP = 4` gates i, f, g, o per panel); writes `c'` and
/// `m = o ⊙ tanh(c')` (to `h_next`, or to scratch for the projection). `COUPLED`:
/// ONNX `input_forget`, `f = 1 − i`.
#[derive(Clone, Copy)]
struct Update<'a, const COUPLED: bool> {
    s: &'a StepPtrs,
    /// `[3][c_stride]` (i, f, o); CIFG's `[2][c_stride]` (f, o).
    peephole: Option<&'a [f32]>,
    m: *mut f32,
    m_stride: usize,
}

// SAFETY: `m` points into the step's state or scratch rows, which outlive the team;
// members write disjoint tiles.
unsafe impl<const COUPLED: bool> Sync for Update<'_, COUPLED> {}

impl<'a> Update<'a, false> {
    /// The same pointers for the coupled instantiation.
    fn coupled(&self) -> Update<'a, true> {
        Update {
            s: self.s,
            peephole: self.peephole,
            m: self.m,
            m_stride: self.m_stride,
        }
    }
}

impl<const COUPLED: bool> Update<'_, COUPLED> {
    /// What every form shares once `i`, `f` and `g` are known, for the tile at unit
    /// `u` of `row`: `c' = f ⊙ c + i ⊙ g`; the output gate from `go` (its peephole
    /// `p_o ⊙ c'` at peephole row `po`), written back to `pre_o` when training;
    /// `m = o ⊙ tanh(c')`.
    ///
    /// # Safety
    /// `V`'s ISA; `(row, u)` inside the padded state rows; `pre_o` one tile of `pre`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn output<V: V16>(
        &self,
        row: usize,
        u: usize,
        c: V,
        i: V,
        f: V,
        g: V,
        go: V,
        po: usize,
        pre_o: *mut f32,
    ) {
        let s = self.s;
        // SAFETY: the caller's contract; the peephole has `po + 1` rows of `c_stride`.
        unsafe {
            let c_new = f.mul_add(c, i.mul(g));
            let go = match self.peephole {
                Some(p) => V::load(p.as_ptr().add(po * s.c_stride + u)).mul_add(c_new, go),
                None => go,
            };
            if s.keep_pre {
                go.store(pre_o);
            }
            let o = sigmoid_or(clip(go, s.clip), s.acts.f());
            let h = o.mul(tanh_or(c_new, s.acts.h()));
            c_new.store(s.c_next.add(row * s.c_stride + u));
            h.store(self.m.add(row * self.m_stride + u));
        }
    }
}

impl<V: V16, const COUPLED: bool> Epilogue<V, 4> for Update<'_, COUPLED> {
    #[inline(always)]
    fn prefetch(&self, row: usize, tile: usize) {
        let (s, u) = (self.s, tile * LANES);
        s.prefetch_pre(row, tile, 1, 4);
        simd::prefetch(s.c_prev.wrapping_add(row * s.c_stride + u), LANES);
    }

    #[inline(always)]
    unsafe fn finish(&self, row: usize, tile: usize, acc: &[V; 4]) {
        let s = self.s;
        let u = tile * LANES;
        // SAFETY: `tile` is a packed tile; rows are padded to whole tiles; `pre` has
        // 4 gate columns per tile; the peephole has 3 rows of `c_stride`.
        unsafe {
            let pre = s.pre.add(row * s.pre_stride + 4 * u);
            let c = V::load(s.c_prev.add(row * s.c_stride + u));
            let mut gi = acc[0].add(V::load(pre));
            let mut gf = acc[1].add(V::load(pre.add(LANES)));
            let gg = acc[2].add(V::load(pre.add(2 * LANES)));
            let go = acc[3].add(V::load(pre.add(3 * LANES)));
            if let Some(p) = self.peephole {
                let p = p.as_ptr();
                gi = V::load(p.add(u)).mul_add(c, gi);
                gf = V::load(p.add(s.c_stride + u)).mul_add(c, gf);
            }
            if s.keep_pre {
                gi.store(pre);
                gf.store(pre.add(LANES));
                gg.store(pre.add(2 * LANES));
            }
            let i = sigmoid_or(clip(gi, s.clip), s.acts.f());
            let f = if COUPLED {
                V::splat(1.0).sub(i)
            } else {
                sigmoid_or(clip(gf, s.clip), s.acts.f())
            };
            let g = tanh_or(clip(gg, s.clip), s.acts.g());
            self.output(row, u, c, i, f, g, go, 2, pre.add(3 * LANES));
        }
    }
}

/// TFLite's CIFG: the cell update of one tile from its three gates f, g, o (`i = 1 −
/// f`); the peephole rows are (f, o).
struct Cifg<'a>(Update<'a, false>);

impl TileEpilogue for Cifg<'_> {
    /// One tile: `acc` holds the recurrent products of f, g and o.
    #[inline(always)]
    unsafe fn tile<V: V16>(&self, row: usize, tile: usize, acc: &[V; 3]) {
        let s = self.0.s;
        let u = tile * LANES;
        // SAFETY: the caller's contract; the peephole has 2 rows of `c_stride`.
        unsafe {
            let pre = s.pre.add(row * s.pre_stride + 3 * u);
            let c = V::load(s.c_prev.add(row * s.c_stride + u));
            let mut gf = acc[0].add(V::load(pre));
            let gg = acc[1].add(V::load(pre.add(LANES)));
            let go = acc[2].add(V::load(pre.add(2 * LANES)));
            if let Some(p) = self.0.peephole {
                gf = V::load(p.as_ptr().add(u)).mul_add(c, gf);
            }
            if s.keep_pre {
                gf.store(pre);
                gg.store(pre.add(LANES));
            }
            let f = sigmoid_or(clip(gf, s.clip), s.acts.f());
            let i = V::splat(1.0).sub(f);
            let g = tanh_or(clip(gg, s.clip), s.acts.g());
            self.0.output(row, u, c, i, f, g, go, 1, pre.add(2 * LANES));
        }
    }

    /// Prefetches the input projections and `c` of `tiles` tiles from `tile` of `row`.
    #[inline(always)]
    fn prefetch_tiles(&self, row: usize, tile: usize, tiles: usize) {
        let (s, u) = (self.0.s, tile * LANES);
        s.prefetch_pre(row, tile, tiles, 3);
        simd::prefetch(s.c_prev.wrapping_add(row * s.c_stride + u), LANES * tiles);
    }
}
