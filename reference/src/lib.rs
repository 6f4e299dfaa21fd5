//! # rnn-reference
//!
//! The definition of correct for `rnn-kernels`: naive scalar loops that follow the
//! cell equations line by line, generic over `f32` and `f64`, plus the problem
//! vocabulary both crates share ([`RnnConfig`], [`LayerWeights`], [`Error`], ...).
//!
//! Nothing here is fast, and nothing here shares compute code with the kernels.

mod error;
mod spec;
mod weights;

pub use error::{Error, Result};
pub use spec::{
    check_len, check_seq_lens, CellKind, Direction, RnnActivation, RnnConfig, SeqDims, SeqShape,
    TensorLayout, WeightLens,
};
pub use weights::{
    check_weights, export_onnx, import_onnx, views, LayerWeights, OnnxWeights, OwnedLayerWeights,
    OwnedOnnxWeights,
};
