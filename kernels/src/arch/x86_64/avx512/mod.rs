//! AVX-512 paths: one `zmm` per 16-unit tile, 32 registers, so blocks of up to 24
//! accumulators (6 rows x 4 vectors). [`Avx512Bf16`] is the same code plus the
//! `vdpbf16ps` input projection ([`dot_bf16`]).

pub(crate) mod dot_bf16;
pub(crate) mod vector;

use core::arch::x86_64::__m512;
use std::ops::Range;

use crate::arch::{define_backend, impl_backend, Backend, Blocked, Path};
use crate::element::Storage;
use crate::isa::{isa_features, Isa};
use crate::kernel::walk::Job;
use crate::kernel::{Epilogue, SimdOp};

isa_features!(
    avx512,
    define_backend!(
        /// AVX-512F/VL + FMA + F16C.
        Avx512,
        isa: Isa::Avx512,
        vector: __m512,
        rows_per_block: { 2 => 12, 3 => 8, 4 => 6, 6 => 4 },
        features:
    )
);
impl_backend!(Avx512);

/// [`Avx512`] plus AVX512-BF16: the AVX-512 kernels themselves (no second copy of
/// them), and the `vdpbf16ps` input projection.
#[derive(Clone, Copy)]
pub(crate) struct Avx512Bf16;

impl Path for Avx512Bf16 {
    const ISA: Isa = Isa::Avx512Bf16;
    type V = __m512;
}

/// Every width as on [`Avx512`].
macro_rules! blocked_as_avx512 {
    ($($np:literal),*) => {$(
        impl Blocked<$np> for Avx512Bf16 {
            const MR: usize = <Avx512 as Blocked<$np>>::MR;

            #[inline(always)]
            unsafe fn panels<W: Storage, E: Epilogue<__m512, $np>>(
                job: &Job<W, $np>,
                panels: Range<usize>,
                reverse: bool,
                epi: &E,
            ) {
                // SAFETY: AVX512-BF16's features include AVX-512's; forwarded contract.
                unsafe { <Avx512 as Blocked<$np>>::panels(job, panels, reverse, epi) }
            }
        }
    )*};
}
blocked_as_avx512!(2, 3, 4, 6);

impl Backend for Avx512Bf16 {
    #[inline(always)]
    unsafe fn run_op<O: SimdOp>(op: O) -> O::Output {
        // SAFETY: AVX512-BF16's features include AVX-512's; forwarded contract.
        unsafe { Avx512::run_op(op) }
    }

    fn dot_bf16() -> Option<crate::arch::DotFn> {
        Some(dot_bf16::gemm)
    }
}
