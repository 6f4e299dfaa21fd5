//! AVX-512 paths: one `zmm` per 16-unit tile, 32 registers, so blocks of up to 24
//! accumulators (6 rows x 4 vectors). [`Avx512Bf16`] is the same code plus the
//! `vdpbf16ps` input projection ([`dot_bf16`]).

pub(crate) mod dot8;
pub(crate) mod dot_bf16;
pub(crate) mod vector;

use core::arch::x86_64::__m512;
use std::ops::Range;

use crate::arch::x86_64::amx;
use crate::arch::x86_64::avx2::dot8::{MaddWords, Maddubs};
use crate::arch::{
    define_activation_entries, define_backend, define_i8_entry, impl_backend, Backend, Blocked,
    Path,
};
use crate::element::Storage;
use crate::isa::{isa_features, Isa};
use crate::kernel::walk::Job;
use crate::kernel::walk_i8::{Job8, Matrix8};
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

/// The AVX-512 paths' int8 product on this CPU (see `crate::int8_product`): as
/// [`panels_i8`] chooses.
fn int8_product() -> &'static str {
    match (has_vnni(), amx::available()) {
        (true, true) => "amx+vpdpbusd",
        (true, false) => "vpdpbusd",
        (false, _) => "vpmaddubsw/vpmaddwd",
    }
}
isa_features!(
    avx512,
    define_activation_entries!(vector: __m512, features:)
);

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

    fn int8_product() -> &'static str {
        int8_product()
    }

    #[inline(always)]
    unsafe fn panels_i8<const NP: usize, E: Epilogue<__m512, NP>>(
        job: &Job8<NP>,
        panels: Range<usize>,
        reverse: bool,
        epi: &E,
        pairs_fit: bool,
    ) {
        // SAFETY: AVX512-BF16's features include AVX-512's; forwarded contract.
        unsafe { Avx512::panels_i8(job, panels, reverse, epi, pairs_fit) }
    }
}

// The int8 products of the AVX-512 paths. AVX512-VNNI is not part of the paths'
// feature lists (a CPU with AVX-512F but without VNNI still runs them): it is detected
// here, once per call, and its `#[target_feature]` added to the one entry that uses it.
isa_features!(
    avx512,
    define_i8_entry!(
        /// `vpdpbusd` (exact for every code).
        vnni, vector: __m512, dot: dot8::Vnni, extra: ["avx512vnni"], features:
    )
);
// AVX-512F implies AVX2, so the AVX2 integer micro-kernels serve CPUs without VNNI.
isa_features!(
    avx512,
    define_i8_entry!(
        /// `vpdpbusd`, with AMX's tiles for the full 16-row blocks.
        vnni_amx, vector: __m512, dot: dot8::Vnni, matrix: crate::arch::x86_64::amx::Amx,
        extra: ["avx512vnni"], features:
    )
);
isa_features!(
    avx512,
    define_i8_entry!(
        /// `vpmaddubsw` per pair (exact only when the pairs fit in `i16`).
        madd_fast, vector: __m512, dot: Maddubs, extra: ["avx2"], features:
    )
);
isa_features!(
    avx512,
    define_i8_entry!(
        /// `vpmaddwd` on codes widened to words (exact for every code).
        madd_words, vector: __m512, dot: MaddWords, extra: ["avx2"], features:
    )
);

/// Whether this CPU has AVX512-VNNI (the `vpdpbusd` product). `RNN_KERNELS_NO_VNNI`
/// set to anything makes it `false`, so the tests can run the `vpmaddubsw` products
/// of the AVX-512 path on a VNNI machine.
pub(crate) fn has_vnni() -> bool {
    static VNNI: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *VNNI.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512vnni")
            && std::env::var_os("RNN_KERNELS_NO_VNNI").is_none()
    })
}

/// The int8 product of the AVX-512 path: `vpdpbusd` with AVX512-VNNI, else the AVX2
/// products (`vpmaddubsw` when the pairs fit, else `vpmaddwd` on widened codes).
///
/// # Safety
/// AVX-512's features were detected; `walk_i8::run`'s contract.
#[inline(always)]
unsafe fn panels_i8<const NP: usize, E: Epilogue<__m512, NP>>(
    job: &Job8<NP>,
    panels: Range<usize>,
    reverse: bool,
    epi: &E,
    pairs_fit: bool,
) {
    // SAFETY: `vnni` only after detecting AVX512-VNNI, `vnni_amx` also after detecting
    // AMX and the permission to use it; `madd_fast` only when no pair
    // can saturate; forwarded contract.
    unsafe {
        if has_vnni() {
            // The tile unit takes a product's full 16-row blocks (the same sums).
            if amx::available() && amx::Amx::takes(job.k4, NP) {
                vnni_amx::<NP, E>(job, panels, reverse, epi)
            } else {
                vnni::<NP, E>(job, panels, reverse, epi)
            }
        } else if pairs_fit {
            madd_fast::<NP, E>(job, panels, reverse, epi)
        } else {
            madd_words::<NP, E>(job, panels, reverse, epi)
        }
    }
}
