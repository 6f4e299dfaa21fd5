//! The forward pass alone in a loop, for `perf record` (no baselines, no reference):
//! `cargo run --release -p rnn-bench-suite --example forward_loop -- lstm 64x512x512x50 20 [THREADS]`
//! runs int8 weights (`PackedRnn::<i8>::pack`); `F32=1` runs f32 weights; `QUANT=reduced|ort` picks the
//! activation scheme (default per row). Prints the best
//! time of the runs. Timing figures for the README come from `report`, not from here.
use rnn_bench_suite::{BenchConfig, Cell, Problem};
use rnn_kernels::{
    ActivationQuant, PackedRnn, SeqShape, SequenceInput, SequenceOutputMut, WeightType, Workspace,
};

const USAGE: &str = "usage: forward_loop lstm|gru BxHxIxT RUNS [THREADS]";

fn main() {
    let a: Vec<String> = std::env::args().collect();
    assert!(a.len() >= 4, "{USAGE}");
    let cell = if a[1] == "gru" { Cell::Gru } else { Cell::Lstm };
    let d: Vec<usize> = a[2].split('x').map(|s| s.parse().expect(USAGE)).collect();
    let reps: usize = a[3].parse().expect(USAGE);
    let threads: usize = a.get(4).map(|s| s.parse().expect(USAGE)).unwrap_or(1);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let p = Problem::new(
        cell,
        BenchConfig {
            batch: d[0],
            hidden: d[1],
            input: d[2],
            steps: d[3],
        },
    );
    let best = if std::env::var("F32").is_ok() {
        best_time(
            &PackedRnn::<f32>::pack(&p.cfg, &[p.weights()]).unwrap(),
            &p,
            reps,
        )
    } else {
        let scheme = match std::env::var("QUANT").as_deref() {
            Ok("reduced") => ActivationQuant::PerRowReduced,
            Ok("ort") => ActivationQuant::OnnxRuntime,
            _ => ActivationQuant::PerRow,
        };
        let rnn = PackedRnn::<i8>::pack(&p.cfg, &[p.weights()]).unwrap();
        best_time(&rnn.with_activation_quant(scheme), &p, reps)
    };
    println!("best {:.3} ms", best * 1e3);
}

/// The best of `reps` forward passes of `rnn` over the problem, in seconds.
fn best_time<W: WeightType>(rnn: &PackedRnn<W>, p: &Problem, reps: usize) -> f64 {
    let (t, b) = (p.shape.steps, p.shape.batch);
    let mut ws = Workspace::new();
    let x = p.x_prefix(t).to_vec();
    let mut y = vec![0f32; t * b * p.shape.hidden];
    let mut best = f64::MAX;
    for _ in 0..reps {
        let start = std::time::Instant::now();
        let out = SequenceOutputMut {
            y: &mut y,
            h_n: None,
            c_n: None,
        };
        rnn.forward(&mut ws, SeqShape::new(t, b), SequenceInput::new(&x), out)
            .unwrap();
        best = best.min(start.elapsed().as_secs_f64());
    }
    best
}
