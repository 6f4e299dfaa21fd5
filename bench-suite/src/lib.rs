//! Shared pieces of the rnn-kernels bench-suite: the benchmark configurations, the
//! FLOP count, a deterministic problem builder, the **unfused baseline** (how
//! candle- or burn-style code computes a cell: GEMMs plus separate elementwise
//! passes) and a short FMA-throughput probe that measures this machine's peak.
//!
//! Used by the criterion benches (`benches/rnn.rs`) and the `report` binary.

use std::ops::Range;
use std::time::{Duration, Instant};

use rnn_kernels::{CellKind, Element, Isa, LayerWeights, RnnActivation, RnnConfig};

// ---------------------------------------------------------------------------------
// Configurations and FLOP counts
// ---------------------------------------------------------------------------------

/// One benchmark shape: batch `B`, hidden `H`, input `I`, steps `T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BenchConfig {
    /// `B`.
    pub batch: usize,
    /// `H`.
    pub hidden: usize,
    /// `I`.
    pub input: usize,
    /// `T`.
    pub steps: usize,
}

impl BenchConfig {
    /// A shape.
    pub const fn new(batch: usize, hidden: usize, input: usize, steps: usize) -> Self {
        BenchConfig {
            batch,
            hidden,
            input,
            steps,
        }
    }

    /// `BxHxIxT`, e.g. `1x256x256x100` (the peers scripts' `--shapes` syntax).
    pub fn label(&self) -> String {
        format!(
            "{}x{}x{}x{}",
            self.batch, self.hidden, self.input, self.steps
        )
    }

    /// Parses `BxHxIxT`.
    pub fn parse(s: &str) -> Option<Self> {
        let v: Vec<usize> = s
            .trim()
            .split('x')
            .map(|p| p.trim().parse().ok())
            .collect::<Option<_>>()?;
        match v[..] {
            [b, h, i, t] if b > 0 && h > 0 && i > 0 && t > 0 => Some(Self::new(b, h, i, t)),
            _ => None,
        }
    }

    /// The same shape with a different number of steps.
    pub fn with_steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }
}

/// The bench-suite shapes (B, H, I, T): Baidu DeepBench's RNN inference shapes scaled
/// to a 2-core machine. The same list as `peers/peers.py`.
pub const CONFIGS: [BenchConfig; 6] = [
    BenchConfig::new(1, 256, 256, 100),
    BenchConfig::new(1, 512, 512, 100),
    BenchConfig::new(1, 1024, 1024, 100),
    BenchConfig::new(16, 512, 512, 50),
    BenchConfig::new(64, 512, 512, 50),
    BenchConfig::new(64, 1024, 1024, 25),
];

/// The three benchmarked cells, in report order.
pub const CELLS: [Cell; 3] = [Cell::Lstm, Cell::Gru, Cell::Rnn];

/// A benchmarked cell, in the form the peers use: PyTorch LSTM (no peephole, no
/// projection), GRU with `linear_before_reset = true` (PyTorch / cuDNN form) and the
/// tanh RNN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cell {
    /// `torch.nn.LSTM`.
    Lstm,
    /// `torch.nn.GRU`.
    Gru,
    /// `torch.nn.RNN(nonlinearity="tanh")`.
    Rnn,
}

impl Cell {
    /// `"lstm"`, `"gru"` or `"rnn"`.
    pub fn name(self) -> &'static str {
        match self {
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
            Cell::Rnn => "rnn",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "lstm" => Some(Cell::Lstm),
            "gru" => Some(Cell::Gru),
            "rnn" => Some(Cell::Rnn),
            _ => None,
        }
    }

    /// The kernel crates' cell kind.
    pub fn kind(self) -> CellKind {
        match self {
            Cell::Lstm => CellKind::Lstm {
                peephole: false,
                proj_size: None,
            },
            Cell::Gru => CellKind::Gru {
                linear_before_reset: true,
            },
            Cell::Rnn => CellKind::Rnn {
                activation: RnnActivation::Tanh,
            },
        }
    }

    /// `G`: 4, 3 or 1.
    pub fn gates(self) -> usize {
        self.kind().gates()
    }

    /// A single forward layer of this cell with `cfg`'s sizes.
    pub fn rnn_config(self, cfg: &BenchConfig) -> RnnConfig {
        RnnConfig::new(self.kind(), cfg.input, cfg.hidden)
    }
}

/// FLOPs of a whole sequence, GEMM count only: `2·T·B·G·H·(I+H)`. Gate nonlinearities
/// are not counted, so numbers compare across tools.
pub fn flops(cell: Cell, cfg: &BenchConfig) -> u64 {
    cfg.steps as u64 * step_flops(cell, cfg)
}

/// FLOPs of one step (`T = 1`): `2·B·G·H·(I+H)`.
pub fn step_flops(cell: Cell, cfg: &BenchConfig) -> u64 {
    2 * cfg.batch as u64 * cell.gates() as u64 * cfg.hidden as u64 * (cfg.input + cfg.hidden) as u64
}

// ---------------------------------------------------------------------------------
// Deterministic problems
// ---------------------------------------------------------------------------------

/// A small deterministic generator (SplitMix64), so every run and every tool sees the
/// same numbers without a `rand` dependency.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-a, a)`.
    pub fn uniform(&mut self, a: f32) -> f32 {
        // 24 random bits -> [0, 1).
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        (2.0 * u - 1.0) * a
    }

    /// `n` values uniform in `[-a, a)`.
    pub fn vec(&mut self, n: usize, a: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(a)).collect()
    }
}

/// One benchmark problem: single-layer forward weights in PyTorch layout (with both
/// biases) and a time-major input `[T, B, I]`.
#[derive(Clone, Debug)]
pub struct Problem {
    /// The cell.
    pub cell: Cell,
    /// The shape.
    pub shape: BenchConfig,
    /// The kernels' / reference's configuration (one forward layer).
    pub cfg: RnnConfig,
    /// `[G*H, I]`.
    pub w_ih: Vec<f32>,
    /// `[G*H, H]`.
    pub w_hh: Vec<f32>,
    /// `[G*H]`.
    pub b_ih: Vec<f32>,
    /// `[G*H]`.
    pub b_hh: Vec<f32>,
    /// `[T, B, I]`, uniform in ±1.
    pub x: Vec<f32>,
}

impl Problem {
    /// Weights uniform in ±1/sqrt(H) (PyTorch's default init), inputs uniform in ±1,
    /// from a seed derived from the cell and the shape.
    pub fn new(cell: Cell, shape: BenchConfig) -> Self {
        let (g, h, i) = (cell.gates(), shape.hidden, shape.input);
        let seed = 0x5EED_0000_u64
            ^ ((g as u64) << 48)
            ^ ((h as u64) << 32)
            ^ ((i as u64) << 16)
            ^ shape.batch as u64;
        let mut rng = SplitMix64::new(seed);
        let k = 1.0 / (h as f32).sqrt();
        let w_ih = rng.vec(g * h * i, k);
        let w_hh = rng.vec(g * h * h, k);
        let b_ih = rng.vec(g * h, k);
        let b_hh = rng.vec(g * h, k);
        // x depends on the steps too, but its first `t` steps do not: prefixes are
        // the same problem with fewer steps (the report relies on it).
        let x = rng.vec(shape.steps * shape.batch * i, 1.0);
        Problem {
            cell,
            shape,
            cfg: cell.rnn_config(&shape),
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            x,
        }
    }

    /// Borrowed weights for the kernels and the reference.
    pub fn weights(&self) -> LayerWeights<'_, f32> {
        LayerWeights::new(&self.w_ih, &self.w_hh).with_bias(&self.b_ih, &self.b_hh)
    }

    /// The first `steps` steps of `x` (`[steps, B, I]`).
    pub fn x_prefix(&self, steps: usize) -> &[f32] {
        &self.x[..steps.min(self.shape.steps) * self.shape.batch * self.shape.input]
    }

    /// Length of `y` for `steps` steps: `steps * B * H`.
    pub fn y_len(&self, steps: usize) -> usize {
        steps * self.shape.batch * self.shape.hidden
    }
}

/// Rounds every value to `T` (to nearest, ties to even; exact for `f32`).
pub fn to_elem<T: Element>(v: &[f32]) -> Vec<T> {
    let mut out = vec![T::default(); v.len()];
    T::slice_from_f32(v, &mut out);
    out
}

/// Widens every value to `f32` (exact).
pub fn to_f32<T: Element>(v: &[T]) -> Vec<f32> {
    let mut out = vec![0.0f32; v.len()];
    T::slice_to_f32(v, &mut out);
    out
}

/// Rounds every value to `T` and back: the `f32` values a `T` tensor holds.
pub fn round_through<T: Element>(v: &[f32]) -> Vec<f32> {
    to_f32(&to_elem::<T>(v))
}

impl Problem {
    /// The same problem with every weight, bias and input rounded to `T` (stored as
    /// `f32`, exactly): what the reference must see to check a run on `T` data.
    pub fn rounded<T: Element>(&self) -> Problem {
        Problem {
            w_ih: round_through::<T>(&self.w_ih),
            w_hh: round_through::<T>(&self.w_hh),
            b_ih: round_through::<T>(&self.b_ih),
            b_hh: round_through::<T>(&self.b_hh),
            x: round_through::<T>(&self.x),
            ..self.clone()
        }
    }

    /// The problem's tensors converted to `T` (rounded to nearest, ties to even).
    pub fn typed<T: Element>(&self) -> TypedProblem<T> {
        TypedProblem {
            batch: self.shape.batch,
            input: self.shape.input,
            steps: self.shape.steps,
            w_ih: to_elem(&self.w_ih),
            w_hh: to_elem(&self.w_hh),
            b_ih: to_elem(&self.b_ih),
            b_hh: to_elem(&self.b_hh),
            x: to_elem(&self.x),
        }
    }
}

/// A [`Problem`]'s weights, biases and input held in element type `T` (`f32`,
/// `half::f16` or `half::bf16`), as a framework holding `T` tensors would pass them.
#[derive(Clone, Debug)]
pub struct TypedProblem<T> {
    batch: usize,
    input: usize,
    steps: usize,
    /// `[G*H, I]`.
    pub w_ih: Vec<T>,
    /// `[G*H, H]`.
    pub w_hh: Vec<T>,
    /// `[G*H]`.
    pub b_ih: Vec<T>,
    /// `[G*H]`.
    pub b_hh: Vec<T>,
    /// `[T, B, I]`.
    pub x: Vec<T>,
}

impl<T> TypedProblem<T> {
    /// Borrowed weights, for `PackedRnn::<W>::pack` / `PackedCell::<W>::pack`.
    pub fn weights(&self) -> LayerWeights<'_, T> {
        LayerWeights::new(&self.w_ih, &self.w_hh).with_bias(&self.b_ih, &self.b_hh)
    }

    /// The first `steps` steps of `x` (`[steps, B, I]`).
    pub fn x_prefix(&self, steps: usize) -> &[T] {
        &self.x[..steps.min(self.steps) * self.batch * self.input]
    }
}

/// Largest `|a - b|` over two equally long slices (NaN counts as infinite).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "max_abs_diff: lengths differ");
    a.iter().zip(b).fold(0.0f32, |m, (&x, &y)| {
        let d = (x - y).abs();
        if d.is_nan() {
            f32::INFINITY
        } else {
            m.max(d)
        }
    })
}

// ---------------------------------------------------------------------------------
// The unfused baseline
// ---------------------------------------------------------------------------------

/// A raw pointer that may cross to another rayon thread (each thread writes a
/// disjoint set of columns through it).
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
impl SendPtr {
    /// The pointer (a method, so closures capture the whole `SendPtr`).
    fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: only used to hand disjoint column blocks of one buffer to the threads of a
// `rayon::scope` that ends before the buffer's borrow does.
unsafe impl Send for SendPtr {}
// SAFETY: as above; the pointer itself is only copied, never used to create aliasing
// writes (column ranges are disjoint).
unsafe impl Sync for SendPtr {}

/// `C[m, n] = A[m, k] · W[n, k]ᵀ` with row-major `A` (row stride `lda`), row-major `W`
/// (PyTorch weight layout) and row-major `C` (row stride `ldc`), computed by
/// `matrixmultiply::sgemm`. With more than one thread in the current rayon pool and
/// enough work, the `n` columns are split into contiguous blocks, one per thread
/// (what a threaded GEMM library would do for these shapes).
///
/// # Panics
/// If a slice is too short for the given sizes.
#[allow(clippy::too_many_arguments)]
pub fn gemm_abt(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    lda: usize,
    w: &[f32],
    c: &mut [f32],
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(lda >= k && ldc >= n, "gemm_abt: bad strides");
    assert!(a.len() >= (m - 1) * lda + k, "gemm_abt: A too short");
    assert!(w.len() >= n * k, "gemm_abt: W too short");
    assert!(c.len() >= (m - 1) * ldc + n, "gemm_abt: C too short");
    let threads = rayon::current_num_threads()
        .min(n / 64)
        .min((m * n * k / (128 * 1024)).max(1))
        .max(1);
    let cp = SendPtr(c.as_mut_ptr());
    let block = |cols: Range<usize>| {
        // SAFETY: the asserts above bound every index sgemm touches: A rows < m with
        // stride lda and k columns; Wᵀ as a k x n view of W[n, k] (row stride 1,
        // column stride k) restricted to `cols`; C rows < m with stride ldc and
        // columns in `cols`. Different blocks write disjoint columns of C, and `c`
        // is exclusively borrowed for the duration of this call.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                cols.len(),
                1.0,
                a.as_ptr(),
                lda as isize,
                1,
                w.as_ptr().add(cols.start * k),
                1,
                k as isize,
                0.0,
                cp.get().add(cols.start),
                ldc as isize,
                1,
            );
        }
    };
    if threads <= 1 {
        block(0..n);
        return;
    }
    // Column blocks on multiples of 16 (a cache line of f32).
    let chunk = |i: usize| {
        let edge = |j: usize| ((j * n / threads) / 16 * 16).min(n);
        let end = if i + 1 == threads { n } else { edge(i + 1) };
        edge(i)..end
    };
    rayon::scope(|s| {
        for i in 1..threads {
            let block = &block;
            s.spawn(move |_| block(chunk(i)));
        }
        block(chunk(0));
    });
}

/// Preallocated buffers of the unfused baseline for one shape.
#[derive(Default)]
pub struct UnfusedWorkspace {
    /// `X·W_ihᵀ` for all steps: `[T*B, G*H]`.
    xw: Vec<f32>,
    /// `h·W_hhᵀ` for one step: `[B, G*H]`.
    hw: Vec<f32>,
    /// `h`: `[B, H]`.
    h: Vec<f32>,
    /// `c` (LSTM): `[B, H]`.
    c: Vec<f32>,
}

impl UnfusedWorkspace {
    /// An empty workspace (grows on first use).
    pub fn new() -> Self {
        Self::default()
    }

    fn ensure(&mut self, steps: usize, batch: usize, g: usize, h: usize) {
        let grow = |v: &mut Vec<f32>, n: usize| {
            if v.len() < n {
                v.resize(n, 0.0);
            }
        };
        grow(&mut self.xw, steps * batch * g * h);
        grow(&mut self.hw, batch * g * h);
        grow(&mut self.h, batch * h);
        grow(&mut self.c, batch * h);
    }
}

/// The unfused composition of a single forward layer, as candle- or burn-style code
/// computes it: one GEMM `X·W_ihᵀ` over all steps, then per step a GEMM `h·W_hhᵀ`
/// into a `[B, G*H]` buffer followed by a separate scalar elementwise pass (bias add,
/// `sigmoid`/`tanh` with std `f32` functions, cell update). Weights stay in PyTorch
/// layout (no packing); buffers are preallocated in an [`UnfusedWorkspace`].
#[derive(Clone, Debug)]
pub struct Unfused {
    cell: Cell,
    input: usize,
    hidden: usize,
    w_ih: Vec<f32>,
    w_hh: Vec<f32>,
    b_ih: Vec<f32>,
    b_hh: Vec<f32>,
}

#[inline]
fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

impl Unfused {
    /// Copies a problem's weights.
    pub fn new(p: &Problem) -> Self {
        Unfused {
            cell: p.cell,
            input: p.shape.input,
            hidden: p.shape.hidden,
            w_ih: p.w_ih.clone(),
            w_hh: p.w_hh.clone(),
            b_ih: p.b_ih.clone(),
            b_hh: p.b_hh.clone(),
        }
    }

    /// Runs `steps` steps from zero states over `x` `[steps, B, I]`, writing `y`
    /// `[steps, B, H]`.
    ///
    /// # Panics
    /// If `x` or `y` has the wrong length.
    pub fn forward(
        &self,
        ws: &mut UnfusedWorkspace,
        steps: usize,
        batch: usize,
        x: &[f32],
        y: &mut [f32],
    ) {
        let (i, h, g) = (self.input, self.hidden, self.cell.gates());
        let gh = g * h;
        assert_eq!(x.len(), steps * batch * i, "x: [T, B, I]");
        assert_eq!(y.len(), steps * batch * h, "y: [T, B, H]");
        ws.ensure(steps, batch, g, h);
        let UnfusedWorkspace {
            xw,
            hw,
            h: hs,
            c: cs,
        } = ws;
        let (hs, cs) = (&mut hs[..batch * h], &mut cs[..batch * h]);
        hs.fill(0.0);
        cs.fill(0.0);
        // 1. Input projection for every step at once.
        gemm_abt(steps * batch, i, gh, x, i, &self.w_ih, xw, gh);
        for t in 0..steps {
            // 2. Recurrent projection of this step.
            gemm_abt(batch, h, gh, hs, h, &self.w_hh, hw, gh);
            // 3. Separate elementwise pass over the gates.
            let xw_t = &xw[t * batch * gh..(t + 1) * batch * gh];
            for b in 0..batch {
                let xr = &xw_t[b * gh..(b + 1) * gh];
                let hr = &hw[b * gh..(b + 1) * gh];
                let hb = &mut hs[b * h..(b + 1) * h];
                let (bi, bh) = (&self.b_ih, &self.b_hh);
                match self.cell {
                    Cell::Lstm => {
                        let cb = &mut cs[b * h..(b + 1) * h];
                        for j in 0..h {
                            let pre = |k: usize| xr[k] + bi[k] + hr[k] + bh[k];
                            let ig = sigmoid(pre(j));
                            let fg = sigmoid(pre(h + j));
                            let gg = pre(2 * h + j).tanh();
                            let og = sigmoid(pre(3 * h + j));
                            let c = fg * cb[j] + ig * gg;
                            cb[j] = c;
                            hb[j] = og * c.tanh();
                        }
                    }
                    Cell::Gru => {
                        for j in 0..h {
                            let r = sigmoid(xr[j] + bi[j] + hr[j] + bh[j]);
                            let (kz, kn) = (h + j, 2 * h + j);
                            let z = sigmoid(xr[kz] + bi[kz] + hr[kz] + bh[kz]);
                            let n = (xr[kn] + bi[kn] + r * (hr[kn] + bh[kn])).tanh();
                            hb[j] = (1.0 - z) * n + z * hb[j];
                        }
                    }
                    Cell::Rnn => {
                        for j in 0..h {
                            hb[j] = (xr[j] + bi[j] + hr[j] + bh[j]).tanh();
                        }
                    }
                }
            }
            y[t * batch * h..(t + 1) * batch * h].copy_from_slice(hs);
        }
    }
}

// ---------------------------------------------------------------------------------
// FMA peak probe
// ---------------------------------------------------------------------------------

/// Independent accumulators of the probe: enough to cover FMA latency × FMA ports on
/// current x86 cores (4 cycles × 2 ports = 8 needed).
pub const PROBE_ACCUMULATORS: usize = 12;

/// Measures one core's FMA throughput in GFLOP/s (an FMA counts as 2 FLOPs) for the
/// instruction set `isa` by running a dependency-free FMA loop with
/// [`PROBE_ACCUMULATORS`] independent accumulators for about `budget` (50-100 ms is
/// plenty) and keeping the best rate of several rounds. Multiply by the number of
/// threads for the peak of a multi-thread run. Returns `None` if the CPU lacks `isa`.
///
/// `Isa::Portable` measures the kernels' portable path: 128-bit vectors without FMA
/// (a multiply and an add per lane, also 2 FLOPs).
pub fn fma_peak_gflops(isa: Isa, budget: Duration) -> Option<f64> {
    if !isa.is_available() {
        return None;
    }
    let round: fn(u64) -> f32 = match isa {
        // The AVX512-BF16 path's f32 work runs on the same FMAs; its `vdpbf16ps`
        // input projection does twice the FLOPs per instruction, so "% of peak" can
        // exceed 100% there.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 | Isa::Avx512Bf16 => {
            if !(std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("fma"))
            {
                return None;
            }
            |n| {
                // SAFETY: reached only after `is_x86_feature_detected!("avx512f")`
                // returned true above (the function pointer is used only here).
                unsafe { probe::avx512(n) }
            }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            if !(std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma"))
            {
                return None;
            }
            |n| {
                // SAFETY: reached only after `is_x86_feature_detected!("avx2")` and
                // `("fma")` returned true above.
                unsafe { probe::avx2(n) }
            }
        }
        _ => probe::portable,
    };
    let lanes: u64 = match isa {
        Isa::Avx512 | Isa::Avx512Bf16 => 16,
        Isa::Avx2 => 8,
        _ => 4,
    };
    Some(best_rate(
        round,
        2 * lanes * PROBE_ACCUMULATORS as u64,
        budget,
    ))
}

/// The `vdpbf16ps` rate in GFLOP/s of one core (two multiply-adds per f32 lane per
/// instruction, counted as 4 FLOPs), measured like [`fma_peak_gflops`]; `None` without
/// AVX512-BF16. This is the peak of the AVX512-BF16 path's bf16 input projection.
pub fn dot_bf16_peak_gflops(budget: Duration) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx512Bf16.is_available() {
        let round: fn(u64) -> f32 = |n| {
            // SAFETY: reached only after `Isa::Avx512Bf16.is_available()` (which
            // detects avx512f and avx512bf16) returned true just above.
            unsafe { probe::dpbf16(n) }
        };
        return Some(best_rate(round, 4 * 16 * PROBE_ACCUMULATORS as u64, budget));
    }
    let _ = budget;
    None
}

/// Best GFLOP/s of `round` over `budget`.
fn best_rate(round: fn(u64) -> f32, flops_per_iter: u64, budget: Duration) -> f64 {
    // Calibrate: grow the iteration count until one round takes >= 5 ms.
    let mut iters = 1u64 << 14;
    loop {
        let t0 = Instant::now();
        std::hint::black_box(round(std::hint::black_box(iters)));
        if t0.elapsed() >= Duration::from_millis(5) || iters >= 1 << 40 {
            break;
        }
        iters *= 2;
    }
    let start = Instant::now();
    let mut best = 0.0f64;
    while start.elapsed() < budget || best == 0.0 {
        let t0 = Instant::now();
        std::hint::black_box(round(std::hint::black_box(iters)));
        let s = t0.elapsed().as_secs_f64();
        best = best.max((iters * flops_per_iter) as f64 / s / 1e9);
    }
    best
}

mod probe {
    //! The probe loops: `acc = acc * m + a` on 12 independent vector accumulators.

    use super::PROBE_ACCUMULATORS as N;

    // Values that keep the accumulators bounded and normal for any iteration count:
    // acc -> acc * M + A converges to A / (1 - M) = 0.5.
    const M: f32 = 0.999_999;
    const A: f32 = 0.5e-6;

    /// AVX-512: `vfmadd` on zmm registers.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn avx512(iters: u64) -> f32 {
        use std::arch::x86_64::*;
        let m = _mm512_set1_ps(M);
        let a = _mm512_set1_ps(A);
        let mut acc = [_mm512_setzero_ps(); N];
        for (k, v) in acc.iter_mut().enumerate() {
            *v = _mm512_set1_ps(k as f32 * 1e-3);
        }
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, m, a);
            }
        }
        let mut s = _mm512_setzero_ps();
        for v in acc {
            s = _mm512_add_ps(s, v);
        }
        _mm512_reduce_add_ps(s)
    }

    /// AVX512-BF16: `vdpbf16ps` on zmm registers, `acc += m.lo * a.lo + m.hi * a.hi`
    /// with bf16 pairs whose products cancel (1 * 2^-20 and -1 * 2^-20), so the
    /// accumulators stay put.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX512-BF16.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn dpbf16(iters: u64) -> f32 {
        use std::arch::x86_64::*;
        // bf16 bits: 1.0 = 0x3F80, -1.0 = 0xBF80, 2^-20 = 0x3580.
        let ones = _mm512_set1_epi32(0xBF80_3F80u32 as i32);
        let tiny = _mm512_set1_epi32(0x3580_3580);
        // SAFETY: `__m512i` and `__m512bh` are both 64 plain bytes.
        let (m, a) = unsafe {
            (
                std::mem::transmute::<__m512i, __m512bh>(ones),
                std::mem::transmute::<__m512i, __m512bh>(tiny),
            )
        };
        let mut acc = [_mm512_setzero_ps(); N];
        for (k, v) in acc.iter_mut().enumerate() {
            *v = _mm512_set1_ps(k as f32 * 1e-3);
        }
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_dpbf16_ps(*v, m, a);
            }
        }
        let mut s = _mm512_setzero_ps();
        for v in acc {
            s = _mm512_add_ps(s, v);
        }
        _mm512_reduce_add_ps(s)
    }

    /// AVX2: `vfmadd` on ymm registers.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2(iters: u64) -> f32 {
        use std::arch::x86_64::*;
        let m = _mm256_set1_ps(M);
        let a = _mm256_set1_ps(A);
        let mut acc = [_mm256_setzero_ps(); N];
        for (k, v) in acc.iter_mut().enumerate() {
            *v = _mm256_set1_ps(k as f32 * 1e-3);
        }
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, m, a);
            }
        }
        let mut s = _mm256_setzero_ps();
        for v in acc {
            s = _mm256_add_ps(s, v);
        }
        let mut out = [0.0f32; 8];
        // SAFETY: `out` holds 8 f32, the width of a ymm store (unaligned store).
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
        out.iter().sum()
    }

    /// Portable on x86_64: 128-bit SSE multiply then add (what the kernels' portable
    /// `wide` path issues: SSE2 is the x86_64 baseline, FMA is not).
    #[cfg(target_arch = "x86_64")]
    pub(super) fn portable(iters: u64) -> f32 {
        // SAFETY: SSE2 is part of the x86_64 baseline: every x86_64 CPU has it.
        unsafe { portable_sse2(iters) }
    }

    /// The SSE2 loop of [`portable`].
    ///
    /// # Safety
    /// The CPU must support SSE2 (every x86_64 CPU does).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sse2")]
    unsafe fn portable_sse2(iters: u64) -> f32 {
        use std::arch::x86_64::*;
        let m = _mm_set1_ps(M);
        let a = _mm_set1_ps(A);
        let mut acc = [_mm_setzero_ps(); N];
        for (k, v) in acc.iter_mut().enumerate() {
            *v = _mm_set1_ps(k as f32 * 1e-3);
        }
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm_add_ps(_mm_mul_ps(*v, m), a);
            }
        }
        let mut s = _mm_setzero_ps();
        for v in acc {
            s = _mm_add_ps(s, v);
        }
        let mut out = [0.0f32; 4];
        // SAFETY: `out` holds 4 f32, the width of an unaligned xmm store.
        unsafe { _mm_storeu_ps(out.as_mut_ptr(), s) };
        out.iter().sum()
    }

    /// Portable elsewhere: 4-lane arrays, multiply then add, which the compiler
    /// turns into 128-bit vectors (NEON on aarch64).
    #[cfg(not(target_arch = "x86_64"))]
    pub(super) fn portable(iters: u64) -> f32 {
        let mut acc = [[0.0f32; 4]; N];
        for (k, v) in acc.iter_mut().enumerate() {
            *v = [k as f32 * 1e-3; 4];
        }
        for _ in 0..iters {
            for v in acc.iter_mut() {
                for l in v.iter_mut() {
                    *l = *l * M + A;
                }
            }
        }
        acc.iter().flatten().sum()
    }
}

// ---------------------------------------------------------------------------------
// Timing helpers
// ---------------------------------------------------------------------------------

/// How many times to run a timed call.
#[derive(Clone, Copy, Debug)]
pub struct Repeats {
    /// Run at least this often...
    pub min_runs: usize,
    /// ...and at least this long...
    pub min_time: Duration,
    /// ...but never more often than this...
    pub max_runs: usize,
    /// ...and stop once this much time has passed (after one timed run).
    pub max_time: Duration,
}

/// Runs `f` once untimed (warm-up: workspaces grow, caches fill), then as often as
/// `r` says, and returns the median seconds per call. A warm-up that alone exceeds
/// `r.max_time` counts as the only sample (so very slow paths stay bounded).
pub fn time_median(r: Repeats, mut f: impl FnMut()) -> f64 {
    let t0 = Instant::now();
    f();
    let warm = t0.elapsed();
    if warm >= r.max_time {
        return warm.as_secs_f64();
    }
    let mut samples = Vec::with_capacity(r.min_runs.max(16));
    let start = Instant::now();
    loop {
        let t0 = Instant::now();
        f();
        samples.push(t0.elapsed().as_secs_f64());
        let (n, el) = (samples.len(), start.elapsed());
        if n >= r.max_runs.max(1) || el >= r.max_time || (n >= r.min_runs && el >= r.min_time) {
            break;
        }
    }
    median(&mut samples)
}

/// The median of `v` (sorts it). NaN for an empty slice.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// `n` copies of `v` in memory backed like the kernels' packed weights: 2 MiB pages
/// where the OS grants them for buffers of 4 MiB and more (Linux `madvise`), so
/// measurements pay the same TLB costs as the kernels' (`kernels/src/aligned.rs`).
pub fn huge_page_buffer<T: Copy>(n: usize, v: T) -> Vec<T> {
    let mut buf: Vec<T> = Vec::with_capacity(n);
    let bytes = n * std::mem::size_of::<T>();
    #[cfg(target_os = "linux")]
    if bytes >= 4 << 20 {
        extern "C" {
            fn madvise(
                addr: *mut std::ffi::c_void,
                len: usize,
                advice: std::ffi::c_int,
            ) -> std::ffi::c_int;
        }
        const HUGE: usize = 2 << 20;
        let p = buf.as_mut_ptr() as usize;
        let (start, end) = (p.next_multiple_of(HUGE), (p + bytes) / HUGE * HUGE);
        if end > start {
            // SAFETY: `[start, end)` is page-aligned and inside the fresh, untouched
            // capacity of `buf`; MADV_HUGEPAGE (14) only changes how it is backed.
            unsafe { madvise(start as *mut std::ffi::c_void, end - start, 14) };
        }
    }
    buf.resize(n, v);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnn_reference::{forward, SeqShape, SequenceInput};

    fn check_unfused(cell: Cell, shape: BenchConfig, threads: usize) {
        let p = Problem::new(cell, shape);
        let w = [p.weights()];
        let want = forward::<f32>(
            &p.cfg,
            &w,
            SeqShape::new(shape.steps, shape.batch),
            SequenceInput::new(&p.x),
        )
        .unwrap();
        let base = Unfused::new(&p);
        let mut ws = UnfusedWorkspace::new();
        let mut y = vec![f32::NAN; p.y_len(shape.steps)];
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            // Twice: the second run reuses (dirty) buffers.
            base.forward(&mut ws, shape.steps, shape.batch, &p.x, &mut y);
            base.forward(&mut ws, shape.steps, shape.batch, &p.x, &mut y);
        });
        let err = max_abs_diff(&y, &want.y);
        assert!(
            err < 1e-4,
            "{} {}: unfused vs reference max abs err {err}",
            cell.name(),
            shape.label()
        );
        let h_last = &y[y.len() - shape.batch * shape.hidden..];
        assert!(max_abs_diff(h_last, &want.h_n) <= err);
    }

    #[test]
    fn unfused_matches_reference() {
        for cell in CELLS {
            for shape in [
                BenchConfig::new(1, 7, 5, 4),
                BenchConfig::new(3, 33, 17, 5),
                BenchConfig::new(5, 64, 40, 3),
            ] {
                check_unfused(cell, shape, 1);
            }
            // Wide enough for the column split to kick in with 2 threads.
            check_unfused(cell, BenchConfig::new(4, 160, 96, 3), 2);
        }
    }

    #[test]
    fn flop_counts() {
        let c = BenchConfig::new(64, 512, 512, 50);
        assert_eq!(flops(Cell::Lstm, &c), 2 * 50 * 64 * 4 * 512 * 1024);
        assert_eq!(flops(Cell::Gru, &c), 2 * 50 * 64 * 3 * 512 * 1024);
        assert_eq!(flops(Cell::Rnn, &c), 2 * 50 * 64 * 512 * 1024);
        assert_eq!(step_flops(Cell::Lstm, &c) * 50, flops(Cell::Lstm, &c));
    }

    #[test]
    fn config_labels_round_trip() {
        for c in CONFIGS {
            assert_eq!(BenchConfig::parse(&c.label()), Some(c));
        }
        assert_eq!(BenchConfig::parse("1x2x3"), None);
        assert_eq!(BenchConfig::parse("0x2x3x4"), None);
    }

    #[test]
    fn problems_are_deterministic_and_prefix_stable() {
        let a = Problem::new(Cell::Gru, BenchConfig::new(2, 8, 4, 6));
        let b = Problem::new(Cell::Gru, BenchConfig::new(2, 8, 4, 6));
        assert_eq!(a.x, b.x);
        assert_eq!(a.w_hh, b.w_hh);
        let short = Problem::new(Cell::Gru, BenchConfig::new(2, 8, 4, 3));
        assert_eq!(short.x, a.x_prefix(3));
        assert_eq!(short.w_ih, a.w_ih);
        let bound = 1.0 / 8f32.sqrt();
        assert!(a.w_ih.iter().all(|v| v.abs() <= bound));
        assert!(a.x.iter().all(|v| v.abs() <= 1.0));
    }

    #[test]
    fn typed_problems_round_once() {
        use rnn_kernels::half::{bf16, f16};
        let p = Problem::new(Cell::Lstm, BenchConfig::new(2, 8, 4, 3));
        let r = p.rounded::<bf16>();
        let t = p.typed::<bf16>();
        assert_eq!(r.w_hh, to_f32(&t.w_hh));
        assert_eq!(r.x, to_f32(&t.x));
        assert_eq!(to_f32(t.x_prefix(2)), r.x_prefix(2));
        // Rounding is idempotent, and f32 is exact.
        assert_eq!(r.rounded::<bf16>().w_ih, r.w_ih);
        assert_eq!(p.rounded::<f32>().x, p.x);
        let h = p.rounded::<f16>();
        assert!(max_abs_diff(&h.w_ih, &p.w_ih) <= 1.0 / 2048.0);
        assert!(h.w_ih.iter().zip(&p.w_ih).any(|(a, b)| a != b));
    }

    #[test]
    fn probe_runs() {
        for isa in Isa::available() {
            let g = fma_peak_gflops(isa, Duration::from_millis(5)).unwrap();
            assert!(g.is_finite() && g > 0.1, "{isa}: {g}");
        }
    }
}
