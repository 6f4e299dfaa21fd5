//! int8 weights through the kernels (`PackedRnn::<i8>::pack` of random `f32` weights)
//! against the `f32` reference on the dequantized weights, within the derived bound
//! (`rnn_reference::quant::error`, `testkit::bound::forward_dequantized`): every ISA,
//! this crate's schemes (`PerRow`, `PerRowReduced`) on every problem, ONNX Runtime's
//! where the reference's steps see its blocks whole (batch 1, or one length without a
//! second product); every variant, 1 to 4 layers, every direction, sequence lengths,
//! contracting and ill-conditioned problems.
//!
//! The bound is the kernels' `f32` bound with every operand of every product widened
//! by its quantization error `B s` (`B = ½ + 4u·qmax`, `s` the operand block's scale,
//! bounded from above) and `5u` of its magnitude: rigorous, so any excess is a bug.
//! It must also bite: the test prints, per scheme, how much of it the kernels' errors
//! use (median and largest over the problems of `max |int8 − reference| / bound`) and
//! how large it is against the outputs, and asserts that the errors use a visible
//! fraction of it ([`MEDIAN_USAGE`]) and that it stays below the outputs on
//! well-conditioned problems ([`VACUOUS_INT8`], [`MEDIAN_RELATIVE`]).
//!
//! `cargo test --release -p rnn-kernels --test int8_vs_f32 -- --nocapture` prints the
//! figures; `PROPTEST_CASES` sets the number of problems.

mod common;

use common::run_packed;
use rnn_kernels::{ActivationQuant, Isa, PackedRnn};
use rnn_reference::quant::{quantize_weights, quantized_views};
use rnn_reference::testkit::bound::forward_dequantized;
use rnn_reference::testkit::compare::{compare_within, max_excess, VACUOUS_FLOOR};
use rnn_reference::testkit::{problem, proptest_cases, variants, Expected, Problem, SplitMix64};
use rnn_reference::views;

/// An array's bound is vacuous at its largest |value| or more (it would pass zeros).
/// Where the `f32` paths draw that line at 1% ([`rnn_reference::testkit::compare::VACUOUS`]),
/// the rigorous int8 bound is the worst case of quantization errors of half a step of
/// `1/255` (`1/127` for 7-bit codes) of each operand's range, at every product of
/// every step, all of one sign: a few % of the outputs on a well-conditioned problem
/// (median), more where outputs are small against the inputs. Arrays above the line
/// are still compared, and counted: at most 1 in 20 of the well-conditioned ones.
const VACUOUS_INT8: f64 = 1.0;

/// The largest median, over a scheme's well-conditioned arrays, of
/// `largest bound / largest |value|` (measured: 0.05 for 8-bit codes, 0.11 for 7-bit).
const MEDIAN_RELATIVE: f64 = 0.25;

/// The smallest median, over a scheme's problems, of the fraction of the bound the
/// kernels' largest error uses (measured: about 0.2): the bound is not far above the
/// errors it bounds.
const MEDIAN_USAGE: f64 = 0.05;

/// What one scheme's problems used: per problem the largest `|got − want| / bound`,
/// and the number of output arrays whose bound was vacuous / compared.
#[derive(Default)]
struct Tally {
    usage: Vec<f64>,
    /// `largest bound / largest |value|` of each output array: [other, well-conditioned].
    relative: [Vec<f64>; 2],
    /// How many of those are [`VACUOUS_INT8`] or more.
    vacuous: [usize; 2],
}

/// A problem whose int8 error stays small against its outputs: a contracting
/// recurrence, at most two layers, inputs of moderate size.
fn well_conditioned(p: &Problem) -> bool {
    p.gain < 1.0 && p.cfg.num_layers <= 2 && p.x_scale <= 8.0
}

/// Checks `p` at every ISA under `scheme` (skipped where the reference refuses ONNX
/// Runtime's blocks), adding to `t`.
fn check(p: &Problem, scheme: ActivationQuant, t: &mut Tally) -> Result<(), String> {
    let q = quantize_weights(&p.cfg, &views(&p.weights)).map_err(|e| e.to_string())?;
    let e = match forward_dequantized(&p.cfg, &quantized_views(&q), scheme, p.shape, p.input()) {
        Ok(e) => e,
        Err(_) if scheme == ActivationQuant::OnnxRuntime => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    let Expected { want, bound } = &e;
    let arrays = [
        ("y", &want.y, &bound.y),
        ("h_n", &want.h_n, &bound.h_n),
        ("c_n", &want.c_n, &bound.c_n),
    ];
    let max_abs = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let well = well_conditioned(p);
    for (_, w, b) in arrays {
        if !w.is_empty() {
            // An array of zeros (a ReLU network that is off) has a zero or floor bound.
            let (mb, mw) = (max_abs(b), max_abs(w));
            let rel = if mb <= VACUOUS_FLOOR { 0.0 } else { mb / mw };
            t.relative[usize::from(well)].push(rel);
            t.vacuous[usize::from(well)] += usize::from(rel >= VACUOUS_INT8);
        }
    }
    let mut usage = 0.0f64;
    let inputs = p.inputs_as(|v| v);
    for isa in Isa::available() {
        let rnn = PackedRnn::<i8>::pack(&p.cfg, &views(&p.weights))
            .and_then(|r| r.with_isa(Some(isa)))
            .map_err(|e| e.to_string())?
            .with_activation_quant(scheme);
        let (y, h_n, c_n) = run_packed(&rnn, p, &inputs).map_err(|e| e.to_string())?;
        let ctx = format!("{isa} {scheme:?} {:?} {:?} gain {}", p.cfg, p.shape, p.gain);
        for ((name, w, b), got) in arrays.into_iter().zip([&y, &h_n, &c_n]) {
            compare_within(name, got, w, b).map_err(|e| format!("{ctx}: {e}"))?;
            usage = usage.max(max_excess(got, w, b));
        }
    }
    t.usage.push(usage);
    Ok(())
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len().max(1) - 1) as f64 * q).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

#[test]
fn int8_is_within_the_derived_bound_of_the_dequantized_f32_reference() {
    let cases = proptest_cases(200);
    let mut rng = SplitMix64::new(0x1_8b0_u64);
    let mut tallies: Vec<(ActivationQuant, Tally)> = ActivationQuant::ALL
        .into_iter()
        .map(|s| (s, Tally::default()))
        .collect();
    for _ in 0..cases {
        let seed = rng.next_u64();
        let dims = (
            1 + rng.below(40),
            1 + rng.below(40),
            1 + rng.below(5),
            1 + rng.below(6),
        );
        let p = problem(seed, dims, 1 + rng.below(4), None);
        if !variants::int8_capable(p.cfg.cell) {
            continue; // a variant without an int8 path (none drawn here today)
        }
        for (scheme, t) in &mut tallies {
            check(&p, *scheme, t).unwrap_or_else(|e| panic!("seed {seed} {dims:?}: {e}"));
        }
    }
    for (scheme, t) in &mut tallies {
        let n = t.usage.len();
        let (med, max) = (quantile(&mut t.usage, 0.5), quantile(&mut t.usage, 1.0));
        eprintln!(
            "{}: {n} problems; error / bound median {med:.2e} max {max:.2e}",
            scheme.name()
        );
        for (class, k) in [("well-conditioned", 1), ("other", 0)] {
            let v = &mut t.relative[k];
            let (rmed, rmax) = (quantile(v, 0.5), quantile(v, 1.0));
            eprintln!(
                "  {class}: bound / max|value| median {rmed:.2e} max {rmax:.2e}; {} of {} \
                 arrays at {VACUOUS_INT8} or more",
                t.vacuous[k],
                v.len()
            );
        }
        let well = &mut t.relative[1];
        assert!(
            t.vacuous[1] * 20 <= well.len(),
            "{scheme:?}: {} of {} well-conditioned arrays with a vacuous bound",
            t.vacuous[1],
            well.len()
        );
        assert!(
            quantile(well, 0.5) <= MEDIAN_RELATIVE,
            "{scheme:?}: bounds too wide"
        );
        assert!(
            med >= MEDIAN_USAGE,
            "{scheme:?}: bounds far above the errors"
        );
    }
}
