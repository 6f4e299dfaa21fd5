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

impl OutputActivation {
    /// Every function.
    pub const ALL: [OutputActivation; 3] = [
        OutputActivation::Identity,
        OutputActivation::Sigmoid,
        OutputActivation::Softmax,
    ];
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

    /// Checks the sizes: both nonzero, and `O * I` addressable (at most `i32::MAX`
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

    /// Checks a call on `rows` rows of `x`: `rows >= 1`, `x` holding `rows * I` values,
    /// and `rows * O` addressable. Returns `(rows * I, rows * O)`.
    pub fn check_rows<T>(&self, rows: usize, x: &[T]) -> Result<(usize, usize)> {
        if rows == 0 {
            return Err(Error::invalid("rows", "at least 1", 0));
        }
        let n_x = checked_product("x", "rows * in_features", &[rows, self.in_features])?;
        check_len("x", n_x, x.len())?;
        let n_y = checked_product("y", "rows * out_features", &[rows, self.out_features])?;
        Ok((n_x, n_y))
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
    cfg.check_rows(rows, x)?;
    let (i, o) = (cfg.in_features, cfg.out_features);
    let mut y = Vec::with_capacity(rows * o);
    let mut z = Vec::with_capacity(o);
    // The product's operand (unchanged for plain numbers; the test kit's int8 error
    // model widens each value's bound by its quantization error, per row or over all
    // rows as its scheme says).
    let x = T::product_operand(x, i);
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
        activate_row(cfg.activation, &z, &mut y);
    }
    Ok(y)
}

/// Appends `g(z)` of one row's sums `z` to `out`.
pub(crate) fn activate_row<T: Real>(g: OutputActivation, z: &[T], out: &mut Vec<T>) {
    match g {
        OutputActivation::Identity => out.extend_from_slice(z),
        OutputActivation::Sigmoid => out.extend(z.iter().map(|v| v.sigmoid())),
        OutputActivation::Softmax => softmax_into(z, out),
    }
}

/// The gradients of the output layer's loss through one call of [`output_layer`].
#[derive(Clone, Debug, PartialEq)]
pub struct OutputLayerGrads<T> {
    /// `∂L/∂x` `[rows, I]`.
    pub dx: Vec<T>,
    /// `∂L/∂W_o` `[O, I]`, summed over the rows.
    pub dw: Vec<T>,
    /// `∂L/∂b_o` `[O]`, summed over the rows (whether or not the layer has a bias).
    pub db: Vec<T>,
}

/// The backward pass of [`output_layer`]: given the input `x` `[rows, I]`, the
/// forward's output `y` `[rows, O]` and `dy = ∂L/∂y`, with `dz = ∂L/∂z` per row
///
/// ```text
/// identity: dz = dy      sigmoid: dz = dy ⊙ y ⊙ (1 − y)      softmax: dz = y ⊙ (dy − Σ_k dy_k y_k)
/// dx = dz · W_o          ∂W_o = Σ_rows dzᵀ x                  ∂b_o = Σ_rows dz
/// ```
pub fn output_layer_backward<T: Real>(
    cfg: &OutputConfig,
    w: &[T],
    rows: usize,
    x: &[T],
    y: &[T],
    dy: &[T],
) -> Result<OutputLayerGrads<T>> {
    cfg.check_weights(w, None)?;
    let (_, n) = cfg.check_rows(rows, x)?;
    let (i, o) = (cfg.in_features, cfg.out_features);
    check_len("y", n, y.len())?;
    check_len("dy", n, dy.len())?;
    let mut g = OutputLayerGrads {
        dx: vec![T::ZERO; rows * i],
        dw: vec![T::ZERO; o * i],
        db: vec![T::ZERO; o],
    };
    let mut dz = Vec::with_capacity(o);
    for r in 0..rows {
        let (yr, dyr) = (&y[r * o..(r + 1) * o], &dy[r * o..(r + 1) * o]);
        let xr = &x[r * i..(r + 1) * i];
        dz.clear();
        match cfg.activation {
            OutputActivation::Identity => dz.extend_from_slice(dyr),
            OutputActivation::Sigmoid => {
                dz.extend(yr.iter().zip(dyr).map(|(&y, &d)| d * (y * (T::ONE - y))))
            }
            OutputActivation::Softmax => {
                let mut s = T::ZERO;
                for (&y, &d) in yr.iter().zip(dyr) {
                    s += d * y;
                }
                dz.extend(yr.iter().zip(dyr).map(|(&y, &d)| y * (d - s)));
            }
        }
        for (k, &d) in dz.iter().enumerate() {
            g.db[k] += d;
            let wr = &w[k * i..(k + 1) * i];
            for c in 0..i {
                g.dw[k * i + c] += d * xr[c];
                g.dx[r * i + c] += d * wr[c];
            }
        }
    }
    Ok(g)
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
        // The shift is the row's largest logit wherever it stands (by another logit,
        // exp(1000) would overflow to inf and the row to NaN).
        for (z, want) in [([1000.0, 0.0], [1.0, 0.0]), ([0.0, 1000.0], [0.0, 1.0])] {
            assert_eq!(output_layer(&sm, &id2, None, 1, &z).unwrap(), want);
        }
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

    /// The backward against central differences of the forward, every activation:
    /// `L = Σ dy ⊙ y` for a fixed random `dy`.
    #[test]
    fn backward_matches_finite_differences() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        for activation in OutputActivation::ALL {
            let (i, o, rows) = (3, 4, 2);
            let cfg = OutputConfig::new(i, o, activation);
            let w: Vec<f64> = (0..o * i).map(|_| next()).collect();
            let b: Vec<f64> = (0..o).map(|_| next()).collect();
            let x: Vec<f64> = (0..rows * i).map(|_| next()).collect();
            let dy: Vec<f64> = (0..rows * o).map(|_| next()).collect();
            let loss = |w: &[f64], b: &[f64], x: &[f64]| -> f64 {
                let y = output_layer(&cfg, w, Some(b), rows, x).unwrap();
                y.iter().zip(&dy).map(|(y, d)| y * d).sum()
            };
            let y = output_layer(&cfg, &w, Some(&b), rows, &x).unwrap();
            let g = output_layer_backward(&cfg, &w, rows, &x, &y, &dy).unwrap();
            let h = 1e-6;
            let fd = |f: &dyn Fn(f64) -> f64| (f(h) - f(-h)) / (2.0 * h);
            let close = |a: f64, e: f64, what: &str| {
                assert!(
                    (a - e).abs() <= 1e-8 * (1.0 + e.abs()),
                    "{activation:?} {what}: {a} vs {e}"
                );
            };
            for k in 0..w.len() {
                let e = fd(&|d| {
                    let mut w = w.clone();
                    w[k] += d;
                    loss(&w, &b, &x)
                });
                close(g.dw[k], e, &format!("dw[{k}]"));
            }
            for k in 0..o {
                let e = fd(&|d| {
                    let mut b = b.clone();
                    b[k] += d;
                    loss(&w, &b, &x)
                });
                close(g.db[k], e, &format!("db[{k}]"));
            }
            for k in 0..x.len() {
                let e = fd(&|d| {
                    let mut x = x.clone();
                    x[k] += d;
                    loss(&w, &b, &x)
                });
                close(g.dx[k], e, &format!("dx[{k}]"));
            }
        }
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
        // The limit is inclusive: i32::MAX elements (a prime, so only 1 x i32::MAX).
        let max = i32::MAX as usize;
        assert!(OutputConfig::new(max, 1, OutputActivation::Identity)
            .validate()
            .is_ok());
        let over = OutputConfig::new(max + 1, 1, OutputActivation::Identity);
        assert_eq!(over.validate().unwrap_err().arg(), "out_features");
    }
}
