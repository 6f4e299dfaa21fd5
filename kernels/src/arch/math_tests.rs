//! Accuracy and special-value tests of `arch::math` at every ISA the CPU has.
//!
//! Run the fast ones with `cargo test --release -p rnn-kernels arch::math`, the
//! exhaustive 2³² sweep with `... arch::math -- --include-ignored`.

use super::{clip, exp, relu, sigmoid, tanh};
use crate::arch::portable::vector::WideX4;
use crate::arch::vector::V16;

/// The clip bound used by the `Clip` test function.
const CLIP_C: f32 = 3.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Func {
    Exp,
    Sigmoid,
    Tanh,
    Relu,
    Clip,
}

const FUNCS: [Func; 5] = [Func::Exp, Func::Sigmoid, Func::Tanh, Func::Relu, Func::Clip];

/// Documented bounds: (max ulp error, max absolute error) per function. They are the
/// measured maxima (module docs of `math.rs`) rounded up a little; a wrong coefficient
/// blows through them.
fn bound(f: Func) -> (f64, f64) {
    match f {
        Func::Exp => (BOUND_EXP_ULP, f64::INFINITY),
        Func::Sigmoid => (BOUND_SIGMOID_ULP, 1.2e-7),
        Func::Tanh => (BOUND_TANH_ULP, 1.2e-7),
        Func::Relu | Func::Clip => (0.0, 0.0),
    }
}

const BOUND_EXP_ULP: f64 = 1.05;
const BOUND_SIGMOID_ULP: f64 = 2.5;
const BOUND_TANH_ULP: f64 = 1.5;

/// `f` on the 16 `f32` at `x`, written to `o`.
#[inline(always)]
unsafe fn apply16<V: V16>(f: Func, x: *const f32, o: *mut f32) {
    // SAFETY: the caller guarantees `V`'s CPU features and 16 valid `f32` at `x`, `o`.
    unsafe {
        let v = V::load(x);
        let y = match f {
            Func::Exp => exp(v),
            Func::Sigmoid => sigmoid(v),
            Func::Tanh => tanh(v),
            Func::Relu => relu(v),
            Func::Clip => clip(v, CLIP_C),
        };
        y.store(o);
    }
}

/// Applies `f` to `xs` in blocks of 16 (the tail padded), writing `out`.
#[inline(always)]
unsafe fn apply_generic<V: V16>(f: Func, xs: &[f32], out: &mut [f32]) {
    assert_eq!(xs.len(), out.len());
    let mut xc = xs.chunks_exact(16);
    let mut oc = out.chunks_exact_mut(16);
    for (x, o) in (&mut xc).zip(&mut oc) {
        // SAFETY: forwarded CPU-feature contract; both chunks hold 16 `f32`.
        unsafe { apply16::<V>(f, x.as_ptr(), o.as_mut_ptr()) };
    }
    let (xr, or) = (xc.remainder(), oc.into_remainder());
    if !xr.is_empty() {
        let mut xb = [0.0f32; 16];
        let mut ob = [0.0f32; 16];
        xb[..xr.len()].copy_from_slice(xr);
        // SAFETY: forwarded CPU-feature contract; both buffers hold 16 `f32`.
        unsafe { apply16::<V>(f, xb.as_ptr(), ob.as_mut_ptr()) };
        or.copy_from_slice(&ob[..xr.len()]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn apply_avx512(f: Func, xs: &[f32], out: &mut [f32]) {
    // SAFETY: the caller detected avx512f.
    unsafe { apply_generic::<core::arch::x86_64::__m512>(f, xs, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn apply_avx2(f: Func, xs: &[f32], out: &mut [f32]) {
    // SAFETY: the caller detected avx2 and fma.
    unsafe { apply_generic::<crate::arch::x86_64::avx2::vector::Avx2x2>(f, xs, out) }
}

fn apply_portable(f: Func, xs: &[f32], out: &mut [f32]) {
    // SAFETY: `WideX4` needs no CPU feature beyond the target baseline.
    unsafe { apply_generic::<WideX4>(f, xs, out) }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    Avx512,
    Avx2,
    Portable,
}

impl Isa {
    /// Every ISA this CPU runs, best first.
    fn available() -> Vec<Isa> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                v.push(Isa::Avx512);
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                v.push(Isa::Avx2);
            }
        }
        v.push(Isa::Portable);
        v
    }

    fn apply(self, f: Func, xs: &[f32], out: &mut [f32]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `available` only lists `Avx512` after detecting avx512f.
            Isa::Avx512 => unsafe { apply_avx512(f, xs, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `available` only lists `Avx2` after detecting avx2 and fma.
            Isa::Avx2 => unsafe { apply_avx2(f, xs, out) },
            Isa::Portable => apply_portable(f, xs, out),
            #[allow(unreachable_patterns)]
            _ => unreachable!("{self:?} is not compiled for this target"),
        }
    }

    fn eval(self, f: Func, x: f32) -> f32 {
        let mut o = [0.0f32];
        self.apply(f, &[x], &mut o);
        o[0]
    }
}

/// The exact (`f64`) value of `f(x)`.
fn reference(f: Func, x: f32) -> f64 {
    let x = f64::from(x);
    match f {
        Func::Exp => x.exp(),
        Func::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Func::Tanh => x.tanh(),
        Func::Relu => x.max(0.0),
        Func::Clip => x.clamp(-f64::from(CLIP_C), f64::from(CLIP_C)),
    }
}

/// Spacing of `f32` at the real number `y`: `2^(k−23)` for `|y|` in `[2^k, 2^(k+1))`,
/// at least `2^−149`.
fn ulp(y: f64) -> f64 {
    let k = ((y.to_bits() >> 52) & 0x7ff) as i64 - 1023;
    f64::from_bits((((k - 23).max(-149) + 1023) as u64) << 52)
}

/// Max errors of one function at one ISA, with the arguments where they occur.
#[derive(Clone, Copy, Debug)]
struct Stats {
    max_ulp: f64,
    at_ulp: f32,
    max_abs: f64,
    at_abs: f32,
    count: u64,
}

impl Stats {
    fn new() -> Self {
        Stats {
            max_ulp: 0.0,
            at_ulp: 0.0,
            max_abs: 0.0,
            at_abs: 0.0,
            count: 0,
        }
    }

    fn merge(&mut self, o: &Stats) {
        if o.max_ulp > self.max_ulp {
            (self.max_ulp, self.at_ulp) = (o.max_ulp, o.at_ulp);
        }
        if o.max_abs > self.max_abs {
            (self.max_abs, self.at_abs) = (o.max_abs, o.at_abs);
        }
        self.count += o.count;
    }
}

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
                isa.apply(f, &xs, &mut out[..xs.len()]);
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
                    let ulps = abs / u;
                    if ulps > s.max_ulp {
                        (s.max_ulp, s.at_ulp) = (ulps, x);
                    }
                    if abs > s.max_abs {
                        (s.max_abs, s.at_abs) = (abs, x);
                    }
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
    let isas = Isa::available();
    let n = (1u64 << 32) / 97 + 1;
    let stats = sweep(&isas, 0..n, |i| (i * 97) as u32);
    check(&isas, &stats);
}

/// The region that matters most, with a different stride: every 211th pattern of
/// `|x| < 32` with both signs.
#[test]
fn dense_sweep_core_range() {
    let isas = Isa::available();
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
/// `cargo test --release -p rnn-kernels arch::math -- --include-ignored`.
#[test]
#[ignore = "exhaustive, minutes in --release"]
fn exhaustive_all_f32() {
    let isas = Isa::available();
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

/// Asserts `got` and `want` are the same `f32` (bitwise, so the sign of zero and NaN
/// count; any NaN payload is accepted).
#[track_caller]
fn assert_same(isa: Isa, f: Func, x: f32, got: f32, want: f32) {
    let same = (got.is_nan() && want.is_nan()) || got.to_bits() == want.to_bits();
    assert!(
        same,
        "{isa:?} {f:?}({x:e}) = {got:e} ({:#x}), want {want:e} ({:#x})",
        got.to_bits(),
        want.to_bits()
    );
}

/// (b): special values with exact expectations at every ISA.
#[test]
fn special_values() {
    let nan = f32::NAN;
    let inf = f32::INFINITY;
    let sub = f32::from_bits(1); // smallest subnormal
    let big_sub = f32::from_bits(0x007f_ffff); // largest subnormal
    let exact: &[(Func, f32, f32)] = &[
        (Func::Exp, 0.0, 1.0),
        (Func::Exp, -0.0, 1.0),
        (Func::Exp, sub, 1.0),
        (Func::Exp, -sub, 1.0),
        (Func::Exp, inf, inf),
        (Func::Exp, -inf, 0.0),
        (Func::Exp, nan, nan),
        (Func::Exp, -nan, nan),
        (Func::Exp, 1e30, inf),
        (Func::Exp, 100.0, inf),
        (Func::Exp, 88.73, inf),
        (Func::Exp, -1e30, 0.0),
        (Func::Exp, -104.0, 0.0),
        (Func::Exp, -110.0, 0.0),
        (Func::Exp, f32::MAX, inf),
        (Func::Exp, f32::MIN, 0.0),
        (Func::Sigmoid, 0.0, 0.5),
        (Func::Sigmoid, -0.0, 0.5),
        (Func::Sigmoid, sub, 0.5),
        (Func::Sigmoid, -sub, 0.5),
        (Func::Sigmoid, big_sub, 0.5),
        (Func::Sigmoid, inf, 1.0),
        (Func::Sigmoid, -inf, 0.0),
        (Func::Sigmoid, nan, nan),
        (Func::Sigmoid, -nan, nan),
        (Func::Sigmoid, 1e30, 1.0),
        (Func::Sigmoid, f32::MAX, 1.0),
        (Func::Sigmoid, 100.0, 1.0),
        (Func::Sigmoid, 50.0, 1.0),
        (Func::Sigmoid, 20.0, 1.0),
        (Func::Sigmoid, 17.5, 1.0),
        (Func::Sigmoid, -1e30, 0.0),
        (Func::Sigmoid, f32::MIN, 0.0),
        (Func::Sigmoid, -200.0, 0.0),
        (Func::Sigmoid, -110.0, 0.0),
        (Func::Sigmoid, -104.0, 0.0),
        (Func::Tanh, 0.0, 0.0),
        (Func::Tanh, -0.0, -0.0),
        (Func::Tanh, sub, sub),
        (Func::Tanh, -sub, -sub),
        (Func::Tanh, big_sub, big_sub),
        (Func::Tanh, -big_sub, -big_sub),
        (Func::Tanh, f32::MIN_POSITIVE, f32::MIN_POSITIVE),
        (Func::Tanh, 1e-20, 1e-20),
        (Func::Tanh, -1e-10, -1e-10),
        (Func::Tanh, inf, 1.0),
        (Func::Tanh, -inf, -1.0),
        (Func::Tanh, nan, nan),
        (Func::Tanh, -nan, nan),
        (Func::Tanh, 1e30, 1.0),
        (Func::Tanh, -1e30, -1.0),
        (Func::Tanh, f32::MAX, 1.0),
        (Func::Tanh, f32::MIN, -1.0),
        (Func::Tanh, 100.0, 1.0),
        (Func::Tanh, -100.0, -1.0),
        (Func::Tanh, 50.0, 1.0),
        (Func::Tanh, -50.0, -1.0),
        (Func::Tanh, 20.0, 1.0),
        (Func::Tanh, -20.0, -1.0),
        (Func::Tanh, 10.0, 1.0),
        (Func::Tanh, -10.0, -1.0),
        (Func::Tanh, 9.1, 1.0),
        (Func::Tanh, -9.1, -1.0),
        (Func::Relu, nan, nan),
        (Func::Relu, -nan, nan),
        (Func::Relu, inf, inf),
        (Func::Relu, -inf, 0.0),
        (Func::Relu, 2.5, 2.5),
        (Func::Relu, -2.5, 0.0),
        (Func::Relu, sub, sub),
        (Func::Relu, -sub, 0.0),
        (Func::Relu, 0.0, 0.0),
        (Func::Clip, nan, nan),
        (Func::Clip, -nan, nan),
        (Func::Clip, inf, CLIP_C),
        (Func::Clip, -inf, -CLIP_C),
        (Func::Clip, 1e30, CLIP_C),
        (Func::Clip, -1e30, -CLIP_C),
        (Func::Clip, 2.5, 2.5),
        (Func::Clip, -2.5, -2.5),
        (Func::Clip, 3.5, CLIP_C),
        (Func::Clip, -3.5, -CLIP_C),
        (Func::Clip, -0.0, -0.0),
        (Func::Clip, sub, sub),
    ];
    for isa in Isa::available() {
        for &(f, x, want) in exact {
            assert_same(isa, f, x, isa.eval(f, x), want);
        }
        // relu(-0.0) may be either zero.
        assert_eq!(isa.eval(Func::Relu, -0.0), 0.0, "{isa:?}");
        // Values next to saturation, and sigmoid's subnormal tail: within the bound of
        // the correctly rounded value, and on the right side of 0 / 1.
        for &(f, x) in &[
            (Func::Sigmoid, 9.0),
            (Func::Sigmoid, -9.0),
            (Func::Sigmoid, 10.0),
            (Func::Sigmoid, -10.0),
            (Func::Sigmoid, 16.0),
            (Func::Sigmoid, -20.0),
            (Func::Sigmoid, -50.0),
            (Func::Sigmoid, -87.0),
            (Func::Sigmoid, -90.0),
            (Func::Sigmoid, -100.0),
            (Func::Sigmoid, -103.0),
            (Func::Tanh, 9.0),
            (Func::Tanh, -9.0),
            (Func::Tanh, 8.0),
            (Func::Tanh, 0.625),
            (Func::Tanh, -0.624_999_94),
            (Func::Exp, 88.72),
            (Func::Exp, -87.0),
            (Func::Exp, -100.0),
            (Func::Exp, 1.0),
        ] {
            let got = isa.eval(f, x);
            let want = reference(f, x);
            let err = (f64::from(got) - want).abs() / ulp(want);
            assert!(
                err <= bound(f).0,
                "{isa:?} {f:?}({x:e}) = {got:e}, want {want:e}: {err} ulp"
            );
            assert!(
                got > 0.0 || f == Func::Tanh,
                "{isa:?} {f:?}({x:e}) = {got:e} must be > 0"
            );
            assert!(
                got.abs() < 1.0 || f == Func::Exp,
                "{isa:?} {f:?}({x:e}) = {got:e} must be < 1"
            );
        }
    }
}

/// The ISA paths agree with each other within the bound (they are compared with the
/// reference by the sweeps; here: AVX-512 and AVX2 are even bit-identical, the
/// portable path is within 2 bounds of both).
#[test]
fn isas_agree() {
    let isas = Isa::available();
    let xs: Vec<f32> = (0..200_000u32)
        .map(|i| (i as f32 - 100_000.0) * 1.3e-3)
        .collect();
    for f in FUNCS {
        let outs: Vec<Vec<f32>> = isas
            .iter()
            .map(|&isa| {
                let mut o = vec![0.0; xs.len()];
                isa.apply(f, &xs, &mut o);
                o
            })
            .collect();
        for (k, &x) in xs.iter().enumerate() {
            let u = ulp(reference(f, x));
            for (ii, &isa) in isas.iter().enumerate() {
                if outs[ii][k].to_bits() == outs[0][k].to_bits() {
                    continue;
                }
                let d = (f64::from(outs[ii][k]) - f64::from(outs[0][k])).abs() / u;
                assert!(
                    isa == Isa::Portable,
                    "{f:?}({x:e}) {isa:?} vs {:?} not bit-identical",
                    isas[0]
                );
                assert!(
                    d <= 2.0 * bound(f).0,
                    "{f:?}({x:e}) {isa:?} vs {:?}: {d} ulp",
                    isas[0]
                );
            }
        }
    }
}

/// `min_keep_nan` / `max_keep_nan` keep a NaN in `self` at every ISA (the x86
/// `min`/`max` instructions drop it in one operand order).
#[test]
fn min_max_keep_nan() {
    #[inline(always)]
    unsafe fn probe<V: V16>() -> [[f32; 16]; 4] {
        let mut x = [1.0f32; 16];
        x[3] = f32::NAN;
        x[7] = -f32::NAN;
        x[8] = -5.0;
        x[9] = 5.0;
        let mut r = [[0.0f32; 16]; 4];
        // SAFETY: the caller guarantees `V`'s CPU features; all pointers address 16 f32.
        unsafe {
            let v = V::load(x.as_ptr());
            v.min_keep_nan(V::splat(2.0)).store(r[0].as_mut_ptr());
            v.max_keep_nan(V::splat(2.0)).store(r[1].as_mut_ptr());
            V::splat(2.0).min_keep_nan(v).store(r[2].as_mut_ptr());
            V::splat(2.0).max_keep_nan(v).store(r[3].as_mut_ptr());
        }
        r
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn p512() -> [[f32; 16]; 4] {
        // SAFETY: the caller detected avx512f.
        unsafe { probe::<core::arch::x86_64::__m512>() }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn p256() -> [[f32; 16]; 4] {
        // SAFETY: the caller detected avx2 and fma.
        unsafe { probe::<crate::arch::x86_64::avx2::vector::Avx2x2>() }
    }
    for isa in Isa::available() {
        let r = match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: listed only after detection.
            Isa::Avx512 => unsafe { p512() },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: listed only after detection.
            Isa::Avx2 => unsafe { p256() },
            // SAFETY: no features needed.
            _ => unsafe { probe::<WideX4>() },
        };
        for k in [3, 7] {
            assert!(
                r[0][k].is_nan() && r[1][k].is_nan(),
                "{isa:?} lane {k}: {:?}",
                r
            );
        }
        assert_eq!(
            (r[0][8], r[1][8], r[0][9], r[1][9]),
            (-5.0, 2.0, 2.0, 5.0),
            "{isa:?}"
        );
        assert_eq!(
            (r[2][8], r[3][8], r[2][9], r[3][9]),
            (-5.0, 2.0, 2.0, 5.0),
            "{isa:?}"
        );
        assert_eq!((r[0][0], r[1][0]), (1.0, 2.0), "{isa:?}");
    }
}

/// On this machine every path the CPU supports is really exercised (a silent
/// fallback to portable would be a bug).
#[test]
fn all_paths_exercised() {
    let isas = Isa::available();
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(
            isas.contains(&Isa::Avx512),
            is_x86_feature_detected!("avx512f")
        );
        assert_eq!(
            isas.contains(&Isa::Avx2),
            is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
        );
    }
    assert!(isas.contains(&Isa::Portable));
}
