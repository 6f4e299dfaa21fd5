//! int8 weights through the kernels against the naive int8 oracle
//! (`rnn_reference::quant::forward_quantized`), every variant, every instruction set,
//! every activation scheme.
//!
//! The oracle runs each step on the kernels' own `y` as its recurrent input
//! (`forced_y`), so both quantize bit-identical `h` (and `x`) values to the same codes;
//! the integer sums are exact and scaled with the same two `f32` roundings, so what is
//! left is the `f32` cell after the products: the f32 tolerance of the float paths
//! (`testkit::tolerance`), plus the oracle's `slack` where a step's *second* operand
//! (a projection's `o ⊙ tanh(c')`, a reset-before GRU's `r ⊙ h`, computed by each side
//! in its own precision) lies within rounding distance of a code boundary.
//!
//! Also: packing f32 weights as int8 (`PackedRnn::<i8>::pack`) gives exactly what the
//! reference's symmetric per-channel quantization (`quantize_weights`) imported with
//! `from_quantized` gives.

use rnn_kernels::{ActivationQuant, Isa, PackedRnn, SequenceOutputMut, Workspace};
use rnn_reference::quant::{forward_quantized, quantize_weights, quantized_views};
use rnn_reference::testkit::{problem, tolerance, variants, Problem};
use rnn_reference::views;

type Outputs = (Vec<f32>, Vec<f32>, Vec<f32>);

fn run(rnn: &PackedRnn<i8>, p: &Problem) -> Outputs {
    let d = p.shape.dims(&p.cfg).unwrap();
    let lstm = p.cfg.cell.has_cell_state();
    let (mut y, mut h_n, mut c_n) = (
        vec![f32::NAN; d.y],
        vec![f32::NAN; d.h],
        vec![f32::NAN; d.c],
    );
    rnn.forward(
        &mut Workspace::new(),
        p.shape,
        p.input(),
        SequenceOutputMut {
            y: &mut y,
            h_n: Some(&mut h_n),
            c_n: lstm.then_some(&mut c_n[..]),
        },
    )
    .unwrap();
    (y, h_n, c_n)
}

/// Checks one problem at every ISA and scheme; returns the largest error seen as a
/// fraction of its bound.
fn check(p: &Problem) -> f64 {
    let q = quantize_weights(&p.cfg, &views(&p.weights)).unwrap();
    let (atol, rtol) = tolerance(&p.cfg, p.shape.steps, f64::from(p.x_scale));
    let mut worst = 0.0f64;
    for scheme in ActivationQuant::ALL {
        let mut p = p.clone();
        if scheme == ActivationQuant::OnnxRuntime {
            // Not implemented by the kernels with varying lengths (a named error).
            p.seq_lens = None;
        }
        for isa in Isa::available() {
            let rnn = PackedRnn::<i8>::from_quantized(&p.cfg, &quantized_views(&q))
                .unwrap()
                .with_isa(Some(isa))
                .unwrap()
                .with_activation_quant(scheme);
            let got = run(&rnn, &p);
            let packed = PackedRnn::<i8>::pack(&p.cfg, &views(&p.weights))
                .unwrap()
                .with_isa(Some(isa))
                .unwrap()
                .with_activation_quant(scheme);
            let bits = |o: &Outputs| -> Vec<u32> {
                o.0.iter()
                    .chain(&o.1)
                    .chain(&o.2)
                    .map(|v| v.to_bits())
                    .collect()
            };
            assert_eq!(
                bits(&run(&packed, &p)),
                bits(&got),
                "pack vs from_quantized {isa}"
            );
            let want = forward_quantized(
                &p.cfg,
                &quantized_views(&q),
                scheme,
                p.shape,
                p.input(),
                Some(&got.0),
            )
            .unwrap();
            let parts = [
                ("y", &got.0, &want.y, Some(&want.y_slack)),
                ("h_n", &got.1, &want.h_n, Some(&want.h_n_slack)),
                ("c_n", &got.2, &want.c_n, None),
            ];
            for (name, g, w, slack) in parts {
                assert_eq!(g.len(), w.len(), "{name}");
                for (e, (&g, &w)) in g.iter().zip(w.iter()).enumerate() {
                    let s = slack.map_or(0.0, |s| s[e]);
                    let bound = atol + rtol * w.abs() + s;
                    let err = (f64::from(g) - w).abs();
                    assert!(
                        err <= bound,
                        "{isa} {scheme:?} {:?} {name}[{e}]: kernels {g}, oracle {w}, error {err:e} > bound {bound:e}",
                        p.cfg.cell
                    );
                    if s == 0.0 {
                        worst = worst.max(err / bound);
                    }
                }
            }
        }
    }
    worst
}

#[test]
fn int8_kernels_match_the_oracle_every_variant_isa_and_scheme() {
    let mut worst = 0.0f64;
    for (n, cell) in variants::all(5).into_iter().enumerate() {
        for (k, dims) in [(3, 7, 1, 4), (17, 33, 3, 5), (64, 20, 7, 3)]
            .into_iter()
            .enumerate()
        {
            let p = problem(1000 + (n * 3 + k) as u64, dims, 1, Some(cell));
            worst = worst.max(check(&p));
        }
    }
    println!("largest error / bound: {worst:.3}");
}
