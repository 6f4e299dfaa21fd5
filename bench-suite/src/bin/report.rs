//! `report`: one command that times the rnn-kernels forward pass on the bench-suite
//! shapes and prints, per cell, configuration and element type, ms per sequence, the
//! speedup of half precision over the crate's own f32, GFLOP/s, % of the measured FMA
//! peak, speedups over the reference and the unfused baseline, and the max error
//! against the reference.
//!
//! ```text
//! cargo run --release -p rnn-bench-suite --bin report -- [--quick] [--threads N]
//!     [--isa avx512bf16|avx512|avx2|portable] [--dtype f32,f16,bf16] [--cells lstm,gru,rnn]
//!     [--configs BxHxIxT,...] [--json]
//! ```
//!
//! The path measured is `--isa`, else `RNN_KERNELS_ISA` (as for the kernels' own
//! default), else the best this CPU has; the header line names it. An unknown or
//! unavailable name in either is an error (exit status 2), never a silent fallback.
//!
//! `--dtype f16` / `bf16`: weights (and biases) stored in the half type, `x` converted
//! to it once before timing, `y` written in it. Several dtypes run f32 first, so half
//! rows get their `× f32` speedup from the same run.
//!
//! With `--json`, stdout carries only JSON lines (keys `impl`, `isa`, `dtype`, `cell`,
//! `batch`, `hidden`, `input`, `steps`, `threads`, `s_per_seq`, `gflops`, plus
//! `max_err` and `speedup_vs_f32`, `null` unless f32 ran too); progress goes to
//! stderr.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rnn_bench_suite::{
    flops, fma_peak_gflops, max_abs_diff, time_median, to_f32, BenchConfig, Cell, Problem, Repeats,
    Unfused, UnfusedWorkspace, CELLS, CONFIGS,
};
use rnn_kernels::half::{bf16, f16};
use rnn_kernels::{
    Element, Isa, PackedRnn, SeqShape, SequenceInput, SequenceOutputMut, Workspace, ISA_ENV,
};

const USAGE: &str = "\
usage: report [--quick] [--threads N] [--isa avx512bf16|avx512|avx2|portable] [--dtype f32,f16,bf16]
              [--cells lstm,gru,rnn] [--configs BxHxIxT,...] [--json]

  --quick          fewer repeats (min 3 runs / 0.2 s per case); f32 run < 1 minute,
                   --dtype f32,f16,bf16 about 2 minutes
  --threads N      rayon threads for the kernels and the baseline (default 1)
  --isa NAME       kernel path (default: $RNN_KERNELS_ISA if set, else the best this CPU
                   has; an unknown or unavailable name in either is an error)
  --dtype LIST     comma-separated subset of f32,f16,bf16 (default f32); f16 / bf16:
                   weights, x and y in the half type; f32 always runs first
  --cells LIST     comma-separated subset of lstm,gru,rnn (default all)
  --configs LIST   comma-separated BxHxIxT shapes (default: the six bench-suite shapes)
  --json           one JSON object per line on stdout, progress on stderr";

// ---------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------

/// Element type of the kernels under test (weights, `x` and `y`). To add one: a
/// variant here, its name in `name` / `parse`, and an arm in `build_kernels` and
/// `reference_on`. Variants are in run order (f32 first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Dtype {
    F32,
    F16,
    Bf16,
}

impl Dtype {
    fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
        }
    }

    fn parse(s: &str) -> Option<Dtype> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Some(Dtype::F32),
            "f16" | "fp16" | "half" | "float16" => Some(Dtype::F16),
            "bf16" | "bfloat16" => Some(Dtype::Bf16),
            _ => None,
        }
    }
}

struct Opts {
    quick: bool,
    threads: usize,
    isa: Isa,
    /// Sorted, deduplicated: f32 (if requested) first.
    dtypes: Vec<Dtype>,
    cells: Vec<Cell>,
    configs: Vec<BenchConfig>,
    json: bool,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Opts>, String> {
    let mut o = Opts {
        quick: false,
        threads: 1,
        isa: Isa::Portable, // set below: --isa, else RNN_KERNELS_ISA, else the best
        dtypes: vec![Dtype::F32],
        cells: CELLS.to_vec(),
        configs: CONFIGS.to_vec(),
        json: false,
    };
    let mut isa_flag = None;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--quick" => o.quick = true,
            "--json" => o.json = true,
            "--threads" => {
                let v = value("--threads")?;
                o.threads =
                    v.parse().ok().filter(|&n: &usize| n > 0).ok_or_else(|| {
                        format!("--threads: expected a positive integer, got {v:?}")
                    })?;
            }
            "--isa" => {
                let v = value("--isa")?;
                let isa: Isa = v.parse().map_err(|e| format!("--isa: {e}"))?;
                isa_flag = Some(isa.check().map_err(|e| format!("--isa: {e}"))?);
            }
            "--dtype" => {
                let v = value("--dtype")?;
                o.dtypes = v
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| {
                        Dtype::parse(s).ok_or_else(|| {
                            format!("--dtype: expected f32, f16 or bf16 (or a list), got {s:?}")
                        })
                    })
                    .collect::<Result<_, _>>()?;
                o.dtypes.sort();
                o.dtypes.dedup();
            }
            "--cells" => {
                let v = value("--cells")?;
                o.cells = v
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| {
                        Cell::parse(s)
                            .ok_or_else(|| format!("--cells: unknown cell {s:?} (lstm, gru, rnn)"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--configs" | "--shapes" => {
                let v = value("--configs")?;
                o.configs = v
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| {
                        BenchConfig::parse(s).ok_or_else(|| {
                            format!("--configs: expected BxHxIxT (e.g. 1x256x256x100), got {s:?}")
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.cells.is_empty() || o.configs.is_empty() || o.dtypes.is_empty() {
        return Err("nothing to run (empty --cells, --configs or --dtype)".into());
    }
    o.isa = resolve_isa(isa_flag, std::env::var(ISA_ENV).ok().as_deref())?;
    Ok(Some(o))
}

/// The path to measure: `--isa` if given, else `RNN_KERNELS_ISA` (the kernels'
/// process default) if set, else the best this CPU has. A set variable must name an
/// available path even when `--isa` overrides it: a typo there is reported, never
/// silently replaced by another path.
fn resolve_isa(flag: Option<Isa>, env: Option<&str>) -> Result<Isa, String> {
    let from_env = match env.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => Some(
            v.parse::<Isa>()
                .and_then(Isa::check)
                .map_err(|e| format!("{ISA_ENV}={v}: {e}"))?,
        ),
        None => None,
    };
    match (flag, from_env) {
        (Some(f), Some(e)) if f != e => {
            eprintln!("report: --isa {f} overrides {ISA_ENV}={e}");
            Ok(f)
        }
        (Some(f), _) => Ok(f),
        (None, Some(e)) => Ok(e),
        (None, None) => Ok(Isa::best()),
    }
}

// ---------------------------------------------------------------------------------
// The kernels under test, per dtype
// ---------------------------------------------------------------------------------

/// The rnn-kernels forward pass on one problem, in one dtype.
trait KernelRun {
    /// Runs the first `steps` steps of the problem's input from zero states.
    fn run(&mut self, steps: usize) -> Result<(), String>;
    /// `y` of the last `run(steps)`, widened to f32 `[steps, B, H]` (error check).
    fn output(&self, steps: usize) -> Vec<f32>;
}

/// Weights packed as `T`, input `x` held in `T` (converted once, here), `y` in `T`.
struct Kernels<T: Element> {
    batch: usize,
    step_in: usize,
    step_out: usize,
    rnn: PackedRnn<T>,
    ws: Workspace,
    x: Vec<T>,
    y: Vec<T>,
}

impl<T: Element> Kernels<T> {
    fn new(p: &Problem, isa: Isa) -> Result<Self, String> {
        // A framework holding T tensors: weights, biases and x all in T.
        let tp = p.typed::<T>();
        let rnn = PackedRnn::<T>::pack(&p.cfg, &[tp.weights()])
            .and_then(|r| r.with_isa(Some(isa)))
            .map_err(|e| e.to_string())?;
        let (b, s) = (p.shape.batch, p.shape.steps);
        Ok(Kernels {
            batch: b,
            step_in: b * p.shape.input,
            step_out: b * p.shape.hidden,
            rnn,
            ws: Workspace::new(),
            x: tp.x,
            y: vec![T::default(); s * b * p.shape.hidden],
        })
    }
}

impl<T: Element> KernelRun for Kernels<T> {
    fn run(&mut self, steps: usize) -> Result<(), String> {
        self.rnn
            .forward(
                &mut self.ws,
                SeqShape::new(steps, self.batch),
                SequenceInput::new(&self.x[..steps * self.step_in]),
                SequenceOutputMut {
                    y: &mut self.y[..steps * self.step_out],
                    h_n: None,
                    c_n: None,
                },
            )
            .map_err(|e| e.to_string())
    }

    fn output(&self, steps: usize) -> Vec<f32> {
        to_f32(&self.y[..steps * self.step_out])
    }
}

fn build_kernels(dtype: Dtype, p: &Problem, isa: Isa) -> Result<Box<dyn KernelRun>, String> {
    Ok(match dtype {
        Dtype::F32 => Box::new(Kernels::<f32>::new(p, isa)?),
        Dtype::F16 => Box::new(Kernels::<f16>::new(p, isa)?),
        Dtype::Bf16 => Box::new(Kernels::<bf16>::new(p, isa)?),
    })
}

/// `y` of the f32 reference over the first `k` steps of `p`.
fn reference_y(p: &Problem, k: usize) -> Result<Vec<f32>, String> {
    rnn_reference::forward::<f32>(
        &p.cfg,
        &[p.weights()],
        SeqShape::new(k, p.shape.batch),
        SequenceInput::new(p.x_prefix(k)),
    )
    .map(|o| o.y)
    .map_err(|e| format!("reference: {e}"))
}

/// The oracle of a `dtype` run: the f32 reference on the weights, biases and inputs
/// rounded to `dtype` (exactly the values the kernels see).
fn reference_on(dtype: Dtype, p: &Problem, k: usize) -> Result<Vec<f32>, String> {
    match dtype {
        Dtype::F32 => reference_y(p, k),
        Dtype::F16 => reference_y(&p.rounded::<f16>(), k),
        Dtype::Bf16 => reference_y(&p.rounded::<bf16>(), k),
    }
}

// ---------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------

/// How hard to try, per case.
struct Effort {
    /// Kernels.
    kernel: Repeats,
    /// Unfused baseline.
    unfused: Repeats,
    /// Steps of the reference / error-check run (the reference is timed on them and
    /// scaled to the full sequence: its cost per step is constant).
    ref_steps: usize,
    /// FMA probe duration.
    probe: Duration,
}

impl Effort {
    fn new(quick: bool) -> Self {
        if quick {
            Effort {
                kernel: Repeats {
                    min_runs: 3,
                    min_time: Duration::from_millis(200),
                    max_runs: 50,
                    max_time: Duration::from_secs(2),
                },
                unfused: Repeats {
                    min_runs: 3,
                    min_time: Duration::from_millis(100),
                    max_runs: 20,
                    max_time: Duration::from_secs(1),
                },
                ref_steps: 2,
                probe: Duration::from_millis(50),
            }
        } else {
            Effort {
                kernel: Repeats {
                    min_runs: 10,
                    min_time: Duration::from_millis(1000),
                    max_runs: 500,
                    max_time: Duration::from_secs(10),
                },
                unfused: Repeats {
                    min_runs: 5,
                    min_time: Duration::from_millis(500),
                    max_runs: 200,
                    max_time: Duration::from_secs(5),
                },
                ref_steps: 5,
                probe: Duration::from_millis(100),
            }
        }
    }
}

/// What every dtype of one (cell, shape) shares: the problem, the f32 reference
/// (output and time) and the unfused f32 baseline's time.
struct Baseline {
    p: Problem,
    ref_steps: usize,
    /// f32 reference `y` over the first `ref_steps` steps, unrounded problem.
    want_f32: Vec<f32>,
    ref_s: f64,
    unfused_s: f64,
}

fn measure_baseline(e: &Effort, cell: Cell, shape: BenchConfig) -> Result<Baseline, String> {
    let p = Problem::new(cell, shape);
    let (t, b) = (shape.steps, shape.batch);
    let k = e.ref_steps.min(t);

    // Error check (and reference timing) on the first k steps.
    let t0 = Instant::now();
    let want_f32 = reference_y(&p, k)?;
    let first = t0.elapsed();
    // A cheap reference run is repeated (its first run pays allocations and page
    // faults); an expensive one is timed once, which is plenty at its length.
    let ref_k = if first < Duration::from_millis(50) {
        let reps = Repeats {
            min_runs: 3,
            min_time: Duration::from_millis(50),
            max_runs: 50,
            max_time: Duration::from_millis(200),
        };
        time_median(reps, || {
            std::hint::black_box(reference_y(&p, k)).ok();
        })
    } else {
        first.as_secs_f64()
    };
    let ref_s = ref_k * t as f64 / k as f64;

    // Unfused baseline, whole sequence.
    let base = Unfused::new(&p);
    let mut ws = UnfusedWorkspace::new();
    let mut y = vec![0.0f32; p.y_len(t)];
    let unfused_s = time_median(e.unfused, || base.forward(&mut ws, t, b, &p.x, &mut y));

    Ok(Baseline {
        p,
        ref_steps: k,
        want_f32,
        ref_s,
        unfused_s,
    })
}

struct Row {
    cell: Cell,
    dtype: Dtype,
    shape: BenchConfig,
    s_per_seq: f64,
    gflops: f64,
    /// f32 time ÷ this time, when f32 of the same case ran in this run (half rows).
    vs_f32: Option<f64>,
    unfused_s: f64,
    ref_s: f64,
    ref_steps: usize,
    max_err: f32,
}

fn measure(o: &Opts, e: &Effort, base: &Baseline, dtype: Dtype) -> Result<Row, String> {
    let p = &base.p;
    let (t, k) = (p.shape.steps, base.ref_steps);
    let want = match dtype {
        Dtype::F32 => Cow::Borrowed(&base.want_f32),
        _ => Cow::Owned(reference_on(dtype, p, k)?),
    };

    let mut kern = build_kernels(dtype, p, o.isa)?;
    kern.run(k)?;
    let max_err = max_abs_diff(&kern.output(k), &want);

    // Kernels, whole sequence.
    let mut failed = None;
    let s_per_seq = time_median(e.kernel, || {
        if let Err(err) = kern.run(t) {
            failed.get_or_insert(err);
        }
    });
    if let Some(err) = failed {
        return Err(format!("rnn-kernels forward ({}): {err}", dtype.name()));
    }
    if kern.output(t).iter().any(|v| !v.is_finite()) {
        return Err(format!(
            "rnn-kernels forward ({}) produced non-finite outputs",
            dtype.name()
        ));
    }

    Ok(Row {
        cell: p.cell,
        dtype,
        shape: p.shape,
        s_per_seq,
        gflops: flops(p.cell, &p.shape) as f64 / s_per_seq / 1e9,
        vs_f32: None,
        unfused_s: base.unfused_s,
        ref_s: base.ref_s,
        ref_steps: k,
        max_err,
    })
}

/// A finite f64 as a JSON number, else `null`.
fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

fn json_line(o: &Opts, r: &Row) -> String {
    format!(
        "{{\"impl\": \"rnn-kernels\", \"isa\": \"{}\", \"dtype\": \"{}\", \"cell\": \"{}\", \
         \"batch\": {}, \"hidden\": {}, \"input\": {}, \"steps\": {}, \"threads\": {}, \
         \"s_per_seq\": {}, \"gflops\": {}, \"max_err\": {}, \"speedup_vs_f32\": {}}}",
        o.isa.name(),
        r.dtype.name(),
        r.cell.name(),
        r.shape.batch,
        r.shape.hidden,
        r.shape.input,
        r.shape.steps,
        o.threads,
        json_num(r.s_per_seq),
        json_num(r.gflops),
        json_num(f64::from(r.max_err)),
        json_num(r.vs_f32.unwrap_or(f64::NAN)),
    )
}

const TABLE_HEADER: &str = "cell  | dtype |  B   |  H   |  I   |  T  |   ms/seq  |  × f32 \
     | GFLOP/s | % peak |  × ref  | × unfused | max err";

fn table_row(r: &Row, peak: f64) -> String {
    let vs_f32 = r.vs_f32.map_or("-".to_string(), |v| format!("{v:.2}"));
    format!(
        "{:<5} | {:<5} | {:>4} | {:>4} | {:>4} | {:>3} | {:>9.3} | {:>6} | {:>7.1} | {:>5.1}% \
         | {:>7.1} | {:>9.2} | {:.1e}",
        r.cell.name(),
        r.dtype.name(),
        r.shape.batch,
        r.shape.hidden,
        r.shape.input,
        r.shape.steps,
        r.s_per_seq * 1e3,
        vs_f32,
        r.gflops,
        100.0 * r.gflops / peak,
        r.ref_s / r.s_per_seq,
        r.unfused_s / r.s_per_seq,
        r.max_err,
    )
}

fn run(o: &Opts) -> Result<(), String> {
    let e = Effort::new(o.quick);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(o.threads)
        .build()
        .map_err(|e| format!("thread pool: {e}"))?;
    let started = Instant::now();
    let progress = |msg: &str| {
        if o.json {
            eprintln!("[report] {msg}");
        }
    };
    let dtypes: Vec<&str> = o.dtypes.iter().map(|d| d.name()).collect();
    let half = o.dtypes.iter().any(|&d| d != Dtype::F32);

    let per_core = fma_peak_gflops(o.isa, e.probe)
        .ok_or_else(|| format!("FMA probe: {} unavailable on this CPU", o.isa))?;
    let peak = per_core * o.threads as f64;
    let mut head = String::new();
    let _ = writeln!(
        head,
        "rnn-kernels report: dtype {}, isa {}, {} thread(s){}",
        dtypes.join(","),
        o.isa,
        o.threads,
        if o.quick { ", --quick" } else { "" }
    );
    let _ = writeln!(
        head,
        "FMA peak ({}, measured): {per_core:.1} GFLOP/s per core × {} thread(s) = {peak:.1} GFLOP/s",
        o.isa, o.threads
    );
    if half {
        let _ = writeln!(
            head,
            "f16/bf16 rows: weights and biases stored in the half type, x converted to it once \
             before timing, y written in it\n(f32 arithmetic inside). Their max err is against \
             the f32 reference run on the same half-rounded weights, biases and\ninputs, so it \
             includes the final rounding of y (up to |y|·2^-11 for f16, |y|·2^-8 for bf16) plus \
             the f32 compute error.\n× f32: the f32 row's time ÷ this row's time (> 1: faster \
             than the crate's own f32). × ref / × unfused: against the f32 reference / baseline."
        );
    }
    if o.json {
        eprint!("{head}");
    } else {
        print!("{head}");
        println!();
    }

    let stdout = std::io::stdout();
    let mut rows = Vec::new();
    for &cell in &o.cells {
        if !o.json {
            println!("{TABLE_HEADER}");
            println!("{}", "-".repeat(TABLE_HEADER.chars().count()));
        }
        for &shape in &o.configs {
            progress(&format!("{} {} baselines ...", cell.name(), shape.label()));
            let base = pool.install(|| measure_baseline(&e, cell, shape))?;
            let mut f32_s = None;
            for &dtype in &o.dtypes {
                progress(&format!(
                    "{} {} {} ...",
                    cell.name(),
                    shape.label(),
                    dtype.name()
                ));
                let mut r = pool.install(|| measure(o, &e, &base, dtype))?;
                if dtype == Dtype::F32 {
                    f32_s = Some(r.s_per_seq);
                } else {
                    r.vs_f32 = f32_s.map(|f| f / r.s_per_seq);
                }
                let line = if o.json {
                    json_line(o, &r)
                } else {
                    table_row(&r, peak)
                };
                let mut out = stdout.lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
                progress(&format!(
                    "{} {} {}: {:.3} ms/seq, {:.1} GFLOP/s, max err {:.1e}",
                    cell.name(),
                    shape.label(),
                    dtype.name(),
                    r.s_per_seq * 1e3,
                    r.gflops,
                    r.max_err
                ));
                rows.push(r);
            }
        }
        if !o.json {
            println!();
        }
    }

    let k = rows.iter().map(|r| r.ref_steps).max().unwrap_or(0);
    let notes = format!(
        "ms/seq: median over runs (min {} runs / {:.1} s per case). GFLOP/s: 2·T·B·G·H·(I+H) / time.\n\
         % peak: of the measured {} FMA peak × threads above.\n\
         × ref: the naive reference crate (f32), timed on the first {k} steps only (it is very \
         slow) and scaled by T/{k}.\n\
         × unfused: matrixmultiply sgemm X·W_ihᵀ + per-step sgemm h·W_hhᵀ + scalar gate pass \
         (candle/burn-style, f32), columns split over the same {} thread(s).\n\
         max err: max |y - y_ref| over the first {k} steps, same inputs{}.\n\
         total time {:.1} s",
        e.kernel.min_runs,
        e.kernel.min_time.as_secs_f64(),
        o.isa,
        o.threads,
        if half {
            " (half rows: reference on the half-rounded weights and inputs, see the header)"
        } else {
            ""
        },
        started.elapsed().as_secs_f64()
    );
    if o.json {
        eprintln!("{notes}");
    } else {
        println!("{notes}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("report: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("report: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dtypes(args: &[&str]) -> Result<Vec<Dtype>, String> {
        parse_args(args.iter().map(|s| s.to_string())).map(|o| o.unwrap().dtypes)
    }

    #[test]
    fn dtype_lists_parse_sorted_f32_first() {
        assert_eq!(dtypes(&[]).unwrap(), [Dtype::F32]);
        assert_eq!(dtypes(&["--dtype=bf16"]).unwrap(), [Dtype::Bf16]);
        assert_eq!(
            dtypes(&["--dtype", "bf16,f16,f32,bf16"]).unwrap(),
            [Dtype::F32, Dtype::F16, Dtype::Bf16]
        );
        assert!(dtypes(&["--dtype", "f32,f64"]).is_err());
        assert!(dtypes(&["--dtype", ","]).is_err());
    }

    #[test]
    fn isa_from_flag_then_environment_then_best() {
        assert_eq!(resolve_isa(None, None), Ok(Isa::best()));
        assert_eq!(resolve_isa(None, Some("")), Ok(Isa::best()));
        assert_eq!(resolve_isa(None, Some("portable")), Ok(Isa::Portable));
        assert_eq!(
            resolve_isa(Some(Isa::Portable), Some(Isa::best().name())),
            Ok(Isa::Portable)
        );
        let bogus = resolve_isa(None, Some("bogus")).unwrap_err();
        assert!(
            bogus.starts_with("RNN_KERNELS_ISA=bogus: instruction set `bogus`"),
            "{bogus}"
        );
        assert!(resolve_isa(Some(Isa::Portable), Some("bogus")).is_err());
        if let Some(missing) = Isa::ALL.iter().find(|i| !i.is_available()) {
            let e = resolve_isa(None, Some(missing.name())).unwrap_err();
            assert!(e.contains("unavailable"), "{e}");
        }
    }

    #[test]
    fn half_kernels_match_the_rounded_reference() {
        let p = Problem::new(Cell::Gru, BenchConfig::new(2, 24, 8, 3));
        for (dtype, tol) in [(Dtype::F32, 1e-5), (Dtype::F16, 2e-3), (Dtype::Bf16, 1e-2)] {
            let mut k = build_kernels(dtype, &p, Isa::best()).unwrap();
            k.run(3).unwrap();
            let want = reference_on(dtype, &p, 3).unwrap();
            let err = max_abs_diff(&k.output(3), &want);
            assert!(err < tol, "{}: {err}", dtype.name());
        }
    }
}
