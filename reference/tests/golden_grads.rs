//! Golden gradients (PyTorch autograd in float64; `grads_onnx/`: autograd of an
//! implementation of the ONNX operators) through the reference backward, in f64 and in
//! f32. Reads `$RNN_GOLDEN_DIR` (default: the workspace's `testdata/golden`) and its
//! `grads_onnx/` subdirectory.

use rnn_reference::testkit::golden::{
    golden_dir, load_grad_cases, run_grads, GradCase, GradOutputs, Tolerance, UNSUPPORTED,
};
use rnn_reference::testkit::to_f32;
use rnn_reference::{backward, views, OutputGrads, OwnedLayerWeights, Real, SequenceInput};

/// The reference's training forward and backward on `case` in `T`.
fn run<T: Real>(gc: &GradCase, conv: impl Fn(&[f64]) -> Vec<T>) -> Result<GradOutputs, String> {
    let (case, g) = (&gc.case, &gc.grads);
    let lstm = case.cfg.cell.has_cell_state();
    let owned: Vec<OwnedLayerWeights<T>> = case.weights.iter().map(|w| w.map(&conv)).collect();
    let w = views(&owned);
    let (x, h0, c0) = (conv(&case.x), conv(&case.h0), conv(&case.c0));
    let (dy, dh_n, dc_n) = (conv(&g.dy), conv(&g.dh_n), conv(&g.dc_n));
    let input = SequenceInput {
        x: &x,
        h0: Some(&h0),
        c0: lstm.then_some(&c0[..]),
        seq_lens: case.seq_lens.as_deref(),
        attention: None,
    };
    let fwd =
        rnn_reference::forward(&case.cfg, &w, case.shape, input).map_err(|e| e.to_string())?;
    let grads = OutputGrads {
        dy: &dy,
        dh_n: Some(&dh_n),
        dc_n: lstm.then_some(&dc_n[..]),
    };
    let out = backward(&case.cfg, &w, case.shape, input, grads).map_err(|e| e.to_string())?;
    let wide = |v: &[T]| v.iter().map(|x| x.to_f64()).collect::<Vec<f64>>();
    Ok(GradOutputs {
        forward: Some((wide(&fwd.y), wide(&fwd.h_n), wide(&fwd.c_n))),
        dx: wide(&out.dx),
        dh0: wide(&out.dh0),
        dc0: wide(&out.dc0),
        weights: out.weights.iter().map(|w| w.map(wide)).collect(),
    })
}

#[test]
fn golden_grads_reference_f64() {
    let set = load_grad_cases(&golden_dir());
    run_grads(
        &set.cases,
        Tolerance::F64,
        Tolerance::F64,
        "reference backward f64",
        |c| run::<f64>(c, |v| v.to_vec()),
    );
}

#[test]
fn golden_grads_reference_f32() {
    let set = load_grad_cases(&golden_dir());
    run_grads(
        &set.cases,
        Tolerance::F32,
        Tolerance::F32,
        "reference backward f32",
        |c| run::<f32>(c, to_f32),
    );
}

/// The ONNX cases' `dW`, `dR`, `dB`, `dP` as the reference's ONNX conversion writes
/// them (the loader compared the PyTorch-layout sets above).
#[test]
fn golden_grads_onnx_layout() {
    let set = load_grad_cases(&golden_dir());
    let mut n = 0;
    for gc in set.cases.iter().filter(|c| c.grads.onnx.is_some()) {
        let got = run::<f64>(gc, |v| v.to_vec()).unwrap();
        let sets: Vec<OwnedLayerWeights<f64>> = got.weights;
        let onnx = rnn_reference::export_onnx(&gc.case.cfg, &views(&sets)).unwrap();
        let want = gc.grads.onnx.as_ref().unwrap();
        for (name, g, w) in [
            ("dW", Some(&onnx.w), Some(&want.w)),
            ("dR", Some(&onnx.r), Some(&want.r)),
            ("dB", onnx.b.as_ref(), want.b.as_ref()),
            ("dP", onnx.p.as_ref(), want.p.as_ref()),
        ] {
            assert_eq!(g.is_some(), w.is_some(), "{}: {name}", gc.case.name);
            if let (Some(g), Some(w)) = (g, w) {
                for (k, (a, b)) in g.iter().zip(w).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-9 + 1e-7 * b.abs(),
                        "{}: {name}[{k}] {a} vs {b}",
                        gc.case.name
                    );
                }
            }
        }
        n += 1;
    }
    if std::env::var_os("RNN_GOLDEN_DIR").is_none() {
        assert!(n >= 3, "only {n} ONNX gradient cases");
    }
}

/// Exactly the cases `UNSUPPORTED` lists are skipped in the project's own directory (a
/// variant that lands must leave the list); elsewhere, only listed cases may be.
#[test]
fn golden_grads_skip_exactly_the_listed_cases() {
    let set = load_grad_cases(&golden_dir());
    let listed: Vec<&str> = UNSUPPORTED.iter().map(|(n, _)| *n).collect();
    for s in &set.skipped {
        assert!(listed.contains(&s.as_str()), "{s} skipped but not listed");
    }
    if std::env::var_os("RNN_GOLDEN_DIR").is_none() {
        let mut skipped = set.skipped.clone();
        skipped.sort();
        let mut want: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(
            skipped, want,
            "the skipped cases must be exactly UNSUPPORTED (remove an entry once its variant works)"
        );
        // Every PyTorch case and the supported ONNX ones run.
        assert!(
            set.cases.len() >= 15,
            "only {} gradient cases",
            set.cases.len()
        );
    }
}

/// A wrong gradient fails the runner, naming the output.
#[test]
fn golden_grads_failures_name_the_output() {
    let mut set = load_grad_cases(&golden_dir());
    set.cases.truncate(1);
    set.cases[0].grads.weights[0].w_hh[0] += 1e-3;
    let err = std::panic::catch_unwind(|| {
        run_grads(
            &set.cases,
            Tolerance::F64,
            Tolerance::F64,
            "tampered",
            |c| run::<f64>(c, <[f64]>::to_vec),
        );
    })
    .expect_err("a tampered case must fail");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("dw_hh[0]: 1 of"), "{msg}");
}
