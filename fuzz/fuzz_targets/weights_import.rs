//! Arbitrary PyTorch- and ONNX-layout weight arrays (arbitrary bit patterns, NaN
//! payloads included) → a packed network or an `Err` naming the argument, and the
//! round trips the API offers:
//! - ONNX → `import_onnx` → `export_onnx` gives back the input bit for bit (NaN
//!   compared as "both NaN", everything else by `to_bits`);
//! - PyTorch → `export_onnx` → `import_onnx` gives back the input;
//! - `PackedRnn::from_onnx(W,R,B,P)` and `PackedRnn::from_pytorch(import_onnx(..))` run
//!   a short sequence to bit-identical outputs at every ISA.
#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use rnn_fuzz::{direction_from, weights_consistent, SplitMix64, PALETTE};
use rnn_reference::testkit::variants;
use rnn_kernels::{
    Isa, LayerWeights, OnnxWeights, PackedRnn, RnnConfig, SeqShape, SequenceInput,
    SequenceOutputMut, Workspace,
};
use rnn_reference::{CellKind, LstmVariant, OwnedLayerWeights};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
});

/// Same value: both NaN (any payload), or identical bits (so 0.0 != -0.0).
fn same(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits())
}

fn same_opt(a: Option<&[f32]>, b: Option<&[f32]>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same(a, b),
        (None, None) => true,
        _ => false,
    }
}

struct Values {
    rng: SplitMix64,
    mode: u8,
}

impl Values {
    fn next(&mut self) -> f32 {
        let r = self.rng.next_u64();
        match (self.mode, r % 8) {
            // arbitrary bit patterns (NaN payloads, subnormals, infinities, ...)
            (0, _) | (_, 0) => f32::from_bits((r >> 32) as u32),
            (1, _) | (_, 1) => PALETTE[(r >> 32) as usize % PALETTE.len()],
            _ => ((r >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0,
        }
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

fn len(u: &mut Unstructured<'_>, correct: usize) -> Result<usize> {
    Ok(match u.int_in_range(0..=9u8)? {
        0 => correct.saturating_sub(1),
        1 => correct + 1,
        2 => u.int_in_range(0..=16)?,
        _ => correct,
    })
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let sel: u8 = u.arbitrary()?;
    let i = u.int_in_range(0..=24usize)?;
    let h = u.int_in_range(0..=24usize)?;
    let proj = u.int_in_range(0..=24usize)?;
    let mut cell = variants::from_selector(sel, h, proj);
    if let CellKind::Lstm(mut v @ LstmVariant { proj_size: Some(_), .. }) = cell {
        v.proj_size = Some(proj);
        cell = CellKind::Lstm(v); // may be invalid
    }
    let layers = u.int_in_range(0..=2usize)?;
    let cfg = RnnConfig::new(cell, i, h)
        .with_layers(layers)
        .with_direction(direction_from(u.arbitrary()?));
    let mut vals = Values { rng: SplitMix64::new(u.arbitrary()?), mode: u.int_in_range(0..=3)? };
    let valid = cfg.validate().is_ok();
    let (d, g) = (cfg.num_directions(), cfg.gates());
    // ONNX: one layer, no projection, no peephole GRU (ONNX's GRU has none), no AUGRU,
    // no CIFG.
    let onnx_ok_cfg = valid
        && layers == 1
        && cell.proj_size().is_none()
        && !(cell.gru().is_some() && cell.has_peephole())
        && !cell.has_attention()
        && !cell.cifg();
    let peephole = cell.has_peephole();

    // ---- ONNX layout ----
    let (wl, rl, bl, pl) = (d * g * h * i, d * g * h * h, d * 2 * g * h, d * 3 * h);
    let w = vals.vec(len(u, wl)?);
    let r = vals.vec(len(u, rl)?);
    let b = if u.arbitrary()? { Some(vals.vec(len(u, bl)?)) } else { None };
    let p = if u.int_in_range(0..=7u8)? == 0 { !peephole } else { peephole };
    let p = if p { Some(vals.vec(len(u, pl)?)) } else { None };
    let onnx = OnnxWeights { w: &w, r: &r, b: b.as_deref(), p: p.as_deref() };
    let expect = onnx_ok_cfg
        && w.len() == wl
        && r.len() == rl
        && b.as_ref().is_none_or(|b| b.len() == bl)
        && p.as_ref().map(Vec::len) == peephole.then_some(pl);
    let imported = rnn_reference::import_onnx(&cfg, onnx);
    let packed = PackedRnn::from_onnx(&cfg, onnx);
    assert_eq!(imported.is_ok(), expect, "import_onnx {cfg:?} -> {:?}", imported.as_ref().err());
    assert_eq!(packed.is_ok(), expect);
    match (&imported, &packed) {
        (Err(e), Err(e2)) => {
            assert!(!e.arg().is_empty() && !e2.arg().is_empty());
            assert_eq!(e, e2, "from_onnx and import_onnx disagree");
        }
        (Ok(sets), Ok(from_onnx)) => {
            let views = rnn_reference::views(sets);
            let back = rnn_reference::export_onnx(&cfg, &views).expect("export of an import");
            assert!(same(&back.w, &w), "W round trip");
            assert!(same(&back.r, &r), "R round trip");
            assert!(same_opt(back.b.as_deref(), b.as_deref()), "B round trip");
            assert!(same_opt(back.p.as_deref(), p.as_deref()), "P round trip");
            let from_pt = PackedRnn::from_pytorch(&cfg, &views).expect("imported sets are valid");
            same_outputs(&cfg, from_onnx, &from_pt, &mut vals);
        }
        _ => unreachable!(),
    }

    // ---- PyTorch layout ----
    let n_sets = if u.int_in_range(0..=7u8)? == 0 { u.int_in_range(0..=4usize)? } else { cfg.num_weight_sets().min(4) };
    let bias: bool = u.arbitrary()?;
    let mut owned = Vec::new();
    for k in 0..n_sets {
        let l = cfg.weight_lens(k / d);
        let flip = u.int_in_range(0..=15u8)? == 0;
        owned.push(OwnedLayerWeights {
            w_ih: vals.vec(len(u, l.w_ih)?),
            w_hh: vals.vec(len(u, l.w_hh)?),
            b_ih: if bias { Some(vals.vec(len(u, l.bias)?)) } else { None },
            b_hh: if bias != flip { Some(vals.vec(len(u, l.bias)?)) } else { None },
            w_hr: match (l.w_hr, flip) {
                (Some(n), false) => Some(vals.vec(len(u, n)?)),
                (None, true) => Some(vals.vec(3)),
                _ => None,
            },
            peephole: match (l.peephole, flip) {
                (Some(n), false) => Some(vals.vec(len(u, n)?)),
                (None, true) => Some(vals.vec(3 * h)),
                _ => None,
            },
            layer_norm: None,
        });
    }
    let views: Vec<LayerWeights<'_, f32>> = rnn_reference::views(&owned);
    let consistent = weights_consistent(&cfg, &views);
    let packed = PackedRnn::from_pytorch(&cfg, &views);
    assert_eq!(packed.is_ok(), consistent, "from_pytorch {cfg:?} -> {:?}", packed.as_ref().err());
    match packed {
        Err(e) => assert!(!e.arg().is_empty()),
        Ok(pt) => {
            let ex = rnn_reference::export_onnx(&cfg, &views);
            assert_eq!(ex.is_ok(), onnx_ok_cfg, "export_onnx -> {:?}", ex.as_ref().err());
            if let Ok(ex) = ex {
                let back = rnn_reference::import_onnx(
                    &cfg,
                    OnnxWeights { w: &ex.w, r: &ex.r, b: ex.b.as_deref(), p: ex.p.as_deref() },
                )
                .expect("import of an export");
                for (a, b) in back.iter().zip(&owned) {
                    assert!(same(&a.w_ih, &b.w_ih) && same(&a.w_hh, &b.w_hh), "export/import round trip");
                    // A bias missing on one side comes back as zeros when the other exists.
                    let zeros = vec![0.0f32; cfg.gates() * h];
                    let both = b.b_ih.is_some() || b.b_hh.is_some();
                    let fill = |v: &Option<Vec<f32>>| v.clone().or_else(|| both.then(|| zeros.clone()));
                    assert!(same_opt(a.b_ih.as_deref(), fill(&b.b_ih).as_deref()), "b_ih round trip");
                    assert!(same_opt(a.b_hh.as_deref(), fill(&b.b_hh).as_deref()), "b_hh round trip");
                    assert!(same_opt(a.peephole.as_deref(), b.peephole.as_deref()), "peephole round trip");
                }
                let from_onnx = PackedRnn::from_onnx(
                    &cfg,
                    OnnxWeights { w: &ex.w, r: &ex.r, b: ex.b.as_deref(), p: ex.p.as_deref() },
                )
                .expect("exported weights pack");
                same_outputs(&cfg, &pt, &from_onnx, &mut vals);
            } else {
                run_once(&cfg, &pt, &mut vals);
            }
        }
    }
    Ok(())
}

/// Runs a short sequence through both packings at every ISA: outputs must be
/// bit-identical (NaN: both NaN).
fn same_outputs(cfg: &RnnConfig, a: &PackedRnn, b: &PackedRnn, vals: &mut Values) {
    let shape = SeqShape::new(2, 2);
    let d = shape.dims(cfg).unwrap();
    let x = vals.vec(d.x);
    for isa in Isa::available() {
        let ya = forward(a, isa, shape, &x, d.y, d.h);
        let yb = forward(b, isa, shape, &x, d.y, d.h);
        assert!(same(&ya.0, &yb.0) && same(&ya.1, &yb.1), "{isa}: ONNX and PyTorch packings differ");
    }
}

fn run_once(cfg: &RnnConfig, a: &PackedRnn, vals: &mut Values) {
    let shape = SeqShape::new(2, 2);
    let d = shape.dims(cfg).unwrap();
    let x = vals.vec(d.x);
    for isa in Isa::available() {
        forward(a, isa, shape, &x, d.y, d.h);
    }
}

fn forward(p: &PackedRnn, isa: Isa, shape: SeqShape, x: &[f32], ny: usize, nh: usize) -> (Vec<f32>, Vec<f32>) {
    let p = p.clone().with_isa(Some(isa)).unwrap();
    let (mut y, mut h_n) = (vec![0.0; ny], vec![0.0; nh]);
    // An AUGRU reads an attention (any fixed one: both packings see the same).
    let att = vec![0.25f32; shape.steps * shape.batch];
    let input = SequenceInput::new(x);
    let input = if p.config().cell.has_attention() { input.with_attention(&att) } else { input };
    p.forward(
        &mut Workspace::new(),
        shape,
        input,
        SequenceOutputMut { y: &mut y, h_n: Some(&mut h_n), c_n: None },
    )
    .expect("forward on valid weights");
    (y, h_n)
}
