//! int8 weights with f16 / bf16 inputs and outputs: the kernels widen the half inputs
//! exactly, run the same f32 arithmetic as with f32 I/O (the states between steps and
//! between layers stay f32), and round each output once. So a half-I/O run equals the
//! f32-I/O run on the widened inputs with its outputs rounded to the half type, bit for
//! bit, at every instruction set and activation scheme, 1 to 3 layers.

mod common;

use common::{run_packed, Outputs};
use rnn_kernels::half::{bf16, f16};
use rnn_kernels::{ActivationQuant, Element, Isa, PackedRnn};
use rnn_reference::testkit::{problem, variants, Problem};
use rnn_reference::views;

/// Every output's bits, `y` then `h_n` then `c_n`.
fn bits((y, h_n, c_n): Outputs) -> Vec<u32> {
    y.iter()
        .chain(&h_n)
        .chain(&c_n)
        .map(|v| v.to_bits())
        .collect()
}

/// Checks half type `T` on one problem at every ISA and scheme.
fn check<T: Element>(p: &Problem, to: impl Fn(f32) -> T + Copy, from: impl Fn(T) -> f32 + Copy) {
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
            let got = run_packed(&rnn, p, &half).unwrap();
            let (y, h_n, c_n) = run_packed(&rnn, p, &wide).unwrap();
            // The f32-I/O outputs rounded to T once (widened back: exact).
            let round = |v: Vec<f32>| v.into_iter().map(|x| from(to(x))).collect();
            let want = (round(y), round(h_n), round(c_n));
            assert_eq!(
                bits(got),
                bits(want),
                "{isa} {scheme:?} {:?} {:?}",
                p.cfg,
                p.shape
            );
        }
    }
}

#[test]
fn int8_with_half_io_is_the_f32_io_run_rounded_once() {
    for (n, cell) in variants::all_with_layer_norm(5)
        .into_iter()
        .filter(|&c| variants::int8_capable(c))
        .enumerate()
    {
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
