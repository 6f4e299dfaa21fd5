//! # rnn-kernels
//!
//! Hand-vectorized, fused-gate RNN / LSTM / GRU forward kernels for CPUs, with runtime
//! instruction-set dispatch (AVX-512 with or without AVX512-BF16, AVX2+FMA, portable).
//! Results match PyTorch `nn.RNN/LSTM/GRU` and the ONNX `RNN/LSTM/GRU` operators; the
//! math is defined by the naive [`rnn_reference`] crate and every kernel path is tested
//! against it.
//!
//! * [`PackedRnn`]: weights packed once (PyTorch or ONNX layout), whole sequences.
//! * [`PackedCell`]: one layer, single steps for streaming.
//! * [`Workspace`]: reusable scratch, so repeated calls do not allocate.
//! * [`Isa`]: which path runs; `RNN_KERNELS_ISA=avx512bf16|avx512|avx2|portable`
//!   forces one.
#![warn(missing_docs)]

mod aligned;
mod arch;
mod cell;
mod element;
mod forward;
mod generic;
mod isa;
mod layer;
mod pack;
mod parallel;
mod step_kernel;
mod workspace;

pub use cell::{PackedCell, StepInput, StepOutputMut};
pub use element::Element;
pub use forward::SequenceOutputMut;
/// The `half` crate, whose `f16` and `bf16` are this crate's half-precision types.
pub use half;
pub use isa::{Isa, ISA_ENV};
pub use layer::PackedRnn;
pub use rnn_reference::{
    import_onnx, CellKind, Direction, Error, LayerWeights, OnnxWeights, OwnedLayerWeights, Result,
    RnnActivation, RnnConfig, SeqShape, SequenceInput, TensorLayout,
};
pub use workspace::Workspace;
