//! What the AVX-512 `f32` register tile can reach on this machine, by where its weight
//! panel lives: the crate's tile shape (6 rows × 4 vectors of 16 lanes, 24 accumulators,
//! one panel row of 4 vectors and 6 broadcasts per step) over `rows × k` times panels of
//! `k × 64`, each panel walked by every 6-row block in turn, as the crate's walk does.
//! Variants, all with the same multiply-adds:
//! - `fixed`: every step reads the same panel row (no panel traffic: the mix's ceiling);
//! - `l1`: the panel's rows wrap every 64 (16 KiB, held in L1);
//! - `l2`: the whole panel (`k × 256` bytes, from L2);
//! - `l2+pf`: the same, each step asking for the panel row 24 ahead in L1 (`prefetcht0`,
//!   as the crate's micro-kernel does on AVX-512);
//! - `kc128`: the panel in slices of 128 rows (32 KiB, L1), each slice over every row
//!   block, the partial sums kept in memory;
//! - `packed+pf`: `l2+pf` with the rows packed per 6-row block (`[block][k][6]`: one
//!   stream of broadcasts instead of six rows `k` apart, as a GEMM's packed A);
//! - `kc128+packed`: `kc128` with the rows packed per slice and block
//!   (`[slice][block][128][6]`: the classic GEMM blocking, the panel's slice in L1).
//!
//! `cargo run --release -p rnn-bench-suite --example tile_ceiling -- [ROWS,...] [K]`
//! (default rows 168 and 1026, `k` = 1600: a 1024-unit LSTM's weight-gradient product
//! has 1025 rows and `k` = 1600 at batch 64, T = 25). 1 thread; % of the FMA probe.
use std::time::Duration;

use rnn_bench_suite::{fma_peak_gflops, time_median, Repeats};
use rnn_kernels::Isa;

#[cfg(target_arch = "x86_64")]
mod tile {
    use std::arch::x86_64::*;

    /// Panel-row index mask (`usize::MAX`: none; 0: always row 0; 63: wrap at 64).
    #[derive(Clone, Copy)]
    pub struct Variant {
        pub wrap: usize,
        pub kc: usize,
        /// Panel rows ahead to prefetch into L1 (0: none).
        pub ahead: usize,
        /// Rows packed per block (and slice of `kc`), `[block][k][6]`.
        pub packed: bool,
    }

    /// `a` (`nrows × k`) packed as [`product`] reads it with `packed`: for each slice
    /// of `kc` rows of `k`, each 6-row block's `kc × 6` values, `k` by `k`.
    pub fn pack(a: &[f32], nrows: usize, k: usize, kc: usize) -> Vec<f32> {
        let mut out = vec![0.0; nrows * k];
        for k0 in (0..k).step_by(kc) {
            let n = kc.min(k - k0);
            for r in 0..nrows {
                for p in 0..n {
                    out[k0 * nrows + r / 6 * 6 * n + p * 6 + r % 6] = a[r * k + k0 + p];
                }
            }
        }
        out
    }

    /// `acc += rows × panel` over `k` steps for one 6-row block, the sums loaded from
    /// and stored to `out` (6 rows of 64 floats); row `i`'s value `p` at
    /// `rows[i] + p * step`.
    ///
    /// # Safety
    /// AVX-512F must be available; each row holds `k` values `step` apart, the panel
    /// `(min(k - 1, wrap) + 1) * 64`, `out` 384.
    #[target_feature(enable = "avx512f")]
    unsafe fn block(
        rows: [*const f32; 6],
        step: usize,
        k: usize,
        panel: *const f32,
        wrap: usize,
        ahead: usize,
        out: *mut f32,
    ) {
        // SAFETY: (whole body) the caller's contract bounds every pointer below.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); 4]; 6];
            for (i, row) in acc.iter_mut().enumerate() {
                for (j, a) in row.iter_mut().enumerate() {
                    *a = _mm512_loadu_ps(out.add(i * 64 + 16 * j));
                }
            }
            for p in 0..k {
                if ahead > 0 {
                    // A hint: never faults, whatever the address.
                    let next = panel.wrapping_add((p + ahead) * 64).cast::<i8>();
                    for line in 0..4 {
                        _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(64 * line));
                    }
                }
                let w = panel.add((p & wrap) * 64);
                let wv = [0, 1, 2, 3].map(|j| _mm512_load_ps(w.add(16 * j)));
                for (i, row) in acc.iter_mut().enumerate() {
                    let a = _mm512_set1_ps(*rows[i].add(p * step));
                    for (j, acc) in row.iter_mut().enumerate() {
                        *acc = _mm512_fmadd_ps(wv[j], a, *acc);
                    }
                }
            }
            for (i, row) in acc.iter().enumerate() {
                for (j, a) in row.iter().enumerate() {
                    _mm512_storeu_ps(out.add(i * 64 + 16 * j), *a);
                }
            }
        }
    }

    /// The product `a (nrows × k) × panels (k × 64 each)`, `nrows` a multiple of 6
    /// (`a` as [`pack`] gives it when `v.packed`).
    ///
    /// # Safety
    /// AVX-512F must be available; `w` 64-byte aligned; sizes as the caller built them.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn product(
        a: &[f32],
        nrows: usize,
        k: usize,
        w: &[f32],
        out: &mut [f32],
        v: Variant,
    ) {
        let panels = w.len() / (k * 64);
        assert!(nrows.is_multiple_of(6) && a.len() >= nrows * k && out.len() >= nrows * 64);
        for p in 0..panels {
            out.fill(0.0);
            for k0 in (0..k).step_by(v.kc) {
                let kk = v.kc.min(k - k0);
                for r in (0..nrows).step_by(6) {
                    let (rows, step) = if v.packed {
                        let block = &a[k0 * nrows + r * kk..];
                        ([0, 1, 2, 3, 4, 5].map(|i| block[i..].as_ptr()), 6)
                    } else {
                        (
                            [0, 1, 2, 3, 4, 5].map(|i| a[(r + i) * k + k0..].as_ptr()),
                            1,
                        )
                    };
                    // SAFETY: rows r..r+6 < nrows hold kk values from k0 (`step` apart:
                    // packed, block r/6 of slice k0 holds kk × 6 values from
                    // k0·nrows + r·kk, inside `a`); panel p's rows k0.. (or its wrapped
                    // rows) lie inside `w`; `out` holds nrows × 64.
                    unsafe {
                        let panel = w.as_ptr().add(p * k * 64 + k0 * 64);
                        block(
                            rows,
                            step,
                            kk,
                            panel,
                            v.wrap,
                            v.ahead,
                            out.as_mut_ptr().add(r * 64),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn main() {
    if !std::arch::is_x86_feature_detected!("avx512f") {
        println!("tile_ceiling: this CPU has no AVX-512F");
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let rows: Vec<usize> = args
        .get(1)
        .map_or("168,1026", String::as_str)
        .split(',')
        .map(|s| s.parse::<usize>().expect("ROWS") / 6 * 6)
        .collect();
    let k: usize = args.get(2).map_or(1600, |s| s.parse().expect("K"));
    let peak = fma_peak_gflops(Isa::Avx512, Duration::from_millis(100)).unwrap();
    println!("FMA probe (avx512): {peak:.1} GFLOP/s; k = {k}, 16 panels of k × 64");
    println!("rows | variant | GFLOP/s | % of probe");
    let r = Repeats {
        min_runs: 5,
        min_time: Duration::from_millis(300),
        max_runs: 1000,
        max_time: Duration::from_secs(2),
    };
    for &nrows in &rows {
        let a: Vec<f32> = (0..nrows * k).map(|i| (i % 7) as f32 * 0.1).collect();
        // 64-byte aligned panels (the crate's packed panels are).
        let mut buf = vec![0f32; 16 * k * 64 + 16];
        let off = buf.as_ptr().align_offset(64);
        let w = &mut buf[off..off + 16 * k * 64];
        w.iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = (i % 5) as f32 * 0.1);
        let mut out = vec![0f32; nrows * 64];
        let variant = |wrap, kc, ahead, packed| tile::Variant {
            wrap,
            kc,
            ahead,
            packed,
        };
        let variants = [
            ("fixed", variant(0, k, 0, false)),
            ("l1", variant(63, k, 0, false)),
            ("l2", variant(usize::MAX, k, 0, false)),
            ("l2+pf", variant(usize::MAX, k, 24, false)),
            ("kc128", variant(usize::MAX, 128, 0, false)),
            ("packed+pf", variant(usize::MAX, k, 24, true)),
            ("kc128+packed", variant(usize::MAX, 128, 0, true)),
        ];
        let packed_full = tile::pack(&a, nrows, k, k);
        let packed_128 = tile::pack(&a, nrows, k, 128);
        for (name, v) in variants {
            let a = match (v.packed, v.kc) {
                (false, _) => &a,
                (true, kc) if kc == k => &packed_full,
                (true, _) => &packed_128,
            };
            let s = time_median(r, || {
                // SAFETY: AVX-512F was detected above; `w` is 64-byte aligned and holds
                // 16 panels of k × 64; `a` nrows × k; `out` nrows × 64.
                unsafe { tile::product(a, nrows, k, w, &mut out, v) }
            });
            let gflops = 2.0 * (nrows * k * 64 * 16) as f64 / s / 1e9;
            println!(
                "{nrows} | {name} | {gflops:.1} | {:.0}%",
                100.0 * gflops / peak
            );
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("tile_ceiling: x86_64 only");
}
