//! The AVX512-VNNI int8 product: `vpdpbusd` adds four `u8 × i8` products into each
//! `i32` lane in one instruction, without intermediate saturation, so it is exact for
//! every code.

use core::arch::x86_64::*;

use crate::simd::Dot8;

/// 16 `i32` sums in one `zmm`.
#[derive(Clone, Copy)]
pub(crate) struct Vnni(__m512i);

// SAFETY: every method needs AVX-512F and AVX512-VNNI (its users enter
// `#[target_feature]` code that enables both after detecting them); `vpdpbusd` (not
// the saturating `vpdpbusds`) sums exactly, wrapping only beyond `i32`.
unsafe impl Dot8 for Vnni {
    // 32 zmm: 6 rows × 4 vectors of accumulators, 4 weights, the activations.
    const MAX_ACC: usize = 24;
    const MR: usize = 6;
    type W = __m512i;
    type A = __m512i;

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: type contract.
        unsafe { Vnni(_mm512_setzero_si512()) }
    }

    #[inline(always)]
    unsafe fn load_w(p: *const i8) -> __m512i {
        // SAFETY: type contract; the caller guarantees 64 readable bytes.
        unsafe { _mm512_loadu_si512(p.cast()) }
    }

    #[inline(always)]
    unsafe fn splat_a(p: *const u8) -> __m512i {
        // SAFETY: type contract; the caller guarantees 4 readable bytes.
        unsafe { _mm512_set1_epi32(p.cast::<i32>().read_unaligned()) }
    }

    #[inline(always)]
    unsafe fn dot(self, a: __m512i, w: __m512i) -> Self {
        // SAFETY: type contract.
        unsafe { Vnni(_mm512_dpbusd_epi32(self.0, a, w)) }
    }

    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        // SAFETY: type contract.
        unsafe { Vnni(_mm512_add_epi32(self.0, o.0)) }
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut i32) {
        // SAFETY: type contract; the caller guarantees 16 writable `i32`.
        unsafe { _mm512_storeu_si512(p.cast(), self.0) }
    }
}
