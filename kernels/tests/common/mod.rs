//! The kernels' runners for the test kit's problems (`rnn_reference::testkit`, which
//! cannot depend on this crate): a problem through `PackedRnn` at one ISA.
#![allow(dead_code)]

use rnn_kernels::{Element, Error, Isa, PackedRnn, SequenceOutputMut, WeightType, Workspace};
use rnn_reference::testkit::{Problem, TypedInputs};
use rnn_reference::views;

/// Outputs `(y, h_n, c_n)` widened to `f32` (`c_n` empty for cells without a state).
pub type Outputs = (Vec<f32>, Vec<f32>, Vec<f32>);

/// The kernels (f32) on the problem at `isa`: `(y, h_n, c_n)`, outputs pre-filled
/// with NaN so an unwritten element cannot pass.
pub fn run_kernels(p: &Problem, isa: Isa) -> Outputs {
    run_typed::<f32, f32>(p, isa)
}

/// [`try_run_typed`], panicking on an error.
pub fn run_typed<W: WeightType, T: Element>(p: &Problem, isa: Isa) -> Outputs {
    try_run_typed::<W, T>(p, isa).unwrap()
}

/// [`run_at`] at `isa`, errors as text.
pub fn try_run_typed<W: WeightType, T: Element>(p: &Problem, isa: Isa) -> Result<Outputs, String> {
    run_at::<W, T>(p, Some(isa)).map_err(|e| e.to_string())
}

/// The kernels with weights stored as `W` and inputs/outputs in `T` (the problem's
/// values rounded to `T` on the way in) at `isa` (`None`: the process default),
/// outputs widened back to f32; pre-filled with NaN so an unwritten element cannot
/// pass.
pub fn run_at<W: WeightType, T: Element>(p: &Problem, isa: Option<Isa>) -> Result<Outputs, Error> {
    let rnn = PackedRnn::<W>::pack(&p.cfg, &views(&p.weights))?.with_isa(isa)?;
    run_packed(&rnn, p, &p.inputs_as(T::from_f32))
}

/// The packed network `rnn` on the problem's shape with `inputs` (in `T`), outputs
/// widened to f32; pre-filled with NaN so an unwritten element cannot pass.
pub fn run_packed<W: WeightType, T: Element>(
    rnn: &PackedRnn<W>,
    p: &Problem,
    inputs: &TypedInputs<T>,
) -> Result<Outputs, Error> {
    let d = p.shape.dims(&p.cfg)?;
    let lstm = p.cfg.cell.has_cell_state();
    let nan = T::from_f32(f32::NAN);
    let (mut y, mut h_n, mut c_n) = (vec![nan; d.y], vec![nan; d.h], vec![nan; d.c]);
    rnn.forward(
        &mut Workspace::new(),
        p.shape,
        inputs.input(),
        SequenceOutputMut {
            y: &mut y,
            h_n: Some(&mut h_n),
            c_n: lstm.then_some(&mut c_n[..]),
        },
    )?;
    let back = |v: &[T]| v.iter().map(|x| x.to_f32()).collect::<Vec<f32>>();
    Ok((back(&y), back(&h_n), back(&c_n)))
}

pub mod train;
