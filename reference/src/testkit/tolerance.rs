//! The derived tolerance every kernel path is held to, against the f64 reference.

use crate::{CellKind, RnnConfig};

/// The absolute and relative error allowed for every output of a problem (`cfg`,
/// `steps` steps, largest input `x_scale`), against the f64 reference run on the same
/// f32 values. One bound for every kernel path; valid for weights normalized as
/// [`problem`](super::problem::problem) normalizes them and `|h0|, |c0| <= 1`.
///
/// Derivation. Each gate pre-activation is a dot product of length
/// `n = I_l + H_out + 2` (input, recurrent, two biases) computed in f32; its error is at
/// most `gamma_n * S` with `gamma_n = n u / (1 - n u)`, `u = 2^-24` (Higham, Thm 3.1)
/// and `S` the sum of |term|, which the generator bounds: input rows have absolute sum
/// <= 2 (times the largest input `xs`), recurrent rows <= 0.9 (times the largest state
/// `hs`), the two biases <= 1. sigmoid and tanh are 1-Lipschitz and the vector
/// activations add at most a few `u` absolute (measured, see `simd::math`); the cell
/// update adds a few more roundings of O(1) values: `16 u` covers both. The recurrent
/// maps are contractions (row sums <= 0.9 after 1-Lipschitz activations), so an error
/// made at one step is not amplified later, but the errors of all `T` steps and `L`
/// layers can add up. An LSTM's `c' = f c + i g` adds `(|c| + 1) / 4 + 1` gate errors
/// per step (sigmoid' <= 1/4, tanh' <= 1) with `|c| <= |c0| + T`, and `h = o tanh(c)`
/// one more quarter: a factor `1.5 + cmax / 4`. Hence
///
/// `atol = L * T * F * (gamma_n * S + 16 u)`, `S = 2 xs + 0.9 hs + 1`, `F` = 1 or the
/// LSTM factor,
///
/// with `hs = 1` for bounded cells and `(2 xs + 1) / 0.1` for ReLU RNNs (whose state is
/// bounded only by the contraction), and `rtol = 8 u` for the final rounding of large
/// outputs.
pub fn tolerance(cfg: &RnnConfig, steps: usize, x_scale: f64) -> (f64, f64) {
    let u = f64::powi(2.0, -24);
    let n = (cfg.input_size.max(cfg.num_directions() * cfg.output_size()) + cfg.output_size() + 2)
        as f64;
    let gamma = n * u / (1.0 - n * u);
    let relu = cfg.cell == CellKind::RNN_RELU;
    let mut xs = x_scale.max(1.0);
    let mut hs = 1.0f64;
    if relu {
        for _ in 0..cfg.num_layers {
            hs = (2.0 * xs + 1.0) / 0.1 + 1.0;
            xs = xs.max(hs);
        }
    }
    let s = 2.0 * xs + 0.9 * hs + 1.0;
    let t = steps as f64;
    let f = if cfg.cell.has_cell_state() {
        1.5 + (1.0 + t) / 4.0
    } else {
        1.0
    };
    let atol = cfg.num_layers as f64 * t * f * (gamma * s + 16.0 * u);
    (atol, 8.0 * u)
}
