//! The derived bound every kernel backward path is held to, against the f64 reference
//! backward run on the same f32 values ([`grad_tolerance`]).
//!
//! # Derivation
//!
//! All norms are max norms over units, per batch row; `u = 2⁻²⁴`, `γ(n) = n u / (1 − n
//! u)` (Higham's bound on a sum of `n` products, Thm 3.1). The bound is first order
//! (products of two errors are dropped) and uses the problem's own numbers: its weight
//! norms, and the largest magnitudes the exact (f64 reference) computation meets
//! ([`LayerMaxima`]: states, `∂L/∂h`, `∂L/∂c`, gate and intermediate gradients; the f32
//! values differ from them by the bound itself, which is added to them). Two sources:
//!
//! 1. **The forward's values.** The backward reads states, pre-activations and
//!    recomputed activations of the f32 forward. A running bound over the steps and
//!    layers (the one of `reference/tests/props.rs`, with the actual row sums `Wx`,
//!    `Wh` of `|W_ih|`, `|W_hh|`, bias and peephole bounds, and the vector
//!    activations' ≤ 1.5 u) bounds the pre-activations' error by `e_z` and the states'
//!    by `e`. (Those are the standard functions' figures: the sigmoid's slope 1/4 and
//!    tanh's 1, values at most 1, 1.2e-7 own error. With ONNX activations each slot
//!    enters with its function's largest slope, largest value on the step's
//!    arguments and own error, which give back exactly these for the standard ones.)
//!    Every factor the backward multiplies by (an activation or its derivative
//!    `σ(1−σ)`, `1−t²`, `tanh(c')`) then errs by at most `δ = 2 (e_z + 2u)` (a
//!    derivative moves at most twice its activation). `relu'` and `clip`'s mask are
//!    exact: problems with a kink argument within `2 e_z` of the kink are excluded by
//!    the caller (the derivative there depends on the last bit).
//! 2. **The backward's own rounding.** Each gradient is a product of at most four
//!    factors (`(m + 1)·1.01 u` relative, one rounding each); each product with a
//!    transposed matrix is a dot product of `k` terms (`γ(k)` times the sum of |terms|,
//!    bounded by the matrix's largest absolute column sum `C` times the largest input).
//!
//! A product `g = x · f₁ ⋯ f_m` with `|x| ≤ X` (error `E`) and `|f_i| ≤ F_i` (error `δ`)
//! errs by at most `E ∏F + X δ Σ_i ∏_{j≠i} F_j + (m + 1)·1.01 u X ∏F`. Applying that
//! to each line of a cell's backward (`cells/<cell>/backward.rs`) gives, per step, the
//! error of `∂L/∂h`, `∂L/∂c` and the gate gradients, carried backwards over the `T`
//! steps as running maxima (`layer`). From those:
//!
//! - `∂W = Σ_{T·B rows} gate gradient ⊗ operand` errs by `R (E_g X + M_g e_X) + γ(R) R
//!   M_g X` (`R = T·B`, operand bound `X`, its error `e_X`), biases likewise with
//!   `X = 1`, peepholes with `X = |c|`;
//! - `∂x` (and the lower layer's `∂L/∂y`) `= Σ gate gradient · W_ih` by `C_ih E_g +
//!   γ(D G H) C_ih M_g`.
//!
//! Being worst-case, the bound grows geometrically with `T` where `C > 1`, so the
//! backward tests draw `W_hh` and `W_ih` with bounded column sums as well as row sums
//! (the transposed products contract) and inputs and upstream gradients in ±1;
//! `rtol = 8 u` covers the last rounding of large values. A test checks that the bound
//! stays well below the gradients themselves (median 0.3%, at most 25%), so it bites.

pub use crate::backward::LayerMaxima;
use crate::{Activation, CellKind, GateCoupling, OwnedLayerWeights};

use super::problem::Problem;

const U: f64 = 1.0 / (1u64 << 24) as f64;

fn gamma(n: usize) -> f64 {
    let nu = n as f64 * U;
    nu / (1.0 - nu)
}

/// The absolute error allowed for each kind of gradient (`rtol` for all).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GradTolerance {
    /// `∂L/∂x`.
    pub dx: f64,
    /// `∂L/∂h0`.
    pub dh0: f64,
    /// `∂L/∂c0`.
    pub dc0: f64,
    /// `∂W_ih`.
    pub w_ih: f64,
    /// `∂W_hh`.
    pub w_hh: f64,
    /// `∂b_ih`, `∂b_hh`.
    pub bias: f64,
    /// `∂W_hr`.
    pub w_hr: f64,
    /// Peepholes.
    pub peephole: f64,
    /// Relative part, for every output.
    pub rtol: f64,
    /// The forward's bound on every gate pre-activation's error (`e_z` of the module
    /// docs): where a `relu` or `clip` argument lies within `2 e_z` of its kink, the
    /// derivative depends on the last bits of the forward and the bound does not apply.
    pub e_z: f64,
}

impl GradTolerance {
    /// `(atol, rtol)` for a parameter part named as
    /// [`named_parts`](super::golden::named_parts) names it.
    pub fn for_part(&self, name: &str) -> (f64, f64) {
        let a = match name {
            "w_ih" => self.w_ih,
            "w_hh" => self.w_hh,
            "b_ih" | "b_hh" => self.bias,
            "w_hr" => self.w_hr,
            _ => self.peephole,
        };
        (a, self.rtol)
    }
}

fn max_abs(v: &[f32]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(f64::from(x.abs())))
}

/// Largest absolute column sum of a `[rows, cols]` matrix, over rows `rows`.
fn col_sum(w: &[f32], cols: usize, rows: std::ops::Range<usize>) -> f64 {
    (0..cols)
        .map(|c| {
            rows.clone()
                .map(|r| f64::from(w[r * cols + c].abs()))
                .sum::<f64>()
        })
        .fold(0.0, f64::max)
}

/// Largest absolute row sum.
fn row_sum(w: &[f32], cols: usize) -> f64 {
    w.chunks(cols.max(1))
        .map(|r| r.iter().map(|x| f64::from(x.abs())).sum::<f64>())
        .fold(0.0, f64::max)
}

/// Magnitude and error of a quantity.
#[derive(Clone, Copy, Debug, Default)]
struct Me {
    m: f64,
    e: f64,
}

/// `x · f₁ ⋯ f_m` with factor bounds `f` (each factor erring by `delta`).
fn product(x: Me, f: &[f64], delta: f64) -> Me {
    let all: f64 = f.iter().product();
    let others: f64 = (0..f.len())
        .map(|i| {
            f.iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, v)| v)
                .product::<f64>()
        })
        .sum();
    let m = x.m * all;
    Me {
        m,
        e: x.e * all + x.m * delta * others + (f.len() + 1) as f64 * 1.01 * U * m,
    }
}

/// A product with a transposed matrix of largest column sum `c` over `k` terms.
fn matvec(x: Me, c: f64, k: usize) -> Me {
    Me {
        m: c * x.m,
        e: c * x.e + gamma(k) * c * x.m,
    }
}

/// A sum of terms (one rounding per term).
fn sum(terms: &[Me]) -> Me {
    let m: f64 = terms.iter().map(|t| t.m).sum();
    let e: f64 = terms.iter().map(|t| t.e).sum();
    Me {
        m,
        e: e + 1.01 * U * terms.len() as f64 * m,
    }
}

/// What one layer's backward bound needs of its weights (maxima over directions).
struct LayerNorms {
    /// Column sums of `W_hh`: all gate rows, rows of r and z (GRU), rows of n (GRU).
    c_hh: f64,
    c_rz: f64,
    c_n: f64,
    /// Column sum of `W_ih` over both directions' rows.
    c_ih: f64,
    /// Column sum of `W_hr`, peephole bound, the GRU's bound on `W_hn h + b_hn`.
    c_hr: f64,
    p: f64,
    s_hn: f64,
}

fn norms(p: &Problem, layer: usize, hm: f64) -> LayerNorms {
    let cfg = &p.cfg;
    let (nd, h, ho) = (cfg.num_directions(), cfg.hidden_size, cfg.output_size());
    let g = cfg.gates();
    let sets: &[OwnedLayerWeights<f32>] = &p.weights[layer * nd..(layer + 1) * nd];
    let fold = |f: &dyn Fn(&OwnedLayerWeights<f32>) -> f64| sets.iter().map(f).fold(0.0, f64::max);
    let il = cfg.layer_input_size(layer);
    let c_ih = (0..il)
        .map(|c| {
            sets.iter()
                .map(|w| {
                    (0..g * h)
                        .map(|r| f64::from(w.w_ih[r * il + c].abs()))
                        .sum::<f64>()
                })
                .sum::<f64>()
        })
        .fold(0.0, f64::max);
    LayerNorms {
        c_hh: fold(&|w| col_sum(&w.w_hh, ho, 0..g * h)),
        c_rz: fold(&|w| col_sum(&w.w_hh, ho, 0..(2 * h).min(g * h))),
        c_n: fold(&|w| col_sum(&w.w_hh, ho, (2 * h).min(g * h)..g * h)),
        c_ih,
        c_hr: fold(&|w| w.w_hr.as_deref().map_or(0.0, |r| col_sum(r, h, 0..ho))),
        p: fold(&|w| w.peephole.as_deref().map_or(0.0, max_abs)),
        s_hn: fold(&|w| row_sum(&w.w_hh, ho) * hm + w.b_hh.as_deref().map_or(0.0, max_abs)),
    }
}

/// Errors of one layer's backward (running maxima over its steps).
#[derive(Default)]
struct LayerBound {
    /// `∂L/∂h` after a step, `∂L/∂h0`, `∂L/∂c`, gate gradients (input side), their
    /// recurrent side.
    h: f64,
    h0: f64,
    c: f64,
    g: f64,
    gh: f64,
}

/// The error bound of one layer's backward: `m` are the largest magnitudes the exact
/// backward meets (the f64 reference's), `e_y` the error of the layer's `∂L/∂y`.
fn layer(
    p: &Problem,
    n: &LayerNorms,
    m: &LayerMaxima,
    e_y: f64,
    hm: f64,
    cm: f64,
    delta: f64,
) -> LayerBound {
    let cfg = &p.cfg;
    let (h, ho) = (cfg.hidden_size, cfg.output_size());
    let k = cfg.gates() * h;
    let lbr = cfg.cell.gru().is_some_and(|v| v.linear_before_reset);
    // The transposed product of each step: all gates, or r and z (reset-before GRU).
    let c_prod = match cfg.cell {
        CellKind::Gru(_) if !lbr => n.c_rz,
        _ => n.c_hh,
    };
    let me = |m: f64, e: f64| Me { m: m + e, e };
    let mut b = LayerBound::default();
    let (mut e_gh, mut e_carry, mut e_c) = (0.0, 0.0, 0.0);
    for _ in 0..p.shape.steps {
        let dh = sum(&[
            matvec(me(m.gate, e_gh), c_prod, k),
            me(m.dh, e_carry),
            me(m.dy, e_y),
        ]);
        let dh = me(m.dh, dh.e);
        b.h = b.h.max(dh.e);
        let (e_g, gh, carry) = match cfg.cell {
            CellKind::Rnn(_) => {
                let g = product(dh, &[1.0], delta).e;
                (g, g, 0.0)
            }
            CellKind::Lstm(v) => {
                let dm = match v.proj_size {
                    Some(_) => matvec(dh, n.c_hr, ho),
                    None => dh,
                };
                let dm = me(m.inner, dm.e);
                let d_o = product(dm, &[1.0, 0.25], delta);
                let dcn = sum(&[
                    me(m.dc, e_c),
                    product(dm, &[1.0, 1.0], delta),
                    product(d_o, &[n.p], 0.0),
                ]);
                let dcn = me(m.inner, dcn.e);
                let (d_i, d_f) = if v.coupling == GateCoupling::None {
                    (
                        product(dcn, &[1.0, 0.25], delta),
                        product(dcn, &[cm, 0.25], delta),
                    )
                } else {
                    // The one computed gate of a coupled pair (`input_forget`'s i,
                    // CIFG's f) is scaled by `g − c` (or `c − g`): at most `1 + |c|`,
                    // erring by the activation's and the state's error and one rounding.
                    let d = product(dcn, &[cm + 1.0, 0.25], 2.0 * delta + U * (cm + 1.0));
                    (d, d)
                };
                let d_g = product(dcn, &[1.0, 1.0], delta);
                e_c = sum(&[
                    product(dcn, &[1.0], delta),
                    product(d_i, &[n.p], 0.0),
                    product(d_f, &[n.p], 0.0),
                ])
                .e;
                b.c = b.c.max(e_c);
                let g = d_o.e.max(d_i.e).max(d_f.e).max(d_g.e);
                (g, g, 0.0)
            }
            _ => {
                // (h − n) errs by a state error plus an activation error: 2δ.
                let d_n = product(dh, &[1.0, 1.0], delta);
                let d_z = product(dh, &[hm + 1.0, 0.25], 2.0 * delta);
                let direct = product(dh, &[1.0], delta);
                let d_n = me(m.gate, d_n.e);
                if lbr {
                    let d_r = product(d_n, &[n.s_hn, 0.25], delta);
                    let d_nr = product(d_n, &[1.0], delta);
                    let g = d_r.e.max(d_z.e).max(d_n.e);
                    (g, g.max(d_nr.e), direct.e)
                } else {
                    let d_rh = me(m.inner, matvec(d_n, n.c_n, h).e);
                    let d_r = product(d_rh, &[hm, 0.25], delta);
                    let direct = sum(&[direct, product(d_rh, &[1.0], delta)]);
                    (d_r.e.max(d_z.e).max(d_n.e), d_r.e.max(d_z.e), direct.e)
                }
            }
        };
        b.g = b.g.max(e_g);
        b.gh = b.gh.max(gh);
        e_gh = gh;
        e_carry = carry;
    }
    b.h0 = sum(&[matvec(me(m.gate, e_gh), c_prod, k), me(m.dh, e_carry)]).e;
    b
}

/// The forward's errors and magnitudes for `p`, from its actual weight norms (a
/// running bound like the reference's own f32-vs-f64 bound in `reference/tests/props.rs`,
/// plus the vector activations' ≤ 1.5 u): states err by at most `e`, pre-activations by
/// `e_z`.
struct ForwardBound {
    e: f64,
    e_z: f64,
}

fn forward_bound(p: &Problem, maxima: &[LayerMaxima]) -> ForwardBound {
    let cfg = &p.cfg;
    let (hid, ho, nd) = (cfg.hidden_size, cfg.output_size(), cfg.num_directions());
    let (mut x_mag, mut e_x) = (max_abs(&p.x), 0.0f64);
    let mut out = ForwardBound { e: 0.0, e_z: 0.0 };
    for (layer, mx) in maxima.iter().enumerate().take(cfg.num_layers) {
        let il = cfg.layer_input_size(layer);
        let sets = &p.weights[layer * nd..(layer + 1) * nd];
        let fold =
            |f: &dyn Fn(&OwnedLayerWeights<f32>) -> f64| sets.iter().map(f).fold(0.0, f64::max);
        let wx = fold(&|w| row_sum(&w.w_ih, il));
        let wh = fold(&|w| row_sum(&w.w_hh, ho));
        let bb = fold(&|w| {
            w.b_ih.as_deref().map_or(0.0, max_abs) + w.b_hh.as_deref().map_or(0.0, max_abs)
        });
        let pp = fold(&|w| w.peephole.as_deref().map_or(0.0, max_abs));
        let wr = fold(&|w| w.w_hr.as_deref().map_or(0.0, |r| row_sum(r, hid)));
        let n = (il + ho + 3) as f64;
        // The exact states' largest magnitudes (the f32 ones differ by the bound itself,
        // a second-order change).
        let (hm, cm) = (mx.h, mx.c);
        let (mut e_h, mut e_c) = (0.0f64, 0.0f64);
        for _ in 0..p.shape.steps {
            let s = wx * x_mag + wh * hm + bb + pp * cm;
            let e_z = 1.01 * n * U * s + wx * e_x + wh * e_h + pp * e_c;
            out.e_z = out.e_z.max(e_z);
            // The slots' functions (standard: the sigmoid, tanh, tanh): largest slope
            // `d`, largest value `v` on this step's arguments, own error `a`.
            let (f, g, h) = (slot(cfg, 0, s), slot(cfg, 1, s), slot(cfg, 2, cm));
            let (e_f, e_g) = (f.d * e_z + f.a, g.d * e_z + g.a);
            let e_h_new = match cfg.cell {
                CellKind::Rnn(_) => e_f,
                CellKind::Lstm(v) => {
                    // c' = f ⊙ c + i ⊙ g; a coupled gate `1 − f` is at most 1 for a gate
                    // in [0, 1], else 1 + |f|.
                    let coupled = v.coupling != GateCoupling::None;
                    let gate = if f.unit || !coupled { f.v } else { 1.0 + f.v };
                    let e_c_new =
                        e_f * (cm + g.v) + gate * (e_g + e_c) + 3.0 * U * gate * (cm + g.v);
                    e_c = e_c.max(e_c_new);
                    // m = o ⊙ h(c'), o reading c' through its peephole.
                    let e_m = (e_f + f.d * pp * e_c) * h.v
                        + f.v * (h.d * e_c + h.a)
                        + 2.0 * U * f.v * h.v;
                    match v.proj_size {
                        Some(_) => wr * e_m + 1.01 * (hid as f64 + 1.0) * U * wr,
                        None => e_m,
                    }
                }
                _ => {
                    // n's argument holds r ⊙ (W_hn h + b_hn) (or W_hn (r ⊙ h)).
                    let e_n = g.d * (e_z + e_f * s) + g.a;
                    // h' = n + z (h − n): a convex combination for z in [0, 1].
                    let (gn, gh) = if f.unit { (1.0, 1.0) } else { (1.0 + f.v, f.v) };
                    e_f * (g.v + hm) + gn * e_n + gh * e_h + 4.0 * U * (g.v + hm) * gn
                }
            };
            e_h = e_h.max(e_h_new);
        }
        out.e = out.e.max(e_h).max(e_c);
        x_mag = hm;
        e_x = e_h;
    }
    out
}

/// What the forward bound needs of the function of ONNX slot `k` (0: f, 1: g, 2: h) on
/// arguments of magnitude at most `m`, the worst over directions.
struct Slot {
    /// Largest slope.
    d: f64,
    /// Largest |value|.
    v: f64,
    /// Own error: 2u for the standard functions (their ≤ 1.2e-7 absolute), 0 for relu,
    /// else `2u + 8u·v` (a few ulp of the value and a rounded product).
    a: f64,
    /// Values in [0, 1] (the sigmoid, a hard sigmoid): updates stay convex.
    unit: bool,
}

fn slot(cfg: &crate::RnnConfig, k: usize, m: f64) -> Slot {
    let mut out = Slot {
        d: 0.0,
        v: 0.0,
        a: 0.0,
        unit: true,
    };
    for dir in 0..cfg.num_directions() {
        let acts = cfg.gate_activations(dir);
        let f = [acts.f, acts.g, acts.h][k];
        let v = f.bound(m);
        let a = match f {
            Activation::Relu => 0.0,
            Activation::Sigmoid | Activation::Tanh => 2.0 * U,
            _ => 2.0 * U + 8.0 * U * v,
        };
        out.d = out.d.max(f.max_slope());
        out.v = out.v.max(v);
        out.a = out.a.max(a);
        out.unit &= matches!(f, Activation::Sigmoid | Activation::HardSigmoid { .. });
    }
    out
}

/// The bound (see the module docs) for the backward of `p`, whose exact backward (the
/// f64 reference's, with the caller's upstream gradients) met the magnitudes `maxima`
/// (one per layer, first layer first: [`maxima`]).
pub fn grad_tolerance(p: &Problem, maxima: &[LayerMaxima]) -> GradTolerance {
    let cfg = &p.cfg;
    let r = p.shape.steps * p.shape.batch;
    let f = forward_bound(p, maxima);
    let e = f.e;
    let delta = 2.0 * (f.e_z + 2.0 * U);
    let mut tol = GradTolerance {
        rtol: 8.0 * U,
        e_z: f.e_z,
        ..GradTolerance::default()
    };
    let mut e_y = 0.0;
    for l in (0..cfg.num_layers).rev() {
        let m = &maxima[l];
        // The f32 states' magnitudes: the exact ones plus their error.
        let (hm, cm) = (m.h + e, m.c + e);
        let n = norms(p, l, hm);
        let b = layer(p, &n, m, e_y, hm, cm, delta);
        let (x, e_x) = if l == 0 {
            (max_abs(&p.x), 0.0)
        } else {
            (maxima[l - 1].h + e, e)
        };
        let rows = r as f64;
        let wgrad = |mg: f64, eg: f64, x: f64, e_x: f64| {
            rows * (eg * x + mg * e_x) + gamma(r) * rows * mg * x
        };
        tol.w_ih = tol.w_ih.max(wgrad(m.gate, b.g, x, e_x));
        tol.w_hh = tol
            .w_hh
            .max(wgrad(m.gate, b.gh.max(b.g), hm, e + delta * hm));
        tol.bias = tol.bias.max(wgrad(m.gate, b.gh.max(b.g), 1.0, 0.0));
        tol.w_hr = tol.w_hr.max(wgrad(m.dh, b.h, 1.0, delta));
        tol.peephole = tol.peephole.max(wgrad(m.gate, b.g, cm, e));
        tol.dh0 = tol.dh0.max(b.h0);
        tol.dc0 = tol.dc0.max(b.c);
        let gates = cfg.num_directions() * cfg.gates() * cfg.hidden_size;
        e_y = matvec(Me { m: m.gate, e: b.g }, n.c_ih, gates).e;
        if l == 0 {
            tol.dx = e_y;
        }
    }
    tol
}

/// The largest magnitudes of the exact (f64 reference) backward of `p` with upstream
/// gradients `grads`, one entry per layer, with the gradients themselves.
pub fn maxima(
    p: &Problem,
    grads: crate::OutputGrads<'_, f32>,
) -> (crate::Gradients<f64>, Vec<LayerMaxima>) {
    let to = super::convert::to_f64;
    let owned: Vec<_> = p.weights.iter().map(|w| w.map(to)).collect();
    let (x, h0, c0) = (to(&p.x), p.h0.as_deref().map(to), p.c0.as_deref().map(to));
    let att = p.attention.as_deref().map(to);
    let (dy, dh_n, dc_n) = (to(grads.dy), grads.dh_n.map(to), grads.dc_n.map(to));
    let mut m = Vec::new();
    let g = crate::backward::backward_traced(
        &p.cfg,
        &crate::views(&owned),
        p.shape,
        crate::SequenceInput {
            x: &x,
            h0: h0.as_deref(),
            c0: c0.as_deref(),
            seq_lens: p.seq_lens.as_deref(),
            attention: att.as_deref(),
        },
        crate::OutputGrads {
            dy: &dy,
            dh_n: dh_n.as_deref(),
            dc_n: dc_n.as_deref(),
        },
        Some(&mut m),
    )
    .expect("the problem is valid");
    (g, m)
}
