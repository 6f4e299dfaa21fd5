//! The int8 golden cases (ONNX Runtime's `DynamicQuantizeLSTM`, `testdata/golden/int8`)
//! through the kernels at every instruction set this CPU has, imported with
//! `PackedRnn::<i8>::from_quantized` and ONNX Runtime's activation scheme, at the
//! f32 tolerance (the integer sums are exact; see the golden README on rounding ties).

use rnn_kernels::{ActivationQuant, Isa, PackedRnn, SequenceOutputMut, Workspace};
use rnn_reference::quant::quantized_views;
use rnn_reference::testkit::golden::{
    load_all_quant, quant_golden_dir, run_all, QuantCase, Tolerance,
};
use rnn_reference::testkit::to_f64;

type Outputs = (Vec<f64>, Vec<f64>, Vec<f64>);

fn run(q: &QuantCase, isa: Isa, threads: usize) -> Result<Outputs, String> {
    let c = &q.case;
    let rnn = PackedRnn::<i8>::from_quantized(&c.cfg, &quantized_views(&q.weights))
        .and_then(|r| r.with_isa(Some(isa)))
        .map_err(|e| e.to_string())?
        .with_activation_quant(q.scheme);
    assert_eq!(q.scheme, ActivationQuant::OnnxRuntime);
    let p = c.problem_f32();
    let d = c.shape.dims(&c.cfg).map_err(|e| e.to_string())?;
    let (mut y, mut h_n, mut c_n) = (
        vec![f32::NAN; d.y],
        vec![f32::NAN; d.h],
        vec![f32::NAN; d.c],
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        rnn.forward(
            &mut Workspace::new(),
            c.shape,
            p.input(),
            SequenceOutputMut {
                y: &mut y,
                h_n: Some(&mut h_n),
                c_n: Some(&mut c_n),
            },
        )
    })
    .map_err(|e| e.to_string())?;
    Ok((to_f64(&y), to_f64(&h_n), to_f64(&c_n)))
}

#[test]
fn golden_int8_kernels_every_isa() {
    let cases = load_all_quant(&quant_golden_dir());
    assert_eq!(cases.len(), 3, "the three DynamicQuantizeLSTM cases");
    // One of them has sequences of different lengths (ONNX Runtime's alignment).
    assert!(cases.iter().any(|q| q
        .case
        .seq_lens
        .as_ref()
        .is_some_and(|l| l.iter().any(|&n| n != q.case.shape.steps))));
    for isa in Isa::available() {
        run_all(
            &cases,
            Tolerance::F32,
            &format!("int8 kernels {isa}"),
            |q| run(q, isa, 1),
        );
    }
}

#[test]
fn golden_int8_bit_identical_across_threads() {
    let cases: Vec<QuantCase> = load_all_quant(&quant_golden_dir());
    for isa in Isa::available() {
        for q in &cases {
            let one = run(q, isa, 1).unwrap();
            for threads in [2, 3] {
                assert_eq!(
                    run(q, isa, threads).unwrap(),
                    one,
                    "{} {isa} {threads} threads",
                    q.case.name
                );
            }
        }
    }
}
