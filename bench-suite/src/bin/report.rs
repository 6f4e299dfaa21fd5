//! `report`: one command that times the rnn-kernels forward pass on the bench-suite
//! shapes and prints, per cell and configuration, ms per sequence, GFLOP/s, % of the
//! measured FMA peak, speedups over the reference and the unfused baseline, and the
//! max error against the reference.
//!
//! ```text
//! cargo run --release -p rnn-bench-suite --bin report -- [--quick] [--threads N]
//!     [--isa avx512|avx2|portable] [--dtype f32|f16|bf16] [--cells lstm,gru,rnn]
//!     [--configs BxHxIxT,...] [--json]
//! ```
//!
//! With `--json`, stdout carries only JSON lines (keys `impl`, `isa`, `dtype`, `cell`,
//! `batch`, `hidden`, `input`, `steps`, `threads`, `s_per_seq`, `gflops`); progress
//! goes to stderr.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rnn_bench_suite::{
    flops, fma_peak_gflops, max_abs_diff, time_median, BenchConfig, Cell, Problem, Repeats,
    Unfused, UnfusedWorkspace, CELLS, CONFIGS,
};
use rnn_kernels::{Isa, PackedRnn, SeqShape, SequenceInput, SequenceOutputMut, Workspace};

const USAGE: &str = "\
usage: report [--quick] [--threads N] [--isa avx512|avx2|portable] [--dtype f32|f16|bf16]
              [--cells lstm,gru,rnn] [--configs BxHxIxT,...] [--json]

  --quick          fewer repeats (min 3 runs / 0.2 s per case); whole run < 1 minute
  --threads N      rayon threads for the kernels and the baseline (default 1)
  --isa NAME       kernel path (default: the best this CPU has)
  --dtype NAME     f32 (default); f16 / bf16 are accepted but not implemented yet
  --cells LIST     comma-separated subset of lstm,gru,rnn (default all)
  --configs LIST   comma-separated BxHxIxT shapes (default: the six bench-suite shapes)
  --json           one JSON object per line on stdout, progress on stderr";

// ---------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------

/// Element type of the kernels under test. To add one: a variant here, its name in
/// `name` / `parse`, and an arm in `build_kernels` returning its `KernelRun`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

    /// Whether rnn-kernels implements this dtype (checked before any work).
    fn check_implemented(self) -> Result<(), String> {
        match self {
            Dtype::F32 => Ok(()),
            Dtype::F16 | Dtype::Bf16 => Err(format!(
                "--dtype {}: half-precision kernels are not implemented yet in rnn-kernels \
                 (only f32 is); run with --dtype f32",
                self.name()
            )),
        }
    }
}

struct Opts {
    quick: bool,
    threads: usize,
    isa: Isa,
    dtype: Dtype,
    cells: Vec<Cell>,
    configs: Vec<BenchConfig>,
    json: bool,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Opts>, String> {
    let mut o = Opts {
        quick: false,
        threads: 1,
        isa: Isa::default_for_process().unwrap_or_else(|_| Isa::best()),
        dtype: Dtype::F32,
        cells: CELLS.to_vec(),
        configs: CONFIGS.to_vec(),
        json: false,
    };
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
                o.isa = isa.check().map_err(|e| format!("--isa: {e}"))?;
            }
            "--dtype" => {
                let v = value("--dtype")?;
                o.dtype = Dtype::parse(&v)
                    .ok_or_else(|| format!("--dtype: expected f32, f16 or bf16, got {v:?}"))?;
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
    if o.cells.is_empty() || o.configs.is_empty() {
        return Err("nothing to run (empty --cells or --configs)".into());
    }
    Ok(Some(o))
}

// ---------------------------------------------------------------------------------
// The kernels under test, per dtype
// ---------------------------------------------------------------------------------

/// The rnn-kernels forward pass on one problem, in one dtype.
trait KernelRun {
    /// Runs the first `steps` steps of the problem's input from zero states.
    fn run(&mut self, steps: usize) -> Result<(), String>;
    /// `y` of the last `run(steps)`, as f32 `[steps, B, H]` (for the error check).
    fn output(&self, steps: usize) -> Vec<f32>;
}

struct F32Kernels<'p> {
    p: &'p Problem,
    rnn: PackedRnn,
    ws: Workspace,
    y: Vec<f32>,
}

impl<'p> F32Kernels<'p> {
    fn new(p: &'p Problem, isa: Isa) -> Result<Self, String> {
        let rnn = PackedRnn::from_pytorch(&p.cfg, &[p.weights()])
            .and_then(|r| r.with_isa(Some(isa)))
            .map_err(|e| e.to_string())?;
        Ok(F32Kernels {
            p,
            rnn,
            ws: Workspace::new(),
            y: vec![0.0; p.y_len(p.shape.steps)],
        })
    }
}

impl KernelRun for F32Kernels<'_> {
    fn run(&mut self, steps: usize) -> Result<(), String> {
        let n = self.p.y_len(steps);
        self.rnn
            .forward(
                &mut self.ws,
                SeqShape::new(steps, self.p.shape.batch),
                SequenceInput::new(self.p.x_prefix(steps)),
                SequenceOutputMut {
                    y: &mut self.y[..n],
                    h_n: None,
                    c_n: None,
                },
            )
            .map_err(|e| e.to_string())
    }

    fn output(&self, steps: usize) -> Vec<f32> {
        self.y[..self.p.y_len(steps)].to_vec()
    }
}

fn build_kernels<'p>(
    dtype: Dtype,
    p: &'p Problem,
    isa: Isa,
) -> Result<Box<dyn KernelRun + 'p>, String> {
    match dtype {
        Dtype::F32 => Ok(Box::new(F32Kernels::new(p, isa)?)),
        Dtype::F16 | Dtype::Bf16 => Err(dtype.check_implemented().unwrap_err()),
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

struct Row {
    cell: Cell,
    shape: BenchConfig,
    s_per_seq: f64,
    gflops: f64,
    unfused_s: f64,
    ref_s: f64,
    ref_steps: usize,
    max_err: f32,
}

fn measure(o: &Opts, e: &Effort, cell: Cell, shape: BenchConfig) -> Result<Row, String> {
    let p = Problem::new(cell, shape);
    let (t, b) = (shape.steps, shape.batch);
    let k = e.ref_steps.min(t);

    // Error check (and reference timing) on the first k steps.
    let t0 = Instant::now();
    let want = rnn_reference::forward::<f32>(
        &p.cfg,
        &[p.weights()],
        SeqShape::new(k, b),
        SequenceInput::new(p.x_prefix(k)),
    )
    .map_err(|e| format!("reference: {e}"))?;
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
            let out = rnn_reference::forward::<f32>(
                &p.cfg,
                &[p.weights()],
                SeqShape::new(k, b),
                SequenceInput::new(p.x_prefix(k)),
            );
            std::hint::black_box(out).ok();
        })
    } else {
        first.as_secs_f64()
    };
    let ref_s = ref_k * t as f64 / k as f64;

    let mut kern = build_kernels(o.dtype, &p, o.isa)?;
    kern.run(k)?;
    let max_err = max_abs_diff(&kern.output(k), &want.y);

    // Kernels, whole sequence.
    let mut failed = None;
    let s_per_seq = time_median(e.kernel, || {
        if let Err(err) = kern.run(t) {
            failed.get_or_insert(err);
        }
    });
    if let Some(err) = failed {
        return Err(format!("rnn-kernels forward: {err}"));
    }
    if kern.output(t).iter().any(|v| !v.is_finite()) {
        return Err("rnn-kernels forward produced non-finite outputs".into());
    }
    drop(kern);

    // Unfused baseline, whole sequence.
    let base = Unfused::new(&p);
    let mut ws = UnfusedWorkspace::new();
    let mut y = vec![0.0f32; p.y_len(t)];
    let unfused_s = time_median(e.unfused, || base.forward(&mut ws, t, b, &p.x, &mut y));

    Ok(Row {
        cell,
        shape,
        s_per_seq,
        gflops: flops(cell, &shape) as f64 / s_per_seq / 1e9,
        unfused_s,
        ref_s,
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
         \"s_per_seq\": {}, \"gflops\": {}}}",
        o.isa.name(),
        o.dtype.name(),
        r.cell.name(),
        r.shape.batch,
        r.shape.hidden,
        r.shape.input,
        r.shape.steps,
        o.threads,
        json_num(r.s_per_seq),
        json_num(r.gflops),
    )
}

const TABLE_HEADER: &str =
    "cell  |  B   |  H   |  I   |  T  |   ms/seq  | GFLOP/s | % peak |  × ref  | × unfused | max err";

fn table_row(r: &Row, peak: f64) -> String {
    format!(
        "{:<5} | {:>4} | {:>4} | {:>4} | {:>3} | {:>9.3} | {:>7.1} | {:>5.1}% | {:>7.1} | {:>9.2} | {:.1e}",
        r.cell.name(),
        r.shape.batch,
        r.shape.hidden,
        r.shape.input,
        r.shape.steps,
        r.s_per_seq * 1e3,
        r.gflops,
        100.0 * r.gflops / peak,
        r.ref_s / r.s_per_seq,
        r.unfused_s / r.s_per_seq,
        r.max_err,
    )
}

fn run(o: &Opts) -> Result<(), String> {
    o.dtype.check_implemented()?;
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

    let per_core = fma_peak_gflops(o.isa, e.probe)
        .ok_or_else(|| format!("FMA probe: {} unavailable on this CPU", o.isa))?;
    let peak = per_core * o.threads as f64;
    let mut head = String::new();
    let _ = writeln!(
        head,
        "rnn-kernels report: dtype {}, isa {}, {} thread(s){}",
        o.dtype.name(),
        o.isa,
        o.threads,
        if o.quick { ", --quick" } else { "" }
    );
    let _ = writeln!(
        head,
        "FMA peak ({}, measured): {per_core:.1} GFLOP/s per core × {} thread(s) = {peak:.1} GFLOP/s",
        o.isa, o.threads
    );
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
            progress(&format!("{} {} ...", cell.name(), shape.label()));
            let r = pool.install(|| measure(o, &e, cell, shape))?;
            let line = if o.json {
                json_line(o, &r)
            } else {
                table_row(&r, peak)
            };
            let mut out = stdout.lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
            progress(&format!(
                "{} {}: {:.3} ms/seq, {:.1} GFLOP/s, max err {:.1e}",
                cell.name(),
                shape.label(),
                r.s_per_seq * 1e3,
                r.gflops,
                r.max_err
            ));
            rows.push(r);
        }
        if !o.json {
            println!();
        }
    }

    let ref_steps: Vec<usize> = rows.iter().map(|r| r.ref_steps).collect();
    let k = ref_steps.iter().copied().max().unwrap_or(0);
    let notes = format!(
        "ms/seq: median over runs (min {} runs / {:.1} s per case). GFLOP/s: 2·T·B·G·H·(I+H) / time.\n\
         % peak: of the measured {} FMA peak × threads above.\n\
         × ref: the naive reference crate, timed on the first {k} steps only (it is very slow) \
         and scaled by T/{k}.\n\
         × unfused: matrixmultiply sgemm X·W_ihᵀ + per-step sgemm h·W_hhᵀ + scalar gate pass \
         (candle/burn-style), columns split over the same {} thread(s).\n\
         max err: max |y - y_ref| over the first {k} steps, same inputs.\n\
         total time {:.1} s",
        e.kernel.min_runs,
        e.kernel.min_time.as_secs_f64(),
        o.isa,
        o.threads,
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
