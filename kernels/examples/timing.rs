//! Quick timing of one configuration (the bench-suite's `report` is the real tool):
//! `cargo run --release -p rnn-kernels --example timing -- lstm 1 512 512 100 [threads] [isa] [f32|f16|bf16]`
use rnn_kernels::half::{bf16, f16};
use rnn_kernels::{
    CellKind, Element, Isa, LayerWeights, PackedRnn, RnnActivation, RnnConfig, SeqShape,
    SequenceInput, SequenceOutputMut, Workspace,
};
use std::time::Instant;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let cell = match a.first().map(String::as_str).unwrap_or("lstm") {
        "gru" => CellKind::Gru {
            linear_before_reset: true,
        },
        "gru0" => CellKind::Gru {
            linear_before_reset: false,
        },
        "rnn" => CellKind::Rnn {
            activation: RnnActivation::Tanh,
        },
        _ => CellKind::Lstm {
            peephole: false,
            proj_size: None,
        },
    };
    let n = |i: usize, d: usize| a.get(i).map_or(d, |s| s.parse().unwrap());
    let dims = (n(1, 1), n(2, 512), n(3, 512), n(4, 100), n(5, 1));
    let isa: Isa = a.get(6).map_or(Isa::best(), |s| s.parse().unwrap());
    let (_, h, i, _, _) = dims;
    let cfg = RnnConfig::new(cell, i, h);
    let g = cfg.gates();
    let scale = 1.0 / (h as f32).sqrt();
    let w_ih: Vec<f32> = (0..g * h * i)
        .map(|k| ((k * 7919 % 1000) as f32 / 1000.0 - 0.5) * scale)
        .collect();
    let w_hh: Vec<f32> = (0..g * h * h)
        .map(|k| ((k * 104729 % 1000) as f32 / 1000.0 - 0.5) * scale)
        .collect();
    let bias = vec![0.1f32; g * h];
    let sets = [LayerWeights::new(&w_ih, &w_hh).with_bias(&bias, &bias)];
    match a.get(7).map_or("f32", String::as_str) {
        "f16" => time(PackedRnn::<f16>::pack(&cfg, &sets).unwrap(), isa, dims),
        "bf16" => time(PackedRnn::<bf16>::pack(&cfg, &sets).unwrap(), isa, dims),
        _ => time(PackedRnn::<f32>::pack(&cfg, &sets).unwrap(), isa, dims),
    }
}

fn time<W: Element>(
    rnn: PackedRnn<W>,
    isa: Isa,
    (b, h, i, t, threads): (usize, usize, usize, usize, usize),
) {
    let rnn = rnn.with_isa(Some(isa)).unwrap();
    let cfg = *rnn.config();
    let x: Vec<f32> = (0..t * b * i)
        .map(|k| (k % 17) as f32 / 17.0 - 0.5)
        .collect();
    let mut y = vec![0.0; t * b * h];
    let mut ws = Workspace::new();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut times = Vec::new();
    pool.install(|| {
        for _ in 0..25 {
            let t0 = Instant::now();
            rnn.forward(
                &mut ws,
                SeqShape::new(t, b),
                SequenceInput::new(&x),
                SequenceOutputMut {
                    y: &mut y,
                    h_n: None,
                    c_n: None,
                },
            )
            .unwrap();
            times.push(t0.elapsed().as_secs_f64());
        }
    });
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let med = times[times.len() / 2];
    let flops = 2.0 * (t * b * cfg.gates() * h * (i + h)) as f64;
    println!(
        "{} w={} {isa} thr={threads} (B,H,I,T)=({b},{h},{i},{t}): {:.3} ms/seq  {:.1} GFLOP/s  ({:.1} us/step)",
        cfg.cell.name(), W::NAME, med * 1e3, flops / med / 1e9, med * 1e6 / t as f64
    );
}
