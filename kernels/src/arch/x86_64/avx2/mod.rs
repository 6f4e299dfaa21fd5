//! AVX2 path: two `ymm` per 16-unit tile and 16 registers, so at most 12 accumulators:
//! blocks of 6 rows take a panel one 16-lane vector at a time (6 x 2 ymm), the
//! classic 6 x 16 AVX2 tile; batch-1 rows take a whole panel (4 vectors = 8 ymm).

pub(crate) mod dot8;
pub(crate) mod vector;

use crate::arch::{define_activation_entries, define_backend, define_i8_entry, impl_backend};
use crate::isa::{isa_features, Isa};
use dot8::{MaddWords, Maddubs};
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

/// AVX2's int8 product (see `crate::int8_product`).
fn int8_product() -> &'static str {
    "vpmaddubsw/vpmaddwd"
}
isa_features!(avx2, define_activation_entries!(vector: Avx2x2, features:));

isa_features!(
    avx2,
    define_i8_entry!(
        /// One `vpmaddubsw` per pair (exact only when the pairs fit in `i16`).
        madd_fast, vector: Avx2x2, dot: Maddubs, extra: [], features:
    )
);
isa_features!(
    avx2,
    define_i8_entry!(
        /// `vpmaddwd` on codes widened to words (exact for every code).
        madd_words, vector: Avx2x2, dot: MaddWords, extra: [], features:
    )
);

/// The int8 product: `vpmaddubsw` when the pairs fit, else `vpmaddwd` on words.
///
/// # Safety
/// AVX2's features were detected; `walk_i8::run`'s contract.
#[inline(always)]
unsafe fn panels_i8<const NP: usize, E: crate::kernel::Epilogue<Avx2x2, NP>>(
    job: &crate::kernel::walk_i8::Job8<NP>,
    panels: std::ops::Range<usize>,
    reverse: bool,
    epi: &E,
    pairs_fit: bool,
) {
    // SAFETY: forwarded contract; `madd_fast` only when no pair can saturate.
    unsafe {
        if pairs_fit {
            madd_fast::<NP, E>(job, panels, reverse, epi)
        } else {
            madd_words::<NP, E>(job, panels, reverse, epi)
        }
    }
}
