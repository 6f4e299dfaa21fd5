//! Every public entry point with arbitrary sizes (zero, huge, products that overflow),
//! slice lengths, layouts, sequence lengths, missing/extra optional parts and ONNX
//! activations (any function, valid or not): each call
//! returns `Ok` exactly when the arguments are consistent (then, for small shapes, the
//! result matches the f64 reference), or an `Err` whose `arg()` names a known argument.
//! Never a panic, abort, hang or out-of-bounds access.
//!
//! Slices are cut from one preallocated buffer; a length above `LIMIT` is never built
//! (a short slice is passed instead, and must be rejected).
#![no_main]

use std::cell::RefCell;
use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use rnn_fuzz::{compare, direction_from, forward_bounded, forward_f64, layout_from, step_bounded, step_f64, weights_consistent, Check, Expected, Kernels, SplitMix64};
use rnn_reference::testkit::variants;
use rnn_kernels::{
    Error, Isa, LayerWeights, OnnxWeights, PackedCell, PackedRnn, RnnConfig, SeqShape,
    SequenceInput, SequenceOutputMut, StepInput, StepOutputMut, Workspace,
};
use rnn_reference::{Activation, CellKind, Direction, LstmVariant};

/// Largest slice ever built.
const LIMIT: usize = 1 << 18;

/// Inputs: values in [-0.01, 0.01] (row sums of any matrix with <= 90 columns stay
/// below 0.9, so the recurrences contract and the error bound stays tight).
fn src() -> &'static [f32] {
    static BUF: OnceLock<Vec<f32>> = OnceLock::new();
    BUF.get_or_init(|| {
        let mut r = SplitMix64::new(7);
        (0..=LIMIT).map(|_| r.sym() * 0.01).collect()
    })
}

thread_local! {
    static OUT: RefCell<[Vec<f32>; 5]> = RefCell::new(std::array::from_fn(|_| vec![0.0; LIMIT + 1]));
}

const KNOWN_ARGS: &[&str] = &[
    "input_size", "hidden_size", "num_layers", "proj_size", "clip", "direction", "weights",
    "x", "y", "h0", "h_n", "c0", "c_n", "seq_lens", "steps", "batch", "h", "c", "h_out",
    "c_out", "W", "R", "B", "P", "workspace", "isa", "cell", "attention", "activations",
];

/// Every error names a known argument (by prefix: `weights[3].w_hh`, `seq_lens[2]`).
fn check_err(what: &str, e: &Error) {
    let arg = e.arg();
    assert!(!arg.is_empty(), "{what}: error without an argument: {e:?}");
    assert!(
        KNOWN_ARGS.iter().any(|k| arg == *k || arg.starts_with(&format!("{k}[")) || arg.starts_with(&format!("{k} "))),
        "{what}: error names an unknown argument {arg:?}: {e}"
    );
    assert!(!e.to_string().is_empty());
}

fn dim(u: &mut Unstructured<'_>) -> Result<usize> {
    Ok(match u.int_in_range(0..=11u8)? {
        0 => 0,
        1..=6 => u.int_in_range(1..=9)?,
        7 => u.int_in_range(10..=100)?,
        8 => [
            usize::MAX,
            usize::MAX / 2 + 1,
            1 << 32,
            i32::MAX as usize,
            i32::MAX as usize + 1,
            46_341, // 46341^2 > i32::MAX
            65_536,
            1 << 20,
        ][u.int_in_range(0..=7)?],
        9 => u.arbitrary::<u64>()? as usize,
        10 => u.int_in_range(101..=5000)?,
        _ => 1,
    })
}

/// A length: usually the right one (when buildable), else off by one or arbitrary.
fn pick_len(u: &mut Unstructured<'_>, correct: Option<usize>) -> Result<usize> {
    let c = correct.unwrap_or(usize::MAX);
    let len = match u.int_in_range(0..=7u8)? {
        0..=4 => c,
        5 => c.saturating_sub(1),
        6 => c.saturating_add(1),
        _ => u.int_in_range(0..=64)?,
    };
    Ok(if len > LIMIT { len % 61 } else { len })
}

fn opt_len(u: &mut Unstructured<'_>, correct: Option<usize>, needed: bool) -> Result<Option<usize>> {
    // Present when needed (mostly), absent when not (mostly); sometimes the opposite.
    let flip = u.int_in_range(0..=7u8)? == 0;
    Ok(if needed != flip { Some(pick_len(u, correct)?) } else { None })
}

fn s(len: usize) -> &'static [f32] {
    &src()[..len]
}

fn arbitrary_cfg(u: &mut Unstructured<'_>) -> Result<RnnConfig> {
    let sel: u8 = u.arbitrary()?;
    let hidden = dim(u)?;
    let mut cell = variants::from_selector(sel, hidden.max(2), 0);
    if let CellKind::Lstm(mut v @ LstmVariant { proj_size: Some(_), .. }) = cell {
        let p = match u.int_in_range(0..=3u8)? {
            0 => 0,
            1 => hidden,
            2 => dim(u)?,
            _ => 1 + u.int_in_range(0..=hidden.saturating_sub(2).min(1000))?,
        };
        v.proj_size = Some(p);
        cell = CellKind::Lstm(v);
    }
    let layers = match u.int_in_range(0..=5u8)? {
        0 => 0,
        1 | 2 => 1,
        3 => 2,
        4 => 3,
        _ => dim(u)?,
    };
    let clip = match u.int_in_range(0..=7u8)? {
        0 => Some([0.0f32, -1.0, f32::NAN, f32::INFINITY, 1e-45, 2.0, f32::MAX][u.int_in_range(0..=6)?]),
        _ => None,
    };
    let cfg = RnnConfig::new(cell, dim(u)?, hidden)
        .with_layers(layers)
        .with_direction(direction_from(u.arbitrary()?))
        .with_clip(clip);
    // ONNX activations, one config in four: any function in any slot, and one such
    // config in eight with a non-finite parameter, which every entry point must refuse
    // naming `activations`. (An input whose bytes end here reads zeros: the standard
    // functions.)
    let activations = match u.int_in_range(0..=3u8)? {
        1 => {
            let mut a = variants::random_gate_activations(&mut SplitMix64::new(u.arbitrary()?));
            if u.int_in_range(0..=7u8)? == 1 {
                a[0].f = Activation::LeakyRelu { alpha: f32::NAN };
            }
            Some(a)
        }
        _ => None,
    };
    Ok(cfg.with_activations(activations))
}

/// Weight sets with fuzzer-chosen slice lengths.
fn arbitrary_weights(u: &mut Unstructured<'_>, cfg: &RnnConfig) -> Result<Vec<LayerWeights<'static, f32>>> {
    let want_sets = cfg.num_weight_sets();
    let n_sets = match u.int_in_range(0..=7u8)? {
        0 => u.int_in_range(0..=5)?,
        1 => want_sets.saturating_add(1).min(8),
        _ => want_sets.min(8),
    };
    let valid = cfg.validate().is_ok();
    let bias: bool = u.arbitrary()?;
    let mut v = Vec::new();
    for k in 0..n_sets {
        let lens = cfg.weight_lens(k / cfg.num_directions().max(1));
        let c = |n: usize| valid.then_some(n);
        v.push(LayerWeights {
            w_ih: s(pick_len(u, c(lens.w_ih))?),
            w_hh: s(pick_len(u, c(lens.w_hh))?),
            b_ih: opt_len(u, c(lens.bias), bias)?.map(s),
            b_hh: opt_len(u, c(lens.bias), bias)?.map(s),
            w_hr: opt_len(u, lens.w_hr.and_then(c), lens.w_hr.is_some())?.map(s),
            peephole: opt_len(u, lens.peephole.and_then(c), lens.peephole.is_some())?.map(s),
            layer_norm: None,
        });
    }
    Ok(v)
}

fn small_for_numbers(cfg: &RnnConfig) -> bool {
    cfg.input_size <= 90 && cfg.hidden_size <= 90 && cfg.num_directions() * cfg.output_size() <= 90 && cfg.num_layers <= 4
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
});

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let cfg = arbitrary_cfg(u)?;
    // RnnConfig::validate.
    let valid = cfg.validate();
    if let Err(e) = &valid {
        check_err("validate", e);
    } else {
        // A valid config's sizes never overflow.
        let g = cfg.gates();
        assert!(g.checked_mul(cfg.hidden_size).and_then(|x| x.checked_mul(cfg.input_size)).is_some());
        assert!(cfg.num_layers.checked_mul(cfg.num_directions()).is_some());
    }
    // SeqShape::dims (any config).
    let shape = SeqShape::new(dim(u)?, dim(u)?).with_layout(layout_from(u.arbitrary()?));
    let dims = shape.dims(&cfg);
    if let Err(e) = &dims {
        check_err("dims", e);
    } else if valid.is_ok() {
        let d = dims.unwrap();
        let rows = shape.steps.checked_mul(shape.batch).unwrap();
        assert_eq!(d.x, rows * cfg.input_size);
        assert_eq!(d.y, rows * cfg.y_width());
    }

    let which = u.int_in_range(0..=3u8)?;
    match which {
        0 => sequence(u, &cfg, shape),
        1 => cell(u, &cfg),
        _ => onnx(u, &cfg),
    }
}

fn sequence(u: &mut Unstructured<'_>, cfg: &RnnConfig, shape: SeqShape) -> Result<()> {
    let weights = arbitrary_weights(u, cfg)?;
    let consistent = weights_consistent(cfg, &weights);
    let packed = PackedRnn::from_pytorch(cfg, &weights);
    let reference_ok = rnn_reference::check_weights(cfg, &weights);
    assert_eq!(packed.is_ok(), consistent, "from_pytorch: {:?}", packed.as_ref().err());
    assert_eq!(reference_ok.is_ok(), consistent);
    let rnn = match packed {
        Err(e) => {
            check_err("from_pytorch", &e);
            return Ok(());
        }
        Ok(r) => r,
    };
    // Huge valid networks are packed but never run.
    let total: usize = weights.iter().map(|w| w.w_ih.len() + w.w_hh.len()).sum();
    if total > 20_000 {
        return Ok(());
    }
    let dims = shape.dims(cfg).ok();
    let lstm = cfg.cell.has_cell_state();
    let (dx, dy, dh, dc) = match dims {
        Some(d) => (Some(d.x), Some(d.y), Some(d.h), Some(d.c)),
        None => (None, None, None, None),
    };
    // Correct-size buffers only for cheap shapes (the workspace would be T*B*G*H).
    let cheap = shape.steps.checked_mul(shape.batch).is_some_and(|r| r <= 64);
    let g = |n: Option<usize>| n.filter(|_| cheap);
    let x_len = pick_len(u, g(dx))?;
    let h0_len = { let want = u.arbitrary::<bool>()?; opt_len(u, g(dh), want)? };
    let c0_len = { let want = lstm && u.arbitrary::<bool>()?; opt_len(u, g(dc), want)? };
    let y_len = pick_len(u, g(dy))?;
    let hn_len = { let want = u.arbitrary::<bool>()?; opt_len(u, g(dh), want)? };
    let cn_len = { let want = lstm && u.arbitrary::<bool>()?; opt_len(u, g(dc), want)? };
    // AUGRU only (other cells draw nothing here, so their corpus inputs keep meaning).
    let rows = shape.steps.checked_mul(shape.batch);
    let att_len = if cfg.cell.has_attention() { opt_len(u, g(rows), true)? } else { None };
    let att_ok = match att_len {
        Some(l) => cfg.cell.has_attention() && Some(l) == rows,
        None => !cfg.cell.has_attention(),
    };
    let seq_lens: Option<Vec<usize>> = if u.arbitrary()? {
        let n = match u.int_in_range(0..=5u8)? {
            0 => u.int_in_range(0..=8)?,
            1 => shape.batch.saturating_add(1).min(70),
            _ => shape.batch.min(70),
        };
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(match u.int_in_range(0..=9u8)? {
                0 => shape.steps.saturating_add(1),
                1 => usize::MAX,
                2 => 0,
                3 => shape.steps,
                _ => u.int_in_range(0..=shape.steps.min(8))?,
            });
        }
        Some(v)
    } else {
        None
    };
    let isa = match u.int_in_range(0..=3u8)? {
        0 => Some(Isa::ALL[u.int_in_range(0..=2)?]),
        _ => None,
    };
    let rnn = match rnn.with_isa(isa) {
        Ok(r) => r,
        Err(e) => {
            check_err("with_isa", &e);
            assert!(!isa.unwrap().is_available());
            return Ok(());
        }
    };
    let input = SequenceInput {
        x: s(x_len),
        h0: h0_len.map(s),
        c0: c0_len.map(s),
        seq_lens: seq_lens.as_deref(),
        attention: att_len.map(s),
    };
    // What the contract says the answer is.
    let seq_ok = match &seq_lens {
        None => true,
        Some(l) => l.len() == shape.batch && l.iter().all(|&v| v <= shape.steps),
    };
    let expect_ok = dims.is_some()
        && Some(x_len) == dx
        && h0_len.is_none_or(|l| Some(l) == dh)
        && hn_len.is_none_or(|l| Some(l) == dh)
        && Some(y_len) == dy
        && (if lstm {
            c0_len.is_none_or(|l| Some(l) == dc) && cn_len.is_none_or(|l| Some(l) == dc)
        } else {
            c0_len.is_none() && cn_len.is_none()
        })
        && seq_ok
        && att_ok;
    // The reference's own verdict on the inputs (it has no output slices).
    let ref_expect_ok = dims.is_some()
        && Some(x_len) == dx
        && h0_len.is_none_or(|l| Some(l) == dh)
        && (if lstm { c0_len.is_none_or(|l| Some(l) == dc) } else { c0_len.is_none() })
        && seq_ok
        && att_ok;
    OUT.with(|o| {
        let mut o = o.borrow_mut();
        let [y, h_n, c_n, ..] = &mut *o;
        y[..y_len].fill(f32::NAN);
        let res = rnn.forward(
            &mut Workspace::new(),
            shape,
            input,
            SequenceOutputMut {
                y: &mut y[..y_len],
                h_n: hn_len.map(|l| &mut h_n[..l]),
                c_n: cn_len.map(|l| &mut c_n[..l]),
            },
        );
        assert_eq!(res.is_ok(), expect_ok, "forward {cfg:?} {shape:?} -> {res:?}");
        if let Err(e) = &res {
            check_err("forward", e);
        }
        // The reference (cheap cases only: x was built, so the shape is small).
        if ref_expect_ok || x_len <= 4096 {
            let r = forward_f64(cfg, &weights, shape, input);
            assert_eq!(r.is_ok(), ref_expect_ok, "reference forward -> {:?}", r.as_ref().err());
            match r {
                Err(e) => check_err("reference forward", &e),
                Ok(_) if res.is_ok() && small_for_numbers(cfg) => {
                    let Expected { want, bound } = forward_bounded::<Kernels>(cfg, &weights, shape, input).unwrap();
                    let v = Check::Values;
                    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
                    compare("y", &y[..y_len], &want.y, &f32s(&want.y), &bound.y, v).unwrap();
                    if let Some(l) = hn_len {
                        compare("h_n", &h_n[..l], &want.h_n, &f32s(&want.h_n), &bound.h_n, v).unwrap();
                    }
                    if let Some(l) = cn_len {
                        compare("c_n", &c_n[..l], &want.c_n, &f32s(&want.c_n), &bound.c_n, v).unwrap();
                    }
                }
                Ok(_) => {}
            }
        }
    });
    Ok(())
}

fn cell(u: &mut Unstructured<'_>, cfg: &RnnConfig) -> Result<()> {
    // Usually a one-layer forward config (the only kind a cell accepts).
    let cfg = if u.int_in_range(0..=3u8)? != 0 {
        RnnConfig { num_layers: 1, direction: Direction::Forward, ..*cfg }
    } else {
        *cfg
    };
    let mut weights = arbitrary_weights(u, &cfg)?;
    if weights.is_empty() {
        weights.push(LayerWeights::new(s(0), s(0)));
    }
    let w = weights[0];
    let consistent = cfg.num_layers == 1
        && cfg.direction == Direction::Forward
        && weights_consistent(&cfg, std::slice::from_ref(&w));
    let packed = PackedCell::from_pytorch(&cfg, &w);
    assert_eq!(packed.is_ok(), consistent, "PackedCell::from_pytorch -> {:?}", packed.as_ref().err());
    let lstm = cfg.cell.has_cell_state();
    let batch = dim(u)?;
    let (i, h, ho) = (cfg.input_size, cfg.hidden_size, cfg.output_size());
    let cheap = consistent && w.w_ih.len() + w.w_hh.len() <= 20_000 && batch <= 64;
    let m = |k: usize| batch.checked_mul(k).filter(|_| cheap);
    let x_len = pick_len(u, m(i))?;
    let h_len = pick_len(u, m(ho))?;
    let c_len = opt_len(u, m(h), lstm)?;
    let ho_len = pick_len(u, m(ho))?;
    let co_len = opt_len(u, m(h), lstm)?;
    // AUGRU only, as for the sequence.
    let att_len = if cfg.cell.has_attention() { opt_len(u, m(1), true)? } else { None };
    let inputs_ok = batch > 0
        && (if cfg.cell.has_attention() { att_len == Some(batch) } else { att_len.is_none() })
        && Some(x_len) == batch.checked_mul(i)
        && Some(h_len) == batch.checked_mul(ho)
        && (if lstm { c_len.is_some() && c_len == batch.checked_mul(h) } else { c_len.is_none() });
    // The reference step on the same arguments (only when the slices were small).
    if x_len + h_len <= 4096 {
        let r = step_f64(&cfg, &w, batch, (s(x_len), s(h_len), c_len.map(s), att_len.map(s)));
        assert_eq!(r.is_ok(), consistent && inputs_ok, "reference step -> {:?}", r.as_ref().err());
        if let Err(e) = &r {
            check_err("reference step", e);
        }
    }
    let cell = match packed {
        Err(e) => {
            check_err("PackedCell::from_pytorch", &e);
            return Ok(());
        }
        Ok(c) => c,
    };
    if !cheap {
        // Still run it: every slice is short or the batch is 0/huge, so it must fail.
        if x_len + h_len > 4096 {
            return Ok(());
        }
    }
    let expect_ok = inputs_ok
        && Some(ho_len) == batch.checked_mul(ho)
        && (if lstm { co_len.is_some() && co_len == batch.checked_mul(h) } else { co_len.is_none() });
    OUT.with(|o| {
        let mut o = o.borrow_mut();
        let [hout, cout, ..] = &mut *o;
        let res = cell.step(
            &mut Workspace::new(),
            batch,
            StepInput { x: s(x_len), h: s(h_len), c: c_len.map(s), attention: att_len.map(s) },
            StepOutputMut { h: &mut hout[..ho_len], c: co_len.map(|l| &mut cout[..l]) },
        );
        assert_eq!(res.is_ok(), expect_ok, "step {cfg:?} batch {batch} -> {res:?}");
        match res {
            Err(e) => check_err("step", &e),
            Ok(()) if small_for_numbers(&cfg) => {
                let args = (s(x_len), s(h_len), c_len.map(s), att_len.map(s));
                let Expected { want, bound } = step_bounded::<Kernels>(&cfg, &w, batch, args).unwrap();
                let v = Check::Values;
                let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
                compare("h", &hout[..ho_len], &want.h_n, &f32s(&want.h_n), &bound.h_n, v).unwrap();
                if let Some(l) = co_len {
                    compare("c", &cout[..l], &want.c_n, &f32s(&want.c_n), &bound.c_n, v).unwrap();
                }
            }
            Ok(()) => {}
        }
    });
    Ok(())
}

fn onnx(u: &mut Unstructured<'_>, cfg: &RnnConfig) -> Result<()> {
    let cfg = if u.arbitrary()? { RnnConfig { num_layers: 1, ..*cfg } } else { *cfg };
    let valid = cfg.validate().is_ok();
    let (d, g, h, i) = (cfg.num_directions(), cfg.gates(), cfg.hidden_size, cfg.input_size);
    let prod = |f: &[usize]| f.iter().try_fold(1usize, |a, &b| a.checked_mul(b)).filter(|_| valid);
    let w_len = pick_len(u, prod(&[d, g, h, i]))?;
    let r_len = pick_len(u, prod(&[d, g, h, h]))?;
    let b_len = { let want = u.arbitrary::<bool>()?; opt_len(u, prod(&[d, 2, g, h]), want)? };
    let peephole = cfg.cell.has_peephole();
    let p_len = opt_len(u, prod(&[d, 3, h]), peephole)?;
    // ONNX: one layer, no projection, no peephole GRU (ONNX's GRU has none), no AUGRU,
    // no CIFG.
    let onnx_cfg_ok = cfg.num_layers == 1
        && cfg.cell.proj_size().is_none()
        && !(cfg.cell.gru().is_some() && peephole)
        && !cfg.cell.has_attention()
        && !cfg.cell.cifg();
    let expect_ok = valid
        && onnx_cfg_ok
        && Some(w_len) == prod(&[d, g, h, i])
        && Some(r_len) == prod(&[d, g, h, h])
        && b_len.is_none_or(|l| Some(l) == prod(&[d, 2, g, h]))
        && (if peephole { p_len.is_some() && p_len == prod(&[d, 3, h]) } else { p_len.is_none() });
    let ow = OnnxWeights { w: s(w_len), r: s(r_len), b: b_len.map(s), p: p_len.map(s) };
    let imported = rnn_reference::import_onnx(&cfg, ow);
    assert_eq!(imported.is_ok(), expect_ok, "import_onnx {cfg:?} -> {:?}", imported.as_ref().err());
    let packed = PackedRnn::from_onnx(&cfg, ow);
    assert_eq!(packed.is_ok(), expect_ok, "from_onnx -> {:?}", packed.as_ref().err());
    match imported {
        Err(e) => {
            check_err("import_onnx", &e);
            check_err("from_onnx", packed.as_ref().err().unwrap());
            // export_onnx of arbitrary PyTorch-layout sets.
            let ws = arbitrary_weights(u, &cfg)?;
            let consistent = onnx_cfg_ok && weights_consistent(&cfg, &ws);
            let ex = rnn_reference::export_onnx(&cfg, &ws);
            assert_eq!(ex.is_ok(), consistent, "export_onnx -> {:?}", ex.as_ref().err());
            if let Err(e) = &ex {
                check_err("export_onnx", e);
            }
        }
        Ok(sets) => {
            let ex = rnn_reference::export_onnx(&cfg, &rnn_reference::views(&sets)).expect("export of an import");
            assert_eq!(ex.w, ow.w);
            assert_eq!(ex.r, ow.r);
            assert_eq!(ex.b.as_deref(), ow.b);
            assert_eq!(ex.p.as_deref(), ow.p);
        }
    }
    Ok(())
}
