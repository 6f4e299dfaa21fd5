//! A case file: `inputs` and (optionally) `outputs` in the golden-vector format of
//! `testdata/golden/README.md` (`x` [T, B, I] time-major, `h0` / `c0` [L*D, B, ·],
//! `seq_lens` a list, `y` [T, B, D*H_out], `h_n` / `c_n` [L*D, B, ·]; every array
//! `{"shape": [...], "data": [...]}`), plus an optional `run` object naming the model
//! file and its `prefix` / `cell` (what the tests use). Values must be finite numbers.
//! Shared by the `run_model` example and `kernels/tests/models.rs`.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// `|got - want| <= ATOL + RTOL * |want|`: the golden tolerance
/// (`testdata/golden/README.md`; derived in `reference/tests/common/golden_case.rs`).
pub const ATOL: f64 = 1e-5;
/// See [`ATOL`].
pub const RTOL: f64 = 1e-4;

/// A row-major array.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Array {
    pub fn to_f32(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v as f32).collect()
    }
}

/// How the case's model is loaded (the case file's optional `run` object).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Run {
    /// The model file, relative to the case file.
    pub model: Option<PathBuf>,
    pub prefix: Option<String>,
    pub cell: Option<String>,
}

/// One case.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub x: Array,
    pub h0: Option<Array>,
    pub c0: Option<Array>,
    pub seq_lens: Option<Vec<usize>>,
    /// `(name, expected)` for each of `y`, `h_n`, `c_n` the file has.
    pub outputs: Vec<(&'static str, Array)>,
    /// Read by the tests (the example takes the model from its command line).
    #[allow(dead_code)]
    pub run: Run,
}

/// Reads a case file.
pub fn load(path: &Path) -> Result<Case, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: invalid JSON: {e}", path.display()))?;
    parse(&v, path).map_err(|e| format!("{}: {e}", path.display()))
}

fn parse(v: &Value, path: &Path) -> Result<Case, String> {
    let inputs = v.get("inputs").ok_or("no `inputs` object")?;
    let x = array(inputs.get("x").ok_or("no `inputs.x`")?, "inputs.x")?;
    if x.shape.len() != 3 {
        return Err(format!(
            "`inputs.x` has shape {:?}, expected [T, B, I]",
            x.shape
        ));
    }
    let opt = |obj: Option<&Value>, key: &str, what: &str| match obj.and_then(|o| o.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(a) => array(a, what).map(Some),
    };
    let seq_lens = match inputs.get("seq_lens") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|n| n.as_u64().map(|n| n as usize))
                .collect::<Option<Vec<_>>>()
                .ok_or("`inputs.seq_lens` holds a non-integer")?,
        ),
        Some(_) => return Err("`inputs.seq_lens` is not a list".into()),
    };
    let outs = v.get("outputs");
    let mut outputs = Vec::new();
    for key in ["y", "h_n", "c_n"] {
        if let Some(a) = opt(outs, key, &format!("outputs.{key}"))? {
            outputs.push((key, a));
        }
    }
    let run = v.get("run");
    let text = |key: &str| {
        run.and_then(|r| r.get(key))
            .and_then(Value::as_str)
            .map(String::from)
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    Ok(Case {
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("case")
            .to_string(),
        x,
        h0: opt(Some(inputs), "h0", "inputs.h0")?,
        c0: opt(Some(inputs), "c0", "inputs.c0")?,
        seq_lens,
        outputs,
        run: Run {
            model: text("model").map(|m| dir.join(m)),
            prefix: text("prefix"),
            cell: text("cell"),
        },
    })
}

fn array(v: &Value, what: &str) -> Result<Array, String> {
    let list = |key: &str| {
        v.get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| format!("`{what}` has no `{key}` list"))
    };
    let shape = list("shape")?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("`{what}.shape` holds a non-integer"))?;
    let data = list("data")?
        .iter()
        .map(Value::as_f64)
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("`{what}.data` holds a non-number"))?;
    let n: usize = shape.iter().product();
    if n != data.len() {
        return Err(format!(
            "`{what}`: shape {shape:?} implies {n} values, data has {}",
            data.len()
        ));
    }
    Ok(Array { shape, data })
}

/// How far `got` is from `want`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// Largest `|got - want|` (NaN if a value is NaN where the other is not).
    pub max_abs: f64,
    /// Elements outside the tolerance (or of the wrong count: all of them).
    pub outside: usize,
    pub len: usize,
}

/// Compares element by element with the golden tolerance.
pub fn compare(got: &[f32], want: &Array) -> Comparison {
    if got.len() != want.data.len() {
        return Comparison {
            max_abs: f64::INFINITY,
            outside: want.data.len().max(got.len()),
            len: want.data.len(),
        };
    }
    let mut max_abs = 0.0f64;
    let mut outside = 0;
    for (&g, &w) in got.iter().zip(&want.data) {
        let d = (f64::from(g) - w).abs();
        if d.is_nan() || d > ATOL + RTOL * w.abs() {
            outside += 1;
        }
        max_abs = if d.is_nan() || max_abs.is_nan() {
            f64::NAN
        } else {
            max_abs.max(d)
        };
    }
    Comparison {
        max_abs,
        outside,
        len: want.data.len(),
    }
}
