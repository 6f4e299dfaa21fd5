//! int8 weights with f16 / bf16 inputs and outputs: the kernels widen the half inputs
//! exactly, run the same f32 arithmetic as with f32 I/O (the states between steps and
//! between layers stay f32), and round each output once. So a half-I/O run equals the
//! f32-I/O run on the widened inputs with its outputs rounded to the half type, bit for
//! bit, at every instruction set and activation scheme, 1 to 3 layers.

use rnn_kernels::half::{bf16, f16};
use rnn_kernels::{ActivationQuant, Element, Isa, PackedRnn, SequenceOutputMut, Workspace};
use rnn_reference::testkit::{problem, variants, Problem, TypedInputs};
use rnn_reference::views;

/// `(y, h_n, c_n)` of one run with I/O in `T`.
fn run<T: Element>(rnn: &PackedRnn<i8>, p: &Problem, inputs: &TypedInputs<T>) -> Vec<T> {
    let d = p.shape.dims(&p.cfg).unwrap();
    let lstm = p.cfg.cell.has_cell_state();
    let (mut y, mut h_n, mut c_n) = (
        vec![T::default(); d.y],
        vec![T::default(); d.h],
        vec![T::default(); d.c],
    );
    rnn.forward(
        &mut Workspace::new(),
        p.shape,
        inputs.input(),
        SequenceOutputMut {
            y: &mut y,
            h_n: Some(&mut h_n),
            c_n: lstm.then_some(&mut c_n[..]),
        },
    )
    .unwrap();
    y.extend(h_n);
    if lstm {
        y.extend(c_n);
    }
    y
}

/// Checks half type `T` on one problem at every ISA and scheme.
fn check<T: Element + PartialEq + std::fmt::Debug>(
    p: &Problem,
    to: impl Fn(f32) -> T + Copy,
    from: impl Fn(T) -> f32 + Copy,
) {
    let half = p.inputs_as(to);
    // The same inputs, widened: exactly what the half run sees.
    let wide = p.inputs_as(|v| from(to(v)));
    let packed = PackedRnn::<i8>::pack(&p.cfg, &views(&p.weights)).unwrap();
    for scheme in ActivationQuant::ALL {
        for isa in Isa::available() {
            let rnn = packed
                .clone()
                .with_isa(Some(isa))
                .unwrap()
                .with_activation_quant(scheme);
            let got = run::<T>(&rnn, p, &half);
            let want: Vec<T> = run::<f32>(&rnn, p, &wide).into_iter().map(to).collect();
            let bits = |v: &[T]| v.iter().map(|&x| from(x).to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&got),
                bits(&want),
                "{isa} {scheme:?} {:?} {:?}",
                p.cfg,
                p.shape
            );
        }
    }
}

#[test]
fn int8_with_half_io_is_the_f32_io_run_rounded_once() {
    for (n, cell) in variants::all(5).into_iter().enumerate() {
        for (k, (dims, layers)) in [((3, 7, 1, 4), 1), ((17, 33, 3, 5), 3), ((9, 20, 4, 3), 2)]
            .into_iter()
            .enumerate()
        {
            let p = problem(7000 + (n * 3 + k) as u64, dims, layers, Some(cell));
            check::<f16>(&p, f16::from_f32, f16::to_f32);
            check::<bf16>(&p, bf16::from_f32, bf16::to_f32);
        }
    }
}
