//! The unfused baseline: how candle- or burn-style code computes a cell (GEMMs plus
//! separate elementwise passes).

use std::ops::Range;

use crate::configs::Cell;
use crate::problems::Problem;

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
    /// The problem's attention `[T, B]` (AUGRU; empty otherwise), an input the
    /// baseline reads like `x`.
    att: Vec<f32>,
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
            att: p.att.clone(),
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
                    Cell::Lstm | Cell::LstmHardSigmoid => {
                        let cb = &mut cs[b * h..(b + 1) * h];
                        let gate = |v: f32| match self.cell {
                            // HardSigmoid(0.2, 0.5), as `Activation::eval` in f32.
                            Cell::LstmHardSigmoid => (0.2 * v + 0.5).clamp(0.0, 1.0),
                            _ => sigmoid(v),
                        };
                        for j in 0..h {
                            let pre = |k: usize| xr[k] + bi[k] + hr[k] + bh[k];
                            let ig = gate(pre(j));
                            let fg = gate(pre(h + j));
                            let gg = pre(2 * h + j).tanh();
                            let og = gate(pre(3 * h + j));
                            let c = fg * cb[j] + ig * gg;
                            cb[j] = c;
                            hb[j] = og * c.tanh();
                        }
                    }
                    Cell::Cifg => {
                        // Gate blocks f, g, o; i = 1 − f.
                        let cb = &mut cs[b * h..(b + 1) * h];
                        for j in 0..h {
                            let pre = |k: usize| xr[k] + bi[k] + hr[k] + bh[k];
                            let fg = sigmoid(pre(j));
                            let gg = pre(h + j).tanh();
                            let og = sigmoid(pre(2 * h + j));
                            let c = fg * cb[j] + (1.0 - fg) * gg;
                            cb[j] = c;
                            hb[j] = og * c.tanh();
                        }
                    }
                    Cell::Gru | Cell::Augru => {
                        // AUGRU: z' = (1 − a) z, a the row's attention at this step.
                        let keep = match self.cell {
                            Cell::Augru => 1.0 - self.att[t * batch + b],
                            _ => 1.0,
                        };
                        for j in 0..h {
                            let r = sigmoid(xr[j] + bi[j] + hr[j] + bh[j]);
                            let (kz, kn) = (h + j, 2 * h + j);
                            let z = keep * sigmoid(xr[kz] + bi[kz] + hr[kz] + bh[kz]);
                            let n = (xr[kn] + bi[kn] + r * (hr[kn] + bh[kn])).tanh();
                            // (1 - z) n + z h in PyTorch ATen's form, as the reference.
                            hb[j] = n + z * (hb[j] - n);
                        }
                    }
                    Cell::LstmLayerNorm => {
                        unreachable!("no unfused layer-norm LSTM (`Cell::has_unfused`)")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configs::{BenchConfig, CELLS};
    use rnn_reference::testkit::bound::{forward_bounded, StdF32};
    use rnn_reference::testkit::compare;
    use rnn_reference::SeqShape;

    /// Against the f64 reference within the bound computed alongside it for f32 code
    /// on `std`'s `exp` and `tanh` (`StdF32`: any summation order, so matrixmultiply's
    /// too), which must also stay below 1% of the outputs.
    fn check_unfused(cell: Cell, shape: BenchConfig, threads: usize) {
        let p = Problem::new(cell, shape);
        let w = [p.weights()];
        let e = forward_bounded::<StdF32>(
            &p.cfg,
            &w,
            SeqShape::new(shape.steps, shape.batch),
            p.input(shape.steps),
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
        let what = format!("{} {}", cell.name(), shape.label());
        compare("y", &y, &e.want.y, &e.bound.y).unwrap_or_else(|m| panic!("{what}: {m}"));
        let max = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(
            max(&e.bound.y) <= 0.01 * max(&e.want.y),
            "{what}: vacuous bound"
        );
        let h_last = &y[y.len() - shape.batch * shape.hidden..];
        compare("h_n", h_last, &e.want.h_n, &e.bound.h_n).unwrap();
    }

    #[test]
    fn unfused_matches_reference() {
        let others = [Cell::Augru, Cell::Cifg, Cell::LstmHardSigmoid];
        for cell in CELLS.into_iter().chain(others) {
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
}
