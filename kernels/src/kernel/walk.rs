//! Walks the panels of a packed matrix and the row blocks of the left operand, calling
//! the micro-kernel and handing each finished row tile to an epilogue.

use std::ops::Range;

use super::microkernel::tile;
use super::walk_i8::Q8Scratch;
use crate::element::Storage;
use crate::pack::PanelsView;
use crate::simd::V16;

/// Where the rows of the left operand live: row `r` is step `t = r / batch`, batch row
/// `b = r % batch`, at `base + t * stride_t + b * stride_b` (in elements of `T`: `f32`,
/// or `u16` bf16 bit patterns for the `vdpbf16ps` product).
pub(crate) struct Rows<T = f32> {
    pub(crate) base: *const T,
    pub(crate) stride_t: usize,
    pub(crate) stride_b: usize,
    pub(crate) batch: usize,
    /// Where the rows' `uint8` codes go before an int8 product (int8 weights only).
    pub(crate) q8: Option<Q8Scratch>,
}

// SAFETY: `Rows` only reads through its pointer, into an operand that outlives the
// team sharing it and that nobody writes while the product runs.
unsafe impl<T> Sync for Rows<T> {}

impl<T> Clone for Rows<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Rows<T> {}

impl<T> Rows<T> {
    /// # Safety
    /// `r` must be a row the caller validated.
    #[inline(always)]
    pub(crate) unsafe fn ptr(&self, r: usize) -> *const T {
        let t = r / self.batch;
        let b = r - t * self.batch;
        // SAFETY: the caller validated that row `r` is inside the operand.
        unsafe { self.base.add(t * self.stride_t + b * self.stride_b) }
    }
}

impl Rows {
    /// The same rows, quantized into `q8` before an int8 product.
    pub(crate) fn with_q8(self, q8: Option<Q8Scratch>) -> Self {
        Rows { q8, ..self }
    }

    /// Rows `b * stride` for `b` in `0..batch` (one step).
    pub(crate) fn strided(base: *const f32, stride: usize, batch: usize) -> Self {
        Rows {
            base,
            stride_t: 0,
            stride_b: stride,
            batch,
            q8: None,
        }
    }
}

/// Finishes output tiles: called once per row and panel with that row's `NP`
/// accumulators. `Sync`: a team's members share one epilogue (and write disjoint
/// panels through it).
pub(crate) trait Epilogue<V: V16, const NP: usize>: Sync {
    /// # Safety
    /// `V`'s ISA must be available; `row` and `panel` are within the bounds the
    /// epilogue was built for.
    unsafe fn finish(&self, row: usize, panel: usize, acc: &[V; NP]);

    /// Hints the cache to fetch what `finish(row, panel, ..)` will read besides the
    /// accumulators; both walks (f32 and int8) call it before a block's products, whose
    /// time hides the fetch (the epilogue's strided reads of the input projection were
    /// a fifth of the int8 recurrent pass, and a few percent of the f32 one on AVX2).
    /// No-op by default.
    #[inline(always)]
    fn prefetch(&self, _row: usize, _panel: usize) {}
}

/// One product `a x w`: `nrows` rows of the left operand times packed panels of `NP`
/// vectors.
pub(crate) struct Job<W, const NP: usize> {
    pub(crate) a: Rows,
    pub(crate) nrows: usize,
    pub(crate) w: PanelsView<W, NP>,
}

// SAFETY: a job only reads (its rows and its panels), from buffers that outlive the
// team sharing it.
unsafe impl<W, const NP: usize> Sync for Job<W, NP> {}

/// Computes rows `0..job.nrows` of `job.a x job.w` for panels in `panels`, in reverse
/// panel order when `reverse` (the "zig-zag" order: the panels used last in one step
/// are still in cache at the start of the next), `MR` rows per register block.
///
/// # Safety
/// `V`'s ISA must be available; `job.a` must hold `job.nrows` rows of `job.w.k`
/// readable floats; `panels` must lie within `job.w.panels`; the epilogue's targets
/// must cover every (row, panel) visited.
#[inline(always)]
pub(crate) unsafe fn run<
    V: V16,
    W: Storage,
    const NP: usize,
    const MR: usize,
    E: Epilogue<V, NP>,
>(
    job: &Job<W, NP>,
    panels: Range<usize>,
    reverse: bool,
    epi: &E,
) {
    let (a, nrows, w) = (&job.a, job.nrows, &job.w);
    // No closures here: a closure does not inherit the caller's `#[target_feature]`s,
    // so the intrinsics inlined into it would become calls.
    let width = NP * crate::pack::LANES;
    let n = panels.len();
    // Rows are taken in chunks of `CHUNK_FLOATS` left-operand floats (chunk x k), at
    // least `MIN_CHUNK_ROWS`; every panel of the range passes over a chunk before the
    // next. A panel comes from L3 once per chunk, and its first row block runs at L3's
    // speed, while a left operand that outgrows L2 costs little (a few bytes per
    // multiply-add row, in sequential streams). So the recurrent steps (at most a few
    // dozen rows) are one chunk even when `k` is large, as in the backward's `4H`, and
    // so are the input projections and the training step's products at the bench
    // shapes (a few thousand rows).
    let chunk = (CHUNK_FLOATS / w.k.max(1)).max(MIN_CHUNK_ROWS).div_ceil(MR) * MR;
    let mut r0 = 0;
    while r0 < nrows {
        let r1 = nrows.min(r0 + chunk);
        for idx in 0..n {
            let p = if reverse {
                panels.end - 1 - idx
            } else {
                panels.start + idx
            };
            // SAFETY: `p < w.panels`, so the panel lies inside the packed data.
            let panel = unsafe { w.ptr.add(p * w.k * width) };
            let mut r = r0;
            while r + MR <= r1 {
                // SAFETY: rows r..r+MR are < nrows; forwarded contract.
                unsafe { block::<V, W, NP, MR, E>(a, r, w.k, panel, p, epi, r == r0) };
                r += MR;
            }
            // Remainder rows in blocks of 4, 2, 1 (fewer instantiations than one per
            // count).
            while r < r1 {
                let left = r1 - r;
                // SAFETY: as above; each block stays below nrows.
                unsafe {
                    if left >= 4 && MR > 4 {
                        block::<V, W, NP, 4, E>(a, r, w.k, panel, p, epi, r == r0);
                        r += 4;
                    } else if left >= 2 && MR > 2 {
                        block::<V, W, NP, 2, E>(a, r, w.k, panel, p, epi, r == r0);
                        r += 2;
                    } else {
                        block::<V, W, NP, 1, E>(a, r, w.k, panel, p, epi, r == r0);
                        r += 1;
                    }
                }
            }
        }
        r0 = r1;
    }
}

/// Left-operand floats per row chunk of the `vdpbf16ps` and int8 walks: 96 K floats =
/// 384 KiB, a fifth of a 2 MiB L2, leaving room for the panel being streamed and the
/// output rows.
pub(crate) const ROW_CHUNK_FLOATS: usize = 96 * 1024;

/// Left-operand floats per row chunk of this walk (any weight type it widens): 2 M
/// floats = 8 MiB, a chunk that lives in L3 rather than L2. Chunks that fit L2
/// (`ROW_CHUNK_FLOATS`, a few hundred rows at `k` = 512-1600) fetched every panel from
/// L3 once per chunk; one chunk over all rows fetches it once, and streaming the left
/// operand from L3 instead costs less. A 1024-unit LSTM's training step, 1 thread,
/// phases timed directly (Xeon model 167, avx512bf16, with `KC`'s slices of 2048
/// rows): input projection and recurrent steps 171 -> 157 ms, `∂x` 83 -> 76 ms, each
/// weight-gradient product 82 -> 71 ms; the same at 2 threads, 2-7% at H = 512.
const CHUNK_FLOATS: usize = 2 * 1024 * 1024;

/// The fewest rows in a chunk: each panel serves at least 32 six-row blocks per fetch.
/// (At 24 rows, the `k = 4096` chunks of a batch-64 LSTM's backward, a 1024-unit LSTM's
/// training step took 8% longer; `bench-suite/results/chunk-floor-ab-xeon167.md`.)
const MIN_CHUNK_ROWS: usize = 192;

/// One `M x NP` block: micro-kernel then epilogue per row. `first`: the first block
/// of the panel in this product (the micro-kernel may prefetch the panel for the rest).
#[inline(always)]
unsafe fn block<V: V16, W: Storage, const NP: usize, const M: usize, E: Epilogue<V, NP>>(
    a: &Rows,
    r0: usize,
    k: usize,
    panel: *const W,
    p: usize,
    epi: &E,
    first: bool,
) {
    let mut ptrs = [std::ptr::null::<f32>(); M];
    for (i, q) in ptrs.iter_mut().enumerate() {
        // SAFETY: rows r0..r0+M are valid (caller's contract).
        *q = unsafe { a.ptr(r0 + i) };
    }
    for i in 0..M {
        epi.prefetch(r0 + i, p);
    }
    // SAFETY: forwarded contract: rows hold k floats, the panel k * NP * 16.
    let acc = unsafe { tile::<V, W, M, NP>(&ptrs, k, panel, first) };
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: (r0 + i, p) is inside the epilogue's bounds (caller's contract).
        unsafe { epi.finish(r0 + i, p, row) };
    }
}
