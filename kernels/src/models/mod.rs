//! Loading trained models: a PyTorch `nn.LSTM` / `nn.GRU` / `nn.RNN` `state_dict` saved
//! as `.safetensors` ([`SafetensorsRnn`], feature `safetensors`), and the `LSTM` /
//! `GRU` / `RNN` nodes of an `.onnx` file ([`OnnxModel`], feature `onnx`). The feature
//! `models` enables both; without them the crate has no file-format dependency.
//!
//! Both give an [`RnnConfig`](crate::RnnConfig) read from the file and a
//! [`PackedRnn`](crate::PackedRnn) ready for [`forward`](crate::PackedRnn::forward).
//! A bad file, a tensor of the wrong shape or an ONNX attribute this crate does not
//! implement is an [`Error`] naming the tensor, attribute or node; nothing
//! panics.
//!
//! To run a model file on inputs and compare with expected outputs in one command:
//!
//! ```text
//! cargo run --release -p rnn-kernels --features models --example run_model -- \
//!     MODEL CASE.json [--prefix P] [--cell lstm|gru|rnn-tanh|rnn-relu]
//! ```

#[cfg(feature = "onnx")]
mod onnx;
#[cfg(feature = "safetensors")]
mod safetensors;
mod tensor;

#[cfg(feature = "onnx")]
pub use self::onnx::{OnnxInputs, OnnxModel, OnnxOutputs, OnnxRnn};
#[cfg(feature = "safetensors")]
pub use self::safetensors::{LoadOptions, SafetensorsRnn};
pub use tensor::Dtype;

use crate::Error;

/// An [`Error::Invalid`] (the variant every loader error uses).
fn invalid(
    arg: impl Into<String>,
    expected: impl Into<String>,
    actual: impl std::fmt::Display,
) -> Error {
    Error::Invalid {
        arg: arg.into(),
        expected: expected.into(),
        actual: actual.to_string(),
    }
}

/// A file that cannot be opened or read.
fn read_error(path: &std::path::Path, e: std::io::Error) -> Error {
    invalid(path.display().to_string(), "a readable file", e)
}
