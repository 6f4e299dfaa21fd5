//! [`V16`] for four `wide::f32x4`: [`WideX4`], the portable path (SSE2 on the x86_64
//! baseline, NEON on aarch64, scalar elsewhere). No ISA-specific intrinsics here, so
//! it compiles on every target; `mul_add` is unfused where the target has no FMA.

use wide::{f32x4, i32x4};

use crate::simd::V16;

/// 16 `f32` lanes as four `wide::f32x4` (lanes `4 * i .. 4 * i + 4` in `.0[i]`).
#[derive(Clone, Copy)]
pub(crate) struct WideX4(pub(crate) [f32x4; 4]);

impl WideX4 {
    /// Applies `f` to the four parts.
    #[inline(always)]
    fn map(self, f: impl Fn(f32x4) -> f32x4) -> Self {
        let a = self.0;
        WideX4([f(a[0]), f(a[1]), f(a[2]), f(a[3])])
    }

    /// Applies `f` part-wise to `self` and `o`.
    #[inline(always)]
    fn zip(self, o: Self, f: impl Fn(f32x4, f32x4) -> f32x4) -> Self {
        let (a, b) = (self.0, o.0);
        WideX4([f(a[0], b[0]), f(a[1], b[1]), f(a[2], b[2]), f(a[3], b[3])])
    }
}

/// `2^n` for integer lanes `n` in `[-126, 127]`, built from the exponent bits.
#[inline(always)]
fn pow2i(n: i32x4) -> f32x4 {
    wide::bytemuck::cast((n + i32x4::splat(127)) << 23u32)
}

/// `x * 2^n` for `x` in `[0.5, 2]` (or 0/inf/NaN) and integer `n` in `[-250, 250]`,
/// one rounding: `x * 2^(n >> 1)` is exact and normal, the second product rounds.
#[inline(always)]
fn ldexp4(x: f32x4, n: f32x4) -> f32x4 {
    let ni = n.fast_round_int();
    let h = ni >> 1u32;
    (x * pow2i(h)) * pow2i(ni - h)
}

// SAFETY: `WideX4` needs no CPU feature beyond the compilation target's baseline, and
// `load`/`store` access exactly 16 `f32` through the caller's (valid) pointers.
unsafe impl V16 for WideX4 {
    #[inline(always)]
    unsafe fn activation(self, a: rnn_reference::Activation) -> Self {
        // SAFETY: the portable path needs only the target's baseline.
        unsafe { activation_entry(self, a) }
    }

    #[inline(always)]
    unsafe fn activation_slope(self, a: rnn_reference::Activation) -> (Self, Self) {
        // SAFETY: as above.
        unsafe { activation_slope_entry(self, a) }
    }

    // 16 xmm on SSE2, four per vector. Measured: letting the one- and two-row
    // kernels keep 8 vectors (some spill) beats splitting the panel into groups.
    const MAX_ACC: usize = 8;
    const READS_STRIPES: bool = true;

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        WideX4([f32x4::splat(x); 4])
    }

    #[inline(always)]
    unsafe fn zero() -> Self {
        WideX4([f32x4::ZERO; 4])
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: `p` is valid for reading 16 `f32` (trait contract); `read_unaligned`
        // has no alignment requirement.
        let a: [f32; 16] = unsafe { p.cast::<[f32; 16]>().read_unaligned() };
        WideX4(wide::bytemuck::cast(a))
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        let a: [f32; 16] = wide::bytemuck::cast(self.0);
        // SAFETY: `p` is valid for writing 16 `f32` (trait contract);
        // `write_unaligned` has no alignment requirement.
        unsafe { p.cast::<[f32; 16]>().write_unaligned(a) }
    }

    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        self.zip(o, |a, b| a + b)
    }

    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        self.zip(o, |a, b| a - b)
    }

    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        self.zip(o, |a, b| a * b)
    }

    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        self.zip(o, |a, b| a / b)
    }

    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        let (a, b, c) = (self.0, b.0, c.0);
        WideX4([
            a[0].mul_add(b[0], c[0]),
            a[1].mul_add(b[1], c[1]),
            a[2].mul_add(b[2], c[2]),
            a[3].mul_add(b[3], c[3]),
        ])
    }

    #[inline(always)]
    unsafe fn min_keep_nan(self, o: Self) -> Self {
        // `fast_min`'s NaN behaviour differs between targets (SSE: second operand,
        // NEON: NaN, wasm: first operand), so put NaN back explicitly.
        self.zip(o, |a, b| a.is_nan().bitselect(a, a.fast_min(b)))
    }

    #[inline(always)]
    unsafe fn max_keep_nan(self, o: Self) -> Self {
        self.zip(o, |a, b| a.is_nan().bitselect(a, a.fast_max(b)))
    }

    #[inline(always)]
    unsafe fn abs(self) -> Self {
        self.map(|a| a.abs())
    }

    #[inline(always)]
    unsafe fn copysign(self, sign: Self) -> Self {
        let m = f32x4::splat(-0.0);
        self.zip(sign, |a, s| m.bitselect(s, a))
    }

    #[inline(always)]
    unsafe fn round_nearest(self) -> Self {
        self.map(|a| a.round_ties_even())
    }

    #[inline(always)]
    unsafe fn ldexp(self, n: Self) -> Self {
        self.zip(n, ldexp4)
    }

    #[inline(always)]
    unsafe fn select_lt(self, o: Self, a: Self, b: Self) -> Self {
        let (x, y, a, b) = (self.0, o.0, a.0, b.0);
        let f = |i: usize| x[i].simd_lt(y[i]).bitselect(a[i], b[i]);
        WideX4([f(0), f(1), f(2), f(3)])
    }

    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> Self {
        use half::slice::HalfFloatSliceExt;
        let mut v = [0.0f32; 16];
        // SAFETY: the caller guarantees 16 readable u16 at `p`; f16 is a transparent
        // u16 with the same alignment.
        let src = unsafe { std::slice::from_raw_parts(p.cast::<half::f16>(), 16) };
        // `half`'s slice conversion uses the CPU's conversion instructions where it
        // detects them (F16C, NEON fp16) and exact software conversion elsewhere.
        src.convert_to_f32_slice(&mut v);
        // SAFETY: `v` holds 16 floats.
        unsafe { Self::load(v.as_ptr()) }
    }

    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> Self {
        let mut v = [0.0f32; 16];
        for (k, o) in v.iter_mut().enumerate() {
            // SAFETY: the caller guarantees 16 readable u16 at `p`.
            *o = f32::from_bits(u32::from(unsafe { p.add(k).read_unaligned() }) << 16);
        }
        // SAFETY: `v` holds 16 floats.
        unsafe { Self::load(v.as_ptr()) }
    }

    #[inline(always)]
    unsafe fn load_bf16_pair(p: *const u16) -> (Self, Self) {
        let (mut a, mut b) = ([0.0f32; 16], [0.0f32; 16]);
        for l in 0..16 {
            // SAFETY: the caller guarantees 32 readable u16 at `p`.
            let (x, y) = unsafe {
                (
                    p.add(2 * l).read_unaligned(),
                    p.add(2 * l + 1).read_unaligned(),
                )
            };
            a[l] = f32::from_bits(u32::from(x) << 16);
            b[l] = f32::from_bits(u32::from(y) << 16);
        }
        // SAFETY: both arrays hold 16 floats.
        unsafe { (Self::load(a.as_ptr()), Self::load(b.as_ptr())) }
    }
}

/// ONNX's activations on the portable path, one out-of-line copy (see
/// `define_activation_entries!` of the x86 paths).
///
/// # Safety
/// None beyond the target's baseline (`unsafe` for the `V16` calls).
#[inline(never)]
unsafe fn activation_entry(x: WideX4, a: rnn_reference::Activation) -> WideX4 {
    // SAFETY: the portable path's operations need only the baseline.
    unsafe { crate::simd::activations::activation(x, a) }
}

/// Value and slope, as [`activation_entry`].
///
/// # Safety
/// As for [`activation_entry`].
#[inline(never)]
unsafe fn activation_slope_entry(x: WideX4, a: rnn_reference::Activation) -> (WideX4, WideX4) {
    // SAFETY: as above.
    unsafe { crate::simd::activation_slopes::value_and_slope(x, a) }
}
