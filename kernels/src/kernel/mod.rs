//! ISA-independent kernel algorithms, written once against [`V16`](crate::simd::V16)
//! and instantiated per instruction set inside that path's `#[target_feature]`
//! functions (`arch`).
//!
//! A recurrent step is oneDNN's "GEMM + post-GEMM elementwise pass", fused per register
//! tile: [`microkernel`] accumulates `rows x (NP * 16)` outputs over the whole `k`, and
//! an [`Epilogue`] finishes them while they are still in registers: [`Store`] for a
//! plain product, a cell's gate math for a recurrent step (`cells`). [`walk`] walks
//! panels and row blocks. [`SimdOp`] is the hook for any other algorithm that is
//! generic over the vector type (elementwise passes, the int8 operand's [`quantize`],
//! tests, the backward's runtime [`transpose`]). [`walk_i8`] is the int8 product: an
//! integer micro-kernel over [`Dot8`](crate::simd::Dot8) whose exact sums become the
//! `f32` tiles the same epilogues take.

pub(crate) mod microkernel;
pub(crate) mod quantize;
mod store;
pub(crate) mod transpose;
pub(crate) mod walk;
pub(crate) mod walk_i8;

pub(crate) use store::{AddStore, Store};
pub(crate) use walk::{Epilogue, Rows};

use crate::simd::V16;

/// An algorithm generic over the vector type, run by a path inside its
/// `#[target_feature]` code (`arch::Backend::run_op`). The activation tests use it to
/// run `simd::math` through each path exactly as the kernels do.
pub(crate) trait SimdOp {
    /// What the algorithm returns.
    type Output;
    /// Runs it with vector type `V`. Implementations are `#[inline(always)]`, so the
    /// intrinsics inline into the caller's `#[target_feature]` function.
    ///
    /// # Safety
    /// `V`'s instruction set must be available, and the operation's own contract met.
    unsafe fn run<V: V16>(self) -> Self::Output;
}
