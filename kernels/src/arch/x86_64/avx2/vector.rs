//! [`V16`] for two AVX registers: [`Avx2x2`].
//!
//! Needs the AVX2 path's features (`avx2`, `fma`, `f16c`: see `isa_features!`). Every
//! method is `#[inline(always)]` so it inlines into the path's `#[target_feature]`
//! entry point that instantiates it.

use core::arch::x86_64::*;

use crate::simd::V16;

/// 16 `f32` lanes as two `__m256`: lanes 0..8 in `.0[0]`, lanes 8..16 in `.0[1]`.
#[derive(Clone, Copy)]
pub(crate) struct Avx2x2(pub(crate) [__m256; 2]);

/// Applies a two-operand intrinsic to both halves.
macro_rules! both {
    ($f:ident($a:expr $(, $b:expr)*)) => {
        Avx2x2([$f($a.0[0] $(, $b.0[0])*), $f($a.0[1] $(, $b.0[1])*)])
    };
}

/// Transposes an 8 x 8 block held as 8 rows, in place.
///
/// # Safety
/// AVX must be available (the AVX2 path detected it).
#[inline(always)]
unsafe fn transpose8(r: &mut [__m256; 8]) {
    // SAFETY: avx was detected (caller's contract).
    unsafe {
        // Pairs of rows interleaved within each 128-bit half, then pairs of pairs.
        // (No closures: they would not inherit the caller's target features.)
        let mut t = [_mm256_setzero_ps(); 8];
        for i in 0..4 {
            t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // u[4g + j] holds, in each 128-bit half H, element 4H + j of rows 4g..4g+4.
        let mut u = [_mm256_setzero_ps(); 8];
        for g in 0..2 {
            let (a, b, c, d) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
            u[4 * g] = _mm256_shuffle_ps::<0x44>(a, c);
            u[4 * g + 1] = _mm256_shuffle_ps::<0xEE>(a, c);
            u[4 * g + 2] = _mm256_shuffle_ps::<0x44>(b, d);
            u[4 * g + 3] = _mm256_shuffle_ps::<0xEE>(b, d);
        }
        // Column j < 4: the low halves of u[j] (rows 0..4) and u[4 + j] (rows 4..8);
        // column 4 + j: their high halves.
        for j in 0..4 {
            r[j] = _mm256_permute2f128_ps::<0x20>(u[j], u[4 + j]);
            r[4 + j] = _mm256_permute2f128_ps::<0x31>(u[j], u[4 + j]);
        }
    }
}

impl Avx2x2 {
    /// `2^n` for integer lanes `n` in `[-126, 127]`, built from the exponent bits.
    #[inline(always)]
    unsafe fn pow2i(n: __m256i) -> __m256 {
        // SAFETY: avx2 was detected (trait contract of `V16`, whose methods are the
        // only callers).
        unsafe {
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
                n,
                _mm256_set1_epi32(127),
            )))
        }
    }

    /// `x * 2^n` for `x` in `[0.5, 2]` (or 0/inf/NaN) and `n` in `[-250, 250]`, one
    /// rounding: `x * 2^(n >> 1)` is exact and normal, the second product rounds.
    #[inline(always)]
    unsafe fn ldexp_half(x: __m256, n: __m256) -> __m256 {
        // SAFETY: avx2 was detected (see `pow2i`).
        unsafe {
            let ni = _mm256_cvtps_epi32(n);
            let h = _mm256_srai_epi32::<1>(ni);
            let rest = _mm256_sub_epi32(ni, h);
            _mm256_mul_ps(_mm256_mul_ps(x, Self::pow2i(h)), Self::pow2i(rest))
        }
    }
}

// SAFETY: every method only uses `avx`, `avx2` and `fma` intrinsics, and `f16c` for
// `load_f16` (plus unaligned loads/stores of 16 values through the caller's pointers);
// the trait contract requires callers to have detected the AVX2 path's features
// (`avx2`, `fma`, `f16c`, which imply `avx`) before using `Avx2x2` as a `V16`.
unsafe impl V16 for Avx2x2 {
    #[inline(always)]
    unsafe fn activation(self, a: rnn_reference::Activation) -> Self {
        // SAFETY: the AVX2 features were detected (trait contract), as the entry's features require.
        unsafe { super::activation_entry(self, a) }
    }

    #[inline(always)]
    unsafe fn activation_slope(self, a: rnn_reference::Activation) -> (Self, Self) {
        // SAFETY: as above.
        unsafe { super::activation_slope_entry(self, a) }
    }

    // 16 ymm, two per vector: 6 vectors = 12 accumulators + weights + broadcast.
    const MAX_ACC: usize = 6;
    const READS_STRIPES: bool = true;

    #[inline(always)]
    unsafe fn transpose16(rows: &mut [Self; 16]) {
        // SAFETY: avx2 was detected (trait contract).
        unsafe {
            // Four 8 x 8 quadrants: rows 8q..8q+8, half h. Column j of the block is
            // half j / 8, lane j % 8: new row j, half q is row j % 8 of quadrant
            // (q, j / 8) transposed.
            let mut out = [Avx2x2([_mm256_setzero_ps(); 2]); 16];
            for q in 0..2 {
                for h in 0..2 {
                    let mut m = [_mm256_setzero_ps(); 8];
                    for (i, v) in m.iter_mut().enumerate() {
                        *v = rows[8 * q + i].0[h];
                    }
                    transpose8(&mut m);
                    for (i, v) in m.into_iter().enumerate() {
                        out[8 * h + i].0[q] = v;
                    }
                }
            }
            *rows = out;
        }
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: avx was detected (trait contract).
        let v = unsafe { _mm256_set1_ps(x) };
        Avx2x2([v, v])
    }

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: avx was detected (trait contract).
        let v = unsafe { _mm256_setzero_ps() };
        Avx2x2([v, v])
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: avx was detected and `p` is valid for 16 reads (trait contract), so
        // both `p` and `p + 8` are valid for 8; `loadu` has no alignment requirement.
        unsafe { Avx2x2([_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))]) }
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: avx was detected and `p` is valid for 16 writes (trait contract), so
        // both `p` and `p + 8` are valid for 8; `storeu` has no alignment requirement.
        unsafe {
            _mm256_storeu_ps(p, self.0[0]);
            _mm256_storeu_ps(p.add(8), self.0[1]);
        }
    }

    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        // SAFETY: avx was detected (trait contract).
        unsafe { both!(_mm256_add_ps(self, o)) }
    }

    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        // SAFETY: avx was detected (trait contract).
        unsafe { both!(_mm256_sub_ps(self, o)) }
    }

    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        // SAFETY: avx was detected (trait contract).
        unsafe { both!(_mm256_mul_ps(self, o)) }
    }

    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        // SAFETY: avx was detected (trait contract).
        unsafe { both!(_mm256_div_ps(self, o)) }
    }

    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: fma was detected (trait contract).
        unsafe { both!(_mm256_fmadd_ps(self, b, c)) }
    }

    #[inline(always)]
    unsafe fn min_keep_nan(self, o: Self) -> Self {
        // `vminps a, b` returns its second operand `b` when either is NaN, so
        // `self` goes second.
        // SAFETY: avx was detected (trait contract).
        unsafe { both!(_mm256_min_ps(o, self)) }
    }

    #[inline(always)]
    unsafe fn max_keep_nan(self, o: Self) -> Self {
        // `vmaxps a, b` returns its second operand when either is NaN.
        // SAFETY: avx was detected (trait contract).
        unsafe { both!(_mm256_max_ps(o, self)) }
    }

    #[inline(always)]
    unsafe fn abs(self) -> Self {
        // SAFETY: avx was detected (trait contract).
        unsafe {
            let sign = _mm256_set1_ps(-0.0);
            Avx2x2([
                _mm256_andnot_ps(sign, self.0[0]),
                _mm256_andnot_ps(sign, self.0[1]),
            ])
        }
    }

    #[inline(always)]
    unsafe fn copysign(self, sign: Self) -> Self {
        // SAFETY: avx was detected (trait contract).
        unsafe {
            let m = _mm256_set1_ps(-0.0);
            Avx2x2([
                _mm256_or_ps(_mm256_andnot_ps(m, self.0[0]), _mm256_and_ps(m, sign.0[0])),
                _mm256_or_ps(_mm256_andnot_ps(m, self.0[1]), _mm256_and_ps(m, sign.0[1])),
            ])
        }
    }

    #[inline(always)]
    unsafe fn round_nearest(self) -> Self {
        // SAFETY: avx was detected (trait contract).
        unsafe {
            const MODE: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
            Avx2x2([
                _mm256_round_ps::<MODE>(self.0[0]),
                _mm256_round_ps::<MODE>(self.0[1]),
            ])
        }
    }

    #[inline(always)]
    unsafe fn ldexp(self, n: Self) -> Self {
        // SAFETY: avx2 was detected (trait contract).
        unsafe {
            Avx2x2([
                Self::ldexp_half(self.0[0], n.0[0]),
                Self::ldexp_half(self.0[1], n.0[1]),
            ])
        }
    }

    #[inline(always)]
    unsafe fn select_lt(self, o: Self, a: Self, b: Self) -> Self {
        // SAFETY: avx was detected (trait contract).
        unsafe {
            Avx2x2([
                _mm256_blendv_ps(
                    b.0[0],
                    a.0[0],
                    _mm256_cmp_ps::<_CMP_LT_OQ>(self.0[0], o.0[0]),
                ),
                _mm256_blendv_ps(
                    b.0[1],
                    a.0[1],
                    _mm256_cmp_ps::<_CMP_LT_OQ>(self.0[1], o.0[1]),
                ),
            ])
        }
    }

    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> Self {
        // SAFETY: the caller guarantees avx2 + f16c and 16 readable u16 at `p`.
        unsafe {
            Avx2x2([
                _mm256_cvtph_ps(_mm_loadu_si128(p.cast())),
                _mm256_cvtph_ps(_mm_loadu_si128(p.add(8).cast())),
            ])
        }
    }

    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> Self {
        // SAFETY: as above; zero-extend to u32 and shift into the f32's high half.
        unsafe {
            let lo = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
            let hi = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.add(8).cast()));
            Avx2x2([
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(lo)),
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(hi)),
            ])
        }
    }

    #[inline(always)]
    unsafe fn store_codes(self, p: *mut u8) {
        // SAFETY: avx2 was detected (trait contract); the caller guarantees 16 writable
        // bytes. `vcvttps2dq` turns NaN into i32::MIN, which the max with 0 makes 0 (as
        // `as u8` does); lanes in 0..=255 pack exactly. `vpackusdw` interleaves the two
        // halves by 128-bit lane, the permute restores lane order before the last pack.
        unsafe {
            let z = _mm256_setzero_si256();
            let a = _mm256_max_epi32(_mm256_cvttps_epi32(self.0[0]), z);
            let b = _mm256_max_epi32(_mm256_cvttps_epi32(self.0[1]), z);
            let w = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(a, b));
            let bytes =
                _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256::<1>(w));
            _mm_storeu_si128(p.cast(), bytes);
        }
    }

    #[inline(always)]
    unsafe fn load_bf16_zipped(p: *const u16) -> Self {
        // SAFETY: the caller guarantees avx2 and 16 readable u16 at `p`: u32 word `i`
        // holds lane `i` (low half: shifted up) and lane `8 + i` (high half: masked).
        unsafe {
            let a = _mm256_loadu_si256(p.cast());
            Avx2x2([
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(a)),
                _mm256_castsi256_ps(_mm256_and_si256(
                    a,
                    _mm256_set1_epi32(0xFFFF_0000u32 as i32),
                )),
            ])
        }
    }

    #[inline(always)]
    unsafe fn load_bf16_pair(p: *const u16) -> (Self, Self) {
        // SAFETY: the caller guarantees avx2 and 32 readable u16 at `p`: lanes 0-7 are
        // the first 16 u16, lanes 8-15 the next 16; see the AVX-512 version.
        unsafe {
            let mask = _mm256_set1_epi32(0xFFFF_0000u32 as i32);
            let a = _mm256_loadu_si256(p.cast());
            let b = _mm256_loadu_si256(p.add(16).cast());
            (
                Avx2x2([
                    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(a)),
                    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(b)),
                ]),
                Avx2x2([
                    _mm256_castsi256_ps(_mm256_and_si256(a, mask)),
                    _mm256_castsi256_ps(_mm256_and_si256(b, mask)),
                ]),
            )
        }
    }
}
