//! `report`: one command that times the rnn-kernels forward pass (or, with `--pass
//! train`, a training step: `forward_train` + `backward`) on the bench-suite shapes
//! and prints, per cell, configuration and element type, ms per sequence, the
//! speedup of half precision over the crate's own f32, GFLOP/s, % of the measured FMA
//! peak, speedups over the reference and the unfused baseline, and the max error
//! against the reference.
//!
//! ```text
//! cargo run --release -p rnn-bench-suite --bin report -- [--quick] [--threads N]
//!     [--isa avx512bf16|avx512|avx2|portable] [--dtype f32,f16,bf16,int8] [--cells lstm,gru,rnn,augru,cifg,lstm-hardsigmoid,lstm-layernorm]
//!     [--configs BxHxIxT,...] [--pass forward|train] [--json]
//! ```
//!
//! `--pass train`: each row is a training step (the training forward keeping
//! activations, then the backward of `L = Σ y·dy` with a fixed `dy`: `∂x`, `∂W_ih`,
//! `∂W_hh`, both biases, all f32); GFLOP/s counts the backward's products too (the
//! step is 3 × the forward's, `train_flops`); max err is over `∂x` and `∂W_hh`
//! against the f32 reference backward on the first steps; there is no unfused
//! baseline (`-`).
//!
//! The path measured is `--isa`, else `RNN_KERNELS_ISA` (as for the kernels' own
//! default), else the best this CPU has; the header line names it. An unknown or
//! unavailable name in either is an error (exit status 2), never a silent fallback.
//!
//! `--dtype f16` / `bf16`: weights (and biases) stored in the half type, `x` converted
//! to it once before timing, `y` written in it. Several dtypes run f32 first, so half
//! rows get their `× f32` speedup from the same run. `--dtype int8`: weights quantized
//! symmetrically per output unit by the packing, activations quantized per row at run
//! time (`ActivationQuant::PerRow`), `x` and `y` in f32; its max err is against the
//! naive int8 oracle on the same quantized weights.
//!
//! With `--json`, stdout carries only JSON lines (keys `impl`, `isa`, `dtype`, `cell`,
//! `batch`, `hidden`, `input`, `steps`, `threads`, `s_per_seq`, `gflops`, plus
//! `max_err` and `speedup_vs_f32`, `null` unless f32 ran too, and `pass`, `forward`
//! or `train`); progress goes to stderr.

mod kernels;
mod measure;
mod options;
mod output;

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use rnn_bench_suite::{dot_u8i8_peak_gops, fma_peak_gflops};

use measure::{measure, measure_baseline, Effort};
use options::{parse_args, Dtype, Opts, Pass, USAGE};
use output::{json_line, phases_row, table_row, PHASES_HEADER, TABLE_HEADER};

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
    let half = o
        .dtypes
        .iter()
        .any(|&d| matches!(d, Dtype::F16 | Dtype::Bf16));

    let per_core = fma_peak_gflops(o.isa, e.probe)
        .ok_or_else(|| format!("FMA probe: {} unavailable on this CPU", o.isa))?;
    let peak = per_core * o.threads as f64;
    let mut head = String::new();
    let _ = writeln!(
        head,
        "rnn-kernels report ({}): dtype {}, isa {}, {} thread(s){}",
        match o.pass {
            Pass::Forward => "forward",
            Pass::Train => "training step: forward_train + backward, f32 gradients",
        },
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
    // The int8 rows' % peak is of the integer product's peak where it was measured.
    let int8 = o.dtypes.iter().any(|d| d.act_quant().is_some());
    let int8_peak = if int8 && o.isa.name().starts_with("avx512") {
        dot_u8i8_peak_gops(e.probe).map(|g| g * o.threads as f64)
    } else {
        None
    };
    if let Some(p8) = int8_peak {
        let _ = writeln!(
            head,
            "int8 peak (vpdpbusd, measured): {:.1} GOP/s per core × {} thread(s) = {p8:.1} GOP/s \
             (the int8 rows' % peak is of it)",
            p8 / o.threads as f64,
            o.threads
        );
    }
    if int8 {
        // AMX's tiles do far more than `vpdpbusd` per instruction: say which ran.
        if let Ok(p) = rnn_kernels::int8_product(o.isa) {
            let note = if p.starts_with("amx") {
                " (AMX's tiles can exceed the vpdpbusd peak)"
            } else {
                ""
            };
            let _ = writeln!(head, "int8 product on {}: {p}{note}", o.isa.name());
        }
        let _ = writeln!(
            head,
            "int8 rows: weights quantized per output unit (symmetric), activations per row at \
             run time (uint8; int8r: 7-bit codes), x and y f32;\nmax err against the naive int8 oracle on the same \
             quantized weights (exact integer sums: f32 compute error only)."
        );
    }
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
        if o.pass == Pass::Train {
            let _ = writeln!(
                head,
                "Training rows: dy in the half type too (on a 1/128 grid, exact in it), \
                 gradients f32: their max err has no final rounding."
            );
        }
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
            let base = pool.install(|| measure_baseline(&e, cell, shape, o.pass))?;
            let mut f32_s = None;
            for &dtype in &o.dtypes {
                if cell == rnn_bench_suite::Cell::Augru
                    && matches!(dtype, Dtype::Int8 | Dtype::Int8Reduced)
                {
                    progress("augru: the int8 path has no AUGRU, skipped");
                    continue;
                }
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
                    let row_peak = match (dtype, int8_peak) {
                        (Dtype::Int8 | Dtype::Int8Reduced, Some(p8)) => p8,
                        _ => peak,
                    };
                    table_row(&r, row_peak)
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

    if !o.json && o.pass == Pass::Train {
        println!(
            "backward phases (ms, medians over the same runs; the ∂W products' GFLOP/s and % \
             of the FMA peak above):"
        );
        println!("{PHASES_HEADER}");
        println!("{}", "-".repeat(PHASES_HEADER.chars().count()));
        for r in &rows {
            if let Some(line) = phases_row(r, peak) {
                println!("{line}");
            }
        }
        println!();
    }

    let k = rows.iter().map(|r| r.ref_steps).max().unwrap_or(0);
    let (counted, unfused, err) = match o.pass {
        Pass::Forward => (
            "2·T·B·G·H·(I+H)",
            format!(
                "matrixmultiply sgemm X·W_ihᵀ + per-step sgemm h·W_hhᵀ + scalar gate pass \
                 (candle/burn-style, f32), columns split over the same {} thread(s)",
                o.threads
            ),
            "|y - y_ref|",
        ),
        Pass::Train => (
            "3 × 2·T·B·G·H·(I+H) (forward; backward: ∂h·W_hh per step, ∂W_hh, ∂W_ih, ∂x)",
            "none for a training step".to_string(),
            "|g - g_ref| over ∂x and ∂W_hh (loss Σ y·dy, fixed dy)",
        ),
    };
    let notes = format!(
        "ms/seq: median over runs (min {} runs / {:.1} s per case). GFLOP/s: {counted} / time.\n\
         % peak: of the measured {} FMA peak × threads above (int8 rows: of the int8 peak where printed).\n\
         × ref: the naive reference crate (f32), timed on the first {k} steps only (it is very \
         slow) and scaled by T/{k}.\n\
         × unfused: {unfused}.\n\
         max err: max {err} over the first {k} steps, same inputs{}.\n\
         total time {:.1} s",
        e.kernel.min_runs,
        e.kernel.min_time.as_secs_f64(),
        o.isa,
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
    use rnn_bench_suite::{BenchConfig, Cell, Problem};
    use rnn_kernels::Isa;

    use crate::kernels::build_kernels;
    use crate::options::{parse_args, resolve_isa, Dtype, Pass};

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

    /// The kernels of each dtype against the f64 reference on the values they see
    /// (rounded to the dtype), within the bound computed alongside it plus the output
    /// rounding to the dtype.
    #[test]
    fn half_kernels_match_the_rounded_reference() {
        use rnn_kernels::half::{bf16, f16};
        use rnn_kernels::{SeqShape, SequenceInput};
        use rnn_reference::testkit::bound::{self, forward_bounded};
        let p = Problem::new(Cell::Gru, BenchConfig::new(2, 24, 8, 3));
        for dtype in [Dtype::F32, Dtype::F16, Dtype::Bf16] {
            let mut k = build_kernels(dtype, &p, Isa::best(), Pass::Forward).unwrap();
            k.run(3).unwrap();
            let (q, rounding) = match dtype {
                Dtype::F32 => (p.rounded::<f32>(), (0.0, 0.0)),
                Dtype::F16 => (p.rounded::<f16>(), bound::F16_ROUNDING),
                Dtype::Bf16 => (p.rounded::<bf16>(), bound::BF16_ROUNDING),
                Dtype::Int8 | Dtype::Int8Reduced => unreachable!("not in this list"),
            };
            let shape = SeqShape::new(3, q.shape.batch);
            let input = SequenceInput::new(q.x_prefix(3));
            let e = forward_bounded::<bound::Kernels>(&q.cfg, &[q.weights()], shape, input)
                .unwrap()
                .rounded_outputs(rounding);
            rnn_reference::testkit::compare("y", &k.output(3), &e.want.y, &e.bound.y)
                .unwrap_or_else(|m| panic!("{}: {m}", dtype.name()));
        }
    }

    /// The training step the report times computes the reference's gradients, for
    /// every dtype (half: the reference sees the same rounded weights and x, and dy is
    /// exact in every dtype; gradients f32, so no output rounding), within the bound
    /// computed alongside the f64 reference backward (`testkit::bound`); `compare`
    /// refuses a bound of 1% of the gradients or more.
    #[test]
    fn training_step_matches_the_reference_backward() {
        use rnn_kernels::half::{bf16, f16};
        use rnn_kernels::{SeqShape, SequenceInput};
        use rnn_reference::testkit::bound::{backward_bounded, Kernels as Model};
        for cell in [Cell::Lstm, Cell::Gru, Cell::Rnn] {
            let p = Problem::new(cell, BenchConfig::new(2, 24, 8, 3));
            for dtype in [Dtype::F32, Dtype::F16, Dtype::Bf16] {
                let mut k = build_kernels(dtype, &p, Isa::best(), Pass::Train).unwrap();
                k.run(3).unwrap();
                let q = match dtype {
                    Dtype::F16 => p.rounded::<f16>(),
                    Dtype::Bf16 => p.rounded::<bf16>(),
                    _ => p.clone(),
                };
                let dy = rnn_bench_suite::upstream(&q);
                let e = backward_bounded::<Model>(
                    &q.cfg,
                    &[q.weights()],
                    SeqShape::new(3, q.shape.batch),
                    SequenceInput::new(q.x_prefix(3)),
                    rnn_reference::OutputGrads::new(&dy[..q.y_len(3)]),
                )
                .unwrap();
                // What `output` holds: ∂L/∂x of the 3 steps, then ∂W_hh.
                let want = [&e.want.dx[..], &e.want.weights[0].w_hh].concat();
                let bound = [&e.bound.dx[..], &e.bound.weights[0].w_hh].concat();
                rnn_reference::testkit::compare("dx, dW_hh", &k.output(3), &want, &bound)
                    .unwrap_or_else(|m| panic!("{cell:?} {}: {m}", dtype.name()));
            }
        }
    }

    #[test]
    fn pass_parses() {
        let pass =
            |a: &[&str]| parse_args(a.iter().map(|s| s.to_string())).map(|o| o.unwrap().pass);
        assert_eq!(pass(&[]).unwrap(), Pass::Forward);
        assert_eq!(pass(&["--pass", "train"]).unwrap(), Pass::Train);
        assert_eq!(pass(&["--pass=forward"]).unwrap(), Pass::Forward);
        assert!(pass(&["--pass", "backward"]).is_err());
    }
}
