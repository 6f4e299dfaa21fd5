//! The f64 reference run on `f32` values (widened exactly): what every kernel path and
//! fuzz target is compared with.

use crate::{
    forward, step, views, LayerWeights, Result, RnnConfig, SeqShape, SequenceInput, SequenceOutput,
    StepOutput,
};

use super::convert::{to_f64, weights_f64};

/// [`forward`] in `f64` on `f32` weights and inputs.
pub fn forward_f64(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, f32>],
    shape: SeqShape,
    input: SequenceInput<'_, f32>,
) -> Result<SequenceOutput<f64>> {
    let owned: Vec<_> = weights.iter().map(weights_f64).collect();
    let (x, h0, c0) = (to_f64(input.x), input.h0.map(to_f64), input.c0.map(to_f64));
    forward(
        cfg,
        &views(&owned),
        shape,
        SequenceInput {
            x: &x,
            h0: h0.as_deref(),
            c0: c0.as_deref(),
            seq_lens: input.seq_lens,
            attention: None,
        },
    )
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
