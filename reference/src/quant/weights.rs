//! int8 weights as given: codes with scales and zero points (PyTorch layout), their
//! validation, the symmetric per-channel quantization of `f32` weights, and
//! dequantization.

use crate::error::{Error, Result};
use crate::spec::RnnConfig;
use crate::weights::{check_weights, LayerWeights, OwnedLayerWeights};

use super::params::MAX_K;

/// An int8 matrix `[rows, k]` (row-major): element `(r, j)` stands for
/// `(codes[r·k + j] − zp) · scale`, with one scale and zero point for the whole matrix
/// or one per row (per output unit, i.e. per channel).
#[derive(Clone, Copy, Debug)]
pub struct QuantizedMatrix<'a> {
    /// `[rows, k]` codes.
    pub codes: &'a [i8],
    /// One scale (per tensor) or `rows` (per channel).
    pub scales: &'a [f32],
    /// As many zero points as scales; `None` = all 0 (symmetric).
    pub zero_points: Option<&'a [i8]>,
}

impl QuantizedMatrix<'_> {
    /// Scale and zero point of row `r`.
    pub fn row_params(&self, r: usize) -> (f32, i8) {
        let i = if self.scales.len() == 1 { 0 } else { r };
        (self.scales[i], self.zero_points.map_or(0, |z| z[i]))
    }

    /// Element `(r, j)` dequantized: `(code − zp) · scale` in `f32`.
    pub fn value(&self, r: usize, k: usize, j: usize) -> f32 {
        let (s, z) = self.row_params(r);
        (i32::from(self.codes[r * k + j]) - i32::from(z)) as f32 * s
    }

    /// The owned copy.
    pub fn owned(&self) -> OwnedQuantizedMatrix {
        OwnedQuantizedMatrix {
            codes: self.codes.to_vec(),
            scales: self.scales.to_vec(),
            zero_points: self.zero_points.map(<[i8]>::to_vec),
        }
    }
}

/// An owned [`QuantizedMatrix`].
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedQuantizedMatrix {
    /// See [`QuantizedMatrix::codes`].
    pub codes: Vec<i8>,
    /// See [`QuantizedMatrix::scales`].
    pub scales: Vec<f32>,
    /// See [`QuantizedMatrix::zero_points`].
    pub zero_points: Option<Vec<i8>>,
}

impl OwnedQuantizedMatrix {
    /// Borrows as a [`QuantizedMatrix`].
    pub fn view(&self) -> QuantizedMatrix<'_> {
        QuantizedMatrix {
            codes: &self.codes,
            scales: &self.scales,
            zero_points: self.zero_points.as_deref(),
        }
    }
}

/// The weights of one layer and direction with int8 matrices: like
/// [`LayerWeights`] (PyTorch layout and gate order, one set per layer and direction,
/// index `layer * D + direction`), biases and per-unit vectors in `f32`.
#[derive(Clone, Copy, Debug)]
pub struct QuantizedLayerWeights<'a> {
    /// `[G*H, I_l]`.
    pub w_ih: QuantizedMatrix<'a>,
    /// `[G*H, H_out]`.
    pub w_hh: QuantizedMatrix<'a>,
    /// `[G*H]`, or `None`.
    pub b_ih: Option<&'a [f32]>,
    /// `[G*H]`, or `None`.
    pub b_hh: Option<&'a [f32]>,
    /// `[H_out, H]`: a projected LSTM's projection.
    pub w_hr: Option<QuantizedMatrix<'a>>,
    /// Peephole weights, as in [`LayerWeights::peephole`].
    pub peephole: Option<&'a [f32]>,
    /// Layer-norm scales, as in [`LayerWeights::layer_norm`].
    pub layer_norm: Option<&'a [f32]>,
}

impl QuantizedLayerWeights<'_> {
    /// The weights with every matrix dequantized (`(code − zp) · scale` in `f32`): what
    /// an `f32` implementation would compute with.
    pub fn dequantize(&self, cfg: &RnnConfig, layer: usize) -> OwnedLayerWeights<f32> {
        let (h, ho) = (cfg.hidden_size, cfg.output_size());
        let deq = |m: &QuantizedMatrix<'_>, k: usize| -> Vec<f32> {
            (0..m.codes.len())
                .map(|e| m.value(e / k, k, e % k))
                .collect()
        };
        OwnedLayerWeights {
            w_ih: deq(&self.w_ih, cfg.layer_input_size(layer)),
            w_hh: deq(&self.w_hh, ho),
            b_ih: self.b_ih.map(<[f32]>::to_vec),
            b_hh: self.b_hh.map(<[f32]>::to_vec),
            w_hr: self.w_hr.as_ref().map(|m| deq(m, h)),
            peephole: self.peephole.map(<[f32]>::to_vec),
            layer_norm: self.layer_norm.map(<[f32]>::to_vec),
        }
    }

    /// The owned copy.
    pub fn owned(&self) -> OwnedQuantizedLayerWeights {
        OwnedQuantizedLayerWeights {
            w_ih: self.w_ih.owned(),
            w_hh: self.w_hh.owned(),
            b_ih: self.b_ih.map(<[f32]>::to_vec),
            b_hh: self.b_hh.map(<[f32]>::to_vec),
            w_hr: self.w_hr.as_ref().map(QuantizedMatrix::owned),
            peephole: self.peephole.map(<[f32]>::to_vec),
            layer_norm: self.layer_norm.map(<[f32]>::to_vec),
        }
    }
}

/// Owned [`QuantizedLayerWeights`] (what the importers and [`quantize_weights`] return).
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedQuantizedLayerWeights {
    /// See [`QuantizedLayerWeights::w_ih`].
    pub w_ih: OwnedQuantizedMatrix,
    /// See [`QuantizedLayerWeights::w_hh`].
    pub w_hh: OwnedQuantizedMatrix,
    /// See [`QuantizedLayerWeights::b_ih`].
    pub b_ih: Option<Vec<f32>>,
    /// See [`QuantizedLayerWeights::b_hh`].
    pub b_hh: Option<Vec<f32>>,
    /// See [`QuantizedLayerWeights::w_hr`].
    pub w_hr: Option<OwnedQuantizedMatrix>,
    /// See [`QuantizedLayerWeights::peephole`].
    pub peephole: Option<Vec<f32>>,
    /// See [`QuantizedLayerWeights::layer_norm`].
    pub layer_norm: Option<Vec<f32>>,
}

impl OwnedQuantizedLayerWeights {
    /// Borrows as a [`QuantizedLayerWeights`].
    pub fn view(&self) -> QuantizedLayerWeights<'_> {
        QuantizedLayerWeights {
            w_ih: self.w_ih.view(),
            w_hh: self.w_hh.view(),
            b_ih: self.b_ih.as_deref(),
            b_hh: self.b_hh.as_deref(),
            w_hr: self.w_hr.as_ref().map(OwnedQuantizedMatrix::view),
            peephole: self.peephole.as_deref(),
            layer_norm: self.layer_norm.as_deref(),
        }
    }
}

/// Borrows every owned quantized set.
pub fn quantized_views(owned: &[OwnedQuantizedLayerWeights]) -> Vec<QuantizedLayerWeights<'_>> {
    owned.iter().map(OwnedQuantizedLayerWeights::view).collect()
}

/// Checks quantized sets as [`check_weights`] checks float ones (`L * D` sets, every
/// length, optional parts present exactly when the cell needs them), plus: every
/// matrix has one scale or one per row, as many zero points as scales, and `k <=`
/// [`MAX_K`].
pub fn check_quantized_weights(cfg: &RnnConfig, sets: &[QuantizedLayerWeights<'_>]) -> Result<()> {
    // The lengths, through the float check: zero-sized units cost no allocation.
    let units = |n: usize| vec![(); n];
    let owned: Vec<OwnedLayerWeights<()>> = sets
        .iter()
        .map(|w| OwnedLayerWeights {
            w_ih: units(w.w_ih.codes.len()),
            w_hh: units(w.w_hh.codes.len()),
            b_ih: w.b_ih.map(|b| units(b.len())),
            b_hh: w.b_hh.map(|b| units(b.len())),
            w_hr: w.w_hr.map(|m| units(m.codes.len())),
            peephole: w.peephole.map(|p| units(p.len())),
            layer_norm: w.layer_norm.map(|p| units(p.len())),
        })
        .collect();
    let views: Vec<LayerWeights<'_, ()>> = owned.iter().map(OwnedLayerWeights::view).collect();
    check_weights(cfg, &views)?;
    let (g, h, ho) = (cfg.gates(), cfg.hidden_size, cfg.output_size());
    for (n, w) in sets.iter().enumerate() {
        let k_in = cfg.layer_input_size(n / cfg.num_directions());
        let mut mats = vec![("w_ih", &w.w_ih, g * h, k_in), ("w_hh", &w.w_hh, g * h, ho)];
        if let Some(m) = w.w_hr.as_ref() {
            mats.push(("w_hr", m, ho, h));
        }
        for (part, m, rows, k) in mats {
            let arg = |what: &str| format!("weights[{n}].{part}.{what}");
            if m.scales.len() != 1 && m.scales.len() != rows {
                return Err(Error::invalid(
                    arg("scales"),
                    format!("1 (per tensor) or {rows} (per row) scales"),
                    m.scales.len(),
                ));
            }
            if let Some(z) = m.zero_points {
                if z.len() != m.scales.len() {
                    return Err(Error::length(arg("zero_points"), m.scales.len(), z.len()));
                }
            }
            if k > MAX_K {
                return Err(Error::invalid(
                    format!("weights[{n}].{part}"),
                    format!("at most {MAX_K} columns for int8 weights (i32 sums)"),
                    k,
                ));
            }
        }
    }
    Ok(())
}

/// Quantizes one `[rows, k]` matrix symmetrically per row (per output channel):
/// `scale = max_j |w[r, j]| / 127`, `code = round_half_even(w / scale)` (an `f32`
/// division; codes in `[−127, 127]`, zero points 0). A row of zeros gets scale 1; a row
/// holding a NaN or an infinity gets a NaN scale and codes 0 (its outputs are NaN).
pub fn quantize_matrix(w: &[f32], k: usize) -> OwnedQuantizedMatrix {
    let rows = w.len() / k.max(1);
    let mut codes = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(rows);
    for row in w.chunks(k.max(1)) {
        let (max, finite) = row.iter().fold((0.0f32, true), |(m, f), v| {
            (m.max(v.abs()), f && v.is_finite())
        });
        let s = if !finite {
            f32::NAN
        } else if max == 0.0 {
            1.0
        } else {
            max / 127.0
        };
        scales.push(s);
        codes.extend(row.iter().map(|&v| {
            let q = (v / s).round_ties_even().clamp(-127.0, 127.0);
            if q.is_nan() {
                0
            } else {
                q as i8
            }
        }));
    }
    OwnedQuantizedMatrix {
        codes,
        scales,
        zero_points: None,
    }
}

/// Quantizes `f32` weight sets with [`quantize_matrix`] (every matrix per output
/// channel, symmetric); biases and per-unit vectors are kept. Validates the sets first.
pub fn quantize_weights(
    cfg: &RnnConfig,
    sets: &[LayerWeights<'_, f32>],
) -> Result<Vec<OwnedQuantizedLayerWeights>> {
    check_weights(cfg, sets)?;
    let (h, ho) = (cfg.hidden_size, cfg.output_size());
    let out: Vec<OwnedQuantizedLayerWeights> = sets
        .iter()
        .enumerate()
        .map(|(n, w)| OwnedQuantizedLayerWeights {
            w_ih: quantize_matrix(w.w_ih, cfg.layer_input_size(n / cfg.num_directions())),
            w_hh: quantize_matrix(w.w_hh, ho),
            b_ih: w.b_ih.map(<[f32]>::to_vec),
            b_hh: w.b_hh.map(<[f32]>::to_vec),
            w_hr: w.w_hr.map(|m| quantize_matrix(m, h)),
            peephole: w.peephole.map(<[f32]>::to_vec),
            layer_norm: w.layer_norm.map(<[f32]>::to_vec),
        })
        .collect();
    check_quantized_weights(cfg, &quantized_views(&out))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CellKind;

    #[test]
    fn symmetric_per_row_codes() {
        let m = quantize_matrix(&[1.0, -0.5, 0.25, 0.0, 0.0, 0.0, 2.0, f32::NAN, 0.0], 3);
        assert_eq!(m.scales[0], 1.0 / 127.0);
        assert_eq!(&m.codes[..3], &[127, -64, 32]); // -63.5 -> -64, 31.75 -> 32
        assert_eq!(m.scales[1], 1.0);
        assert_eq!(&m.codes[3..6], &[0, 0, 0]);
        assert!(m.scales[2].is_nan());
        assert_eq!(&m.codes[6..], &[0, 0, 0]);
        let v = m.view();
        assert_eq!(v.value(0, 3, 1), -64.0 / 127.0);
    }

    #[test]
    fn checks_name_the_part() {
        let cfg = RnnConfig::new(CellKind::RNN_TANH, 2, 3);
        let w_ih = vec![1.0f32; 6];
        let w_hh = vec![1.0f32; 9];
        let mut q = quantize_weights(&cfg, &[LayerWeights::new(&w_ih, &w_hh)]).unwrap();
        q[0].w_hh.scales = vec![1.0; 2];
        let e = check_quantized_weights(&cfg, &quantized_views(&q)).unwrap_err();
        assert_eq!(e.arg(), "weights[0].w_hh.scales");
        q[0].w_hh.scales = vec![1.0; 3];
        q[0].w_hh.zero_points = Some(vec![0; 1]);
        let e = check_quantized_weights(&cfg, &quantized_views(&q)).unwrap_err();
        assert_eq!(e.arg(), "weights[0].w_hh.zero_points");
        q[0].w_hh.zero_points = None;
        q[0].w_hh.codes.pop();
        let e = check_quantized_weights(&cfg, &quantized_views(&q)).unwrap_err();
        assert_eq!(e.arg(), "weights[0].w_hh");
    }
}
