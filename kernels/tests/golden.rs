//! Golden vectors (PyTorch and ONNX Runtime) through the kernels, at every instruction
//! set this CPU has (and the one `RNN_KERNELS_ISA` names). Reads `$RNN_GOLDEN_DIR`,
//! defaulting to the workspace's `testdata/golden`; fails on a directory with no case.

mod common;

use common::{run_at, try_run_typed};
use rnn_kernels::{Isa, PackedRnn, ISA_ENV};
use rnn_reference::testkit::golden::{golden_dir, load_all, run_all, Case, Tolerance};
use rnn_reference::testkit::to_f64;
use rnn_reference::views;

type Outputs = (Vec<f64>, Vec<f64>, Vec<f64>);

fn run(case: &Case, isa: Isa) -> Result<Outputs, String> {
    let (y, h_n, c_n) = try_run_typed::<f32, f32>(&case.problem_f32(), isa)?;
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
    // The path `RNN_KERNELS_ISA` selects (or the best one), as calls without a forced
    // ISA run it. When the variable is set (CI's per-ISA runs), that path must be the
    // one that runs: `isa_env.rs` shows that the default is exactly it.
    let isa = Isa::default_for_process().expect("RNN_KERNELS_ISA names an available path");
    if let Some(v) = std::env::var(ISA_ENV).ok().filter(|v| !v.trim().is_empty()) {
        assert_eq!(Ok(isa), v.parse(), "{ISA_ENV}={v} but the default is {isa}");
    }
    let cases = load_all(&golden_dir());
    run_all(
        &cases,
        Tolerance::F32,
        &format!("kernels default ({isa})"),
        |c| {
            let p = c.problem_f32();
            let rnn = PackedRnn::from_pytorch(&p.cfg, &views(&p.weights)).unwrap();
            assert_eq!(rnn.isa().unwrap(), isa);
            let (y, h_n, c_n) = run_at::<f32, f32>(&p, None).map_err(|e| e.to_string())?;
            Ok((to_f64(&y), to_f64(&h_n), to_f64(&c_n)))
        },
    );
    eprintln!("golden: the process default ran {isa}");
}
