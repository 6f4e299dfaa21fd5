//! int8 weights with activations quantized at run time ("dynamic quantization"): the
//! shared vocabulary ([`ActivationQuant`], [`QuantizedLayerWeights`], the
//! `DynamicQuantizeLSTM` importer) and the naive oracle ([`step_quantized`],
//! [`forward_quantized`]) that defines the kernels' int8 path.
//!
//! An int8 product `a × Wᵀ` is computed as ONNX Runtime computes it: the operand rows
//! `a` are quantized to `uint8` codes `q` with a scale `s_a` and zero point `zp_a`
//! ([`ActivationQuant`] says over which block and to how many bits), the weights are
//! codes `w` with a scale `s_w[n]` and zero point `zp_w[n]` per output unit (or per
//! tensor), and output `n` of row `b` is
//!
//! ```text
//! f32(s_a · s_w[n]) · f32(Σ_k (q[b,k] − zp_a)(w[n,k] − zp_w[n]))
//! ```
//!
//! with an exact integer sum and two `f32` roundings. Everything after the products
//! (biases, peepholes, clip, activations, the cell update) is the `f32` cell.

mod cell;
pub mod error;
mod onnx;
mod output;
mod params;
mod sequence;
mod weights;

pub use cell::{
    product, row_params, second_operand_error, step_from_input_products, step_quantized,
    QuantStepOutput,
};
pub use onnx::{import_dynamic_quantize_lstm, Codes, DynamicQuantizeLstmWeights};
pub use output::{check_quantized_output, output_layer_quantized, output_layer_quantized_as};
pub use params::{
    block_params, block_range, quantize, tie_margin, ActivationQuant, BlockParams, MAX_K,
};
pub use sequence::{forward_quantized, forward_quantized_as, QuantSequenceOutput};
pub use weights::{
    check_quantized_weights, quantize_matrix, quantize_weights, quantized_views,
    OwnedQuantizedLayerWeights, OwnedQuantizedMatrix, QuantizedLayerWeights, QuantizedMatrix,
};
