//! The output layer with int8 weights: `y = g(W_o·x + b_o)` where `W_o·x` is an int8
//! product (the module's equation) on activations quantized at run time, as PyTorch's
//! `quantize_dynamic` runs an `nn.Linear` and ONNX Runtime its `DynamicQuantizeMatMul`.
//! Row `r`'s sums are `f32(s_a · s_w[n]) · f32(Σ_k (q[r,k] − zp_a)(w[n,k] − zp_w[n]))`
//! ([`product`](super::product)); the bias and `g` follow in a [`Real`], as in the
//! float layer ([`output_layer`](crate::output_layer)).
//!
//! The blocks of `x` ([`ActivationQuant`]): one range per row
//! ([`PerRow`](ActivationQuant::PerRow), [`PerRowReduced`](ActivationQuant::PerRowReduced)),
//! or one over all the call's rows ([`OnnxRuntime`](ActivationQuant::OnnxRuntime):
//! `DynamicQuantizeLinear` over the whole input, as `DynamicQuantizeMatMul` and
//! PyTorch's dynamic `Linear` quantize it; a NaN or an infinity anywhere then makes
//! every output NaN, where a per-row scheme confines it to its row).

use crate::error::{Error, Result};
use crate::output::{activate_row, OutputConfig};
use crate::spec::check_len;
use crate::Real;

use super::cell::{product, row_params};
use super::params::{ActivationQuant, MAX_K};
use super::weights::QuantizedMatrix;

/// Checks an int8 output layer's weights: `w` `[O, I]` codes with one scale (per
/// tensor) or `O` (per output unit) and as many zero points, if any; `I` at most
/// [`MAX_K`]; `b` `[O]` if given.
pub fn check_quantized_output(
    cfg: &OutputConfig,
    w: &QuantizedMatrix<'_>,
    b: Option<&[f32]>,
) -> Result<()> {
    cfg.check_weights(w.codes, None)?;
    let o = cfg.out_features;
    if let Some(b) = b {
        check_len("b", o, b.len())?;
    }
    if w.scales.len() != 1 && w.scales.len() != o {
        return Err(Error::invalid(
            "w.scales",
            format!("1 (per tensor) or {o} (per output unit) scales"),
            w.scales.len(),
        ));
    }
    if let Some(z) = w.zero_points {
        check_len("w.zero_points", w.scales.len(), z.len())?;
    }
    if cfg.in_features > MAX_K {
        return Err(Error::invalid(
            "in_features",
            format!("at most {MAX_K} for int8 weights (i32 sums)"),
            cfg.in_features,
        ));
    }
    Ok(())
}

/// The int8 output layer on `rows` rows of `x` (`[rows, I]`), quantized by `scheme`:
/// `[rows, O]`, computed in `f64` after the products (see the module docs).
///
/// ```
/// use rnn_reference::quant::{output_layer_quantized, ActivationQuant, QuantizedMatrix};
/// use rnn_reference::{OutputActivation, OutputConfig};
/// let cfg = OutputConfig::new(2, 1, OutputActivation::Identity);
/// // W_o = [[0.5, -0.25]]: codes [2, -1], scale 0.25.
/// let w = QuantizedMatrix { codes: &[2, -1], scales: &[0.25], zero_points: None };
/// // x = [1, -1]: range [-1, 1], s = 2/255, zp = 127; codes 0 and 254.
/// let y = output_layer_quantized(&cfg, &w, None, 1, &[-1.0, 1.0], ActivationQuant::PerRow);
/// // Σ (q − 127)(w) = (−127)(2) + (127)(−1) = −381; times f32(2/255 · 0.25).
/// assert_eq!(y.unwrap(), [f64::from((2.0f32 / 255.0 * 0.25) * -381.0)]);
/// ```
pub fn output_layer_quantized(
    cfg: &OutputConfig,
    w: &QuantizedMatrix<'_>,
    b: Option<&[f32]>,
    rows: usize,
    x: &[f32],
    scheme: ActivationQuant,
) -> Result<Vec<f64>> {
    output_layer_quantized_as(cfg, w, b, rows, x, scheme)
}

/// [`output_layer_quantized`] with everything after the products in `R` (the test
/// kit's error-tracking numbers carry the bound on an `f32` implementation's bias
/// addition and activation; the products themselves are exact inputs).
pub fn output_layer_quantized_as<R: Real>(
    cfg: &OutputConfig,
    w: &QuantizedMatrix<'_>,
    b: Option<&[f32]>,
    rows: usize,
    x: &[f32],
    scheme: ActivationQuant,
) -> Result<Vec<R>> {
    check_quantized_output(cfg, w, b)?;
    cfg.check_rows(rows, x)?;
    let (i, o) = (cfg.in_features, cfg.out_features);
    let params = row_params(x, i, scheme);
    let sums = product(w, o, i, x, &params, scheme.qmax());
    let mut y = Vec::with_capacity(rows * o);
    let mut z = Vec::with_capacity(o);
    for row in sums.chunks_exact(o) {
        z.clear();
        z.extend(row.iter().enumerate().map(|(n, &s)| {
            let s = R::from_f64(f64::from(s));
            match b {
                Some(b) => s + R::from_f64(f64::from(b[n])),
                None => s,
            }
        }));
        activate_row(cfg.activation, &z, &mut y);
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::OutputActivation;
    use crate::quant::{block_params, block_range, quantize, quantize_matrix};

    /// Two rows by hand, per row and over both rows, with a bias and a softmax.
    #[test]
    fn by_hand() {
        let cfg = OutputConfig::new(2, 2, OutputActivation::Identity);
        // W_o = [[1, 0], [0.5, -1]] per output unit: scales 1/127 and 1/127.
        let wq = quantize_matrix(&[1.0, 0.0, 0.5, -1.0], 2);
        assert_eq!(wq.codes, [127, 0, 64, -127]);
        let w = wq.view();
        let x = [2.0f32, 0.0, 1.0, -1.0];
        let b = [0.5f32, -0.5];
        let s = 1.0f32 / 127.0;
        // Per row: row 0 range [0, 2] (s = 2/255, zp 0), codes 255, 0; row 1 range
        // [-1, 1] (s = 2/255, zp = 127, see `params`): codes 254, 0.
        let y = output_layer_quantized(&cfg, &w, Some(&b), 2, &x, ActivationQuant::PerRow).unwrap();
        let sa = 2.0f32 / 255.0;
        let want = [
            f64::from((sa * s) * (255.0 * 127.0)) + 0.5,
            f64::from((sa * s) * (255.0 * 64.0)) - 0.5,
            f64::from((sa * s) * (127.0 * 127.0)) + 0.5,
            f64::from((sa * s) * (127.0 * 64.0 + 127.0 * 127.0)) - 0.5,
        ];
        assert_eq!(y, want);
        // One range over both rows: [-1, 2], s = 3/255, zp = round(85) = 85.
        let p = block_params(block_range(x), 255);
        assert_eq!(p.zero_point, 85);
        let q: Vec<i64> = x
            .iter()
            .map(|&v| i64::from(quantize(v, p, 255)) - 85)
            .collect();
        let y =
            output_layer_quantized(&cfg, &w, None, 2, &x, ActivationQuant::OnnxRuntime).unwrap();
        let dot = |r: usize, n: usize| -> f64 {
            let sum: i64 = (0..2)
                .map(|k| q[2 * r + k] * i64::from(w.codes[2 * n + k]))
                .sum();
            f64::from((p.scale * s) * sum as f32)
        };
        assert_eq!(y, [dot(0, 0), dot(0, 1), dot(1, 0), dot(1, 1)]);
        // Softmax of the per-row sums.
        let sm = OutputConfig::new(2, 2, OutputActivation::Softmax);
        let y = output_layer_quantized(&sm, &w, Some(&b), 2, &x, ActivationQuant::PerRow).unwrap();
        for r in 0..2 {
            let e: Vec<f64> = want[2 * r..2 * r + 2].iter().map(|v| v.exp()).collect();
            for n in 0..2 {
                assert!((y[2 * r + n] - e[n] / (e[0] + e[1])).abs() < 1e-15);
            }
        }
    }

    /// A NaN confines itself to its row under a per-row scheme and spreads to every
    /// row over one range.
    #[test]
    fn nan_blocks() {
        let cfg = OutputConfig::new(2, 1, OutputActivation::Identity);
        let wq = quantize_matrix(&[1.0, 1.0], 2);
        let x = [f32::NAN, 1.0, 1.0, 1.0];
        let per_row =
            output_layer_quantized(&cfg, &wq.view(), None, 2, &x, ActivationQuant::PerRow).unwrap();
        assert!(per_row[0].is_nan() && per_row[1].is_finite());
        let one =
            output_layer_quantized(&cfg, &wq.view(), None, 2, &x, ActivationQuant::OnnxRuntime)
                .unwrap();
        assert!(one.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn bad_weights_name_the_argument() {
        let cfg = OutputConfig::new(2, 2, OutputActivation::Identity);
        let codes = [0i8; 4];
        let arg = |w: QuantizedMatrix<'_>, b: Option<&[f32]>| {
            check_quantized_output(&cfg, &w, b)
                .unwrap_err()
                .arg()
                .to_string()
        };
        let m = |codes, scales, zero_points| QuantizedMatrix {
            codes,
            scales,
            zero_points,
        };
        assert_eq!(arg(m(&codes[..3], &[1.0], None), None), "w");
        assert_eq!(arg(m(&codes, &[1.0; 3], None), None), "w.scales");
        assert_eq!(arg(m(&codes, &[1.0; 2], Some(&[0])), None), "w.zero_points");
        assert_eq!(arg(m(&codes, &[1.0], None), Some(&[0.0])), "b");
        let wide = OutputConfig::new(MAX_K + 1, 1, OutputActivation::Identity);
        let codes = vec![0i8; MAX_K + 1];
        let w = m(&codes, &[1.0], None);
        assert_eq!(
            check_quantized_output(&wide, &w, None).unwrap_err().arg(),
            "in_features"
        );
    }
}
