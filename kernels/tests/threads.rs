//! Results are bit-identical whatever the thread count, and calls from inside the
//! pool (nested parallelism) complete.

mod common;

use common::train::{try_train, Upstream};
use common::{run_kernels, run_packed, run_typed};
use rayon::prelude::*;
use rnn_kernels::half::bf16;
use rnn_kernels::{ActivationQuant, Activations, Isa, PackedRnn, TrainingWorkspace};
use rnn_reference::testkit::{problem, variants, Problem};
use rnn_reference::{views, CellKind};

fn run(p: &Problem, isa: Isa) -> Vec<u32> {
    bits(run_kernels(p, isa))
}

/// The bits of every output.
fn bits((y, h_n, c_n): common::Outputs) -> Vec<u32> {
    y.iter()
        .chain(&h_n)
        .chain(&c_n)
        .map(|v| v.to_bits())
        .collect()
}

/// Every variant; projected LSTMs project 300 units to 70.
fn cells() -> [CellKind; variants::COUNT] {
    variants::all(70)
}

#[test]
fn bit_identical_for_any_thread_count() {
    for (seed, cell) in cells().into_iter().enumerate() {
        // Large enough that a step is split across the team.
        let p = problem(seed as u64, (96, 300, 5, 4), 2, Some(cell));
        for isa in Isa::available() {
            let outs = across_thread_counts(|| run(&p, isa));
            assert_eq!(outs[0], outs[1], "{isa} {cell:?}: 1 vs 2 threads");
            assert_eq!(outs[0], outs[2], "{isa} {cell:?}: 1 vs 3 threads");
        }
    }
}

/// `run` on pools of 1, 2 and 3 threads.
fn across_thread_counts(run: impl Fn() -> Vec<u32> + Sync) -> [Vec<u32>; 3] {
    [1, 2, 3].map(|n| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap();
        pool.install(&run)
    })
}

/// bf16 weights, inputs and outputs: on AVX512-BF16 the `vdpbf16ps` input projection
/// is split over the team, and bf16 GRU panels hold two tiles.
#[test]
fn bf16_bit_identical_for_any_thread_count() {
    for (seed, cell) in cells().into_iter().enumerate() {
        let p = problem(100 + seed as u64, (96, 300, 5, 4), 2, Some(cell));
        for isa in Isa::available() {
            // bf16 widens exactly, so f32 bits compare bf16 bits.
            let outs = across_thread_counts(|| bits(run_typed::<bf16, bf16>(&p, isa)));
            assert_eq!(outs[0], outs[1], "{isa} {cell:?}: 1 vs 2 threads");
            assert_eq!(outs[0], outs[2], "{isa} {cell:?}: 1 vs 3 threads");
        }
    }
}

/// int8 weights, every activation scheme: the operand rows are quantized split by rows
/// (one range per row, or the leader's range over every row of a block), the integer
/// product split by panels like the float one, and its sums are exact in any order.
#[test]
fn int8_bit_identical_for_any_thread_count() {
    for (seed, cell) in variants::all_with_layer_norm(70).into_iter().enumerate() {
        if !variants::int8_capable(cell) {
            continue; // a variant without an int8 path (none listed today)
        }
        let p = problem(200 + seed as u64, (96, 300, 5, 4), 2, Some(cell));
        let rnn = PackedRnn::<i8>::pack(&p.cfg, &views(&p.weights)).unwrap();
        for isa in Isa::available() {
            for scheme in ActivationQuant::ALL {
                let rnn = rnn
                    .clone()
                    .with_isa(Some(isa))
                    .unwrap()
                    .with_activation_quant(scheme);
                let outs = across_thread_counts(|| {
                    bits(run_packed(&rnn, &p, &p.inputs_as(|v| v)).unwrap())
                });
                assert_eq!(
                    outs[0], outs[1],
                    "{isa} {scheme:?} {cell:?}: 1 vs 2 threads"
                );
                assert_eq!(
                    outs[0], outs[2],
                    "{isa} {scheme:?} {cell:?}: 1 vs 3 threads"
                );
            }
        }
    }
}

/// Training (forward and backward, both activation modes): gradients are split by
/// output columns only, never by `k`, so they are bit-identical too.
#[test]
fn training_bit_identical_for_any_thread_count() {
    for (seed, cell) in variants::all_with_layer_norm(70).into_iter().enumerate() {
        let p = problem(200 + seed as u64, (96, 300, 5, 4), 2, Some(cell));
        let d = p.shape.dims(&p.cfg).unwrap();
        let mut rng = rnn_reference::testkit::SplitMix64::new(seed as u64);
        let up = Upstream {
            dy: rng.vec(d.y, 1.0),
            dh_n: Some(rng.vec(d.h, 1.0)),
            dc_n: p.cfg.cell.has_cell_state().then(|| rng.vec(d.c, 1.0)),
        };
        for isa in Isa::available() {
            for mode in [Activations::Keep, Activations::Recompute] {
                let outs = across_thread_counts(|| {
                    let mut tws = TrainingWorkspace::new();
                    try_train::<f32, f32>(&p, &up, isa, mode, &mut tws)
                        .unwrap()
                        .bits()
                });
                assert_eq!(outs[0], outs[1], "{isa} {mode:?} {cell:?}: 1 vs 2 threads");
                assert_eq!(outs[0], outs[2], "{isa} {mode:?} {cell:?}: 1 vs 3 threads");
            }
        }
    }
}

#[test]
fn nested_calls_from_inside_the_pool_complete() {
    let p = problem(9, (64, 256, 3, 3), 1, Some(variants::lstm(true, Some(70))));
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
