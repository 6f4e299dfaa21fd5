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
    mr2 = 12
);
