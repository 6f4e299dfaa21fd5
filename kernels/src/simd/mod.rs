//! The SIMD vocabulary, the bottom of the crate's module graph: the one tiny vector
//! abstraction every kernel is written against ([`V16`]: 16 `f32` lanes, the width of
//! one tile of hidden units) and the activations over it ([`math`]; ONNX's other
//! activation functions in [`activations`]). AVX-512 holds a
//! [`V16`] in one `zmm`, AVX2 in two `ymm`, the portable path in four 128-bit `wide`
//! vectors; those implementations live with their ISA in `arch/<arch>/<isa>/vector.rs`.
//!
//! Every method is `unsafe` because an implementation may only run on a CPU with its
//! instruction set; the generic kernels are instantiated inside `#[target_feature]`
//! functions that the dispatcher reaches only after detection, and all methods are
//! `#[inline(always)]` so the intrinsics inline into those functions.

pub(crate) mod activation_slopes;
pub(crate) mod activations;
mod dot8;
pub(crate) mod math;

pub(crate) use dot8::Dot8;

/// Asks the cache for the lines holding `floats` floats from `p` (a hint: never reads,
/// never faults, whatever the address; a no-op off x86_64). The epilogues use it for
/// rows they will read after a block's products, `pre_stride` apart, a pattern the
/// hardware prefetchers do not follow.
#[inline(always)]
pub(crate) fn prefetch(p: *const f32, floats: usize) {
    #[cfg(target_arch = "x86_64")]
    for off in (0..floats).step_by(16) {
        // SAFETY: `prefetcht0` is in SSE (every x86_64 CPU) and only hints the cache: it
        // does not dereference the address and cannot fault, so any address is fine
        // (`wrapping_add` keeps even the pointer arithmetic defined).
        unsafe {
            use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off).cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, floats);
}

/// Asks for the cache line at `p` in L2 (`prefetcht1`; a hint like [`prefetch`]: any
/// address is fine, a no-op off x86_64). The walk fetches the next weight panel this
/// way while the current one's row blocks run.
#[inline(always)]
pub(crate) fn prefetch_l2(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht1` is in SSE (every x86_64 CPU) and only hints the cache: it
    // does not dereference the address and cannot fault.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        _mm_prefetch::<_MM_HINT_T1>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// 16 lanes of `f32`.
///
/// # Safety
/// Implementors document the CPU features their methods need; callers must only use a
/// type after those features were detected. Pointer arguments must be valid for 16
/// `f32` (unaligned is fine) unless a method says otherwise.
pub unsafe trait V16: Copy {
    /// How many `Self` accumulators a micro-kernel may keep live without spilling
    /// (leaving registers for weights and the broadcast operand).
    const MAX_ACC: usize;
    /// Whether this path's micro-kernel reads striped panels (`[NP][k][16]`, the
    /// packing's `striped` layout): the paths that take a panel one vector at a time.
    /// Only CPUs whose every path does pack them.
    const READS_STRIPES: bool = false;
    /// How many panel rows ahead of its products the in-order micro-kernel asks for the
    /// panel in L1 (0: never): see `kernel::microkernel::tile_in_order`.
    const PANEL_AHEAD: usize = 0;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self;
    /// All lanes 0.
    unsafe fn zero() -> Self;
    /// Loads 16 `f32` from `p` (no alignment needed).
    unsafe fn load(p: *const f32) -> Self;
    /// Stores 16 `f32` to `p` (no alignment needed).
    unsafe fn store(self, p: *mut f32);
    /// `self + o`.
    unsafe fn add(self, o: Self) -> Self;
    /// `self - o`.
    unsafe fn sub(self, o: Self) -> Self;
    /// `self * o`.
    unsafe fn mul(self, o: Self) -> Self;
    /// `self / o`.
    unsafe fn div(self, o: Self) -> Self;
    /// `self * b + c`, fused where the ISA has FMA.
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    /// Lane-wise minimum; a NaN in `self` is returned as NaN.
    unsafe fn min_keep_nan(self, o: Self) -> Self;
    /// Lane-wise maximum; a NaN in `self` is returned as NaN.
    unsafe fn max_keep_nan(self, o: Self) -> Self;
    /// `|self|` (clears the sign bit; NaN stays NaN).
    unsafe fn abs(self) -> Self;
    /// The magnitude of `self` with the sign bit of `sign` (bitwise, like `f32::copysign`).
    unsafe fn copysign(self, sign: Self) -> Self;
    /// Rounds to the nearest integer, ties to even (finite lanes; NaN stays NaN).
    unsafe fn round_nearest(self) -> Self;
    /// `self * 2^n` for lanes of `n` holding integers in `[-250, 250]`, rounded once
    /// (also into the subnormal range, and to `±inf` on overflow) as long as
    /// `0.5 <= |self| <= 2` or `self` is 0, inf or NaN. Other `n` give unspecified
    /// (but not undefined) results.
    unsafe fn ldexp(self, n: Self) -> Self;
    /// Lane-wise `if self < o { a } else { b }` (ordered compare: `b` where either
    /// `self` or `o` is NaN).
    unsafe fn select_lt(self, o: Self, a: Self, b: Self) -> Self;
    /// Loads 16 IEEE half-precision values (bit patterns) from `p` and widens them
    /// exactly (F16C `vcvtph2ps` on x86_64).
    unsafe fn load_f16(p: *const u16) -> Self;
    /// Loads 16 bfloat16 values (bit patterns) from `p` and widens them exactly (a
    /// 16-bit left shift into the f32 bit pattern).
    unsafe fn load_bf16(p: *const u16) -> Self;
    /// Loads 32 bfloat16 values stored as 16 pairs (`p[2l]` for lane `l` of the first
    /// vector, `p[2l + 1]` for lane `l` of the second) and widens both with one shift
    /// and one mask: half the work of two [`load_bf16`](V16::load_bf16).
    unsafe fn load_bf16_pair(p: *const u16) -> (Self, Self);
    /// Loads 16 bfloat16 values stored with the vector's halves zipped (`p[2i]` for
    /// lane `i`, `p[2i + 1]` for lane `8 + i`, `i < 8`: the striped bf16 panels) and
    /// widens them: on AVX2 one load, one shift and one mask (each 32-bit word holds
    /// lanes `i` and `8 + i`), where [`load_bf16`](V16::load_bf16) takes two widening
    /// loads and two shifts. The default reorders the values, then widens them.
    #[inline(always)]
    unsafe fn load_bf16_zipped(p: *const u16) -> Self {
        let mut v = [0u16; 16];
        for (l, o) in v.iter_mut().enumerate() {
            // SAFETY: the caller guarantees 16 readable u16 at `p`.
            *o = unsafe { p.add(2 * (l % 8) + l / 8).read_unaligned() };
        }
        // SAFETY: `v` holds 16 u16; the caller guarantees the ISA.
        unsafe { Self::load_bf16(v.as_ptr()) }
    }
    /// ONNX activation `a` lane-wise ([`activations::activation`]), through the path's
    /// one out-of-line copy (the custom-activation path of the epilogues).
    unsafe fn activation(self, a: rnn_reference::Activation) -> Self;
    /// Value and slope of ONNX activation `a` lane-wise
    /// ([`activation_slopes::value_and_slope`]), out of line like
    /// [`activation`](V16::activation).
    unsafe fn activation_slope(self, a: rnn_reference::Activation) -> (Self, Self);
    /// Stores the 16 lanes, each an integer in `0..=255` or NaN, as 16 bytes at `p` (a
    /// NaN as 0, like `as u8`): the codes of run-time quantization. Other values give
    /// unspecified (but not undefined) bytes. `p` must be valid for 16 byte writes.
    #[inline(always)]
    unsafe fn store_codes(self, p: *mut u8) {
        let mut t = [0.0f32; 16];
        // SAFETY: `t` holds 16 floats; the caller guarantees the ISA and 16 bytes at `p`.
        unsafe {
            self.store(t.as_mut_ptr());
            for (i, &v) in t.iter().enumerate() {
                *p.add(i) = v as u8;
            }
        }
    }
    /// Transposes the 16 × 16 block held as 16 rows, in place: afterwards lane `i` of
    /// `rows[j]` is what lane `j` of `rows[i]` was (the runtime transposes of the
    /// backward's operands). The default goes through memory; the x86 paths shuffle
    /// in registers.
    #[inline(always)]
    unsafe fn transpose16(rows: &mut [Self; 16]) {
        let mut m = [[0.0f32; 16]; 16];
        // SAFETY: each row of `m` holds 16 floats; the caller guarantees the ISA.
        unsafe {
            for (v, row) in rows.iter().zip(m.iter_mut()) {
                v.store(row.as_mut_ptr());
            }
            for (j, v) in rows.iter_mut().enumerate() {
                let col: [f32; 16] = std::array::from_fn(|i| m[i][j]);
                *v = Self::load(col.as_ptr());
            }
        }
    }
}
