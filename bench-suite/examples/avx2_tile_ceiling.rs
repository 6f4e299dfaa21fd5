//! What the AVX2 `f32` register tile reaches on this machine, by the layout its weight
//! panels are stored in: the crate's AVX2 tile (6 rows × one 16-lane vector = 12 `ymm`
//! accumulators, one panel vector and 6 broadcasts per step) over `rows × k` times
//! `panels` panels of `k × 64` (a 4-gate tile: 4 vectors of 16 units), each panel walked
//! by every 6-row block in turn and each block taking the panel's 4 vectors one after
//! the other (the crate's grouped walk). Variants, all with the same multiply-adds:
//! - `fixed`: every step reads the same panel row (no panel traffic: the mix's ceiling);
//! - `rows`: the crate's layout, panel rows `[k][64]`: a vector's `k` values are 256
//!   bytes apart, one cache line in four;
//! - `stripes`: each panel as 4 stripes `[4][k][16]`: a vector's `k` values contiguous
//!   (the layout ONNX Runtime's MLAS packs its `B` in).
//!
//! `cargo run --release -p rnn-bench-suite --example avx2_tile_ceiling -- [ROWS,...] [K] [PANELS]`
//! (default rows 18 and 798, `k` = 512, 32 panels: a 512-unit LSTM's recurrent weights,
//! 4 MiB, at batch 18, and its input projection at batch 16 × 50 steps). 1 thread; % of
//! the FMA probe.
use std::time::Duration;

use rnn_bench_suite::{fma_peak_gflops, time_median, Repeats};
use rnn_kernels::Isa;

#[cfg(target_arch = "x86_64")]
mod tile {
    use std::arch::x86_64::*;

    /// Where vector `j` of panel row `p` starts, in floats from the panel's start, and
    /// the step between rows, per variant.
    #[derive(Clone, Copy, PartialEq)]
    pub enum Layout {
        Fixed,
        Rows,
        Stripes,
    }

    /// `out[i] += sum_p rows[i][p] * v[p]` over `k` steps for one 6-row block and one
    /// panel vector `v` (16 lanes) whose row `p` is at `v + p * step`.
    ///
    /// # Safety
    /// AVX2 and FMA must be available; each row holds `k` floats, `v` is readable at
    /// `p * step .. p * step + 16` for `p < k`, `out` holds 96 floats.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block(rows: [*const f32; 6], k: usize, v: *const f32, step: usize, out: *mut f32) {
        // SAFETY: (whole body) the caller's contract bounds every pointer below.
        unsafe {
            // The sums start from `out` (as the crate's k-sliced products do), so no
            // block's work is dead to the optimiser.
            let mut acc = [[_mm256_setzero_ps(); 2]; 6];
            for (i, row) in acc.iter_mut().enumerate() {
                row[0] = _mm256_loadu_ps(out.add(i * 16));
                row[1] = _mm256_loadu_ps(out.add(i * 16 + 8));
            }
            for p in 0..k {
                let w = v.add(p * step);
                let w0 = _mm256_loadu_ps(w);
                let w1 = _mm256_loadu_ps(w.add(8));
                for (i, row) in acc.iter_mut().enumerate() {
                    let a = _mm256_broadcast_ss(&*rows[i].add(p));
                    row[0] = _mm256_fmadd_ps(w0, a, row[0]);
                    row[1] = _mm256_fmadd_ps(w1, a, row[1]);
                }
            }
            for (i, row) in acc.iter().enumerate() {
                _mm256_storeu_ps(out.add(i * 16), row[0]);
                _mm256_storeu_ps(out.add(i * 16 + 8), row[1]);
            }
        }
    }

    /// The product `a (nrows × k) × panels (k × 64 each)`, `nrows` a multiple of 6.
    ///
    /// # Safety
    /// AVX2 and FMA must be available; sizes as the caller built them.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn product(
        a: &[f32],
        nrows: usize,
        k: usize,
        w: &[f32],
        out: &mut [f32],
        layout: Layout,
    ) {
        let panels = w.len() / (k * 64);
        assert!(nrows.is_multiple_of(6) && a.len() >= nrows * k && out.len() >= 96);
        for p in 0..panels {
            for r in (0..nrows).step_by(6) {
                let rows = [0, 1, 2, 3, 4, 5].map(|i| a[(r + i) * k..].as_ptr());
                for j in 0..4 {
                    let (start, step) = match layout {
                        Layout::Fixed => (16 * j, 0),
                        Layout::Rows => (16 * j, 64),
                        Layout::Stripes => (j * k * 16, 16),
                    };
                    // SAFETY: rows r..r+6 < nrows hold k floats; panel p spans
                    // p * k * 64 .. (p + 1) * k * 64 of `w`, and every (start, step)
                    // above stays inside it for p < k; `out` holds 96 floats.
                    unsafe {
                        let v = w.as_ptr().add(p * k * 64 + start);
                        block(rows, k, v, step, out.as_mut_ptr());
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn main() {
    if !(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"))
    {
        println!("avx2_tile_ceiling: this CPU has no AVX2/FMA");
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let rows: Vec<usize> = args
        .get(1)
        .map_or("18,798", String::as_str)
        .split(',')
        .map(|s| (s.parse::<usize>().expect("ROWS") / 6 * 6).max(6))
        .collect();
    let k: usize = args.get(2).map_or(512, |s| s.parse().expect("K"));
    let panels: usize = args.get(3).map_or(32, |s| s.parse().expect("PANELS"));
    let peak = fma_peak_gflops(Isa::Avx2, Duration::from_millis(100)).unwrap();
    println!(
        "FMA probe (avx2): {peak:.1} GFLOP/s; k = {k}, {panels} panels of k × 64 ({} KiB)",
        panels * k * 64 * 4 / 1024
    );
    println!("rows | layout | GFLOP/s | % of probe");
    let r = Repeats {
        min_runs: 5,
        min_time: Duration::from_millis(300),
        max_runs: 1000,
        max_time: Duration::from_secs(2),
    };
    for &nrows in &rows {
        let a: Vec<f32> = (0..nrows * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let w: Vec<f32> = (0..panels * k * 64).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut out = vec![0f32; 96];
        use tile::Layout;
        for (name, layout) in [
            ("fixed", Layout::Fixed),
            ("rows", Layout::Rows),
            ("stripes", Layout::Stripes),
        ] {
            let s = time_median(r, || {
                // SAFETY: AVX2 and FMA were detected above; `w` holds `panels` panels
                // of k × 64, `a` nrows × k, `out` 96 floats.
                unsafe { tile::product(&a, nrows, k, &w, &mut out, layout) }
            });
            let gflops = 2.0 * (nrows * k * 64 * panels) as f64 / s / 1e9;
            println!(
                "{nrows} | {name} | {gflops:.1} | {:.0}%",
                100.0 * gflops / peak
            );
        }
        std::hint::black_box(&out);
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("avx2_tile_ceiling: x86_64 only");
}
