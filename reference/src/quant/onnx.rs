//! ONNX Runtime's `com.microsoft.DynamicQuantizeLSTM` weights into PyTorch-layout
//! quantized sets (one per direction).
//!
//! The operator's contract (`docs/ContribOperators.md`; checks in
//! `onnxruntime/contrib_ops/cpu/quantization/dynamic_quantize_lstm.cc`): `W`
//! `[D, I, 4H]` and `R` `[D, H, 4H]` hold int8 or uint8 codes, **transposed** relative to
//! the `LSTM` operator's `W`/`R`, gates along the last axis in ONNX order (i, o, f, c);
//! `W_scale`/`R_scale` are `[D]` (per tensor) or `[D, 4H]` (per output column), the zero
//! points shaped like them and typed like the codes; `B` `[D, 8H]` and `P` `[D, 3H]` are
//! `f32` as for `LSTM`. Per-column zero points must all be 0 (int8) or all equal
//! (uint8; ONNX Runtime reads only the first), which is checked here too.

use crate::error::{Error, Result};
use crate::spec::RnnConfig;
use crate::weights::{import_onnx, OnnxWeights};

use super::weights::{
    check_quantized_weights, quantized_views, OwnedQuantizedLayerWeights, OwnedQuantizedMatrix,
};

/// 8-bit codes as an ONNX tensor holds them.
#[derive(Clone, Copy, Debug)]
pub enum Codes<'a> {
    /// `int8` codes.
    I8(&'a [i8]),
    /// `uint8` codes.
    U8(&'a [u8]),
}

impl Codes<'_> {
    /// Number of codes.
    pub fn len(&self) -> usize {
        match self {
            Codes::I8(c) => c.len(),
            Codes::U8(c) => c.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `"int8"` or `"uint8"`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Codes::I8(_) => "int8",
            Codes::U8(_) => "uint8",
        }
    }

    /// Code `i` as an int8 code of the same value relative to its zero point: uint8
    /// codes are shifted by −128 (their zero points too), so `code − zp` is unchanged.
    fn signed(&self, i: usize) -> i8 {
        match self {
            Codes::I8(c) => c[i],
            Codes::U8(c) => (c[i] ^ 0x80) as i8,
        }
    }
}

/// The inputs of one `DynamicQuantizeLSTM` node that carry weights (shapes above).
#[derive(Clone, Copy, Debug)]
pub struct DynamicQuantizeLstmWeights<'a> {
    /// `W` `[D, I, 4H]`.
    pub w: Codes<'a>,
    /// `W_scale` `[D]` or `[D, 4H]`.
    pub w_scale: &'a [f32],
    /// `W_zero_point`, shaped like `W_scale`, typed like `W`.
    pub w_zero_point: Codes<'a>,
    /// `R` `[D, H, 4H]`.
    pub r: Codes<'a>,
    /// `R_scale` `[D]` or `[D, 4H]`.
    pub r_scale: &'a [f32],
    /// `R_zero_point`, shaped like `R_scale`, typed like `R`.
    pub r_zero_point: Codes<'a>,
    /// `B` `[D, 8H]`, optional.
    pub b: Option<&'a [f32]>,
    /// `P` `[D, 3H]`, for a peephole LSTM.
    pub p: Option<&'a [f32]>,
}

/// ONNX LSTM gate order (i, o, f, c) to PyTorch's (i, f, g, o): PyTorch block `g` is
/// ONNX block `SOURCE[g]`.
const SOURCE: [usize; 4] = [0, 2, 3, 1];

/// Converts `DynamicQuantizeLSTM` weights to one PyTorch-layout quantized set per
/// direction: codes transposed to `[4H, k]` and gate blocks permuted (per-column scales
/// and zero points with them); uint8 codes and zero points shifted to int8 (−128 both,
/// which keeps every `code − zp`). `cfg` must be a one-layer LSTM without projection,
/// with peepholes exactly when `p` is given.
///
/// ```
/// use rnn_reference::quant::{import_dynamic_quantize_lstm, Codes, DynamicQuantizeLstmWeights};
/// use rnn_reference::{CellKind, RnnConfig};
/// let cfg = RnnConfig::new(CellKind::LSTM, 1, 1);
/// // W [1, 1, 4]: ONNX gates i, o, f, c; uint8 codes with zero point 128.
/// let w = [130u8, 131, 132, 133];
/// let r = [128u8; 4];
/// let sets = import_dynamic_quantize_lstm(&cfg, DynamicQuantizeLstmWeights {
///     w: Codes::U8(&w), w_scale: &[0.5], w_zero_point: Codes::U8(&[128]),
///     r: Codes::U8(&r), r_scale: &[1.0], r_zero_point: Codes::U8(&[128]),
///     b: None, p: None,
/// })?;
/// // PyTorch order i, f, g, o: codes shifted by -128, zero point 0.
/// assert_eq!(sets[0].w_ih.codes, vec![2, 4, 5, 3]);
/// assert_eq!(sets[0].w_ih.zero_points, Some(vec![0]));
/// # Ok::<(), rnn_reference::Error>(())
/// ```
pub fn import_dynamic_quantize_lstm(
    cfg: &RnnConfig,
    w: DynamicQuantizeLstmWeights<'_>,
) -> Result<Vec<OwnedQuantizedLayerWeights>> {
    cfg.validate()?;
    if cfg.cell.lstm().is_none() {
        return Err(Error::invalid(
            "cell",
            "an LSTM (DynamicQuantizeLSTM is an LSTM)",
            format!("{:?}", cfg.cell),
        ));
    }
    let d = cfg.num_directions();
    let (h, i) = (cfg.hidden_size, cfg.input_size);
    // Biases and peepholes: the `LSTM` operator's layout and checks (configuration,
    // `B`, `P`), with placeholder matrices of the right lengths.
    let float_sets = import_onnx(
        cfg,
        OnnxWeights {
            w: &vec![0.0f32; d * 4 * h * i],
            r: &vec![0.0f32; d * 4 * h * h],
            b: w.b,
            p: w.p,
        },
    )?;
    let matrix = |name: &str, codes: Codes<'_>, scale: &[f32], zp: Codes<'_>, k: usize| {
        quantized_matrices(name, codes, scale, zp, d, k, h)
    };
    let w_ih = matrix("W", w.w, w.w_scale, w.w_zero_point, i)?;
    let w_hh = matrix("R", w.r, w.r_scale, w.r_zero_point, h)?;
    let sets: Vec<OwnedQuantizedLayerWeights> = float_sets
        .into_iter()
        .zip(w_ih.into_iter().zip(w_hh))
        .map(|(f, (w_ih, w_hh))| OwnedQuantizedLayerWeights {
            w_ih,
            w_hh,
            b_ih: f.b_ih,
            b_hh: f.b_hh,
            w_hr: None,
            peephole: f.peephole,
            layer_norm: None,
        })
        .collect();
    check_quantized_weights(cfg, &quantized_views(&sets))?;
    Ok(sets)
}

/// One of `W` / `R` (`[D, k, 4H]`) as `D` PyTorch-layout matrices `[4H, k]`.
fn quantized_matrices(
    name: &str,
    codes: Codes<'_>,
    scale: &[f32],
    zp: Codes<'_>,
    d: usize,
    k: usize,
    h: usize,
) -> Result<Vec<OwnedQuantizedMatrix>> {
    let n = 4 * h;
    if codes.len() != d * k * n {
        return Err(Error::length(name, d * k * n, codes.len()));
    }
    let per_channel = scale.len() == d * n;
    if scale.len() != d && !per_channel {
        return Err(Error::invalid(
            format!("{name}_scale"),
            format!("[{d}] (per tensor) or [{d}, {n}] (per channel) values"),
            scale.len(),
        ));
    }
    let zp_name = format!("{name}_zero_point");
    if zp.len() != scale.len() {
        return Err(Error::length(zp_name, scale.len(), zp.len()));
    }
    if std::mem::discriminant(&zp) != std::mem::discriminant(&codes) {
        return Err(Error::invalid(
            zp_name,
            format!("{} values, the type of {name}", codes.type_name()),
            zp.type_name(),
        ));
    }
    if per_channel {
        // ONNX Runtime's rule: int8 zero points all 0, uint8 ones all equal.
        let bad = match zp {
            Codes::I8(z) => z.iter().position(|&v| v != 0),
            Codes::U8(z) => z.iter().position(|&v| v != z[0]),
        };
        if let Some(at) = bad {
            return Err(Error::invalid(
                format!("{zp_name}[{at}]"),
                match zp {
                    Codes::I8(_) => "0 (per-channel int8 zero points must be 0)".to_string(),
                    Codes::U8(_) => {
                        "the first zero point (per-channel uint8 zero points must be equal)"
                            .to_string()
                    }
                },
                match zp {
                    Codes::I8(z) => z[at].to_string(),
                    Codes::U8(z) => z[at].to_string(),
                },
            ));
        }
    }
    let per = if per_channel { n } else { 1 };
    Ok((0..d)
        .map(|dir| {
            // PyTorch row `g * H + u` is ONNX column `SOURCE[g] * H + u`.
            let col = |row: usize| SOURCE[row / h] * h + row % h;
            let mut out = OwnedQuantizedMatrix {
                codes: Vec::with_capacity(n * k),
                scales: Vec::with_capacity(per),
                zero_points: Some(Vec::with_capacity(per)),
            };
            for row in 0..n {
                let c = col(row);
                out.codes
                    .extend((0..k).map(|j| codes.signed((dir * k + j) * n + c)));
            }
            let zps = out.zero_points.as_mut().expect("set above");
            for p in 0..per {
                let src = dir * per + if per_channel { col(p) } else { 0 };
                out.scales.push(scale[src]);
                zps.push(zp.signed(src));
            }
            out
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CellKind;

    fn cfg() -> RnnConfig {
        RnnConfig::new(CellKind::LSTM, 2, 1)
    }

    #[test]
    fn transposes_and_permutes_per_channel() {
        // W [1, 2, 4]: value = 10 * k + onnx gate.
        let w: Vec<i8> = (0..8).map(|e| (e / 4 * 10 + e % 4) as i8).collect();
        let scale = [1.0f32, 2.0, 3.0, 4.0]; // per ONNX column
        let sets = import_dynamic_quantize_lstm(
            &cfg(),
            DynamicQuantizeLstmWeights {
                w: Codes::I8(&w),
                w_scale: &scale,
                w_zero_point: Codes::I8(&[0; 4]),
                r: Codes::I8(&[0; 4]),
                r_scale: &[1.0],
                r_zero_point: Codes::I8(&[0]),
                b: None,
                p: None,
            },
        )
        .unwrap();
        let m = &sets[0].w_ih;
        // Rows i, f, g, o = ONNX columns 0, 2, 3, 1; each row is [k = 0, k = 1].
        assert_eq!(m.codes, vec![0, 10, 2, 12, 3, 13, 1, 11]);
        assert_eq!(m.scales, vec![1.0, 3.0, 4.0, 2.0]);
    }

    #[test]
    fn zero_point_rules_name_the_argument() {
        let base = DynamicQuantizeLstmWeights {
            w: Codes::U8(&[0; 8]),
            w_scale: &[1.0; 4],
            w_zero_point: Codes::U8(&[3, 3, 4, 3]),
            r: Codes::U8(&[0; 4]),
            r_scale: &[1.0],
            r_zero_point: Codes::U8(&[0]),
            b: None,
            p: None,
        };
        let e = import_dynamic_quantize_lstm(&cfg(), base).unwrap_err();
        assert_eq!(e.arg(), "W_zero_point[2]");
        let e = import_dynamic_quantize_lstm(
            &cfg(),
            DynamicQuantizeLstmWeights {
                w_zero_point: Codes::I8(&[0; 4]),
                ..base
            },
        )
        .unwrap_err();
        assert_eq!(e.arg(), "W_zero_point");
        let e = import_dynamic_quantize_lstm(
            &cfg(),
            DynamicQuantizeLstmWeights {
                w_zero_point: Codes::U8(&[3; 4]),
                r_scale: &[1.0, 2.0],
                ..base
            },
        )
        .unwrap_err();
        assert_eq!(e.arg(), "R_scale");
    }
}
