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

/// The ONNX cases' `dW`, `dR`, `dB`, `dP` as `backward_onnx` writes them, at every ISA.
#[test]
fn golden_grads_onnx_layout_every_isa() {
    use rnn_kernels::{OnnxGradsMut, OutputGrads, PackedRnn, SequenceOutputMut};
    use rnn_reference::testkit::compare_tol as compare;
    let set = load_grad_cases(&golden_dir());
    let mut n = 0;
    for gc in set.cases.iter().filter(|c| c.grads.onnx.is_some()) {
        let (p, want) = (gc.case.problem_f32(), gc.grads.onnx.as_ref().unwrap());
        let lstm = p.cfg.cell.has_cell_state();
        for isa in Isa::available() {
            let rnn = PackedRnn::from_pytorch(&p.cfg, &rnn_reference::views(&p.weights))
                .unwrap()
                .with_isa(Some(isa))
                .unwrap();
            let d = p.shape.dims(&p.cfg).unwrap();
            let mut tws = TrainingWorkspace::new();
            let mut y = vec![0.0; d.y];
            let out = SequenceOutputMut {
                y: &mut y,
                h_n: None,
                c_n: None,
            };
            rnn.forward_train(&mut tws, p.shape, p.input(), out)
                .unwrap();
            let nan = |v: &Option<Vec<f64>>| v.as_ref().map(|v| vec![f32::NAN; v.len()]);
            let (mut dw, mut dr) = (vec![f32::NAN; want.w.len()], vec![f32::NAN; want.r.len()]);
            let (mut db, mut dp) = (nan(&want.b), nan(&want.p));
            let (dy, dh_n, dc_n) = (
                to_f32(&gc.grads.dy),
                to_f32(&gc.grads.dh_n),
                to_f32(&gc.grads.dc_n),
            );
            let up = OutputGrads {
                dy: &dy,
                dh_n: Some(&dh_n),
                dc_n: lstm.then_some(&dc_n[..]),
            };
            let out = OnnxGradsMut {
                dx: None,
                dh0: None,
                dc0: None,
                dw: &mut dw,
                dr: &mut dr,
                db: db.as_deref_mut(),
                dp: dp.as_deref_mut(),
            };
            rnn.backward_onnx(&mut tws, up, out).unwrap();
            let tol = (Tolerance::F32.atol, Tolerance::F32.rtol);
            let ctx = |e: String| panic!("{} {isa}: {e}", gc.case.name);
            compare("dW", &dw, &want.w, tol).unwrap_or_else(ctx);
            compare("dR", &dr, &want.r, tol).unwrap_or_else(ctx);
            if let (Some(g), Some(w)) = (&db, &want.b) {
                compare("dB", g, w, tol).unwrap_or_else(ctx);
            }
            if let (Some(g), Some(w)) = (&dp, &want.p) {
                compare("dP", g, w, tol).unwrap_or_else(ctx);
            }
        }
        n += 1;
    }
    if std::env::var_os("RNN_GOLDEN_DIR").is_none() {
        assert!(n >= 3, "only {n} ONNX gradient cases");
    }
}
