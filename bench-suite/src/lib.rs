//! Shared pieces of the rnn-kernels bench-suite: the benchmark configurations, the
//! FLOP count, a deterministic problem builder, the **unfused baseline** (how
//! candle- or burn-style code computes a cell: GEMMs plus separate elementwise
//! passes), a short FMA-throughput probe that measures this machine's peak, and the
//! training step (forward + backward) the `report --pass train` times.
//!
//! Used by the criterion benches (`benches/rnn.rs`) and the `report`, `bound` and
//! `widen` binaries. Every item is re-exported at the crate root.

mod configs;
mod probes;
mod problems;
mod timing;
mod train;
mod unfused;

pub use configs::{flops, step_flops, BenchConfig, Cell, CELLS, CONFIGS};
pub use probes::{dot_bf16_peak_gflops, dot_u8i8_peak_gops, fma_peak_gflops, PROBE_ACCUMULATORS};
pub use problems::{
    max_abs_diff, round_through, sequence_input, to_elem, to_f32, Problem, TypedProblem,
};
/// The deterministic generator of the problems (the workspace test kit's).
pub use rnn_reference::testkit::SplitMix64;
pub use timing::{huge_page_buffer, median, time_median, Repeats};
pub use train::{reference_grads, train_flops, upstream, Trainer};
pub use unfused::{gemm_abt, Unfused, UnfusedWorkspace};
