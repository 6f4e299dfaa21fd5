//! The cell equations against hand-written formulas, and the sequence semantics
//! (directions, layers, layouts, sequence lengths) against compositions of simpler runs.

use rnn_reference::testkit::{variants, Lcg};
use rnn_reference::{
    forward, step, step_with_attention, views, Activation, CellKind, Direction, GateActivations,
    OwnedLayerWeights, Real, RnnConfig, SeqShape, SequenceInput, SequenceOutput, TensorLayout,
};

fn random_weights(cfg: &RnnConfig, rng: &mut Lcg) -> Vec<OwnedLayerWeights<f64>> {
    (0..cfg.num_weight_sets())
        .map(|k| {
            let l = cfg.weight_lens(k / cfg.num_directions());
            OwnedLayerWeights {
                w_ih: rng.vec(l.w_ih),
                w_hh: rng.vec(l.w_hh),
                b_ih: Some(rng.vec(l.bias)),
                b_hh: Some(rng.vec(l.bias)),
                w_hr: l.w_hr.map(|n| rng.vec(n)),
                peephole: l.peephole.map(|n| rng.vec(n)),
                layer_norm: l.layer_norm.map(|n| rng.vec(n)),
            }
        })
        .collect()
}

fn close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-12, "{what}[{k}]: {x} vs {y}");
    }
}

/// Every variant; projected LSTMs project to 2 of the 4 hidden units used here.
const ALL_CELLS: [CellKind; variants::COUNT] = variants::all(2);

// ---- single steps against hand-written formulas (I = H = 1 unless noted) ----

#[test]
fn rnn_step_by_hand() {
    let cfg = RnnConfig::new(variants::RNN_TANH, 2, 1);
    let (w_ih, w_hh, b_ih, b_hh) = ([0.5, -0.25], [0.75], [0.1], [-0.2]);
    let w = rnn_reference::LayerWeights::new(&w_ih[..], &w_hh[..]).with_bias(&b_ih, &b_hh);
    // Two batch rows.
    let out = step(&cfg, &w, 2, &[1.0, 2.0, -1.0, 0.5], &[0.3, -0.4], None).unwrap();
    let want0 = (0.5 * 1.0 - 0.25 * 2.0 + 0.1 + 0.75 * 0.3 - 0.2f64).tanh();
    let (x10, h1) = (-1.0, -0.4);
    let want1 = (0.5 * x10 - 0.25 * 0.5 + 0.1 + 0.75 * h1 - 0.2f64).tanh();
    close(&out.h, &[want0, want1], "h");
    assert!(out.c.is_empty());
    // Relu and clip.
    let relu = RnnConfig::new(variants::RNN_RELU, 2, 1);
    let out = step(&relu, &w, 2, &[1.0, 2.0, -1.0, 0.5], &[0.3, -0.4], None).unwrap();
    close(&out.h, &[want0.atanh().max(0.0), 0.0], "relu h");
    let clipped = relu.with_clip(Some(0.01));
    let out = step(&clipped, &w, 1, &[4.0, 0.0], &[0.0], None).unwrap();
    close(&out.h, &[0.01f32 as f64], "clipped relu h");
}

/// ONNX activations by hand, one unit: every slot a different function (LSTM f
/// HardSigmoid, g Affine, h Softsign; GRU f HardSigmoid, g Elu below 0; RNN Softplus),
/// every argument inside the functions' non-flat parts, so each slot and parameter
/// shows in the output.
#[test]
fn onnx_activations_step_by_hand() {
    let lw = |a: &[f64; 4], b: &[f64; 4]| (a.to_vec(), b.to_vec());
    // LSTM, gate order i, f, g, o.
    let (w_ih, w_hh) = lw(&[1.0, 0.5, 0.25, -1.0], &[0.5, 0.0, 1.0, 0.5]);
    let w = rnn_reference::LayerWeights::new(&w_ih[..], &w_hh[..]);
    let acts = GateActivations {
        f: Activation::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        g: Activation::Affine {
            alpha: 2.0,
            beta: -0.5,
        },
        h: Activation::Softsign,
    };
    let cfg = RnnConfig::new(CellKind::LSTM, 1, 1).with_activations(Some([acts; 2]));
    let out = step(&cfg, &w, 1, &[1.0], &[0.5], Some(&[2.0])).unwrap();
    let hs = |z: f64| 0.2f32 as f64 * z + 0.5;
    // Arguments: i 1.25, f 0.5, g 0.75, o −0.75.
    let (i, f, g) = (hs(1.25), hs(0.5), 2.0 * 0.75 - 0.5);
    let c = f * 2.0 + i * g;
    let o = hs(-0.75);
    close(&out.c, &[c], "c");
    close(&out.h, &[o * c / (1.0 + c)], "h");

    // GRU, reset before the product (ONNX's default), gate order r, z, n.
    let (w_ih, w_hh) = ([1.0, -1.0, -0.5], [0.5, 0.5, -1.0]);
    let w = rnn_reference::LayerWeights::new(&w_ih[..], &w_hh[..]);
    let acts = GateActivations {
        f: Activation::HardSigmoid {
            alpha: 0.25,
            beta: 0.5,
        },
        g: Activation::Elu { alpha: 2.0 },
        h: Activation::Tanh, // unused by a GRU
    };
    let cfg = RnnConfig::new(CellKind::GRU_ONNX, 1, 1).with_activations(Some([acts; 2]));
    let out = step(&cfg, &w, 1, &[1.0], &[0.5], None).unwrap();
    let (r, z): (f64, f64) = (0.25 * 1.25 + 0.5, 0.25 * -0.75 + 0.5);
    let n_arg = -0.5 - r * 0.5;
    let n = 2.0 * n_arg.exp_m1();
    close(&out.h, &[(1.0 - z) * n + z * 0.5], "gru h");

    // RNN: Softplus replaces the cell's tanh.
    let (w_ih, w_hh) = ([2.0], [0.5]);
    let w = rnn_reference::LayerWeights::new(&w_ih[..], &w_hh[..]);
    let mut acts = GateActivations::standard(CellKind::RNN_TANH);
    acts.f = Activation::Softplus;
    let cfg = RnnConfig::new(CellKind::RNN_TANH, 1, 1).with_activations(Some([acts; 2]));
    let out = step(&cfg, &w, 1, &[1.0], &[-1.0], None).unwrap();
    close(&out.h, &[1.5f64.exp().ln_1p()], "rnn h");
    // Naming the standard functions changes nothing.
    let std = RnnConfig::new(CellKind::LSTM, 1, 1)
        .with_activations(Some([GateActivations::standard(CellKind::LSTM); 2]));
    assert!(std.custom_activations(0).is_none());
}

/// A network of one direction (forward or reverse) applies the first of the two
/// activation sets whatever direction index it is asked for (ONNX lists one set per
/// direction the operator runs); a bidirectional one the set of that direction.
#[test]
fn one_direction_takes_the_first_activation_set() {
    let first = GateActivations::standard(CellKind::GRU);
    let mut second = first;
    second.g = Activation::Softsign;
    let sets = Some([first, second]);
    let cfg = |dir| {
        RnnConfig::new(CellKind::GRU, 2, 3)
            .with_direction(dir)
            .with_activations(sets)
    };
    for dir in [Direction::Forward, Direction::Reverse] {
        for d in 0..2 {
            assert_eq!(
                cfg(dir).gate_activations(d),
                first,
                "{dir:?}, direction {d}"
            );
            assert!(cfg(dir).custom_activations(d).is_none(), "{dir:?}, {d}");
        }
    }
    for dir in [Direction::Bidirectional, Direction::BidirectionalSum] {
        assert_eq!(cfg(dir).gate_activations(0), first, "{dir:?}");
        assert_eq!(cfg(dir).gate_activations(1), second, "{dir:?}");
        assert_eq!(cfg(dir).custom_activations(1), Some(second), "{dir:?}");
    }
}

/// ONNX's `input_forget` LSTM step by hand (one unit, peepholes): `f = 1 − i`, the
/// forget gate's own weights, bias and peephole unused; every pre-activation inside
/// the sigmoid's steep part, so no term hides in a saturated gate.
#[test]
fn lstm_input_forget_step_by_hand() {
    let cfg = RnnConfig::new(variants::lstm_input_forget(true), 1, 1);
    // Gate rows i, f, g, o.
    let (w_ih, w_hh) = ([0.5, 9.0, -0.75, 0.25], [-0.5, 9.0, 0.625, 0.375]);
    let (b_ih, b_hh) = ([0.125, 9.0, 0.25, -0.125], [0.0625, 9.0, -0.25, 0.5]);
    let p = [0.3, 9.0, -0.4]; // i, f, o
    let mut w = rnn_reference::LayerWeights::new(&w_ih[..], &w_hh[..]).with_bias(&b_ih, &b_hh);
    w.peephole = Some(&p);
    let (x, h, c) = (0.8, -0.6, 0.9);
    let out = step(&cfg, &w, 1, &[x], &[h], Some(&[c])).unwrap();
    let pre = |r: usize| w_ih[r] * x + w_hh[r] * h + b_ih[r] + b_hh[r];
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let (pi, pg) = (pre(0) + p[0] * c, pre(2));
    let (i, g) = (sig(pi), pg.tanh());
    let c_new = (1.0 - i) * c + i * g;
    let po = pre(3) + p[2] * c_new;
    let h_new = sig(po) * c_new.tanh();
    for v in [pi, pg, po] {
        assert!(v.abs() < 1.5, "{v}: a gate saturates");
    }
    close(&out.c, &[c_new], "c");
    close(&out.h, &[h_new], "h");
}

/// TFLite's CIFG LSTM step by hand (one unit, peepholes): three gate blocks (f, g, o),
/// peepholes (f, o), `i = 1 − f`; every pre-activation inside the sigmoid's steep
/// part, so no term hides in a saturated gate. Then without peepholes, where the step
/// must equal ONNX's `input_forget` LSTM whose input gate carries the negated forget
/// weights (`σ(−z) = 1 − σ(z)`): the two couplings mirror each other.
#[test]
fn lstm_cifg_step_by_hand() {
    let cfg = RnnConfig::new(variants::lstm_cifg(true, None), 1, 1);
    // Gate rows f, g, o.
    let (w_ih, w_hh) = ([0.5, -0.75, 0.25], [-0.5, 0.625, 0.375]);
    let (b_ih, b_hh) = ([0.125, 0.25, -0.125], [0.0625, -0.25, 0.5]);
    let p = [0.3, -0.4]; // f, o
    let mut w = rnn_reference::LayerWeights::new(&w_ih[..], &w_hh[..]).with_bias(&b_ih, &b_hh);
    w.peephole = Some(&p);
    let (x, h, c) = (0.8, -0.6, 0.9);
    let out = step(&cfg, &w, 1, &[x], &[h], Some(&[c])).unwrap();
    let pre = |r: usize| w_ih[r] * x + w_hh[r] * h + b_ih[r] + b_hh[r];
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let (pf, pg) = (pre(0) + p[0] * c, pre(1));
    let (f, g) = (sig(pf), pg.tanh());
    let c_new = f * c + (1.0 - f) * g;
    let po = pre(2) + p[1] * c_new;
    let h_new = sig(po) * c_new.tanh();
    for v in [pf, pg, po] {
        assert!(v.abs() < 1.5, "{v}: a gate saturates");
    }
    close(&out.c, &[c_new], "c");
    close(&out.h, &[h_new], "h");

    // Without peepholes: ONNX's `input_forget` with i's rows = −(CIFG's f rows).
    let cifg = RnnConfig::new(variants::lstm_cifg(false, None), 1, 1);
    let w = rnn_reference::LayerWeights::new(&w_ih[..], &w_hh[..]).with_bias(&b_ih, &b_hh);
    let mirror = |v: &[f64]| [-v[0], 9.0, v[1], v[2]];
    let (m_ih, m_hh, m_bi, m_bh) = (mirror(&w_ih), mirror(&w_hh), mirror(&b_ih), mirror(&b_hh));
    let coupled = RnnConfig::new(variants::lstm_input_forget(false), 1, 1);
    let wc = rnn_reference::LayerWeights::new(&m_ih[..], &m_hh[..]).with_bias(&m_bi, &m_bh);
    let a = step(&cifg, &w, 1, &[x], &[h], Some(&[c])).unwrap();
    let b = step(&coupled, &wc, 1, &[x], &[h], Some(&[c])).unwrap();
    close(&a.c, &b.c, "c (CIFG vs input_forget)");
    close(&a.h, &b.h, "h (CIFG vs input_forget)");
}

/// TFLite's layer-norm LSTM by hand (H = 3, peepholes): each gate block's sums `z`
/// (no bias) normalised over the block, `n = (z − μ)/√(σ² + 1e-8)`, then `γ n + b`,
/// then the activation; o's peephole sees `c'`. Also CIFG (i = 1 − f). And the
/// normalisation matters: the same weights without `layer_norm` give other values.
#[test]
fn layer_norm_lstm_step_by_hand() {
    let (i_sz, hid) = (2usize, 3usize);
    let mut rng = Lcg::new(21);
    for cifg in [false, true] {
        let cell = variants::lstm_layer_norm(true, None, cifg);
        let cfg = RnnConfig::new(cell, i_sz, hid);
        let g = cfg.gates();
        let (w_ih, w_hh) = (rng.vec(g * hid * i_sz), rng.vec(g * hid * hid));
        let (b_ih, b_hh) = (rng.vec(g * hid), rng.vec(g * hid));
        let p = rng.vec((g - 1) * hid);
        let gamma: Vec<f64> = rng.vec(g * hid).iter().map(|v| 1.0 + 0.5 * v).collect();
        let mut w = rnn_reference::LayerWeights::new(&w_ih[..], &w_hh[..]).with_bias(&b_ih, &b_hh);
        w.peephole = Some(&p);
        w.layer_norm = Some(&gamma);
        let (x, h, c) = (rng.vec(i_sz), rng.vec(hid), rng.vec(hid));
        let out = step(&cfg, &w, 1, &x, &h, Some(&c)).unwrap();

        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        // Gate block k (PyTorch order; CIFG f, g, o) with peephole block pk on `state`.
        let gate = |k: usize, pk: Option<usize>, state: &[f64]| -> Vec<f64> {
            let z: Vec<f64> = (0..hid)
                .map(|j| {
                    let r = k * hid + j;
                    let mut z = (0..i_sz).map(|q| w_ih[r * i_sz + q] * x[q]).sum::<f64>();
                    z += (0..hid).map(|q| w_hh[r * hid + q] * h[q]).sum::<f64>();
                    z + pk.map_or(0.0, |pk| p[pk * hid + j] * state[j])
                })
                .collect();
            let mu = z.iter().sum::<f64>() / 3.0;
            let var = z.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / 3.0;
            (0..hid)
                .map(|j| {
                    let r = k * hid + j;
                    gamma[r] * (z[j] - mu) / (var + 1e-8f32 as f64).sqrt() + b_ih[r] + b_hh[r]
                })
                .collect()
        };
        let (f_pre, g_pre, i_pre) = if cifg {
            (gate(0, Some(0), &c), gate(1, None, &c), None)
        } else {
            (
                gate(1, Some(1), &c),
                gate(2, None, &c),
                Some(gate(0, Some(0), &c)),
            )
        };
        let f: Vec<f64> = f_pre.iter().map(|&v| sig(v)).collect();
        let i: Vec<f64> = match &i_pre {
            Some(v) => v.iter().map(|&v| sig(v)).collect(),
            None => f.iter().map(|f| 1.0 - f).collect(),
        };
        let c_new: Vec<f64> = (0..hid)
            .map(|j| f[j] * c[j] + i[j] * g_pre[j].tanh())
            .collect();
        let o_pre = if cifg {
            gate(2, Some(1), &c_new)
        } else {
            gate(3, Some(2), &c_new)
        };
        let h_new: Vec<f64> = (0..hid).map(|j| sig(o_pre[j]) * c_new[j].tanh()).collect();
        close(&out.c, &c_new, "c");
        close(&out.h, &h_new, "h");

        let plain = RnnConfig::new(variants::lstm(true, None), i_sz, hid);
        if !cifg {
            let mut wp = w;
            wp.layer_norm = None;
            let other = step(&plain, &wp, 1, &x, &h, Some(&c)).unwrap();
            let moved = other
                .h
                .iter()
                .zip(&out.h)
                .any(|(a, b)| (a - b).abs() > 1e-3);
            assert!(moved, "layer norm changes nothing here: {:?}", out.h);
        }
    }
}

/// The LSTM step by hand, with peepholes, a projection and a clip: once with a clip
/// that clips nothing (every pre-activation is asserted well inside it, where the
/// sigmoid's slope is above 0.1, so no saturated gate hides a peephole or a bias), once
/// with one that clips some gates and not others (asserted).
#[test]
fn lstm_step_by_hand_with_peephole_clip_and_projection() {
    let cell = variants::lstm(true, Some(1));
    let mut rng = Lcg::new(7);
    let w_ih = rng.vec(8); // [4H, 1]: i0 i1 f0 f1 g0 g1 o0 o1
    let w_hh = rng.vec(8); // [4H, P=1]
    let b_ih = rng.vec(8);
    let b_hh = rng.vec(8);
    let p = rng.vec(6); // i0 i1 f0 f1 o0 o1
    let w_hr = rng.vec(2); // [P=1, H=2]
    let mut w = rnn_reference::LayerWeights::new(&w_ih[..], &w_hh[..]).with_bias(&b_ih, &b_hh);
    w.peephole = Some(&p);
    w.w_hr = Some(&w_hr);
    let (x, h, c) = (0.9, -0.3, [0.4, -1.2]);
    for (limit, clips) in [(2.0f32, false), (0.5, true)] {
        let cfg = RnnConfig::new(cell, 1, 2).with_clip(Some(limit));
        let out = step(&cfg, &w, 1, &[x], &[h], Some(&c)).unwrap();
        let limit = f64::from(limit);
        let mut pres = Vec::new();
        let mut clip = |v: f64| {
            pres.push(v);
            v.clamp(-limit, limit)
        };
        let pre = |r: usize| w_ih[r] * x + b_ih[r] + w_hh[r] * h + b_hh[r];
        let mut m = [0.0; 2];
        let mut c_new = [0.0; 2];
        for j in 0..2 {
            let i = clip(pre(j) + p[j] * c[j]).sigmoid();
            let f = clip(pre(2 + j) + p[2 + j] * c[j]).sigmoid();
            let g = clip(pre(4 + j)).tanh();
            c_new[j] = f * c[j] + i * g;
            let o = clip(pre(6 + j) + p[4 + j] * c_new[j]).sigmoid();
            m[j] = o * c_new[j].tanh();
        }
        close(&out.c, &c_new, "c");
        close(&out.h, &[w_hr[0] * m[0] + w_hr[1] * m[1]], "h");
        let clipped = pres.iter().filter(|v| v.abs() > limit).count();
        if clips {
            assert!(clipped > 0 && clipped < pres.len(), "{pres:?}");
        } else {
            assert!(pres.iter().all(|v| v.abs() < 0.9 * limit), "{pres:?}");
        }
    }
}

/// Part `p` of a weight set: `w_ih`, `w_hh`, `b_ih`, `b_hh`, `w_hr`, `peephole`,
/// `layer_norm`.
fn part(w: &mut OwnedLayerWeights<f64>, p: usize) -> Option<&mut Vec<f64>> {
    match p {
        0 => Some(&mut w.w_ih),
        1 => Some(&mut w.w_hh),
        2 => w.b_ih.as_mut(),
        3 => w.b_hh.as_mut(),
        4 => w.w_hr.as_mut(),
        5 => w.peephole.as_mut(),
        _ => w.layer_norm.as_mut(),
    }
}

/// Every weight, bias, peephole, projection weight, layer-norm scale and input of one
/// step matters:
/// nudging any single one changes the output, for every variant (no term dropped or
/// cancelled; weights are small, so no gate saturates).
#[test]
fn every_parameter_moves_the_step_output() {
    let batch = 2;
    for cell in ALL_CELLS.into_iter().chain(variants::layer_norm_lstms(2)) {
        let cfg = RnnConfig::new(cell, 3, 4);
        let mut rng = Lcg::new(5);
        let mut w = random_weights(&cfg, &mut rng)[0].map(|v| v.iter().map(|x| 0.5 * x).collect());
        if cell == variants::RNN_RELU {
            // Every unit active (pre-activations > 0).
            w.b_ih.iter_mut().flatten().for_each(|b| *b += 4.0);
        }
        let x = rng.vec(batch * 3);
        let h = rng.vec(batch * cfg.output_size());
        let c = rng.vec(batch * 4);
        let lstm = cell.has_cell_state();
        // AUGRU: an attention in (0, 1), so both z and n reach h'.
        let a = [0.25, 0.6];
        let att = cell.has_attention().then_some(&a[..]);
        let run = |w: &OwnedLayerWeights<f64>, x: &[f64], h: &[f64], c: &[f64]| {
            let c = lstm.then_some(c);
            let out = step_with_attention(&cfg, &w.view(), batch, x, h, c, att).unwrap();
            [out.h, out.c].concat()
        };
        let base = run(&w, &x, &h, &c);
        let moved = |other: Vec<f64>| {
            let d = other.iter().zip(&base).map(|(a, b)| (a - b).abs());
            d.fold(0.0, f64::max) > 1e-7
        };
        let names = [
            "w_ih",
            "w_hh",
            "b_ih",
            "b_hh",
            "w_hr",
            "peephole",
            "layer_norm",
        ];
        // With `input_forget`, the forget gate's rows (gate block 1 of every part but
        // `w_hr`) act nowhere: nudging them must leave the output exactly as it was.
        let hid = cfg.hidden_size;
        let row_len = [3, cfg.output_size(), 1, 1, hid, 1, 1];
        for (p, name) in names.into_iter().enumerate() {
            let len = part(&mut w.clone(), p).map_or(0, |v| v.len());
            for k in 0..len {
                let mut n = w.clone();
                part(&mut n, p).unwrap()[k] += 1e-3;
                let out = run(&n, &x, &h, &c);
                let forget_row = (hid..2 * hid).contains(&(k / row_len[p]));
                if cell.input_forget() && p != 4 && forget_row {
                    assert_eq!(out, base, "{cell:?}: {name}[{k}] acts with input_forget");
                } else {
                    assert!(moved(out), "{cell:?}: {name}[{k}]");
                }
            }
        }
        let inputs: [(&str, &Vec<f64>); 3] = [("x", &x), ("h", &h), ("c", &c)];
        for (which, (name, v)) in inputs.into_iter().enumerate() {
            for k in 0..if which == 2 && !lstm { 0 } else { v.len() } {
                let mut n = [x.clone(), h.clone(), c.clone()];
                n[which][k] += 1e-3;
                assert!(moved(run(&w, &n[0], &n[1], &n[2])), "{cell:?}: {name}[{k}]");
            }
        }
    }
}

/// This crate's peephole GRU by hand (one unit, both reset forms): `p_r h` and `p_z h`
/// join r and z; every pre-activation in the sigmoid's steep part.
#[test]
fn gru_peephole_step_by_hand() {
    let (w_ih, w_hh) = ([0.5, -0.25, 0.75], [0.5, 0.375, -0.625]);
    let (b_ih, b_hh) = ([0.125, -0.25, 0.0625], [0.25, 0.125, -0.5]);
    let p = [0.6, -0.7];
    let (x, h) = (0.9, -0.8);
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    for lbr in [true, false] {
        let cfg = RnnConfig::new(variants::gru_peephole(lbr), 1, 1);
        let mut w = rnn_reference::LayerWeights::new(&w_ih[..], &w_hh[..]).with_bias(&b_ih, &b_hh);
        w.peephole = Some(&p);
        let out = step(&cfg, &w, 1, &[x], &[h], None).unwrap();
        let pr = w_ih[0] * x + b_ih[0] + w_hh[0] * h + b_hh[0] + p[0] * h;
        let pz = w_ih[1] * x + b_ih[1] + w_hh[1] * h + b_hh[1] + p[1] * h;
        let (r, z) = (sig(pr), sig(pz));
        let pn = if lbr {
            w_ih[2] * x + b_ih[2] + r * (w_hh[2] * h + b_hh[2])
        } else {
            w_ih[2] * x + b_ih[2] + w_hh[2] * (r * h) + b_hh[2]
        };
        let n = pn.tanh();
        for v in [pr, pz, pn] {
            assert!(v.abs() < 1.5, "{v}: a gate saturates");
        }
        close(&out.h, &[(1.0 - z) * n + z * h], &format!("h (lbr {lbr})"));
    }
}

/// The AUGRU by hand (one unit, both reset forms, oneDNN's definition): z' = (1 − a) z,
/// h' = (1 − z') n + z' h; a = 0 is the plain GRU, a = 1 gives h' = n.
#[test]
fn augru_step_by_hand() {
    let (w_ih, w_hh) = ([0.5, -0.25, 0.75], [0.5, 0.375, -0.625]);
    let (b_ih, b_hh) = ([0.125, -0.25, 0.0625], [0.25, 0.125, -0.5]);
    let (x, h) = ([0.9, -0.4], [-0.8, 0.3]);
    let a = [0.3, 0.85];
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    for lbr in [true, false] {
        let cfg = RnnConfig::new(variants::augru(lbr), 1, 1);
        let w = rnn_reference::LayerWeights::new(&w_ih[..], &w_hh[..]).with_bias(&b_ih, &b_hh);
        let out = step_with_attention(&cfg, &w, 2, &x, &h, None, Some(&a)).unwrap();
        let want: Vec<f64> = (0..2)
            .map(|b| {
                let (x, h) = (x[b], h[b]);
                let r = sig(w_ih[0] * x + b_ih[0] + w_hh[0] * h + b_hh[0]);
                let z = sig(w_ih[1] * x + b_ih[1] + w_hh[1] * h + b_hh[1]);
                let n = if lbr {
                    (w_ih[2] * x + b_ih[2] + r * (w_hh[2] * h + b_hh[2])).tanh()
                } else {
                    (w_ih[2] * x + b_ih[2] + w_hh[2] * (r * h) + b_hh[2]).tanh()
                };
                let zp = (1.0 - a[b]) * z;
                (1.0 - zp) * n + zp * h
            })
            .collect();
        close(&out.h, &want, &format!("h (lbr {lbr})"));
        // a = 0 is the plain GRU of the same form.
        let plain = RnnConfig::new(
            if lbr {
                CellKind::GRU
            } else {
                CellKind::GRU_ONNX
            },
            1,
            1,
        );
        let g = step(&plain, &w, 2, &x, &h, None).unwrap();
        let z0 = step_with_attention(&cfg, &w, 2, &x, &h, None, Some(&[0.0, 0.0])).unwrap();
        assert_eq!(z0.h, g.h, "a = 0 (lbr {lbr})");
        // a = 1: h' = n, independent of the update gate.
        let one = step_with_attention(&cfg, &w, 2, &x, &h, None, Some(&[1.0, 1.0])).unwrap();
        assert!(
            one.h != g.h && one.h.iter().all(|v| v.abs() < 1.0),
            "a = 1 (lbr {lbr})"
        );
    }
    // The attention is required for an AUGRU, refused for every other cell.
    let cfg = RnnConfig::new(variants::augru(true), 1, 1);
    let w = rnn_reference::LayerWeights::new(&w_ih[..], &w_hh[..]);
    let err = |r: rnn_reference::Result<rnn_reference::StepOutput<f64>>| match r {
        Err(rnn_reference::Error::Invalid { arg, .. })
        | Err(rnn_reference::Error::Length { arg, .. }) => arg,
        other => panic!("{other:?}"),
    };
    assert_eq!(err(step(&cfg, &w, 2, &x, &h, None)), "attention");
    assert_eq!(
        err(step_with_attention(
            &cfg,
            &w,
            2,
            &x,
            &h,
            None,
            Some(&a[..1])
        )),
        "attention"
    );
    let gru = RnnConfig::new(CellKind::GRU, 1, 1);
    assert_eq!(
        err(step_with_attention(&gru, &w, 2, &x, &h, None, Some(&a))),
        "attention"
    );
}

#[test]
fn gru_step_by_hand_both_forms() {
    let mut rng = Lcg::new(11);
    let (w_ih, w_hh, b_ih, b_hh) = (rng.vec(3), rng.vec(3), rng.vec(3), rng.vec(3));
    let w = rnn_reference::LayerWeights::new(&w_ih[..], &w_hh[..]).with_bias(&b_ih, &b_hh);
    let (x, h) = (0.7, -0.8);
    let clip = 0.3f32;
    let c = |v: f64| v.clamp(-(clip as f64), clip as f64);
    for lbr in [true, false] {
        for clipped in [false, true] {
            let cell = if lbr {
                CellKind::GRU
            } else {
                CellKind::GRU_ONNX
            };
            let cfg = RnnConfig::new(cell, 1, 1).with_clip(clipped.then_some(clip));
            let cl = |v: f64| if clipped { c(v) } else { v };
            let r = cl(w_ih[0] * x + b_ih[0] + w_hh[0] * h + b_hh[0]).sigmoid();
            let z = cl(w_ih[1] * x + b_ih[1] + w_hh[1] * h + b_hh[1]).sigmoid();
            let n = if lbr {
                cl(w_ih[2] * x + b_ih[2] + r * (w_hh[2] * h + b_hh[2])).tanh()
            } else {
                cl(w_ih[2] * x + b_ih[2] + w_hh[2] * (r * h) + b_hh[2]).tanh()
            };
            let want = (1.0 - z) * n + z * h;
            let out = step(&cfg, &w, 1, &[x], &[h], None).unwrap();
            close(&out.h, &[want], &format!("lbr {lbr} clip {clipped}"));
        }
    }
    // The two forms really differ.
    let a = RnnConfig::new(variants::GRU, 1, 1);
    let b = RnnConfig::new(variants::GRU_ONNX, 1, 1);
    let ha = step(&a, &w, 1, &[x], &[h], None).unwrap().h[0];
    let hb = step(&b, &w, 1, &[x], &[h], None).unwrap().h[0];
    assert!((ha - hb).abs() > 1e-6);
}

#[test]
fn missing_biases_are_zero() {
    let mut rng = Lcg::new(3);
    for cell in ALL_CELLS {
        let cfg = RnnConfig::new(cell, 3, 4);
        let owned = random_weights(&cfg, &mut rng);
        let mut zeroed = owned[0].clone();
        let nb = zeroed.b_ih.as_ref().unwrap().len();
        zeroed.b_ih = Some(vec![0.0; nb]);
        zeroed.b_hh = Some(vec![0.0; nb]);
        let mut none = owned[0].clone();
        none.b_ih = None;
        none.b_hh = None;
        let (x, h, c) = (rng.vec(6), rng.vec(2 * cfg.output_size()), rng.vec(8));
        let c = cell.has_cell_state().then_some(&c[..]);
        let att = cell.has_attention().then_some(&[0.5, 0.25][..]);
        let a = step_with_attention(&cfg, &zeroed.view(), 2, &x, &h, c, att).unwrap();
        let b = step_with_attention(&cfg, &none.view(), 2, &x, &h, c, att).unwrap();
        assert_eq!(a, b, "{cell:?}");
    }
}

#[test]
fn nan_propagates() {
    let cfg = RnnConfig::new(variants::LSTM, 1, 1);
    let w = rnn_reference::LayerWeights::new(&[1.0f32; 4][..], &[1.0f32; 4][..]);
    let out = step(&cfg, &w, 1, &[f32::NAN], &[0.0], Some(&[0.0])).unwrap();
    assert!(out.h[0].is_nan() && out.c[0].is_nan());
    let relu = RnnConfig::new(variants::RNN_RELU, 1, 1).with_clip(Some(1.0));
    let w = rnn_reference::LayerWeights::new(&[1.0f32][..], &[1.0f32][..]);
    assert!(step(&relu, &w, 1, &[f32::NAN], &[0.0], None).unwrap().h[0].is_nan());
}

// ---- sequences ----

#[derive(Clone)]
struct Problem {
    cfg: RnnConfig,
    weights: Vec<OwnedLayerWeights<f64>>,
    x: Vec<f64>,
    h0: Vec<f64>,
    c0: Vec<f64>,
    /// AUGRU's attention, time-major `[T, B]` (`run` transposes it for a batch-major
    /// shape); empty for every other cell.
    att: Vec<f64>,
}

fn problem(
    cell: CellKind,
    layers: usize,
    dir: Direction,
    t: usize,
    b: usize,
    seed: u64,
) -> Problem {
    let mut rng = Lcg::new(seed);
    let cfg = RnnConfig::new(cell, 3, 4)
        .with_layers(layers)
        .with_direction(dir);
    let weights = random_weights(&cfg, &mut rng);
    let d = SeqShape::new(t, b).dims(&cfg).unwrap();
    let mut p = Problem {
        cfg,
        weights,
        x: rng.vec(d.x),
        h0: rng.vec(d.h),
        c0: rng.vec(d.c),
        att: Vec::new(),
    };
    if cell.has_attention() {
        p.att = rng.vec(t * b).into_iter().map(f64::abs).collect();
    }
    p
}

fn run(p: &Problem, shape: SeqShape, x: &[f64], lens: Option<&[usize]>) -> SequenceOutput<f64> {
    let att = match shape.layout {
        TensorLayout::BatchMajor if !p.att.is_empty() => {
            transpose(&p.att, shape.steps, shape.batch, 1)
        }
        _ => p.att.clone(),
    };
    forward(
        &p.cfg,
        &views(&p.weights),
        shape,
        SequenceInput {
            x,
            h0: Some(&p.h0),
            c0: p.cfg.cell.has_cell_state().then_some(&p.c0[..]),
            seq_lens: lens,
            attention: p.cfg.cell.has_attention().then_some(&att[..]),
        },
    )
    .unwrap()
}

/// Reorders `[T, B, w]` rows as `[B, T, w]` (or back, swapping t and b).
fn transpose(v: &[f64], t: usize, b: usize, w: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(v.len());
    for bi in 0..b {
        for ti in 0..t {
            out.extend_from_slice(&v[(ti * b + bi) * w..(ti * b + bi + 1) * w]);
        }
    }
    out
}

/// Reverses the time axis of a time-major `[T, B, w]` tensor.
fn reverse_time(v: &[f64], t: usize, b: usize, w: usize) -> Vec<f64> {
    let row = b * w;
    (0..t)
        .rev()
        .flat_map(|ti| v[ti * row..(ti + 1) * row].to_vec())
        .collect()
}

#[test]
fn batch_major_is_time_major_transposed() {
    for (k, cell) in ALL_CELLS.into_iter().enumerate() {
        let (t, b) = (4, 3);
        let p = problem(cell, 2, Direction::Bidirectional, t, b, 100 + k as u64);
        let lens = [4, 0, 2];
        let tm = run(&p, SeqShape::new(t, b), &p.x, Some(&lens));
        let xb = transpose(&p.x, t, b, 3);
        let shape = SeqShape::new(t, b).with_layout(TensorLayout::BatchMajor);
        let bm = run(&p, shape, &xb, Some(&lens));
        let yw = 2 * p.cfg.output_size();
        close(&bm.y, &transpose(&tm.y, t, b, yw), "y");
        close(&bm.h_n, &tm.h_n, "h_n");
        close(&bm.c_n, &tm.c_n, "c_n");
    }
}

#[test]
fn reverse_is_forward_on_reversed_time() {
    for (k, cell) in ALL_CELLS.into_iter().enumerate() {
        let (t, b) = (5, 2);
        let fwd = problem(cell, 1, Direction::Forward, t, b, 200 + k as u64);
        let rev = Problem {
            cfg: fwd.cfg.with_direction(Direction::Reverse),
            ..problem(cell, 1, Direction::Forward, t, b, 200 + k as u64)
        };
        // The forward run on reversed time reads the attention reversed too.
        let fwd = Problem {
            att: if cell.has_attention() {
                reverse_time(&fwd.att, t, b, 1)
            } else {
                Vec::new()
            },
            ..fwd
        };
        let shape = SeqShape::new(t, b);
        let a = run(&rev, shape, &fwd.x, None);
        let b_out = run(&fwd, shape, &reverse_time(&fwd.x, t, b, 3), None);
        let w = fwd.cfg.output_size();
        close(&a.y, &reverse_time(&b_out.y, t, b, w), "y");
        close(&a.h_n, &b_out.h_n, "h_n");
        close(&a.c_n, &b_out.c_n, "c_n");
    }
}

#[test]
fn bidirectional_concatenates_forward_then_reverse() {
    for (k, cell) in ALL_CELLS.into_iter().enumerate() {
        let (t, b) = (4, 2);
        let bi = problem(cell, 1, Direction::Bidirectional, t, b, 300 + k as u64);
        let shape = SeqShape::new(t, b);
        let lens = [3, 4];
        let out = run(&bi, shape, &bi.x, Some(&lens));
        let ho = bi.cfg.output_size();
        let hid = bi.cfg.hidden_size;
        for d in 0..2 {
            let one = Problem {
                cfg: bi.cfg.with_direction(if d == 0 {
                    Direction::Forward
                } else {
                    Direction::Reverse
                }),
                weights: vec![bi.weights[d].clone()],
                x: Vec::new(),
                h0: bi.h0[d * b * ho..(d + 1) * b * ho].to_vec(),
                c0: if cell.has_cell_state() {
                    bi.c0[d * b * hid..(d + 1) * b * hid].to_vec()
                } else {
                    Vec::new()
                },
                att: bi.att.clone(),
            };
            let o = run(&one, shape, &bi.x, Some(&lens));
            let y_d: Vec<f64> = (0..t * b)
                .flat_map(|r| out.y[r * 2 * ho + d * ho..r * 2 * ho + (d + 1) * ho].to_vec())
                .collect();
            close(&y_d, &o.y, &format!("{cell:?} y direction {d}"));
            close(&out.h_n[d * b * ho..(d + 1) * b * ho], &o.h_n, "h_n");
            if cell.has_cell_state() {
                close(&out.c_n[d * b * hid..(d + 1) * b * hid], &o.c_n, "c_n");
            }
        }
    }
}

/// Summed directions (oneDNN's `bidirectional_sum`): `y` is the forward run's `y` plus
/// the reverse run's, states as for concatenated directions; a second layer reads the
/// sum (`H_out` wide).
#[test]
fn bidirectional_sum_adds_forward_and_reverse() {
    for (k, cell) in ALL_CELLS.into_iter().enumerate() {
        let (t, b) = (4, 2);
        let sum = problem(cell, 1, Direction::BidirectionalSum, t, b, 350 + k as u64);
        let shape = SeqShape::new(t, b);
        let lens = [3, 4];
        let out = run(&sum, shape, &sum.x, Some(&lens));
        let cat = Problem {
            cfg: sum.cfg.with_direction(Direction::Bidirectional),
            ..sum.clone()
        };
        let both = run(&cat, shape, &sum.x, Some(&lens));
        let ho = sum.cfg.output_size();
        assert_eq!(out.y.len(), t * b * ho);
        let added: Vec<f64> = (0..t * b)
            .flat_map(|r| {
                let row = &both.y[r * 2 * ho..(r + 1) * 2 * ho];
                (0..ho).map(move |j| row[j] + row[ho + j])
            })
            .collect();
        assert_eq!(out.y, added, "{cell:?} y");
        assert_eq!(out.h_n, both.h_n, "{cell:?} h_n");
        assert_eq!(out.c_n, both.c_n, "{cell:?} c_n");
        // Two layers: the second layer's input is H_out wide.
        let two = problem(cell, 2, Direction::BidirectionalSum, t, b, 360 + k as u64);
        assert_eq!(two.cfg.layer_input_size(1), ho);
        assert_eq!(two.weights[2].w_ih.len(), cell.gates() * 4 * ho);
        let y2 = run(&two, shape, &two.x, None).y;
        assert!(y2.iter().all(|v| v.is_finite()) && y2.len() == t * b * ho);
    }
}

#[test]
fn second_layer_reads_first_layers_output() {
    for (k, cell) in ALL_CELLS.into_iter().enumerate() {
        let (t, b) = (3, 2);
        let two = problem(cell, 2, Direction::Forward, t, b, 400 + k as u64);
        let shape = SeqShape::new(t, b);
        let lens = [1, 3];
        let out = run(&two, shape, &two.x, Some(&lens));
        let (ho, hid) = (two.cfg.output_size(), two.cfg.hidden_size);
        let split = |v: &[f64], n: usize, l: usize| v[l * b * n..(l + 1) * b * n].to_vec();
        let l0 = Problem {
            cfg: two.cfg.with_layers(1),
            weights: vec![two.weights[0].clone()],
            x: Vec::new(),
            h0: split(&two.h0, ho, 0),
            c0: if cell.has_cell_state() {
                split(&two.c0, hid, 0)
            } else {
                Vec::new()
            },
            att: two.att.clone(),
        };
        let o0 = run(&l0, shape, &two.x, Some(&lens));
        let l1 = Problem {
            cfg: RnnConfig {
                input_size: ho,
                ..two.cfg.with_layers(1)
            },
            weights: vec![two.weights[1].clone()],
            x: Vec::new(),
            h0: split(&two.h0, ho, 1),
            c0: if cell.has_cell_state() {
                split(&two.c0, hid, 1)
            } else {
                Vec::new()
            },
            att: two.att.clone(),
        };
        let o1 = run(&l1, shape, &o0.y, Some(&lens));
        close(&out.y, &o1.y, "y");
        close(&out.h_n, &[o0.h_n, o1.h_n].concat(), "h_n");
        close(&out.c_n, &[o0.c_n, o1.c_n].concat(), "c_n");
    }
}

#[test]
fn sequence_lengths_truncate_rows() {
    for (k, cell) in ALL_CELLS.into_iter().enumerate() {
        let (t, b) = (5, 3);
        let p = problem(cell, 2, Direction::Bidirectional, t, b, 500 + k as u64);
        let shape = SeqShape::new(t, b);
        let lens = [5, 2, 0];
        let out = run(&p, shape, &p.x, Some(&lens));
        let yw = 2 * p.cfg.output_size();
        let (ho, hid) = (p.cfg.output_size(), p.cfg.hidden_size);
        // Padded steps are zero.
        for ti in 0..t {
            for (bi, &len) in lens.iter().enumerate() {
                let row = &out.y[(ti * b + bi) * yw..(ti * b + bi + 1) * yw];
                if ti >= len {
                    assert!(row.iter().all(|&v| v == 0.0), "{cell:?} y[{ti}, {bi}]");
                } else {
                    assert!(row.iter().any(|&v| v != 0.0));
                }
            }
        }
        // Row 2 (length 0) keeps its initial states.
        for s in 0..4 {
            let at = |n: usize| (s * b + 2) * n..(s * b + 3) * n;
            assert_eq!(out.h_n[at(ho)], p.h0[at(ho)]);
            if cell.has_cell_state() {
                assert_eq!(out.c_n[at(hid)], p.c0[at(hid)]);
            }
        }
        // Row 1 (length 2) matches running that row alone on its first 2 steps.
        let pick = |v: &[f64], n: usize, sets: usize| -> Vec<f64> {
            (0..sets)
                .flat_map(|s| v[(s * b + 1) * n..(s * b + 2) * n].to_vec())
                .collect()
        };
        let xs: Vec<f64> = (0..2)
            .flat_map(|ti| p.x[(ti * b + 1) * 3..(ti * b + 2) * 3].to_vec())
            .collect();
        let alone = Problem {
            cfg: p.cfg,
            weights: p.weights.clone(),
            x: Vec::new(),
            h0: pick(&p.h0, ho, 4),
            c0: if cell.has_cell_state() {
                pick(&p.c0, hid, 4)
            } else {
                Vec::new()
            },
            // Row 1's attention at its first 2 steps ([T, B] time-major).
            att: if cell.has_attention() {
                (0..2).map(|ti| p.att[ti * b + 1]).collect()
            } else {
                Vec::new()
            },
        };
        let o = run(&alone, SeqShape::new(2, 1), &xs, None);
        let y1: Vec<f64> = (0..2)
            .flat_map(|ti| out.y[(ti * b + 1) * yw..(ti * b + 2) * yw].to_vec())
            .collect();
        close(&y1, &o.y, "y row 1");
        close(&pick(&out.h_n, ho, 4), &o.h_n, "h_n row 1");
        if cell.has_cell_state() {
            close(&pick(&out.c_n, hid, 4), &o.c_n, "c_n row 1");
        }
        // Full lengths equal no lengths.
        let full = run(&p, shape, &p.x, Some(&[t; 3]));
        assert_eq!(full, run(&p, shape, &p.x, None));
    }
}

#[test]
fn missing_initial_states_are_zero() {
    for (k, cell) in ALL_CELLS.into_iter().enumerate() {
        let mut p = problem(cell, 2, Direction::Bidirectional, 3, 2, 600 + k as u64);
        p.h0.iter_mut().for_each(|v| *v = 0.0);
        p.c0.iter_mut().for_each(|v| *v = 0.0);
        let shape = SeqShape::new(3, 2);
        let zeros = run(&p, shape, &p.x, None);
        let mut input = SequenceInput::new(&p.x[..]);
        input.attention = cell.has_attention().then_some(&p.att[..]);
        let none = forward(&p.cfg, &views(&p.weights), shape, input).unwrap();
        assert_eq!(zeros, none);
    }
}
