//! Deterministic benchmark problems, and their tensors in each element type.

use rnn_kernels::{Element, LayerWeights, RnnConfig, SequenceInput};
use rnn_reference::testkit::SplitMix64;

use crate::configs::{BenchConfig, Cell};

/// One benchmark problem: single-layer forward weights in PyTorch layout (with both
/// biases) and a time-major input `[T, B, I]`.
#[derive(Clone, Debug)]
pub struct Problem {
    /// The cell.
    pub cell: Cell,
    /// The shape.
    pub shape: BenchConfig,
    /// The kernels' / reference's configuration (one forward layer).
    pub cfg: RnnConfig,
    /// `[G*H, I]`.
    pub w_ih: Vec<f32>,
    /// `[G*H, H]`.
    pub w_hh: Vec<f32>,
    /// `[G*H]`.
    pub b_ih: Vec<f32>,
    /// `[G*H]`.
    pub b_hh: Vec<f32>,
    /// `[T, B, I]`, uniform in ±1.
    pub x: Vec<f32>,
    /// The AUGRU's attention `[T, B]`, uniform in [0, 1] (empty for other cells).
    pub att: Vec<f32>,
    /// The layer-norm LSTM's scales `[G*H]`, uniform in 1 ± 1/2 (empty for other cells).
    pub layer_norm: Vec<f32>,
}

impl Problem {
    /// Weights uniform in ±1/sqrt(H) (PyTorch's default init), inputs uniform in ±1,
    /// from a seed derived from the cell and the shape.
    pub fn new(cell: Cell, shape: BenchConfig) -> Self {
        let (g, h, i) = (cell.gates(), shape.hidden, shape.input);
        let seed = 0x5EED_0000_u64
            ^ ((g as u64) << 48)
            ^ ((h as u64) << 32)
            ^ ((i as u64) << 16)
            ^ shape.batch as u64;
        let mut rng = SplitMix64::new(seed);
        let k = 1.0 / (h as f32).sqrt();
        let w_ih = rng.vec(g * h * i, k);
        let w_hh = rng.vec(g * h * h, k);
        let b_ih = rng.vec(g * h, k);
        let b_hh = rng.vec(g * h, k);
        // x depends on the steps too, but its first `t` steps do not: prefixes are
        // the same problem with fewer steps (the report relies on it).
        let x = rng.vec(shape.steps * shape.batch * i, 1.0);
        // Drawn last, so the other tensors are the GRU problem's.
        let att = match cell {
            Cell::Augru => {
                let a = rng.vec(shape.steps * shape.batch, 1.0);
                a.into_iter().map(f32::abs).collect()
            }
            _ => Vec::new(),
        };
        let layer_norm = match cell {
            Cell::LstmLayerNorm => rng.vec(g * h, 0.5).into_iter().map(|v| 1.0 + v).collect(),
            _ => Vec::new(),
        };
        Problem {
            cell,
            shape,
            cfg: cell.rnn_config(&shape),
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            x,
            att,
            layer_norm,
        }
    }

    /// Borrowed weights for the kernels and the reference.
    pub fn weights(&self) -> LayerWeights<'_, f32> {
        let mut w = LayerWeights::new(&self.w_ih, &self.w_hh).with_bias(&self.b_ih, &self.b_hh);
        if !self.layer_norm.is_empty() {
            w.layer_norm = Some(&self.layer_norm);
        }
        w
    }

    /// The first `steps` steps of `x` (`[steps, B, I]`).
    pub fn x_prefix(&self, steps: usize) -> &[f32] {
        &self.x[..steps.min(self.shape.steps) * self.shape.batch * self.shape.input]
    }

    /// The sequence input of the first `steps` steps: `x`, and the attention for an
    /// AUGRU.
    pub fn input(&self, steps: usize) -> SequenceInput<'_, f32> {
        let rows = steps.min(self.shape.steps) * self.shape.batch;
        sequence_input(self.x_prefix(steps), &self.att, rows)
    }

    /// Length of `y` for `steps` steps: `steps * B * H`.
    pub fn y_len(&self, steps: usize) -> usize {
        steps * self.shape.batch * self.shape.hidden
    }
}

/// The sequence input `x`, with the first `rows` (`steps * B`) values of `att` as the
/// attention unless `att` is empty (every cell but the AUGRU).
pub fn sequence_input<'a, T>(x: &'a [T], att: &'a [T], rows: usize) -> SequenceInput<'a, T> {
    let input = SequenceInput::new(x);
    if att.is_empty() {
        input
    } else {
        input.with_attention(&att[..rows])
    }
}

/// Rounds every value to `T` (to nearest, ties to even; exact for `f32`).
pub fn to_elem<T: Element>(v: &[f32]) -> Vec<T> {
    let mut out = vec![T::default(); v.len()];
    T::slice_from_f32(v, &mut out);
    out
}

/// Widens every value to `f32` (exact).
pub fn to_f32<T: Element>(v: &[T]) -> Vec<f32> {
    let mut out = vec![0.0f32; v.len()];
    T::slice_to_f32(v, &mut out);
    out
}

/// Rounds every value to `T` and back: the `f32` values a `T` tensor holds.
pub fn round_through<T: Element>(v: &[f32]) -> Vec<f32> {
    to_f32(&to_elem::<T>(v))
}

impl Problem {
    /// The same problem with every weight, bias and input rounded to `T` (stored as
    /// `f32`, exactly): what the reference must see to check a run on `T` data.
    pub fn rounded<T: Element>(&self) -> Problem {
        Problem {
            w_ih: round_through::<T>(&self.w_ih),
            w_hh: round_through::<T>(&self.w_hh),
            b_ih: round_through::<T>(&self.b_ih),
            b_hh: round_through::<T>(&self.b_hh),
            x: round_through::<T>(&self.x),
            att: round_through::<T>(&self.att),
            ..self.clone()
        }
    }

    /// The problem's tensors converted to `T` (rounded to nearest, ties to even).
    pub fn typed<T: Element>(&self) -> TypedProblem<T> {
        TypedProblem {
            batch: self.shape.batch,
            input: self.shape.input,
            steps: self.shape.steps,
            w_ih: to_elem(&self.w_ih),
            w_hh: to_elem(&self.w_hh),
            b_ih: to_elem(&self.b_ih),
            b_hh: to_elem(&self.b_hh),
            x: to_elem(&self.x),
            att: to_elem(&self.att),
            layer_norm: to_elem(&self.layer_norm),
        }
    }
}

/// A [`Problem`]'s weights, biases and input held in element type `T` (`f32`,
/// `half::f16` or `half::bf16`), as a framework holding `T` tensors would pass them.
#[derive(Clone, Debug)]
pub struct TypedProblem<T> {
    batch: usize,
    input: usize,
    steps: usize,
    /// `[G*H, I]`.
    pub w_ih: Vec<T>,
    /// `[G*H, H]`.
    pub w_hh: Vec<T>,
    /// `[G*H]`.
    pub b_ih: Vec<T>,
    /// `[G*H]`.
    pub b_hh: Vec<T>,
    /// `[T, B, I]`.
    pub x: Vec<T>,
    /// `[T, B]` (AUGRU; empty otherwise).
    pub att: Vec<T>,
    /// `[G*H]` (layer-norm LSTM; empty otherwise).
    pub layer_norm: Vec<T>,
}

impl<T> TypedProblem<T> {
    /// Borrowed weights, for `PackedRnn::<W>::pack` / `PackedCell::<W>::pack`.
    pub fn weights(&self) -> LayerWeights<'_, T> {
        let mut w = LayerWeights::new(&self.w_ih, &self.w_hh).with_bias(&self.b_ih, &self.b_hh);
        if !self.layer_norm.is_empty() {
            w.layer_norm = Some(&self.layer_norm);
        }
        w
    }

    /// The first `steps` steps of `x` (`[steps, B, I]`).
    pub fn x_prefix(&self, steps: usize) -> &[T] {
        &self.x[..steps.min(self.steps) * self.batch * self.input]
    }
}

/// Largest `|a - b|` over two equally long slices (NaN counts as infinite).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "max_abs_diff: lengths differ");
    a.iter().zip(b).fold(0.0f32, |m, (&x, &y)| {
        let d = (x - y).abs();
        if d.is_nan() {
            f32::INFINITY
        } else {
            m.max(d)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_deterministic_and_prefix_stable() {
        let a = Problem::new(Cell::Gru, BenchConfig::new(2, 8, 4, 6));
        let b = Problem::new(Cell::Gru, BenchConfig::new(2, 8, 4, 6));
        assert_eq!(a.x, b.x);
        assert_eq!(a.w_hh, b.w_hh);
        let short = Problem::new(Cell::Gru, BenchConfig::new(2, 8, 4, 3));
        assert_eq!(short.x, a.x_prefix(3));
        assert_eq!(short.w_ih, a.w_ih);
        let bound = 1.0 / 8f32.sqrt();
        assert!(a.w_ih.iter().all(|v| v.abs() <= bound));
        assert!(a.x.iter().all(|v| v.abs() <= 1.0));
    }

    #[test]
    fn typed_problems_round_once() {
        use rnn_kernels::half::{bf16, f16};
        let p = Problem::new(Cell::Lstm, BenchConfig::new(2, 8, 4, 3));
        let r = p.rounded::<bf16>();
        let t = p.typed::<bf16>();
        assert_eq!(r.w_hh, to_f32(&t.w_hh));
        assert_eq!(r.x, to_f32(&t.x));
        assert_eq!(to_f32(t.x_prefix(2)), r.x_prefix(2));
        // Rounding is idempotent, and f32 is exact.
        assert_eq!(r.rounded::<bf16>().w_ih, r.w_ih);
        assert_eq!(p.rounded::<f32>().x, p.x);
        let h = p.rounded::<f16>();
        assert!(max_abs_diff(&h.w_ih, &p.w_ih) <= 1.0 / 2048.0);
        assert!(h.w_ih.iter().zip(&p.w_ih).any(|(a, b)| a != b));
    }
}
