//! # rnn-reference
//!
//! The definition of correct for `rnn-kernels`: naive scalar loops that follow the
//! cell equations line by line, generic over `f32` and `f64`, plus the problem
//! vocabulary both crates share ([`RnnConfig`], [`LayerWeights`], [`Error`], ...).
//!
//! Nothing here is fast, and nothing here shares compute code with the kernels.
//!
//! - [`step`]: one time step of one cell for a batch;
//! - [`forward`]: a whole sequence through every layer and direction;
//! - [`backward`]: backpropagation through time, the gradients of every parameter,
//!   the input and the initial states;
//! - [`import_onnx`] / [`export_onnx`]: ONNX weight layout to and from PyTorch layout;
//! - [`output_layer`]: the output layer `g(W_o·h + b_o)` over a sequence's output;
//! - [`quant`]: int8 weights with activations quantized at run time (this crate's
//!   schemes and ONNX Runtime's `DynamicQuantizeLSTM`), and their naive oracle.

#![warn(missing_docs)]

mod activation;
mod backward;
mod cell;
mod cell_kind;
mod error;
mod layer_norm;
mod output;
pub mod quant;
mod real;
mod sequence;
mod spec;
mod weights;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use activation::{onnx_activation_lists, onnx_activations, Activation, GateActivations};
pub use backward::{backward, Gradients, OutputGrads};
pub use cell::{check_attention, step, step_with_attention, StepOutput};
pub use layer_norm::LAYER_NORM_EPSILON;
pub use output::{
    output_layer, output_layer_backward, OutputActivation, OutputConfig, OutputLayerGrads,
};
pub use real::Real;
pub use sequence::{check_sequence_attention, forward, SequenceInput, SequenceOutput};

pub use cell_kind::{CellKind, GateCoupling, GruVariant, LstmVariant, RnnActivation, RnnVariant};
pub use error::{Error, Result};
pub use spec::{
    check_len, check_seq_lens, Direction, RnnConfig, SeqDims, SeqShape, TensorLayout, WeightLens,
};
pub use weights::{
    check_weights, export_onnx, import_onnx, onnx_gate_source, views, LayerWeights, OnnxWeights,
    OwnedLayerWeights, OwnedOnnxWeights, ONNX_PEEPHOLE_SOURCE,
};
