//! One step of one layer and direction with int8 weights, for a batch: the naive
//! oracle of the kernels' int8 path. Integer sums are exact (`i64`); each product is
//! scaled as ONNX Runtime scales it, `f32(s_a · s_w[n]) · f32(Σ)` in `f32`; everything
//! after (sums of the parts, biases, peepholes, clip, activations, the cell update) is
//! computed in a [`Real`] (`f64` for the oracle; the test kit's `Bounded` numbers also
//! carry the bound on an `f32` implementation's error), on the cell equations of the
//! golden README.

use crate::activation::GateActivations;
use crate::cell::check_attention;
use crate::cell_kind::{CellKind, GruVariant, LstmBlocks, LstmVariant};
use crate::error::{Error, Result};
use crate::layer_norm::{lstm_row_on_sums, normalize, NormWeights};
use crate::spec::RnnConfig;
use crate::Real;

use super::params::{
    block_params, block_range, quantize, tie_margin, ActivationQuant, BlockParams,
};
use super::weights::{QuantizedLayerWeights, QuantizedMatrix};

/// The new state after one int8 step.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantStepOutput<R = f64> {
    /// `h_t`: `[B, H_out]`.
    pub h: Vec<R>,
    /// `c_t`: `[B, H]` for an LSTM, else empty.
    pub c: Vec<R>,
    /// Per element of `h`: how far an implementation that computes the step's *second*
    /// operand (an LSTM projection's `o ⊙ tanh(c')`, a reset-before GRU's `r ⊙ h`) in
    /// `f32` may differ from this result because one of those values lies so close to a
    /// rounding boundary that its code can come out one step apart (0 almost
    /// everywhere; see [`second_operand_error`]), plus the difference its scale makes
    /// when that implementation's range differs by those errors. The step's `x` and `h`
    /// are inputs, so their codes and scales are exact.
    pub slack: Vec<f64>,
}

/// The parameters of each row of an operand `a` (`rows × k`): its own range per row,
/// or one range over all rows.
pub fn row_params(a: &[f32], k: usize, scheme: ActivationQuant) -> Vec<BlockParams> {
    let rows = a.len() / k.max(1);
    let q = scheme.qmax();
    if scheme.per_row() {
        a.chunks(k.max(1))
            .map(|r| block_params(block_range(r.iter().copied()), q))
            .collect()
    } else {
        vec![block_params(block_range(a.iter().copied()), q); rows]
    }
}

/// The int8 product `a × mᵀ` of the operand rows `a` (`rows × k`, row `b` with the
/// parameters `params[b]`) and the matrix `m` (`n × k`): element `(b, j)` is
/// `f32(s_b · s_m[j]) · f32(Σ_i (q(a[b,i]) − zp_b)(code[j,i] − zp_m[j]))`, in `f32`.
pub fn product(
    m: &QuantizedMatrix<'_>,
    n: usize,
    k: usize,
    a: &[f32],
    params: &[BlockParams],
    qmax: u8,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(params.len() * n);
    for (b, p) in params.iter().enumerate() {
        let codes: Vec<i64> = a[b * k..(b + 1) * k]
            .iter()
            .map(|&v| i64::from(quantize(v, *p, qmax)) - i64::from(p.zero_point))
            .collect();
        for j in 0..n {
            let (s_w, z_w) = m.row_params(j);
            let sum: i64 = codes
                .iter()
                .zip(&m.codes[j * k..(j + 1) * k])
                .map(|(&q, &w)| q * (i64::from(w) - i64::from(z_w)))
                .sum();
            out.push((p.scale * s_w) * sum as f32);
        }
    }
    out
}

/// A bound on how far an `f32` implementation's value of a computed operand element
/// can be from this oracle's, given the sum `terms` of the magnitudes of the
/// pre-activation terms it came from and the magnitudes of the state it multiplies:
/// a few roundings of the pre-activations (`2u·terms`, through activations of slope
/// at most 1) and of the activations themselves (at most 2.4 ulp, `simd::math`), the
/// products and the cell update. Generous by a factor of about 4 for the standard
/// functions; ONNX activations with slopes above 1 exceed it (the tests run the oracle
/// on error-tracking numbers, whose own bound is used instead).
pub fn second_operand_error(terms: f64, state: f64) -> f64 {
    let u = f64::powi(2.0, -24);
    16.0 * u * (1.0 + terms) * (1.0 + state)
}

/// The slack of the product `prod` (`rows × n`) of a computed operand `a` (`rows × k`)
/// whose elements an implementation may hold within `err` of these, added to `slack`
/// (`rows × n`):
///
/// - **codes**: for every element whose `a / s` lies within the deviation those errors
///   allow (its own, plus a moved range) of a rounding boundary, one code step times
///   each output's weight. When the zero point's own rounding is that close, every
///   element counts.
/// - **scale**: the block's `hi − lo` may differ by `2e` (`e` the largest error in the
///   block), so `s = (hi − lo) / qmax` by `2e / qmax`, and with the same codes the
///   product `f32(s · s_w) · f32(Σ)` by `|prod| (2e / (qmax s) + 8u)`: the relative
///   change of `s`, and the two roundings of `s` and the two of the product on each
///   side (`u = 2⁻²⁴`; counted as `2⁻²⁰`, which also covers the second-order terms).
#[allow(clippy::too_many_arguments)]
fn add_slack(
    m: &QuantizedMatrix<'_>,
    (n, k): (usize, usize),
    a: &[f32],
    err: &[f64],
    params: &[BlockParams],
    scheme: ActivationQuant,
    prod: &[f32],
    slack: &mut [f64],
) {
    let max_of = |v: &[f64]| v.iter().fold(0.0f64, |m, &e| m.max(e));
    let (all_err, all_lo) = (max_of(err), block_range(a.iter().copied()).0);
    let qmax = f64::from(scheme.qmax());
    for (b, p) in params.iter().enumerate() {
        let row = b * k..(b + 1) * k;
        let (e, lo) = if scheme.per_row() {
            (
                max_of(&err[row.clone()]),
                block_range(a[row].iter().copied()).0,
            )
        } else {
            (all_err, all_lo)
        };
        let s = f64::from(p.scale);
        let rel = 2.0 * e / (qmax * s) + f64::powi(2.0, -20);
        for j in 0..n {
            slack[b * n + j] += f64::from(prod[b * n + j]).abs() * rel;
        }
        // A moved extreme moves the range by up to 2e; every a / s then by up to
        // |a / s| * 2e / range <= 2e / s.
        let dev = 3.0 * e / s;
        // zp = round(-lo / s): if that rounding is close, every code may move.
        let zp_close = tie_margin(-lo, *p) < dev;
        for i in 0..k {
            if !zp_close && tie_margin(a[b * k + i], *p) >= dev {
                continue;
            }
            for j in 0..n {
                let (s_w, z_w) = m.row_params(j);
                let w = (f64::from(m.codes[j * k + i]) - f64::from(z_w)).abs();
                slack[b * n + j] += s * f64::from(s_w).abs() * w;
            }
        }
    }
}

/// One int8 step for `batch` rows whose input products `gx` (`[B, G·H]`, PyTorch gate
/// order, no biases) are already computed: the recurrent product of `h` (rows
/// quantized per `scheme`: per row, or one range over the batch), the gates, and the
/// second product of a projected LSTM or a reset-before GRU. The cell after the
/// products runs in `R` (`f64` for the oracle). An AUGRU takes its attention `att`
/// (`[B]`, one value per row; every other cell `None`), `z' = (1 − a) z` as in
/// [`step_with_attention`](crate::step_with_attention).
pub fn step_from_input_products<R: Real>(
    cfg: &RnnConfig,
    w: &QuantizedLayerWeights<'_>,
    scheme: ActivationQuant,
    gx: &[f32],
    (h, c, att): (&[f32], Option<&[R]>, Option<&[f32]>),
) -> Result<QuantStepOutput<R>> {
    // ONNX `activations`: f for the gates, g for the candidate, h for the LSTM output.
    let acts = cfg.gate_activations(0);
    let (hid, ho) = (cfg.hidden_size, cfg.output_size());
    let g = cfg.gates();
    let batch = gx.len() / (g * hid);
    check_attention(cfg, att.map(<[f32]>::len), batch, "[B]")?;
    let qmax = scheme.qmax();
    let gh = product(&w.w_hh, g * hid, ho, h, &row_params(h, ho, scheme), qmax);
    // The products, the biases and the inputs are values both sides hold exactly.
    let val = |v: f32| R::from_f64(f64::from(v));
    let opt = |b: Option<&[f32]>, r: usize| b.map_or(R::ZERO, |b| val(b[r]));
    let bias = |r: usize| opt(w.b_ih, r) + opt(w.b_hh, r);
    let clip = |v: R| match cfg.clip {
        Some(c) => v.clamp_to(R::from_f64(f64::from(c))),
        None => v,
    };
    let mag = |v: R| v.to_f64().abs();
    let mut out = QuantStepOutput {
        h: Vec::with_capacity(batch * ho),
        c: Vec::new(),
        slack: vec![0.0; batch * ho],
    };
    // The second operand (rows × H) with its error bounds, when the cell has one: the
    // tracked bound where `R` carries one, else `second_operand_error`'s estimate.
    let mut second: Vec<f32> = Vec::new();
    let mut second_err: Vec<f64> = Vec::new();
    let at = |b: usize, r: usize| b * g * hid + r;
    match cfg.cell {
        CellKind::Rnn(_) => {
            for b in 0..batch {
                for j in 0..hid {
                    let pre = clip(val(gx[at(b, j)]) + val(gh[at(b, j)]) + bias(j));
                    out.h.push(pre.gate_activation(acts.f));
                }
            }
        }
        CellKind::Lstm(
            v @ LstmVariant {
                proj_size,
                coupling,
                layer_norm,
                ..
            },
        ) => {
            let c = c.ok_or_else(|| Error::invalid("c", "the cell state [B, H]", "None"))?;
            if layer_norm {
                layer_norm_rows(
                    &v,
                    w,
                    acts,
                    (gx, &gh, c),
                    hid,
                    &mut out,
                    (&mut second, &mut second_err),
                )?;
            } else {
                let blk = LstmBlocks::of(&v);
                let pc = |k: usize, j: usize, c: R| w.peephole.map(|p| val(p[k * hid + j]) * c);
                for b in 0..batch {
                    for j in 0..hid {
                        let c_old = c[b * hid + j];
                        // Gate `gate`'s pre-activation and the sum of its terms' magnitudes.
                        let part = |gate: usize, peep: Option<R>| {
                            let r = gate * hid + j;
                            let (x, y, z) = (val(gx[at(b, r)]), val(gh[at(b, r)]), bias(r));
                            let terms = mag(x) + mag(y) + mag(z) + peep.map_or(0.0, mag);
                            let pre = match peep {
                                Some(p) => x + y + z + p,
                                None => x + y + z,
                            };
                            (clip(pre), terms)
                        };
                        let (pf, tf) = part(blk.f, pc(blk.p_f, j, c_old));
                        let (i, f, ti) = match blk.i.zip(blk.p_i) {
                            // TFLite's CIFG: i = 1 − f (no input gate row).
                            None => {
                                let f = pf.gate_activation(acts.f);
                                (R::ONE - f, f, 0.0)
                            }
                            Some((ki, pk)) => {
                                let (pi, ti) = part(ki, pc(pk, j, c_old));
                                let i = pi.gate_activation(acts.f);
                                // ONNX `input_forget`: f = 1 − i (the forget row acts
                                // nowhere).
                                let f = if coupling == crate::GateCoupling::InputForget {
                                    R::ONE - i
                                } else {
                                    pf.gate_activation(acts.f)
                                };
                                (i, f, ti)
                            }
                        };
                        let (pg, tg) = part(blk.g, None);
                        let gg = pg.gate_activation(acts.g);
                        let c_new = f * c_old + i * gg;
                        let (po, to) = part(blk.o, pc(blk.p_o, j, c_new));
                        let m = po.gate_activation(acts.f) * c_new.gate_activation(acts.h);
                        out.c.push(c_new);
                        if proj_size.is_some() {
                            let terms = ti.max(tf).max(tg).max(to);
                            let state = mag(c_old).max(mag(c_new));
                            second.push(m.to_f64() as f32);
                            second_err.push(
                                m.error_bound()
                                    .unwrap_or_else(|| second_operand_error(terms, state)),
                            );
                        } else {
                            out.h.push(m);
                        }
                    }
                }
            }
            if proj_size.is_some() {
                let w_hr = w
                    .w_hr
                    .as_ref()
                    .ok_or_else(|| Error::invalid("w_hr", "a projection", "None"))?;
                let p = row_params(&second, hid, scheme);
                let prod = product(w_hr, ho, hid, &second, &p, qmax);
                let err = &second_err;
                add_slack(
                    w_hr,
                    (ho, hid),
                    &second,
                    err,
                    &p,
                    scheme,
                    &prod,
                    &mut out.slack,
                );
                out.h = prod.into_iter().map(val).collect();
            }
        }
        CellKind::Gru(GruVariant {
            linear_before_reset,
            peephole,
            ..
        }) => {
            let mut rz = Vec::with_capacity(batch * hid);
            for b in 0..batch {
                for j in 0..hid {
                    let (xr, hr) = (val(gx[at(b, j)]), val(gh[at(b, j)]));
                    let (xz, hz) = (val(gx[at(b, hid + j)]), val(gh[at(b, hid + j)]));
                    // This crate's peephole GRU: + p ⊙ h for r and z.
                    let hv0 = val(h[b * ho + j]);
                    let ph = |k: usize, v: R| match (peephole, w.peephole) {
                        (true, Some(p)) => v + val(p[k * hid + j]) * hv0,
                        _ => v,
                    };
                    let r = clip(ph(0, xr + hr + bias(j))).gate_activation(acts.f);
                    let z = clip(ph(1, xz + hz + bias(hid + j))).gate_activation(acts.f);
                    rz.push((r, z));
                    if !linear_before_reset {
                        let hv = val(h[b * ho + j]);
                        let peep = match (peephole, w.peephole) {
                            (true, Some(p)) => mag(val(p[j]) * hv0),
                            _ => 0.0,
                        };
                        let terms = mag(xr) + mag(hr) + mag(bias(j)) + peep;
                        let rh = r * hv;
                        second.push(rh.to_f64() as f32);
                        second_err.push(
                            rh.error_bound()
                                .unwrap_or_else(|| second_operand_error(terms, mag(hv))),
                        );
                    }
                }
            }
            let rn = |j: usize| 2 * hid + j;
            // The n gate's recurrent part: r ⊙ (W_hn h + b_hn), or W_hn (r ⊙ h) + b_hn.
            let gn: Vec<f32> = if linear_before_reset {
                Vec::new()
            } else {
                let w_hn = QuantizedMatrix {
                    codes: &w.w_hh.codes[2 * hid * ho..],
                    scales: scales_from(w.w_hh.scales, 2 * hid),
                    zero_points: w.w_hh.zero_points.map(|z| scales_from(z, 2 * hid)),
                };
                let p = row_params(&second, hid, scheme);
                let prod = product(&w_hn, hid, hid, &second, &p, qmax);
                let err = &second_err;
                add_slack(
                    &w_hn,
                    (hid, hid),
                    &second,
                    err,
                    &p,
                    scheme,
                    &prod,
                    &mut out.slack,
                );
                prod
            };
            for b in 0..batch {
                for j in 0..hid {
                    let (r, z) = rz[b * hid + j];
                    let xn = val(gx[at(b, rn(j))]) + opt(w.b_ih, rn(j));
                    let b_hn = opt(w.b_hh, rn(j));
                    let pre = if linear_before_reset {
                        xn + r * (val(gh[at(b, rn(j))]) + b_hn)
                    } else {
                        xn + val(gn[b * hid + j]) + b_hn
                    };
                    let nv = clip(pre).gate_activation(acts.g);
                    // AUGRU: z' = (1 − a) z.
                    let z = att.map_or(z, |a| (R::ONE - val(a[b])) * z);
                    out.h.push(nv.lerp_to(val(h[b * ho + j]), z));
                }
            }
        }
    }
    Ok(out)
}

/// The layer-norm LSTM's rows after the products (`gx`, `gh`: `[B, G·H]`, no bias):
/// TFLite's row ([`lstm_row_on_sums`]) per batch row; `c'` into `out.c`, and `m` into
/// `out.h`, or, projected, into the second operand with its error bound: the tracked
/// one where `R` carries one, else [`layer_norm_error`]'s estimate.
fn layer_norm_rows<R: Real>(
    v: &LstmVariant,
    w: &QuantizedLayerWeights<'_>,
    acts: GateActivations,
    (gx, gh, c): (&[f32], &[f32], &[R]),
    hid: usize,
    out: &mut QuantStepOutput<R>,
    (second, second_err): (&mut Vec<f32>, &mut Vec<f64>),
) -> Result<()> {
    let val = |v: &f32| R::from_f64(f64::from(*v));
    let conv = |s: Option<&[f32]>| s.map(|s| s.iter().map(val).collect::<Vec<R>>());
    let gamma = conv(w.layer_norm)
        .ok_or_else(|| Error::invalid("layer_norm", "the scales [G*H]", "None"))?;
    let (b_ih, b_hh, peephole) = (conv(w.b_ih), conv(w.b_hh), conv(w.peephole));
    let nw = NormWeights {
        gamma: &gamma,
        b_ih: b_ih.as_deref(),
        b_hh: b_hh.as_deref(),
        peephole: peephole.as_deref(),
    };
    let n = gamma.len();
    for (b, c_old) in c.chunks_exact(hid).enumerate() {
        let sums: Vec<R> = (b * n..(b + 1) * n)
            .map(|e| val(&gx[e]) + val(&gh[e]))
            .collect();
        let row = lstm_row_on_sums(v, &nw, acts, &sums, c_old);
        if v.proj_size.is_some() {
            for (j, m) in row.m.iter().enumerate() {
                second.push(m.to_f64() as f32);
                second_err.push(m.error_bound().unwrap_or_else(|| {
                    let state = c_old[j].to_f64().abs().max(row.c[j].to_f64().abs());
                    second_operand_error(layer_norm_error(&nw, &row.z, hid, j), state)
                }));
            }
        } else {
            out.h.extend_from_slice(&row.m);
        }
        out.c.extend_from_slice(&row.c);
    }
    Ok(())
}

/// The `terms` of [`second_operand_error`] for unit `j` of a layer-norm LSTM row with
/// sums `z`: the normalisation divides an `f32` implementation's errors in `z` by the
/// block's spread `σ`. Each `z` is the sum of two values both sides hold exactly and a
/// peephole product (two roundings), and the mean sums `H` of them in any order, so `z −
/// μ` errs by at most about `(H + 2)·u·max|z|`, and so does `σ` (a deviation of `e` in
/// each `z` moves it by at most `e`). So `n_j = (z_j − μ) / σ` errs by at most
/// `(H + 2)·u·max|z|·(1 + |n_j|) / σ`, and the activation's argument `γ_j n_j + b_j` by
/// `|γ_j|` times that: as `terms` (whose `2u·terms` the estimate counts), half of
/// `|γ_j|·(H + 2)·max|z|·(1 + |n_j|) / σ` per gate, summed over the gates, plus the
/// arguments' own magnitudes.
fn layer_norm_error<R: Real>(w: &NormWeights<'_, R>, z: &[R], hid: usize, j: usize) -> f64 {
    let mut terms = 0.0;
    for (k, block) in z.chunks_exact(hid).enumerate() {
        let nrm = normalize(block);
        let inv = nrm.inv.to_f64().abs();
        let zmax = block.iter().fold(0.0f64, |m, v| m.max(v.to_f64().abs()));
        let nj = nrm.n[j].to_f64().abs();
        let g = w.gamma[k * hid + j].to_f64().abs();
        let bias = |b: Option<&[R]>| b.map_or(0.0, |b| b[k * hid + j].to_f64().abs());
        terms += 0.5 * g * (hid as f64 + 2.0) * zmax * (1.0 + nj) * inv
            + g * nj
            + bias(w.b_ih)
            + bias(w.b_hh);
    }
    terms
}

/// The scales (or zero points) of rows `from..` of a matrix: all of them when there is
/// one per tensor.
fn scales_from<T>(s: &[T], from: usize) -> &[T] {
    if s.len() == 1 {
        s
    } else {
        &s[from..]
    }
}

/// One int8 step for `batch` rows: `x` (`[B, I]`) and `h` (`[B, H_out]`) quantized per
/// `scheme` (per row, or one range over the batch), `c` (`[B, H]`) for an LSTM, the
/// attention `att` (`[B]`) for an AUGRU. `cfg` describes one forward layer, as for
/// [`step`](crate::step).
pub fn step_quantized<R: Real>(
    cfg: &RnnConfig,
    w: &QuantizedLayerWeights<'_>,
    scheme: ActivationQuant,
    x: &[f32],
    (h, c, att): (&[f32], Option<&[R]>, Option<&[f32]>),
) -> Result<QuantStepOutput<R>> {
    let i = cfg.input_size;
    let gx = product(
        &w.w_ih,
        cfg.gates() * cfg.hidden_size,
        i,
        x,
        &row_params(x, i, scheme),
        scheme.qmax(),
    );
    step_from_input_products(cfg, w, scheme, &gx, (h, c, att))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::rng::SplitMix64;
    use crate::testkit::variants;

    /// With plain floats the second operand's error is `second_operand_error`'s
    /// estimate, so every nonzero output of a projected LSTM gets more slack than the
    /// product's own roundings (`|h| · 2⁻²⁰`, all a zero error would give), and the
    /// estimate is small: below a thousandth of `|h|` beyond what flipping every code
    /// of the row could add (an error of 1 would add about `|h|` itself). Checked with
    /// the `Real::error_bound` mutants (`Some(0.0)`, `Some(±1.0)` for plain floats).
    #[test]
    fn plain_floats_take_the_estimated_second_operand_error() {
        let (i, hid, proj, batch) = (5, 8, 6, 3);
        let cfg = RnnConfig::new(variants::lstm(false, Some(proj)), i, hid);
        let mut rng = SplitMix64::new(0x5eed);
        let mut codes = |n: usize| -> Vec<i8> {
            (0..n)
                .map(|_| (rng.below(255) as i32 - 127) as i8)
                .collect()
        };
        let (c_ih, c_hh, c_hr) = (codes(4 * hid * i), codes(4 * hid * proj), codes(proj * hid));
        let (s_g, s_p) = (vec![0.01f32; 4 * hid], vec![0.02f32; proj]);
        let m = |codes, scales| QuantizedMatrix {
            codes,
            scales,
            zero_points: None,
        };
        let w = QuantizedLayerWeights {
            w_ih: m(&c_ih[..], &s_g[..]),
            w_hh: m(&c_hh[..], &s_g[..]),
            b_ih: None,
            b_hh: None,
            w_hr: Some(m(&c_hr[..], &s_p[..])),
            peephole: None,
            layer_norm: None,
        };
        let mut rng = SplitMix64::new(0xfeed);
        let mut vals = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.sym()).collect() };
        let (x, h) = (vals(batch * i), vals(batch * proj));
        let c: Vec<f64> = vals(batch * hid).into_iter().map(f64::from).collect();
        let out =
            step_quantized::<f64>(&cfg, &w, ActivationQuant::PerRow, &x, (&h, Some(&c), None))
                .unwrap();
        assert_eq!(out.slack.len(), batch * proj);
        for (e, (y, s)) in out.h.iter().zip(&out.slack).enumerate() {
            assert!(
                *y != 0.0 && *s > y.abs() * f64::powi(2.0, -20),
                "h {y}, slack {s}"
            );
            // Every code of the row flipping (|o ⊙ tanh(c')| < 1, so the row's scale is
            // below 2/255) plus a thousandth of |h|: far above the estimate's share,
            // far below an error of 1's (about |h| itself).
            let row = e % proj * hid..(e % proj + 1) * hid;
            let flips: f64 = c_hr[row].iter().map(|&w| f64::from(w).abs()).sum();
            let cap = 1e-3 * y.abs() + 2.0 / 255.0 * 0.02 * flips;
            assert!(*s < cap, "h {y}, slack {s}, cap {cap}");
        }
    }
}
