//! Golden vectors (PyTorch and ONNX Runtime) through the kernels, at every instruction
//! set this CPU has (and the one `RNN_KERNELS_ISA` names). Reads `$RNN_GOLDEN_DIR`,
//! defaulting to the workspace's `testdata/golden`; fails on a directory with no case.

#[path = "../../reference/tests/common/golden_case.rs"]
mod golden_case;

use golden_case::{golden_dir, load_all, run_all, to_f32, to_f64, Case, Tolerance};
use rnn_kernels::{Isa, PackedRnn, SequenceInput, SequenceOutputMut, Workspace};
use rnn_reference::views;

type Outputs = (Vec<f64>, Vec<f64>, Vec<f64>);

fn run(case: &Case, isa: Isa) -> Result<Outputs, String> {
    let owned = case.weights_f32();
    let rnn = PackedRnn::from_pytorch(&case.cfg, &views(&owned))
        .and_then(|r| r.with_isa(Some(isa)))
        .map_err(|e| e.to_string())?;
    let (x, h0, c0) = (to_f32(&case.x), to_f32(&case.h0), to_f32(&case.c0));
    let dims = case.shape.dims(&case.cfg).map_err(|e| e.to_string())?;
    let lstm = case.cfg.cell.has_cell_state();
    let (mut y, mut h_n, mut c_n) = (vec![0.0; dims.y], vec![0.0; dims.h], vec![0.0; dims.c]);
    rnn.forward(
        &mut Workspace::new(),
        case.shape,
        SequenceInput {
            x: &x,
            h0: Some(&h0),
            c0: lstm.then_some(&c0[..]),
            seq_lens: case.seq_lens.as_deref(),
        },
        SequenceOutputMut {
            y: &mut y,
            h_n: Some(&mut h_n),
            c_n: lstm.then_some(&mut c_n[..]),
        },
    )
    .map_err(|e| e.to_string())?;
    Ok((to_f64(&y), to_f64(&h_n), to_f64(&c_n)))
}

#[test]
fn golden_kernels_every_isa() {
    let cases = load_all(&golden_dir());
    let isas = Isa::available();
    assert!(!isas.is_empty());
    for isa in isas {
        run_all(&cases, Tolerance::F32, &format!("kernels {isa}"), |c| {
            run(c, isa)
        });
    }
}

#[test]
fn golden_kernels_process_default_isa() {
    // The path `RNN_KERNELS_ISA` selects (or the best one) must also pass.
    let isa = Isa::default_for_process().expect("RNN_KERNELS_ISA names an available path");
    let cases = load_all(&golden_dir());
    run_all(
        &cases,
        Tolerance::F32,
        &format!("kernels default ({isa})"),
        |c| run(c, isa),
    );
}
