//! The ONNX importer/exporter: every gate block, bias half, peephole entry and direction
//! must land exactly where the PyTorch layout expects it. The expected permutations are
//! written out here independently of the crate's tables.

use rnn_reference::testkit::variants;
use rnn_reference::{
    export_onnx, import_onnx, views, CellKind, Direction, GruVariant, OnnxWeights, RnnActivation,
    RnnConfig, RnnVariant,
};

/// A distinct value for (tensor, direction, ONNX block, element within the block).
fn tag(tensor: usize, dir: usize, block: usize, e: usize) -> f64 {
    (tensor * 100_000 + dir * 10_000 + block * 1_000 + e) as f64
}

/// `D` directions of `blocks` blocks of `len` elements, tagged.
fn tagged(tensor: usize, d: usize, blocks: usize, len: usize) -> Vec<f64> {
    let mut v = Vec::new();
    for dir in 0..d {
        for b in 0..blocks {
            for e in 0..len {
                v.push(tag(tensor, dir, b, e));
            }
        }
    }
    v
}

/// Checks that PyTorch block `k` of `got` (direction `dir`) is ONNX block `src[k]`.
fn assert_blocks(got: &[f64], tensor: usize, dir: usize, len: usize, src: &[usize], what: &str) {
    assert_eq!(got.len(), src.len() * len, "{what}: length");
    for (k, &s) in src.iter().enumerate() {
        for e in 0..len {
            assert_eq!(
                got[k * len + e],
                tag(tensor, dir, s, e),
                "{what}: PyTorch block {k}, element {e} should come from ONNX block {s}"
            );
        }
    }
}

const W: usize = 1;
const R: usize = 2;
const B: usize = 3;
const P: usize = 4;

/// Imports tagged tensors and checks every block. `src[k]` = ONNX block of PyTorch block k.
fn check_import(cell: CellKind, dir: Direction, src: &[usize]) {
    let (i, h) = (3, 2);
    let cfg = RnnConfig::new(cell, i, h).with_direction(dir);
    let d = dir.num_directions();
    let g = src.len();
    let peephole = cell.has_peephole();
    let w = tagged(W, d, g, h * i);
    let r = tagged(R, d, g, h * h);
    // B per direction: 2G blocks (input biases then recurrent biases).
    let b = tagged(B, d, 2 * g, h);
    let p = tagged(P, d, 3, h);
    let sets = import_onnx(
        &cfg,
        OnnxWeights {
            w: &w,
            r: &r,
            b: Some(&b),
            p: peephole.then_some(&p[..]),
        },
    )
    .unwrap();
    assert_eq!(sets.len(), d);
    for (dir, s) in sets.iter().enumerate() {
        let ctx = format!("{} {:?} direction {dir}", cell.name(), cfg.direction);
        assert_blocks(&s.w_ih, W, dir, h * i, src, &format!("{ctx} w_ih"));
        assert_blocks(&s.w_hh, R, dir, h * h, src, &format!("{ctx} w_hh"));
        assert_blocks(
            s.b_ih.as_ref().unwrap(),
            B,
            dir,
            h,
            src,
            &format!("{ctx} b_ih"),
        );
        let rec: Vec<usize> = src.iter().map(|&k| k + g).collect();
        assert_blocks(
            s.b_hh.as_ref().unwrap(),
            B,
            dir,
            h,
            &rec,
            &format!("{ctx} b_hh"),
        );
        assert!(s.w_hr.is_none());
        if peephole {
            // Ours (i, f, o) from ONNX (i, o, f).
            assert_blocks(
                s.peephole.as_ref().unwrap(),
                P,
                dir,
                h,
                &[0, 2, 1],
                &format!("{ctx} P"),
            );
        } else {
            assert!(s.peephole.is_none());
        }
    }
    // The exporter is the exact inverse.
    let back = export_onnx(&cfg, &views(&sets)).unwrap();
    assert_eq!(back.w, w);
    assert_eq!(back.r, r);
    assert_eq!(back.b.as_deref(), Some(&b[..]));
    assert_eq!(back.p, peephole.then_some(p));
}

// LSTM: PyTorch (i, f, g, o) from ONNX (i, o, f, c).
const LSTM_SRC: [usize; 4] = [0, 2, 3, 1];
// GRU: PyTorch (r, z, n) from ONNX (z, r, h).
const GRU_SRC: [usize; 3] = [1, 0, 2];

#[test]
fn lstm_blocks_every_direction() {
    for dir in [
        Direction::Forward,
        Direction::Reverse,
        Direction::Bidirectional,
    ] {
        for peephole in [false, true] {
            check_import(variants::lstm(peephole, None), dir, &LSTM_SRC);
        }
    }
}

#[test]
fn gru_blocks_every_direction() {
    for dir in [
        Direction::Forward,
        Direction::Reverse,
        Direction::Bidirectional,
    ] {
        for linear_before_reset in [false, true] {
            let cell = CellKind::Gru(GruVariant {
                linear_before_reset,
                ..Default::default()
            });
            check_import(cell, dir, &GRU_SRC);
        }
    }
}

#[test]
fn rnn_blocks_every_direction() {
    for dir in [Direction::Forward, Direction::Bidirectional] {
        for activation in [RnnActivation::Tanh, RnnActivation::Relu] {
            check_import(CellKind::Rnn(RnnVariant { activation }), dir, &[0]);
        }
    }
}

#[test]
fn missing_bias_imports_as_none_and_exports_without_b() {
    let cfg = RnnConfig::new(variants::GRU_ONNX, 2, 2);
    let w = tagged(W, 1, 3, 4);
    let r = tagged(R, 1, 3, 4);
    let sets = import_onnx(
        &cfg,
        OnnxWeights {
            w: &w,
            r: &r,
            b: None,
            p: None,
        },
    )
    .unwrap();
    assert!(sets[0].b_ih.is_none() && sets[0].b_hh.is_none());
    let back = export_onnx(&cfg, &views(&sets)).unwrap();
    assert_eq!(back.b, None);
    assert_eq!((back.w, back.r), (w, r));
}

#[test]
fn export_fills_a_missing_bias_half_with_zeros() {
    let cfg = RnnConfig::new(variants::LSTM, 1, 1);
    let (w_ih, w_hh) = ([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]);
    let b_ih = [10.0, 20.0, 30.0, 40.0]; // i, f, g, o
    let mut set = rnn_reference::LayerWeights::new(&w_ih[..], &w_hh[..]);
    set.b_ih = Some(&b_ih);
    let out = export_onnx(&cfg, &[set]).unwrap();
    // ONNX order i, o, f, c.
    assert_eq!(out.w, vec![1.0, 4.0, 2.0, 3.0]);
    assert_eq!(out.r, vec![5.0, 8.0, 6.0, 7.0]);
    assert_eq!(
        out.b,
        Some(vec![10.0, 40.0, 20.0, 30.0, 0.0, 0.0, 0.0, 0.0])
    );
}

#[test]
fn export_then_import_round_trips_bidirectional_peephole() {
    let cfg =
        RnnConfig::new(variants::LSTM_PEEPHOLE, 3, 2).with_direction(Direction::Bidirectional);
    let v = |n: usize, k: f64| (0..n).map(|e| e as f64 * 0.5 + k).collect::<Vec<_>>();
    let owned: Vec<_> = (0..2)
        .map(|d| rnn_reference::OwnedLayerWeights {
            w_ih: v(24, 100.0 * d as f64),
            w_hh: v(16, 1000.0 + 100.0 * d as f64),
            b_ih: Some(v(8, 2000.0 + 100.0 * d as f64)),
            b_hh: Some(v(8, 3000.0 + 100.0 * d as f64)),
            w_hr: None,
            peephole: Some(v(6, 4000.0 + 100.0 * d as f64)),
            layer_norm: None,
        })
        .collect();
    let onnx = export_onnx(&cfg, &views(&owned)).unwrap();
    let back = import_onnx(
        &cfg,
        OnnxWeights {
            w: &onnx.w,
            r: &onnx.r,
            b: onnx.b.as_deref(),
            p: onnx.p.as_deref(),
        },
    )
    .unwrap();
    assert_eq!(back, owned);
}

/// An equation-level check: the imported ONNX GRU gives the value computed by hand
/// with the ONNX gate meanings (z, r, h).
#[test]
fn imported_gru_computes_onnx_semantics() {
    use rnn_reference::{step, Real};
    let cfg = RnnConfig::new(variants::GRU_ONNX, 1, 1);
    // ONNX W = [w_z, w_r, w_h], R = [r_z, r_r, r_h].
    let (wz, wr, wh) = (0.3, -0.7, 1.1);
    let (rz, rr, rh) = (0.2, 0.9, -0.4);
    let sets = import_onnx(
        &cfg,
        OnnxWeights {
            w: &[wz, wr, wh],
            r: &[rz, rr, rh],
            b: None,
            p: None,
        },
    )
    .unwrap();
    let (x, h) = (0.8f64, -0.6f64);
    let z = (wz * x + rz * h).sigmoid();
    let r = (wr * x + rr * h).sigmoid();
    let n = (wh * x + rh * (r * h)).tanh();
    let want = (1.0 - z) * n + z * h;
    let got = step(&cfg, &sets[0].view(), 1, &[x], &[h], None).unwrap();
    assert!((got.h[0] - want).abs() < 1e-15, "{} vs {want}", got.h[0]);
}
