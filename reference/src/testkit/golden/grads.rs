//! Golden gradients: the `grads` section of a case (PyTorch autograd in float64, see
//! `testdata/golden/README.md`), its loader, and the runner that compares an
//! implementation's training forward and backward with it.
//!
//! Every `*.json` of the golden directory and of its `grads_onnx/` subdirectory that
//! has a `grads` section is a gradient case. A case whose forward configuration this
//! version cannot load is skipped only if [`UNSUPPORTED`] names it, with the reason;
//! anything else that fails to load is an error.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{import_onnx, OnnxWeights, OwnedLayerWeights, OwnedOnnxWeights};

use super::parse::{data, get, opt_data, read_json};
use super::{load_case, worst_mismatch, Case, Tolerance};

/// The gradient cases this version does not run, by name, with the reason: their
/// forward variant is not implemented yet. The golden gradient tests assert that
/// exactly these are skipped in the project's own directory, so an entry must go
/// when its variant lands.
pub const UNSUPPORTED: &[(&str, &str)] = &[];

/// The `grads` section of a case, in PyTorch layout (ONNX cases' `dW`, `dR`, `dB`,
/// `dP` permuted like the weights), time-major like the case.
#[derive(Clone, Debug)]
pub struct Grads {
    /// `∂L/∂y` `[T, B, D*H_out]`.
    pub dy: Vec<f64>,
    /// `∂L/∂h_n` `[L*D, B, H_out]`.
    pub dh_n: Vec<f64>,
    /// `∂L/∂c_n` `[L*D, B, H]` (LSTM; empty otherwise).
    pub dc_n: Vec<f64>,
    /// Expected `∂L/∂x` `[T, B, I]`.
    pub dx: Vec<f64>,
    /// Expected `∂L/∂h0`.
    pub dh0: Vec<f64>,
    /// Expected `∂L/∂c0` (LSTM; empty otherwise).
    pub dc0: Vec<f64>,
    /// Expected parameter gradients, one set per layer and direction (PyTorch layout;
    /// the parts the weights have).
    pub weights: Vec<OwnedLayerWeights<f64>>,
    /// For ONNX cases, the file's own `dW`, `dR`, `dB`, `dP` (ONNX layout).
    pub onnx: Option<OwnedOnnxWeights<f64>>,
}

/// A golden case with gradients.
#[derive(Clone, Debug)]
pub struct GradCase {
    /// The forward case (weights, inputs, expected outputs).
    pub case: Case,
    /// Its gradients.
    pub grads: Grads,
}

/// What [`load_grad_cases`] found.
#[derive(Debug)]
pub struct GradCases {
    /// The cases this version runs.
    pub cases: Vec<GradCase>,
    /// Names of the cases skipped because [`UNSUPPORTED`] lists them.
    pub skipped: Vec<String>,
}

/// Loads every gradient case of `dir` and `dir/grads_onnx`, sorted by path. Panics on a
/// malformed file, on a file that fails to load without being listed in
/// [`UNSUPPORTED`], and when no case has gradients.
pub fn load_grad_cases(dir: &Path) -> GradCases {
    let mut paths = json_files(dir);
    let sub = dir.join("grads_onnx");
    if sub.is_dir() {
        paths.extend(json_files(&sub));
    }
    paths.sort();
    let mut out = GradCases {
        cases: Vec::new(),
        skipped: Vec::new(),
    };
    let mut errors = Vec::new();
    for p in &paths {
        let name = p
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        match load_grad_case(p) {
            Ok(Some(c)) => out.cases.push(c),
            Ok(None) => {}
            Err(_) if UNSUPPORTED.iter().any(|(n, _)| *n == name) => out.skipped.push(name),
            Err(e) => errors.push(format!("  {}: {e}", p.display())),
        }
    }
    assert!(
        errors.is_empty(),
        "malformed golden gradient case file(s):\n{}",
        errors.join("\n")
    );
    assert!(
        !out.cases.is_empty(),
        "no golden case in {} (or its grads_onnx/) has a `grads` section: refusing to pass by testing nothing",
        dir.display()
    );
    out
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read the golden directory {} ({e})", dir.display()));
    entries
        .map(|e| e.expect("reading a directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .collect()
}

/// Loads one file: `None` if it has no `grads` section.
pub fn load_grad_case(path: &Path) -> Result<Option<GradCase>, String> {
    let v = read_json(path)?;
    let Some(g) = v.get("grads").filter(|g| !g.is_null()) else {
        return Ok(None);
    };
    let case = load_case(path)?;
    let grads = parse_grads(g, &case).map_err(|e| format!("grads: {e}"))?;
    Ok(Some(GradCase { case, grads }))
}

fn parse_grads(g: &Value, case: &Case) -> Result<Grads, String> {
    let cfg = &case.cfg;
    let (t, b) = (case.shape.steps, case.shape.batch);
    let (nd, h, ho, gh) = (
        cfg.num_directions(),
        cfg.hidden_size,
        cfg.output_size(),
        cfg.gates() * cfg.hidden_size,
    );
    let sets = cfg.num_weight_sets();
    let lstm = cfg.cell.has_cell_state();
    let state = |key: &str, width: usize| data(get(g, key)?, key, &[sets, b, width]);
    let dy = data(get(g, "dy")?, "dy", &[t, b, nd * ho])?;
    let dx = data(get(g, "dx")?, "dx", &[t, b, cfg.input_size])?;
    let (dh_n, dh0) = (state("dh_n", ho)?, state("dh0", ho)?);
    let (dc_n, dc0) = if lstm {
        (state("dc_n", h)?, state("dc0", h)?)
    } else {
        (Vec::new(), Vec::new())
    };
    let dw = get(g, "dweights")?;
    let (weights, onnx) = if case.onnx {
        let i = cfg.input_size;
        let o = OwnedOnnxWeights {
            w: data(get(dw, "dW")?, "dW", &[nd, gh, i])?,
            r: data(get(dw, "dR")?, "dR", &[nd, gh, h])?,
            b: opt_data(dw, "dB", "dB", &[nd, 2 * gh])?,
            p: opt_data(dw, "dP", "dP", &[nd, 3 * h])?,
        };
        let view = OnnxWeights {
            w: &o.w,
            r: &o.r,
            b: o.b.as_deref(),
            p: o.p.as_deref(),
        };
        let sets = import_onnx(cfg, view).map_err(|e| format!("dweights: {e}"))?;
        (sets, Some(o))
    } else {
        let list = dw.as_array().ok_or("`dweights` is not a list")?;
        if list.len() != sets {
            return Err(format!(
                "`dweights` has {} sets, expected {sets}",
                list.len()
            ));
        }
        let mut out = Vec::new();
        for (k, s) in list.iter().enumerate() {
            let il = cfg.layer_input_size(k / nd);
            let name = |p: &str| format!("dweights[{k}].{p}");
            out.push(OwnedLayerWeights {
                w_ih: data(get(s, "dw_ih")?, &name("dw_ih"), &[gh, il])?,
                w_hh: data(get(s, "dw_hh")?, &name("dw_hh"), &[gh, ho])?,
                b_ih: opt_data(s, "db_ih", &name("db_ih"), &[gh])?,
                b_hh: opt_data(s, "db_hh", &name("db_hh"), &[gh])?,
                w_hr: opt_data(s, "dw_hr", &name("dw_hr"), &[ho, h])?,
                peephole: opt_data(s, "dpeephole", &name("dpeephole"), &[3 * h])?,
                layer_norm: None,
            });
        }
        (out, None)
    };
    // Same parts as the weights: a gradient for every parameter, none for others.
    for (k, (gw, w)) in weights.iter().zip(&case.weights).enumerate() {
        let parts = |w: &OwnedLayerWeights<f64>| {
            [
                w.b_ih.is_some(),
                w.b_hh.is_some(),
                w.w_hr.is_some(),
                w.peephole.is_some(),
            ]
        };
        if parts(gw) != parts(w) {
            return Err(format!(
                "dweights[{k}] has parts {:?} (b_ih, b_hh, w_hr, peephole), the weights {:?}",
                parts(gw),
                parts(w)
            ));
        }
    }
    // The upstream gradients are float32 numbers printed with 9 significant digits
    // (as the inputs): recover them exactly (see `parse`).
    let f32_exact =
        |v: Vec<f64>| -> Vec<f64> { v.into_iter().map(|x| f64::from(x as f32)).collect() };
    Ok(Grads {
        dy: f32_exact(dy),
        dh_n: f32_exact(dh_n),
        dc_n: f32_exact(dc_n),
        dx,
        dh0,
        dc0,
        weights,
        onnx,
    })
}

/// What an implementation returns for a gradient case: the training forward's outputs
/// (`y`, `h_n`, `c_n`) and the gradients (`dx`, `dh0`, `dc0`, and every parameter's in
/// PyTorch layout), all widened to `f64`.
#[derive(Clone, Debug)]
pub struct GradOutputs {
    /// `(y, h_n, c_n)` of the forward that preceded the backward (`None`: not checked).
    pub forward: Option<(Vec<f64>, Vec<f64>, Vec<f64>)>,
    /// `∂L/∂x`.
    pub dx: Vec<f64>,
    /// `∂L/∂h0`.
    pub dh0: Vec<f64>,
    /// `∂L/∂c0` (LSTM; empty otherwise).
    pub dc0: Vec<f64>,
    /// Parameter gradients in PyTorch layout.
    pub weights: Vec<OwnedLayerWeights<f64>>,
}

/// Every array of a weight set with its name (absent parts skipped).
pub fn named_parts<T>(w: &OwnedLayerWeights<T>) -> Vec<(&'static str, &[T])> {
    let mut v = vec![("w_ih", &w.w_ih[..]), ("w_hh", &w.w_hh[..])];
    for (n, p) in [
        ("b_ih", &w.b_ih),
        ("b_hh", &w.b_hh),
        ("w_hr", &w.w_hr),
        ("peephole", &w.peephole),
        ("layer_norm", &w.layer_norm),
    ] {
        if let Some(p) = p {
            v.push((n, &p[..]));
        }
    }
    v
}

/// Runs `f` on every case and compares its gradients (and forward outputs, when it
/// returns them) with the expected ones: gradients with `grad_tol`, forward outputs
/// with `fwd_tol.for_case(case)`. Panics after running all cases, naming `name`, every
/// failing file and output, and its worst element.
pub fn run_grads<F>(cases: &[GradCase], grad_tol: Tolerance, fwd_tol: Tolerance, name: &str, f: F)
where
    F: Fn(&GradCase) -> Result<GradOutputs, String>,
{
    assert!(!cases.is_empty(), "{name}: no golden gradient case to run");
    let mut report = String::new();
    let mut failed = 0;
    for gc in cases {
        let (case, want) = (&gc.case, &gc.grads);
        let lines = match f(gc) {
            Err(e) => vec![format!("returned an error: {e}")],
            Ok(got) => grad_mismatches(case, want, &got, grad_tol, fwd_tol),
        };
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
        "{name}: {failed} of {} golden gradient case(s) failed (gradients: atol {:e}, rtol {:e}):\n{report}",
        cases.len(),
        grad_tol.atol,
        grad_tol.rtol
    );
    eprintln!("{name}: all {} golden gradient cases passed", cases.len());
}

/// One line per output of `got` that fails its expected value.
fn grad_mismatches(
    case: &Case,
    want: &Grads,
    got: &GradOutputs,
    grad_tol: Tolerance,
    fwd_tol: Tolerance,
) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some((y, h_n, c_n)) = &got.forward {
        let t = fwd_tol.for_case(case);
        for (n, g, w) in [
            ("y", y, &case.y),
            ("h_n", h_n, &case.h_n),
            ("c_n", c_n, &case.c_n),
        ] {
            lines.extend(mismatch_line(n, g, w, t));
        }
    }
    for (n, g, w) in [
        ("dx", &got.dx, &want.dx),
        ("dh0", &got.dh0, &want.dh0),
        ("dc0", &got.dc0, &want.dc0),
    ] {
        lines.extend(mismatch_line(n, g, w, grad_tol));
    }
    if got.weights.len() != want.weights.len() {
        lines.push(format!(
            "{} gradient sets, expected {}",
            got.weights.len(),
            want.weights.len()
        ));
    }
    for (k, (g, w)) in got.weights.iter().zip(&want.weights).enumerate() {
        let (gp, wp) = (named_parts(g), named_parts(w));
        let names = |p: &[(&'static str, &[f64])]| p.iter().map(|p| p.0).collect::<Vec<_>>();
        if names(&gp) != names(&wp) {
            lines.push(format!(
                "set {k}: parts {:?}, expected {:?}",
                names(&gp),
                names(&wp)
            ));
            continue;
        }
        for ((n, g), (_, w)) in gp.iter().zip(&wp) {
            lines.extend(mismatch_line(&format!("d{n}[{k}]"), g, w, grad_tol));
        }
    }
    lines
}

/// A description of how `got` fails `want` under `tol`, if it does.
fn mismatch_line(out: &str, got: &[f64], want: &[f64], tol: Tolerance) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!(
            "{out}: {} values, expected {}",
            got.len(),
            want.len()
        ));
    }
    worst_mismatch(got, want, tol).map(|m| {
        format!(
            "{out}: {} of {} values out of tolerance; worst at index {}: got {:e}, want {:e} (|diff| {:e} > allowed {:e})",
            m.bad,
            want.len(),
            m.worst,
            m.got,
            m.want,
            (m.got - m.want).abs(),
            m.allowed
        )
    })
}
