//! ISA-independent kernel code, written once against [`V16`](crate::arch::vector::V16)
//! and instantiated per instruction set inside `#[target_feature]` functions.
//!
//! A recurrent step is oneDNN's "GEMM + post-GEMM elementwise pass", fused per register
//! tile: [`microkernel`] accumulates `rows x (np * 16)` outputs over the whole `k`,
//! and an [`epilogue`] finishes them (bias, gates, cell update) while they are still in
//! registers. [`phase`] walks panels and row blocks.

pub(crate) mod epilogue;
pub(crate) mod microkernel;
pub(crate) mod phase;
