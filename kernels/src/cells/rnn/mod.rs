//! The Elman RNN: `h' = act(clip(W_ih x + b_ih + W_hh h + b_hh))`, `act` tanh or relu
//! (or ONNX's activation `f`).
//! One pass per step: the recurrent product over panels of four 16-unit tiles, the
//! activation in the epilogue.

pub(crate) mod backward;

use rnn_reference::{CellKind, LayerWeights, RnnConfig};

use super::{clip, Cell, StepPtrs};
use crate::arch::Backend;
use crate::element::{Element, Storage};
use crate::kernel::walk::Job;
use crate::kernel::Epilogue;
use crate::pack::{Panels, LANES};
use crate::parallel::Team;
use crate::passes::pass;
use crate::simd::{self, math, V16};

/// The Elman RNN cell.
pub(crate) struct Rnn;

/// Packed recurrent weights of an RNN layer.
#[derive(Clone)]
pub(crate) struct Weights<W: Storage> {
    /// `W_hh`, four tiles per panel; `k = H`.
    w_hh: Panels<W, 4>,
    relu: bool,
}

impl Cell for Rnn {
    type Weights<W: Storage> = Weights<W>;

    fn pack<W: Storage, S: Element>(cfg: &RnnConfig, w: &LayerWeights<'_, S>) -> Weights<W> {
        Weights {
            w_hh: Panels::pack(w.w_hh, cfg.hidden_size, cfg.output_size(), &[0]),
            relu: cfg.cell == CellKind::RNN_RELU,
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
        let epi = Activate { s, relu: w.relu };
        // SAFETY: forwarded contract; `k = H` matches the `h` rows.
        unsafe { pass::<B, W, _, 4>(team, &job, s.zigzag, &epi) }
    }
}

/// `h' = act(clip(acc + pre))` for tiles `panel * NP + q`.
struct Activate<'a> {
    s: &'a StepPtrs,
    relu: bool,
}

impl<V: V16, const NP: usize> Epilogue<V, NP> for Activate<'_> {
    #[inline(always)]
    fn prefetch(&self, row: usize, panel: usize) {
        let s = self.s;
        let u = panel * NP * LANES;
        simd::prefetch(s.pre.wrapping_add(row * s.pre_stride + u), NP * LANES);
    }

    #[inline(always)]
    unsafe fn finish(&self, row: usize, panel: usize, acc: &[V; NP]) {
        let s = self.s;
        for (q, &a) in acc.iter().enumerate() {
            let u = (panel * NP + q) * LANES;
            // SAFETY: unit offsets of every visited tile lie within the padded rows.
            unsafe {
                let pre = s.pre.add(row * s.pre_stride + u);
                let z = a.add(V::load(pre));
                if s.keep_pre {
                    z.store(pre);
                }
                let x = clip(z, s.clip);
                let h = match s.acts.f() {
                    Some(a) => x.activation(a),
                    None if self.relu => math::relu(x),
                    None => math::tanh(x),
                };
                h.store(s.h_next.add(row * s.h_stride + u));
            }
        }
    }
}
