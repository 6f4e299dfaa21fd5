//! Golden cases of int8 weights (`int8/*.json`, layout `"onnx_dynamic_quant"`): ONNX
//! Runtime's `com.microsoft.DynamicQuantizeLSTM` (format: `testdata/golden/README.md`).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::quant::{
    import_dynamic_quantize_lstm, quantized_views, ActivationQuant, Codes,
    DynamicQuantizeLstmWeights, OwnedQuantizedLayerWeights,
};

use super::parse::{array, data, get, opt_data, parse_case, str_of, usize_of};
use super::Case;

/// One int8 golden case.
#[derive(Clone, Debug)]
pub struct QuantCase {
    /// Configuration, inputs and the quantized operator's outputs; `weights` are the
    /// dequantized weights (`(code − zp) · scale` in `f32`), PyTorch layout.
    pub case: Case,
    /// The weights as given, PyTorch layout.
    pub weights: Vec<OwnedQuantizedLayerWeights>,
    /// How the case quantizes activations.
    pub scheme: ActivationQuant,
    /// ONNX Runtime's f32 `LSTM` on the dequantized weights: `(y, h_n, c_n)`.
    pub f32_dequant: (Vec<f64>, Vec<f64>, Vec<f64>),
}

impl AsRef<Case> for QuantCase {
    fn as_ref(&self) -> &Case {
        &self.case
    }
}

/// The directory of int8 golden cases: `int8/` under [`golden_dir`](super::golden_dir).
pub fn quant_golden_dir() -> PathBuf {
    super::golden_dir().join("int8")
}

/// Loads every `*.json` of `dir` as an int8 case, sorted by name; panics as
/// [`load_all`](super::load_all) does.
pub fn load_all_quant(dir: &Path) -> Vec<QuantCase> {
    super::load_files(dir, load_quant_case)
}

/// Parses one int8 case file.
pub fn load_quant_case(path: &Path) -> Result<QuantCase, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("invalid JSON: {e}"))?;
    if str_of(&v, "layout")? != "onnx_dynamic_quant" {
        return Err("layout is not `onnx_dynamic_quant`".into());
    }
    let c = get(&v, "config")?;
    let (i, h) = (usize_of(c, "input_size")?, usize_of(c, "hidden_size")?);
    let w = get(&v, "weights")?;
    let nd = array(get(w, "W")?, "weights.W")?
        .0
        .first()
        .copied()
        .unwrap_or(0);
    // Everything but the weights is an ONNX LSTM case: parse it as one, with zero
    // matrices, then put the dequantized weights in.
    let mut as_lstm = v.clone();
    as_lstm["layout"] = json!("onnx");
    let zeros =
        |shape: [usize; 3]| json!({"shape": shape, "data": vec![0.0; shape.iter().product()]});
    as_lstm["weights"]["W"] = zeros([nd, 4 * h, i]);
    as_lstm["weights"]["R"] = zeros([nd, 4 * h, h]);
    let mut case = parse_case(&as_lstm, path)?;
    let cfg = case.cfg;
    let codes = |key: &str, shape: &[usize]| -> Result<CodesVec, String> {
        let a = get(w, key)?;
        let d = data(a, &format!("weights.{key}"), shape)?;
        match a.get("dtype").and_then(Value::as_str) {
            Some("int8") => Ok(CodesVec::I8(d.iter().map(|&x| x as i8).collect())),
            Some("uint8") => Ok(CodesVec::U8(d.iter().map(|&x| x as u8).collect())),
            other => Err(format!(
                "`weights.{key}.dtype` is {other:?}, expected int8 or uint8"
            )),
        }
    };
    let scale = |key: &str| -> Result<(Vec<usize>, Vec<f32>), String> {
        let (shape, d) = array(get(w, key)?, &format!("weights.{key}"))?;
        Ok((shape, d.iter().map(|&x| x as f32).collect()))
    };
    let (ws_shape, w_scale) = scale("W_scale")?;
    let (rs_shape, r_scale) = scale("R_scale")?;
    let (wm, w_zp) = (
        codes("W", &[nd, i, 4 * h])?,
        codes("W_zero_point", &ws_shape)?,
    );
    let (rm, r_zp) = (
        codes("R", &[nd, h, 4 * h])?,
        codes("R_zero_point", &rs_shape)?,
    );
    let f32s = |o: Option<Vec<f64>>| o.map(|v| v.iter().map(|&x| x as f32).collect::<Vec<f32>>());
    let b = f32s(opt_data(w, "B", "weights.B", &[nd, 8 * h])?);
    let p = f32s(opt_data(w, "P", "weights.P", &[nd, 3 * h])?);
    let weights = import_dynamic_quantize_lstm(
        &cfg,
        DynamicQuantizeLstmWeights {
            w: wm.codes(),
            w_scale: &w_scale,
            w_zero_point: w_zp.codes(),
            r: rm.codes(),
            r_scale: &r_scale,
            r_zero_point: r_zp.codes(),
            b: b.as_deref(),
            p: p.as_deref(),
        },
    )
    .map_err(|e| format!("import_dynamic_quantize_lstm: {e}"))?;
    case.weights = quantized_views(&weights)
        .iter()
        .map(|q| {
            q.dequantize(&cfg, 0)
                .map(|v| v.iter().map(|&x| f64::from(x)).collect())
        })
        .collect();
    let dq = get(&v, "outputs_f32_dequant")?;
    let (t, bsz, sets) = (case.shape.steps, case.shape.batch, cfg.num_weight_sets());
    let f32_dequant = (
        data(get(dq, "y")?, "outputs_f32_dequant.y", &[t, bsz, nd * h])?,
        data(get(dq, "h_n")?, "outputs_f32_dequant.h_n", &[sets, bsz, h])?,
        data(get(dq, "c_n")?, "outputs_f32_dequant.c_n", &[sets, bsz, h])?,
    );
    Ok(QuantCase {
        case,
        weights,
        scheme: ActivationQuant::OnnxRuntime,
        f32_dequant,
    })
}

/// Owned codes of either type.
enum CodesVec {
    I8(Vec<i8>),
    U8(Vec<u8>),
}

impl CodesVec {
    fn codes(&self) -> Codes<'_> {
        match self {
            CodesVec::I8(c) => Codes::I8(c),
            CodesVec::U8(c) => Codes::U8(c),
        }
    }
}
