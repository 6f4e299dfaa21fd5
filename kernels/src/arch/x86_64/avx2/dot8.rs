//! The AVX2 int8 products. `vpmaddubsw` multiplies `u8` activation codes by `i8`
//! weight codes and adds each pair of products into an `i16` **with saturation**
//! (`vpmaddwd` by ones then adds the pairs into the `i32` sums); `vpmaddwd` multiplies
//! 16-bit words and adds each pair into an `i32`.
//!
//! A pair `a₀w₀ + a₁w₁` reaches `±2 · 255 · 128`, beyond `i16`, so two types:
//!
//! - [`Maddubs`]: one `vpmaddubsw`, exact only when every pair fits, i.e. for
//!   activation codes up to `qmax` when `qmax · pair_max <= 32767` and
//!   `qmax · pair_min >= −32768` over the weight pairs (`QuantView::pairs_fit_i16`).
//!   With 7-bit activation codes (`ActivationQuant::PerRowReduced`, fbgemm's
//!   `reduce_range`) that holds for every int8 weight (`127 · 254 = 32258`,
//!   `127 · −256 = −32512`), and with 8-bit codes for weights within about ±64.
//! - [`MaddWords`]: exact for every code. The codes are widened to 16-bit words in
//!   registers (the packing stays the bytes every path reads) and one `vpmaddwd` adds
//!   each pair into `i32`: as many multiplies as `Maddubs`, plus a few cheap shifts and
//!   logic operations. It replaced a split form (each activation byte cut into its low
//!   seven bits and its top bit, one `vpmaddubsw` each: twice the multiplies), which it
//!   beat by 1.2-1.7x on the 8-bit-code LSTM and GRU on a Zen 1 (`bench-suite/results/
//!   int8-words-ab-zen1-1t.md`).
//!
//! The dispatcher picks `Maddubs` when the weights allow it and `MaddWords` otherwise;
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

/// Exact `vpmaddwd` products on codes widened to 16 bits, for every code. Each `i32`
/// lane `l` holds the 4 weight bytes `w₀..w₃` of column `l` (the int8 packing). Flipping
/// each byte's top bit makes it the unsigned `w + 128`; then a mask of each 16-bit word
/// gives the pair `(w₀, w₂) + 128` and a logical shift by 8 the pair `(w₁, w₃) + 128`,
/// in the lane's own place. The activations split the same way into `(a₀, a₂)` and
/// `(a₁, a₃)`, and one `vpmaddwd` per half adds `a₀(w₀ + 128) + a₂(w₂ + 128)` (at most
/// `2 · 255²`, far inside `i32`) straight into lane `l`. The sums are thus
/// `Σ a (w + 128)`: [`W_OFFSET`](Dot8::W_OFFSET) is 128, and the walk subtracts
/// `128 · Σ a` per row.
///
/// As many multiplies as [`Maddubs`] (two per 32 codes, where the split form took four);
/// the price is one shift and two logic operations per 32 weight codes (shared by every
/// row of a block) and a second add. Only one shift, because Zen 1 to 3 run vector
/// shifts on one pipe: the two-shift sign extension made the batch-1 product
/// shift-bound there.
#[derive(Clone, Copy)]
pub(crate) struct MaddWords(__m256i, __m256i);

// SAFETY: every method needs AVX2 only; `dot` is exact for every input (type docs: each
// product pair fits in `i32`, and the sums wrap like every `Dot8`'s), offset by
// `W_OFFSET` per code as the trait allows.
unsafe impl Dot8 for MaddWords {
    // 16 ymm: 4 rows x 2 accumulators, 4 widened weights (one vector), 2 activations
    // and the word mask.
    const MAX_ACC: usize = 4;
    const MR: usize = 4;
    const MAX_GS: usize = 1;
    const W_OFFSET: i32 = 128;
    /// `(w₀, w₂) + 128` and `(w₁, w₃) + 128` per lane, for lanes 0..8 then 8..16.
    type W = [__m256i; 4];
    /// `(a₀, a₂)` and `(a₁, a₃)` in every lane.
    type A = (__m256i, __m256i);

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller guarantees AVX2 (type contract).
        unsafe { MaddWords(_mm256_setzero_si256(), _mm256_setzero_si256()) }
    }

    #[inline(always)]
    unsafe fn load_w(p: *const i8) -> [__m256i; 4] {
        // SAFETY: AVX2 (type contract); the caller guarantees 64 readable bytes.
        unsafe {
            let top = _mm256_set1_epi8(0x80u8 as i8);
            let low = _mm256_set1_epi16(0xFF);
            let lo = _mm256_xor_si256(_mm256_loadu_si256(p.cast()), top);
            let hi = _mm256_xor_si256(_mm256_loadu_si256(p.add(32).cast()), top);
            [
                _mm256_and_si256(lo, low),
                _mm256_srli_epi16(lo, 8),
                _mm256_and_si256(hi, low),
                _mm256_srli_epi16(hi, 8),
            ]
        }
    }

    #[inline(always)]
    unsafe fn splat_a(p: *const u8) -> (__m256i, __m256i) {
        // SAFETY: forwarded contract; AVX2 (type contract).
        unsafe {
            let a = splat4(p);
            (
                _mm256_and_si256(a, _mm256_set1_epi16(0xFF)),
                _mm256_srli_epi16(a, 8),
            )
        }
    }

    #[inline(always)]
    unsafe fn dot(self, a: (__m256i, __m256i), w: [__m256i; 4]) -> Self {
        // SAFETY: AVX2 (type contract).
        unsafe {
            let x = _mm256_add_epi32(self.0, _mm256_madd_epi16(a.0, w[0]));
            let y = _mm256_add_epi32(self.1, _mm256_madd_epi16(a.0, w[2]));
            MaddWords(
                _mm256_add_epi32(x, _mm256_madd_epi16(a.1, w[1])),
                _mm256_add_epi32(y, _mm256_madd_epi16(a.1, w[3])),
            )
        }
    }

    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        // SAFETY: AVX2 (type contract).
        unsafe { MaddWords(_mm256_add_epi32(self.0, o.0), _mm256_add_epi32(self.1, o.1)) }
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut i32) {
        // SAFETY: AVX2 (type contract); the caller guarantees 16 writable `i32`.
        unsafe {
            _mm256_storeu_si256(p.cast(), self.0);
            _mm256_storeu_si256(p.add(8).cast(), self.1);
        }
    }
}
