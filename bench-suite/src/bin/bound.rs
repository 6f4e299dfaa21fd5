//! The batch-1 bound of issue "performance": how fast a batch-1 sequence could run on
//! this machine if the recurrent weights moved through the cache level they live in at
//! the measured read bandwidth, and the hoisted input projection ran at the measured
//! FMA peak. Prints the bound beside the kernels' own time.
//!
//! `cargo run --release -p rnn-bench-suite --bin bound -- [--threads N] [--dtype f32|bf16|f16]
//! [--all] [--json]`
//!
//! `--all` adds the batch-16/64 configurations (bound by the FMA peak); `--json` prints
//! only the bound, as JSON lines with `impl` = `"bound"` that `peers/join.py` turns into
//! a "best peer ÷ bound" column: the largest speedup over the peers this machine allows.
//!
//! Bandwidth (median of 9, like the kernels' median time; the best is shown too) is
//! measured for the working set of the recurrent weights of each
//! configuration (per thread: its share), read in the kernels' zig-zag order (forward
//! then backward), so it includes whatever part stays in L2 — the same access pattern
//! the kernels have, minus all compute.

use std::time::{Duration, Instant};

use rnn_bench_suite::{
    dot_bf16_peak_gflops, fma_peak_gflops, huge_page_buffer, BenchConfig, Cell, Problem, CONFIGS,
};
use rnn_kernels::half::{bf16, f16};
use rnn_kernels::{Element, Isa, PackedRnn, SeqShape, SequenceInput, SequenceOutputMut, Workspace};

/// Reads `buf` forward then backward `passes / 2` times; returns the sum (so the
/// reads are not optimised away). AVX-512 loads into 8 independent sums where the CPU
/// has them, so the loads, not the adds, are the limit. `two_streams` reads the two
/// halves of `buf` side by side (two sequential streams in flight: from L3 that keeps
/// more requests outstanding than one stream, ~5% more bandwidth here at 16 MiB).
fn zigzag_sum(buf: &[f32], passes: usize, two_streams: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: avx512f was detected just above.
        return unsafe { zigzag_sum_avx512(buf, passes, two_streams) };
    }
    let _ = two_streams;
    let mut acc = [0.0f32; 64];
    for pass in 0..passes {
        let chunks = buf.chunks_exact(64);
        let mut add = |c: &[f32]| acc.iter_mut().zip(c).for_each(|(a, v)| *a += v);
        if pass % 2 == 0 {
            chunks.for_each(&mut add);
        } else {
            chunks.rev().for_each(&mut add);
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn zigzag_sum_avx512(buf: &[f32], passes: usize, two_streams: bool) -> f32 {
    use std::arch::x86_64::*;
    let blocks = buf.len() / 128;
    let p = buf.as_ptr();
    let mut acc = [_mm512_setzero_ps(); 8];
    // Two streams: block i of the first half with block i of the second, 4 vectors each.
    let (streams, per) = if two_streams && blocks >= 2 {
        (2, blocks / 2)
    } else {
        (1, blocks)
    };
    for pass in 0..passes {
        for i in 0..per {
            let i = if pass % 2 == 0 { i } else { per - 1 - i };
            for (j, a) in acc.iter_mut().enumerate() {
                let (half, v) = if streams == 2 { (j % 2, j / 2) } else { (0, j) };
                let blk = half * per + i;
                let vecs = 8 / streams;
                for w in (v..8).step_by(vecs).take(streams) {
                    // SAFETY: block `blk` < blocks holds 128 floats inside `buf`.
                    *a = _mm512_add_ps(*a, unsafe { _mm512_loadu_ps(p.add(blk * 128 + 16 * w)) });
                }
            }
        }
    }
    let mut total = _mm512_setzero_ps();
    for a in acc {
        total = _mm512_add_ps(total, a);
    }
    _mm512_reduce_add_ps(total)
}

/// Read bandwidth in bytes/s with `threads` threads each streaming its own `bytes`:
/// `(median, best)` of 9 measurements of ~50 ms, for the faster of a one-stream and a
/// two-stream read. The median is the figure the bound
/// uses, the same statistic as the kernels' time (this VM's bandwidth moves 5-20%
/// between measurements); the best is printed beside it.
fn read_bandwidth(bytes: usize, threads: usize) -> (f64, f64) {
    let n = (bytes / 4).max(16);
    let bufs: Vec<Vec<f32>> = (0..threads)
        .map(|t| huge_page_buffer(n, t as f32 * 1e-9))
        .collect();
    // Enough passes for ~50 ms per measurement.
    let passes = ((50e6 / (bytes as f64 / 60.0)).ceil() as usize).clamp(4, 100_000);
    let moved = (bytes * threads * passes) as f64;
    // One and two streams alternately; the faster pattern (by median) sets the bound.
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..9 {
        for (two, t) in times.iter_mut().enumerate() {
            let t0 = Instant::now();
            std::thread::scope(|s| {
                for b in &bufs {
                    s.spawn(move || std::hint::black_box(zigzag_sum(b, passes, two == 1)));
                }
            });
            t.push(t0.elapsed().as_secs_f64());
        }
    }
    for t in &mut times {
        t.sort_by(f64::total_cmp);
    }
    let best = times
        .iter()
        .min_by(|a, b| a[a.len() / 2].total_cmp(&b[b.len() / 2]));
    let t = best.expect("two patterns");
    (moved / t[t.len() / 2], moved / t[0])
}

/// The kernels' median time with weights, `x` and `y` all in `W` (as a framework
/// holding `W` tensors would call them).
fn kernels_time<W: Element>(p: &Problem, threads: usize) -> f64 {
    let rnn = PackedRnn::<W>::pack(&p.cfg, &[p.weights()]).unwrap();
    let (b, t) = (p.shape.batch, p.shape.steps);
    let x: Vec<W> = p.x_prefix(t).iter().map(|&v| W::from_f32(v)).collect();
    let mut y = vec![W::default(); t * b * p.shape.hidden];
    let mut ws = Workspace::new();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut times = Vec::new();
    pool.install(|| {
        for _ in 0..15 {
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
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
    };
    let flag = |k: &str| args.iter().any(|a| a == k);
    let threads: usize = get("--threads").map_or(1, |s| s.parse().expect("--threads N"));
    let dtype = get("--dtype").map_or("f32", String::as_str);
    let (all, json) = (flag("--all"), flag("--json"));
    let wbytes = match dtype {
        "f32" => 4,
        "f16" | "bf16" => 2,
        other => panic!("unknown dtype {other}"),
    };
    // The path the kernels will take (`RNN_KERNELS_ISA` or the best this CPU has).
    let isa = Isa::default_for_process().unwrap_or_else(|_| Isa::best());
    let fma = fma_peak_gflops(isa, Duration::from_millis(100)).unwrap_or(f64::NAN) * 1e9;
    // bf16 inputs and weights on AVX512-BF16: the input projection runs on `vdpbf16ps`.
    let dot = (dtype == "bf16" && isa == Isa::Avx512Bf16)
        .then(|| dot_bf16_peak_gflops(Duration::from_millis(100)))
        .flatten();
    let in_peak = dot.map_or(fma, |d| d * 1e9);
    // Human-readable text goes to stderr with --json, so stdout is JSON lines only.
    let say = |line: String| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    say(format!(
        "bound, {dtype} weights and inputs, {threads} thread(s), {isa}: FMA peak {:.1} GFLOP/s per core{}",
        fma / 1e9,
        dot.map_or(String::new(), |d| format!(", vdpbf16ps {d:.1} GFLOP/s per core (input projection)"))
    ));
    say("bound = input-projection FLOPs / (its peak x threads) + T x max(recurrent FLOPs per step / (FMA peak x threads), recurrent weight bytes per step / measured zig-zag read bandwidth of each thread's share); batch 1 is bandwidth-bound, batch >= 16 FMA-bound".into());
    say("| cell | B,H,I,T | W_hh per thread | read GB/s, all threads (median / best) | bound ms | kernels ms | kernels / bound (best-bandwidth bound) |".into());
    say("|---|---|---:|---:|---:|---:|---:|".into());
    for cell in [Cell::Lstm, Cell::Gru, Cell::Rnn] {
        for cfg in CONFIGS
            .iter()
            .filter(|c: &&BenchConfig| all || c.batch == 1)
        {
            let g = cell.gates();
            let (b, h, i, t) = (cfg.batch, cfg.hidden, cfg.input, cfg.steps);
            let rec_bytes = g * h * h * wbytes;
            let per_thread = rec_bytes / threads;
            let (bw, bw_best) = read_bandwidth(per_thread, threads);
            let input_flops = 2.0 * (t * b * g * h * i) as f64;
            let rec_flops = 2.0 * (b * g * h * h) as f64;
            let step = (rec_flops / (fma * threads as f64)).max(rec_bytes as f64 / bw);
            let bound = input_flops / (in_peak * threads as f64) + t as f64 * step;
            let p = Problem::new(cell, *cfg);
            // With --json the kernels are timed by `report`; only the bound is printed.
            let ours = if json {
                f64::NAN
            } else {
                match dtype {
                    "f16" => kernels_time::<f16>(&p, threads),
                    "bf16" => kernels_time::<bf16>(&p, threads),
                    _ => kernels_time::<f32>(&p, threads),
                }
            };
            let best_step = (rec_flops / (fma * threads as f64)).max(rec_bytes as f64 / bw_best);
            let best_bound = input_flops / (in_peak * threads as f64) + t as f64 * best_step;
            say(format!(
                "| {} | {b},{h},{i},{t} | {:.2} MiB | {:.0} / {:.0} | {:.2} | {:.2} | {:.2} ({:.2}) |",
                cell.name(),
                per_thread as f64 / (1 << 20) as f64,
                bw / 1e9,
                bw_best / 1e9,
                bound * 1e3,
                ours * 1e3,
                ours / bound,
                ours / best_bound
            ));
            if json {
                let flops = input_flops + t as f64 * rec_flops;
                println!(
                    "{{\"impl\": \"bound\", \"isa\": \"{isa}\", \"dtype\": \"{dtype}\", \"cell\": \"{}\", \"batch\": {b}, \"hidden\": {h}, \"input\": {i}, \"steps\": {t}, \"threads\": {threads}, \"s_per_seq\": {bound}, \"gflops\": {}}}",
                    cell.name(),
                    flops / bound / 1e9
                );
            }
        }
    }
}
