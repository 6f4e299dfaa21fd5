//! # rnn-kernels
//!
//! Hand-vectorized, fused-gate RNN / LSTM / GRU forward and backward kernels for CPUs,
//! with runtime instruction-set dispatch (AVX-512 with or without AVX512-BF16,
//! AVX2+FMA, portable); training is [`PackedRnn::forward_train`] then
//! [`PackedRnn::backward`].
//! Results match PyTorch `nn.RNN/LSTM/GRU` and the ONNX `RNN/LSTM/GRU` operators; the
//! math is defined by the naive [`rnn_reference`] crate and every kernel path is tested
//! against it.
//!
//! ```rust
//! use rnn_kernels::{CellKind, Direction, LayerWeights, PackedRnn, RnnConfig, SeqShape,
//!     SequenceInput, SequenceOutputMut, Workspace};
//!
//! fn main() -> Result<(), rnn_kernels::Error> {
//!     // A 2-layer bidirectional PyTorch-style LSTM: I = 80, H = 256.
//!     let cfg = RnnConfig::new(CellKind::LSTM, 80, 256)
//!         .with_layers(2)
//!         .with_direction(Direction::Bidirectional);
//!
//!     // One weight set per (layer, direction), in the order layer * D + direction
//!     // (l0 forward, l0 reverse, l1 forward, l1 reverse), PyTorch layout and gate order:
//!     // w_ih [4H, I_l], w_hh [4H, H], b_ih and b_hh [4H], where I_l is the input width of
//!     // layer l: I for layer 0, D * H = 512 after it. `cfg.weight_lens(l)` gives the lengths.
//!     // Zeros here; your tensors (any `&[f32]`) in practice.
//!     let tensors: Vec<[Vec<f32>; 4]> = (0..cfg.num_weight_sets())
//!         .map(|k| {
//!             let n = cfg.weight_lens(k / cfg.num_directions());
//!             [vec![0.0; n.w_ih], vec![0.0; n.w_hh], vec![0.0; n.bias], vec![0.0; n.bias]]
//!         })
//!         .collect();
//!     let sets: Vec<LayerWeights<f32>> = tensors
//!         .iter()
//!         .map(|[w_ih, w_hh, b_ih, b_hh]| LayerWeights::new(w_ih, w_hh).with_bias(b_ih, b_hh))
//!         .collect();
//!     let rnn = PackedRnn::from_pytorch(&cfg, &sets)?; // validates and packs once
//!
//!     let (t, b) = (100, 4);
//!     let shape = SeqShape::new(t, b); // time-major: x [T, B, I], y [T, B, D * H]
//!     let dims = shape.dims(&cfg)?; // every length the call needs
//!     let x = vec![0.5f32; dims.x];
//!     let (mut y, mut h_n, mut c_n) = (vec![0.0; dims.y], vec![0.0; dims.h], vec![0.0; dims.c]);
//!     let mut ws = Workspace::new(); // reuse it: no allocation after the first call
//!     let out = SequenceOutputMut { y: &mut y, h_n: Some(&mut h_n), c_n: Some(&mut c_n) };
//!     rnn.forward(&mut ws, shape, SequenceInput::new(&x), out)?;
//!     assert_eq!(y.len(), t * b * 2 * 256);
//!     Ok(())
//! }
//! ```
//!
//! ## Where to start
//!
//! * **A trained model file**: the `models` module (features `safetensors`, `onnx`, or
//!   `models` for both): `models::SafetensorsRnn` reads a PyTorch `state_dict`,
//!   `models::OnnxModel` the `LSTM` / `GRU` / `RNN` nodes of an ONNX graph; both give
//!   a [`PackedRnn`]. The `run_model` example runs one on a case file.
//! * **Weights in memory**: an [`RnnConfig`] and one [`LayerWeights`] per layer and
//!   direction (PyTorch layout) into [`PackedRnn::from_pytorch`], or ONNX tensors
//!   ([`OnnxWeights`]) into [`PackedRnn::from_onnx`]; [`PackedRnn::pack`] stores them
//!   as `f16` / `bf16`.
//! * **Whole sequences**: [`PackedRnn::forward`] with a [`SeqShape`] (steps, batch,
//!   layout), [`SequenceInput`] (`x`, optional `h0`, `c0`, `seq_lens`),
//!   [`SequenceOutputMut`] and a reusable [`Workspace`].
//! * **Streaming**: [`PackedCell::step`], one layer one step at a time.
//! * **Training**: [`PackedRnn::forward_train`] then [`PackedRnn::backward`] with a
//!   [`TrainingWorkspace`] (backpropagation through time, every variant).
//! * **Errors**: one [`Error`] type; every bad argument is named (`docs/errors.md`).
//! * **Instruction set**: [`Isa`]; `RNN_KERNELS_ISA=avx512bf16|avx512|avx2|portable`
//!   forces one.
//!
//! ## Facts easy to miss
//!
//! * Weight sets are a slice in the order `layer * D + direction` (forward before
//!   reverse); `w_ih` of layer `l` is `[G*H, I_l]` where `I_l` is `I` for layer 0 and
//!   `D * H_out` after it ([`RnnConfig::layer_input_size`], [`RnnConfig::weight_lens`]).
//! * Weights are stored as `W` (`f32`, `half::f16`, `half::bf16`); the inputs and
//!   outputs of a call share one type `T` of the same three, chosen per call,
//!   independent of `W`. Arithmetic is `f32`.
//! * A call uses the rayon pool of the calling thread: the pool of an enclosing
//!   `pool.install(..)`, else rayon's global pool (by default one worker per logical
//!   CPU, so all cores; `RAYON_NUM_THREADS` sets it). Work is split only when a step is
//!   large enough; results are bit-identical for any thread count.
//! * `x` / `y` are time-major `[T, B, ·]` unless the [`SeqShape`] says batch-major;
//!   states are `[L*D, B, ·]` with the same `layer * D + direction` index.

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
// - `sequence`, `packed_cell`, `training`: the drivers (whole sequences, single steps,
//   the training forward and the backward)
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
mod output;
mod packed;
mod workspace;

mod packed_cell;
mod sequence;
mod sequence_aligned;
mod training;

#[cfg(any(feature = "safetensors", feature = "onnx"))]
pub mod models;

// The README's code blocks, compiled (and the runnable ones run) as doctests; those that
// load model files need the `models` feature, which CI's `cargo test --features models`
// turns on. Its Usage example is also this page's, which runs without features
// (`kernels/tests/readme.rs` keeps the two identical).
#[cfg(all(doctest, feature = "models"))]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

/// The `half` crate, whose `f16` and `bf16` are this crate's half-precision types.
pub use dispatch::int8_product;
pub use element::{Element, WeightType};
pub use half;
pub use isa::{Isa, ISA_ENV};
pub use output::PackedOutput;
pub use packed::PackedRnn;
pub use packed_cell::{PackedCell, StepInput, StepOutputMut};
pub use rnn_reference::quant::{
    ActivationQuant, Codes, DynamicQuantizeLstmWeights, OwnedQuantizedLayerWeights,
    QuantizedLayerWeights, QuantizedMatrix,
};
pub use rnn_reference::{
    import_onnx, views, Activation, CellKind, Direction, Error, GateActivations, GateCoupling,
    GruVariant, LayerWeights, LstmVariant, OnnxWeights, OutputActivation, OutputConfig,
    OwnedLayerWeights, Result, RnnActivation, RnnConfig, RnnVariant, SeqShape, SequenceInput,
    TensorLayout,
};
pub use sequence::SequenceOutputMut;
pub use training::{
    Activations, BackwardProfile, GradientsMut, LayerGradsMut, OnnxGradsMut, OutputGrads,
    TrainingWorkspace,
};
pub use workspace::Workspace;
