//! The whole-sequence forward pass: layers, directions, sequence lengths and layouts,
//! built from [`step`](crate::step) one time step at a time.

use crate::cell::{check_attention, step_with_attention};
use crate::error::{checked_product, Error, Result};
use crate::real::Real;
use crate::spec::{check_len, check_seq_lens, Direction, RnnConfig, SeqShape, TensorLayout};
use crate::weights::{check_weights, LayerWeights};

/// The inputs of [`forward`].
#[derive(Clone, Copy, Debug)]
pub struct SequenceInput<'a, T> {
    /// `[T, B, I]` (time-major) or `[B, T, I]` (batch-major), as `shape.layout` says.
    pub x: &'a [T],
    /// Initial hidden state `[L*D, B, H_out]`; `None` = zeros.
    pub h0: Option<&'a [T]>,
    /// Initial cell state `[L*D, B, H]` (LSTM only); `None` = zeros.
    pub c0: Option<&'a [T]>,
    /// One length per batch row (`<= T`, 0 allowed); `None` = every row runs `T` steps.
    pub seq_lens: Option<&'a [usize]>,
    /// AUGRU's attention `[T, B]` (or `[B, T]` for a batch-major shape): the update
    /// gate of row `b` at time `t` is scaled by `1 − a[t, b]`, in every layer and
    /// direction (a reverse direction reads `a[t, b]` when it processes time `t`).
    /// Required for a GRU with `attention`, refused for every other cell.
    pub attention: Option<&'a [T]>,
}

impl<'a, T> SequenceInput<'a, T> {
    /// Just `x`: zero initial states, full lengths.
    pub fn new(x: &'a [T]) -> Self {
        SequenceInput {
            x,
            h0: None,
            c0: None,
            seq_lens: None,
            attention: None,
        }
    }

    /// Sets the initial hidden state `[L*D, B, H_out]`.
    pub fn with_h0(mut self, h0: &'a [T]) -> Self {
        self.h0 = Some(h0);
        self
    }

    /// Sets the initial cell state `[L*D, B, H]` (LSTM).
    pub fn with_c0(mut self, c0: &'a [T]) -> Self {
        self.c0 = Some(c0);
        self
    }

    /// Sets per-row sequence lengths.
    pub fn with_seq_lens(mut self, seq_lens: &'a [usize]) -> Self {
        self.seq_lens = Some(seq_lens);
        self
    }

    /// Sets AUGRU's attention input.
    pub fn with_attention(mut self, attention: &'a [T]) -> Self {
        self.attention = Some(attention);
        self
    }
}

/// The outputs of [`forward`].
#[derive(Clone, Debug, PartialEq)]
pub struct SequenceOutput<T> {
    /// `[T, B, D*H_out]` or `[B, T, D*H_out]` (same layout as `x`): per step, the last
    /// layer's forward then reverse outputs; zero at steps past a row's length.
    pub y: Vec<T>,
    /// Final hidden states `[L*D, B, H_out]`, index `layer * D + direction`.
    pub h_n: Vec<T>,
    /// Final cell states `[L*D, B, H]` for an LSTM; empty for other cells.
    pub c_n: Vec<T>,
}

/// Checks a sequence's attention input of `len` values (`None`: absent) with
/// [`check_attention`]: `T * B` values, `[T, B]` or, batch-major, `[B, T]`. The check
/// every sequence API (forward, backward, the kernels' too) shares.
pub fn check_sequence_attention(
    cfg: &RnnConfig,
    shape: &SeqShape,
    len: Option<usize>,
) -> Result<()> {
    let layout = match shape.layout {
        TensorLayout::BatchMajor => "[B, T]",
        TensorLayout::TimeMajor => "[T, B]",
    };
    let n = checked_product("attention", "steps * batch", &[shape.steps, shape.batch])?;
    check_attention(cfg, len, n, layout)
}

/// Runs the whole network over a sequence.
///
/// `weights` holds `L * D` sets indexed by `layer * D + direction`. Every length is
/// checked up front; see [`SequenceInput`] and [`SequenceOutput`] for the shapes.
///
/// ```
/// use rnn_reference::{forward, CellKind, LayerWeights, RnnConfig, SeqShape,
///     SequenceInput};
/// let cfg = RnnConfig::new(CellKind::RNN_RELU, 1, 1);
/// let w = [LayerWeights::new(&[1.0f64][..], &[1.0][..])];
/// let out = forward(&cfg, &w, SeqShape::new(3, 1), SequenceInput::new(&[1.0, 2.0, 3.0]))
///     .unwrap();
/// assert_eq!(out.y, vec![1.0, 3.0, 6.0]);
/// assert_eq!(out.h_n, vec![6.0]);
/// ```
pub fn forward<T: Real>(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, T>],
    shape: SeqShape,
    input: SequenceInput<'_, T>,
) -> Result<SequenceOutput<T>> {
    check_weights(cfg, weights)?;
    let dims = shape.dims(cfg)?;
    check_seq_lens(input.seq_lens, &shape)?;
    check_len("x", dims.x, input.x.len())?;
    if let Some(h0) = input.h0 {
        check_len("h0", dims.h, h0.len())?;
    }
    let lstm = cfg.cell.has_cell_state();
    match input.c0 {
        Some(c0) if lstm => check_len("c0", dims.c, c0.len())?,
        Some(_) => {
            return Err(Error::invalid(
                "c0",
                format!("None (a {} cell has no cell state)", cfg.cell.name()),
                "an initial cell state",
            ))
        }
        None => {}
    }
    check_sequence_attention(cfg, &shape, input.attention.map(<[T]>::len))?;

    let (steps, batch) = (shape.steps, shape.batch);
    let (nd, hid, ho) = (cfg.num_directions(), cfg.hidden_size, cfg.output_size());
    let y_width = cfg.y_width();
    let lens: Vec<usize> = match input.seq_lens {
        Some(l) => l.to_vec(),
        None => vec![steps; batch],
    };
    let mut h_n = match input.h0 {
        Some(h0) => h0.to_vec(),
        None => vec![T::ZERO; dims.h],
    };
    let mut c_n = match input.c0 {
        Some(c0) => c0.to_vec(),
        None => vec![T::ZERO; dims.c],
    };

    // The input of the current layer, in `shape.layout`, `width` values per row.
    let mut layer_in: Vec<T> = input.x.to_vec();
    let mut width = cfg.input_size;
    for layer in 0..cfg.num_layers {
        let mut y = vec![T::ZERO; dims.y];
        // The input as the layer's products read it (one block: quantized, under an
        // int8 error model).
        let x_op = T::product_operand(&layer_in, width);
        for d in 0..nd {
            let step_cfg = cfg.direction_step(width, d);
            let k = layer * nd + d;
            let w = &weights[k];
            let reverse = cfg.direction.is_reverse(d);
            // States of this (layer, direction), updated in place row by row.
            let hs = &mut h_n[k * batch * ho..(k + 1) * batch * ho];
            let cs: &mut [T] = if lstm {
                &mut c_n[k * batch * hid..(k + 1) * batch * hid]
            } else {
                &mut []
            };
            // Step s runs, for each row b with s < len_b, time index t = s (forward) or
            // t = len_b - 1 - s (reverse).
            for s in 0..steps {
                let rows: Vec<(usize, usize)> = (0..batch)
                    .filter(|&b| s < lens[b])
                    .map(|b| (b, if reverse { lens[b] - 1 - s } else { s }))
                    .collect();
                if rows.is_empty() {
                    break;
                }
                let mut xs = Vec::with_capacity(rows.len() * width);
                let mut h_prev = Vec::with_capacity(rows.len() * ho);
                let mut c_prev = Vec::with_capacity(if lstm { rows.len() * hid } else { 0 });
                let mut att = Vec::new();
                for &(b, t) in &rows {
                    let r = shape.row(t, b);
                    if let Some(a) = input.attention {
                        att.push(a[r]);
                    }
                    xs.extend_from_slice(&x_op[r * width..(r + 1) * width]);
                    h_prev.extend_from_slice(&hs[b * ho..(b + 1) * ho]);
                    if lstm {
                        c_prev.extend_from_slice(&cs[b * hid..(b + 1) * hid]);
                    }
                }
                let out = step_with_attention(
                    &step_cfg,
                    w,
                    rows.len(),
                    &xs,
                    &h_prev,
                    lstm.then_some(&c_prev[..]),
                    input.attention.map(|_| &att[..]),
                )?;
                for (n, &(b, t)) in rows.iter().enumerate() {
                    let hn = &out.h[n * ho..(n + 1) * ho];
                    hs[b * ho..(b + 1) * ho].copy_from_slice(hn);
                    if lstm {
                        cs[b * hid..(b + 1) * hid].copy_from_slice(&out.c[n * hid..(n + 1) * hid]);
                    }
                    let r = shape.row(t, b);
                    let o = r * y_width + cfg.direction.output_block(d) * ho;
                    if cfg.direction == Direction::BidirectionalSum {
                        // y = y_forward + y_reverse (the forward's value first).
                        for (a, &v) in y[o..o + ho].iter_mut().zip(hn) {
                            *a += v;
                        }
                    } else {
                        y[o..o + ho].copy_from_slice(hn);
                    }
                }
            }
        }
        layer_in = y;
        width = y_width;
    }
    Ok(SequenceOutput {
        y: layer_in,
        h_n,
        c_n,
    })
}
