//! Random problems and the tolerance every kernel path is held to.
#![allow(dead_code)]

use rnn_kernels::{Element, Isa, PackedRnn, SequenceOutputMut, Workspace};
use rnn_reference::{
    forward, views, CellKind, Direction, OwnedLayerWeights, RnnActivation, RnnConfig, SeqShape,
    SequenceInput, SequenceOutput, TensorLayout,
};

/// A small deterministic generator (SplitMix64), so a proptest seed reproduces a case.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
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
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
}

/// One random problem: config, shape, f32 weights and inputs.
pub struct Problem {
    pub cfg: RnnConfig,
    pub shape: SeqShape,
    pub weights: Vec<OwnedLayerWeights<f32>>,
    pub x: Vec<f32>,
    pub h0: Option<Vec<f32>>,
    pub c0: Option<Vec<f32>>,
    pub seq_lens: Option<Vec<usize>>,
    /// Largest |x|.
    pub x_scale: f32,
}

pub fn random_cell(rng: &mut Rng, hidden: usize) -> CellKind {
    match rng.below(3) {
        0 => CellKind::Rnn {
            activation: if rng.coin() {
                RnnActivation::Tanh
            } else {
                RnnActivation::Relu
            },
        },
        1 => CellKind::Lstm {
            peephole: rng.coin(),
            proj_size: (hidden > 1 && rng.coin()).then(|| 1 + rng.below(hidden - 1)),
        },
        _ => CellKind::Gru {
            linear_before_reset: rng.coin(),
        },
    }
}

/// Scales every row of `w` (`rows x k`) so that its absolute sum is at most `limit`:
/// the recurrent maps are then contractions in the max-norm, so rounding errors do not
/// grow from step to step (see [`tolerance`]).
fn limit_rows(w: &mut [f32], k: usize, limit: f32) {
    for row in w.chunks_mut(k) {
        let s: f32 = row.iter().map(|v| v.abs()).sum();
        if s > limit {
            row.iter_mut().for_each(|v| *v *= limit / s);
        }
    }
}

/// A random problem with sizes `dims` = (I, H, B, T) and a random cell (or `cell`).
pub fn problem(
    seed: u64,
    dims: (usize, usize, usize, usize),
    layers: usize,
    cell: Option<CellKind>,
) -> Problem {
    let mut rng = Rng::new(seed);
    let (i, h, b, t) = dims;
    let random = random_cell(&mut rng, h);
    let cell = cell.unwrap_or(random);
    let direction = [
        Direction::Forward,
        Direction::Reverse,
        Direction::Bidirectional,
    ][rng.below(3)];
    let clip = (rng.below(4) == 0).then(|| 0.5 + rng.below(3) as f32);
    let cfg = RnnConfig::new(cell, i, h)
        .with_layers(layers)
        .with_direction(direction)
        .with_clip(clip);
    let layout = if rng.coin() {
        TensorLayout::TimeMajor
    } else {
        TensorLayout::BatchMajor
    };
    let shape = SeqShape::new(t, b).with_layout(layout);
    let bias = rng.below(4) != 0;
    let mut weights = Vec::new();
    for set in 0..cfg.num_weight_sets() {
        let layer = set / cfg.num_directions();
        let lens = cfg.weight_lens(layer);
        let k_in = cfg.layer_input_size(layer);
        let mut gen = |n: usize, scale: f32| (0..n).map(|_| rng.sym() * scale).collect::<Vec<_>>();
        let mut w_ih = gen(lens.w_ih, 1.0);
        let mut w_hh = gen(lens.w_hh, 1.0);
        limit_rows(&mut w_ih, k_in, 2.0);
        limit_rows(&mut w_hh, cfg.output_size(), 0.9);
        let mut w_hr = lens.w_hr.map(|n| gen(n, 1.0));
        if let Some(w) = w_hr.as_mut() {
            limit_rows(w, h, 1.0);
        }
        weights.push(OwnedLayerWeights {
            w_ih,
            w_hh,
            b_ih: bias.then(|| gen(lens.bias, 0.5)),
            b_hh: bias.then(|| gen(lens.bias, 0.5)),
            w_hr,
            peephole: lens.peephole.map(|n| gen(n, 0.5)),
        });
    }
    // Inputs: mostly O(1), sometimes large enough to saturate every gate (non-finite
    // and huge values are covered by the NaN/inf tests and the fuzz targets).
    let x_scale = [1.0f32, 1.0, 8.0, 50.0][rng.below(4)];
    let d = shape.dims(&cfg).unwrap();
    let x = (0..d.x).map(|_| rng.sym() * x_scale).collect();
    let h0 = rng.coin().then(|| (0..d.h).map(|_| rng.sym()).collect());
    let c0 =
        (cfg.cell.has_cell_state() && rng.coin()).then(|| (0..d.c).map(|_| rng.sym()).collect());
    let seq_lens = rng
        .coin()
        .then(|| (0..b).map(|_| rng.below(t + 1)).collect());
    Problem {
        cfg,
        shape,
        weights,
        x,
        h0,
        c0,
        seq_lens,
        x_scale,
    }
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// The f64 reference on the problem's (f32) values.
pub fn reference(p: &Problem) -> SequenceOutput<f64> {
    let owned: Vec<OwnedLayerWeights<f64>> = p
        .weights
        .iter()
        .map(|w| OwnedLayerWeights {
            w_ih: f64s(&w.w_ih),
            w_hh: f64s(&w.w_hh),
            b_ih: w.b_ih.as_deref().map(f64s),
            b_hh: w.b_hh.as_deref().map(f64s),
            w_hr: w.w_hr.as_deref().map(f64s),
            peephole: w.peephole.as_deref().map(f64s),
        })
        .collect();
    let (x, h0, c0) = (
        f64s(&p.x),
        p.h0.as_deref().map(f64s),
        p.c0.as_deref().map(f64s),
    );
    forward(
        &p.cfg,
        &views(&owned),
        p.shape,
        SequenceInput {
            x: &x,
            h0: h0.as_deref(),
            c0: c0.as_deref(),
            seq_lens: p.seq_lens.as_deref(),
        },
    )
    .expect("reference accepts the generated problem")
}

/// The absolute and relative error allowed for every output of a problem, against the
/// f64 reference run on the same f32 values. One bound for every kernel path.
///
/// Derivation. Each gate pre-activation is a dot product of length
/// `n = I_l + H_out + 2` (input, recurrent, two biases) computed in f32; its error is at
/// most `gamma_n * S` with `gamma_n = n u / (1 - n u)`, `u = 2^-24` (Higham, Thm 3.1)
/// and `S` the sum of |term|, which the generator bounds: input rows have absolute sum
/// <= 2 (times the largest input `xs`), recurrent rows <= 0.9 (times the largest state
/// `hs`), the two biases <= 1. sigmoid and tanh are 1-Lipschitz and the vector
/// activations add at most a few `u` absolute (measured, see `arch::math`); the cell
/// update adds a few more roundings of O(1) values: `16 u` covers both. The recurrent
/// maps are contractions (row sums <= 0.9 after 1-Lipschitz activations), so an error
/// made at one step is not amplified later, but the errors of all `T` steps and `L`
/// layers can add up. An LSTM's `c' = f c + i g` adds `(|c| + 1) / 4 + 1` gate errors
/// per step (sigmoid' <= 1/4, tanh' <= 1) with `|c| <= |c0| + T`, and `h = o tanh(c)`
/// one more quarter: a factor `1.5 + cmax / 4`. Hence
///
/// `atol = L * T * F * (gamma_n * S + 16 u)`, `S = 2 xs + 0.9 hs + 1`, `F` = 1 or the
/// LSTM factor,
///
/// with `hs = 1` for bounded cells and `(2 xs + 1) / 0.1` for ReLU RNNs (whose state is
/// bounded only by the contraction), and `rtol = 8 u` for the final rounding of large
/// outputs.
pub fn tolerance(p: &Problem) -> (f64, f64) {
    let u = f64::powi(2.0, -24);
    let cfg = &p.cfg;
    let n = (cfg.input_size.max(cfg.num_directions() * cfg.output_size()) + cfg.output_size() + 2)
        as f64;
    let gamma = n * u / (1.0 - n * u);
    let relu = matches!(
        cfg.cell,
        CellKind::Rnn {
            activation: RnnActivation::Relu
        }
    );
    let mut xs = (p.x_scale as f64).max(1.0);
    let mut hs = 1.0f64;
    if relu {
        for _ in 0..cfg.num_layers {
            hs = (2.0 * xs + 1.0) / 0.1 + 1.0;
            xs = xs.max(hs);
        }
    }
    let s = 2.0 * xs + 0.9 * hs + 1.0;
    let t = p.shape.steps as f64;
    let f = if cfg.cell.has_cell_state() {
        1.5 + (1.0 + t) / 4.0
    } else {
        1.0
    };
    let atol = cfg.num_layers as f64 * t * f * (gamma * s + 16.0 * u);
    (atol, 8.0 * u)
}

/// Compares `got` with `want` element-wise; NaN must match NaN. Returns a description
/// of the worst violation.
pub fn compare(name: &str, got: &[f32], want: &[f64], tol: (f64, f64)) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{name}: length {} != {}", got.len(), want.len()));
    }
    let mut worst: Option<(usize, f64)> = None;
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = g as f64;
        let bad = if w.is_nan() || g.is_nan() {
            w.is_nan() != g.is_nan()
        } else if w.is_infinite() || g.is_infinite() {
            g != w
        } else {
            (g - w).abs() > tol.0 + tol.1 * w.abs()
        };
        if bad {
            let excess = (g - w).abs() / (tol.0 + tol.1 * w.abs());
            if worst.is_none_or(|(_, e)| excess > e || excess.is_nan()) {
                worst = Some((k, excess));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((k, _)) => Err(format!(
            "{name}[{k}]: got {}, want {} (atol {:e}, rtol {:e})",
            got[k], want[k], tol.0, tol.1
        )),
    }
}

/// The kernels (f32) on the problem at `isa`: `(y, h_n, c_n)`, outputs pre-filled
/// with NaN so an unwritten element cannot pass.
pub fn run_kernels(p: &Problem, isa: Isa) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    run_typed::<f32, f32>(p, isa)
}

/// The kernels with weights stored as `W` and inputs/outputs in `T` (the problem's
/// values rounded to `T` on the way in), outputs widened back to f32; pre-filled with
/// NaN so an unwritten element cannot pass.
pub fn run_typed<W: Element, T: Element>(p: &Problem, isa: Isa) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rnn = PackedRnn::<W>::pack(&p.cfg, &views(&p.weights))
        .unwrap()
        .with_isa(Some(isa))
        .unwrap();
    let d = p.shape.dims(&p.cfg).unwrap();
    let lstm = p.cfg.cell.has_cell_state();
    let conv = |v: &[f32]| v.iter().map(|&x| T::from_f32(x)).collect::<Vec<T>>();
    let (x, h0, c0) = (
        conv(&p.x),
        p.h0.as_deref().map(conv),
        p.c0.as_deref().map(conv),
    );
    let nan = T::from_f32(f32::NAN);
    let (mut y, mut h_n, mut c_n) = (vec![nan; d.y], vec![nan; d.h], vec![nan; d.c]);
    rnn.forward(
        &mut Workspace::new(),
        p.shape,
        SequenceInput {
            x: &x,
            h0: h0.as_deref(),
            c0: c0.as_deref(),
            seq_lens: p.seq_lens.as_deref(),
        },
        SequenceOutputMut {
            y: &mut y,
            h_n: Some(&mut h_n),
            c_n: lstm.then_some(&mut c_n[..]),
        },
    )
    .unwrap();
    let back = |v: &[T]| v.iter().map(|x| x.to_f32()).collect::<Vec<f32>>();
    (back(&y), back(&h_n), back(&c_n))
}
