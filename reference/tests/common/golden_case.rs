//! Golden-vector cases: loading the JSON files described in `testdata/golden/README.md`
//! and comparing an implementation's outputs with them.
//!
//! This file depends only on the public API of `rnn_reference` and on `serde_json`, so
//! any crate of the workspace can reuse it from its tests:
//!
//! ```ignore
//! #[path = "../../reference/tests/common/golden_case.rs"]
//! mod golden_case;
//! use golden_case::{golden_dir, load_all, run_all, Tolerance};
//!
//! #[test]
//! fn golden() {
//!     let cases = load_all(&golden_dir());
//!     run_all(&cases, Tolerance::F32, "my kernels (f32)", |case| {
//!         // ... run `case` and return (y, h_n, c_n) widened to f64
//!     });
//! }
//! ```
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rnn_reference::{
    import_onnx, CellKind, Direction, OnnxWeights, OwnedLayerWeights, RnnActivation, RnnConfig,
    SeqShape,
};
use serde_json::Value;

/// One golden case, with the weights already in PyTorch layout.
#[derive(Clone, Debug)]
pub struct Case {
    /// The case's `name`.
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// The system that produced it (`source`).
    pub source: String,
    /// Whether the file used `layout: "onnx"` (computed by ONNX Runtime in float32).
    pub onnx: bool,
    /// The network.
    pub cfg: RnnConfig,
    /// Steps and batch; always time-major (the format stores `x` and `y` as `[T, B, ·]`).
    pub shape: SeqShape,
    /// `L * D` weight sets in PyTorch layout (ONNX cases went through `import_onnx`).
    pub weights: Vec<OwnedLayerWeights<f64>>,
    /// `[T, B, I]`.
    pub x: Vec<f64>,
    /// `[L*D, B, H_out]` (zeros when the file has none).
    pub h0: Vec<f64>,
    /// `[L*D, B, H]` for an LSTM (zeros when the file has none); empty otherwise.
    pub c0: Vec<f64>,
    /// Per-row sequence lengths, if any.
    pub seq_lens: Option<Vec<usize>>,
    /// Expected `[T, B, D*H_out]`.
    pub y: Vec<f64>,
    /// Expected `[L*D, B, H_out]`.
    pub h_n: Vec<f64>,
    /// Expected `[L*D, B, H]` for an LSTM; empty otherwise.
    pub c_n: Vec<f64>,
}

impl Case {
    /// The weights rounded to `f32` (exact for the values of the golden files, which
    /// are `f32` numbers).
    pub fn weights_f32(&self) -> Vec<OwnedLayerWeights<f32>> {
        self.weights
            .iter()
            .map(|w| OwnedLayerWeights {
                w_ih: to_f32(&w.w_ih),
                w_hh: to_f32(&w.w_hh),
                b_ih: w.b_ih.as_deref().map(to_f32),
                b_hh: w.b_hh.as_deref().map(to_f32),
                w_hr: w.w_hr.as_deref().map(to_f32),
                peephole: w.peephole.as_deref().map(to_f32),
            })
            .collect()
    }
}

/// Rounds to `f32`.
pub fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Widens to `f64`.
pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// `|got - want| <= atol + rtol * |want|` per element; NaN must meet NaN and an
/// infinity the same infinity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Absolute part.
    pub atol: f64,
    /// Relative part.
    pub rtol: f64,
}

impl Tolerance {
    /// For an `f32` implementation, as the golden README suggests.
    ///
    /// Why this is generous: every pre-activation is a dot product of length
    /// n = I_l + H_out + 2 <= ~100 here (33 + 65 + 2 for the largest case), with the
    /// f32 unit roundoff u = 2^-24 ~ 6e-8. The worst-case summation error is
    /// n·u·Σ|terms| ~ 6e-6·Σ|terms|, the typical (random-walk) one sqrt(n)·u·Σ|terms|
    /// ~ 6e-7·Σ|terms|, and Σ|terms| is O(1) for these weights (|w| <= 1/sqrt(H)).
    /// tanh, relu (slope 1) and σ (slope 1/4) do not amplify errors, and with
    /// these contracting weights errors do not compound over the T <= 10 steps: expected
    /// output errors are ~1e-7..1e-6 (measured for the reference in f32 on the project's
    /// cases: every element within 1e-7 + 1e-6·|want|), so 1e-5 + 1e-4·|want| leaves
    /// one to two orders of magnitude of headroom.
    /// A wrong gate, bias or permutation moves outputs by ~1e-2, far outside it.
    pub const F32: Tolerance = Tolerance {
        atol: 1e-5,
        rtol: 1e-4,
    };

    /// For an `f64` implementation against the PyTorch cases (computed in float64 on
    /// the same float32 inputs). The f64 rounding itself is ~n·2^-53 ~ 1e-14; the floor
    /// is the files themselves: expected outputs are stored rounded to float32 (half an
    /// ulp, <= 2^-24 ~ 6e-8 relative; measured: up to 3e-8 on values ~0.6) and printed
    /// with 9 significant digits (<= 5e-9 relative), hence 1e-9 absolute + 1e-7
    /// relative, just above that floor. The ONNX cases were computed by ONNX Runtime in
    /// float32, so they differ from an exact result by ~1e-7 absolute:
    /// [`Tolerance::for_case`] uses [`Tolerance::F32`] for them even in f64.
    pub const F64: Tolerance = Tolerance {
        atol: 1e-9,
        rtol: 1e-7,
    };

    /// The tolerance for `case`: `self`, widened to [`Tolerance::F32`] for ONNX cases
    /// (their expected values carry float32 rounding).
    pub fn for_case(&self, case: &Case) -> Tolerance {
        if case.onnx {
            Tolerance {
                atol: self.atol.max(Self::F32.atol),
                rtol: self.rtol.max(Self::F32.rtol),
            }
        } else {
            *self
        }
    }
}

/// The directory of golden cases: `$RNN_GOLDEN_DIR`, else the workspace's
/// `testdata/golden` (found from the including crate's `CARGO_MANIFEST_DIR`).
pub fn golden_dir() -> PathBuf {
    match std::env::var_os("RNN_GOLDEN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("testdata")
            .join("golden"),
    }
}

/// Loads every `*.json` of `dir`, sorted by file name. Panics with a clear message if
/// the directory cannot be read, holds no case, or a file is malformed.
pub fn load_all(dir: &Path) -> Vec<Case> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| {
        panic!(
            "cannot read the golden directory {} ({e}); set RNN_GOLDEN_DIR to a directory of *.json cases",
            dir.display()
        )
    });
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.expect("reading a directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "the golden directory {} holds no *.json case: refusing to pass by testing nothing",
        dir.display()
    );
    let mut cases = Vec::new();
    let mut errors = Vec::new();
    for p in &paths {
        match load_case(p) {
            Ok(c) => cases.push(c),
            Err(e) => errors.push(format!("  {}: {e}", p.display())),
        }
    }
    assert!(
        errors.is_empty(),
        "malformed golden case file(s):\n{}",
        errors.join("\n")
    );
    cases
}

/// Parses one case file.
pub fn load_case(path: &Path) -> Result<Case, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let v: Value =
        serde_json::from_str(&quote_non_finite(&text)).map_err(|e| format!("invalid JSON: {e}"))?;
    parse_case(&v, path)
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

fn num(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("bad number {n}")),
        Value::String(s) if s == "NaN" => Ok(f64::NAN),
        Value::String(s) if s == "Infinity" => Ok(f64::INFINITY),
        Value::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
        other => Err(format!("expected a number, got {other}")),
    }
}

/// An array `{"shape": [...], "data": [...]}`: (shape, data), checked for consistency.
fn array(v: &Value, what: &str) -> Result<(Vec<usize>, Vec<f64>), String> {
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

fn data(v: &Value, what: &str, expected: &[usize]) -> Result<Vec<f64>, String> {
    let (shape, d) = array(v, what)?;
    if shape != expected {
        return Err(format!(
            "`{what}` has shape {shape:?}, expected {expected:?}"
        ));
    }
    Ok(d)
}

fn opt_data(
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

fn get<'v>(v: &'v Value, key: &str) -> Result<&'v Value, String> {
    v.get(key).ok_or_else(|| format!("missing key `{key}`"))
}

fn str_of<'v>(v: &'v Value, key: &str) -> Result<&'v str, String> {
    get(v, key)?
        .as_str()
        .ok_or_else(|| format!("`{key}` is not a string"))
}

fn usize_of(v: &Value, key: &str) -> Result<usize, String> {
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

fn parse_case(v: &Value, path: &Path) -> Result<Case, String> {
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
        "rnn" => CellKind::Rnn {
            activation: match c.get("nonlinearity").and_then(Value::as_str) {
                None | Some("tanh") => RnnActivation::Tanh,
                Some("relu") => RnnActivation::Relu,
                Some(other) => return Err(format!("unknown nonlinearity `{other}`")),
            },
        },
        "lstm" => CellKind::Lstm {
            peephole: bool_or(c, "peephole", false)?,
            proj_size,
        },
        "gru" => CellKind::Gru {
            linear_before_reset: bool_or(c, "linear_before_reset", !onnx)?,
        },
        other => return Err(format!("unknown cell `{other}`")),
    };
    if !matches!(cell, CellKind::Lstm { .. }) && proj_size.is_some() {
        return Err("`config.proj_size` is only supported for an LSTM".into());
    }
    if !matches!(c.get("activations"), None | Some(Value::Null)) {
        return Err("`config.activations` other than null is not supported".into());
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
    let cfg = RnnConfig {
        cell,
        input_size: i,
        hidden_size: h,
        num_layers,
        direction,
        clip,
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

/// The outcome of comparing one output.
struct Mismatch {
    bad: usize,
    worst: usize,
    got: f64,
    want: f64,
    allowed: f64,
}

fn compare(got: &[f64], want: &[f64], tol: Tolerance) -> Option<Mismatch> {
    let mut bad = 0;
    let mut worst: Option<(f64, usize)> = None;
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        let allowed = tol.atol + tol.rtol * w.abs();
        let ok = g == w || (g.is_nan() && w.is_nan()) || (g - w).abs() <= allowed;
        if !ok {
            bad += 1;
            // NaN or infinite differences rank first.
            let excess = (g - w).abs() / allowed;
            let excess = if excess.is_nan() {
                f64::INFINITY
            } else {
                excess
            };
            if worst.is_none_or(|(e, _)| excess > e) {
                worst = Some((excess, k));
            }
        }
    }
    worst.map(|(_, k)| Mismatch {
        bad,
        worst: k,
        got: got[k],
        want: want[k],
        allowed: tol.atol + tol.rtol * want[k].abs(),
    })
}

/// Runs `f` on every case and compares its `(y, h_n, c_n)` (time-major, widened to
/// `f64`; `c_n` empty for non-LSTM cells) with the expected outputs using
/// `tol.for_case(case)`. Panics, naming `name`, with every failing file, output and its
/// worst element (index, got, want), after running all cases.
pub fn run_all<F>(cases: &[Case], tol: Tolerance, name: &str, f: F)
where
    F: Fn(&Case) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>), String>,
{
    assert!(!cases.is_empty(), "{name}: no golden case to run");
    let mut report = String::new();
    let mut failed = 0;
    for case in cases {
        let tol = tol.for_case(case);
        let mut lines = Vec::new();
        match f(case) {
            Err(e) => lines.push(format!("returned an error: {e}")),
            Ok((y, h_n, c_n)) => {
                for (out, got, want) in [
                    ("y", &y, &case.y),
                    ("h_n", &h_n, &case.h_n),
                    ("c_n", &c_n, &case.c_n),
                ] {
                    if got.len() != want.len() {
                        lines.push(format!(
                            "{out}: {} values, expected {}",
                            got.len(),
                            want.len()
                        ));
                    } else if let Some(m) = compare(got, want, tol) {
                        lines.push(format!(
                            "{out}: {} of {} values out of tolerance; worst at index {}: got {:e}, want {:e} (|diff| {:e} > allowed {:e})",
                            m.bad,
                            want.len(),
                            m.worst,
                            m.got,
                            m.want,
                            (m.got - m.want).abs(),
                            m.allowed
                        ));
                    }
                }
            }
        }
        if !lines.is_empty() {
            failed += 1;
            let _ = writeln!(report, "{} ({}):", case.path.display(), case.name);
            for l in lines {
                let _ = writeln!(report, "    {l}");
            }
        }
    }
    assert!(
        failed == 0,
        "{name}: {failed} of {} golden case(s) failed (atol {:e}, rtol {:e}; wider for onnx cases):\n{report}",
        cases.len(),
        tol.atol,
        tol.rtol
    );
    eprintln!("{name}: all {} golden cases passed", cases.len());
}
