//! The forward pass alone in a loop, for `perf record` (no baselines, no reference):
//! `cargo run --release -p rnn-bench-suite --example forward_loop -- lstm 64x512x512x50 20 [THREADS]`
//! runs int8 weights (`PackedRnn::<i8>::pack`); `F32=1` runs f32 weights; `QUANT=reduced|ort` picks the
//! activation scheme (default per row). Prints the best
//! time of the runs. Timing figures for the README come from `report`, not from here.
use rnn_bench_suite::{BenchConfig, Cell, Problem};
use rnn_kernels::{
    ActivationQuant, PackedRnn, SeqShape, SequenceInput, SequenceOutputMut, Workspace,
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
    let f32w = std::env::var("F32").is_ok();
    let scheme = match std::env::var("QUANT").as_deref() {
        Ok("reduced") => ActivationQuant::PerRowReduced,
        Ok("ort") => ActivationQuant::OnnxRuntime,
        _ => ActivationQuant::PerRow,
    };
    let rnn8 = PackedRnn::<i8>::pack(&p.cfg, &[p.weights()])
        .unwrap()
        .with_activation_quant(scheme);
    let rnn32 = PackedRnn::<f32>::pack(&p.cfg, &[p.weights()]).unwrap();
    let mut ws = Workspace::new();
    let x = p.x_prefix(d[3]).to_vec();
    let mut y = vec![0f32; d[3] * d[0] * d[1]];
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = std::time::Instant::now();
        let out = SequenceOutputMut {
            y: &mut y,
            h_n: None,
            c_n: None,
        };
        let (sh, inp) = (SeqShape::new(d[3], d[0]), SequenceInput::new(&x));
        if f32w {
            rnn32.forward(&mut ws, sh, inp, out).unwrap();
        } else {
            rnn8.forward(&mut ws, sh, inp, out).unwrap();
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("best {:.3} ms", best * 1e3);
}
