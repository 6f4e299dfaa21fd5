//! The error bound every comparison with the reference uses: per output element,
//! computed alongside the f64 reference by running **the reference's own code** on
//! [`Bounded`] numbers.
//!
//! # Design
//!
//! [`Bounded<M>`] is a [`Real`](crate::Real): a value (computed in `f64` by exactly
//! the f64 reference's operations, so bit for bit its value) and a bound on how far an
//! implementation's value of the same expression may be, under an [`ErrorModel`] `M`
//! (the unit roundoff of its arithmetic, the accuracy of its activations). Each
//! operation of the reference carries the bound forward by a rigorous rule:
//!
//! - **sums** (the dot products, biases, peephole terms) stay pending until used: a sum
//!   of `n` leaves computed in any order, grouping, with or without FMA, errs by at most
//!   `γ_k Σ|leaf|`, `k = n − 1` (+1 with rounded products), `γ_k = k u / (1 − k u)`,
//!   where `Σ|leaf|` is the sum of the *actual* magnitudes of the terms (plus their own
//!   errors), and the leaves' own errors add. Sums whose terms all lie on a common
//!   grid `2^g` with `Σ|leaf| < 2^(g+24)` are exact in any order and err by nothing;
//! - **products**: `|a| e_b + |b| e_a + e_a e_b`, then one rounding (and the whole
//!   product where a subnormal operand may be read as zero);
//! - **activations** (monotone): the input's error times the largest slope over
//!   `[x − e, x + e]` (so a saturated gate passes almost no error on), plus the
//!   activation's own documented accuracy at the result ([`ActErr`]);
//! - `relu`, `clip`: exact, 1-Lipschitz, and flat (no error passes) where the whole
//!   interval `[x − e, x + e]` lies on a flat part;
//! - every rounding also adds `2^-53` relative (the f64 reference's own rounding) and
//!   `2^-126` absolute (underflow, flush-to-zero).
//!
//! The bound is order-independent (any ISA, any thread split), valid for any finite
//! problem (no assumption on weight norms; a recurrence that amplifies errors gets a
//! bound that grows accordingly, output by output), and tight up to the worst-case
//! factors above: on random problems the kernels' observed error uses ~1/100..1/3 of
//! it (`kernels/tests/bound_quality.rs` asserts this and that no bound exceeds 1% of
//! the largest output).
//!
//! # Extending
//!
//! A new cell variant written in the reference with [`Real`](crate::Real) operations
//! gets its bound for free. A new operation of [`Real`](crate::Real) (e.g. `sqrt` for
//! a layer norm) needs its rule in `bounded.rs` (with a default that composes existing
//! operations, it is bounded through them already). A new kind of implementation (other
//! activations) is a new [`ErrorModel`].

mod bounded;
mod int8;
pub mod model;

pub use bounded::Bounded;
pub use int8::forward_dequantized;
pub use model::{
    ulp, ActErr, ErrorModel, Int8OnnxRuntime, Int8PerRow, Int8PerRowReduced, Kernels, StdF32,
    BF16_ROUNDING, F16_ROUNDING,
};

use super::oracle::{backward_as, forward_as, kink_clearance_as, step_as, StepArgs};
use crate::{
    Gradients, LayerWeights, OutputGrads, Result, RnnConfig, SeqShape, SequenceInput,
    SequenceOutput,
};

/// The f64 reference's outputs and, element by element, the bound on an
/// implementation's error.
#[derive(Clone, Debug)]
pub struct Expected {
    /// The f64 reference (bit for bit [`forward`](crate::forward) in `f64` on the same values).
    pub want: SequenceOutput<f64>,
    /// The bound on `|implementation − want|` of each element of `want`.
    pub bound: SequenceOutput<f64>,
}

impl Expected {
    /// The bound after the implementation rounds each output once more to a type with
    /// unit roundoff `unit` whose subnormals are spaced `2 floor` apart (half
    /// precision outputs: [`model::F16_ROUNDING`], [`model::BF16_ROUNDING`]).
    pub fn rounded_outputs(mut self, (unit, floor): (f64, f64)) -> Self {
        for (w, b) in [
            (&self.want.y, &mut self.bound.y),
            (&self.want.h_n, &mut self.bound.h_n),
            (&self.want.c_n, &mut self.bound.c_n),
        ] {
            for (w, b) in w.iter().zip(b.iter_mut()) {
                *b += unit * (w.abs() + *b) + floor;
            }
        }
        self
    }
}

fn split<M: ErrorModel>(v: &[Bounded<M>]) -> (Vec<f64>, Vec<f64>) {
    v.iter().map(|b| (b.value(), b.bound())).unzip()
}

/// An input of the implementation, exact.
fn exact<M: ErrorModel>(x: f32) -> Bounded<M> {
    Bounded::exact(f64::from(x))
}

/// [`forward`](crate::forward) on [`Bounded`] copies of `f32` weights and inputs: the
/// f64 reference and the bound for an implementation following `M`.
pub fn forward_bounded<M: ErrorModel>(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, f32>],
    shape: SeqShape,
    input: SequenceInput<'_, f32>,
) -> Result<Expected> {
    let out = forward_as(cfg, weights, shape, input, exact::<M>)?;
    let ((y, by), (h_n, bh), (c_n, bc)) = (split(&out.y), split(&out.h_n), split(&out.c_n));
    Ok(Expected {
        want: SequenceOutput { y, h_n, c_n },
        bound: SequenceOutput {
            y: by,
            h_n: bh,
            c_n: bc,
        },
    })
}

/// [`step_with_attention`](crate::step_with_attention) on [`Bounded`] copies of `(x,
/// h, c, attention)`: `(h, c)` of the f64 reference and their bounds, as an
/// [`Expected`] whose `y` is empty.
pub fn step_bounded<M: ErrorModel>(
    cfg: &RnnConfig,
    weights: &LayerWeights<'_, f32>,
    batch: usize,
    args: StepArgs<'_>,
) -> Result<Expected> {
    let out = step_as(cfg, weights, batch, args, exact::<M>)?;
    let ((h, bh), (c, bc)) = (split(&out.h), split(&out.c));
    Ok(Expected {
        want: SequenceOutput {
            y: Vec::new(),
            h_n: h,
            c_n: c,
        },
        bound: SequenceOutput {
            y: Vec::new(),
            h_n: bh,
            c_n: bc,
        },
    })
}

/// The f64 reference backward's gradients and, element by element, the bound on an
/// implementation's error (see [`backward_bounded`]).
#[derive(Clone, Debug)]
pub struct ExpectedGrads {
    /// The f64 reference (bit for bit [`backward`](crate::backward) in `f64`).
    pub want: Gradients<f64>,
    /// The bound on `|implementation − want|` of each element of `want`.
    pub bound: Gradients<f64>,
}

/// [`backward`](crate::backward) on [`Bounded`] copies of `f32` weights, inputs and
/// upstream gradients: the f64 reference backward and the bound for an implementation
/// following `M` that evaluates the reference's expressions (in any summation order:
/// the weight gradients as sums over all `T·B` rows, the transposed products as dot
/// products; the forward it reads, kept or recomputed, bounded as [`forward_bounded`]).
/// A `relu` or `clip` mask is taken from the reference's value: where an argument lies
/// within its error of the kink the implementation may take the other side, so callers
/// skip problems whose [`kink_clearance`] is small.
pub fn backward_bounded<M: ErrorModel>(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, f32>],
    shape: SeqShape,
    input: SequenceInput<'_, f32>,
    grads: OutputGrads<'_, f32>,
) -> Result<ExpectedGrads> {
    let g = backward_as(cfg, weights, shape, input, grads, exact::<M>)?;
    let part = |v: &[Bounded<M>], f: fn(&Bounded<M>) -> f64| v.iter().map(f).collect();
    let half = |f: fn(&Bounded<M>) -> f64| Gradients {
        dx: part(&g.dx, f),
        dh0: part(&g.dh0, f),
        dc0: part(&g.dc0, f),
        weights: g.weights.iter().map(|w| w.map(|v| part(v, f))).collect(),
        dattention: part(&g.dattention, f),
    };
    Ok(ExpectedGrads {
        want: half(|b| b.value()),
        bound: half(|b| b.bound()),
    })
}

/// How far the forward of these `f32` values keeps every gate argument from its kink,
/// in units of the argument's error bound under `M`: the smallest ratio of an
/// argument's distance to its kink (`±clip`, an activation's, an LSTM's output
/// function's at `c'`; the layer-norm LSTM's normalised and scaled `u`) over its
/// bound. Above 1, an implementation following `M` takes the reference's side of every
/// kink, so the masks [`backward_bounded`] takes from the reference hold; callers skip
/// problems below a safety factor of it (2 in the kernels' tests).
pub fn kink_clearance<M: ErrorModel>(
    cfg: &RnnConfig,
    weights: &[LayerWeights<'_, f32>],
    shape: SeqShape,
    input: SequenceInput<'_, f32>,
) -> f64 {
    kink_clearance_as(cfg, weights, shape, input, exact::<M>)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{problem, variants};

    /// The values are the f64 reference's, bit for bit, for every variant and depth.
    #[test]
    fn values_are_the_f64_reference() {
        for (k, cell) in variants::all(3).into_iter().enumerate() {
            for layers in 1..=3 {
                let p = problem(
                    k as u64 * 7 + layers as u64,
                    (5, 6, 3, 4),
                    layers,
                    Some(cell),
                );
                let e = forward_bounded::<Kernels>(
                    &p.cfg,
                    &crate::views(&p.weights),
                    p.shape,
                    p.input(),
                )
                .unwrap();
                let r = p.reference();
                assert_eq!(e.want, r, "{cell:?}");
                let all = e.bound.y.iter().chain(&e.bound.h_n).chain(&e.bound.c_n);
                assert!(all.clone().all(|b| b.is_finite() && *b >= 0.0), "{cell:?}");
                assert!(all.clone().any(|b| *b > 0.0), "{cell:?}");
            }
        }
    }
}
