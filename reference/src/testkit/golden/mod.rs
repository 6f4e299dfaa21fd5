//! Golden-vector cases: loading the JSON files described in `testdata/golden/README.md`
//! and comparing an implementation's outputs with them.
//!
//! ```no_run
//! use rnn_reference::testkit::golden::{golden_dir, load_all, run_all, Tolerance};
//!
//! let cases = load_all(&golden_dir());
//! run_all(&cases, Tolerance::F32, "my kernels (f32)", |case| {
//!     // ... run `case` and return (y, h_n, c_n) widened to f64
//! #   Ok((case.y.clone(), case.h_n.clone(), case.c_n.clone()))
//! });
//! ```

mod grads;
mod parse;
mod quant;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::{OwnedLayerWeights, RnnConfig, SeqShape};

use super::convert::{to_f32, weights_f32};
use super::problem::Problem;

pub use grads::{
    load_grad_case, load_grad_cases, named_parts, run_grads, GradCase, GradCases, GradOutputs,
    Grads, UNSUPPORTED,
};
pub use parse::load_case;
pub use quant::{load_all_quant, load_quant_case, quant_golden_dir, QuantCase};

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

impl AsRef<Case> for Case {
    fn as_ref(&self) -> &Case {
        self
    }
}

impl Case {
    /// The weights rounded to `f32` (exact for the values of the golden files, which
    /// are `f32` numbers).
    pub fn weights_f32(&self) -> Vec<OwnedLayerWeights<f32>> {
        self.weights
            .iter()
            .map(|w| weights_f32(&w.view()))
            .collect()
    }

    /// The case as an `f32` [`Problem`] (time-major, `h0` always given, `c0` for an
    /// LSTM; `x_scale` the largest |x|, at least 1; `gain` 1, not measured).
    pub fn problem_f32(&self) -> Problem {
        Problem {
            cfg: self.cfg,
            shape: self.shape,
            weights: self.weights_f32(),
            x: to_f32(&self.x),
            h0: Some(to_f32(&self.h0)),
            c0: self.cfg.cell.has_cell_state().then(|| to_f32(&self.c0)),
            seq_lens: self.seq_lens.clone(),
            attention: None,
            x_scale: self.x.iter().fold(1.0f64, |m, v| m.max(v.abs())) as f32,
            gain: 1.0,
        }
    }
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
/// `testdata/golden`.
pub fn golden_dir() -> PathBuf {
    match std::env::var_os("RNN_GOLDEN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("testdata")
            .join("golden"),
    }
}

/// The cases of `variants/` (ONNX activations and `input_forget`) this version does
/// not run, by name, with the reason. A test asserts that exactly these are skipped in
/// the project's own directory, so an entry must go when its variant lands.
pub const UNSUPPORTED_VARIANTS: &[(&str, &str)] = &[];

/// Loads every `*.json` of `dir` and of its `variants/` subdirectory (if any), sorted
/// by path. Panics with a clear message if the directory cannot be read, holds no
/// case, or a file is malformed; a `variants/` case that fails to load is skipped only
/// if [`UNSUPPORTED_VARIANTS`] lists it ([`load_all_with_skips`] names them).
pub fn load_all(dir: &Path) -> Vec<Case> {
    load_all_with_skips(dir).0
}

/// [`load_all`], and the names of the `variants/` cases it skipped.
pub fn load_all_with_skips(dir: &Path) -> (Vec<Case>, Vec<String>) {
    let mut cases = load_files(dir, load_case);
    let mut skipped = Vec::new();
    let sub = dir.join("variants");
    if sub.is_dir() {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&sub)
            .unwrap_or_else(|e| panic!("cannot read {} ({e})", sub.display()))
            .map(|e| e.expect("reading a directory entry").path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        let mut errors = Vec::new();
        for p in &paths {
            let name = p.file_stem().unwrap_or_default().to_string_lossy();
            match load_case(p) {
                Ok(c) => cases.push(c),
                Err(_) if UNSUPPORTED_VARIANTS.iter().any(|(n, _)| *n == name) => {
                    skipped.push(name.into_owned())
                }
                Err(e) => errors.push(format!("  {}: {e}", p.display())),
            }
        }
        assert!(
            errors.is_empty(),
            "malformed golden case file(s):\n{}",
            errors.join("\n")
        );
    }
    (cases, skipped)
}

/// Every `*.json` of `dir` through `load`, sorted by file name (see [`load_all`]).
fn load_files<C>(dir: &Path, load: fn(&Path) -> Result<C, String>) -> Vec<C> {
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
        match load(p) {
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

/// The outcome of comparing one output.
struct Mismatch {
    bad: usize,
    worst: usize,
    got: f64,
    want: f64,
    allowed: f64,
}

fn worst_mismatch(got: &[f64], want: &[f64], tol: Tolerance) -> Option<Mismatch> {
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
pub fn run_all<C, F>(cases: &[C], tol: Tolerance, name: &str, f: F)
where
    C: AsRef<Case>,
    F: Fn(&C) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>), String>,
{
    assert!(!cases.is_empty(), "{name}: no golden case to run");
    let mut report = String::new();
    let mut failed = 0;
    for item in cases {
        let case = item.as_ref();
        let tol = tol.for_case(case);
        let mut lines = Vec::new();
        match f(item) {
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
                    } else if let Some(m) = worst_mismatch(got, want, tol) {
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
