//! Sweeps over large sets of `f32` inputs, against the `f64` reference.

use super::{apply, bound, isas, reference, ulp, Stats, FUNCS};
use crate::Isa;

/// Evaluates every function at every ISA on the inputs `bits(i) for i in range`,
/// returning the stats indexed `[isa][func]`.
fn sweep(isas: &[Isa], range: core::ops::Range<u64>, bits: impl Fn(u64) -> u32) -> Vec<Vec<Stats>> {
    const BLOCK: usize = 4096;
    let mut stats = vec![vec![Stats::new(); FUNCS.len()]; isas.len()];
    let mut xs = Vec::with_capacity(BLOCK);
    let mut out = vec![0.0f32; BLOCK];
    let mut i = range.start;
    while i < range.end {
        xs.clear();
        while xs.len() < BLOCK && i < range.end {
            xs.push(f32::from_bits(bits(i)));
            i += 1;
        }
        for (fi, &f) in FUNCS.iter().enumerate() {
            let mut outs: Vec<Vec<f32>> = Vec::with_capacity(isas.len());
            for &isa in isas {
                apply(isa, f, &xs, &mut out[..xs.len()]);
                outs.push(out[..xs.len()].to_vec());
            }
            for (k, &x) in xs.iter().enumerate() {
                if x.is_nan() {
                    for (ii, &isa) in isas.iter().enumerate() {
                        let got = outs[ii][k];
                        assert!(got.is_nan(), "{isa:?} {f:?}({x}) = {got}, want NaN");
                        stats[ii][fi].count += 1;
                    }
                    continue;
                }
                // The reference once per input, shared by all ISAs.
                let want = reference(f, x);
                let want32 = want as f32;
                let u = ulp(want);
                for (ii, &isa) in isas.iter().enumerate() {
                    let got = outs[ii][k];
                    let s = &mut stats[ii][fi];
                    s.count += 1;
                    if want32.is_infinite() || got.is_infinite() || got.is_nan() {
                        assert_eq!(
                            got, want32,
                            "{isa:?} {f:?}({x:e}): got {got:e}, want {want:e}"
                        );
                        continue;
                    }
                    let abs = (f64::from(got) - want).abs();
                    s.note(x, abs, abs / u, true);
                }
            }
        }
    }
    stats
}

/// Prints the table and checks the bounds.
fn check(isas: &[Isa], stats: &[Vec<Stats>]) {
    for (ii, &isa) in isas.iter().enumerate() {
        for (fi, &f) in FUNCS.iter().enumerate() {
            let s = &stats[ii][fi];
            eprintln!(
                "{f:?} {isa:?}: max {:.3} ulp at x = {:e}, max abs {:.3e} at x = {:e} ({} inputs)",
                s.max_ulp, s.at_ulp, s.max_abs, s.at_abs, s.count
            );
        }
    }
    for (ii, &isa) in isas.iter().enumerate() {
        for (fi, &f) in FUNCS.iter().enumerate() {
            let s = &stats[ii][fi];
            let (bu, ba) = bound(f);
            assert!(
                s.max_ulp <= bu,
                "{f:?} {isa:?}: {} ulp at {:e} > {bu}",
                s.max_ulp,
                s.at_ulp
            );
            assert!(
                s.max_abs <= ba,
                "{f:?} {isa:?}: abs {:e} at {:e} > {ba:e}",
                s.max_abs,
                s.at_abs
            );
        }
    }
}

/// (a) + (c): every 97th bit pattern (all signs and exponents, NaN and inf included)
/// at every available ISA, all within the same documented bounds.
#[test]
fn dense_sweep() {
    let isas = isas();
    let n = (1u64 << 32) / 97 + 1;
    let stats = sweep(&isas, 0..n, |i| (i * 97) as u32);
    check(&isas, &stats);
}

/// The region that matters most, with a different stride: every 211th pattern of
/// `|x| < 32` with both signs.
#[test]
fn dense_sweep_core_range() {
    let isas = isas();
    // 32.0 is 0x4200_0000.
    let n = 0x4200_0000u64 / 211;
    let stats = sweep(&isas, 0..2 * n, |i| {
        let b = ((i / 2) * 211) as u32;
        if i % 2 == 0 {
            b
        } else {
            b | 0x8000_0000
        }
    });
    check(&isas, &stats);
}

/// All 2³² inputs, split over the available cores. Slow (minutes): run with
/// `cargo test --release -p rnn-kernels simd::math -- --include-ignored`.
#[test]
#[ignore = "exhaustive, minutes in --release"]
fn exhaustive_all_f32() {
    let isas = isas();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let total = 1u64 << 32;
    let per = total.div_ceil(threads);
    let parts: Vec<Vec<Vec<Stats>>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let isas = &isas;
                sc.spawn(move || sweep(isas, t * per..((t + 1) * per).min(total), |i| i as u32))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut stats = vec![vec![Stats::new(); FUNCS.len()]; isas.len()];
    for p in &parts {
        for (ii, row) in p.iter().enumerate() {
            for (fi, s) in row.iter().enumerate() {
                stats[ii][fi].merge(s);
            }
        }
    }
    check(&isas, &stats);
}
