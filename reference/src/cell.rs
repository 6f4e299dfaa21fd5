//! One time step of one layer and direction, for a batch: `(x_t, h_{t-1}, c_{t-1}) ->
//! (h_t, c_t)`, following the equations of the golden README line by line.

use crate::cell_kind::{CellKind, GateCoupling, GruVariant, LstmBlocks, LstmVariant};
use crate::error::{checked_product, Error, Result};
use crate::layer_norm;
use crate::real::Real;
use crate::spec::{check_len, Direction, RnnConfig};
use crate::weights::{check_weights, LayerWeights};

/// The new state after one step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutput<T> {
    /// `h_t`: `[B, H_out]`.
    pub h: Vec<T>,
    /// `c_t`: `[B, H]` for an LSTM; empty for other cells.
    pub c: Vec<T>,
}

/// Runs one step of the cell `cfg.cell` for `batch` rows.
///
/// `cfg` must describe a single forward layer (`num_layers == 1`, `Direction::Forward`)
/// whose `input_size` is the width of `x`; callers build one such config per layer.
/// `x` is `[B, I]`, `h` is `[B, H_out]`, `c` is `[B, H]` and must be given exactly for
/// an LSTM. Missing biases count as zero.
///
/// ```
/// use rnn_reference::{step, CellKind, LayerWeights, RnnConfig};
/// let cfg = RnnConfig::new(CellKind::RNN_RELU, 1, 1);
/// let w = LayerWeights::new(&[2.0f64][..], &[3.0][..]);
/// let out = step(&cfg, &w, 1, &[1.0], &[1.0], None).unwrap();
/// assert_eq!(out.h, vec![5.0]);
/// ```
pub fn step<T: Real>(
    cfg: &RnnConfig,
    weights: &LayerWeights<'_, T>,
    batch: usize,
    x: &[T],
    h: &[T],
    c: Option<&[T]>,
) -> Result<StepOutput<T>> {
    step_with_attention(cfg, weights, batch, x, h, c, None)
}

/// [`step`] with AUGRU's attention input `a` (`[B]`, one value per row), which a GRU
/// with `attention` requires and every other cell refuses.
///
/// ```
/// use rnn_reference::{step_with_attention, CellKind, GruVariant, LayerWeights, RnnConfig};
/// let augru = CellKind::Gru(GruVariant { attention: true, ..GruVariant::default() });
/// let cfg = RnnConfig::new(augru, 1, 1);
/// // Zero weights: r = z = 1/2, n = 0; z' = (1 − a) z, h' = z' h.
/// let (w_ih, w_hh) = ([0.0f64; 3], [0.0f64; 3]);
/// let w = LayerWeights::new(&w_ih[..], &w_hh[..]);
/// let out = step_with_attention(&cfg, &w, 1, &[1.0], &[1.0], None, Some(&[0.5])).unwrap();
/// assert_eq!(out.h, vec![0.25]);
/// ```
pub fn step_with_attention<T: Real>(
    cfg: &RnnConfig,
    weights: &LayerWeights<'_, T>,
    batch: usize,
    x: &[T],
    h: &[T],
    c: Option<&[T]>,
    attention: Option<&[T]>,
) -> Result<StepOutput<T>> {
    if cfg.num_layers != 1 {
        return Err(Error::invalid(
            "num_layers",
            "1 (a step runs one layer)",
            cfg.num_layers,
        ));
    }
    if cfg.direction != Direction::Forward {
        return Err(Error::invalid(
            "direction",
            "Forward (a step runs one direction)",
            format!("{:?}", cfg.direction),
        ));
    }
    check_weights(cfg, std::slice::from_ref(weights))?;
    if batch == 0 {
        return Err(Error::invalid("batch", "at least 1", 0));
    }
    let (i_sz, hid, ho) = (cfg.input_size, cfg.hidden_size, cfg.output_size());
    check_len(
        "x",
        checked_product("x", "batch * input_size", &[batch, i_sz])?,
        x.len(),
    )?;
    check_len(
        "h",
        checked_product("h", "batch * output_size", &[batch, ho])?,
        h.len(),
    )?;
    let lstm = cfg.cell.has_cell_state();
    match (lstm, c) {
        (true, Some(c)) => check_len(
            "c",
            checked_product("c", "batch * hidden_size", &[batch, hid])?,
            c.len(),
        )?,
        (true, None) => {
            return Err(Error::invalid(
                "c",
                "the cell state [B, H] (the cell is an LSTM)",
                "None",
            ))
        }
        (false, Some(_)) => {
            return Err(Error::invalid(
                "c",
                format!("None (a {} cell has no cell state)", cfg.cell.name()),
                "a cell state",
            ))
        }
        (false, None) => {}
    }

    check_attention(cfg, attention.map(<[T]>::len), batch, "[B]")?;

    // ONNX `activations`: f for the gates, g for the candidate, h for the LSTM output.
    let acts = cfg.gate_activations(0);
    let clip = cfg.clip.map(|c| T::from_f64(f64::from(c)));
    let cl = |v: T| match clip {
        Some(c) => v.clamp_to(c),
        None => v,
    };
    let mut out = StepOutput {
        h: Vec::with_capacity(batch * ho),
        c: Vec::with_capacity(if lstm { batch * hid } else { 0 }),
    };
    // `h` as the recurrent product reads it (quantized, under an int8 error model);
    // the GRU's update and `r ⊙ h` use `h` itself.
    let h_op = T::product_operand(h, ho);
    for b in 0..batch {
        let xb = &x[b * i_sz..(b + 1) * i_sz];
        let hb = &h[b * ho..(b + 1) * ho];
        let hq = &h_op[b * ho..(b + 1) * ho];
        let g = Gates {
            w: weights,
            i_sz,
            ho,
        };
        match cfg.cell {
            CellKind::Rnn(_) => {
                for j in 0..hid {
                    let pre = cl(g.x_part(j, xb) + g.h_part(j, hq));
                    out.h.push(pre.gate_activation(acts.f));
                }
            }
            CellKind::Lstm(v) if v.layer_norm => {
                let cb = &c.expect("checked above")[b * hid..(b + 1) * hid];
                let row = layer_norm::lstm_row(&v, weights, acts, xb, hq, cb);
                out.c.extend_from_slice(&row.c);
                project(&v, weights, &row.m, &mut out.h);
            }
            CellKind::Lstm(v) => {
                let blk = LstmBlocks::of(&v);
                let cb = &c.expect("checked above")[b * hid..(b + 1) * hid];
                // The clipped pre-activation of gate block `k` for unit `j`, with the
                // peephole term p ⊙ c of peephole block `pk`. Absent peepholes
                // contribute no term at all (not 0 * c, which would turn an infinite c
                // into NaN where PyTorch, which has no such term, gives a finite h).
                let gate = |k: usize, pk: usize, j: usize, c: T| {
                    let r = k * hid + j;
                    let z = g.x_part(r, xb) + g.h_part(r, hq);
                    cl(weights.peephole.map_or(z, |p| z + p[pk * hid + j] * c))
                };
                // m = o ⊙ tanh(c'), the unprojected output.
                let mut m = Vec::with_capacity(hid);
                for (j, &c_old) in cb.iter().enumerate() {
                    let (i, f) = match blk.i.zip(blk.p_i) {
                        // TFLite's CIFG: i = 1 − f; there is no input gate row.
                        None => {
                            let f = gate(blk.f, blk.p_f, j, c_old).gate_activation(acts.f);
                            (T::ONE - f, f)
                        }
                        // ONNX `input_forget`: f = 1 − i; the forget gate's row is unused.
                        Some((ki, pi)) if v.coupling == GateCoupling::InputForget => {
                            let i = gate(ki, pi, j, c_old).gate_activation(acts.f);
                            (i, T::ONE - i)
                        }
                        Some((ki, pi)) => (
                            gate(ki, pi, j, c_old).gate_activation(acts.f),
                            gate(blk.f, blk.p_f, j, c_old).gate_activation(acts.f),
                        ),
                    };
                    let r = blk.g * hid + j;
                    let gg = cl(g.x_part(r, xb) + g.h_part(r, hq)).gate_activation(acts.g);
                    let c_new = f * c_old + i * gg;
                    let o = gate(blk.o, blk.p_o, j, c_new).gate_activation(acts.f);
                    out.c.push(c_new);
                    m.push(o * c_new.gate_activation(acts.h));
                }
                project(&v, weights, &m, &mut out.h);
            }
            CellKind::Gru(GruVariant {
                linear_before_reset,
                ..
            }) => {
                let mut r = Vec::with_capacity(hid);
                let mut z = Vec::with_capacity(hid);
                // Peephole terms p ⊙ h for (r, z) (this crate's peephole GRU); absent
                // peepholes add no term.
                let ph = |k: usize, j: usize, v: T| match weights.peephole {
                    Some(p) => v + p[k * hid + j] * hb[j],
                    None => v,
                };
                for j in 0..hid {
                    let pr = g.x_part(j, xb) + g.h_part(j, hq);
                    r.push(cl(ph(0, j, pr)).gate_activation(acts.f));
                    let pz = g.x_part(hid + j, xb) + g.h_part(hid + j, hq);
                    z.push(cl(ph(1, j, pz)).gate_activation(acts.f));
                }
                // r ⊙ h, for the reset-before form.
                let rh: Vec<T> = if linear_before_reset {
                    Vec::new()
                } else {
                    r.iter().zip(hb).map(|(&r, &h)| r * h).collect()
                };
                let rh = T::product_operand(&rh, hid);
                for j in 0..hid {
                    let rn = 2 * hid + j;
                    let pre = if linear_before_reset {
                        g.x_part(rn, xb) + r[j] * g.h_part(rn, hq)
                    } else {
                        g.x_part(rn, xb) + g.h_part(rn, &rh)
                    };
                    let n = cl(pre).gate_activation(acts.g);
                    // AUGRU: z' = (1 − a) z.
                    let z = attention.map_or(z[j], |a| (T::ONE - a[b]) * z[j]);
                    // h' = (1 - z) n + z h, evaluated as PyTorch's ATen GRU cell does,
                    // `(h - n) * z + n`: the same value, and the same rounding (when
                    // z rounds to exactly 1, a tiny h is lost next to n, as in PyTorch
                    // and in the kernels; the other form keeps it).
                    out.h.push(n.lerp_to(hb[j], z));
                }
            }
        }
    }
    Ok(out)
}

/// Appends an LSTM row's `h' = W_hr m` (projection) or `h' = m`.
pub(crate) fn project<T: Real>(v: &LstmVariant, w: &LayerWeights<'_, T>, m: &[T], h: &mut Vec<T>) {
    match v.proj_size {
        Some(p) => {
            let w_hr = w.w_hr.expect("checked by check_weights");
            let hid = m.len();
            let m = T::product_operand(m, hid);
            for r in 0..p {
                h.push(dot(&w_hr[r * hid..(r + 1) * hid], &m));
            }
        }
        None => h.extend_from_slice(m),
    }
}

/// Checks that an attention input of `len` values (`None`: absent) is given exactly
/// for an AUGRU, with `want` values (`shape` names its layout in the message); the
/// check every API taking an attention input shares.
pub fn check_attention(
    cfg: &RnnConfig,
    len: Option<usize>,
    want: usize,
    shape: &str,
) -> Result<()> {
    match (cfg.cell.has_attention(), len) {
        (true, Some(n)) => check_len("attention", want, n),
        (true, None) => Err(Error::invalid(
            "attention",
            format!("the attention input {shape} (the cell is an AUGRU)"),
            "None",
        )),
        (false, Some(_)) => Err(Error::invalid(
            "attention",
            format!("None (a {} cell takes no attention input)", cfg.cell.name()),
            "an attention input",
        )),
        (false, None) => Ok(()),
    }
}

/// Row accessors of the stacked gate matrices.
struct Gates<'a, 'w, T> {
    w: &'a LayerWeights<'w, T>,
    i_sz: usize,
    ho: usize,
}

impl<T: Real> Gates<'_, '_, T> {
    /// `W_ih[r]·x + b_ih[r]`.
    fn x_part(&self, r: usize, x: &[T]) -> T {
        let s = dot(&self.w.w_ih[r * self.i_sz..(r + 1) * self.i_sz], x);
        match self.w.b_ih {
            Some(b) => s + b[r],
            None => s,
        }
    }

    /// `W_hh[r]·h + b_hh[r]`.
    fn h_part(&self, r: usize, h: &[T]) -> T {
        let s = dot(&self.w.w_hh[r * self.ho..(r + 1) * self.ho], h);
        match self.w.b_hh {
            Some(b) => s + b[r],
            None => s,
        }
    }
}

/// `Σ a[k] b[k]`, accumulated in `T` in index order.
pub(crate) fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut s = T::ZERO;
    for (&a, &b) in a.iter().zip(b) {
        s += a * b;
    }
    s
}
