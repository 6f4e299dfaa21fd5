//! The AVX2 int8 products: `vpmaddubsw` multiplies `u8` activation codes by `i8`
//! weight codes and adds each pair of products into an `i16` **with saturation**;
//! `vpmaddwd` by ones then adds the pairs into the `i32` sums.
//!
//! A pair `a₀w₀ + a₁w₁` reaches `±2 · 255 · 128`, beyond `i16`, so two types:
//!
//! - [`Maddubs`]: one `vpmaddubsw`, exact only when every pair fits, i.e. for
//!   activation codes up to `qmax` when `qmax · pair_max <= 32767` and
//!   `qmax · pair_min >= −32768` over the weight pairs (`QuantView::pairs_fit_i16`).
//!   With 7-bit activation codes (`ActivationQuant::PerRowReduced`, fbgemm's
//!   `reduce_range`) that holds for every int8 weight (`127 · 254 = 32258`,
//!   `127 · −256 = −32512`), and with 8-bit codes for weights within about ±64.
//! - [`MaddSplit`]: exact for every code. Each activation byte is split into its low
//!   seven bits and its top bit, `a = (a & 0x7F) + (a & 0x80)`, and each half takes its
//!   own `vpmaddubsw`: `127 · (w₀ + w₁)` and `128 · (w₀ + w₁)` both lie in
//!   `[−32768, 32512]`, so neither saturates. Twice the multiplies of `Maddubs`.
//!
//! The dispatcher picks `Maddubs` when the weights allow it and `MaddSplit` otherwise;
//! both give the exact sums, so results never depend on the choice.

use core::arch::x86_64::*;

use crate::simd::Dot8;

/// `vpmaddubsw` then `vpmaddwd`: 16 `i32` lanes in two `ymm`, exact when every pair of
/// products fits in `i16` (module docs).
#[derive(Clone, Copy)]
pub(crate) struct Maddubs(__m256i, __m256i);

/// `(s.0 + Σ pairs(a × w.0), s.1 + Σ pairs(a × w.1))` for one activation operand.
///
/// # Safety
/// AVX2 must be available.
#[inline(always)]
unsafe fn madd(s: (__m256i, __m256i), a: __m256i, w: (__m256i, __m256i)) -> (__m256i, __m256i) {
    // SAFETY: the caller guarantees AVX2.
    unsafe {
        let one = _mm256_set1_epi16(1);
        (
            _mm256_add_epi32(s.0, _mm256_madd_epi16(_mm256_maddubs_epi16(a, w.0), one)),
            _mm256_add_epi32(s.1, _mm256_madd_epi16(_mm256_maddubs_epi16(a, w.1), one)),
        )
    }
}

/// The shared methods of the two types (`$t` a tuple struct of two `__m256i`).
macro_rules! ymm_pair_methods {
    ($t:ident) => {
        #[inline(always)]
        unsafe fn zero() -> Self {
            // SAFETY: the caller guarantees AVX2 (type contract).
            unsafe { $t(_mm256_setzero_si256(), _mm256_setzero_si256()) }
        }

        #[inline(always)]
        unsafe fn load_w(p: *const i8) -> (__m256i, __m256i) {
            // SAFETY: AVX2 (type contract); the caller guarantees 64 readable bytes.
            unsafe {
                (
                    _mm256_loadu_si256(p.cast()),
                    _mm256_loadu_si256(p.add(32).cast()),
                )
            }
        }

        #[inline(always)]
        unsafe fn add(self, o: Self) -> Self {
            // SAFETY: AVX2 (type contract).
            unsafe { $t(_mm256_add_epi32(self.0, o.0), _mm256_add_epi32(self.1, o.1)) }
        }

        #[inline(always)]
        unsafe fn store(self, p: *mut i32) {
            // SAFETY: AVX2 (type contract); the caller guarantees 16 writable `i32`.
            unsafe {
                _mm256_storeu_si256(p.cast(), self.0);
                _mm256_storeu_si256(p.add(8).cast(), self.1);
            }
        }
    };
}

/// Broadcasts the 4 bytes at `p` to every 32-bit lane.
///
/// # Safety
/// AVX2 must be available; `p` valid for 4 reads.
#[inline(always)]
unsafe fn splat4(p: *const u8) -> __m256i {
    // SAFETY: caller's contract.
    unsafe { _mm256_set1_epi32(p.cast::<i32>().read_unaligned()) }
}

// SAFETY: every method needs AVX2 only (its users enter `#[target_feature]` code that
// enables it after detection); `dot` is exact whenever no pair saturates, which the
// dispatcher checks (`QuantView::pairs_fit_i16`) before choosing this type.
unsafe impl Dot8 for Maddubs {
    // 16 ymm: 4 × 2 accumulators, 2 × 2 weights, the activations and the ones.
    const MAX_ACC: usize = 4;
    const MR: usize = 2;
    type W = (__m256i, __m256i);
    type A = __m256i;

    ymm_pair_methods!(Maddubs);

    #[inline(always)]
    unsafe fn splat_a(p: *const u8) -> __m256i {
        // SAFETY: forwarded contract.
        unsafe { splat4(p) }
    }

    #[inline(always)]
    unsafe fn dot(self, a: __m256i, w: (__m256i, __m256i)) -> Self {
        // SAFETY: AVX2 (type contract).
        let (x, y) = unsafe { madd((self.0, self.1), a, w) };
        Maddubs(x, y)
    }
}

/// Exact `vpmaddubsw` products for every code: each activation byte split into its
/// low seven bits and its top bit (module docs).
#[derive(Clone, Copy)]
pub(crate) struct MaddSplit(__m256i, __m256i);

// SAFETY: every method needs AVX2 only; `dot` is exact for every input (module docs:
// neither half of a split activation can saturate a pair).
unsafe impl Dot8 for MaddSplit {
    const MAX_ACC: usize = 4;
    const MR: usize = 2;
    type W = (__m256i, __m256i);
    /// `(a & 0x7F, a & 0x80)` per byte.
    type A = (__m256i, __m256i);

    ymm_pair_methods!(MaddSplit);

    #[inline(always)]
    unsafe fn splat_a(p: *const u8) -> (__m256i, __m256i) {
        // SAFETY: forwarded contract; AVX2 (type contract).
        unsafe {
            let a = splat4(p);
            let top = _mm256_set1_epi8(0x80u8 as i8);
            (_mm256_andnot_si256(top, a), _mm256_and_si256(top, a))
        }
    }

    #[inline(always)]
    unsafe fn dot(self, a: (__m256i, __m256i), w: (__m256i, __m256i)) -> Self {
        // SAFETY: AVX2 (type contract).
        let (x, y) = unsafe { madd(madd((self.0, self.1), a.0, w), a.1, w) };
        MaddSplit(x, y)
    }
}
