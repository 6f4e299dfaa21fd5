//! The output layer (`PackedOutput`) against the reference at every available ISA:
//! - `f32`, `f16` and `bf16` weights: the forward against `output_layer` on the
//!   rounded weights (the test kit's bounded numbers; values within the bound where the
//!   problem is finite and cannot overflow, else the special-value classes where the
//!   `f64` and `f32` references agree), and on finite problems the backward on the
//!   kernels' own output against `output_layer_backward`'s bound;
//! - `i8` weights (`pack` of the float weights, and `from_quantized` of arbitrary codes
//!   with zero points, per tensor or per unit) in every activation scheme against the
//!   int8 oracle `output_layer_quantized_as`, whose products are bit-identical: the
//!   same special-value classes (where the oracle's `f64` and `f32` classes agree),
//!   values within the bound of the `f32` bias and activation.
//!
//! Values come from a seeded generator at a fuzzer-chosen scale, with palette values
//! (NaN, ±inf, huge, tiny, subnormal) injected at fuzzer-chosen positions.
#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use rnn_fuzz::{compare, max_abs, Check, Kernels, SplitMix64, PALETTE};
use rnn_kernels::half::{bf16, f16};
use rnn_kernels::{
    ActivationQuant, Element, Isa, OutputActivation, OutputConfig, PackedOutput, Workspace,
};
use rnn_reference::quant::{output_layer_quantized_as, OwnedQuantizedMatrix};
use rnn_reference::testkit::bound::Bounded;
use rnn_reference::testkit::compare::compare_within;
use rnn_reference::{output_layer, output_layer_backward};

struct Case {
    cfg: OutputConfig,
    rows: usize,
    w: Vec<f32>,
    b: Option<Vec<f32>>,
    x: Vec<f32>,
    codes: OwnedQuantizedMatrix,
    b_codes: Option<Vec<f32>>,
}

fn arbitrary_case(u: &mut Unstructured<'_>) -> Result<Case> {
    let i = u.int_in_range(1..=70usize)?;
    let o = u.int_in_range(1..=70usize)?;
    let rows = u.int_in_range(1..=20usize)?;
    let activation = OutputActivation::ALL[u.int_in_range(0..=2usize)?];
    let bias: bool = u.arbitrary()?;
    let seed: u64 = u.arbitrary()?;
    let scale = [1.0f32, 1.0, 8.0, 50.0, 1e3, 1e15][u.int_in_range(0..=5usize)?];
    let mut rng = SplitMix64::new(seed);
    let w = rng.vec(o * i, 1.0 / (i as f32).sqrt());
    let b = bias.then(|| rng.vec(o, 0.5));
    let x = rng.vec(rows * i, scale);
    // Imported codes: the whole i8 range, zero points near 0 or at the range's ends.
    let per_unit: bool = u.arbitrary()?;
    let n = if per_unit { o } else { 1 };
    let codes = (0..o * i).map(|_| rng.below(256) as i32 as u8 as i8).collect();
    let scales = (0..n).map(|_| (0.5 + rng.below(1000) as f32 / 1000.0) / (127.0 * (i as f32).sqrt())).collect();
    let zero_points = match u.int_in_range(0..=2u8)? {
        0 => None,
        1 => Some((0..n).map(|_| rng.below(21) as i8 - 10).collect()),
        _ => Some((0..n).map(|_| if rng.coin() { -128 } else { 127 }).collect()),
    };
    let mut c = Case {
        cfg: OutputConfig::new(i, o, activation),
        rows,
        w,
        b,
        x,
        codes: OwnedQuantizedMatrix { codes, scales, zero_points },
        b_codes: bias.then(|| rng.vec(o, 0.5)),
    };
    // Up to 8 palette values at chosen positions of w, b, x, the scales and the codes'
    // bias.
    for _ in 0..u.int_in_range(0..=8usize)? {
        let which: u8 = u.arbitrary()?;
        let idx: u32 = u.arbitrary()?;
        let val = PALETTE[u.int_in_range(0..=PALETTE.len() - 1)?];
        let a: &mut [f32] = match which % 5 {
            0 => &mut c.w,
            1 => c.b.as_deref_mut().unwrap_or(&mut []),
            2 => &mut c.x,
            3 => &mut c.codes.scales,
            _ => c.b_codes.as_deref_mut().unwrap_or(&mut []),
        };
        if !a.is_empty() {
            let n = a.len();
            a[idx as usize % n] = val;
        }
    }
    Ok(c)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(c) = arbitrary_case(&mut u) else { return };
    floats::<f32>(&c);
    floats::<f16>(&c);
    floats::<bf16>(&c);
    int8(&c);
});

fn bounded(v: &[f32]) -> Vec<Bounded<Kernels>> {
    v.iter().map(|&x| Bounded::exact(f64::from(x))).collect()
}

/// Whether no finite value computed can overflow `f32`: `|z| <= max|x| · max row sum
/// |w| + max|b|` well below `f32::MAX` (softmax and sigmoid stay in [0, 1]; the
/// backward's products are at most `|dz| · (|x|, |w|)` summed over rows).
fn finite_and_small(c: &Case, w: &[f32]) -> bool {
    let all = [w, c.b.as_deref().unwrap_or(&[]), &c.x[..]];
    if !all.iter().all(|a| a.iter().all(|v| v.is_finite())) {
        return false;
    }
    let i = c.cfg.in_features;
    let row_sum = w.chunks(i).map(|r| r.iter().map(|v| f64::from(v.abs())).sum::<f64>()).fold(0.0, f64::max);
    let z = max_abs(&c.x) * row_sum + c.b.as_deref().map_or(0.0, max_abs);
    let dw = max_abs(&c.x) * c.rows as f64 * 2.0;
    z < 1e30 && dw < 1e30 && row_sum * 2.0 * (c.cfg.out_features as f64) < 1e30
}

/// Weights stored as `W`: the forward at every ISA against the reference on the rounded
/// weights, and on finite problems the backward.
fn floats<W: Element>(c: &Case) {
    let w_r: Vec<f32> = c.w.iter().map(|&v| W::from_f32(v).to_f32()).collect();
    let finite = finite_and_small(c, &w_r);
    let b = c.b.as_deref().map(bounded);
    let want = output_layer(&c.cfg, &bounded(&w_r), b.as_deref(), c.rows, &bounded(&c.x)).expect("valid sizes");
    let (value, bound): (Vec<f64>, Vec<f64>) = want.iter().map(|v| (v.value(), v.bound())).unzip();
    let want32 = output_layer(&c.cfg, &w_r, c.b.as_deref(), c.rows, &c.x).expect("valid sizes");
    let check = if finite { Check::Values } else { Check::Classes };
    let n = c.rows * c.cfg.out_features;
    for isa in Isa::available() {
        let out = PackedOutput::<W>::pack(&c.cfg, &c.w, c.b.as_deref())
            .expect("pack accepts valid sizes")
            .with_isa(Some(isa))
            .expect("available ISA");
        let mut ws = Workspace::new();
        let mut y = vec![f32::NAN; n];
        out.forward(&mut ws, c.rows, &c.x, &mut y).expect("forward accepts valid sizes");
        let name = format!("{} forward at {isa} ({check:?}) {:?} rows {}", W::NAME, c.cfg, c.rows);
        if let Err(e) = compare(&name, &y, &value, &want32, &bound, check) {
            panic!("{e}");
        }
        if !finite || !y.iter().all(|v| v.is_finite()) {
            continue;
        }
        let dy = SplitMix64::new(c.rows as u64).vec(n, 1.0);
        let g = output_layer_backward(&c.cfg, &bounded(&w_r), c.rows, &bounded(&c.x), &bounded(&y), &bounded(&dy))
            .expect("valid sizes");
        let (mut dx, mut dw, mut db) = (vec![f32::NAN; c.x.len()], vec![f32::NAN; c.w.len()], vec![f32::NAN; c.cfg.out_features]);
        out.backward(&mut ws, c.rows, &c.x, &y, &dy, &mut dx, &mut dw, Some(&mut db)).expect("backward accepts valid sizes");
        for (part, got, want) in [("dx", &dx, &g.dx), ("dw", &dw, &g.dw), ("db", &db, &g.db)] {
            let (value, bound): (Vec<f64>, Vec<f64>) = want.iter().map(|v| (v.value(), v.bound())).unzip();
            // Rigorous bounds: any excess is a bug, however ill-conditioned the array.
            if let Err(e) = compare_within(&format!("{name} backward {part}"), got, &value, &bound) {
                panic!("{e}");
            }
        }
    }
}

/// int8 weights, both ways in, every scheme and ISA, against the oracle.
fn int8(c: &Case) {
    let packed = PackedOutput::<i8>::pack(&c.cfg, &c.w, c.b.as_deref()).expect("pack accepts valid sizes");
    let q = rnn_reference::quant::quantize_matrix(&c.w, c.cfg.in_features);
    let from = PackedOutput::<i8>::from_quantized(&c.cfg, &c.codes.view(), c.b_codes.as_deref())
        .expect("from_quantized accepts valid weights");
    for (how, out, m, b) in [("pack", &packed, &q, c.b.as_deref()), ("from_quantized", &from, &c.codes, c.b_codes.as_deref())] {
        for scheme in ActivationQuant::ALL {
            let want = output_layer_quantized_as::<Bounded<Kernels>>(&c.cfg, &m.view(), b, c.rows, &c.x, scheme)
                .expect("valid weights");
            let (value, bound): (Vec<f64>, Vec<f64>) = want.iter().map(|v| (v.value(), v.bound())).unzip();
            // The oracle after the products in f32: where its class differs from the
            // f64 one (a sum that overflows f32 only), the class is not compared.
            let want32 = output_layer_quantized_as::<f32>(&c.cfg, &m.view(), b, c.rows, &c.x, scheme).expect("valid weights");
            for isa in Isa::available() {
                let out = out.clone().with_isa(Some(isa)).expect("available ISA").with_activation_quant(scheme);
                let mut y = vec![f32::NAN; c.rows * c.cfg.out_features];
                out.forward(&mut Workspace::new(), c.rows, &c.x, &mut y).expect("forward accepts valid sizes");
                let name = format!("int8 {how} {scheme:?} at {isa} {:?} rows {}", c.cfg, c.rows);
                if let Err(e) = compare(&name, &y, &value, &want32, &bound, Check::Values) {
                    panic!("{e}");
                }
            }
        }
    }
}
