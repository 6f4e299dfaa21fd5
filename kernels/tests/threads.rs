//! Results are bit-identical whatever the thread count, and calls from inside the
//! pool (nested parallelism) complete.

mod common;

use common::{problem, run_kernels, Problem};
use rayon::prelude::*;
use rnn_kernels::Isa;
use rnn_reference::CellKind;

fn run(p: &Problem, isa: Isa) -> Vec<u32> {
    let (y, h_n, c_n) = run_kernels(p, isa);
    y.iter()
        .chain(&h_n)
        .chain(&c_n)
        .map(|v| v.to_bits())
        .collect()
}

fn cells() -> [CellKind; 4] {
    [
        CellKind::Lstm {
            peephole: true,
            proj_size: Some(70),
        },
        CellKind::Gru {
            linear_before_reset: false,
        },
        CellKind::Gru {
            linear_before_reset: true,
        },
        CellKind::Rnn {
            activation: rnn_reference::RnnActivation::Tanh,
        },
    ]
}

#[test]
fn bit_identical_for_any_thread_count() {
    for (seed, cell) in cells().into_iter().enumerate() {
        // Large enough that a step is split across the team.
        let p = problem(seed as u64, (96, 300, 5, 4), 2, Some(cell));
        for isa in Isa::available() {
            let outs: Vec<Vec<u32>> = [1, 2, 3]
                .iter()
                .map(|&n| {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(n)
                        .build()
                        .unwrap();
                    pool.install(|| run(&p, isa))
                })
                .collect();
            assert_eq!(outs[0], outs[1], "{isa} {cell:?}: 1 vs 2 threads");
            assert_eq!(outs[0], outs[2], "{isa} {cell:?}: 1 vs 3 threads");
        }
    }
}

/// bf16 weights and bf16 inputs/outputs (on AVX512-BF16: the `vdpbf16ps` input
/// projection split over the team; bf16 GRU panels of two tiles): bits of `y`, `h_n`,
/// `c_n`.
fn run_bf16(p: &Problem, isa: Isa) -> Vec<u16> {
    use rnn_kernels::half::bf16;
    use rnn_kernels::{PackedRnn, SequenceInput, SequenceOutputMut, Workspace};
    let rnn = PackedRnn::<bf16>::pack(&p.cfg, &rnn_reference::views(&p.weights))
        .unwrap()
        .with_isa(Some(isa))
        .unwrap();
    let d = p.shape.dims(&p.cfg).unwrap();
    let to = |v: &[f32]| v.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>();
    let (x, h0, c0) = (to(&p.x), p.h0.as_deref().map(to), p.c0.as_deref().map(to));
    let lstm = p.cfg.cell.has_cell_state();
    let (mut y, mut h_n, mut c_n) = (
        vec![bf16::NAN; d.y],
        vec![bf16::NAN; d.h],
        vec![bf16::NAN; d.c],
    );
    rnn.forward(
        &mut Workspace::new(),
        p.shape,
        SequenceInput {
            x: &x,
            h0: h0.as_deref(),
            c0: c0.as_deref(),
            seq_lens: p.seq_lens.as_deref(),
        },
        SequenceOutputMut {
            y: &mut y,
            h_n: Some(&mut h_n),
            c_n: lstm.then_some(&mut c_n[..]),
        },
    )
    .unwrap();
    y.iter()
        .chain(&h_n)
        .chain(&c_n)
        .map(|v| v.to_bits())
        .collect()
}

#[test]
fn bf16_bit_identical_for_any_thread_count() {
    for (seed, cell) in cells().into_iter().enumerate() {
        let p = problem(100 + seed as u64, (96, 300, 5, 4), 2, Some(cell));
        for isa in Isa::available() {
            let outs: Vec<Vec<u16>> = [1, 2, 3]
                .iter()
                .map(|&n| {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(n)
                        .build()
                        .unwrap();
                    pool.install(|| run_bf16(&p, isa))
                })
                .collect();
            assert_eq!(outs[0], outs[1], "{isa} {cell:?}: 1 vs 2 threads");
            assert_eq!(outs[0], outs[2], "{isa} {cell:?}: 1 vs 3 threads");
        }
    }
}

#[test]
fn nested_calls_from_inside_the_pool_complete() {
    let p = problem(9, (64, 256, 3, 3), 1, Some(cells()[0]));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let single = pool.install(|| run(&p, Isa::best()));
    let many: Vec<Vec<u32>> = pool.install(|| {
        (0..8)
            .into_par_iter()
            .map(|_| run(&p, Isa::best()))
            .collect()
    });
    assert!(many.iter().all(|m| *m == single));
}
