//! The `f32` reference on int8 weights' dequantized values, with the bound on an int8
//! implementation's error against it ([`forward_dequantized`]).

use super::{forward_bounded, Expected, Int8OnnxRuntime, Int8PerRow, Int8PerRowReduced};
use crate::quant::{check_quantized_weights, ActivationQuant, QuantizedLayerWeights};
use crate::{views, Error, OwnedLayerWeights, Result, RnnConfig, SeqShape, SequenceInput};

/// [`forward_bounded`] on the dequantized weights (`(code − zp) · scale` in `f32`,
/// [`QuantizedLayerWeights::dequantize`]) under the int8 error model of `scheme`: the
/// f64 reference of the `f32` math on those weights, and per output element a
/// rigorous bound on how far an implementation with int8 products (activations
/// quantized per `scheme`, `f32` after the products, the kernels' activations) may be
/// from it. The bound is the kernels' `f32` error bound with every operand of every
/// product widened by its quantization error, `B s` with `B = ½ + 4u·qmax` and `s`
/// bounded from the operand block's interval, plus `5u` of its magnitude for the
/// product's own roundings ([`crate::quant::error`] derives both).
///
/// For [`ActivationQuant::OnnxRuntime`], whose recurrent blocks span the batch, the
/// reference's step must see each block whole: one row, or rows of one length
/// without a second product (a projection, a reset-before GRU's `r ⊙ h`); other
/// problems are refused (`Err` naming `scheme`).
pub fn forward_dequantized(
    cfg: &RnnConfig,
    weights: &[QuantizedLayerWeights<'_>],
    scheme: ActivationQuant,
    shape: SeqShape,
    input: SequenceInput<'_, f32>,
) -> Result<Expected> {
    check_quantized_weights(cfg, weights)?;
    if scheme == ActivationQuant::OnnxRuntime && !onnx_blocks_fit(cfg, shape, &input) {
        return Err(Error::invalid(
            "scheme",
            "a scheme whose blocks the reference's steps see whole (OnnxRuntime: one \
             row, or rows of one length without a second product)",
            format!("{scheme:?} at batch {}", shape.batch),
        ));
    }
    let deq: Vec<OwnedLayerWeights<f32>> = weights
        .iter()
        .enumerate()
        .map(|(n, w)| w.dequantize(cfg, n / cfg.num_directions()))
        .collect();
    let w = views(&deq);
    match scheme {
        ActivationQuant::PerRow => forward_bounded::<Int8PerRow>(cfg, &w, shape, input),
        ActivationQuant::PerRowReduced => {
            forward_bounded::<Int8PerRowReduced>(cfg, &w, shape, input)
        }
        ActivationQuant::OnnxRuntime => forward_bounded::<Int8OnnxRuntime>(cfg, &w, shape, input),
    }
}

/// Whether every ONNX Runtime block of `h` and of a second operand is what the
/// reference's step passes to [`Real::product_operand`](crate::Real::product_operand):
/// the step's rows are then all the batch's (every row runs every step: ONNX Runtime
/// adds no ended row's state), and a second operand is one row's. `x`'s block, the
/// whole call, lies within the layer input [`forward`](crate::forward) passes.
fn onnx_blocks_fit(cfg: &RnnConfig, shape: SeqShape, input: &SequenceInput<'_, f32>) -> bool {
    if shape.batch == 1 {
        return true;
    }
    let one_length = input.seq_lens.is_none_or(|l| l.iter().all(|&n| n == l[0]));
    let second =
        cfg.cell.proj_size().is_some() || cfg.cell.gru().is_some_and(|g| !g.linear_before_reset);
    one_length && !second
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{quantize_weights, quantized_views};
    use crate::testkit::bound::Kernels;
    use crate::testkit::{problem, variants};

    /// The quantization error widens the `f32` bound, twice as much with 7-bit codes;
    /// ONNX Runtime's batch-wide blocks are refused where the reference's steps would
    /// split them.
    #[test]
    fn widens_the_f32_bound_and_refuses_split_blocks() {
        let mut p = problem(3, (6, 5, 3, 4), 2, Some(variants::GRU_ONNX));
        // The standard functions: the ratios below are those of a gated cell.
        p.cfg.activations = None;
        let q = quantize_weights(&p.cfg, &views(&p.weights)).unwrap();
        let q = quantized_views(&q);
        let run = |s| forward_dequantized(&p.cfg, &q, s, p.shape, p.input());
        let deq: Vec<_> = q
            .iter()
            .enumerate()
            .map(|(n, w)| w.dequantize(&p.cfg, n / p.cfg.num_directions()))
            .collect();
        let f32_only = forward_bounded::<Kernels>(&p.cfg, &views(&deq), p.shape, p.input());
        let (f, a, b) = (
            f32_only.unwrap(),
            run(ActivationQuant::PerRow).unwrap(),
            run(ActivationQuant::PerRowReduced).unwrap(),
        );
        assert_eq!(a.want, f.want);
        let sum = |v: &[f64]| v.iter().sum::<f64>();
        let (bf, ba, bb) = (sum(&f.bound.y), sum(&a.bound.y), sum(&b.bound.y));
        assert!(ba > 100.0 * bf, "{ba} {bf}");
        assert!(bb > 1.8 * ba && bb < 2.5 * ba, "{bb} {ba}");
        // A reset-before GRU at batch 3: its r ⊙ h block spans the batch.
        let e = run(ActivationQuant::OnnxRuntime).unwrap_err();
        assert_eq!(e.arg(), "scheme");
    }
}
