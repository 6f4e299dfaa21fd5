//! The backward pass of one row's step of TFLite's layer-norm LSTM. The forward
//! ([`lstm_row`](crate::layer_norm::lstm_row)) normalises each gate block as a whole,
//! so the backward goes block by block: o first (its peephole sees `c'`), then `c'`,
//! then i, f and g; each block from `∂L/∂a` to `∂L/∂u` (the activation), to `∂L/∂γ`
//! and the biases' `∂L/∂u`, and through the normalisation to `∂L/∂z`, which the
//! products and the peepholes receive.

use crate::activation::{Activation, GateActivations};
use crate::cell_kind::{LstmBlocks, LstmVariant};
use crate::layer_norm::{normalize, normalize_backward, scaled};
use crate::real::Real;
use crate::weights::{LayerWeights, OwnedLayerWeights};

use super::cells::{add, gate_grad, input_side, projection_backward, recurrent, StateGrads};
use super::tape::RowStep;

/// Back-propagates one recorded row step `s` (whose `pre` holds each gate's
/// pre-normalisation sum `z`) given `dh` and `dc`, as
/// [`row_backward`](super::cells::row_backward) does for the other cells.
pub(super) fn row_backward<T: Real>(
    v: &LstmVariant,
    acts: GateActivations,
    w: &LayerWeights<'_, T>,
    s: &RowStep<T>,
    (dh, dc): (&[T], &[T]),
    g: &mut OwnedLayerWeights<T>,
    dx: &mut [T],
) -> StateGrads<T> {
    let hid = s.c.len();
    let blk = LstmBlocks::of(v);
    let n = (blk.o + 1) * hid;
    let gamma = w.layer_norm.expect("checked by check_weights");
    let dm = projection_backward(v.proj_size.is_some(), w, g, &s.m, dh);
    // ∂L/∂z (products, peepholes) and ∂L/∂u (biases) of every gate row.
    let (mut dz, mut du) = (vec![T::ZERO; n], vec![T::ZERO; n]);
    // Gate block `k` from `∂L/∂a` (`da`, one per unit): fills its `du` and `dz`, adds
    // `∂L/∂γ`.
    let mut block = |k: usize, act: Activation, da: &[T], dz: &mut [T], du: &mut [T]| {
        let rows = k * hid..(k + 1) * hid;
        let nrm = normalize(&s.pre[rows.clone()]);
        for (j, r) in rows.clone().enumerate() {
            let u = scaled(
                nrm.n[j],
                gamma[r],
                w.b_ih.map(|b| b[r]),
                w.b_hh.map(|b| b[r]),
            );
            du[r] = gate_grad(da[j], u, s.act[r], act, None);
        }
        let d_gamma = &mut g.layer_norm.as_mut().expect("mirrors the weights")[rows.clone()];
        let d = normalize_backward(&nrm, &gamma[rows.clone()], &du[rows.clone()], d_gamma);
        dz[rows].copy_from_slice(&d);
    };
    let act = |k: usize, j: usize| s.act[k * hid + j];
    let p = |k: usize, j: usize| w.peephole.map_or(T::ZERO, |p| p[k * hid + j]);
    // m = o ⊙ h(c').
    let c_new = &s.extra;
    let tc: Vec<T> = c_new.iter().map(|c| c.gate_activation(acts.h)).collect();
    let da_o: Vec<T> = (0..hid).map(|j| dm[j] * tc[j]).collect();
    block(blk.o, acts.f, &da_o, &mut dz, &mut du);
    // ∂L/∂c' from c_t's own gradient, m, and o's peephole.
    let dcn: Vec<T> = (0..hid)
        .map(|j| {
            let dtc = c_new[j].gate_slope(acts.h, tc[j]);
            let d = dc[j] + dm[j] * act(blk.o, j) * dtc;
            if w.peephole.is_some() {
                d + dz[blk.o * hid + j] * p(blk.p_o, j)
            } else {
                d
            }
        })
        .collect();
    // c' = f ⊙ c + i ⊙ g (CIFG: i = 1 − f, so ∂c'/∂f = c − g).
    let i_of = |j: usize| blk.i.map_or(T::ONE - act(blk.f, j), |ki| act(ki, j));
    let da_f: Vec<T> = (0..hid)
        .map(|j| match blk.i {
            None => dcn[j] * (s.c[j] - act(blk.g, j)),
            Some(_) => dcn[j] * s.c[j],
        })
        .collect();
    block(blk.f, acts.f, &da_f, &mut dz, &mut du);
    if let Some(ki) = blk.i {
        let da_i: Vec<T> = (0..hid).map(|j| dcn[j] * act(blk.g, j)).collect();
        block(ki, acts.f, &da_i, &mut dz, &mut du);
    }
    let da_g: Vec<T> = (0..hid).map(|j| dcn[j] * i_of(j)).collect();
    block(blk.g, acts.g, &da_g, &mut dz, &mut du);
    let mut out = StateGrads {
        dh: vec![T::ZERO; s.h.len()],
        dc: vec![T::ZERO; hid],
        da: T::ZERO,
    };
    for j in 0..hid {
        let mut d = dcn[j] * act(blk.f, j);
        if w.peephole.is_some() {
            if let (Some(ki), Some(pi)) = (blk.i, blk.p_i) {
                d += dz[ki * hid + j] * p(pi, j);
            }
            d += dz[blk.f * hid + j] * p(blk.p_f, j);
        }
        out.dc[j] = d;
    }
    if let Some(gp) = g.peephole.as_mut() {
        for j in 0..hid {
            if let (Some(ki), Some(pi)) = (blk.i, blk.p_i) {
                gp[pi * hid + j] += dz[ki * hid + j] * s.c[j];
            }
            gp[blk.p_f * hid + j] += dz[blk.f * hid + j] * s.c[j];
            gp[blk.p_o * hid + j] += dz[blk.o * hid + j] * c_new[j];
        }
    }
    let d = recurrent(w, g, 0..n, &s.h, (&dz, &du));
    add(&mut out.dh, &d);
    input_side(w, g, &s.x, (&dz, &du), dx);
    out
}
