//! Parsing one golden case file (format: `testdata/golden/README.md`).

use std::path::Path;

use serde_json::Value;

use crate::{
    import_onnx, onnx_activations, CellKind, Direction, GateCoupling, GruVariant, LstmVariant,
    OnnxWeights, OwnedLayerWeights, RnnActivation, RnnConfig, RnnVariant, SeqShape,
};

use super::Case;

/// Parses one case file.
pub fn load_case(path: &Path) -> Result<Case, String> {
    parse_case(&read_json(path)?, path)
}

/// Reads and parses one JSON file (Python's bare non-finite numbers accepted).
pub(super) fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    serde_json::from_str(&quote_non_finite(&text)).map_err(|e| format!("invalid JSON: {e}"))
}

/// Python's `json` writes NaN and infinities as bare `NaN`, `Infinity` and `-Infinity`,
/// which are not JSON; turn them into strings (outside string literals) for [`num`].
fn quote_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_str = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(ch) = rest.chars().next() {
        if in_str {
            out.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_str = false;
            }
            rest = &rest[ch.len_utf8()..];
            continue;
        }
        if ch == '"' {
            in_str = true;
        }
        let token = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|t| rest.starts_with(t));
        if let Some(t) = token {
            out.push('"');
            out.push_str(t);
            out.push('"');
            rest = &rest[t.len()..];
        } else {
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
    }
    out
}

pub(super) fn num(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("bad number {n}")),
        Value::String(s) if s == "NaN" => Ok(f64::NAN),
        Value::String(s) if s == "Infinity" => Ok(f64::INFINITY),
        Value::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
        other => Err(format!("expected a number, got {other}")),
    }
}

/// An array `{"shape": [...], "data": [...]}`: (shape, data), checked for consistency.
pub(super) fn array(v: &Value, what: &str) -> Result<(Vec<usize>, Vec<f64>), String> {
    let shape = v
        .get("shape")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("`{what}` has no `shape` list"))?
        .iter()
        .map(|d| {
            d.as_u64()
                .map(|d| d as usize)
                .ok_or_else(|| format!("`{what}.shape` holds a non-integer"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let data = v
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("`{what}` has no `data` list"))?
        .iter()
        .map(num)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("`{what}.data`: {e}"))?;
    let n: usize = shape.iter().product();
    if n != data.len() {
        return Err(format!(
            "`{what}`: shape {shape:?} implies {n} values, data has {}",
            data.len()
        ));
    }
    Ok((shape, data))
}

pub(super) fn data(v: &Value, what: &str, expected: &[usize]) -> Result<Vec<f64>, String> {
    let (shape, d) = array(v, what)?;
    if shape != expected {
        return Err(format!(
            "`{what}` has shape {shape:?}, expected {expected:?}"
        ));
    }
    Ok(d)
}

pub(super) fn opt_data(
    v: &Value,
    key: &str,
    what: &str,
    expected: &[usize],
) -> Result<Option<Vec<f64>>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(a) => data(a, what, expected).map(Some),
    }
}

pub(super) fn get<'v>(v: &'v Value, key: &str) -> Result<&'v Value, String> {
    v.get(key).ok_or_else(|| format!("missing key `{key}`"))
}

pub(super) fn str_of<'v>(v: &'v Value, key: &str) -> Result<&'v str, String> {
    get(v, key)?
        .as_str()
        .ok_or_else(|| format!("`{key}` is not a string"))
}

pub(super) fn usize_of(v: &Value, key: &str) -> Result<usize, String> {
    get(v, key)?
        .as_u64()
        .map(|n| n as usize)
        .ok_or_else(|| format!("`{key}` is not a non-negative integer"))
}

/// `true`/`false`, with absent or null read as `default`.
fn bool_or(v: &Value, key: &str, default: bool) -> Result<bool, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!("`config.{key}` is not a bool: {other}")),
    }
}

pub(super) fn parse_case(v: &Value, path: &Path) -> Result<Case, String> {
    let name = str_of(v, "name")?.to_string();
    let source = v
        .get("source")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let onnx = match str_of(v, "layout")? {
        "onnx" => true,
        "pytorch" => false,
        other => return Err(format!("unknown layout `{other}`")),
    };
    let c = get(v, "config")?;
    let (i, h) = (usize_of(c, "input_size")?, usize_of(c, "hidden_size")?);
    let num_layers = match c.get("num_layers") {
        None | Some(Value::Null) => 1,
        Some(_) => usize_of(c, "num_layers")?,
    };
    let proj_size = match c.get("proj_size") {
        None | Some(Value::Null) => None,
        Some(p) => match p.as_u64() {
            Some(0) => None,
            Some(p) => Some(p as usize),
            None => return Err(format!("`config.proj_size` is not an integer: {p}")),
        },
    };
    let cell = match str_of(v, "cell")? {
        "rnn" => CellKind::Rnn(RnnVariant {
            activation: match c.get("nonlinearity").and_then(Value::as_str) {
                None | Some("tanh") => RnnActivation::Tanh,
                Some("relu") => RnnActivation::Relu,
                Some(other) => return Err(format!("unknown nonlinearity `{other}`")),
            },
        }),
        "lstm" => CellKind::Lstm(LstmVariant {
            peephole: bool_or(c, "peephole", false)?,
            proj_size,
            coupling: if bool_or(c, "input_forget", false)? {
                GateCoupling::InputForget
            } else {
                GateCoupling::None
            },
            ..Default::default()
        }),
        "gru" => CellKind::Gru(GruVariant {
            linear_before_reset: bool_or(c, "linear_before_reset", !onnx)?,
            ..Default::default()
        }),
        other => return Err(format!("unknown cell `{other}`")),
    };
    if !cell.has_cell_state() && proj_size.is_some() {
        return Err("`config.proj_size` is only supported for an LSTM".into());
    }
    let bidirectional = bool_or(c, "bidirectional", false)?;
    let direction = match c.get("direction").and_then(Value::as_str) {
        Some("forward") => Direction::Forward,
        Some("reverse") => Direction::Reverse,
        Some("bidirectional") => Direction::Bidirectional,
        Some(other) => return Err(format!("unknown direction `{other}`")),
        None if bidirectional => Direction::Bidirectional,
        None => Direction::Forward,
    };
    if bidirectional != (direction == Direction::Bidirectional) {
        return Err("`config.bidirectional` contradicts `config.direction`".into());
    }
    let clip = match c.get("clip") {
        None | Some(Value::Null) => None,
        Some(x) => Some(num(x).map_err(|e| format!("`config.clip`: {e}"))? as f32),
    };
    let bias = bool_or(c, "bias", true)?;
    let activations = match c.get("activations") {
        None | Some(Value::Null) => None,
        Some(Value::Array(names)) => {
            let names: Vec<&str> = names
                .iter()
                .map(|n| n.as_str().ok_or("`config.activations` holds a non-string"))
                .collect::<Result<_, _>>()?;
            let floats = |key: &str| -> Result<Vec<f32>, String> {
                match c.get(key) {
                    None | Some(Value::Null) => Ok(Vec::new()),
                    Some(Value::Array(v)) => v
                        .iter()
                        .map(|x| num(x).map(|x| x as f32))
                        .collect::<Result<_, _>>()
                        .map_err(|e| format!("`config.{key}`: {e}")),
                    Some(other) => Err(format!("`config.{key}` is not a list: {other}")),
                }
            };
            let (alpha, beta) = (floats("activation_alpha")?, floats("activation_beta")?);
            let nd = direction.num_directions();
            Some(
                onnx_activations(cell, nd, &names, &alpha, &beta)
                    .map_err(|e| format!("`config.activations`: {e}"))?,
            )
        }
        Some(other) => return Err(format!("`config.activations` is not a list: {other}")),
    };
    let cfg = RnnConfig {
        cell,
        input_size: i,
        hidden_size: h,
        num_layers,
        direction,
        clip,
        activations,
    };
    cfg.validate().map_err(|e| format!("invalid config: {e}"))?;

    let (g, nd, ho) = (cfg.gates(), cfg.num_directions(), cfg.output_size());
    let lstm = cfg.cell.has_cell_state();
    let w = get(v, "weights")?;
    let weights = if onnx {
        let wm = data(get(w, "W")?, "weights.W", &[nd, g * h, i])?;
        let rm = data(get(w, "R")?, "weights.R", &[nd, g * h, h])?;
        let b = if bias {
            opt_data(w, "B", "weights.B", &[nd, 2 * g * h])?
        } else {
            None
        };
        let p = opt_data(w, "P", "weights.P", &[nd, 3 * h])?;
        import_onnx(
            &cfg,
            OnnxWeights {
                w: &wm,
                r: &rm,
                b: b.as_deref(),
                p: p.as_deref(),
            },
        )
        .map_err(|e| format!("import_onnx: {e}"))?
    } else {
        let sets = w
            .as_array()
            .ok_or("`weights` is not a list (layout pytorch)")?;
        if sets.len() != cfg.num_weight_sets() {
            return Err(format!(
                "`weights` has {} sets, expected L*D = {}",
                sets.len(),
                cfg.num_weight_sets()
            ));
        }
        let mut out = Vec::new();
        for (k, s) in sets.iter().enumerate() {
            let il = cfg.layer_input_size(k / nd);
            let name = |p: &str| format!("weights[{k}].{p}");
            let (b_ih, b_hh) = if bias {
                (
                    opt_data(s, "b_ih", &name("b_ih"), &[g * h])?,
                    opt_data(s, "b_hh", &name("b_hh"), &[g * h])?,
                )
            } else {
                (None, None)
            };
            out.push(OwnedLayerWeights {
                w_ih: data(get(s, "w_ih")?, &name("w_ih"), &[g * h, il])?,
                w_hh: data(get(s, "w_hh")?, &name("w_hh"), &[g * h, ho])?,
                b_ih,
                b_hh,
                w_hr: opt_data(s, "w_hr", &name("w_hr"), &[ho, h])?,
                peephole: opt_data(s, "peephole", &name("peephole"), &[3 * h])?,
                layer_norm: None,
            });
        }
        out
    };

    let inputs = get(v, "inputs")?;
    let x_arr = get(inputs, "x")?;
    let (x_shape, x) = array(x_arr, "inputs.x")?;
    if x_shape.len() != 3 || x_shape[2] != i {
        return Err(format!(
            "`inputs.x` has shape {x_shape:?}, expected [T, B, {i}]"
        ));
    }
    let (t, b) = (x_shape[0], x_shape[1]);
    let sets = cfg.num_weight_sets();
    let h0 = opt_data(inputs, "h0", "inputs.h0", &[sets, b, ho])?
        .unwrap_or_else(|| vec![0.0; sets * b * ho]);
    let c0 = if lstm {
        opt_data(inputs, "c0", "inputs.c0", &[sets, b, h])?
            .unwrap_or_else(|| vec![0.0; sets * b * h])
    } else {
        Vec::new()
    };
    let seq_lens = match inputs.get("seq_lens") {
        None | Some(Value::Null) => None,
        Some(s) => {
            let lens = match s.get("data") {
                Some(_) => data(s, "inputs.seq_lens", &[b])?,
                None => s
                    .as_array()
                    .ok_or("`inputs.seq_lens` is not an array")?
                    .iter()
                    .map(num)
                    .collect::<Result<Vec<_>, _>>()?,
            };
            Some(lens.iter().map(|&l| l as usize).collect())
        }
    };
    let outputs = get(v, "outputs")?;
    let y = data(get(outputs, "y")?, "outputs.y", &[t, b, nd * ho])?;
    let h_n = data(get(outputs, "h_n")?, "outputs.h_n", &[sets, b, ho])?;
    let c_n = if lstm {
        data(get(outputs, "c_n")?, "outputs.c_n", &[sets, b, h])?
    } else {
        Vec::new()
    };
    // Both sources computed on float32 numbers, which the files print with 9
    // significant digits (enough to identify the float32, not equal to it): recover
    // the exact float32 values, else an f64 run would see inputs perturbed by ~1e-9.
    let f32_exact = |v: &mut Vec<f64>| v.iter_mut().for_each(|x| *x = f64::from(*x as f32));
    let mut weights = weights;
    for w in &mut weights {
        f32_exact(&mut w.w_ih);
        f32_exact(&mut w.w_hh);
        for v in [&mut w.b_ih, &mut w.b_hh, &mut w.w_hr, &mut w.peephole]
            .into_iter()
            .flatten()
        {
            f32_exact(v);
        }
    }
    let (mut x, mut h0, mut c0) = (x, h0, c0);
    f32_exact(&mut x);
    f32_exact(&mut h0);
    f32_exact(&mut c0);
    Ok(Case {
        name,
        path: path.to_path_buf(),
        source,
        onnx,
        cfg,
        shape: SeqShape::new(t, b),
        weights,
        x,
        h0,
        c0,
        seq_lens,
        y,
        h_n,
        c_n,
    })
}
