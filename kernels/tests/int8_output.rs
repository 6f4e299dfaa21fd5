//! The output layer with int8 weights (`PackedOutput::<i8>`) at every ISA and activation
//! scheme:
//! - against the int8 oracle (`rnn_reference::quant::output_layer_quantized_as`): both
//!   quantize the same `x` to the same codes and take exact integer sums scaled with
//!   the same two `f32` roundings, so the sums agree bit for bit; the oracle runs the
//!   bias and the activation on the test kit's `Bounded` numbers, whose bound is then
//!   that of the `f32` arithmetic after the product (tight: a planted 2% error fails);
//! - against the `f32` reference on the dequantized weights, within the derived
//!   int8 bound (`testkit::bound`'s int8 error models: every input value widened by
//!   its code's error `B s`, `B = ½ + 4u·qmax`, and `5u` of its magnitude), which must
//!   bite (a measured fraction of it is used).
//!
//! `cargo test --release -p rnn-kernels --test int8_output -- --nocapture` prints the
//! figures; `PROPTEST_CASES` sets the number of problems.

use rnn_kernels::{
    ActivationQuant, Element, Isa, OutputActivation, OutputConfig, PackedOutput, QuantizedMatrix,
    Workspace,
};
use rnn_reference::output_layer;
use rnn_reference::quant::{
    check_quantized_output, output_layer_quantized_as, quantize_matrix, OwnedQuantizedMatrix,
};
use rnn_reference::testkit::bound::{Bounded, Int8OnnxRuntime, Int8PerRow, Int8PerRowReduced};
use rnn_reference::testkit::bound::{ErrorModel, Kernels};
use rnn_reference::testkit::compare::{compare_within, max_excess, VACUOUS_FLOOR};
use rnn_reference::testkit::rng::SplitMix64;
use rnn_reference::testkit::{compare, planted, proptest_cases};

const ACTIVATIONS: [OutputActivation; 3] = OutputActivation::ALL;

/// A random int8 output layer and input: widths 1..=300 in (crossing the 4-code
/// groups and the row chunks), 1..=140 out (tile and panel edges; one in four 64 or
/// 128, computed in `y` in place), 1..=40 rows (every
/// row block of the integer tile), inputs mostly O(1), sometimes large or all of one
/// sign. Weights: `f32` quantized per unit (`quantize_matrix`, codes ±127), or
/// imported codes: ±64 (whose `vpmaddubsw` pairs fit `i16` even with 8-bit
/// activation codes) or the full `i8` range with zero points, per tensor or per unit.
struct Case {
    cfg: OutputConfig,
    rows: usize,
    w: OwnedQuantizedMatrix,
    /// The `f32` weights `w` came from, if any (`PackedOutput::<i8>::pack`'s input).
    w_f32: Option<Vec<f32>>,
    b: Option<Vec<f32>>,
    x: Vec<f32>,
}

fn case(seed: u64) -> Case {
    let mut rng = SplitMix64::new(seed);
    let i = if rng.coin() {
        1 + rng.below(40)
    } else {
        1 + rng.below(300)
    };
    // One in four: whole panels (64 or 128), where the product writes `y` in place.
    let o = if rng.below(4) == 0 {
        64 * (1 + rng.below(2))
    } else {
        1 + rng.below(140)
    };
    let rows = 1 + rng.below(40);
    let activation = ACTIVATIONS[rng.below(3)];
    let (w, w_f32) = match rng.below(3) {
        0 => {
            let w = rng.vec(o * i, 1.0 / (i as f32).sqrt());
            (quantize_matrix(&w, i), Some(w))
        }
        kind => {
            let (lo, span) = if kind == 1 { (-64, 129) } else { (-128, 256) };
            let codes = (0..o * i)
                .map(|_| (lo + rng.below(span) as i32) as i8)
                .collect();
            let n = if rng.coin() { 1 } else { o };
            let scales = (0..n)
                .map(|_| (0.5 + rng.below(1000) as f32 / 1000.0) / (127.0 * (i as f32).sqrt()))
                .collect();
            let zero_points = (kind == 2 && rng.coin())
                .then(|| (0..n).map(|_| rng.below(21) as i8 - 10).collect());
            (
                OwnedQuantizedMatrix {
                    codes,
                    scales,
                    zero_points,
                },
                None,
            )
        }
    };
    let b = rng.coin().then(|| rng.vec(o, 0.5));
    let x_scale = [1.0f32, 1.0, 8.0, 50.0][rng.below(4)];
    let mut x = rng.vec(rows * i, x_scale);
    if rng.below(4) == 0 {
        // All of one sign: a zero point at the end of the code range.
        x.iter_mut().for_each(|v| *v = v.abs());
    }
    Case {
        cfg: OutputConfig::new(i, o, activation),
        rows,
        w,
        w_f32,
        b,
        x,
    }
}

/// The layer packed as the case gives its weights (`f32` through `pack`, else the
/// codes through `from_quantized`).
fn packed(c: &Case, isa: Isa, scheme: ActivationQuant) -> PackedOutput<i8> {
    let out = match &c.w_f32 {
        Some(w) => PackedOutput::<i8>::pack(&c.cfg, w, c.b.as_deref()),
        None => PackedOutput::<i8>::from_quantized(&c.cfg, &c.w.view(), c.b.as_deref()),
    };
    out.unwrap()
        .with_isa(Some(isa))
        .unwrap()
        .with_activation_quant(scheme)
}

fn run(out: &PackedOutput<i8>, c: &Case) -> Vec<f32> {
    let mut y = vec![f32::NAN; c.rows * c.cfg.out_features];
    out.forward(&mut Workspace::new(), c.rows, &c.x, &mut y)
        .unwrap();
    y
}

/// The oracle's values and bounds (the `f32` arithmetic after the exact products).
fn oracle(c: &Case, scheme: ActivationQuant) -> (Vec<f64>, Vec<f64>) {
    let y = output_layer_quantized_as::<Bounded<Kernels>>(
        &c.cfg,
        &c.w.view(),
        c.b.as_deref(),
        c.rows,
        &c.x,
        scheme,
    )
    .unwrap();
    (
        y.iter().map(|v| v.value()).collect(),
        y.iter().map(|v| v.bound()).collect(),
    )
}

#[test]
fn matches_the_oracle_every_isa_scheme_and_activation() {
    let n = proptest_cases(256) as u64;
    let mut seen = [false; 3];
    for seed in 0..n {
        let c = case(seed);
        seen[c.cfg.activation as usize] = true;
        for scheme in ActivationQuant::ALL {
            let (want, bound) = oracle(&c, scheme);
            for isa in Isa::available() {
                let got = run(&packed(&c, isa, scheme), &c);
                let name = format!("seed {seed} {:?} rows {} {isa:?} {scheme:?}", c.cfg, c.rows);
                compare(&name, &got, &want, &bound).unwrap();
                let bad = planted(&got, &want, seed as usize % want.len());
                assert!(
                    compare(&name, &bad, &want, &bound).is_err(),
                    "{name}: planted"
                );
            }
        }
    }
    assert!(seen.iter().all(|&s| s), "{seen:?}");
}

/// `pack` of `f32` weights is `from_quantized` of `quantize_matrix`'s codes, bit for bit.
#[test]
fn pack_is_the_reference_quantization() {
    for seed in 0..64 {
        let c = case(seed);
        let Some(w) = &c.w_f32 else { continue };
        let from = PackedOutput::<i8>::from_quantized(&c.cfg, &c.w.view(), c.b.as_deref()).unwrap();
        let packed = PackedOutput::<i8>::pack(&c.cfg, w, c.b.as_deref()).unwrap();
        assert_eq!(
            run(&from, &c)
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>(),
            run(&packed, &c)
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>(),
            "seed {seed}"
        );
    }
}

/// The `f32` reference on the dequantized weights under the int8 error model `M`.
fn dequantized<M: ErrorModel>(c: &Case) -> (Vec<f64>, Vec<f64>) {
    let (i, o) = (c.cfg.in_features, c.cfg.out_features);
    let m = c.w.view();
    let w: Vec<Bounded<M>> = (0..o * i)
        .map(|e| Bounded::exact(f64::from(m.value(e / i, i, e % i))))
        .collect();
    let b: Option<Vec<Bounded<M>>> =
        c.b.as_ref()
            .map(|b| b.iter().map(|&v| Bounded::exact(f64::from(v))).collect());
    let x: Vec<Bounded<M>> = c.x.iter().map(|&v| Bounded::exact(f64::from(v))).collect();
    let y = output_layer(&c.cfg, &w, b.as_deref(), c.rows, &x).unwrap();
    (
        y.iter().map(|v| v.value()).collect(),
        y.iter().map(|v| v.bound()).collect(),
    )
}

/// Against the `f32` reference on the dequantized weights: every output within the
/// derived int8 bound, at every ISA and scheme, and the bound not far above the errors
/// (the median over problems of the largest share of it an output uses).
#[test]
fn within_the_derived_bound_of_the_f32_layer() {
    let n = (proptest_cases(256) as u64 / 2).max(64);
    for scheme in ActivationQuant::ALL {
        let (mut usage, mut relative) = (Vec::new(), Vec::new());
        for seed in 0..n {
            let c = case(seed);
            let (want, bound) = match scheme {
                ActivationQuant::PerRow => dequantized::<Int8PerRow>(&c),
                ActivationQuant::PerRowReduced => dequantized::<Int8PerRowReduced>(&c),
                _ => dequantized::<Int8OnnxRuntime>(&c),
            };
            let mut worst = 0.0f64;
            for isa in Isa::available() {
                let got = run(&packed(&c, isa, scheme), &c);
                let name = format!("seed {seed} {:?} rows {} {isa:?} {scheme:?}", c.cfg, c.rows);
                compare_within(&name, &got, &want, &bound).unwrap();
                worst = worst.max(max_excess(&got, &want, &bound));
            }
            // Problems whose outputs are all within the rounding floor say nothing.
            if bound.iter().any(|&b| b > VACUOUS_FLOOR) {
                usage.push(worst);
                let top = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
                relative.push(top(&bound) / top(&want));
            }
        }
        usage.sort_by(f64::total_cmp);
        relative.sort_by(f64::total_cmp);
        let median = usage[usage.len() / 2];
        let rel = relative[relative.len() / 2];
        eprintln!(
            "{scheme:?}: largest error / bound over {} problems: median {median:.3e}, max {:.3e}; \
             largest bound / largest |y|: median {rel:.3e}",
            usage.len(),
            usage[usage.len() - 1]
        );
        // Measured: usage medians 0.24-0.27, bound / |y| medians 0.015-0.030 (Xeon
        // model 167, every ISA).
        assert!(median > 0.05, "{scheme:?}: median usage {median:e}");
        assert!(rel < 0.25, "{scheme:?}: median bound / |y| {rel:e}");
    }
}

/// A NaN or an infinity in `x` makes its row NaN under a per-row scheme, every row
/// NaN over one range (as the oracle says); no panic.
#[test]
fn nan_and_inf_propagate_like_the_oracle() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        for activation in ACTIVATIONS {
            let cfg = OutputConfig::new(5, 20, activation);
            let w = SplitMix64::new(3).vec(100, 0.4);
            let mut x = SplitMix64::new(4).vec(15, 1.0);
            x[6] = bad;
            let q = quantize_matrix(&w, 5);
            for scheme in ActivationQuant::ALL {
                let want =
                    output_layer_quantized_as::<f64>(&cfg, &q.view(), None, 3, &x, scheme).unwrap();
                for isa in Isa::available() {
                    let out = PackedOutput::<i8>::pack(&cfg, &w, None)
                        .unwrap()
                        .with_isa(Some(isa))
                        .unwrap()
                        .with_activation_quant(scheme);
                    let mut y = vec![0.0f32; 60];
                    out.forward(&mut Workspace::new(), 3, &x, &mut y).unwrap();
                    for (k, (&g, &v)) in y.iter().zip(&want).enumerate() {
                        assert_eq!(
                            g.is_nan(),
                            v.is_nan(),
                            "{bad} {activation:?} {scheme:?} {isa:?} y[{k}]: {g} vs {v}"
                        );
                    }
                    let row1_nan = y[20..40].iter().all(|v| v.is_nan());
                    assert!(row1_nan, "{bad} {scheme:?} {isa:?}: row 1 not NaN");
                    let others_nan = y[..20].iter().chain(&y[40..]).all(|v| v.is_nan());
                    assert_eq!(others_nan, !scheme.per_row(), "{bad} {scheme:?} {isa:?}");
                }
            }
        }
    }
}

/// Results do not depend on the thread count, in every scheme (per-row codes are split
/// by rows among the threads; one range is taken by one thread).
#[test]
fn bit_identical_across_thread_counts() {
    let cfg = OutputConfig::new(256, 600, OutputActivation::Softmax);
    let mut rng = SplitMix64::new(4);
    let w = rng.vec(256 * 600, 0.06);
    let x = rng.vec(64 * 256, 1.0);
    for scheme in ActivationQuant::ALL {
        let out = PackedOutput::<i8>::pack(&cfg, &w, None)
            .unwrap()
            .with_activation_quant(scheme);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut y = vec![0.0f32; 64 * 600];
            pool.install(|| out.forward(&mut Workspace::new(), 64, &x, &mut y))
                .unwrap();
            y
        };
        let one = run(1);
        assert_eq!(one, run(2), "{scheme:?}");
        assert_eq!(one, run(3), "{scheme:?}");
    }
}

/// Bad weights and inputs are errors naming the argument (the same checks as the
/// reference's, `check_quantized_output`).
#[test]
fn bad_input_is_an_error_naming_it() {
    let cfg = OutputConfig::new(4, 3, OutputActivation::Identity);
    let codes = [1i8; 12];
    let arg = |m: QuantizedMatrix<'_>, b: Option<&[f32]>| {
        let e = PackedOutput::<i8>::from_quantized(&cfg, &m, b)
            .err()
            .unwrap();
        assert_eq!(
            e.arg(),
            check_quantized_output(&cfg, &m, b).unwrap_err().arg()
        );
        e.arg().to_string()
    };
    let m = |codes, scales, zero_points| QuantizedMatrix {
        codes,
        scales,
        zero_points,
    };
    assert_eq!(arg(m(&codes[..11], &[1.0], None), None), "w");
    assert_eq!(arg(m(&codes, &[1.0; 2], None), None), "w.scales");
    assert_eq!(
        arg(m(&codes, &[1.0; 3], Some(&[0; 1])), None),
        "w.zero_points"
    );
    assert_eq!(arg(m(&codes, &[1.0], None), Some(&[0.0; 4])), "b");
    let out = PackedOutput::<i8>::from_quantized(&cfg, &m(&codes, &[1.0], None), None).unwrap();
    let mut y = [0.0f32; 6];
    let mut ws = Workspace::new();
    assert_eq!(
        out.forward(&mut ws, 2, &[0.0f32; 7], &mut y)
            .unwrap_err()
            .arg(),
        "x"
    );
    assert_eq!(
        out.forward(&mut ws, 2, &[0.0f32; 8], &mut y[..5])
            .unwrap_err()
            .arg(),
        "y"
    );
    assert_eq!(
        out.forward::<f32>(&mut ws, 0, &[], &mut [])
            .unwrap_err()
            .arg(),
        "rows"
    );
}

/// Half-precision inputs and outputs: the `f32` run on the widened inputs, its outputs
/// rounded once, bit for bit, at every ISA and scheme (whole panels or not).
#[test]
fn half_inputs_and_outputs_round_once() {
    use rnn_kernels::half::{bf16, f16};
    for seed in 0..24 {
        let c = case(seed);
        for scheme in ActivationQuant::ALL {
            for isa in Isa::available() {
                let out = packed(&c, isa, scheme);
                let mut ws = Workspace::new();
                let name = format!("seed {seed} {isa:?} {scheme:?} {:?}", c.cfg);
                rounds_once::<f16>(&out, &mut ws, &c, &name);
                rounds_once::<bf16>(&out, &mut ws, &c, &name);
            }
        }
    }
}

/// `out` on `c.x` rounded to `T` equals the `f32` run on those inputs widened, with its
/// outputs rounded once (compared by bits).
fn rounds_once<T: Element>(out: &PackedOutput<i8>, ws: &mut Workspace, c: &Case, name: &str) {
    let n = c.rows * c.cfg.out_features;
    let xh: Vec<T> = c.x.iter().map(|&v| T::from_f32(v)).collect();
    let x32: Vec<f32> = xh.iter().map(|v| v.to_f32()).collect();
    let (mut y32, mut yh) = (vec![0.0f32; n], vec![T::from_f32(0.0); n]);
    out.forward(ws, c.rows, &x32, &mut y32).unwrap();
    out.forward(ws, c.rows, &xh, &mut yh).unwrap();
    for (a, b) in y32.iter().zip(&yh) {
        let want = T::from_f32(*a).to_f32().to_bits();
        assert_eq!(want, b.to_f32().to_bits(), "{name} {}", T::NAME);
    }
}
