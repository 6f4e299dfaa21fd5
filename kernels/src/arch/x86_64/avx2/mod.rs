//! AVX2 path: two `ymm` per 16-unit tile and 16 registers, so at most 12 accumulators:
//! blocks of 6 rows take a panel one 16-lane vector at a time (6 x 2 ymm), the
//! classic 6 x 16 AVX2 tile; batch-1 rows take a whole panel (4 vectors = 8 ymm).

pub(crate) mod vector;

use crate::arch::{define_backend, impl_backend};
use crate::isa::{isa_features, Isa};
use vector::Avx2x2;

isa_features!(
    avx2,
    define_backend!(
        /// AVX2 + FMA + F16C.
        Avx2,
        isa: Isa::Avx2,
        vector: Avx2x2,
        rows_per_block: { 2 => 6, 3 => 6, 4 => 6, 6 => 6 },
        features:
    )
);
impl_backend!(Avx2);
