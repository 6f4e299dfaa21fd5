//! AVX2 path: two `ymm` per 16-unit tile and 16 registers, so at most 12 accumulators:
//! blocks of 6 rows take a panel one 16-lane vector at a time (6 x 2 ymm), the
//! classic 6 x 16 AVX2 tile; batch-1 rows take a whole panel (4 vectors = 8 ymm).

pub(crate) mod vector;

use vector::Avx2x2;

crate::arch::isa_kernels!(
    crate::isa::Isa::Avx2,
    Avx2x2,
    "avx2,fma,f16c",
    mr4 = 6,
    mr3 = 6,
    mr2 = 6,
    mr6 = 6
);
