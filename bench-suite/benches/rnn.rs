//! Criterion benchmarks of rnn-kernels on the bench-suite shapes.
//!
//! One group per cell × configuration, named `<cell>/<BxHxIxT>` (e.g.
//! `lstm/1x256x256x100`), holding:
//! - `forward/<isa>`: `PackedRnn::forward` over the whole sequence, per available ISA;
//! - `forward-f16/<isa>`, `forward-bf16/<isa>`: the same with weights (and biases)
//!   packed as `half::f16` / `half::bf16` and `x` / `y` in that type (`x` converted
//!   once, outside the timing), per available SIMD ISA (best ISA only with
//!   `RNN_BENCH_QUICK=1`). The portable path is left out unless
//!   `RNN_BENCH_HALF_PORTABLE=1`: its f16 forward widens element by element in
//!   software and takes tens of seconds per iteration at batch 64;
//! - `step/<isa>`: one `PackedCell::step` at the configuration's batch and sizes;
//! - `unfused`: the matrixmultiply GEMMs + separate elementwise passes baseline;
//! - `reference/<n>steps`: the naive reference crate, only for the smallest
//!   configuration and only a few steps (it is very slow).
//!
//! Throughput is `Throughput::Elements(flops)` with the GEMM flop count
//! `2·T·B·G·H·(I+H)` (`T = 1` for a step), so criterion's "elements/s" **is FLOP/s**
//! (e.g. "95.3 Gelem/s" = 95.3 GFLOP/s).
//!
//! ```text
//! cargo bench -p rnn-bench-suite                                # everything (~15-20 min)
//! cargo bench -p rnn-bench-suite -- lstm/1x256                  # one group
//! cargo bench -p rnn-bench-suite -- 'gru/.*/forward/avx512'     # criterion regex filter
//! cargo bench -p rnn-bench-suite -- 'forward-bf16/'               # bf16 forward only
//! RNN_BENCH_QUICK=1 cargo bench -p rnn-bench-suite              # first two configs, best ISA
//! RNN_BENCH_THREADS=2 cargo bench -p rnn-bench-suite            # rayon threads (default 1)
//! RNN_BENCH_HALF_PORTABLE=1 cargo bench -p rnn-bench-suite -- 'forward-f16/portable'
//! ```
//! The HTML report lands in `target/criterion/report/index.html`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use rnn_bench_suite::{
    flops, step_flops, Cell, Problem, Unfused, UnfusedWorkspace, CELLS, CONFIGS,
};
use rnn_kernels::half::{bf16, f16};
use rnn_kernels::{
    Element, Isa, PackedCell, PackedRnn, SeqShape, SequenceInput, SequenceOutputMut, StepInput,
    StepOutputMut, Workspace,
};

/// Steps of the reference benchmark.
const REFERENCE_STEPS: usize = 5;

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty() && v.trim() != "0")
}

fn bench_forward(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    p: &Problem,
    isa: Isa,
) {
    let rnn = PackedRnn::from_pytorch(&p.cfg, &[p.weights()])
        .and_then(|r| r.with_isa(Some(isa)))
        .expect("pack");
    let (t, b) = (p.shape.steps, p.shape.batch);
    let mut ws = Workspace::new();
    let mut y = vec![0.0f32; p.y_len(t)];
    g.bench_function(format!("forward/{isa}"), |bench| {
        bench.iter(|| {
            rnn.forward(
                &mut ws,
                SeqShape::new(t, b),
                SequenceInput::new(black_box(&p.x)),
                SequenceOutputMut {
                    y: &mut y,
                    h_n: None,
                    c_n: None,
                },
            )
            .expect("forward");
            black_box(&y);
        })
    });
}

/// `forward-<dtype>/<isa>`: weights, biases, `x` and `y` all in `T` (a framework
/// holding half tensors); `x` is converted once, here.
fn bench_forward_typed<T: Element>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    p: &Problem,
    isa: Isa,
) {
    let tp = p.typed::<T>();
    let rnn = PackedRnn::<T>::pack(&p.cfg, &[tp.weights()])
        .and_then(|r| r.with_isa(Some(isa)))
        .expect("pack");
    let x = tp.x;
    let (t, b) = (p.shape.steps, p.shape.batch);
    let mut ws = Workspace::new();
    let mut y = vec![T::default(); p.y_len(t)];
    g.bench_function(format!("forward-{}/{isa}", T::NAME), |bench| {
        bench.iter(|| {
            rnn.forward(
                &mut ws,
                SeqShape::new(t, b),
                SequenceInput::new(black_box(&x[..])),
                SequenceOutputMut {
                    y: &mut y,
                    h_n: None,
                    c_n: None,
                },
            )
            .expect("forward");
            black_box(&y);
        })
    });
}

fn bench_step(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    p: &Problem,
    isa: Isa,
) {
    let cell = PackedCell::from_pytorch(&p.cfg, &p.weights())
        .and_then(|c| c.with_isa(Some(isa)))
        .expect("pack");
    let (b, h) = (p.shape.batch, p.shape.hidden);
    let lstm = p.cell == Cell::Lstm;
    // x_0 of the problem and a mid-range state.
    let x = p.x_prefix(1);
    let h0 = vec![0.25f32; b * h];
    let c0 = vec![-0.5f32; if lstm { b * h } else { 0 }];
    let (mut h1, mut c1) = (vec![0.0f32; b * h], vec![0.0f32; c0.len()]);
    let mut ws = Workspace::new();
    g.bench_function(format!("step/{isa}"), |bench| {
        bench.iter(|| {
            cell.step(
                &mut ws,
                b,
                StepInput {
                    x: black_box(x),
                    h: &h0,
                    c: lstm.then_some(&c0[..]),
                    attention: None,
                },
                StepOutputMut {
                    h: &mut h1,
                    c: if lstm { Some(&mut c1[..]) } else { None },
                },
            )
            .expect("step");
            black_box(&h1);
        })
    });
}

fn benches(c: &mut Criterion) {
    let quick = env_flag("RNN_BENCH_QUICK");
    let configs = if quick { &CONFIGS[..2] } else { &CONFIGS[..] };
    let isas = if quick {
        vec![Isa::best()]
    } else {
        Isa::available()
    };
    // `avx512bf16` runs the `avx512` kernels except for bf16 inputs and weights: in a
    // full run it is benchmarked only for bf16 (the rest would repeat `avx512`).
    let f32_isas: Vec<Isa> = isas
        .iter()
        .copied()
        .filter(|&i| quick || i != Isa::Avx512Bf16)
        .collect();
    let half_portable = env_flag("RNN_BENCH_HALF_PORTABLE");
    let half_isas: Vec<Isa> = isas
        .iter()
        .copied()
        .filter(|&i| i != Isa::Portable || half_portable)
        .collect();
    for cell in CELLS {
        for shape in configs {
            let p = Problem::new(cell, *shape);
            let mut g = c.benchmark_group(format!("{}/{}", cell.name(), shape.label()));
            // Short measurements keep the whole run at ~15-20 min; flat sampling
            // suits the long (up to ~0.3 s) whole-sequence iterations.
            g.sample_size(10)
                .warm_up_time(Duration::from_millis(500))
                .measurement_time(Duration::from_secs(2))
                .sampling_mode(SamplingMode::Flat);

            // Elements = FLOPs, so criterion's elements/s is FLOP/s.
            g.throughput(Throughput::Elements(flops(cell, shape)));
            for &isa in &f32_isas {
                bench_forward(&mut g, &p, isa);
            }
            for &isa in &half_isas {
                if f32_isas.contains(&isa) {
                    bench_forward_typed::<f16>(&mut g, &p, isa);
                }
                bench_forward_typed::<bf16>(&mut g, &p, isa);
            }
            let base = Unfused::new(&p);
            let mut ws = UnfusedWorkspace::new();
            let mut y = vec![0.0f32; p.y_len(shape.steps)];
            g.bench_function("unfused", |bench| {
                bench.iter(|| {
                    base.forward(&mut ws, shape.steps, shape.batch, black_box(&p.x), &mut y);
                    black_box(&y);
                })
            });

            g.throughput(Throughput::Elements(step_flops(cell, shape)));
            for &isa in &f32_isas {
                bench_step(&mut g, &p, isa);
            }

            if *shape == CONFIGS[0] {
                let n = REFERENCE_STEPS.min(shape.steps);
                g.throughput(Throughput::Elements(flops(cell, &shape.with_steps(n))));
                let w = [p.weights()];
                g.bench_function(format!("reference/{n}steps"), |bench| {
                    bench.iter(|| {
                        rnn_reference::forward::<f32>(
                            &p.cfg,
                            &w,
                            SeqShape::new(n, shape.batch),
                            SequenceInput::new(black_box(p.x_prefix(n))),
                        )
                        .expect("reference")
                    })
                });
            }
            g.finish();
        }
    }
}

fn setup_threads() {
    // The kernels and the baseline split work over `rayon::current_num_threads()`;
    // from the bench's main thread that is the global pool's size.
    let threads = std::env::var("RNN_BENCH_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1);
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
    {
        eprintln!("rnn bench: could not size the rayon pool to {threads}: {e}");
    }
}

fn all(c: &mut Criterion) {
    setup_threads();
    benches(c);
}

criterion_group!(rnn, all);
criterion_main!(rnn);
