//! Quick timing of the single-step API (the bench-suite is the real tool):
//! `cargo run --release -p rnn-kernels --example step_timing -- lstm 1 32 32`
use rnn_kernels::{
    CellKind, LayerWeights, PackedCell, RnnConfig, StepInput, StepOutputMut, Workspace,
};
use std::time::Instant;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let cell = match a.first().map(String::as_str).unwrap_or("lstm") {
        "gru" => CellKind::GRU,
        "rnn" => CellKind::RNN_TANH,
        _ => CellKind::LSTM,
    };
    let n = |i: usize, d: usize| a.get(i).map_or(d, |s| s.parse().unwrap());
    let (b, h, i) = (n(1, 1), n(2, 32), n(3, 32));
    let cfg = RnnConfig::new(cell, i, h);
    let g = cfg.gates();
    let w_ih = vec![0.01f32; g * h * i];
    let w_hh = vec![0.02f32; g * h * h];
    let cellp = PackedCell::from_pytorch(&cfg, &LayerWeights::new(&w_ih, &w_hh)).unwrap();
    let x = vec![0.5f32; b * i];
    let (mut hh, mut cc) = (vec![0.0f32; b * h], vec![0.0f32; b * h]);
    let (mut h1, mut c1) = (vec![0.0f32; b * h], vec![0.0f32; b * h]);
    let lstm = cfg.cell.has_cell_state();
    let mut ws = Workspace::new();
    let iters = 20000;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t0 = Instant::now();
        for _ in 0..iters {
            cellp
                .step(
                    &mut ws,
                    b,
                    StepInput {
                        x: &x,
                        h: &hh,
                        c: lstm.then_some(&cc[..]),
                        attention: None,
                    },
                    StepOutputMut {
                        h: &mut h1,
                        c: lstm.then_some(&mut c1[..]),
                    },
                )
                .unwrap();
            std::mem::swap(&mut hh, &mut h1);
            std::mem::swap(&mut cc, &mut c1);
        }
        best = best.min(t0.elapsed().as_secs_f64() / iters as f64);
    }
    println!(
        "{} step B={b} H={h} I={i}: {:.3} us",
        cell.name(),
        best * 1e6
    );
}
