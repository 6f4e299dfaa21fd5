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
//!
//! One pass over panels holding all four gates of one 16-unit tile, the cell update in
//! the epilogue; a projected LSTM writes `o ⊙ tanh(c')` to scratch and a second pass
//! (a plain product with `W_hr`) makes `h'`.

pub(crate) mod backward;

use rnn_reference::{LayerWeights, RnnConfig};

use super::{clip, Cell, StepPtrs};
use crate::aligned::AlignedVec;
use crate::arch::Backend;
use crate::element::{Element, Storage};
use crate::kernel::walk::Job;
use crate::kernel::{Epilogue, Store};
use crate::pack::{padded_rows, Panels, LANES};
use crate::parallel::Team;
use crate::passes::{gemm, pass};
use crate::simd::{self, math, V16};

/// The LSTM cell.
pub(crate) struct Lstm;

/// Packed recurrent weights of an LSTM layer.
#[derive(Clone)]
pub(crate) struct Weights<W: Storage> {
    /// `W_hh`, the four gates of one tile per panel; `k = H_out`.
    w_hh: Panels<W, 4>,
    /// Projection `W_hr` (`H_out` columns), `k = H`.
    w_hr: Option<Panels<W, 4>>,
    /// Peepholes `[3][padded(H)]` in order i, f, o.
    peephole: Option<AlignedVec>,
    /// ONNX `input_forget`: `f = 1 − i`.
    pub(crate) coupled: bool,
}

impl Cell for Lstm {
    type Weights<W: Storage> = Weights<W>;

    fn pack<W: Storage, S: Element>(cfg: &RnnConfig, w: &LayerWeights<'_, S>) -> Weights<W> {
        let (h, ho) = (cfg.hidden_size, cfg.output_size());
        Weights {
            w_hh: Panels::pack(w.w_hh, h, ho, &[0, 1, 2, 3]),
            w_hr: w.w_hr.map(|p| Panels::pack(p, ho, h, &[0])),
            peephole: w.peephole.map(|p| padded_rows(p, 3, h)),
            coupled: cfg.cell.input_forget(),
        }
    }

    fn panels<W: Storage>(w: &Weights<W>) -> usize {
        w.w_hh.panels()
    }

    unsafe fn step<B: Backend, W: Storage>(w: &Weights<W>, s: &StepPtrs, team: &Team<'_>) {
        let job = Job {
            a: s.h_rows(),
            nrows: s.batch,
            w: w.w_hh.view(),
        };
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
        // SAFETY: forwarded contract; `k = H_out` matches the `h` rows.
        unsafe {
            // The coupled form is its own instantiation, so the plain one's code is
            // exactly what it was without the option.
            if w.coupled {
                let epi = Update::<true> {
                    s: epi.s,
                    peephole: epi.peephole,
                    m: epi.m,
                    m_stride: epi.m_stride,
                };
                pass::<B, W, _, 4>(team, &job, s.zigzag, &epi)
            } else {
                pass::<B, W, _, 4>(team, &job, s.zigzag, &epi)
            }
        };
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
            unsafe { gemm::<B, W>(team, &job, &out) };
        }
    }
}

/// The cell update of one tile (`NP = 4` gates i, f, g, o per panel); writes `c'` and
/// `m = o ⊙ tanh(c')` (to `h_next`, or to scratch for the projection). `COUPLED`:
/// ONNX `input_forget`, `f = 1 − i`.
struct Update<'a, const COUPLED: bool> {
    s: &'a StepPtrs,
    peephole: Option<&'a [f32]>,
    m: *mut f32,
    m_stride: usize,
}

// SAFETY: `m` points into the step's state or scratch rows, which outlive the team;
// members write disjoint tiles.
unsafe impl<const COUPLED: bool> Sync for Update<'_, COUPLED> {}

impl<V: V16, const COUPLED: bool> Epilogue<V, 4> for Update<'_, COUPLED> {
    #[inline(always)]
    fn prefetch(&self, row: usize, tile: usize) {
        let (s, u) = (self.s, tile * LANES);
        simd::prefetch(s.pre.wrapping_add(row * s.pre_stride + 4 * u), 4 * LANES);
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
            let mut go = acc[3].add(V::load(pre.add(3 * LANES)));
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
            let i = math::sigmoid(clip(gi, s.clip));
            let f = if COUPLED {
                V::splat(1.0).sub(i)
            } else {
                math::sigmoid(clip(gf, s.clip))
            };
            let g = math::tanh(clip(gg, s.clip));
            let c_new = f.mul_add(c, i.mul(g));
            if let Some(p) = self.peephole {
                go = V::load(p.as_ptr().add(2 * s.c_stride + u)).mul_add(c_new, go);
            }
            if s.keep_pre {
                go.store(pre.add(3 * LANES));
            }
            let o = math::sigmoid(clip(go, s.clip));
            let h = o.mul(math::tanh(c_new));
            c_new.store(s.c_next.add(row * s.c_stride + u));
            h.store(self.m.add(row * self.m_stride + u));
        }
    }
}
