//! The f64 reference run on `f32` values (widened exactly): what every kernel path and
//! fuzz target is compared with.

use crate::{
    backward, forward, step_with_attention, views, Gradients, LayerWeights, OutputGrads, Real,
    Result, RnnConfig, SeqShape, SequenceInput, SequenceOutput, StepOutput,
};

/// Weights and inputs converted to `T` value by value, owned.
struct Wide<T: Real> {
    weights: Vec<crate::OwnedLayerWeights<T>>,
    x: Vec<T>,
    h0: Option<Vec<T>>,
    c0: Option<Vec<T>>,
    attention: Option<Vec<T>>,
}

impl<T: Real> Wide<T> {
    fn new(
        weights: &[LayerWeights<'_, f32>],
        input: &SequenceInput<'_, f32>,
        f: impl Fn(f32) -> T + Copy,
    ) -> Self {
        let conv = |v: &[f32]| v.iter().map(|&x| f(x)).collect::<Vec<T>>();
        Wide {
            weights: weights.iter().map(|w| w.map(conv)).collect(),
            x: conv(input.x),
            h0: input.h0.map(conv),
            c0: input.c0.map(conv),
            attention: input.attention.map(conv),
        }
    }

    /// The input, with `input`'s lengths.
    fn input<'a>(&'a self, input: &SequenceInput<'a, f32>) -> SequenceInput<'a, T> {
        SequenceInput {
            x: &self.x,
            h0: self.h0.as_deref(),
            c0: self.c0.as_deref(),
            seq_lens: input.seq_lens,
            attention: self.attention.as_deref(),
        }
    }
}

/// [`forward`] in `T` on `f32` weights and inputs, each value converted by `f`.
pub fn forward_as<T: Real>(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, f32>],
    shape: SeqShape,
    input: SequenceInput<'_, f32>,
    f: impl Fn(f32) -> T + Copy,
) -> Result<SequenceOutput<T>> {
    let w = Wide::new(weights, &input, f);
    forward(cfg, &views(&w.weights), shape, w.input(&input))
}

/// One step's `(x, h, c, attention)`, as [`step_with_attention`] takes them.
pub type StepArgs<'a> = (&'a [f32], &'a [f32], Option<&'a [f32]>, Option<&'a [f32]>);

/// [`step_with_attention`] in `T` on `f32` weights and inputs, each value converted by
/// `f`.
pub fn step_as<T: Real>(
    cfg: &RnnConfig,
    weights: &LayerWeights<'_, f32>,
    batch: usize,
    (x, h, c, a): StepArgs<'_>,
    f: impl Fn(f32) -> T + Copy,
) -> Result<StepOutput<T>> {
    let conv = |v: &[f32]| v.iter().map(|&x| f(x)).collect::<Vec<T>>();
    let w = weights.map(conv);
    step_with_attention(
        cfg,
        &w.view(),
        batch,
        &conv(x),
        &conv(h),
        c.map(conv).as_deref(),
        a.map(conv).as_deref(),
    )
}

/// [`forward`] in `f64` on `f32` weights and inputs.
pub fn forward_f64(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, f32>],
    shape: SeqShape,
    input: SequenceInput<'_, f32>,
) -> Result<SequenceOutput<f64>> {
    forward_as(cfg, weights, shape, input, f64::from)
}

/// [`step_with_attention`] in `f64` on `f32` weights and inputs `(x, h, c,
/// attention)`.
pub fn step_f64(
    cfg: &RnnConfig,
    weights: &LayerWeights<'_, f32>,
    batch: usize,
    args: StepArgs<'_>,
) -> Result<StepOutput<f64>> {
    step_as(cfg, weights, batch, args, f64::from)
}

/// [`backward`] in `T` on `f32` weights, inputs and upstream gradients, each value
/// converted by `f`.
pub fn backward_as<T: Real>(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, f32>],
    shape: SeqShape,
    input: SequenceInput<'_, f32>,
    grads: OutputGrads<'_, f32>,
    f: impl Fn(f32) -> T + Copy,
) -> Result<Gradients<T>> {
    let conv = |v: &[f32]| v.iter().map(|&x| f(x)).collect::<Vec<T>>();
    let w = Wide::new(weights, &input, f);
    let (dy, dh_n, dc_n) = (conv(grads.dy), grads.dh_n.map(conv), grads.dc_n.map(conv));
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

/// [`backward`] in `f64` on `f32` weights, inputs and upstream gradients.
pub fn backward_f64(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, f32>],
    shape: SeqShape,
    input: SequenceInput<'_, f32>,
    grads: OutputGrads<'_, f32>,
) -> Result<Gradients<f64>> {
    backward_as(cfg, weights, shape, input, grads, f64::from)
}

/// How far the forward in `T` on `f32` weights and inputs (each value converted by
/// `f`) keeps its gate arguments from their kinks: the smallest ratio of an argument's
/// distance to its kink over the bound on its error that `T` tracks
/// ([`Real::error_bound`]; `inf` for a `T` that tracks none).
pub fn kink_clearance_as<T: Real>(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, f32>],
    shape: SeqShape,
    input: SequenceInput<'_, f32>,
    f: impl Fn(f32) -> T + Copy,
) -> f64 {
    let w = Wide::new(weights, &input, f);
    crate::backward::kink_margins(cfg, &views(&w.weights), shape, &w.input(&input)).clearance
}
