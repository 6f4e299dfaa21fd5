//! Portable path: four 128-bit `wide` vectors per 16-unit tile (SSE2 on x86_64, NEON
//! on aarch64, scalar code on targets `wide` has no SIMD for). Needs no CPU feature
//! beyond the target's baseline, so it builds wherever `std` does. Correct
//! everywhere, fast nowhere in particular: it exists for CPUs without AVX2 and as a
//! second opinion in the tests.

pub(crate) mod dot8;
pub(crate) mod vector;

use crate::arch::{define_backend, impl_backend};
use crate::isa::Isa;

/// No features: the target baseline (an empty list for `define_backend!`).
macro_rules! baseline {
    ($cb:ident!($($args:tt)*)) => {
        $cb! { $($args)* [] }
    };
}

// aarch64 has 32 vector registers: more rows per block for the narrow panels.
#[cfg(target_arch = "aarch64")]
baseline!(define_backend!(
    /// Portable `wide` code.
    Portable,
    isa: Isa::Portable,
    vector: vector::WideX4,
    rows_per_block: { 2 => 3, 3 => 2, 4 => 1, 6 => 1 },
    features:
));

#[cfg(not(target_arch = "aarch64"))]
baseline!(define_backend!(
    /// Portable `wide` code.
    Portable,
    isa: Isa::Portable,
    vector: vector::WideX4,
    rows_per_block: { 2 => 2, 3 => 1, 4 => 1, 6 => 1 },
    features:
));

impl_backend!(Portable);

/// The portable path's int8 product: integer code (see `crate::int8_product`).
fn int8_product() -> &'static str {
    "portable"
}

/// The int8 product: integer code, exact for every code (`pairs_fit` is moot).
///
/// # Safety
/// `walk_i8::run`'s contract.
#[inline(always)]
unsafe fn panels_i8<const NP: usize, E: crate::kernel::Epilogue<vector::WideX4, NP>>(
    job: &crate::kernel::walk_i8::Job8<NP>,
    panels: std::ops::Range<usize>,
    reverse: bool,
    epi: &E,
    _pairs_fit: bool,
) {
    // SAFETY: forwarded contract; the portable path needs no feature.
    unsafe {
        crate::kernel::walk_i8::run::<
            vector::WideX4,
            dot8::Dot8Portable,
            crate::kernel::walk_i8::NoMatrix,
            NP,
            E,
        >(job, panels, reverse, epi)
    }
}
