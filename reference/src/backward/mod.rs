//! The backward pass (backpropagation through time) of the whole network: the
//! gradients of a loss `L` with respect to every parameter, the input sequence and the
//! initial states, given the gradients of `L` with respect to the outputs.
//!
//! The naive definition the kernels' backward is tested against: the forward is run
//! again row by row, recording every intermediate value ([`tape`]), then each step is
//! differentiated by hand ([`cells`]) from the last step to the first.
//!
//! Conventions (those of PyTorch autograd):
//! - a gate pre-activation clamped by ONNX `clip` (`|pre| > clip`) passes no gradient;
//!   `relu` passes the gradient where its input is `> 0`;
//! - steps at or past a row's length (`seq_lens`) do not run: they contribute nothing,
//!   their `dx` is 0 and `dy` there is ignored (their `y` is 0 by definition); the
//!   state gradient passes through them unchanged;
//! - every parameter gradient is summed over all steps and rows.

mod cells;
#[cfg(feature = "testkit")]
mod kinks;
mod layer_norm;
pub(crate) mod tape;

use crate::error::{Error, Result};
use crate::real::Real;
use crate::sequence::check_sequence_attention;
use crate::spec::{check_len, check_seq_lens, RnnConfig, SeqShape};
use crate::weights::{check_weights, export_onnx, views, LayerWeights, OwnedLayerWeights};
use crate::{OwnedOnnxWeights, SequenceInput};

use cells::row_backward;
use tape::record;

#[cfg(feature = "testkit")]
pub(crate) use kinks::kink_margins;

/// The gradients of the loss with respect to the forward's outputs (the "upstream"
/// gradients a framework's autograd hands to the backward pass).
#[derive(Clone, Copy, Debug)]
pub struct OutputGrads<'a, T> {
    /// `∂L/∂y`, shaped like `y`: `[T, B, D*H_out]` (or batch-major). Ignored at steps
    /// past a row's length.
    pub dy: &'a [T],
    /// `∂L/∂h_n` `[L*D, B, H_out]`; `None` = zeros.
    pub dh_n: Option<&'a [T]>,
    /// `∂L/∂c_n` `[L*D, B, H]` (LSTM only); `None` = zeros.
    pub dc_n: Option<&'a [T]>,
}

impl<'a, T> OutputGrads<'a, T> {
    /// Just `∂L/∂y`.
    pub fn new(dy: &'a [T]) -> Self {
        OutputGrads {
            dy,
            dh_n: None,
            dc_n: None,
        }
    }

    /// Sets `∂L/∂h_n`.
    pub fn with_dh_n(mut self, dh_n: &'a [T]) -> Self {
        self.dh_n = Some(dh_n);
        self
    }

    /// Sets `∂L/∂c_n` (LSTM).
    pub fn with_dc_n(mut self, dc_n: &'a [T]) -> Self {
        self.dc_n = Some(dc_n);
        self
    }
}

/// The gradients [`backward`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradients<T> {
    /// `∂L/∂x`, shaped like `x`.
    pub dx: Vec<T>,
    /// `∂L/∂h0` `[L*D, B, H_out]`.
    pub dh0: Vec<T>,
    /// `∂L/∂c0` `[L*D, B, H]` for an LSTM; empty otherwise.
    pub dc0: Vec<T>,
    /// One set per layer and direction, in PyTorch layout and gate order, with exactly
    /// the parts the weights have (`b_ih`/`b_hh` only if given, `w_hr` for a projected
    /// LSTM, `peephole` for a peephole cell, `layer_norm` for a layer-norm LSTM).
    pub weights: Vec<OwnedLayerWeights<T>>,
    /// AUGRU: `∂L/∂a`, shaped like the attention input (summed over layers and
    /// directions, which all read it; 0 at steps past a row's length); empty for
    /// every other cell.
    pub dattention: Vec<T>,
}

impl<T: Real + Default> Gradients<T> {
    /// The parameter gradients in ONNX layout (`dW`, `dR`, `dB`, `dP`): they permute
    /// exactly like the weights ([`export_onnx`]). ONNX configs only (one layer, no
    /// projection).
    pub fn onnx(&self, cfg: &RnnConfig) -> Result<OwnedOnnxWeights<T>> {
        export_onnx(cfg, &views(&self.weights))
    }
}

/// Checks the arguments of a backward pass (as `forward` checks its own, plus the
/// output gradients).
fn check<T>(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, T>],
    shape: SeqShape,
    input: &SequenceInput<'_, T>,
    grads: &OutputGrads<'_, T>,
) -> Result<()> {
    check_weights(cfg, weights)?;
    let dims = shape.dims(cfg)?;
    check_seq_lens(input.seq_lens, &shape)?;
    check_len("x", dims.x, input.x.len())?;
    check_len("dy", dims.y, grads.dy.len())?;
    if let Some(h0) = input.h0 {
        check_len("h0", dims.h, h0.len())?;
    }
    if let Some(dh_n) = grads.dh_n {
        check_len("dh_n", dims.h, dh_n.len())?;
    }
    let lstm = cfg.cell.has_cell_state();
    for (name, v) in [("c0", input.c0), ("dc_n", grads.dc_n)] {
        match v {
            Some(v) if lstm => check_len(name, dims.c, v.len())?,
            Some(_) => {
                return Err(Error::invalid(
                    name,
                    format!("None (a {} cell has no cell state)", cfg.cell.name()),
                    "a slice",
                ))
            }
            None => {}
        }
    }
    check_sequence_attention(cfg, &shape, input.attention.map(<[T]>::len))
}

/// Zeros shaped like `w` (same optional parts).
fn zeros_like<T: Real>(w: &LayerWeights<'_, T>) -> OwnedLayerWeights<T> {
    w.map(|v| vec![T::ZERO; v.len()])
}

/// Backpropagation through time: the gradients of `L` with respect to `x`, `h0`, `c0`
/// and every parameter, where `L` is any loss whose gradients with respect to the
/// outputs of [`forward`](crate::forward) are `grads` (for the golden cases' loss
/// `Σ y·dy + Σ h_n·dh_n + Σ c_n·dc_n` they are `dy`, `dh_n`, `dc_n` themselves).
///
/// Arguments as for [`forward`](crate::forward); every length is checked up front.
///
/// ```
/// use rnn_reference::{backward, CellKind, LayerWeights, OutputGrads, RnnConfig, SeqShape,
///     SequenceInput};
/// // h_t = h_{t-1} + 2 x_t (a linear relu RNN while everything stays positive).
/// let cfg = RnnConfig::new(CellKind::RNN_RELU, 1, 1);
/// let w = [LayerWeights::new(&[2.0f64][..], &[1.0][..])];
/// let x = [1.0, 2.0, 3.0];
/// // L = h_n = y_2 = 2 (x_0 + x_1 + x_2).
/// let g = backward(&cfg, &w, SeqShape::new(3, 1), SequenceInput::new(&x),
///     OutputGrads::new(&[0.0, 0.0, 0.0]).with_dh_n(&[1.0])).unwrap();
/// assert_eq!(g.dx, vec![2.0, 2.0, 2.0]);
/// assert_eq!(g.weights[0].w_ih, vec![6.0]); // Σ x_t
/// assert_eq!(g.weights[0].w_hh, vec![8.0]); // Σ h_{t-1} = 0 + 2 + 6
/// assert_eq!(g.dh0, vec![1.0]);
/// ```
pub fn backward<T: Real>(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, T>],
    shape: SeqShape,
    input: SequenceInput<'_, T>,
    grads: OutputGrads<'_, T>,
) -> Result<Gradients<T>> {
    check(cfg, weights, shape, &input, &grads)?;
    let tapes = record(cfg, weights, shape, &input);
    let (nd, hid, ho) = (cfg.num_directions(), cfg.hidden_size, cfg.output_size());
    let batch = shape.batch;
    let lstm = cfg.cell.has_cell_state();
    let dims = shape.dims(cfg)?;
    let mut out = Gradients {
        dx: Vec::new(),
        dh0: vec![T::ZERO; dims.h],
        dc0: vec![T::ZERO; dims.c],
        weights: weights.iter().map(zeros_like).collect(),
        dattention: match input.attention {
            Some(a) => vec![T::ZERO; a.len()],
            None => Vec::new(),
        },
    };
    // ∂L/∂(output of the current layer), in `shape.layout`, `nd * ho` per row.
    let mut d_out = grads.dy.to_vec();
    for (layer, tape) in tapes.iter().enumerate().rev() {
        let width = tape.width;
        let mut d_in = vec![T::ZERO; tape.input.len()];
        for (d, steps) in tape.dirs.iter().enumerate() {
            let step_cfg = cfg.direction_step(width, d);
            let k = layer * nd + d;
            let slice = |v: Option<&[T]>, b: usize, n: usize| -> Vec<T> {
                v.map_or(vec![T::ZERO; n], |v| v[(k * batch + b) * n..][..n].to_vec())
            };
            let mut dh: Vec<Vec<T>> = (0..batch).map(|b| slice(grads.dh_n, b, ho)).collect();
            let mut dc: Vec<Vec<T>> = (0..batch)
                .map(|b| {
                    if lstm {
                        slice(grads.dc_n, b, hid)
                    } else {
                        Vec::new()
                    }
                })
                .collect();
            // Backwards through the recorded steps: each row's steps in reverse order.
            for s in steps.iter().rev() {
                let r = shape.row(s.t, s.b);
                let mut dh_t = dh[s.b].clone();
                // Summed directions both receive the whole ∂y of their block.
                let o = r * cfg.y_width() + cfg.direction.output_block(d) * ho;
                for (a, &y) in dh_t.iter_mut().zip(&d_out[o..][..ho]) {
                    *a += y;
                }
                let dx = &mut d_in[r * width..(r + 1) * width];
                let g = row_backward(
                    &step_cfg,
                    &weights[k],
                    s,
                    &dh_t,
                    &dc[s.b],
                    &mut out.weights[k],
                    dx,
                );
                if s.att.is_some() {
                    out.dattention[r] += g.da;
                }
                dh[s.b] = g.dh;
                dc[s.b] = g.dc;
            }
            for b in 0..batch {
                out.dh0[(k * batch + b) * ho..][..ho].copy_from_slice(&dh[b]);
                if lstm {
                    out.dc0[(k * batch + b) * hid..][..hid].copy_from_slice(&dc[b]);
                }
            }
        }
        d_out = d_in;
    }
    out.dx = d_out;
    Ok(out)
}

#[cfg(test)]
mod tests;
