//! AVX2 path: two `ymm` per 16-unit tile and 16 registers, so at most 12 accumulators
//! (1 row x 4 tiles = 8, 2 rows x 3 = 12, 3 rows x 2 = 12).

pub(crate) mod vector;

use vector::Avx2x2;

crate::arch::isa_kernels!(
    crate::isa::Isa::Avx2,
    Avx2x2,
    "avx2,fma,f16c",
    mr4 = 1,
    mr3 = 2,
    mr2 = 3
);
