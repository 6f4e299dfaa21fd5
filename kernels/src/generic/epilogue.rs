//! Post-GEMM passes, one per cell kind: they turn a row's accumulators (the recurrent
//! product for one tile of hidden units) into the new state, reading the hoisted input
//! projection (biases folded in) and writing `h` and `c` for that tile only.
//!
//! Lane `l` of tile `j` is hidden unit `16 j + l`. State rows are padded to
//! [`padded`](crate::pack::padded) units, so whole tiles can be loaded and stored.

use super::phase::Epilogue;
use crate::arch::math;
use crate::arch::vector::V16;
use crate::pack::LANES;

/// Pointers one recurrent step works on. Built by the driver from buffers whose sizes
/// it checked; every row stride is a whole number of padded tiles.
#[derive(Clone, Copy)]
pub(crate) struct StepPtrs {
    /// Input projection of this step, row `b` at `pre + b * pre_stride`, columns
    /// gate-interleaved per tile (`[tile][gate][16]`), biases folded in.
    pub(crate) pre: *const f32,
    pub(crate) pre_stride: usize,
    /// `h` before and after the step, row stride `h_stride`.
    pub(crate) h_prev: *const f32,
    pub(crate) h_next: *mut f32,
    pub(crate) h_stride: usize,
    /// LSTM cell state before and after, row stride `c_stride`.
    pub(crate) c_prev: *const f32,
    pub(crate) c_next: *mut f32,
    pub(crate) c_stride: usize,
    /// Scratch rows: LSTM projection input `o * tanh(c')`, or GRU `r * h` (`aux`) and
    /// `z` (`aux2`).
    pub(crate) aux: *mut f32,
    pub(crate) aux2: *mut f32,
    pub(crate) aux_stride: usize,
    /// LSTM peephole `[3][c_stride]` (i, f, o), or null.
    pub(crate) peephole: *const f32,
    /// GRU (linear before reset) recurrent bias of the n gate, or null.
    pub(crate) b_hn: *const f32,
    /// ONNX clip threshold.
    pub(crate) clip: Option<f32>,
}

#[inline(always)]
unsafe fn clip<V: V16>(x: V, c: Option<f32>) -> V {
    match c {
        // SAFETY: the caller guarantees V's ISA.
        Some(c) => unsafe { math::clip(x, c) },
        None => x,
    }
}

/// Input projection (and LSTM projection): `out[row][cols] = acc (+ bias[cols])`.
pub(crate) struct Store {
    pub(crate) out: *mut f32,
    pub(crate) stride: usize,
    /// Column-aligned bias or null.
    pub(crate) bias: *const f32,
}

impl<V: V16, const NP: usize> Epilogue<V, NP> for Store {
    #[inline(always)]
    unsafe fn finish(&self, row: usize, panel: usize, acc: &[V; NP]) {
        let col0 = panel * NP * LANES;
        for (q, &a) in acc.iter().enumerate() {
            let c = col0 + q * LANES;
            // SAFETY: the driver sized `out` (rows x stride) and `bias` (stride) to
            // cover every panel's columns.
            unsafe {
                let v = if self.bias.is_null() {
                    a
                } else {
                    a.add(V::load(self.bias.add(c)))
                };
                v.store(self.out.add(row * self.stride + c));
            }
        }
    }
}

/// Elman RNN: `h' = act(clip(acc + pre))`; any `NP` (tile `j = panel * NP + q`).
pub(crate) struct Rnn {
    pub(crate) s: StepPtrs,
    pub(crate) relu: bool,
}

impl<V: V16, const NP: usize> Epilogue<V, NP> for Rnn {
    #[inline(always)]
    unsafe fn finish(&self, row: usize, panel: usize, acc: &[V; NP]) {
        let s = &self.s;
        for (q, &a) in acc.iter().enumerate() {
            let u = (panel * NP + q) * LANES;
            // SAFETY: unit offsets of every visited tile lie within the padded rows.
            unsafe {
                let x = clip(a.add(V::load(s.pre.add(row * s.pre_stride + u))), s.clip);
                let h = if self.relu {
                    math::relu(x)
                } else {
                    math::tanh(x)
                };
                h.store(s.h_next.add(row * s.h_stride + u));
            }
        }
    }
}

/// LSTM, `NP = 4` gates (i, f, g, o) of one tile per panel.
pub(crate) struct Lstm {
    pub(crate) s: StepPtrs,
}

impl<V: V16> Epilogue<V, 4> for Lstm {
    #[inline(always)]
    unsafe fn finish(&self, row: usize, tile: usize, acc: &[V; 4]) {
        let s = &self.s;
        let u = tile * LANES;
        // SAFETY: `tile` is a packed tile; rows are padded to whole tiles; `pre` has
        // 4 gate columns per tile; the peephole has 3 rows of `c_stride`.
        unsafe {
            let pre = s.pre.add(row * s.pre_stride + 4 * u);
            let c = V::load(s.c_prev.add(row * s.c_stride + u));
            let mut gi = acc[0].add(V::load(pre));
            let mut gf = acc[1].add(V::load(pre.add(LANES)));
            let gg = acc[2].add(V::load(pre.add(2 * LANES)));
            let mut go = acc[3].add(V::load(pre.add(3 * LANES)));
            if !s.peephole.is_null() {
                gi = V::load(s.peephole.add(u)).mul_add(c, gi);
                gf = V::load(s.peephole.add(s.c_stride + u)).mul_add(c, gf);
            }
            let i = math::sigmoid(clip(gi, s.clip));
            let f = math::sigmoid(clip(gf, s.clip));
            let g = math::tanh(clip(gg, s.clip));
            let c_new = f.mul_add(c, i.mul(g));
            if !s.peephole.is_null() {
                go = V::load(s.peephole.add(2 * s.c_stride + u)).mul_add(c_new, go);
            }
            let o = math::sigmoid(clip(go, s.clip));
            let h = o.mul(math::tanh(c_new));
            c_new.store(s.c_next.add(row * s.c_stride + u));
            if s.aux.is_null() {
                h.store(s.h_next.add(row * s.h_stride + u));
            } else {
                h.store(s.aux.add(row * s.aux_stride + u));
            }
        }
    }
}

/// GRU with the reset gate applied after the recurrent product (PyTorch form),
/// `NP = 3` gates (r, z, n) of one tile per panel.
pub(crate) struct GruLinearBeforeReset {
    pub(crate) s: StepPtrs,
}

impl<V: V16> Epilogue<V, 3> for GruLinearBeforeReset {
    #[inline(always)]
    unsafe fn finish(&self, row: usize, tile: usize, acc: &[V; 3]) {
        // SAFETY: forwarded contract.
        unsafe { self.tile(row, tile, acc) }
    }
}

/// Two tiles per panel (weights stored in pairs, see `WeightLoad::PAIRED`): tiles
/// `2 panel` and `2 panel + 1`; state rows are padded to 4 tiles, so both exist.
impl<V: V16> Epilogue<V, 6> for GruLinearBeforeReset {
    #[inline(always)]
    unsafe fn finish(&self, row: usize, panel: usize, acc: &[V; 6]) {
        // SAFETY: forwarded contract; the padded rows hold both tiles.
        unsafe {
            self.tile(row, 2 * panel, &[acc[0], acc[1], acc[2]]);
            self.tile(row, 2 * panel + 1, &[acc[3], acc[4], acc[5]]);
        }
    }
}

impl GruLinearBeforeReset {
    /// One tile: `acc` holds the recurrent products of r, z and n.
    ///
    /// # Safety
    /// As for [`Epilogue::finish`].
    #[inline(always)]
    unsafe fn tile<V: V16>(&self, row: usize, tile: usize, acc: &[V; 3]) {
        let s = &self.s;
        let u = tile * LANES;
        // SAFETY: as for `Lstm`; `b_hn` is a padded row of hidden units.
        unsafe {
            let pre = s.pre.add(row * s.pre_stride + 3 * u);
            let r = math::sigmoid(clip(acc[0].add(V::load(pre)), s.clip));
            let z = math::sigmoid(clip(acc[1].add(V::load(pre.add(LANES))), s.clip));
            let hn = acc[2].add(V::load(s.b_hn.add(u)));
            let n = math::tanh(clip(r.mul_add(hn, V::load(pre.add(2 * LANES))), s.clip));
            let h = V::load(s.h_prev.add(row * s.h_stride + u));
            // (1 - z) n + z h = n + z (h - n)
            z.mul_add(h.sub(n), n)
                .store(s.h_next.add(row * s.h_stride + u));
        }
    }
}

/// GRU original form, first pass: `NP = 2` gates (r, z) of one tile per panel; writes
/// `r * h` (the left operand of the second pass) and `z`.
pub(crate) struct GruResetUpdate {
    pub(crate) s: StepPtrs,
}

impl<V: V16> Epilogue<V, 2> for GruResetUpdate {
    #[inline(always)]
    unsafe fn finish(&self, row: usize, tile: usize, acc: &[V; 2]) {
        let s = &self.s;
        let u = tile * LANES;
        // SAFETY: as for `Lstm`; `aux`/`aux2` are padded rows.
        unsafe {
            let pre = s.pre.add(row * s.pre_stride + 3 * u);
            let r = math::sigmoid(clip(acc[0].add(V::load(pre)), s.clip));
            let z = math::sigmoid(clip(acc[1].add(V::load(pre.add(LANES))), s.clip));
            let h = V::load(s.h_prev.add(row * s.h_stride + u));
            r.mul(h).store(s.aux.add(row * s.aux_stride + u));
            z.store(s.aux2.add(row * s.aux_stride + u));
        }
    }
}

/// GRU original form, second pass: `acc = W_hn (r * h)`; any `NP` (tile
/// `j = panel * NP + q`).
pub(crate) struct GruNew {
    pub(crate) s: StepPtrs,
}

impl<V: V16, const NP: usize> Epilogue<V, NP> for GruNew {
    #[inline(always)]
    unsafe fn finish(&self, row: usize, panel: usize, acc: &[V; NP]) {
        let s = &self.s;
        for (q, &a) in acc.iter().enumerate() {
            let u = (panel * NP + q) * LANES;
            // SAFETY: as for `Rnn`; `pre` has 3 gate columns per tile.
            unsafe {
                let pre_n = V::load(s.pre.add(row * s.pre_stride + 3 * u + 2 * LANES));
                let n = math::tanh(clip(a.add(pre_n), s.clip));
                let z = V::load(s.aux2.add(row * s.aux_stride + u));
                let h = V::load(s.h_prev.add(row * s.h_stride + u));
                z.mul_add(h.sub(n), n)
                    .store(s.h_next.add(row * s.h_stride + u));
            }
        }
    }
}
