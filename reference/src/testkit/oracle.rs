//! The f64 reference run on `f32` values (widened exactly): what every kernel path and
//! fuzz target is compared with.

use crate::{
    backward, forward, step, views, Gradients, LayerWeights, OutputGrads, Result, RnnConfig,
    SeqShape, SequenceInput, SequenceOutput, StepOutput,
};

use super::convert::{to_f64, weights_f64};

/// Weights and inputs widened to `f64` (exact), owned.
struct Wide {
    weights: Vec<crate::OwnedLayerWeights<f64>>,
    x: Vec<f64>,
    h0: Option<Vec<f64>>,
    c0: Option<Vec<f64>>,
}

impl Wide {
    fn new(weights: &[LayerWeights<'_, f32>], input: &SequenceInput<'_, f32>) -> Self {
        Wide {
            weights: weights.iter().map(weights_f64).collect(),
            x: to_f64(input.x),
            h0: input.h0.map(to_f64),
            c0: input.c0.map(to_f64),
        }
    }

    /// The input, with `input`'s lengths.
    fn input<'a>(&'a self, input: &SequenceInput<'a, f32>) -> SequenceInput<'a, f64> {
        SequenceInput {
            x: &self.x,
            h0: self.h0.as_deref(),
            c0: self.c0.as_deref(),
            seq_lens: input.seq_lens,
            attention: None,
        }
    }
}

/// [`forward`] in `f64` on `f32` weights and inputs.
pub fn forward_f64(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, f32>],
    shape: SeqShape,
    input: SequenceInput<'_, f32>,
) -> Result<SequenceOutput<f64>> {
    let w = Wide::new(weights, &input);
    forward(cfg, &views(&w.weights), shape, w.input(&input))
}

/// [`step`] in `f64` on `f32` weights and inputs.
pub fn step_f64(
    cfg: &RnnConfig,
    weights: &LayerWeights<'_, f32>,
    batch: usize,
    x: &[f32],
    h: &[f32],
    c: Option<&[f32]>,
) -> Result<StepOutput<f64>> {
    let w = weights_f64(weights);
    step(
        cfg,
        &w.view(),
        batch,
        &to_f64(x),
        &to_f64(h),
        c.map(to_f64).as_deref(),
    )
}

/// [`backward`] in `f64` on `f32` weights, inputs and upstream gradients.
pub fn backward_f64(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, f32>],
    shape: SeqShape,
    input: SequenceInput<'_, f32>,
    grads: OutputGrads<'_, f32>,
) -> Result<Gradients<f64>> {
    let w = Wide::new(weights, &input);
    let (dy, dh_n, dc_n) = (
        to_f64(grads.dy),
        grads.dh_n.map(to_f64),
        grads.dc_n.map(to_f64),
    );
    backward(
        cfg,
        &views(&w.weights),
        shape,
        w.input(&input),
        OutputGrads {
            dy: &dy,
            dh_n: dh_n.as_deref(),
            dc_n: dc_n.as_deref(),
        },
    )
}

/// The smallest distance of a clipped or relu gate argument of the f64 forward on
/// these `f32` values to its kink (see [`Point::kink_margin`](super::gradcheck::Point)).
pub fn kink_margin_f64(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, f32>],
    shape: SeqShape,
    input: SequenceInput<'_, f32>,
) -> f64 {
    let w = Wide::new(weights, &input);
    crate::backward::kink_margin(cfg, &views(&w.weights), shape, &w.input(&input))
}
