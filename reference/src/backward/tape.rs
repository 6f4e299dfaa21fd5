//! The forward pass again, one row at a time, recording everything a step computed
//! (the "tape" the backward pass reads). It follows the equations of the golden README
//! in the same order of operations as [`step`](crate::step), so its states are
//! bit-identical to [`forward`](crate::forward)'s (a test checks it).

use crate::cell::{dot, project};
use crate::cell_kind::{CellKind, GateCoupling, GruVariant, LstmBlocks};
use crate::layer_norm;
use crate::real::Real;
use crate::spec::{Direction, RnnConfig, SeqShape};
use crate::weights::LayerWeights;
use crate::SequenceInput;

/// One step of one cell for one batch row: its inputs and every intermediate value.
#[derive(Clone, Debug)]
pub(crate) struct RowStep<T> {
    /// Batch row and time index of this step.
    pub(crate) b: usize,
    pub(crate) t: usize,
    /// `x_t` (`I_l`), `h_{t-1}` (`H_out`), `c_{t-1}` (`H`, LSTM; else empty).
    pub(crate) x: Vec<T>,
    pub(crate) h: Vec<T>,
    pub(crate) c: Vec<T>,
    /// Every gate's full pre-activation before `clip` (`G*H`, PyTorch gate order).
    pub(crate) pre: Vec<T>,
    /// Every gate's activation (`G*H`).
    pub(crate) act: Vec<T>,
    /// GRU: the recurrent part of the n gate (`W_hn h + b_hn`, or `W_hn (r ⊙ h) +
    /// b_hn` for the reset-before form); LSTM: `c'`. `H` values.
    pub(crate) extra: Vec<T>,
    /// LSTM: `m = o ⊙ tanh(c')` (`H`); GRU reset-before: `r ⊙ h` (`H`).
    pub(crate) m: Vec<T>,
    /// `h_t` (`H_out`).
    pub(crate) h_new: Vec<T>,
    /// AUGRU: this row's attention `a` (the update gate acts as `(1 − a) z`).
    pub(crate) att: Option<T>,
}

/// Everything one layer recorded: its input (in `shape.layout`, `width` per row) and,
/// per direction, its steps in the order they ran.
pub(crate) struct LayerTape<T> {
    pub(crate) input: Vec<T>,
    pub(crate) width: usize,
    pub(crate) dirs: Vec<Vec<RowStep<T>>>,
}

/// `W_ih[r]·x + b_ih[r]`.
pub(crate) fn x_part<T: Real>(w: &LayerWeights<'_, T>, r: usize, x: &[T]) -> T {
    let k = x.len();
    let s = dot(&w.w_ih[r * k..(r + 1) * k], x);
    w.b_ih.map_or(s, |b| s + b[r])
}

/// `W_hh[r]·h + b_hh[r]`.
pub(crate) fn h_part<T: Real>(w: &LayerWeights<'_, T>, r: usize, h: &[T]) -> T {
    let k = h.len();
    let s = dot(&w.w_hh[r * k..(r + 1) * k], h);
    w.b_hh.map_or(s, |b| s + b[r])
}

/// ONNX `clip`, when set.
pub(crate) fn clip<T: Real>(v: T, c: Option<T>) -> T {
    c.map_or(v, |c| v.clamp_to(c))
}

/// Runs one step of `cfg.cell` for one row and records it.
pub(crate) fn row_step<T: Real>(
    cfg: &RnnConfig,
    w: &LayerWeights<'_, T>,
    (b, t): (usize, usize),
    x: &[T],
    h: &[T],
    c: &[T],
    att: Option<T>,
) -> RowStep<T> {
    let hid = cfg.hidden_size;
    let cl = cfg.clip.map(|c| T::from_f64(f64::from(c)));
    let acts = cfg.gate_activations(0);
    let mut s = RowStep {
        b,
        t,
        x: x.to_vec(),
        h: h.to_vec(),
        c: c.to_vec(),
        pre: Vec::with_capacity(cfg.gates() * hid),
        act: Vec::with_capacity(cfg.gates() * hid),
        extra: Vec::new(),
        m: Vec::new(),
        h_new: Vec::new(),
        att,
    };
    match cfg.cell {
        CellKind::Rnn(_) => {
            for j in 0..hid {
                let pre = x_part(w, j, x) + h_part(w, j, h);
                s.pre.push(pre);
                s.act.push(clip(pre, cl).gate_activation(acts.f));
            }
            s.h_new = s.act.clone();
        }
        CellKind::Lstm(v) if v.layer_norm => {
            // `pre` holds each gate's pre-normalisation sum (the backward renormalises).
            let row = layer_norm::lstm_row(&v, w, acts, x, h, c);
            (s.pre, s.act, s.extra, s.m) = (row.z, row.act, row.c, row.m);
            project(&v, w, &s.m, &mut s.h_new);
        }
        CellKind::Lstm(v) => {
            let blk = LstmBlocks::of(&v);
            s.pre.resize(cfg.gates() * hid, T::ZERO);
            s.act.resize(cfg.gates() * hid, T::ZERO);
            // The pre-activation (unclipped) of gate block `k` with the peephole term of
            // block `pk`; absent peepholes add no term at all (as in `step`).
            let raw = |k: usize, j: usize| x_part(w, k * hid + j, x) + h_part(w, k * hid + j, h);
            let pre = |k: usize, pk: usize, j: usize, c: T| {
                w.peephole
                    .map_or(raw(k, j), |p| raw(k, j) + p[pk * hid + j] * c)
            };
            for (j, &c_old) in c.iter().enumerate() {
                let pf = pre(blk.f, blk.p_f, j, c_old);
                let (i, f) = match blk.i.zip(blk.p_i) {
                    // CIFG: i = 1 − f, no input gate row.
                    None => {
                        let f = clip(pf, cl).gate_activation(acts.f);
                        (T::ONE - f, f)
                    }
                    Some((ki, pi)) => {
                        let pi = pre(ki, pi, j, c_old);
                        let i = clip(pi, cl).gate_activation(acts.f);
                        // ONNX `input_forget`: f = 1 − i (the forget row's
                        // pre-activation is recorded but acts nowhere).
                        let f = if v.coupling == GateCoupling::InputForget {
                            T::ONE - i
                        } else {
                            clip(pf, cl).gate_activation(acts.f)
                        };
                        s.pre[ki * hid + j] = pi;
                        s.act[ki * hid + j] = i;
                        (i, f)
                    }
                };
                let pg = raw(blk.g, j);
                let g = clip(pg, cl).gate_activation(acts.g);
                let c_new = f * c_old + i * g;
                let po = pre(blk.o, blk.p_o, j, c_new);
                let o = clip(po, cl).gate_activation(acts.f);
                for (k, p, a) in [(blk.f, pf, f), (blk.g, pg, g), (blk.o, po, o)] {
                    s.pre[k * hid + j] = p;
                    s.act[k * hid + j] = a;
                }
                s.extra.push(c_new);
                s.m.push(o * c_new.gate_activation(acts.h));
            }
            project(&v, w, &s.m, &mut s.h_new);
        }
        CellKind::Gru(GruVariant {
            linear_before_reset,
            ..
        }) => {
            s.pre.resize(3 * hid, T::ZERO);
            s.act.resize(3 * hid, T::ZERO);
            for j in 0..hid {
                for (k, r) in [j, hid + j].into_iter().enumerate() {
                    let pre = x_part(w, r, x) + h_part(w, r, h);
                    // This crate's peephole GRU: + p ⊙ h for r and z.
                    s.pre[r] = w.peephole.map_or(pre, |p| pre + p[k * hid + j] * h[j]);
                    s.act[r] = clip(s.pre[r], cl).gate_activation(acts.f);
                }
            }
            if !linear_before_reset {
                s.m = (0..hid).map(|j| s.act[j] * h[j]).collect();
            }
            for j in 0..hid {
                let rn = 2 * hid + j;
                let r = s.act[j];
                // AUGRU: z' = (1 − a) z, as in `step`.
                let z = att.map_or(s.act[hid + j], |a| (T::ONE - a) * s.act[hid + j]);
                let (hp, pre) = if linear_before_reset {
                    let hp = h_part(w, rn, h);
                    (hp, x_part(w, rn, x) + r * hp)
                } else {
                    let hp = h_part(w, rn, &s.m);
                    (hp, x_part(w, rn, x) + hp)
                };
                let n = clip(pre, cl).gate_activation(acts.g);
                s.pre[rn] = pre;
                s.act[rn] = n;
                s.extra.push(hp);
                // PyTorch ATen's form, as in `step`.
                s.h_new.push(n + z * (h[j] - n));
            }
        }
    }
    s
}

/// Runs the whole network like [`forward`](crate::forward), recording every step of
/// every row. The caller validated every argument.
pub(crate) fn record<T: Real>(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, T>],
    shape: SeqShape,
    input: &SequenceInput<'_, T>,
) -> Vec<LayerTape<T>> {
    let (steps, batch) = (shape.steps, shape.batch);
    let (nd, hid, ho) = (cfg.num_directions(), cfg.hidden_size, cfg.output_size());
    let lstm = cfg.cell.has_cell_state();
    let lens: Vec<usize> = input.seq_lens.map_or(vec![steps; batch], <[usize]>::to_vec);
    let mut tapes = Vec::with_capacity(cfg.num_layers);
    let mut layer_in = input.x.to_vec();
    let mut width = cfg.input_size;
    for layer in 0..cfg.num_layers {
        let yw = cfg.y_width();
        let mut y = vec![T::ZERO; steps * batch * yw];
        let mut dirs = Vec::with_capacity(nd);
        for d in 0..nd {
            let step_cfg = cfg.direction_step(width, d);
            let k = layer * nd + d;
            let reverse = cfg.direction.is_reverse(d);
            let mut hs: Vec<Vec<T>> = (0..batch)
                .map(|b| state(input.h0, (k * batch + b) * ho, ho))
                .collect();
            let mut cs: Vec<Vec<T>> = (0..batch)
                .map(|b| {
                    if lstm {
                        state(input.c0, (k * batch + b) * hid, hid)
                    } else {
                        Vec::new()
                    }
                })
                .collect();
            let mut rec = Vec::new();
            for s in 0..steps {
                for b in (0..batch).filter(|&b| s < lens[b]) {
                    let t = if reverse { lens[b] - 1 - s } else { s };
                    let r = shape.row(t, b);
                    let x = &layer_in[r * width..(r + 1) * width];
                    let att = input.attention.map(|a| a[r]);
                    let st = row_step(&step_cfg, &weights[k], (b, t), x, &hs[b], &cs[b], att);
                    let o = r * yw + cfg.direction.output_block(d) * ho;
                    if cfg.direction == Direction::BidirectionalSum {
                        // y = y_forward + y_reverse, as the forward computes it.
                        for (a, &v) in y[o..o + ho].iter_mut().zip(&st.h_new) {
                            *a += v;
                        }
                    } else {
                        y[o..o + ho].copy_from_slice(&st.h_new);
                    }
                    hs[b].clone_from(&st.h_new);
                    if lstm {
                        cs[b].clone_from(&st.extra);
                    }
                    rec.push(st);
                }
            }
            dirs.push(rec);
        }
        tapes.push(LayerTape {
            input: layer_in,
            width,
            dirs,
        });
        layer_in = y;
        width = yw;
    }
    tapes
}

/// `n` values of an optional state tensor from `offset`, or zeros.
fn state<T: Real>(v: Option<&[T]>, offset: usize, n: usize) -> Vec<T> {
    v.map_or(vec![T::ZERO; n], |v| v[offset..offset + n].to_vec())
}
