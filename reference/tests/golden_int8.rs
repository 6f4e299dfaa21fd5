//! int8 golden cases (`testdata/golden/int8/`, ONNX Runtime's `DynamicQuantizeLSTM`)
//! through the int8 oracle, and their dequantized weights through the f32 reference
//! against ONNX Runtime's f32 `LSTM` on the same weights (which checks the importer:
//! a wrong transpose, gate order or zero point moves those outputs by far more than the
//! f32 tolerance).

use rnn_reference::quant::{forward_quantized, quantized_views};
use rnn_reference::testkit::golden::{
    load_all_quant, quant_golden_dir, run_all, QuantCase, Tolerance,
};
use rnn_reference::testkit::to_f32;
use rnn_reference::{forward, views, SequenceInput};

type Outputs = (Vec<f64>, Vec<f64>, Vec<f64>);

fn run_quantized(q: &QuantCase) -> Result<Outputs, String> {
    let c = &q.case;
    let (x, h0, c0) = (to_f32(&c.x), to_f32(&c.h0), to_f32(&c.c0));
    let out = forward_quantized(
        &c.cfg,
        &quantized_views(&q.weights),
        q.scheme,
        c.shape,
        SequenceInput {
            x: &x,
            h0: Some(&h0),
            c0: Some(&c0),
            seq_lens: c.seq_lens.as_deref(),
            attention: None,
        },
        None,
    )
    .map_err(|e| e.to_string())?;
    Ok((out.y, out.h_n, out.c_n))
}

#[test]
fn golden_int8_oracle() {
    let cases = load_all_quant(&quant_golden_dir());
    assert_eq!(cases.len(), 3, "the three DynamicQuantizeLSTM cases");
    run_all(&cases, Tolerance::F32, "int8 oracle", run_quantized);
}

#[test]
fn golden_int8_dequantized_weights_match_onnx_runtime_f32() {
    let cases = load_all_quant(&quant_golden_dir());
    // The f32 outputs as the expected ones of otherwise identical cases.
    let f32_cases: Vec<_> = cases
        .iter()
        .map(|q| {
            let mut c = q.case.clone();
            (c.y, c.h_n, c.c_n) = q.f32_dequant.clone();
            c
        })
        .collect();
    run_all(
        &f32_cases,
        Tolerance::F32,
        "f32 reference on dequantized weights",
        |c| {
            let out = forward(
                &c.cfg,
                &views(&c.weights),
                c.shape,
                SequenceInput {
                    x: &c.x,
                    h0: Some(&c.h0),
                    c0: Some(&c.c0),
                    seq_lens: c.seq_lens.as_deref(),
                    attention: None,
                },
            )
            .map_err(|e| e.to_string())?;
            Ok((out.y, out.h_n, out.c_n))
        },
    );
}
