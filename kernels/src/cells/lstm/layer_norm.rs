//! TFLite's layer-norm LSTM (`rnn_reference`'s `layer_norm`): each gate block's sum
//! `z = W_ih x + W_hh h (+ p ⊙ c)` is normalised over the block's `H` units, scaled by
//! `γ` and only then biased, `act(γ ⊙ (z − μ)/√(σ² + ε) + b)`.
//!
//! A gate then needs every unit of its row before any unit's activation, which a
//! per-tile epilogue cannot see. So the step is two passes (oneDNN's "GEMM, then a
//! post-GEMM pass"): the recurrent product's epilogue ([`Sums`]) writes each tile's
//! sums over the input projection (which carries no bias here) in place; after the
//! barrier, a row pass ([`RowUpdate`], split by rows over the team) normalises i, f
//! and g, updates `c`, adds o's peephole on `c'`, normalises o and writes `m = o ⊙
//! h(c')`. The plain LSTM keeps its single fused pass.

use std::ops::Range;

use rnn_reference::{LayerWeights, RnnConfig, LAYER_NORM_EPSILON};

use super::super::{keep_units, sigmoid_or, tanh_or, StepPtrs, TileEpilogue};
use crate::aligned::AlignedVec;
use crate::element::Element;
use crate::kernel::{Epilogue, SimdOp};
use crate::pack::{padded_rows, LANES};
use crate::simd::V16;

/// The per-gate vectors of a layer-norm LSTM, `[G][padded(H)]` in the weights' gate
/// order (i, f, g, o; CIFG f, g, o), zero past `H`.
#[derive(Clone)]
pub(crate) struct NormVecs {
    /// `H`: the units a gate block normalises over.
    pub(super) hidden: usize,
    /// The scales `γ`.
    gamma: AlignedVec,
    /// `b_ih + b_hh`, added after the normalisation.
    bias: AlignedVec,
}

impl NormVecs {
    /// Packs `γ` and the summed biases of a validated layer-norm weight set.
    pub(super) fn pack<S: Element>(cfg: &RnnConfig, w: &LayerWeights<'_, S>) -> Self {
        let (g, h) = (cfg.gates(), cfg.hidden_size);
        let gamma = w
            .layer_norm
            .expect("a layer-norm LSTM has its scales (checked)");
        let bias = super::super::sum_biases(cfg, w, |_| true);
        NormVecs {
            hidden: h,
            gamma: padded_rows(gamma, g, h),
            bias: padded_rows(&bias, g, h),
        }
    }

    /// `γ` and the biases, `[G][padded(H)]` each (for the backward's views).
    pub(super) fn ptrs(&self) -> (*const f32, *const f32) {
        (
            self.gamma.as_slice().as_ptr(),
            self.bias.as_slice().as_ptr(),
        )
    }
}

/// The first pass's epilogue: `z = acc + pre (+ p ⊙ c)` of every gate of one tile,
/// written over `pre` (o without its peephole, which needs `c'`). `G` gates per tile;
/// `PEEP[k]` is gate `k`'s peephole row on `c`, if any.
pub(super) struct Sums<'a, const G: usize> {
    pub(super) s: &'a StepPtrs,
    pub(super) peephole: Option<&'a [f32]>,
    pub(super) peep_rows: [Option<usize>; G],
}

// SAFETY: only reads shared data; writes go through `s.pre` to disjoint tiles.
unsafe impl<const G: usize> Sync for Sums<'_, G> {}

impl<const G: usize> Sums<'_, G> {
    /// # Safety
    /// `V`'s ISA; `tile` a packed tile of `row` (rows padded to whole tiles).
    #[inline(always)]
    unsafe fn sums<V: V16>(&self, row: usize, tile: usize, acc: &[V]) {
        let s = self.s;
        let u = tile * LANES;
        // SAFETY: the caller's contract; `pre` has `G` gate columns per tile and the
        // peephole `[rows][c_stride]`.
        unsafe {
            let pre = s.pre.add(row * s.pre_stride + G * u);
            let c = V::load(s.c_prev.add(row * s.c_stride + u));
            for (k, a) in acc.iter().enumerate() {
                let mut z = a.add(V::load(pre.add(k * LANES)));
                if let (Some(p), Some(r)) = (self.peephole, self.peep_rows[k]) {
                    z = V::load(p.as_ptr().add(r * s.c_stride + u)).mul_add(c, z);
                }
                z.store(pre.add(k * LANES));
            }
        }
    }
}

impl<V: V16> Epilogue<V, 4> for Sums<'_, 4> {
    #[inline(always)]
    fn prefetch(&self, row: usize, tile: usize) {
        self.s.prefetch_pre(row, tile, 1, 4);
    }

    #[inline(always)]
    unsafe fn finish(&self, row: usize, tile: usize, acc: &[V; 4]) {
        // SAFETY: forwarded contract.
        unsafe { self.sums(row, tile, acc) }
    }
}

impl TileEpilogue for Sums<'_, 3> {
    #[inline(always)]
    unsafe fn tile<V: V16>(&self, row: usize, tile: usize, acc: &[V; 3]) {
        // SAFETY: forwarded contract.
        unsafe { self.sums(row, tile, acc) }
    }

    #[inline(always)]
    fn prefetch_tiles(&self, row: usize, tile: usize, tiles: usize) {
        self.s.prefetch_pre(row, tile, tiles, 3);
    }
}

/// The row pass of rows `rows`: from the sums [`Sums`] left in `pre` to `c'` (into
/// `c_next`) and `m = o ⊙ h(c')` (into `m`, rows `m_stride` apart). Gate blocks in
/// `pre`'s tiles: `i` (`None` for CIFG: `i = 1 − f`), `f`, `g`, `o`; `p_o` the
/// peephole row of o.
pub(super) struct RowUpdate<'a> {
    pub(super) s: &'a StepPtrs,
    pub(super) norm: &'a NormVecs,
    pub(super) peephole: Option<&'a [f32]>,
    pub(super) hidden: usize,
    pub(super) gates: usize,
    pub(super) i: Option<usize>,
    pub(super) f: usize,
    pub(super) g: usize,
    pub(super) o: usize,
    pub(super) p_o: usize,
    pub(super) m: *mut f32,
    pub(super) m_stride: usize,
    pub(super) rows: Range<usize>,
}

// SAFETY: the pointers point into the step's buffers, which outlive the team; members
// update disjoint rows.
unsafe impl Sync for RowUpdate<'_> {}

/// The sum of a vector's lanes, in lane order.
///
/// # Safety
/// `V`'s ISA.
#[inline(always)]
pub(super) unsafe fn lane_sum<V: V16>(v: V) -> f32 {
    let mut lanes = [0.0f32; LANES];
    // SAFETY: `lanes` holds 16 floats; the caller's ISA.
    unsafe { v.store(lanes.as_mut_ptr()) };
    lanes.iter().sum()
}

impl RowUpdate<'_> {
    /// Tile `t` of gate block `k` of the row at `pre`.
    fn at(&self, pre: *mut f32, k: usize, t: usize) -> *mut f32 {
        pre.wrapping_add((self.gates * t + k) * LANES)
    }
}

/// One gate block's statistics: `μ` and `inv = 1 / √(σ² + ε)`, splatted.
#[derive(Clone, Copy)]
pub(super) struct Stats<V> {
    pub(super) mean: V,
    pub(super) inv: V,
}

/// TFLite's statistics of the `hidden` sums at `z(t)` (tile `t`, padding lanes
/// ignored): `μ = Σz / H`, `σ² = Σ(z − μ)² / H`, `inv = 1 / √(σ² + ε)`. Lanes sum in
/// lane order, so a recomputation from the same sums gives the same bits.
///
/// # Safety
/// `V`'s ISA; `z(t)` readable for 16 floats for every tile `t < ⌈H / 16⌉`.
#[inline(always)]
pub(super) unsafe fn stats<V: V16>(hidden: usize, z: impl Fn(usize) -> *const f32) -> Stats<V> {
    let tiles = hidden.div_ceil(LANES);
    let n = hidden as f32;
    // SAFETY: the caller's contract.
    unsafe {
        let mut acc = V::zero();
        for t in 0..tiles {
            acc = acc.add(keep_units(V::load(z(t)), t * LANES, hidden));
        }
        let mean = V::splat(lane_sum(acc) / n);
        let mut sq = V::zero();
        for t in 0..tiles {
            let d = keep_units(V::load(z(t)).sub(mean), t * LANES, hidden);
            sq = d.mul_add(d, sq);
        }
        let var = lane_sum(sq) / n;
        Stats {
            mean,
            inv: V::splat(1.0 / (var + LAYER_NORM_EPSILON).sqrt()),
        }
    }
}

impl NormVecs {
    /// The activation's argument of tile `t` of gate block `k` from its sums `z`:
    /// `u = γ ⊙ ((z − μ) · inv) + b`, zero past `H`.
    ///
    /// # Safety
    /// `V`'s ISA; `k < G`, `t < ⌈H / 16⌉`; `stride` the vectors' row stride.
    #[inline(always)]
    unsafe fn scaled<V: V16>(&self, z: V, st: Stats<V>, k: usize, t: usize, stride: usize) -> V {
        let off = k * stride + t * LANES;
        // SAFETY: the caller's contract: the vectors hold `G` rows of `stride` floats.
        unsafe {
            let n = z.sub(st.mean).mul(st.inv);
            let gamma = V::load(self.gamma.as_slice().as_ptr().add(off));
            let u = gamma.mul_add(n, V::load(self.bias.as_slice().as_ptr().add(off)));
            keep_units(u, t * LANES, self.hidden)
        }
    }
}

impl SimdOp for RowUpdate<'_> {
    type Output = ();

    #[inline(always)]
    unsafe fn run<V: V16>(self) {
        let s = self.s;
        let (hid, hs) = (self.hidden, s.c_stride);
        let tiles = hid.div_ceil(LANES);
        let (act_f, act_g, act_h) = (s.acts.f(), s.acts.g(), s.acts.h());
        let this = &self;
        for row in self.rows.clone() {
            // SAFETY: the op's contract: row `row` of `pre`, `c_prev`, `c_next` and `m`
            // exist with their strides; the peephole has `p_o + 1` rows of `c_stride`.
            // The sums stay in `pre` (o's with its peephole added): what training
            // keeps for the backward.
            unsafe {
                let pre = s.pre.add(row * s.pre_stride);
                let z = |k: usize| move |t: usize| this.at(pre, k, t).cast_const();
                let st_f = stats::<V>(hid, z(self.f));
                let st_g = stats::<V>(hid, z(self.g));
                let st_i = self.i.map(|k| stats::<V>(hid, z(k)));
                let gate = |k: usize, st: Stats<V>, t: usize| {
                    self.norm.scaled(V::load(self.at(pre, k, t)), st, k, t, hs)
                };
                for t in 0..tiles {
                    let u = t * LANES;
                    let c = V::load(s.c_prev.add(row * hs + u));
                    let f = sigmoid_or(gate(self.f, st_f, t), act_f);
                    let i = match (self.i, st_i) {
                        (Some(k), Some(st)) => sigmoid_or(gate(k, st, t), act_f),
                        _ => V::splat(1.0).sub(f),
                    };
                    let g = tanh_or(gate(self.g, st_g, t), act_g);
                    let c_new = f.mul_add(c, i.mul(g));
                    c_new.store(s.c_next.add(row * hs + u));
                    if let Some(p) = self.peephole {
                        let po = V::load(p.as_ptr().add(self.p_o * hs + u));
                        let zo = self.at(pre, self.o, t);
                        po.mul_add(c_new, V::load(zo)).store(zo);
                    }
                }
                let st_o = stats::<V>(hid, z(self.o));
                for t in 0..tiles {
                    let u = t * LANES;
                    let o = sigmoid_or(gate(self.o, st_o, t), act_f);
                    let c_new = V::load(s.c_next.add(row * hs + u));
                    o.mul(tanh_or(c_new, act_h))
                        .store(self.m.add(row * self.m_stride + u));
                }
            }
        }
    }
}
