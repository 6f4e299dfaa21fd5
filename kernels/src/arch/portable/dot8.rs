//! The portable int8 product: plain integer code, exact for every code (`i32` sums of
//! `u8 × i8` products, at most `k · 255 · 128` with `k <=` `MAX_K`).

use crate::simd::Dot8;

/// 16 `i32` sums in an array (the compiler vectorizes the loops where it can).
#[derive(Clone, Copy)]
pub(crate) struct Dot8Portable([i32; 16]);

// SAFETY: needs no CPU feature; `dot` is exact integer arithmetic for every input (the
// drivers keep the sums within `i32`).
unsafe impl Dot8 for Dot8Portable {
    const MAX_ACC: usize = 8;
    const MR: usize = 2;
    type W = [i8; 64];
    type A = [u8; 4];

    #[inline(always)]
    unsafe fn zero() -> Self {
        Dot8Portable([0; 16])
    }

    #[inline(always)]
    unsafe fn load_w(p: *const i8) -> [i8; 64] {
        // SAFETY: the caller guarantees 64 readable bytes.
        unsafe { p.cast::<[i8; 64]>().read_unaligned() }
    }

    #[inline(always)]
    unsafe fn splat_a(p: *const u8) -> [u8; 4] {
        // SAFETY: the caller guarantees 4 readable bytes.
        unsafe { p.cast::<[u8; 4]>().read_unaligned() }
    }

    #[inline(always)]
    unsafe fn dot(self, a: [u8; 4], w: [i8; 64]) -> Self {
        let mut s = self.0;
        for (l, acc) in s.iter_mut().enumerate() {
            let mut d = 0i32;
            for j in 0..4 {
                d += i32::from(a[j]) * i32::from(w[4 * l + j]);
            }
            *acc = acc.wrapping_add(d);
        }
        Dot8Portable(s)
    }

    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        let mut s = self.0;
        for (a, b) in s.iter_mut().zip(o.0) {
            *a = a.wrapping_add(b);
        }
        Dot8Portable(s)
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut i32) {
        // SAFETY: the caller guarantees 16 writable `i32`.
        unsafe { p.cast::<[i32; 16]>().write_unaligned(self.0) }
    }
}
