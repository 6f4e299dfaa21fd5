//! The backward pass of one step of one cell for one batch row: from the gradients of
//! `h_t` (and `c_t`) to those of every gate's pre-activation, then to the parameters,
//! `x_t`, `h_{t-1}` and `c_{t-1}`. Follows the equations of the golden README line by
//! line, in the order the forward computed them, reversed.

use crate::activation::Activation;
use crate::cell_kind::{CellKind, GateCoupling, GruVariant, LstmBlocks, LstmVariant};
use crate::real::Real;
use crate::spec::RnnConfig;
use crate::weights::{LayerWeights, OwnedLayerWeights};

use super::tape::RowStep;

/// The gradient of a gate's pre-activation `pre` (before clip) from that of its
/// activation `a = act(clip(pre))`: zero where `clip` clamped it (`|pre| > clip`, the
/// convention of `torch.clamp`), else `d · act'(pre)` ([`Activation::derivative`]:
/// `a (1 - a)` and `1 - a²` for the sigmoid and tanh, `pre > 0` for relu).
pub(super) fn gate_grad<T: Real>(d: T, pre: T, a: T, act: Activation, clip: Option<T>) -> T {
    if clip.is_some_and(|c| pre > c || pre < -c) {
        return T::ZERO;
    }
    if act == Activation::Relu {
        // Passed or stopped, no product (exactly the standard relu cell's).
        return if pre > T::ZERO { d } else { T::ZERO };
    }
    d * pre.gate_slope(act, a)
}

/// The gradients of one row's step that leave the cell: `d h_{t-1}` and `d c_{t-1}`.
pub(crate) struct StateGrads<T> {
    pub(crate) dh: Vec<T>,
    pub(crate) dc: Vec<T>,
    /// AUGRU: `∂L/∂a` of this row's attention (zero for every other cell).
    pub(crate) da: T,
}

/// Back-propagates one recorded row step `s` of `cfg.cell` (a one-layer config whose
/// `input_size` is the layer's input width) given `dh = ∂L/∂h_t` (`H_out`) and, for an
/// LSTM, `dc = ∂L/∂c_t` (`H`): adds the parameter gradients to `g` and `∂L/∂x_t` to
/// `dx`, and returns the gradients of the previous state.
pub(crate) fn row_backward<T: Real>(
    cfg: &RnnConfig,
    w: &LayerWeights<'_, T>,
    s: &RowStep<T>,
    dh: &[T],
    dc: &[T],
    g: &mut OwnedLayerWeights<T>,
    dx: &mut [T],
) -> StateGrads<T> {
    let hid = cfg.hidden_size;
    let cl = cfg.clip.map(|c| T::from_f64(f64::from(c)));
    let acts = cfg.gate_activations(0);
    let n = cfg.gates() * hid;
    // ∂L/∂(input part) and ∂L/∂(recurrent part) of every gate row; they differ only
    // for the n gate of the linear-before-reset GRU (whose recurrent part is scaled by r).
    let mut d_x = vec![T::ZERO; n];
    let mut d_h = vec![T::ZERO; n];
    let mut out = StateGrads {
        dh: vec![T::ZERO; s.h.len()],
        dc: vec![T::ZERO; s.c.len()],
        da: T::ZERO,
    };
    match cfg.cell {
        CellKind::Lstm(v) if v.layer_norm => {
            return super::layer_norm::row_backward(&v, acts, w, s, (dh, dc), g, dx);
        }
        CellKind::Rnn(_) => {
            for j in 0..hid {
                d_x[j] = gate_grad(dh[j], s.pre[j], s.act[j], acts.f, cl);
            }
            d_h.clone_from(&d_x);
        }
        CellKind::Lstm(v @ LstmVariant { proj_size, .. }) => {
            let blk = LstmBlocks::of(&v);
            // h = W_hr m (projection) or h = m.
            let dm = projection_backward(proj_size.is_some(), w, g, &s.m, dh);
            let p = |k: usize, j: usize| w.peephole.map_or(T::ZERO, |p| p[k * hid + j]);
            for j in 0..hid {
                let (rf, rg, ro) = (blk.f * hid + j, blk.g * hid + j, blk.o * hid + j);
                let (f, gg, o) = (s.act[rf], s.act[rg], s.act[ro]);
                let (c_old, c_new) = (s.c[j], s.extra[j]);
                let tc = c_new.gate_activation(acts.h);
                // m = o ⊙ h(c') (h = tanh by default); o sees c' through its peephole.
                let d_o = gate_grad(dm[j] * tc, s.pre[ro], o, acts.f, cl);
                let dtc = c_new.gate_slope(acts.h, tc);
                let dcn = dc[j] + dm[j] * o * dtc + d_o * p(blk.p_o, j);
                // c' = f ⊙ c + i ⊙ g; i and f see c through their peepholes. Coupled
                // (`input_forget`, f = 1 − i): c' = c + i ⊙ (g − c), and the forget
                // row acts nowhere (zero gradient). CIFG (i = 1 − f): c' = g + f ⊙
                // (c − g), and there is no input gate row.
                let (i, d_i, d_f) = match blk.i {
                    None => {
                        let d_f = gate_grad(dcn * (c_old - gg), s.pre[rf], f, acts.f, cl);
                        (T::ONE - f, T::ZERO, d_f)
                    }
                    Some(ki) => {
                        let (ri, i) = (ki * hid + j, s.act[ki * hid + j]);
                        let (d_i, d_f) = if v.coupling == GateCoupling::InputForget {
                            let d_i = gate_grad(dcn * (gg - c_old), s.pre[ri], i, acts.f, cl);
                            (d_i, T::ZERO)
                        } else {
                            (
                                gate_grad(dcn * gg, s.pre[ri], i, acts.f, cl),
                                gate_grad(dcn * c_old, s.pre[rf], f, acts.f, cl),
                            )
                        };
                        d_x[ri] = d_i;
                        d_h[ri] = d_i;
                        (i, d_i, d_f)
                    }
                };
                let d_g = gate_grad(dcn * i, s.pre[rg], gg, acts.g, cl);
                let d_ip = blk.p_i.map_or(T::ZERO, |pi| d_i * p(pi, j));
                out.dc[j] = dcn * f + d_ip + d_f * p(blk.p_f, j);
                if let Some(gp) = g.peephole.as_mut() {
                    if let Some(pi) = blk.p_i {
                        gp[pi * hid + j] += d_i * c_old;
                    }
                    gp[blk.p_f * hid + j] += d_f * c_old;
                    gp[blk.p_o * hid + j] += d_o * c_new;
                }
                for (r, d) in [(rf, d_f), (rg, d_g), (ro, d_o)] {
                    d_x[r] = d;
                    d_h[r] = d;
                }
            }
        }
        CellKind::Gru(GruVariant {
            linear_before_reset,
            ..
        }) => {
            // h' = n + z' (h - n) with z' = z (AUGRU: (1 − a) z): ∂/∂n = 1 - z',
            // ∂/∂z' = h - n, ∂/∂h = z'; ∂z'/∂z = 1 − a, ∂z'/∂a = −z.
            let mut dr = vec![T::ZERO; hid];
            for j in 0..hid {
                let (rn, r, z, nn) = (2 * hid + j, s.act[j], s.act[hid + j], s.act[2 * hid + j]);
                let (zp, dzp) = match s.att {
                    Some(a) => ((T::ONE - a) * z, dh[j] * (s.h[j] - nn)),
                    None => (z, dh[j] * (s.h[j] - nn)),
                };
                let d_n = gate_grad(dh[j] * (T::ONE - zp), s.pre[rn], nn, acts.g, cl);
                let dz = match s.att {
                    Some(a) => {
                        out.da = out.da - dzp * z;
                        dzp * (T::ONE - a)
                    }
                    None => dzp,
                };
                d_x[hid + j] = gate_grad(dz, s.pre[hid + j], z, acts.f, cl);
                d_x[rn] = d_n;
                let z = zp;
                out.dh[j] = dh[j] * z;
                if linear_before_reset {
                    // pre_n = x part + r ⊙ (W_hn h + b_hn).
                    dr[j] = d_n * s.extra[j];
                    d_h[rn] = d_n * r;
                } else {
                    d_h[rn] = d_n;
                }
            }
            if !linear_before_reset {
                // pre_n = x part + W_hn (r ⊙ h) + b_hn: the product's input is r ⊙ h.
                let rows = 2 * hid..3 * hid;
                let d_rh = recurrent(w, g, rows, &s.m, (&d_h, &d_h));
                for j in 0..hid {
                    dr[j] = d_rh[j] * s.h[j];
                    out.dh[j] += d_rh[j] * s.act[j];
                }
            }
            for j in 0..hid {
                d_x[j] = gate_grad(dr[j], s.pre[j], s.act[j], acts.f, cl);
            }
            // Peephole GRU: r and z see h through p ⊙ h.
            if let Some(p) = w.peephole {
                for j in 0..hid {
                    let (d_r, d_z) = (d_x[j], d_x[hid + j]);
                    out.dh[j] += d_r * p[j] + d_z * p[hid + j];
                    if let Some(gp) = g.peephole.as_mut() {
                        gp[j] += d_r * s.h[j];
                        gp[hid + j] += d_z * s.h[j];
                    }
                }
            }
            d_h[..2 * hid].copy_from_slice(&d_x[..2 * hid]);
            if linear_before_reset {
                let d = recurrent(w, g, 0..3 * hid, &s.h, (&d_h, &d_h));
                add(&mut out.dh, &d);
            } else {
                let d = recurrent(w, g, 0..2 * hid, &s.h, (&d_h, &d_h));
                add(&mut out.dh, &d);
            }
            input_side(w, g, &s.x, (&d_x, &d_x), dx);
            return out;
        }
    }
    let d = recurrent(w, g, 0..n, &s.h, (&d_h, &d_h));
    add(&mut out.dh, &d);
    input_side(w, g, &s.x, (&d_x, &d_x), dx);
    out
}

/// An LSTM's `∂L/∂m` from `dh` through `h = W_hr m` (adding `∂W_hr`), or `h = m`.
pub(super) fn projection_backward<T: Real>(
    projected: bool,
    w: &LayerWeights<'_, T>,
    g: &mut OwnedLayerWeights<T>,
    m: &[T],
    dh: &[T],
) -> Vec<T> {
    if !projected {
        return dh.to_vec();
    }
    let hid = m.len();
    let w_hr = w.w_hr.expect("checked by check_weights");
    let g_hr = g.w_hr.as_mut().expect("mirrors the weights");
    let mut dm = vec![T::ZERO; hid];
    for (r, &d) in dh.iter().enumerate() {
        for j in 0..hid {
            g_hr[r * hid + j] += d * m[j];
            dm[j] += d * w_hr[r * hid + j];
        }
    }
    dm
}

/// `a += b` element-wise.
pub(super) fn add<T: Real>(a: &mut [T], b: &[T]) {
    for (a, &b) in a.iter_mut().zip(b) {
        *a += b;
    }
}

/// The input side of every gate row: `∂W_ih[r] += d[r] x`, `∂b_ih[r] += db[r]`,
/// `dx += d[r] W_ih[r]` (`db` is `d`, except where the bias joins after a layer norm).
pub(super) fn input_side<T: Real>(
    w: &LayerWeights<'_, T>,
    g: &mut OwnedLayerWeights<T>,
    x: &[T],
    (d, db): (&[T], &[T]),
    dx: &mut [T],
) {
    let k = x.len();
    for (r, (&dr, &dbr)) in d.iter().zip(db).enumerate() {
        for (c, &xc) in x.iter().enumerate() {
            g.w_ih[r * k + c] += dr * xc;
            dx[c] += dr * w.w_ih[r * k + c];
        }
        if let Some(b) = g.b_ih.as_mut() {
            b[r] += dbr;
        }
    }
}

/// The recurrent side of gate rows `rows`, whose product input was `v` (`h`, or
/// `r ⊙ h`): `∂W_hh[r] += d[r] v`, `∂b_hh[r] += db[r]` (`db` as in [`input_side`]);
/// returns `Σ_r d[r] W_hh[r]`.
pub(super) fn recurrent<T: Real>(
    w: &LayerWeights<'_, T>,
    g: &mut OwnedLayerWeights<T>,
    rows: std::ops::Range<usize>,
    v: &[T],
    (d, db): (&[T], &[T]),
) -> Vec<T> {
    let k = v.len();
    let mut out = vec![T::ZERO; k];
    for r in rows {
        for (c, &vc) in v.iter().enumerate() {
            g.w_hh[r * k + c] += d[r] * vc;
            out[c] += d[r] * w.w_hh[r * k + c];
        }
        if let Some(b) = g.b_hh.as_mut() {
            b[r] += db[r];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `clip` stops the gradient only strictly outside `[-c, c]` (`torch.clamp`'s
    /// backward passes it at the bounds); relu passes it only for `pre > 0` (at 0
    /// PyTorch's `threshold_backward` gives 0).
    #[test]
    fn gate_grad_passes_at_the_clip_bounds_and_stops_relu_at_zero() {
        let (d, c) = (2.0f64, 0.5f64);
        for pre in [c, -c] {
            let a = 1.0 / (1.0 + (-pre).exp());
            let want = d * a * (1.0 - a);
            assert_eq!(
                gate_grad(d, pre, a, Activation::Sigmoid, Some(c)),
                want,
                "{pre}"
            );
        }
        for pre in [c + 1e-9, -c - 1e-9] {
            let a = 1.0 / (1.0 + (-pre).exp());
            assert_eq!(
                gate_grad(d, pre, a, Activation::Sigmoid, Some(c)),
                0.0,
                "{pre}"
            );
        }
        assert_eq!(gate_grad(d, 0.0, 0.0, Activation::Relu, None), 0.0);
        assert_eq!(gate_grad(d, 1e-300, 1e-300, Activation::Relu, None), d);
        assert_eq!(gate_grad(d, -1e-300, 0.0, Activation::Relu, None), 0.0);
    }
}
