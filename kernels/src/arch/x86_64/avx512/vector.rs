//! [`V16`] for one AVX-512 register (`__m512`).
//!
//! Needs `avx512f` only (`_mm512_cvtph_ps` is AVX512F). Every method is
//! `#[inline(always)]` so it inlines into the AVX-512 path's `#[target_feature]` entry
//! point that instantiates it.

use core::arch::x86_64::*;

use crate::simd::V16;

// SAFETY: every method only uses `avx512f` intrinsics (plus unaligned 64-byte
// loads/stores through the caller's pointers); the trait contract requires callers to
// have detected `avx512f` before using `__m512` as a `V16`.
unsafe impl V16 for __m512 {
    #[inline(always)]
    unsafe fn activation(self, a: rnn_reference::Activation) -> Self {
        // SAFETY: the AVX-512 features were detected (trait contract), as the entry's features require.
        unsafe { super::activation_entry(self, a) }
    }

    #[inline(always)]
    unsafe fn activation_slope(self, a: rnn_reference::Activation) -> (Self, Self) {
        // SAFETY: as above.
        unsafe { super::activation_slope_entry(self, a) }
    }

    // 32 zmm: 24 accumulators + 4 weights + broadcast fit.
    const MAX_ACC: usize = 24;
    // 24 rows (6 KiB of an f32 panel) ahead: 16 gained less, 32 no more.
    const PANEL_AHEAD: usize = 24;

    #[inline(always)]
    unsafe fn transpose16(rows: &mut [Self; 16]) {
        // SAFETY: avx512f was detected (trait contract).
        unsafe {
            let r = rows;
            // 1: lanes 2q, 2q+1 of rows 2i, 2i+1 interleaved within each 128-bit lane.
            let mut t = [_mm512_setzero_ps(); 16];
            for i in 0..8 {
                t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            // 2: 64-bit pairs of rows 4i..4i+4: r[4i + j] holds, in each 128-bit lane
            // L, elements 4L + j of those four rows.
            let pd = _mm512_castps_pd;
            for i in 0..4 {
                let (a, b, c, d) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]);
                r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(a), pd(c)));
                r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(a), pd(c)));
                r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(b), pd(d)));
                r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(b), pd(d)));
            }
            // 3: the 128-bit lanes across the four row groups: column 4L + j gathers
            // lane L of r[j], r[4 + j], r[8 + j], r[12 + j].
            for j in 0..4 {
                let (a, b, c, d) = (r[j], r[4 + j], r[8 + j], r[12 + j]);
                let ab_lo = _mm512_shuffle_f32x4::<0x44>(a, b);
                let ab_hi = _mm512_shuffle_f32x4::<0xEE>(a, b);
                let cd_lo = _mm512_shuffle_f32x4::<0x44>(c, d);
                let cd_hi = _mm512_shuffle_f32x4::<0xEE>(c, d);
                t[j] = _mm512_shuffle_f32x4::<0x88>(ab_lo, cd_lo);
                t[4 + j] = _mm512_shuffle_f32x4::<0xDD>(ab_lo, cd_lo);
                t[8 + j] = _mm512_shuffle_f32x4::<0x88>(ab_hi, cd_hi);
                t[12 + j] = _mm512_shuffle_f32x4::<0xDD>(ab_hi, cd_hi);
            }
            *r = t;
        }
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: avx512f was detected (trait contract).
        unsafe { _mm512_set1_ps(x) }
    }

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: avx512f was detected (trait contract).
        unsafe { _mm512_setzero_ps() }
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: avx512f was detected and `p` is valid for 16 reads (trait contract);
        // `loadu` has no alignment requirement.
        unsafe { _mm512_loadu_ps(p) }
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: avx512f was detected and `p` is valid for 16 writes (trait contract);
        // `storeu` has no alignment requirement.
        unsafe { _mm512_storeu_ps(p, self) }
    }

    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        // SAFETY: avx512f was detected (trait contract).
        unsafe { _mm512_add_ps(self, o) }
    }

    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        // SAFETY: avx512f was detected (trait contract).
        unsafe { _mm512_sub_ps(self, o) }
    }

    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        // SAFETY: avx512f was detected (trait contract).
        unsafe { _mm512_mul_ps(self, o) }
    }

    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        // SAFETY: avx512f was detected (trait contract).
        unsafe { _mm512_div_ps(self, o) }
    }

    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: avx512f was detected (trait contract).
        unsafe { _mm512_fmadd_ps(self, b, c) }
    }

    #[inline(always)]
    unsafe fn min_keep_nan(self, o: Self) -> Self {
        // `vminps a, b` returns its second operand `b` when either is NaN, so
        // `self` goes second.
        // SAFETY: avx512f was detected (trait contract).
        unsafe { _mm512_min_ps(o, self) }
    }

    #[inline(always)]
    unsafe fn max_keep_nan(self, o: Self) -> Self {
        // `vmaxps a, b` returns its second operand when either is NaN.
        // SAFETY: avx512f was detected (trait contract).
        unsafe { _mm512_max_ps(o, self) }
    }

    #[inline(always)]
    unsafe fn abs(self) -> Self {
        // SAFETY: avx512f was detected (trait contract).
        unsafe { _mm512_abs_ps(self) }
    }

    #[inline(always)]
    unsafe fn copysign(self, sign: Self) -> Self {
        // Bitwise select with the sign mask: imm 0xD8 is `c ? b : a` for
        // (a, b, c) = (self, sign, mask).
        // SAFETY: avx512f was detected (trait contract).
        unsafe {
            let mask = _mm512_set1_epi32(i32::MIN);
            _mm512_castsi512_ps(_mm512_ternarylogic_epi32::<0xD8>(
                _mm512_castps_si512(self),
                _mm512_castps_si512(sign),
                mask,
            ))
        }
    }

    #[inline(always)]
    unsafe fn round_nearest(self) -> Self {
        // SAFETY: avx512f was detected (trait contract).
        unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self) }
    }

    #[inline(always)]
    unsafe fn ldexp(self, n: Self) -> Self {
        // `vscalefps` computes `self * 2^floor(n)` with a single rounding over the
        // whole exponent range, so it meets (and exceeds) the trait's contract.
        // SAFETY: avx512f was detected (trait contract).
        unsafe { _mm512_scalef_ps(self, n) }
    }

    #[inline(always)]
    unsafe fn select_lt(self, o: Self, a: Self, b: Self) -> Self {
        // SAFETY: avx512f was detected (trait contract).
        unsafe {
            let lt = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(self, o);
            _mm512_mask_blend_ps(lt, b, a)
        }
    }

    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> Self {
        // SAFETY: the caller guarantees avx512f (`vcvtph2ps` on zmm is AVX512F) and 16
        // readable u16 at `p`.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
    }

    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> Self {
        // SAFETY: as above; zero-extend each u16 to u32 and shift it into the high half,
        // which is exactly the f32 with that bf16's bits.
        unsafe {
            let wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast()));
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(wide))
        }
    }

    #[inline(always)]
    unsafe fn store_codes(self, p: *mut u8) {
        // SAFETY: avx512f was detected (trait contract); the caller guarantees 16
        // writable bytes. `vcvttps2dq` turns NaN into i32::MIN, which the max with 0
        // makes 0 (as `as u8` does); lanes in 0..=255 narrow exactly (`vpmovdb`).
        unsafe {
            let i = _mm512_max_epi32(_mm512_cvttps_epi32(self), _mm512_setzero_si512());
            _mm_storeu_si128(p.cast(), _mm512_cvtepi32_epi8(i));
        }
    }

    #[inline(always)]
    unsafe fn load_bf16_pair(p: *const u16) -> (Self, Self) {
        // SAFETY: the caller guarantees avx512f and 32 readable u16 at `p`. Each u32
        // lane holds (low: first vector's bf16, high: second's); shifting the low half
        // up, or masking the high half in place, gives exactly those f32 bit patterns.
        unsafe {
            let x = _mm512_loadu_si512(p.cast());
            (
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(x)),
                _mm512_castsi512_ps(_mm512_and_si512(
                    x,
                    _mm512_set1_epi32(0xFFFF_0000u32 as i32),
                )),
            )
        }
    }
}
