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

// The module graph, bottom to top (a module only imports modules above it in this
// list; `cargo test` checks nothing here, the README's "Architecture" section explains
// where each kind of change goes):
//
// - utilities: `aligned` (buffers), `parallel` (thread team), `isa` (paths and their
//   feature lists)
// - `simd`: the vector trait `V16` and the activations over it
// - `element`: element types and how weights are stored and widened
// - `pack`: weight matrices as panels whose width is part of their type
// - `kernel`: generic algorithms over `V16` (micro-kernel, panel walk, `Store`)
// - `arch`: per-ISA vector types and backends (`#[target_feature]` instantiations),
//   and `dispatch`, the only way to reach one
// - `passes`: a product split over the team
// - `cells`: one home per cell kind (packing recipe, epilogues, passes of a step)
// - `dispatch`: the table of a detected ISA for the drivers
// - `packed`, `workspace`, `io`: packed weights, scratch, callers' tensors as f32
// - `sequence`, `packed_cell`: the drivers (whole sequences, single steps)
// - `models`: file loaders (features `safetensors`, `onnx`) over the public API only

mod aligned;
mod isa;
mod parallel;

mod simd;

mod element;

mod pack;

mod kernel;

mod arch;

mod passes;

mod cells;

mod dispatch;

mod io;
mod packed;
mod workspace;

mod packed_cell;
mod sequence;

#[cfg(any(feature = "safetensors", feature = "onnx"))]
pub mod models;

pub use element::Element;
/// The `half` crate, whose `f16` and `bf16` are this crate's half-precision types.
pub use half;
pub use isa::{Isa, ISA_ENV};
pub use packed::PackedRnn;
pub use packed_cell::{PackedCell, StepInput, StepOutputMut};
pub use rnn_reference::{
    import_onnx, views, CellKind, Direction, Error, GateCoupling, GruVariant, LayerWeights,
    LstmVariant, OnnxWeights, OwnedLayerWeights, Result, RnnActivation, RnnConfig, RnnVariant,
    SeqShape, SequenceInput, TensorLayout,
};
pub use sequence::SequenceOutputMut;
pub use workspace::Workspace;
