//! The step API with int8 weights (`PackedCell::<i8>`): a chain of steps gives, bit for
//! bit, what `PackedRnn::<i8>::forward` gives for the same one-layer, forward network
//! under the per-row schemes (each row's codes depend on that row alone), and the same
//! one step under ONNX Runtime's scheme (one step: `x` over the call's whole input);
//! `from_quantized` of the reference's quantization equals `pack`. Every variant, ISA
//! and scheme. (`PackedRnn::<i8>` itself is checked against the int8 oracle by
//! `int8_props.rs`.)

use rnn_kernels::{
    ActivationQuant, Direction, Isa, PackedCell, PackedRnn, SeqShape, SequenceInput,
    SequenceOutputMut, StepInput, StepOutputMut, Workspace,
};
use rnn_reference::quant::{quantize_weights, quantized_views};
use rnn_reference::testkit::{problem, variants};
use rnn_reference::views;

/// `(y [T, B, H_out], c_T)` of `steps` chained cell steps from `h0`, `c0` (an AUGRU's
/// attention `att` `[T, B]`).
fn chain(
    cell: &PackedCell<i8>,
    (x, att): (&[f32], Option<&[f32]>),
    (steps, batch): (usize, usize),
    h0: &[f32],
    c0: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let cfg = cell.config();
    let (i, ho) = (cfg.input_size, cfg.output_size());
    let mut ws = Workspace::new();
    let (mut h, mut c) = (h0.to_vec(), c0.map(<[f32]>::to_vec));
    let mut y = Vec::new();
    for t in 0..steps {
        let mut h1 = vec![0.0; batch * ho];
        let mut c1 = c.as_ref().map(|c| vec![0.0; c.len()]);
        cell.step(
            &mut ws,
            batch,
            StepInput {
                x: &x[t * batch * i..(t + 1) * batch * i],
                h: &h,
                c: c.as_deref(),
                attention: att.map(|a| &a[t * batch..(t + 1) * batch]),
            },
            StepOutputMut {
                h: &mut h1,
                c: c1.as_deref_mut(),
            },
        )
        .unwrap();
        y.extend_from_slice(&h1);
        (h, c) = (h1, c1);
    }
    (y, c.unwrap_or_default())
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn int8_cell_steps_match_the_sequence_forward() {
    for (n, kind) in variants::all_with_layer_norm(5)
        .into_iter()
        .filter(|&c| variants::int8_capable(c))
        .enumerate()
    {
        for (k, dims) in [(3, 7, 1, 4), (17, 33, 3, 5), (40, 20, 7, 3)]
            .into_iter()
            .enumerate()
        {
            let p = problem(4000 + (n * 3 + k) as u64, dims, 1, Some(kind));
            let cfg = p.cfg.with_direction(Direction::Forward);
            let (i, h, b, t) = dims;
            let ho = cfg.output_size();
            let w = views(&p.weights[..1]);
            let x: Vec<f32> = p.x[..t * b * i].to_vec();
            // AUGRU: attention values in [0, 1], time-major like `x`.
            let att: Option<Vec<f32>> = cfg
                .cell
                .has_attention()
                .then(|| (0..t * b).map(|e| ((e * 7) % 11) as f32 / 10.0).collect());
            let h0: Vec<f32> = (0..b * ho).map(|e| ((e % 7) as f32 - 3.0) * 0.2).collect();
            let c0: Option<Vec<f32>> = cfg
                .cell
                .has_cell_state()
                .then(|| (0..b * h).map(|e| ((e % 5) as f32 - 2.0) * 0.3).collect());
            let q = quantize_weights(&cfg, &w).unwrap();
            for scheme in ActivationQuant::ALL {
                // ONNX Runtime's x range covers the whole call: compare one step.
                let steps = if scheme.per_row() { t } else { 1 };
                for isa in Isa::available() {
                    let ctx = format!("{isa} {scheme:?} {cfg:?} B={b} T={steps}");
                    let cell = PackedCell::<i8>::pack(&cfg, &w[0])
                        .unwrap()
                        .with_isa(Some(isa))
                        .unwrap()
                        .with_activation_quant(scheme);
                    let imported = PackedCell::<i8>::from_quantized(&cfg, &quantized_views(&q)[0])
                        .unwrap()
                        .with_isa(Some(isa))
                        .unwrap()
                        .with_activation_quant(scheme);
                    let xa = (&x[..], att.as_deref());
                    let got = chain(&cell, xa, (steps, b), &h0, c0.as_deref());
                    let again = chain(&imported, xa, (steps, b), &h0, c0.as_deref());
                    assert_eq!(bits(&got.0), bits(&again.0), "{ctx}: from_quantized");
                    let rnn = PackedRnn::<i8>::pack(&cfg, &w)
                        .unwrap()
                        .with_isa(Some(isa))
                        .unwrap()
                        .with_activation_quant(scheme);
                    let mut y = vec![0.0; steps * b * ho];
                    let mut c_n = vec![0.0; c0.as_ref().map_or(0, Vec::len)];
                    rnn.forward(
                        &mut Workspace::new(),
                        SeqShape::new(steps, b),
                        SequenceInput {
                            x: &x[..steps * b * i],
                            h0: Some(&h0),
                            c0: c0.as_deref(),
                            seq_lens: None,
                            attention: att.as_deref().map(|a| &a[..steps * b]),
                        },
                        SequenceOutputMut {
                            y: &mut y,
                            h_n: None,
                            c_n: c0.is_some().then_some(&mut c_n[..]),
                        },
                    )
                    .unwrap();
                    assert_eq!(bits(&got.0), bits(&y), "{ctx}: y");
                    assert_eq!(bits(&got.1), bits(&c_n), "{ctx}: c");
                }
            }
        }
    }
}
