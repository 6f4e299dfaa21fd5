//! The runtime transposes ([`Transpose`], [`TransposeBlocks`]) as [`SimdOp`]s, so that
//! each path runs them with its own vector type: the backward's transposed left
//! operands (`xᵀ`, `h_{t-1}ᵀ`, the output layer's `dzᵀ` and `[xᵀ; 1]`), the output
//! layer's `∂W_oᵀ` into the caller's `∂W_o`, and the transposed weight panels
//! (`pack::runtime::transpose_panels`).

use crate::kernel::SimdOp;
use crate::pack::runtime::{Transpose, TransposeBlocks};
use crate::simd::V16;

impl SimdOp for Transpose {
    type Output = ();

    #[inline(always)]
    unsafe fn run<V: V16>(self) {
        // SAFETY: the caller's contract (`Backend::run_op` with `Transpose::run`'s).
        unsafe { Transpose::run::<V>(self) }
    }
}

impl SimdOp for TransposeBlocks {
    type Output = ();

    #[inline(always)]
    unsafe fn run<V: V16>(self) {
        // SAFETY: the caller's contract (`Backend::run_op` with `TransposeBlocks::run`'s).
        unsafe { TransposeBlocks::run::<V>(self) }
    }
}
