//! Golden gradients (PyTorch autograd in float64) through the kernels' training forward
//! and backward, at every instruction set this CPU has, keeping and recomputing
//! activations. Reads `$RNN_GOLDEN_DIR` (default: the workspace's `testdata/golden`)
//! and its `grads_onnx/` subdirectory.

mod common;

use common::train::{try_train, Upstream};
use rnn_kernels::{Activations, Isa, TrainingWorkspace};
use rnn_reference::testkit::golden::{
    golden_dir, load_grad_cases, run_grads, GradCase, GradOutputs, Tolerance,
};
use rnn_reference::testkit::{to_f32, to_f64};

fn run(gc: &GradCase, isa: Isa, mode: Activations) -> Result<GradOutputs, String> {
    let p = gc.case.problem_f32();
    let lstm = p.cfg.cell.has_cell_state();
    let up = Upstream {
        dy: to_f32(&gc.grads.dy),
        dh_n: Some(to_f32(&gc.grads.dh_n)),
        dc_n: lstm.then(|| to_f32(&gc.grads.dc_n)),
    };
    let t = try_train::<f32, f32>(&p, &up, isa, mode, &mut TrainingWorkspace::new())?;
    Ok(GradOutputs {
        forward: Some((to_f64(&t.y), to_f64(&t.h_n), to_f64(&t.c_n))),
        dx: to_f64(&t.dx),
        dh0: to_f64(&t.dh0),
        dc0: to_f64(&t.dc0),
        weights: t.weights.iter().map(|w| w.map(to_f64)).collect(),
    })
}

#[test]
fn golden_grads_kernels_every_isa() {
    let set = load_grad_cases(&golden_dir());
    for isa in Isa::available() {
        for mode in [Activations::Keep, Activations::Recompute] {
            run_grads(
                &set.cases,
                Tolerance::F32,
                Tolerance::F32,
                &format!("kernels backward {isa} {mode:?}"),
                |c| run(c, isa, mode),
            );
        }
    }
}
