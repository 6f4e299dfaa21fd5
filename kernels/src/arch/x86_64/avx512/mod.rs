//! AVX-512 path: one `zmm` per 16-unit tile, 32 registers, so blocks of up to 24
//! accumulators (6 rows x 4 vectors).

pub(crate) mod vector;

use core::arch::x86_64::__m512;

crate::arch::isa_kernels!(
    crate::isa::Isa::Avx512,
    __m512,
    "avx512f,avx512vl,fma,f16c",
    mr4 = 6,
    mr3 = 8,
    mr2 = 12,
    mr6 = 4
);

pub(crate) mod dot_bf16;

/// The AVX512-BF16 tables: the AVX-512 kernels under their own name (the only
/// difference, the `vdpbf16ps` input projection, is [`dot_bf16::gemm`]).
pub(crate) static TABLES_BF16: IsaTables = IsaTables {
    f32: table::<f32>(crate::isa::Isa::Avx512Bf16),
    f16: table::<half::f16>(crate::isa::Isa::Avx512Bf16),
    bf16: table::<half::bf16>(crate::isa::Isa::Avx512Bf16),
};
