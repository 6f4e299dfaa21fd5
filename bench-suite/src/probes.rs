//! A short FMA-throughput probe that measures this machine's peak.

use std::time::{Duration, Instant};

use rnn_kernels::Isa;

/// Independent accumulators of the probe: enough to cover FMA latency × FMA ports on
/// current x86 cores (4 cycles × 2 ports = 8 needed).
pub const PROBE_ACCUMULATORS: usize = 12;

/// Measures one core's FMA throughput in GFLOP/s (an FMA counts as 2 FLOPs) for the
/// instruction set `isa` by running a dependency-free FMA loop with
/// [`PROBE_ACCUMULATORS`] independent accumulators for about `budget` (50-100 ms is
/// plenty) and keeping the best rate of several rounds. Multiply by the number of
/// threads for the peak of a multi-thread run. Returns `None` if the CPU lacks `isa`.
///
/// `Isa::Portable` measures the kernels' portable path: 128-bit vectors without FMA
/// (a multiply and an add per lane, also 2 FLOPs).
pub fn fma_peak_gflops(isa: Isa, budget: Duration) -> Option<f64> {
    if !isa.is_available() {
        return None;
    }
    let round: fn(u64) -> f32 = match isa {
        // The AVX512-BF16 path's f32 work runs on the same FMAs; its `vdpbf16ps`
        // input projection does twice the FLOPs per instruction, so "% of peak" can
        // exceed 100% there.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 | Isa::Avx512Bf16 => {
            if !(std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("fma"))
            {
                return None;
            }
            |n| {
                // SAFETY: reached only after `is_x86_feature_detected!("avx512f")`
                // returned true above (the function pointer is used only here).
                unsafe { probe::avx512(n) }
            }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            if !(std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma"))
            {
                return None;
            }
            |n| {
                // SAFETY: reached only after `is_x86_feature_detected!("avx2")` and
                // `("fma")` returned true above.
                unsafe { probe::avx2(n) }
            }
        }
        _ => probe::portable,
    };
    let lanes: u64 = match isa {
        Isa::Avx512 | Isa::Avx512Bf16 => 16,
        Isa::Avx2 => 8,
        _ => 4,
    };
    Some(best_rate(
        round,
        2 * lanes * PROBE_ACCUMULATORS as u64,
        budget,
    ))
}

/// The `vdpbf16ps` rate in GFLOP/s of one core (two multiply-adds per f32 lane per
/// instruction, counted as 4 FLOPs), measured like [`fma_peak_gflops`]; `None` without
/// AVX512-BF16. This is the peak of the AVX512-BF16 path's bf16 input projection.
pub fn dot_bf16_peak_gflops(budget: Duration) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx512Bf16.is_available() {
        let round: fn(u64) -> f32 = |n| {
            // SAFETY: reached only after `Isa::Avx512Bf16.is_available()` (which
            // detects avx512f and avx512bf16) returned true just above.
            unsafe { probe::dpbf16(n) }
        };
        return Some(best_rate(round, 4 * 16 * PROBE_ACCUMULATORS as u64, budget));
    }
    let _ = budget;
    None
}

/// The `vpdpbusd` rate in GOP/s of one core (four `u8 × i8` multiply-adds per `i32`
/// lane per instruction, counted as 8 operations like the int8 rows' GFLOP/s), measured
/// like [`fma_peak_gflops`]; `None` without AVX512-VNNI. This is the peak of the int8
/// products on the AVX-512 paths.
pub fn dot_u8i8_peak_gops(budget: Duration) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni") {
        let round: fn(u64) -> f32 = |n| {
            // SAFETY: reached only after detecting avx512f and avx512vnni just above.
            unsafe { probe::dpbusd(n) }
        };
        return Some(best_rate(round, 8 * 16 * PROBE_ACCUMULATORS as u64, budget));
    }
    let _ = budget;
    None
}

/// Best GFLOP/s of `round` over `budget`.
fn best_rate(round: fn(u64) -> f32, flops_per_iter: u64, budget: Duration) -> f64 {
    // Calibrate: grow the iteration count until one round takes >= 5 ms.
    let mut iters = 1u64 << 14;
    loop {
        let t0 = Instant::now();
        std::hint::black_box(round(std::hint::black_box(iters)));
        if t0.elapsed() >= Duration::from_millis(5) || iters >= 1 << 40 {
            break;
        }
        iters *= 2;
    }
    let start = Instant::now();
    let mut best = 0.0f64;
    while start.elapsed() < budget || best == 0.0 {
        let t0 = Instant::now();
        std::hint::black_box(round(std::hint::black_box(iters)));
        let s = t0.elapsed().as_secs_f64();
        best = best.max((iters * flops_per_iter) as f64 / s / 1e9);
    }
    best
}

mod probe {
    //! The probe loops: `acc = acc * m + a` on 12 independent vector accumulators.

    use super::PROBE_ACCUMULATORS as N;

    // Values that keep the accumulators bounded and normal for any iteration count:
    // acc -> acc * M + A converges to A / (1 - M) = 0.5.
    const M: f32 = 0.999_999;
    const A: f32 = 0.5e-6;

    /// AVX-512: `vfmadd` on zmm registers.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn avx512(iters: u64) -> f32 {
        use std::arch::x86_64::*;
        let m = _mm512_set1_ps(M);
        let a = _mm512_set1_ps(A);
        let mut acc = [_mm512_setzero_ps(); N];
        for (k, v) in acc.iter_mut().enumerate() {
            *v = _mm512_set1_ps(k as f32 * 1e-3);
        }
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, m, a);
            }
        }
        let mut s = _mm512_setzero_ps();
        for v in acc {
            s = _mm512_add_ps(s, v);
        }
        _mm512_reduce_add_ps(s)
    }

    /// AVX512-BF16: `vdpbf16ps` on zmm registers, `acc += m.lo * a.lo + m.hi * a.hi`
    /// with bf16 pairs whose products cancel (1 * 2^-20 and -1 * 2^-20), so the
    /// accumulators stay put.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX512-BF16.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn dpbf16(iters: u64) -> f32 {
        use std::arch::x86_64::*;
        // bf16 bits: 1.0 = 0x3F80, -1.0 = 0xBF80, 2^-20 = 0x3580.
        let ones = _mm512_set1_epi32(0xBF80_3F80u32 as i32);
        let tiny = _mm512_set1_epi32(0x3580_3580);
        // SAFETY: `__m512i` and `__m512bh` are both 64 plain bytes.
        let (m, a) = unsafe {
            (
                std::mem::transmute::<__m512i, __m512bh>(ones),
                std::mem::transmute::<__m512i, __m512bh>(tiny),
            )
        };
        let mut acc = [_mm512_setzero_ps(); N];
        for (k, v) in acc.iter_mut().enumerate() {
            *v = _mm512_set1_ps(k as f32 * 1e-3);
        }
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_dpbf16_ps(*v, m, a);
            }
        }
        let mut s = _mm512_setzero_ps();
        for v in acc {
            s = _mm512_add_ps(s, v);
        }
        _mm512_reduce_add_ps(s)
    }

    /// AVX512-VNNI: `vpdpbusd` on zmm registers, `acc += Σ a·w` over bytes whose
    /// products cancel (codes 1 times weights 1, -1, 1, -1), so the accumulators stay.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX512-VNNI.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub(super) unsafe fn dpbusd(iters: u64) -> f32 {
        use std::arch::x86_64::*;
        let a = _mm512_set1_epi8(1);
        let w = _mm512_set1_epi32(0xFF01_FF01u32 as i32);
        let mut acc = [_mm512_setzero_si512(); N];
        for (k, v) in acc.iter_mut().enumerate() {
            *v = _mm512_set1_epi32(k as i32);
        }
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_dpbusd_epi32(*v, a, w);
            }
        }
        let mut s = _mm512_setzero_si512();
        for v in acc {
            s = _mm512_add_epi32(s, v);
        }
        _mm512_reduce_add_epi32(s) as f32
    }

    /// AVX2: `vfmadd` on ymm registers.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2(iters: u64) -> f32 {
        use std::arch::x86_64::*;
        let m = _mm256_set1_ps(M);
        let a = _mm256_set1_ps(A);
        let mut acc = [_mm256_setzero_ps(); N];
        for (k, v) in acc.iter_mut().enumerate() {
            *v = _mm256_set1_ps(k as f32 * 1e-3);
        }
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, m, a);
            }
        }
        let mut s = _mm256_setzero_ps();
        for v in acc {
            s = _mm256_add_ps(s, v);
        }
        let mut out = [0.0f32; 8];
        // SAFETY: `out` holds 8 f32, the width of a ymm store (unaligned store).
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
        out.iter().sum()
    }

    /// Portable on x86_64: 128-bit SSE multiply then add (what the kernels' portable
    /// `wide` path issues: SSE2 is the x86_64 baseline, FMA is not).
    #[cfg(target_arch = "x86_64")]
    pub(super) fn portable(iters: u64) -> f32 {
        // SAFETY: SSE2 is part of the x86_64 baseline: every x86_64 CPU has it.
        unsafe { portable_sse2(iters) }
    }

    /// The SSE2 loop of [`portable`].
    ///
    /// # Safety
    /// The CPU must support SSE2 (every x86_64 CPU does).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sse2")]
    unsafe fn portable_sse2(iters: u64) -> f32 {
        use std::arch::x86_64::*;
        let m = _mm_set1_ps(M);
        let a = _mm_set1_ps(A);
        let mut acc = [_mm_setzero_ps(); N];
        for (k, v) in acc.iter_mut().enumerate() {
            *v = _mm_set1_ps(k as f32 * 1e-3);
        }
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm_add_ps(_mm_mul_ps(*v, m), a);
            }
        }
        let mut s = _mm_setzero_ps();
        for v in acc {
            s = _mm_add_ps(s, v);
        }
        let mut out = [0.0f32; 4];
        // SAFETY: `out` holds 4 f32, the width of an unaligned xmm store.
        unsafe { _mm_storeu_ps(out.as_mut_ptr(), s) };
        out.iter().sum()
    }

    /// Portable elsewhere: 4-lane arrays, multiply then add, which the compiler
    /// turns into 128-bit vectors (NEON on aarch64).
    #[cfg(not(target_arch = "x86_64"))]
    pub(super) fn portable(iters: u64) -> f32 {
        let mut acc = [[0.0f32; 4]; N];
        for (k, v) in acc.iter_mut().enumerate() {
            *v = [k as f32 * 1e-3; 4];
        }
        for _ in 0..iters {
            for v in acc.iter_mut() {
                for l in v.iter_mut() {
                    *l = *l * M + A;
                }
            }
        }
        acc.iter().flatten().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_runs() {
        for isa in Isa::available() {
            let g = fma_peak_gflops(isa, Duration::from_millis(5)).unwrap();
            assert!(g.is_finite() && g > 0.1, "{isa}: {g}");
        }
    }
}
