//! What the `int8_vs_reference` target needs: a one-layer problem, int8 weights as
//! imported ones (codes at both ends of the int8 range, per-tensor or per-channel
//! scales, zero points anywhere in the range, as uint8 weights shifted to int8 have),
//! and the naive int8 oracle's values, classes and bounds on the kernels' own `y`.
//!
//! # What is compared
//!
//! The oracle (`rnn_reference::quant::forward_quantized*`) runs each step on the
//! kernels' `y` as its recurrent input (`forced_y`, one layer only), so both sides
//! quantize the same `h` to the same codes and form the same exact integer sums and
//! the same two `f32` roundings per product; what differs is the `f32` cell after them.
//!
//! - **Values**, when every input, weight and scale is finite and no finite `f32`
//!   value can overflow ([`crate::overflow_free`] on the dequantized weights, each
//!   finite where its scale is: `dequantizes_finitely`; the quantized operands are
//!   within half a code step of the values, far below its 300× margin to `f32::MAX`):
//!   within the bound the oracle computes on `Bounded` numbers
//!   (`forward_quantized_as::<Bounded<Kernels>>`) plus its `slack` (a step's second
//!   operand rounding to another code), exactly as `kernels/tests/int8_props.rs` does.
//! - **Classes** otherwise (when overflow-free), as `step_vs_reference` compares them:
//!   NaN / ±inf / finite must agree with the oracle in f64 wherever the oracle in f64
//!   and in f32 agree (elsewhere f32 underflow decides the class).
//! - Always: no panic, and `Ok` from `pack`, `from_quantized` and `forward` on every
//!   well-formed input (any values, including NaN / inf scales).

use arbitrary::{Result, Unstructured};
use rnn_reference::quant::{
    forward_quantized_as, quantized_views, ActivationQuant, OwnedQuantizedLayerWeights,
    OwnedQuantizedMatrix, QuantSequenceOutput,
};
use rnn_reference::testkit::bound::Bounded;
use rnn_reference::{Real, RnnConfig};

use crate::{overflow_free, Check, Kernels, Problem, SplitMix64, PALETTE};

/// Keeps only layer 0 of `p` (its weight sets and its rows of `h0` / `c0`): the
/// oracle follows the kernels' `y` only through one layer, and only when `y` holds each
/// direction's output, so summed directions become concatenated ones (the sum itself
/// is the f32 fuzz targets' and the property tests' to check).
pub fn one_layer(p: &mut Problem) {
    let d = p.cfg.num_directions();
    let (b, ho, h) = (p.shape.batch, p.cfg.output_size(), p.cfg.hidden_size);
    p.cfg.num_layers = 1;
    if p.cfg.direction == rnn_reference::Direction::BidirectionalSum {
        p.cfg.direction = rnn_reference::Direction::Bidirectional;
    }
    p.weights.truncate(d);
    if let Some(h0) = p.h0.as_mut() {
        h0.truncate(d * b * ho);
    }
    if let Some(c0) = p.c0.as_mut() {
        c0.truncate(d * b * h);
    }
}

/// int8 weights for `p`'s config as an importer gives them: codes drawn with the ends
/// −128 and 127 frequent, one scale per tensor or per row (about `1 / (64 k)`, so rows
/// sum to at most 4 in absolute value), zero points absent or anywhere in `[−128,
/// 127]`; with a fuzzer-chosen flag one scale is a palette value (NaN, inf, 0, ...).
/// Biases and peepholes are `p`'s.
pub fn imported_weights(
    u: &mut Unstructured<'_>,
    p: &Problem,
) -> Result<Vec<OwnedQuantizedLayerWeights>> {
    let per_tensor: bool = u.arbitrary()?;
    let zp_mode = u.int_in_range(0..=3u8)?;
    let seed: u64 = u.arbitrary()?;
    let odd_scale = u
        .arbitrary::<bool>()?
        .then(|| PALETTE[(seed % PALETTE.len() as u64) as usize]);
    let mut rng = SplitMix64::new(seed);
    let (g, h, ho) = (p.cfg.gates(), p.cfg.hidden_size, p.cfg.output_size());
    let mut matrix = |rows: usize, k: usize| {
        let code = |rng: &mut SplitMix64| match rng.below(8) {
            0 => -128,
            1 => 127,
            _ => (rng.below(256) as i32 - 128) as i8,
        };
        let codes = (0..rows * k).map(|_| code(&mut rng)).collect();
        let n = if per_tensor { 1 } else { rows };
        let base = 1.0 / (64.0 * k as f32);
        let scales = (0..n)
            .map(|_| base * (0.25 + rng.below(4) as f32 * 0.25))
            .collect();
        let zero_points = match zp_mode {
            0 => None,
            1 => Some(vec![0; n]),
            // uint8 codes around 128 shifted to int8: zero points near 0 or at the ends.
            _ => Some((0..n).map(|_| code(&mut rng)).collect()),
        };
        OwnedQuantizedMatrix {
            codes,
            scales,
            zero_points,
        }
    };
    let mut sets: Vec<OwnedQuantizedLayerWeights> = p
        .weights
        .iter()
        .map(|w| OwnedQuantizedLayerWeights {
            w_ih: matrix(g * h, p.cfg.input_size),
            w_hh: matrix(g * h, ho),
            b_ih: w.b_ih.clone(),
            b_hh: w.b_hh.clone(),
            w_hr: w.w_hr.as_ref().map(|_| matrix(ho, h)),
            peephole: w.peephole.clone(),
            layer_norm: w.layer_norm.clone(),
        })
        .collect();
    if let (Some(v), Some(set)) = (odd_scale, sets.first_mut()) {
        set.w_hh.scales[0] = v;
    }
    Ok(sets)
}

/// How the kernels' outputs of `p` with weights `q` are checked (see the module docs).
pub fn int8_check(p: &Problem, q: &[OwnedQuantizedLayerWeights]) -> Check {
    let deq: Vec<_> = q.iter().map(|w| w.view().dequantize(&p.cfg, 0)).collect();
    let bounded = q.iter().all(|w| {
        [(&w.w_ih, p.cfg.input_size), (&w.w_hh, p.cfg.output_size())]
            .into_iter()
            .chain(w.w_hr.as_ref().map(|m| (m, p.cfg.hidden_size)))
            .all(|(m, k)| dequantizes_finitely(m, k))
    }) && overflow_free(
        &p.cfg,
        &deq,
        p.shape.steps,
        &p.x,
        p.h0.as_deref(),
        p.c0.as_deref(),
    );
    let scales_finite = q.iter().all(|w| {
        [Some(&w.w_ih), Some(&w.w_hh), w.w_hr.as_ref()]
            .into_iter()
            .flatten()
            .all(|m| m.scales.iter().all(|s| s.is_finite()))
    });
    match (bounded, p.finite_mode && scales_finite) {
        (true, true) => Check::Values,
        (true, false) => Check::Classes,
        (false, _) => Check::None,
    }
}

/// Whether every code of a row with a finite scale dequantizes to a finite `f32`.
///
/// [`overflow_free`] bounds the network from the dequantized weights and takes an
/// infinite one for an infinity that propagates. But a finite scale can dequantize past
/// `f32::MAX` (a weight at `f32::MAX` quantizes to code 127 with scale `MAX / 127`, and
/// `127 · scale` rounds up to inf) while the kernels and the oracle never form that
/// product: they scale each row's integer sum, so the output holds huge finite values,
/// and the next step's sums may overflow in `f32` where the `f64` oracle does not
/// (found by the fuzzer: a projection row holding `f32::MAX`). Such a problem is not
/// overflow-free.
fn dequantizes_finitely(m: &OwnedQuantizedMatrix, k: usize) -> bool {
    let m = m.view();
    (0..m.codes.len()).all(|e| {
        let r = e / k.max(1);
        !m.row_params(r).0.is_finite() || m.value(r, k, e % k).is_finite()
    })
}

/// The oracle on the kernels' `y` with cell arithmetic `R`.
pub fn oracle<R: Real>(
    cfg: &RnnConfig,
    p: &Problem,
    q: &[OwnedQuantizedLayerWeights],
    scheme: ActivationQuant,
    y: &[f32],
) -> QuantSequenceOutput<R> {
    forward_quantized_as::<R>(cfg, &quantized_views(q), scheme, p.shape, p.input(), Some(y))
        .expect("the oracle accepts a well-formed one-layer problem")
}

/// One output array's expected values and per-element bounds (tracked bound plus
/// slack) from the `Bounded` oracle.
pub fn values_and_bounds(v: &[Bounded<Kernels>], slack: Option<&[f64]>) -> (Vec<f64>, Vec<f64>) {
    let want = v.iter().map(|b| b.to_f64()).collect();
    let bound = v
        .iter()
        .enumerate()
        .map(|(k, b)| b.bound() + slack.map_or(0.0, |s| s[k]))
        .collect();
    (want, bound)
}
