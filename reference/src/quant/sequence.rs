//! The whole-sequence int8 forward pass, the oracle of the kernels' int8 path and of
//! ONNX Runtime's `DynamicQuantizeLSTM`.
//!
//! Rows run aligned at their first step (ONNX Runtime's order): at step `s`, row `b`
//! with length `len_b` runs time index `t = s` (forward) or `t = len_b − 1 − s`
//! (reverse) while `s < len_b`. A row past its length still runs (its result is
//! discarded) on the input `x[s, b]` and a zero state: after step `s = len_b` its state
//! is recorded as its final state and set to 0, so a block that spans the batch (the
//! [`ActivationQuant::OnnxRuntime`] scheme) sees ONNX Runtime's values: `h0` at
//! step 0, the last `h` of a row that ended at the previous step, 0 for rows that ended
//! before. With per-row schemes rows are independent and this order changes nothing.

use crate::error::{Error, Result};
use crate::sequence::{check_sequence_attention, SequenceInput};
use crate::spec::{check_len, check_seq_lens, Direction, RnnConfig, SeqShape};
use crate::Real;

use super::cell::{product, row_params, step_from_input_products};
use super::params::{block_params, block_range, ActivationQuant};
use super::weights::{check_quantized_weights, QuantizedLayerWeights};

/// A row's final state: `h`, `c` (empty without a cell state), the slack of `h`.
type Final<R> = (Vec<R>, Vec<R>, Vec<f64>);

/// The outputs of [`forward_quantized`], with the slack of each `y` and `h_n` element
/// (see [`QuantStepOutput::slack`](super::QuantStepOutput::slack)).
#[derive(Clone, Debug, PartialEq)]
pub struct QuantSequenceOutput<R = f64> {
    /// `[T, B, D*H_out]` (or batch-major, as `shape` says).
    pub y: Vec<R>,
    /// `[L*D, B, H_out]`.
    pub h_n: Vec<R>,
    /// `[L*D, B, H]` for an LSTM, else empty.
    pub c_n: Vec<R>,
    /// Per element of `y`.
    pub y_slack: Vec<f64>,
    /// Per element of `h_n`.
    pub h_n_slack: Vec<f64>,
}

/// Runs the network with int8 weights over a sequence, activations quantized per
/// `scheme`.
///
/// With `forced_y` (one layer only), every step takes its recurrent input `h` from
/// those outputs (another implementation's `y`) instead of its own: each step is then
/// checked on exactly the codes that implementation quantized, and no rounding tie of
/// `h` can make the two disagree. The cell state `c` stays this oracle's own.
pub fn forward_quantized(
    cfg: &RnnConfig,
    weights: &[QuantizedLayerWeights<'_>],
    scheme: ActivationQuant,
    shape: SeqShape,
    input: SequenceInput<'_, f32>,
    forced_y: Option<&[f32]>,
) -> Result<QuantSequenceOutput> {
    forward_quantized_as::<f64>(cfg, weights, scheme, shape, input, forced_y)
}

/// [`forward_quantized`] with the cell after the products in `R` (the test kit runs it
/// on `Bounded` numbers to get the bound on an `f32` implementation's error).
pub fn forward_quantized_as<R: Real>(
    cfg: &RnnConfig,
    weights: &[QuantizedLayerWeights<'_>],
    scheme: ActivationQuant,
    shape: SeqShape,
    input: SequenceInput<'_, f32>,
    forced_y: Option<&[f32]>,
) -> Result<QuantSequenceOutput<R>> {
    check_quantized_weights(cfg, weights)?;
    let dims = shape.dims(cfg)?;
    check_seq_lens(input.seq_lens, &shape)?;
    check_len("x", dims.x, input.x.len())?;
    let lstm = cfg.cell.has_cell_state();
    if let Some(h0) = input.h0 {
        check_len("h0", dims.h, h0.len())?;
    }
    match input.c0 {
        Some(c0) if lstm => check_len("c0", dims.c, c0.len())?,
        Some(_) => return Err(Error::invalid("c0", "None (no cell state)", "a slice")),
        None => {}
    }
    check_sequence_attention(cfg, &shape, input.attention.map(<[f32]>::len))?;
    if let Some(f) = forced_y {
        check_len("forced_y", dims.y, f.len())?;
        if cfg.num_layers != 1 {
            return Err(Error::invalid("forced_y", "one layer", cfg.num_layers));
        }
        if cfg.direction == Direction::BidirectionalSum {
            return Err(Error::invalid(
                "forced_y",
                "one output per direction (not summed directions, whose y does not give \
                 each direction's h)",
                "BidirectionalSum",
            ));
        }
    }
    let (steps, batch) = (shape.steps, shape.batch);
    let (nd, hid, ho) = (cfg.num_directions(), cfg.hidden_size, cfg.output_size());
    let (g, yw) = (cfg.gates(), cfg.y_width());
    let sum = cfg.direction == Direction::BidirectionalSum;
    let lens: Vec<usize> = input.seq_lens.map_or(vec![steps; batch], <[usize]>::to_vec);
    let max_len = lens.iter().copied().max().unwrap_or(0);
    let mut out = QuantSequenceOutput {
        y: Vec::new(),
        h_n: input.h0.map_or(vec![R::ZERO; dims.h], |h| {
            h.iter().map(|&v| R::from_f64(f64::from(v))).collect()
        }),
        c_n: input.c0.map_or(vec![R::ZERO; dims.c], |c| {
            c.iter().map(|&v| R::from_f64(f64::from(v))).collect()
        }),
        y_slack: Vec::new(),
        h_n_slack: vec![0.0; dims.h],
    };
    let mut layer_in: Vec<f32> = input.x.to_vec();
    let mut width = cfg.input_size;
    for layer in 0..cfg.num_layers {
        let mut y = vec![R::ZERO; dims.y];
        let mut y_slack = vec![0.0f64; dims.y];
        // Input rows of the steps that run, in (t, b) order.
        let rows_in: Vec<f32> = (0..max_len * batch)
            .flat_map(|r| {
                let at = shape.row(r / batch, r % batch) * width;
                layer_in[at..at + width].iter().copied()
            })
            .collect();
        let params = if scheme.per_row() {
            row_params(&rows_in, width, scheme)
        } else {
            let p = block_params(block_range(rows_in.iter().copied()), scheme.qmax());
            vec![p; max_len * batch]
        };
        for d in 0..nd {
            let step_cfg = cfg.direction_step(width, d);
            let k = layer * nd + d;
            let w = &weights[k];
            let reverse = cfg.direction.is_reverse(d);
            let gx = product(&w.w_ih, g * hid, width, &rows_in, &params, scheme.qmax());
            let hs = k * batch * ho..(k + 1) * batch * ho;
            let cs = k * batch * hid..(k + 1) * batch * hid;
            let mut h_state: Vec<R> = out.h_n[hs.clone()].to_vec();
            // Cells without a state have no `c_n` (empty).
            let mut c_state: Vec<R> = if lstm {
                out.c_n[cs.clone()].to_vec()
            } else {
                Vec::new()
            };
            let mut final_state: Vec<Option<Final<R>>> = vec![None; batch];
            let mut last_slack = vec![0.0f64; batch * ho];
            let t_of = |s: usize, b: usize| {
                if reverse && s < lens[b] {
                    lens[b] - 1 - s
                } else {
                    s
                }
            };
            for s in 0..max_len {
                let gx_s: Vec<f32> = (0..batch)
                    .flat_map(|b| {
                        let r = t_of(s, b) * batch + b;
                        gx[r * g * hid..(r + 1) * g * hid].iter().copied()
                    })
                    .collect();
                let h_op: Vec<f32> = match forced_y {
                    None => h_state.iter().map(|&v| v.to_f64() as f32).collect(),
                    Some(f) => (0..batch)
                        .flat_map(|b| {
                            let row: Vec<f32> = if s == 0 {
                                h_state[b * ho..(b + 1) * ho]
                                    .iter()
                                    .map(|&v| v.to_f64() as f32)
                                    .collect()
                            } else if s <= lens[b] {
                                let at = shape.row(t_of(s - 1, b), b) * yw + d * ho;
                                f[at..at + ho].to_vec()
                            } else {
                                vec![0.0; ho]
                            };
                            row
                        })
                        .collect(),
                };
                // AUGRU: each row's attention at the time index it runs (any value
                // for a row past its length: its result is discarded).
                let att: Option<Vec<f32>> = input
                    .attention
                    .map(|a| (0..batch).map(|b| a[shape.row(t_of(s, b), b)]).collect());
                let st = step_from_input_products(
                    &step_cfg,
                    w,
                    scheme,
                    &gx_s,
                    (&h_op, lstm.then_some(&c_state[..]), att.as_deref()),
                )?;
                for b in 0..batch {
                    let (hr, cr) = (b * ho..(b + 1) * ho, b * hid..(b + 1) * hid);
                    if s < lens[b] {
                        let at = shape.row(t_of(s, b), b) * yw + cfg.direction.output_block(d) * ho;
                        if sum {
                            // y = y_forward + y_reverse; their slacks add.
                            for k in 0..ho {
                                y[at + k] += st.h[b * ho + k];
                                y_slack[at + k] += st.slack[b * ho + k];
                            }
                        } else {
                            y[at..at + ho].copy_from_slice(&st.h[hr.clone()]);
                            y_slack[at..at + ho].copy_from_slice(&st.slack[hr.clone()]);
                        }
                        last_slack[hr.clone()].copy_from_slice(&st.slack[hr.clone()]);
                        h_state[hr].copy_from_slice(&st.h[b * ho..(b + 1) * ho]);
                        if lstm {
                            c_state[cr.clone()].copy_from_slice(&st.c[cr]);
                        }
                    } else {
                        if s == lens[b] {
                            let c = if lstm {
                                c_state[cr.clone()].to_vec()
                            } else {
                                Vec::new()
                            };
                            let sl = last_slack[hr.clone()].to_vec();
                            final_state[b] = Some((h_state[hr.clone()].to_vec(), c, sl));
                        }
                        h_state[hr].iter_mut().for_each(|v| *v = R::ZERO);
                        if lstm {
                            c_state[cr].iter_mut().for_each(|v| *v = R::ZERO);
                        }
                    }
                }
            }
            for (b, f) in final_state.into_iter().enumerate() {
                let (hr, cr) = (b * ho..(b + 1) * ho, b * hid..(b + 1) * hid);
                let (h, c, sl) = f.unwrap_or_else(|| {
                    let c = if lstm {
                        c_state[cr.clone()].to_vec()
                    } else {
                        Vec::new()
                    };
                    (
                        h_state[hr.clone()].to_vec(),
                        c,
                        last_slack[hr.clone()].to_vec(),
                    )
                });
                let o = hs.start + b * ho;
                out.h_n[o..o + ho].copy_from_slice(&h);
                out.h_n_slack[o..o + ho].copy_from_slice(&sl);
                if lstm {
                    let o = cs.start + b * hid;
                    out.c_n[o..o + hid].copy_from_slice(&c);
                }
            }
        }
        layer_in = y.iter().map(|&v| v.to_f64() as f32).collect();
        width = yw;
        out.y = y;
        out.y_slack = y_slack;
    }
    Ok(out)
}
