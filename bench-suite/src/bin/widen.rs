//! What the batch-1 recurrent pass can do per weight type on this CPU: a streaming
//! matrix-vector product (`y = W x`, the shape of a batch-1 step) with weights stored as
//! f32, as f16 widened by `vcvtph2ps`, and as bf16 row pairs widened by a shift and a
//! mask (the crate's layouts), at a size that stays in L2 and one that streams from L3.
//!
//! `cargo run --release -p rnn-bench-suite --bin widen`
//!
//! Weights live in 2 MiB pages where the OS grants them, like the kernels' packed
//! weights. Prints weights per nanosecond (median of 11 timings of ~20 ms each). Where f16 runs
//! at the same rate at both sizes, the widening, not the bytes, is its limit.

use std::time::Instant;

use rnn_bench_suite::huge_page_buffer;

/// Columns per block: 8 vectors of 16 lanes, 8 accumulators.
const TB: usize = 128;

fn median_ns<F: FnMut()>(mut f: F) -> f64 {
    f();
    let mut reps = 1usize;
    loop {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        let ns = t.elapsed().as_nanos() as f64;
        if ns > 5e6 {
            reps = ((reps as f64) * 20e6 / ns).ceil() as usize;
            break;
        }
        reps *= 2;
    }
    let mut s: Vec<f64> = (0..11)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_nanos() as f64 / reps as f64
        })
        .collect();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::TB;

    /// f32 weights, `w[b][k][128]`.
    ///
    /// # Safety
    /// AVX-512F must be available; `w.len() == x.len() * y.len()`, `y.len() % 128 == 0`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn f32(w: &[f32], x: &[f32], y: &mut [f32]) {
        let k = x.len();
        for (b, yb) in y.chunks_exact_mut(TB).enumerate() {
            let mut acc = [_mm512_setzero_ps(); 8];
            for (kk, &xv) in x.iter().enumerate() {
                let xv = _mm512_set1_ps(xv);
                let p = &w[(b * k + kk) * TB..][..TB];
                for (t, a) in acc.iter_mut().enumerate() {
                    // SAFETY: `p` holds 128 floats; vector t reads 16 of them.
                    *a =
                        _mm512_fmadd_ps(unsafe { _mm512_loadu_ps(p.as_ptr().add(16 * t)) }, xv, *a);
                }
            }
            for (t, a) in acc.iter().enumerate() {
                // SAFETY: `yb` holds 128 floats.
                unsafe { _mm512_storeu_ps(yb.as_mut_ptr().add(16 * t), *a) };
            }
        }
    }

    /// f16 weights (bit patterns), `w[b][k][128]`, widened with `vcvtph2ps`.
    ///
    /// # Safety
    /// AVX-512F and F16C must be available; sizes as for [`f32()`].
    #[target_feature(enable = "avx512f,f16c")]
    pub unsafe fn f16(w: &[u16], x: &[f32], y: &mut [f32]) {
        let k = x.len();
        for (b, yb) in y.chunks_exact_mut(TB).enumerate() {
            let mut acc = [_mm512_setzero_ps(); 8];
            for (kk, &xv) in x.iter().enumerate() {
                let xv = _mm512_set1_ps(xv);
                let p = &w[(b * k + kk) * TB..][..TB];
                for (t, a) in acc.iter_mut().enumerate() {
                    // SAFETY: `p` holds 128 u16; vector t reads 16 of them.
                    let h = unsafe { _mm256_loadu_si256(p.as_ptr().add(16 * t).cast()) };
                    *a = _mm512_fmadd_ps(_mm512_cvtph_ps(h), xv, *a);
                }
            }
            for (t, a) in acc.iter().enumerate() {
                // SAFETY: `yb` holds 128 floats.
                unsafe { _mm512_storeu_ps(yb.as_mut_ptr().add(16 * t), *a) };
            }
        }
    }

    /// bf16 weights in row pairs (`w[b][k/2][128]`, low half row 2q, high half 2q+1),
    /// widened by a shift (low) and a mask (high).
    ///
    /// # Safety
    /// AVX-512F must be available; `x.len()` even, `2 * w.len() == x.len() * y.len()`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn bf16_pairs(w: &[u32], x: &[f32], y: &mut [f32]) {
        let kq = x.len() / 2;
        let high = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
        for (b, yb) in y.chunks_exact_mut(TB).enumerate() {
            let mut acc = [_mm512_setzero_ps(); 8];
            for q in 0..kq {
                let (x0, x1) = (_mm512_set1_ps(x[2 * q]), _mm512_set1_ps(x[2 * q + 1]));
                let p = &w[(b * kq + q) * TB..][..TB];
                for (t, a) in acc.iter_mut().enumerate() {
                    // SAFETY: `p` holds 128 u32; vector t reads 16 of them.
                    let v = unsafe { _mm512_loadu_si512(p.as_ptr().add(16 * t).cast()) };
                    let lo = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(v));
                    let hi = _mm512_castsi512_ps(_mm512_and_si512(v, high));
                    *a = _mm512_fmadd_ps(hi, x1, _mm512_fmadd_ps(lo, x0, *a));
                }
            }
            for (t, a) in acc.iter().enumerate() {
                // SAFETY: `yb` holds 128 floats.
                unsafe { _mm512_storeu_ps(yb.as_mut_ptr().add(16 * t), *a) };
            }
        }
    }
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("f16c")
    {
        println!("weights per ns, batch-1 matrix-vector product, 1 thread, AVX-512 (median of 11)");
        println!("| k x columns | f32 bytes | f32 | f16 (vcvtph2ps) | bf16 pairs (shift/mask) | f16 ÷ f32 | bf16 ÷ f32 |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for (k, cols) in [(256usize, 512usize), (512, 2048), (1024, 4096)] {
            let n = k * cols;
            let mut w32 = huge_page_buffer(n, 0.0f32);
            for (i, w) in w32.iter_mut().enumerate() {
                *w = ((i * 7919 % 2001) as f32 - 1000.0) * 1e-4;
            }
            let mut w16 = huge_page_buffer(n, 0u16);
            for (h, &v) in w16.iter_mut().zip(&w32) {
                *h = half_bits_f16(v);
            }
            let mut wbf = huge_page_buffer(n / 2, 0u32);
            let pair = |i: usize| {
                let (b, rest) = (i / (k / 2 * TB), i % (k / 2 * TB));
                let (q, c) = (rest / TB, rest % TB);
                let at = |kk: usize| w32[(b * k + kk) * TB + c].to_bits() >> 16;
                at(2 * q) | at(2 * q + 1) << 16
            };
            for (i, v) in wbf.iter_mut().enumerate() {
                *v = pair(i);
            }
            let x: Vec<f32> = (0..k).map(|i| (i % 17) as f32 / 17.0 - 0.5).collect();
            let mut y = vec![0.0f32; cols];
            // The three calls below: avx512f and f16c were detected above; the arrays
            // have the sizes each function requires (k * cols weights, k even,
            // cols % 128 == 0).
            // SAFETY: as said above.
            let t32 = median_ns(|| unsafe { avx512::f32(&w32, &x, &mut y) });
            // SAFETY: as said above.
            let t16 = median_ns(|| unsafe { avx512::f16(&w16, &x, &mut y) });
            // SAFETY: as said above.
            let tbf = median_ns(|| unsafe { avx512::bf16_pairs(&wbf, &x, &mut y) });
            std::hint::black_box(&y);
            let rate = |t: f64| n as f64 / t;
            println!(
                "| {k} x {cols} | {:.2} MiB | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} |",
                (4 * n) as f64 / (1 << 20) as f64,
                rate(t32),
                rate(t16),
                rate(tbf),
                t32 / t16,
                t32 / tbf
            );
        }
        return;
    }
    println!("widen: needs AVX-512F and F16C");
}

/// f32 -> f16 bits, round to nearest even (finite inputs in the normal f16 range).
fn half_bits_f16(v: f32) -> u16 {
    rnn_kernels::half::f16::from_f32(v).to_bits()
}
