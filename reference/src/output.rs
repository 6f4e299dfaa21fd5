//! The output layer over a whole sequence's output: per row (one `(t, b)` of `y`),
//!
//! ```text
//! z = W_o · h + b_o          (W_o: [O, I], PyTorch nn.Linear's layout; b_o: [O])
//! y = g(z),  g ∈ { identity, sigmoid (elementwise), softmax (over the O outputs) }
//! ```
//!
//! Softmax is evaluated the numerically stable way PyTorch evaluates it,
//! `exp(z_k − m) / Σ_j exp(z_j − m)` with `m = max_j z_j`: no overflow for any finite
//! row, and NaN or `+inf` anywhere in a row makes the whole row NaN, as in PyTorch.
//!
//! ```
//! use rnn_reference::{output_layer, OutputActivation, OutputConfig};
//! let cfg = OutputConfig::new(2, 2, OutputActivation::Softmax);
//! let w = [1.0f64, 0.0, 0.0, 1.0]; // identity
//! let y = output_layer(&cfg, &w, None, 1, &[0.0, 0.0]).unwrap();
//! assert_eq!(y, vec![0.5, 0.5]);
//! ```

use crate::error::{checked_product, Error, Result};
use crate::real::Real;
use crate::spec::check_len;

/// The function `g` of the output layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OutputActivation {
    /// `y = z` (logits; PyTorch `nn.Linear` alone).
    #[default]
    Identity,
    /// `y = σ(z)` elementwise (`torch.sigmoid`).
    Sigmoid,
    /// `y = softmax(z)` over the outputs of each row (`torch.softmax(z, dim=-1)`).
    Softmax,
}

/// The shape and function of an output layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OutputConfig {
    /// `I`: the width of each input row (an RNN's `D * H_out`).
    pub in_features: usize,
    /// `O`: the outputs per row.
    pub out_features: usize,
    /// `g`.
    pub activation: OutputActivation,
}

impl OutputConfig {
    /// An output layer from `in_features` to `out_features` through `activation`.
    pub fn new(in_features: usize, out_features: usize, activation: OutputActivation) -> Self {
        OutputConfig {
            in_features,
            out_features,
            activation,
        }
    }

    /// Checks the sizes: both nonzero, and `O * I` addressable (below `i32::MAX`
    /// elements, like the recurrent weights).
    pub fn validate(&self) -> Result<()> {
        if self.in_features == 0 {
            return Err(Error::invalid("in_features", "at least 1", 0));
        }
        if self.out_features == 0 {
            return Err(Error::invalid("out_features", "at least 1", 0));
        }
        let n = checked_product(
            "out_features",
            "out_features * in_features",
            &[self.out_features, self.in_features],
        )?;
        if n > i32::MAX as usize {
            return Err(Error::Overflow {
                arg: "out_features".into(),
                what: "out_features * in_features (above i32::MAX elements)".into(),
            });
        }
        Ok(())
    }

    /// Checks `w` (`[O, I]`) and `b` (`[O]`, if given) against the config.
    pub fn check_weights<T>(&self, w: &[T], b: Option<&[T]>) -> Result<()> {
        self.validate()?;
        check_len("w", self.out_features * self.in_features, w.len())?;
        if let Some(b) = b {
            check_len("b", self.out_features, b.len())?;
        }
        Ok(())
    }
}

/// Runs the output layer on `rows` rows of `x` (`[rows, I]`, any row order: an RNN's
/// `y` in either layout), returning `[rows, O]`. A missing bias counts as zero.
pub fn output_layer<T: Real>(
    cfg: &OutputConfig,
    w: &[T],
    b: Option<&[T]>,
    rows: usize,
    x: &[T],
) -> Result<Vec<T>> {
    cfg.check_weights(w, b)?;
    if rows == 0 {
        return Err(Error::invalid("rows", "at least 1", 0));
    }
    let (i, o) = (cfg.in_features, cfg.out_features);
    check_len(
        "x",
        checked_product("x", "rows * in_features", &[rows, i])?,
        x.len(),
    )?;
    checked_product("y", "rows * out_features", &[rows, o])?;
    let mut y = Vec::with_capacity(rows * o);
    let mut z = Vec::with_capacity(o);
    for xr in x.chunks_exact(i) {
        z.clear();
        for (k, wr) in w.chunks_exact(i).enumerate() {
            let mut s = T::ZERO;
            for (&a, &v) in wr.iter().zip(xr) {
                s += a * v;
            }
            z.push(match b {
                Some(b) => s + b[k],
                None => s,
            });
        }
        match cfg.activation {
            OutputActivation::Identity => y.extend_from_slice(&z),
            OutputActivation::Sigmoid => y.extend(z.iter().map(|v| v.sigmoid())),
            OutputActivation::Softmax => softmax_into(&z, &mut y),
        }
    }
    Ok(y)
}

/// Appends `softmax(z)` to `out`.
fn softmax_into<T: Real>(z: &[T], out: &mut Vec<T>) {
    // The largest value; NaN wins (the whole row becomes NaN).
    let mut m = z[0];
    for &v in &z[1..] {
        if v.is_nan() || (!m.is_nan() && v > m) {
            m = v;
        }
    }
    // The shift cancels exactly in the ratio: it only keeps `exp` in range. It enters
    // as an exact constant (an error-tracking `Real` carries no error for it), because
    // any shift gives the same quotient up to rounding.
    let m = T::from_f64(m.to_f64());
    let start = out.len();
    let mut sum = T::ZERO;
    for &v in z {
        let e = (v - m).exp();
        sum += e;
        out.push(e);
    }
    for e in &mut out[start..] {
        *e = *e / sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_hand() {
        // Two rows, I = 2, O = 3.
        let w = [1.0, 2.0, -1.0, 0.5, 0.0, 3.0];
        let b = [0.5, -0.5, 0.25];
        let x = [1.0, -1.0, 0.5, 2.0];
        let z: [f64; 6] = [
            1.0 - 2.0 + 0.5,
            -1.0 - 0.5 - 0.5,
            0.0 - 3.0 + 0.25,
            0.5 + 4.0 + 0.5,
            -0.5 + 1.0 - 0.5,
            0.0 + 6.0 + 0.25,
        ];
        let id = OutputConfig::new(2, 3, OutputActivation::Identity);
        assert_eq!(output_layer(&id, &w, Some(&b), 2, &x).unwrap(), z);
        let sig = OutputConfig::new(2, 3, OutputActivation::Sigmoid);
        let got = output_layer(&sig, &w, Some(&b), 2, &x).unwrap();
        for (g, v) in got.iter().zip(z) {
            assert!((g - 1.0 / (1.0 + (-v).exp())).abs() < 1e-15);
        }
        let sm = OutputConfig::new(2, 3, OutputActivation::Softmax);
        let got = output_layer(&sm, &w, Some(&b), 2, &x).unwrap();
        for r in 0..2 {
            let row = &z[3 * r..3 * r + 3];
            let s: f64 = row.iter().map(|v| v.exp()).sum();
            for k in 0..3 {
                assert!((got[3 * r + k] - row[k].exp() / s).abs() < 1e-15);
            }
        }
    }

    #[test]
    fn softmax_is_stable_and_propagates_nan_and_inf_like_pytorch() {
        let id2 = [1.0f64, 0.0, 0.0, 1.0];
        let sm = OutputConfig::new(2, 2, OutputActivation::Softmax);
        let y = output_layer(&sm, &id2, None, 1, &[1000.0, 999.0]).unwrap();
        let e = (-1.0f64).exp();
        assert!((y[0] - 1.0 / (1.0 + e)).abs() < 1e-15 && (y[1] - e / (1.0 + e)).abs() < 1e-15);
        for bad in [f64::NAN, f64::INFINITY] {
            let y = output_layer(&sm, &id2, None, 1, &[bad, 1.0]).unwrap();
            assert!(y.iter().all(|v| v.is_nan()), "{bad}: {y:?}");
        }
        // A -inf logit (here straight into the softmax: through W it meets 0 · inf) is
        // a zero probability.
        let mut y = Vec::new();
        softmax_into(&[f64::NEG_INFINITY, 1.0], &mut y);
        assert_eq!(y, vec![0.0, 1.0]);
    }

    #[test]
    fn bad_sizes_name_the_argument() {
        let cfg = OutputConfig::new(2, 3, OutputActivation::Identity);
        let w = [0.0f32; 6];
        let arg = |r: Result<Vec<f32>>| r.unwrap_err().arg().to_string();
        assert_eq!(arg(output_layer(&cfg, &w[..5], None, 1, &[0.0; 2])), "w");
        assert_eq!(
            arg(output_layer(&cfg, &w, Some(&[0.0; 2]), 1, &[0.0; 2])),
            "b"
        );
        assert_eq!(arg(output_layer(&cfg, &w, None, 2, &[0.0; 2])), "x");
        assert_eq!(arg(output_layer(&cfg, &w, None, 0, &[])), "rows");
        let zero = OutputConfig::new(0, 3, OutputActivation::Identity);
        assert_eq!(arg(output_layer(&zero, &[], None, 1, &[])), "in_features");
        let huge = OutputConfig::new(1 << 20, 1 << 20, OutputActivation::Identity);
        assert_eq!(huge.validate().unwrap_err().arg(), "out_features");
    }
}
