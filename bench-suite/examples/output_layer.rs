//! The output layer's forward (`PackedOutput`, identity activation) with `f32`, `bf16`
//! and int8 weights (per-row and one-range activation codes): median ms per call.
//! `cargo run --release -p rnn-bench-suite --example output_layer -- 1x1024x4096,100x512x4096 [THREADS]`
//! (shapes `ROWSxIxO`). PyTorch's `nn.Linear` and its `quantize_dynamic` form on the
//! same shapes: `python3 bench-suite/peers/output_layer.py` with the same arguments.
use std::time::Duration;

use rnn_bench_suite::{time_median, Repeats};
use rnn_kernels::half::bf16;
use rnn_kernels::{
    ActivationQuant, OutputActivation, OutputConfig, PackedOutput, WeightType, Workspace,
};

const USAGE: &str = "usage: output_layer ROWSxIxO[,ROWSxIxO...] [THREADS]";

fn main() {
    let a: Vec<String> = std::env::args().collect();
    assert!(a.len() >= 2, "{USAGE}");
    let threads: usize = a.get(2).map(|s| s.parse().expect(USAGE)).unwrap_or(1);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let r = Repeats {
        min_runs: 5,
        min_time: Duration::from_millis(500),
        max_runs: 10_000,
        max_time: Duration::from_secs(3),
    };
    println!(
        "rows x I x O | f32 ms | bf16 ms | int8 ms | int8 one-range ms | f32 / int8 | f32 backward ms"
    );
    for shape in a[1].split(',') {
        let d: Vec<usize> = shape.split('x').map(|s| s.parse().expect(USAGE)).collect();
        let (rows, i, o) = (d[0], d[1], d[2]);
        let cfg = OutputConfig::new(i, o, OutputActivation::Identity);
        // Deterministic values of order 1/sqrt(I) and 1.
        let w: Vec<f32> = (0..o * i)
            .map(|k| ((k * 7919 % 1000) as f32 / 500.0 - 1.0) / (i as f32).sqrt())
            .collect();
        let x: Vec<f32> = (0..rows * i)
            .map(|k| (k * 104_729 % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let mut y = vec![0.0f32; rows * o];
        let mut time = |head: &dyn Fn(&mut Workspace, &mut [f32])| {
            let mut ws = Workspace::new();
            1e3 * time_median(r, || head(&mut ws, &mut y))
        };
        fn run<W: WeightType>(
            h: &PackedOutput<W>,
            ws: &mut Workspace,
            rows: usize,
            x: &[f32],
            y: &mut [f32],
        ) {
            h.forward(ws, rows, x, y).unwrap();
        }
        let f32_head = PackedOutput::<f32>::pack(&cfg, &w, None).unwrap();
        let bf16_head = PackedOutput::<bf16>::pack(&cfg, &w, None).unwrap();
        let i8_head = PackedOutput::<i8>::pack(&cfg, &w, None).unwrap();
        let i8_one = i8_head
            .clone()
            .with_activation_quant(ActivationQuant::OnnxRuntime);
        let t32 = time(&|ws, y| run(&f32_head, ws, rows, &x, y));
        let tb = time(&|ws, y| run(&bf16_head, ws, rows, &x, y));
        let t8 = time(&|ws, y| run(&i8_head, ws, rows, &x, y));
        let t8o = time(&|ws, y| run(&i8_one, ws, rows, &x, y));
        // The backward (dx, dW, db) from the forward's x and y and a dy.
        let dy = x
            .iter()
            .cycle()
            .take(rows * o)
            .copied()
            .collect::<Vec<f32>>();
        let ys = y.clone();
        let (mut dx, mut dw, mut db) =
            (vec![0.0f32; rows * i], vec![0.0f32; o * i], vec![0.0f32; o]);
        let mut ws = Workspace::new();
        let tback = 1e3
            * time_median(r, || {
                f32_head
                    .backward(&mut ws, rows, &x, &ys, &dy, &mut dx, &mut dw, Some(&mut db))
                    .unwrap()
            });
        println!(
            "{rows}x{i}x{o} | {t32:.3} | {tb:.3} | {t8:.3} | {t8o:.3} | {:.2} | {tback:.3}",
            t32 / t8
        );
    }
}
