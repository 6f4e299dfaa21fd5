//! Portable path: four 128-bit `wide` vectors per 16-unit tile (SSE2 on x86_64, NEON
//! on aarch64). Correct everywhere, fast nowhere in particular: it exists for CPUs
//! without AVX2 and as a second opinion in the tests.

pub(crate) mod vector;

#[cfg(target_arch = "x86_64")]
crate::arch::isa_kernels!(
    crate::isa::Isa::Portable,
    vector::WideX4,
    "sse2",
    mr4 = 1,
    mr3 = 1,
    mr2 = 2,
    mr6 = 1
);

#[cfg(target_arch = "aarch64")]
crate::arch::isa_kernels!(
    crate::isa::Isa::Portable,
    vector::WideX4,
    "neon",
    mr4 = 1,
    mr3 = 2,
    mr2 = 3,
    mr6 = 1
);
