//! The runtime transpose ([`Transpose`]) as a [`SimdOp`], so that each path runs it
//! with its own vector type: the backward's transposed left operands (`xᵀ`,
//! `h_{t-1}ᵀ`, the output layer's `dzᵀ` and `[xᵀ; 1]`) and the output layer's `∂W_oᵀ`
//! into the caller's `∂W_o`.

use crate::kernel::SimdOp;
use crate::pack::runtime::Transpose;
use crate::simd::V16;

impl SimdOp for Transpose {
    type Output = ();

    #[inline(always)]
    unsafe fn run<V: V16>(self) {
        // SAFETY: the caller's contract (`Backend::run_op` with `Transpose::run`'s).
        unsafe { Transpose::run::<V>(self) }
    }
}
