//! Shared code of the fuzz targets: a problem generator driven by the fuzzer's bytes,
//! the f64/f32 reference runs, an f32-overflow bound, the kernels' tolerance and the
//! comparisons.
//!
//! # What `step_vs_reference` checks, and why it is restricted
//!
//! Every available ISA runs the problem; the outputs are compared with the f64
//! reference (`rnn_reference::forward` / `step` on f64 copies of the same f32 values):
//!
//! 1. **Nothing panics**, and every call on a well-formed problem returns `Ok`.
//! 2. **Special-value classes** (NaN / +inf / -inf / finite) agree position by position,
//!    provided no *finite* f32 computation can overflow ([`overflow_free`]: a rigorous
//!    magnitude bound from the row sums of the finite weights, the largest finite input
//!    and state, propagated through every step and layer, must stay below 1e36).
//!    Without that bound, `1e30 * 1e30` is `inf` in f32 and `1e60` in f64, and a later
//!    `inf - inf` makes a NaN that f64 never sees: a legitimate f32 difference, not a
//!    kernel bug. Positions where the **f32 reference and the f64 reference disagree**
//!    on the class are also skipped: they are decided by f32 underflow, e.g. a sigmoid
//!    gate of -200 is exactly 0 in f32 and 1e-87 in f64, and multiplied by an infinite
//!    state (`f * c`, `z * h`, `r * (W_hn h + b_hn)`) gives NaN in f32 and inf in f64.
//! 3. **Finite values agree within the documented tolerance** (the formula of
//!    `kernels/tests/common/mod.rs`, copied in [`tolerance`]) when every input is finite
//!    and the weights are normalized the way the property tests normalize them (row
//!    absolute sums <= 2 for `W_ih`, <= 0.9 for `W_hh`, <= 1 for `W_hr`, |bias| and
//!    |peephole| <= 0.5, |h0|, |c0| <= 1): the tolerance is only a valid bound under
//!    those conditions (with arbitrary weights the recurrence amplifies rounding errors
//!    without limit). Inputs `x` may still be as large as 1e30.

use arbitrary::{Result, Unstructured};
use rnn_reference::{
    CellKind, Direction, LayerWeights, OwnedLayerWeights, RnnActivation, RnnConfig, SeqShape,
    SequenceInput, SequenceOutput, TensorLayout,
};

/// Values the fuzzer can inject anywhere.
pub const PALETTE: [f32; 24] = [
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    1e-40,  // subnormal
    -1e-40, // subnormal
    1e-45,  // smallest subnormal
    -1e-45,
    1e30,
    -1e30,
    1e15,
    -1e15,
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    -0.5,
    100.0,
    -100.0,
    1e-30,
    f32::MAX,
    f32::MIN,
    f32::MIN_POSITIVE,
    -3.0,
];

/// SplitMix64, as in the kernels' tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn sym(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// One problem for the sequence and step APIs.
#[derive(Clone, Debug)]
pub struct Problem {
    pub cfg: RnnConfig,
    pub shape: SeqShape,
    pub weights: Vec<OwnedLayerWeights<f32>>,
    pub x: Vec<f32>,
    pub h0: Option<Vec<f32>>,
    pub c0: Option<Vec<f32>>,
    pub seq_lens: Option<Vec<usize>>,
    /// Every value finite and the weights normalized: the tolerance applies.
    pub finite_mode: bool,
}

/// The seven cell variants.
pub fn cell_from(sel: u8, hidden: usize, proj: usize) -> CellKind {
    match sel % 7 {
        0 => CellKind::Rnn {
            activation: RnnActivation::Tanh,
        },
        1 => CellKind::Rnn {
            activation: RnnActivation::Relu,
        },
        2 => CellKind::Lstm {
            peephole: false,
            proj_size: None,
        },
        3 => CellKind::Lstm {
            peephole: true,
            proj_size: None,
        },
        4 => CellKind::Lstm {
            peephole: sel & 8 != 0,
            proj_size: (hidden > 1).then(|| 1 + proj % (hidden - 1)),
        },
        5 => CellKind::Gru {
            linear_before_reset: true,
        },
        _ => CellKind::Gru {
            linear_before_reset: false,
        },
    }
}

pub fn direction_from(sel: u8) -> Direction {
    [Direction::Forward, Direction::Reverse, Direction::Bidirectional][(sel % 3) as usize]
}

pub fn layout_from(b: bool) -> TensorLayout {
    if b {
        TensorLayout::BatchMajor
    } else {
        TensorLayout::TimeMajor
    }
}

fn limit_rows(w: &mut [f32], k: usize, limit: f32) {
    for row in w.chunks_mut(k.max(1)) {
        let s: f32 = row.iter().map(|v| v.abs()).sum();
        if s > limit {
            row.iter_mut().for_each(|v| *v *= limit / s);
        }
    }
}

fn limit_max(v: &mut [f32], limit: f32) {
    let m = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if m > limit {
        v.iter_mut().for_each(|x| *x *= limit / m);
    }
}

/// Builds a problem from the fuzzer's bytes: sizes and flags directly, values from a
/// seeded generator at a fuzzer-chosen scale, with palette values injected at
/// fuzzer-chosen positions (and, optionally, everywhere with a fuzzer-chosen density).
pub fn arbitrary_problem(u: &mut Unstructured<'_>) -> Result<Problem> {
    let sel: u8 = u.arbitrary()?;
    let i = u.int_in_range(1..=40usize)?;
    let h = u.int_in_range(1..=40usize)?;
    let b = u.int_in_range(1..=5usize)?;
    let t = u.int_in_range(1..=4usize)?;
    let layers = u.int_in_range(1..=2usize)?;
    let proj: usize = u.int_in_range(0..=63)?;
    let cell = cell_from(sel, h, proj);
    let direction = direction_from(u.arbitrary()?);
    let layout = layout_from(u.arbitrary()?);
    let clip = match u.int_in_range(0..=7u8)? {
        0 => Some(0.5f32),
        1 => Some(3.0),
        2 => Some(1e30),
        _ => None,
    };
    let cfg = RnnConfig::new(cell, i, h)
        .with_layers(layers)
        .with_direction(direction)
        .with_clip(clip);
    let shape = SeqShape::new(t, b).with_layout(layout);
    let bias: bool = u.arbitrary()?;
    let want_h0: bool = u.arbitrary()?;
    let want_c0: bool = u.arbitrary()?;
    let seq_lens = if u.arbitrary()? {
        let mut v = Vec::with_capacity(b);
        for _ in 0..b {
            v.push(u.int_in_range(0..=t)?);
        }
        Some(v)
    } else {
        None
    };
    let normalize: bool = u.arbitrary()?;
    let seed: u64 = u.arbitrary()?;
    let scale = [1.0f32, 1.0, 8.0, 50.0, 1e3, 1e15][u.int_in_range(0..=5usize)?];
    // Probability (out of 256) that any value is a palette value; usually 0.
    let density = match u.int_in_range(0..=3u8)? {
        0 => u.int_in_range(1..=64u8)? as u64,
        _ => 0,
    };
    let mut rng = Rng(seed);
    let mut gen = |n: usize, scale: f32| -> Vec<f32> {
        (0..n)
            .map(|_| {
                if density > 0 && (rng.next_u64() & 255) < density {
                    PALETTE[rng.below(PALETTE.len())]
                } else {
                    rng.sym() * scale
                }
            })
            .collect()
    };
    let mut weights = Vec::new();
    for set in 0..cfg.num_weight_sets() {
        let lens = cfg.weight_lens(set / cfg.num_directions());
        weights.push(OwnedLayerWeights {
            w_ih: gen(lens.w_ih, 1.0),
            w_hh: gen(lens.w_hh, 1.0),
            b_ih: bias.then(|| gen(lens.bias, 0.5)),
            b_hh: bias.then(|| gen(lens.bias, 0.5)),
            w_hr: lens.w_hr.map(|n| gen(n, 1.0)),
            peephole: lens.peephole.map(|n| gen(n, 0.5)),
        });
    }
    let d = shape.dims(&cfg).expect("small dims");
    let x = gen(d.x, scale);
    let h0 = want_h0.then(|| gen(d.h, 1.0));
    let c0 = (want_c0 && cfg.cell.has_cell_state()).then(|| gen(d.c, 1.0));
    let mut p = Problem {
        cfg,
        shape,
        weights,
        x,
        h0,
        c0,
        seq_lens,
        finite_mode: false,
    };
    // Up to 8 injections of palette values at chosen positions.
    let n_inj = u.int_in_range(0..=8usize)?;
    for _ in 0..n_inj {
        let which: u8 = u.arbitrary()?;
        let idx: u32 = u.arbitrary()?;
        let val = PALETTE[u.int_in_range(0..=PALETTE.len() - 1)?];
        let mut arrays = p.arrays_mut();
        let n_arrays = arrays.len();
        let a = &mut arrays[which as usize % n_arrays];
        if !a.is_empty() {
            let n = a.len();
            a[idx as usize % n] = val;
        }
    }
    let all_finite = p.arrays().iter().all(|a| a.iter().all(|v| v.is_finite()));
    if normalize && all_finite {
        let (h, ho) = (p.cfg.hidden_size, p.cfg.output_size());
        for (k, w) in p.weights.iter_mut().enumerate() {
            let k_in = p.cfg.layer_input_size(k / p.cfg.num_directions());
            limit_rows(&mut w.w_ih, k_in, 2.0);
            limit_rows(&mut w.w_hh, ho, 0.9);
            if let Some(v) = w.w_hr.as_mut() {
                limit_rows(v, h, 1.0);
            }
            for v in [w.b_ih.as_mut(), w.b_hh.as_mut(), w.peephole.as_mut()]
                .into_iter()
                .flatten()
            {
                limit_max(v, 0.5);
            }
        }
        for v in [p.h0.as_mut(), p.c0.as_mut()].into_iter().flatten() {
            limit_max(v, 1.0);
        }
        p.finite_mode = true;
    }
    Ok(p)
}

impl Problem {
    /// Every value array (weights, then x, h0, c0).
    pub fn arrays(&self) -> Vec<&Vec<f32>> {
        let mut v: Vec<&Vec<f32>> = Vec::new();
        for w in &self.weights {
            v.push(&w.w_ih);
            v.push(&w.w_hh);
            v.extend(w.b_ih.iter());
            v.extend(w.b_hh.iter());
            v.extend(w.w_hr.iter());
            v.extend(w.peephole.iter());
        }
        v.push(&self.x);
        v.extend(self.h0.iter());
        v.extend(self.c0.iter());
        v
    }

    pub fn arrays_mut(&mut self) -> Vec<&mut Vec<f32>> {
        let mut v: Vec<&mut Vec<f32>> = Vec::new();
        for w in &mut self.weights {
            v.push(&mut w.w_ih);
            v.push(&mut w.w_hh);
            v.extend(w.b_ih.iter_mut());
            v.extend(w.b_hh.iter_mut());
            v.extend(w.w_hr.iter_mut());
            v.extend(w.peephole.iter_mut());
        }
        v.push(&mut self.x);
        v.extend(self.h0.iter_mut());
        v.extend(self.c0.iter_mut());
        v
    }

    pub fn input(&self) -> SequenceInput<'_, f32> {
        SequenceInput {
            x: &self.x,
            h0: self.h0.as_deref(),
            c0: self.c0.as_deref(),
            seq_lens: self.seq_lens.as_deref(),
        }
    }

    /// Largest finite |x| (at least 1).
    pub fn x_scale(&self) -> f64 {
        max_abs(&self.x).max(1.0)
    }
}

pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

pub fn to_f64_weights(w: &OwnedLayerWeights<f32>) -> OwnedLayerWeights<f64> {
    OwnedLayerWeights {
        w_ih: f64s(&w.w_ih),
        w_hh: f64s(&w.w_hh),
        b_ih: w.b_ih.as_deref().map(f64s),
        b_hh: w.b_hh.as_deref().map(f64s),
        w_hr: w.w_hr.as_deref().map(f64s),
        peephole: w.peephole.as_deref().map(f64s),
    }
}

/// The reference in f64 and in f32 on the problem's values.
pub fn references(p: &Problem) -> (SequenceOutput<f64>, SequenceOutput<f32>) {
    let w64: Vec<_> = p.weights.iter().map(to_f64_weights).collect();
    let (x, h0, c0) = (
        f64s(&p.x),
        p.h0.as_deref().map(f64s),
        p.c0.as_deref().map(f64s),
    );
    let r64 = rnn_reference::forward(
        &p.cfg,
        &rnn_reference::views(&w64),
        p.shape,
        SequenceInput {
            x: &x,
            h0: h0.as_deref(),
            c0: c0.as_deref(),
            seq_lens: p.seq_lens.as_deref(),
        },
    )
    .expect("f64 reference accepts a well-formed problem");
    let r32 = rnn_reference::forward(&p.cfg, &rnn_reference::views(&p.weights), p.shape, p.input())
        .expect("f32 reference accepts a well-formed problem");
    (r64, r32)
}

/// Largest finite |v| (0 if none).
pub fn max_abs(v: &[f32]) -> f64 {
    v.iter()
        .filter(|x| x.is_finite())
        .fold(0.0f64, |m, &x| m.max((x as f64).abs()))
}

/// Largest absolute row sum of the finite entries of a `[rows, k]` matrix.
fn max_row_sum(w: &[f32], k: usize) -> f64 {
    w.chunks(k.max(1))
        .map(|r| r.iter().filter(|x| x.is_finite()).map(|&x| (x as f64).abs()).sum::<f64>())
        .fold(0.0, f64::max)
}

/// Whether no finite f32 value computed anywhere in the network can overflow: a
/// rigorous bound on every pre-activation and state magnitude (finite parts only;
/// infinities propagate as infinities whatever the order of operations), which must
/// stay below 1e36 (f32::MAX is 3.4e38).
pub fn overflow_free(
    cfg: &RnnConfig,
    weights: &[OwnedLayerWeights<f32>],
    steps: usize,
    x: &[f32],
    h0: Option<&[f32]>,
    c0: Option<&[f32]>,
) -> bool {
    const LIMIT: f64 = 1e36;
    let (h, ho, d) = (cfg.hidden_size, cfg.output_size(), cfg.num_directions());
    let mut xin = max_abs(x);
    let h0m = h0.map_or(0.0, max_abs);
    let c0m = c0.map_or(0.0, max_abs);
    for layer in 0..cfg.num_layers {
        let k_in = cfg.layer_input_size(layer);
        let sets = &weights[layer * d..(layer + 1) * d];
        let m = |f: &dyn Fn(&OwnedLayerWeights<f32>) -> f64| sets.iter().map(f).fold(0.0, f64::max);
        let rs_ih = m(&|w| max_row_sum(&w.w_ih, k_in));
        let rs_hh = m(&|w| max_row_sum(&w.w_hh, ho));
        let rs_hr = m(&|w| w.w_hr.as_deref().map_or(0.0, |v| max_row_sum(v, h)));
        let bsum = m(&|w| {
            w.b_ih.as_deref().map_or(0.0, max_abs) + w.b_hh.as_deref().map_or(0.0, max_abs)
        });
        let pm = m(&|w| w.peephole.as_deref().map_or(0.0, max_abs));
        if rs_ih * xin > LIMIT {
            return false;
        }
        let (mut hb, mut cb) = (h0m, c0m);
        for _ in 0..steps {
            let pre = rs_ih * xin + rs_hh * hb + bsum + pm * (cb + 1.0);
            if !(pre < LIMIT) {
                return false;
            }
            match cfg.cell {
                CellKind::Rnn {
                    activation: RnnActivation::Relu,
                } => hb = hb.max(pre),
                CellKind::Lstm { proj_size, .. } => {
                    cb += 1.0;
                    hb = hb.max(if proj_size.is_some() { rs_hr } else { 1.0 });
                }
                _ => hb = hb.max(1.0),
            }
            if !(hb < LIMIT && cb < LIMIT) {
                return false;
            }
        }
        xin = hb;
    }
    true
}

/// The tolerance of `kernels/tests/common/mod.rs` (see the derivation there), for
/// problems whose weights are normalized and whose |h0|, |c0| <= 1.
pub fn tolerance(cfg: &RnnConfig, steps: usize, x_scale: f64) -> (f64, f64) {
    let u = f64::powi(2.0, -24);
    let n = (cfg.input_size.max(cfg.num_directions() * cfg.output_size())
        + cfg.output_size()
        + 2) as f64;
    let gamma = n * u / (1.0 - n * u);
    let relu = matches!(
        cfg.cell,
        CellKind::Rnn {
            activation: RnnActivation::Relu
        }
    );
    let mut xs = x_scale.max(1.0);
    let mut hs = 1.0f64;
    if relu {
        for _ in 0..cfg.num_layers {
            hs = (2.0 * xs + 1.0) / 0.1 + 1.0;
            xs = xs.max(hs);
        }
    }
    let s = 2.0 * xs + 0.9 * hs + 1.0;
    let t = steps as f64;
    let f = if cfg.cell.has_cell_state() {
        1.5 + (1.0 + t) / 4.0
    } else {
        1.0
    };
    let atol = cfg.num_layers as f64 * t * f * (gamma * s + 16.0 * u);
    (atol, 8.0 * u)
}

/// NaN, +inf, -inf or finite.
fn class(v: f64) -> u8 {
    if v.is_nan() {
        0
    } else if v == f64::INFINITY {
        1
    } else if v == f64::NEG_INFINITY {
        2
    } else {
        3
    }
}

/// How outputs are compared (see the module docs).
#[derive(Clone, Copy, Debug)]
pub enum Check {
    /// Only "no panic, Ok".
    None,
    /// Special-value classes where the f32 and f64 references agree.
    Classes,
    /// Classes and values within the tolerance.
    Values((f64, f64)),
}

/// Compares kernel output `got` with the f64 reference `want` (and the f32 reference
/// `want32`, used to skip positions decided by f32 underflow).
pub fn compare(
    name: &str,
    got: &[f32],
    want: &[f64],
    want32: &[f32],
    check: Check,
) -> std::result::Result<(), String> {
    if got.len() != want.len() || want32.len() != want.len() {
        return Err(format!(
            "{name}: lengths got {} want {} want32 {}",
            got.len(),
            want.len(),
            want32.len()
        ));
    }
    if let Check::None = check {
        return Ok(());
    }
    for (k, ((&g, &w), &w32)) in got.iter().zip(want).zip(want32).enumerate() {
        let (cg, cw, c32) = (class(g as f64), class(w), class(w32 as f64));
        if cw != c32 {
            continue; // decided by f32 underflow/rounding: see the module docs
        }
        if cg != cw {
            return Err(format!(
                "{name}[{k}]: class mismatch: kernel {g:e}, f64 reference {w:e}, f32 reference {w32:e}"
            ));
        }
        if let Check::Values((atol, rtol)) = check {
            if cw == 3 && ((g as f64) - w).abs() > atol + rtol * w.abs() {
                return Err(format!(
                    "{name}[{k}]: kernel {g:e}, f64 reference {w:e}: error {:e} > atol {atol:e} + rtol {rtol:e}*|want|",
                    ((g as f64) - w).abs()
                ));
            }
        }
    }
    Ok(())
}

/// The problem with the weight matrices (`W_ih`, `W_hh`, `W_hr`) and the inputs (`x`,
/// `h0`, `c0`) rounded to bf16, biases and peepholes left f32: exactly the values that
/// `PackedRnn::<bf16>::pack` of `p`'s weights, fed `p`'s inputs as bf16, computes on.
pub fn rounded_bf16(p: &Problem) -> Problem {
    let round = |v: &mut Vec<f32>| {
        for x in v.iter_mut() {
            *x = rnn_kernels::half::bf16::from_f32(*x).to_f32();
        }
    };
    let mut q = p.clone();
    for w in &mut q.weights {
        round(&mut w.w_ih);
        round(&mut w.w_hh);
        w.w_hr.iter_mut().for_each(round);
    }
    round(&mut q.x);
    q.h0.iter_mut().for_each(round);
    q.c0.iter_mut().for_each(round);
    q
}

/// [`compare`] for outputs written as bf16 (`got` widened back to f32): classes are
/// those of the references rounded to bf16 (values within ~0.4% of `bf16::MAX` are
/// skipped: whether they round to inf there is decided by the last f32 bit), and the
/// value tolerance grows by the output rounding, half a bf16 ulp (2^-9 relative; 2^-8
/// is used, as in `kernels/tests/half.rs`, to cover the double rounding f64 -> f32 ->
/// bf16).
pub fn compare_bf16_outputs(
    name: &str,
    got: &[f32],
    want: &[f64],
    want32: &[f32],
    check: Check,
) -> std::result::Result<(), String> {
    let near_max = |v: f64| v.abs() > 3.37e38 && v.is_finite();
    let to_bf16 = |v: f64| rnn_kernels::half::bf16::from_f64(v).to_f64();
    let keep: Vec<bool> = want
        .iter()
        .zip(want32)
        .map(|(&w, &w32)| !near_max(w) && !near_max(w32 as f64))
        .collect();
    let pick = |v: Vec<f64>| -> Vec<f64> {
        v.into_iter()
            .zip(&keep)
            .map(|(x, &k)| if k { x } else { f64::NAN })
            .collect()
    };
    // Skipped positions become NaN in all three, which `compare` accepts.
    let want_r = pick(want.iter().map(|&w| to_bf16(w)).collect());
    let want32_r: Vec<f32> = pick(want32.iter().map(|&w| to_bf16(w as f64)).collect())
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let got_k: Vec<f32> = got
        .iter()
        .zip(&keep)
        .map(|(&g, &k)| if k { g } else { f32::NAN })
        .collect();
    // Values against the unrounded reference (the rounding is in the tolerance).
    let want_v: Vec<f64> = want
        .iter()
        .zip(&want_r)
        .map(|(&w, &r)| if r.is_finite() { w } else { r })
        .collect();
    let check = match check {
        Check::Values((atol, rtol)) => Check::Values((atol, rtol + f64::powi(2.0, -8))),
        c => c,
    };
    compare(name, &got_k, &want_v, &want32_r, check)
}

/// Borrowed f32 views of owned weights.
pub fn views(w: &[OwnedLayerWeights<f32>]) -> Vec<LayerWeights<'_, f32>> {
    rnn_reference::views(w)
}
