//! The training API's bad-input contract: `forward_train` checks what `forward` checks,
//! and `backward` / `backward_onnx` name every bad argument (upstream gradients, output
//! buffers, gradient sets and their parts, a workspace without a matching forward).

use rnn_kernels::{
    Error, GradientsMut, LayerGradsMut, OnnxGradsMut, OutputGrads, OwnedLayerWeights, RnnConfig,
    SeqShape, SequenceInput, TrainingWorkspace,
};

use super::{
    expect, packed, vals, weights, Outs, Want, GRU, LSTM, LSTM_NORM, LSTM_PEEP, LSTM_PROJ, TANH,
};

/// Buffers of a backward call for `cfg` and `shape`, all the right size.
struct Bufs {
    dy: Vec<f32>,
    dh_n: Vec<f32>,
    dc_n: Vec<f32>,
    dx: Vec<f32>,
    dh0: Vec<f32>,
    dc0: Vec<f32>,
    grads: Vec<OwnedLayerWeights<f32>>,
}

impl Bufs {
    fn new(cfg: &RnnConfig, shape: SeqShape) -> Self {
        let d = shape.dims(cfg).unwrap();
        Bufs {
            dy: vals(d.y, 1),
            dh_n: vals(d.h, 2),
            dc_n: vals(d.c, 3),
            dx: vec![0.0; d.x],
            dh0: vec![0.0; d.h],
            dc0: vec![0.0; d.c],
            grads: weights(cfg),
        }
    }
}

/// A packed network of `cfg` and a workspace its training forward filled.
fn trained(cfg: &RnnConfig, shape: SeqShape) -> (rnn_kernels::PackedRnn, TrainingWorkspace) {
    let rnn = packed(cfg);
    let mut tws = TrainingWorkspace::new();
    let x = vals(shape.dims(cfg).unwrap().x, 7);
    let mut o = Outs::new(cfg, shape);
    let lstm = cfg.cell.has_cell_state();
    rnn.forward_train(&mut tws, shape, SequenceInput::new(&x), o.out(lstm))
        .unwrap();
    (rnn, tws)
}

/// One mistake in a backward call.
type Mistake = fn(&mut Bufs);

#[test]
fn backward_errors() {
    let shape = SeqShape::new(3, 2);
    let lstm = RnnConfig::new(LSTM, 3, 4);
    let rows: &[(&str, RnnConfig, Mistake, Want)] = &[
        ("dy", lstm, |b| b.dy.truncate(5), Want::Length(24, 5)),
        ("dh_n", lstm, |b| b.dh_n.push(0.0), Want::Length(8, 9)),
        (
            "dc_n",
            lstm,
            |b| b.dc_n.pop().map(drop).unwrap(),
            Want::Length(8, 7),
        ),
        ("dx", lstm, |b| b.dx.push(0.0), Want::Length(18, 19)),
        ("dh0", lstm, |b| b.dh0.clear(), Want::Length(8, 0)),
        ("dc0", lstm, |b| b.dc0.push(1.0), Want::Length(8, 9)),
        (
            "weights (gradient sets, layer * directions)",
            lstm,
            |b| b.grads.clear(),
            Want::Length(1, 0),
        ),
        (
            "weights[0].dw_ih",
            lstm,
            |b| b.grads[0].w_ih.pop().map(drop).unwrap(),
            Want::Length(48, 47),
        ),
        (
            "weights[0].dw_hh",
            lstm,
            |b| b.grads[0].w_hh.push(0.0),
            Want::Length(64, 65),
        ),
        (
            "weights[0].db_ih",
            lstm,
            |b| b.grads[0].b_ih = Some(vec![0.0; 3]),
            Want::Length(16, 3),
        ),
        (
            "weights[0].db_hh",
            lstm,
            |b| b.grads[0].b_hh = Some(vec![0.0; 17]),
            Want::Length(16, 17),
        ),
        (
            "weights[0].dw_hr",
            lstm,
            |b| b.grads[0].w_hr = Some(vec![0.0; 8]),
            Want::Invalid,
        ),
        (
            "weights[0].dpeephole",
            lstm,
            |b| b.grads[0].peephole = Some(vec![0.0; 12]),
            Want::Invalid,
        ),
        (
            "weights[0].dw_hr",
            RnnConfig::new(LSTM_PROJ, 3, 4),
            |b| b.grads[0].w_hr = None,
            Want::Invalid,
        ),
        (
            "weights[0].dpeephole",
            RnnConfig::new(LSTM_PEEP, 3, 4),
            |b| b.grads[0].peephole = None,
            Want::Invalid,
        ),
        (
            "weights[0].dlayer_norm",
            lstm,
            |b| b.grads[0].layer_norm = Some(vec![0.0; 16]),
            Want::Invalid,
        ),
        (
            "weights[0].dlayer_norm",
            RnnConfig::new(LSTM_NORM, 3, 4),
            |b| b.grads[0].layer_norm = None,
            Want::Invalid,
        ),
        (
            "weights[0].dlayer_norm",
            RnnConfig::new(LSTM_NORM, 3, 4),
            |b| b.grads[0].layer_norm = Some(vec![0.0; 15]),
            Want::Length(16, 15),
        ),
        (
            "dc_n",
            RnnConfig::new(GRU, 3, 4),
            |b| b.dc_n = vec![0.0; 8],
            Want::Invalid,
        ),
        (
            "dc0",
            RnnConfig::new(TANH, 3, 4),
            |b| b.dc0 = vec![0.0; 8],
            Want::Invalid,
        ),
    ];
    for &(arg, cfg, mistake, want) in rows {
        let (rnn, mut tws) = trained(&cfg, shape);
        let mut b = Bufs::new(&cfg, shape);
        mistake(&mut b);
        let has_c = !b.dc_n.is_empty();
        let mut sets: Vec<LayerGradsMut<'_>> =
            b.grads.iter_mut().map(LayerGradsMut::from_owned).collect();
        let r = rnn.backward(
            &mut tws,
            OutputGrads {
                dy: &b.dy,
                dh_n: Some(&b.dh_n),
                dc_n: has_c.then_some(&b.dc_n[..]),
            },
            GradientsMut {
                dx: Some(&mut b.dx),
                dh0: Some(&mut b.dh0),
                dc0: (!b.dc0.is_empty()).then_some(&mut b.dc0[..]),
                dattention: None,
                weights: &mut sets,
            },
        );
        expect(r, arg, want);
    }
}

/// Without a training forward, or after one of another network, `backward` refuses.
#[test]
fn backward_needs_its_own_forward() {
    let shape = SeqShape::new(2, 1);
    let cfg = RnnConfig::new(GRU, 3, 4);
    let run = |rnn: &rnn_kernels::PackedRnn, tws: &mut TrainingWorkspace| -> Result<(), Error> {
        let mut b = Bufs::new(&cfg, shape);
        let mut sets: Vec<LayerGradsMut<'_>> =
            b.grads.iter_mut().map(LayerGradsMut::from_owned).collect();
        rnn.backward(
            tws,
            OutputGrads::new(&b.dy),
            GradientsMut {
                dx: None,
                dh0: None,
                dc0: None,
                dattention: None,
                weights: &mut sets,
            },
        )
    };
    let rnn = packed(&cfg);
    expect(
        run(&rnn, &mut TrainingWorkspace::new()),
        "tws",
        Want::Invalid,
    );
    let other = RnnConfig::new(LSTM, 3, 4);
    let (_, mut tws) = trained(&other, shape);
    expect(run(&rnn, &mut tws), "tws", Want::Invalid);
    let (rnn, mut tws) = trained(&cfg, shape);
    assert!(run(&rnn, &mut tws).is_ok());
}

#[test]
fn backward_onnx_errors() {
    let shape = SeqShape::new(2, 1);
    type OnnxMistake = fn(&mut [Vec<f32>; 4]);
    let rows: &[(&str, RnnConfig, OnnxMistake, Want)] = &[
        (
            "dW",
            RnnConfig::new(GRU, 3, 4),
            |a| a[0].pop().map(drop).unwrap(),
            Want::Length(36, 35),
        ),
        (
            "dR",
            RnnConfig::new(GRU, 3, 4),
            |a| a[1].push(0.0),
            Want::Length(48, 49),
        ),
        (
            "dB",
            RnnConfig::new(GRU, 3, 4),
            |a| a[2].truncate(3),
            Want::Length(24, 3),
        ),
        (
            "dP",
            RnnConfig::new(LSTM_PEEP, 3, 4),
            |a| a[3].clear(),
            Want::Invalid,
        ),
        (
            "dP",
            RnnConfig::new(GRU, 3, 4),
            |a| a[3] = vec![0.0; 12],
            Want::Invalid,
        ),
        (
            "num_layers",
            RnnConfig::new(GRU, 3, 4).with_layers(2),
            |_| {},
            Want::Invalid,
        ),
        (
            "proj_size",
            RnnConfig::new(LSTM_PROJ, 3, 4),
            |_| {},
            Want::Invalid,
        ),
        // ONNX has no CIFG.
        (
            "cell",
            RnnConfig::new(super::variants::lstm_cifg(false, None), 3, 4),
            |_| {},
            Want::Invalid,
        ),
    ];
    for &(arg, cfg, mistake, want) in rows {
        let (rnn, mut tws) = trained(&cfg, shape);
        let (g, h, i) = (cfg.gates(), cfg.hidden_size, cfg.input_size);
        let peep = if cfg.cell.has_peephole() { 3 * h } else { 0 };
        let mut a = [
            vec![0.0; g * h * i],
            vec![0.0; g * h * h],
            vec![0.0; 2 * g * h],
            vec![0.0; peep],
        ];
        mistake(&mut a);
        let dy = vals(shape.dims(&cfg).unwrap().y, 1);
        let [dw, dr, db, dp] = &mut a;
        let r = rnn.backward_onnx(
            &mut tws,
            OutputGrads::new(&dy),
            OnnxGradsMut {
                dx: None,
                dh0: None,
                dc0: None,
                dw,
                dr,
                db: Some(db),
                dp: (!dp.is_empty()).then_some(&mut dp[..]),
            },
        );
        expect(r, arg, want);
    }
}
