//! Measuring one case: the reference and unfused baselines, then the kernels.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use rnn_bench_suite::{
    flops, max_abs_diff, median, time_median, train_flops, BenchConfig, Cell, Problem, Repeats,
    Unfused, UnfusedWorkspace,
};
use rnn_kernels::{Activations, BackwardProfile};

use crate::kernels::{build_kernels, reference, reference_on};
use crate::options::{Dtype, Opts, Pass};

/// How hard to try, per case.
pub(crate) struct Effort {
    /// Kernels.
    pub(crate) kernel: Repeats,
    /// Unfused baseline.
    pub(crate) unfused: Repeats,
    /// Steps of the reference / error-check run (the reference is timed on them and
    /// scaled to the full sequence: its cost per step is constant).
    pub(crate) ref_steps: usize,
    /// FMA probe duration.
    pub(crate) probe: Duration,
}

impl Effort {
    pub(crate) fn new(quick: bool) -> Self {
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
/// (output or gradients, and time) and the unfused f32 baseline's time (forward only:
/// `NaN` for a training step).
pub(crate) struct Baseline {
    pub(crate) p: Problem,
    pub(crate) ref_steps: usize,
    /// f32 reference `y` (or gradients) over the first `ref_steps` steps, unrounded
    /// problem.
    pub(crate) want_f32: Vec<f32>,
    pub(crate) ref_s: f64,
    pub(crate) unfused_s: f64,
}

pub(crate) fn measure_baseline(
    e: &Effort,
    cell: Cell,
    shape: BenchConfig,
    pass: Pass,
) -> Result<Baseline, String> {
    let p = Problem::new(cell, shape);
    let (t, b) = (shape.steps, shape.batch);
    let k = e.ref_steps.min(t);
    // The reference's cost per step is constant for the backward too (BPTT).
    let oracle = |p: &Problem| reference(pass, p, k);

    // Error check (and reference timing) on the first k steps.
    let t0 = Instant::now();
    let want_f32 = oracle(&p)?;
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
            std::hint::black_box(oracle(&p)).ok();
        })
    } else {
        first.as_secs_f64()
    };
    let ref_s = ref_k * t as f64 / k as f64;

    // Unfused baseline, whole sequence (forward only: it has no backward).
    let unfused_s = if pass == Pass::Forward && cell.has_unfused() {
        let base = Unfused::new(&p);
        let mut ws = UnfusedWorkspace::new();
        let mut y = vec![0.0f32; p.y_len(t)];
        time_median(e.unfused, || base.forward(&mut ws, t, b, &p.x, &mut y))
    } else {
        f64::NAN
    };

    Ok(Baseline {
        p,
        ref_steps: k,
        want_f32,
        ref_s,
        unfused_s,
    })
}

pub(crate) struct Row {
    pub(crate) cell: Cell,
    pub(crate) dtype: Dtype,
    pub(crate) shape: BenchConfig,
    pub(crate) s_per_seq: f64,
    pub(crate) gflops: f64,
    /// f32 time ÷ this time, when f32 of the same case ran in this run (half rows).
    pub(crate) vs_f32: Option<f64>,
    pub(crate) unfused_s: f64,
    pub(crate) ref_s: f64,
    pub(crate) ref_steps: usize,
    pub(crate) max_err: f32,
    /// The backward's phases (training steps).
    pub(crate) phases: Option<Phases>,
}

/// The backward's phases in a training step, each the median over the timed runs
/// (`rnn_kernels::BackwardProfile`), in seconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Phases {
    pub(crate) backward: f64,
    pub(crate) transposes: f64,
    pub(crate) time_loop: f64,
    pub(crate) weight_products: f64,
    pub(crate) weight_operands: f64,
    pub(crate) input_products: f64,
    /// FLOPs of the weight-gradient products (the same every run).
    pub(crate) weight_flops: u64,
}

impl Phases {
    /// Medians of `runs` (none: `None`).
    fn of(runs: &[BackwardProfile]) -> Option<Phases> {
        let first = runs.first()?;
        let med = |f: fn(&BackwardProfile) -> Duration| {
            median(&mut runs.iter().map(|p| f(p).as_secs_f64()).collect::<Vec<_>>())
        };
        Some(Phases {
            backward: med(|p| p.total),
            transposes: med(|p| p.transposes),
            time_loop: med(|p| p.time_loop),
            weight_products: med(|p| p.weight_products),
            weight_operands: med(|p| p.weight_operands),
            input_products: med(|p| p.input_products),
            weight_flops: first.weight_product_flops,
        })
    }

    /// The weight-gradient products' rate.
    pub(crate) fn weight_gflops(&self) -> f64 {
        self.weight_flops as f64 / self.weight_products / 1e9
    }
}

pub(crate) fn measure(o: &Opts, e: &Effort, base: &Baseline, dtype: Dtype) -> Result<Row, String> {
    let p = &base.p;
    let (t, k) = (p.shape.steps, base.ref_steps);
    let want = match dtype {
        Dtype::F32 => Cow::Borrowed(&base.want_f32),
        _ => Cow::Owned(reference_on(dtype, o.pass, p, k)?),
    };

    let mut kern = build_kernels(dtype, p, o.isa, o.pass)?;
    kern.run(k)?;
    let max_err = max_abs_diff(&kern.output(k), &want);

    // Kernels, whole sequence.
    let mut failed = None;
    // The backward's phases of every timed run (the same runs as the step's median).
    let mut profiles = Vec::with_capacity(e.kernel.max_runs + 1);
    let s_per_seq = time_median(e.kernel, || {
        if let Err(err) = kern.run(t) {
            failed.get_or_insert(err);
        }
        profiles.extend(kern.profile());
    });
    if let Some(err) = failed {
        return Err(format!(
            "rnn-kernels {} ({}): {err}",
            o.pass.name(),
            dtype.name()
        ));
    }
    if kern.output(t).iter().any(|v| !v.is_finite()) {
        return Err(format!(
            "rnn-kernels {} ({}) produced non-finite outputs",
            o.pass.name(),
            dtype.name()
        ));
    }
    let products = match o.pass {
        Pass::Forward => flops(p.cell, &p.shape),
        Pass::Train => train_flops(p.cell, &p.shape, Activations::Keep),
    };

    Ok(Row {
        cell: p.cell,
        dtype,
        shape: p.shape,
        s_per_seq,
        gflops: products as f64 / s_per_seq / 1e9,
        vs_f32: None,
        unfused_s: base.unfused_s,
        ref_s: base.ref_s,
        ref_steps: k,
        max_err,
        // The first run is `time_median`'s warm-up, timed only when it was the only one.
        phases: Phases::of(if profiles.len() > 1 {
            &profiles[1..]
        } else {
            &profiles
        }),
    })
}
