//! Accuracy and special-value tests of `simd::math` at every ISA the CPU has, each run
//! through the crate's own dispatcher (`arch::dispatch` and `Backend::run_op`).
//! `onnx` does the same for `simd::activations` (ONNX's other activation functions).
//!
//! Run the fast ones with `cargo test --release -p rnn-kernels simd::math`, the
//! exhaustive 2³² sweep with `... simd::math -- --include-ignored`.

mod agreement;
mod onnx;
mod specials;
mod sweeps;

use super::{clip, exp, relu, sigmoid, tanh};
use crate::arch::{dispatch, Backend, ForBackend};
use crate::kernel::SimdOp;
use crate::simd::{activations, V16};
use crate::Isa;
use rnn_reference::testkit::bound::model::kernel_activations as documented;
/// Spacing of `f32` at the real number `y` (the unit of the accuracy tables).
use rnn_reference::testkit::bound::ulp;
use rnn_reference::Activation;

/// The clip bound used by the `Clip` test function.
const CLIP_C: f32 = 3.0;

/// The functions under test (`Expm1` and `Act` are `onnx.rs`'s).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Func {
    Exp,
    Sigmoid,
    Tanh,
    Relu,
    Clip,
    /// `simd::activations::expm1` (on `x ≤ 0`).
    Expm1,
    /// `simd::activations::activation` with an ONNX function.
    Act(Activation),
}

const FUNCS: [Func; 5] = [Func::Exp, Func::Sigmoid, Func::Tanh, Func::Relu, Func::Clip];

/// Documented bounds: (max ulp error, max absolute error) per function. They are the
/// measured maxima (module docs of `math.rs`) rounded up a little; a wrong coefficient
/// blows through them. One home: the test kit's error model of the kernels, which every
/// comparison of the kernels with the reference uses.
fn bound(f: Func) -> (f64, f64) {
    let d = match f {
        Func::Exp => documented::EXP,
        Func::Sigmoid => documented::SIGMOID,
        Func::Tanh => documented::TANH,
        Func::Relu | Func::Clip => return (0.0, 0.0),
        Func::Expm1 | Func::Act(_) => unreachable!("bounded by onnx.rs"),
    };
    (d.ulps, d.abs)
}

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
            Func::Expm1 => activations::expm1(v),
            Func::Act(a) => activations::activation(v, a),
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

/// `f` over a whole slice with vector type `V`.
struct Apply<'a> {
    f: Func,
    xs: &'a [f32],
    out: &'a mut [f32],
}

impl SimdOp for Apply<'_> {
    type Output = ();
    #[inline(always)]
    unsafe fn run<V: V16>(self) {
        // SAFETY: forwarded CPU-feature contract.
        unsafe { apply_generic::<V>(self.f, self.xs, self.out) }
    }
}

impl ForBackend for Apply<'_> {
    type Output = ();
    fn call<B: Backend>(self) {
        // SAFETY: `dispatch` chose `B` for a detected ISA.
        unsafe { B::run_op(self) }
    }
}

/// Max errors of one function at one ISA, with the arguments where they occur (the
/// sweeps' and the ONNX functions' tests share it).
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

    /// Records a finite result's error at `x`: `abs` absolute, `ulps` in units of the
    /// last place; the absolute one only where `counts_abs` (a table's absolute column
    /// may cover only some results).
    fn note(&mut self, x: f32, abs: f64, ulps: f64, counts_abs: bool) {
        if ulps > self.max_ulp {
            (self.max_ulp, self.at_ulp) = (ulps, x);
        }
        if counts_abs && abs > self.max_abs {
            (self.max_abs, self.at_abs) = (abs, x);
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

/// The paths whose math these tests check: every available one except
/// [`Isa::Avx512Bf16`], which runs the AVX-512 code itself (no copy of it).
fn isas() -> Vec<Isa> {
    Isa::available()
        .into_iter()
        .filter(|&i| i != Isa::Avx512Bf16)
        .collect()
}

/// `f` on `xs` at `isa`, written to `out`.
fn apply(isa: Isa, f: Func, xs: &[f32], out: &mut [f32]) {
    let detected = isa.detected().expect("only available paths are tested");
    dispatch(detected, Apply { f, xs, out });
}

/// `f(x)` at `isa`.
fn eval(isa: Isa, f: Func, x: f32) -> f32 {
    let mut o = [0.0f32];
    apply(isa, f, &[x], &mut o);
    o[0]
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
        Func::Expm1 => x.exp_m1(),
        Func::Act(a) => a.eval(x),
    }
}
