//! Special values with exact expectations, and the NaN-keeping min/max.

use super::{bound, eval, isas, reference, ulp, Func, CLIP_C};
use crate::arch::{dispatch, Backend, ForBackend};
use crate::kernel::SimdOp;
use crate::simd::V16;
use crate::Isa;

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
    for isa in isas() {
        for &(f, x, want) in exact {
            assert_same(isa, f, x, eval(isa, f, x), want);
        }
        // relu(-0.0) may be either zero.
        assert_eq!(eval(isa, Func::Relu, -0.0), 0.0, "{isa:?}");
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
            let got = eval(isa, f, x);
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
    struct Probe;
    impl SimdOp for Probe {
        type Output = [[f32; 16]; 4];
        #[inline(always)]
        unsafe fn run<V: V16>(self) -> [[f32; 16]; 4] {
            // SAFETY: forwarded CPU-feature contract.
            unsafe { probe::<V>() }
        }
    }
    impl ForBackend for Probe {
        type Output = [[f32; 16]; 4];
        fn call<B: Backend>(self) -> [[f32; 16]; 4] {
            // SAFETY: `dispatch` chose `B` for a detected ISA.
            unsafe { B::run_op(self) }
        }
    }
    for isa in isas() {
        let r = dispatch(isa.detected().unwrap(), Probe);
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
