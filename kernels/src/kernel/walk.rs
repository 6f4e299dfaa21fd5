//! Walks the panels of a packed matrix and the row blocks of the left operand, calling
//! the micro-kernel and handing each finished row tile to an epilogue.

use std::ops::Range;

use super::microkernel::{tile, Ahead};
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
    // shapes (a few thousand rows). A product of at most `ROW_OUTER_MAX_K` terms per
    // output is bound by writing its output, so there each row block passes over all
    // panels (one block a chunk) and writes whole output rows: see `ROW_OUTER_MAX_K`.
    let chunk = if w.k <= ROW_OUTER_MAX_K {
        MR
    } else {
        (CHUNK_FLOATS / w.k.max(1)).max(MIN_CHUNK_ROWS).div_ceil(MR) * MR
    };
    // The lines of one panel: the next one is fetched into L2 in shares, one per
    // fetching row block (see `fetches`), unless this member's panels fit L2.
    let panel_bytes = w.k * width * std::mem::size_of::<W>();
    let panel_lines = if n * panel_bytes > AHEAD_MIN_BYTES {
        panel_bytes / 64
    } else {
        0
    };
    let mut r0 = 0;
    while r0 < nrows {
        let r1 = nrows.min(r0 + chunk);
        let fetch = Fetch {
            base: w.ptr.cast::<u8>(),
            panel_bytes,
            panel_lines,
            fetchers: ahead_blocks(r1 - r0, MR, NP, V::MAX_ACC),
        };
        for idx in 0..n {
            let p = if reverse {
                panels.end - 1 - idx
            } else {
                panels.start + idx
            };
            // SAFETY: `p < w.panels`, so the panel lies inside the packed data.
            let panel = unsafe { w.ptr.add(p * w.k * width) };
            let at = PanelAt {
                ptr: panel,
                k: w.k,
                index: p,
                striped: w.striped,
            };
            // The panel this member takes next (none after its last): a step's
            // recurrent weights outgrow L2 (16 MiB at H = 1024, 4 MiB at 512), so each
            // panel comes from L3, and the first row block to read it ran at L3's speed
            // while the others waited their turn. Spread over the current panel's
            // blocks, the fetch overlaps their products (1-thread forward, Xeon model
            // 167: 7-13% faster at batch 16-64 and H = 1024, 2-7% at 512; see
            // `bench-suite/results/fetch-ahead-ab-xeon167.md`).
            let (next, lines, each) = fetch.next(p, idx + 1 == n, reverse);
            let mut b = 0;
            let mut r = r0;
            while r + MR <= r1 {
                let fetching = fetches(MR, NP, V::MAX_ACC);
                let ahead = Ahead::share(fetching, next, lines, each, &mut b);
                // SAFETY: rows r..r+MR are < nrows; forwarded contract.
                unsafe { block::<V, W, NP, MR, E>(a, r, &at, epi, r == r0, ahead) };
                r += MR;
            }
            // Remainder rows in blocks of 4, 2, 1 (fewer instantiations than one per
            // count; `const` blocks, so a block taller than `MR` is not instantiated).
            while r < r1 {
                let left = r1 - r;
                // SAFETY: as above; each block stays below nrows.
                unsafe {
                    if const { MR > 4 } && left >= 4 {
                        let fetching = fetches(4, NP, V::MAX_ACC);
                        let ahead = Ahead::share(fetching, next, lines, each, &mut b);
                        block::<V, W, NP, 4, E>(a, r, &at, epi, r == r0, ahead);
                        r += 4;
                    } else if const { MR > 2 } && left >= 2 {
                        let ahead = Ahead::NONE;
                        block::<V, W, NP, 2, E>(a, r, &at, epi, r == r0, ahead);
                        r += 2;
                    } else {
                        let ahead = Ahead::NONE;
                        block::<V, W, NP, 1, E>(a, r, &at, epi, r == r0, ahead);
                        r += 1;
                    }
                }
            }
        }
        r0 = r1;
    }
}

/// The fetch of the next panel while one panel's row blocks run (both walks).
pub(super) struct Fetch {
    /// The first panel.
    pub(super) base: *const u8,
    pub(super) panel_bytes: usize,
    /// Lines of a panel to fetch (0: none, e.g. this member's panels fit L2).
    pub(super) panel_lines: usize,
    /// The row blocks that fetch a share.
    pub(super) fetchers: usize,
}

impl Fetch {
    /// For panel `p` (its member's `last` or not, walked in `reverse` or not): where
    /// the next panel starts (null: none), the lines to fetch, and each fetching
    /// block's share (block `b` takes lines `b * each ..`: no division per block, a
    /// few dozen cycles each, was 2% of a 512-unit RNN's step at batch 16).
    #[inline(always)]
    pub(super) fn next(&self, p: usize, last: bool, reverse: bool) -> (*const u8, usize, usize) {
        if last || self.fetchers == 0 || self.panel_lines == 0 {
            return (std::ptr::null(), 0, 0);
        }
        let q = if reverse { p - 1 } else { p + 1 };
        let next = self.base.wrapping_add(q * self.panel_bytes);
        (
            next,
            self.panel_lines,
            self.panel_lines.div_ceil(self.fetchers),
        )
    }
}

/// The fewest bytes of panels for which a member fetches the next panel ahead: 1.5 MiB,
/// three quarters of this Xeon's 2 MiB L2 (Zen 4 has 1 MiB). Panels that fit L2 stay
/// there from one step to the next, and fetching them again only costs: a 512-unit
/// RNN (1 MiB of recurrent weights) ran 6-10% slower when it fetched them at batch
/// 16-64 (2-4% of that was per-block divisions, since removed).
pub(super) const AHEAD_MIN_BYTES: usize = 1536 * 1024;

/// The row blocks of a chunk of `rows` rows, `mr` rows a block, that fetch a share of
/// the next panel (see [`fetches`]): full blocks and 4-row remainder blocks.
fn ahead_blocks(rows: usize, mr: usize, np: usize, max_acc: usize) -> usize {
    let full = if fetches(mr, np, max_acc) {
        rows / mr
    } else {
        0
    };
    let fours = if mr > 4 && fetches(4, np, max_acc) {
        rows % mr / 4
    } else {
        0
    };
    full + fours
}

/// Whether an `m`-row block of `np`-vector panels fetches ahead: only where the
/// micro-kernel keeps every accumulator in registers (`max_acc` of them: [`tile`]'s
/// in-order form). Not the 1- and 2-row blocks (batch-1 steps, bound by streaming the
/// weights, ran no faster with it), nor the grouped form of AVX2 and the portable path,
/// whose short loop over one panel vector ran 4-11% slower with the fetch (AVX2 on
/// this Xeon, batch 16-64).
const fn fetches(m: usize, np: usize, max_acc: usize) -> bool {
    m >= 3 && m * np <= max_acc
}

impl Ahead {
    /// The next block's share of `lines` lines from `next`, `each` per fetching block
    /// (`b` counts the fetching blocks so far); none for a block that does not fetch.
    #[inline(always)]
    pub(super) fn share(
        fetching: bool,
        next: *const u8,
        lines: usize,
        each: usize,
        b: &mut usize,
    ) -> Ahead {
        if !fetching {
            return Ahead::NONE;
        }
        let from = (*b * each).min(lines);
        *b += 1;
        Ahead {
            ptr: next.wrapping_add(from * 64),
            lines: (from + each).min(lines) - from,
        }
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

/// The most terms per output (`k`) for which a product is walked row block by row
/// block (each block multiplies every panel before the next block starts): the output
/// is then written in whole rows rather than in one panel's column strip over every
/// row, a strip that crosses a page per row of a wide output. `∂W_o` of a 4096 x 1024
/// output layer at 16 rows (`k` = 16): the whole backward 7.3-7.8 -> 6.0-6.2 ms, 1
/// thread, avx2, Zen 3, 3 alternating runs. Products with `k` of 64-100 (small models' steps and weight
/// gradients) ran up to 1.3x slower in that order (their panels no longer stay in L1
/// while a panel passes over the rows), so only short products take it.
const ROW_OUTER_MAX_K: usize = 16;

/// The fewest rows in a chunk: each panel serves at least 32 six-row blocks per fetch.
/// (At 24 rows, the `k = 4096` chunks of a batch-64 LSTM's backward, a 1024-unit LSTM's
/// training step took 8% longer; `bench-suite/results/chunk-floor-ab-xeon167.md`.)
const MIN_CHUNK_ROWS: usize = 192;

/// The panel a block multiplies: where it starts, its `k` rows, its index (for the
/// epilogue) and its layout (`PanelsView::striped`).
struct PanelAt<W> {
    ptr: *const W,
    k: usize,
    index: usize,
    striped: bool,
}

/// One `M x NP` block: micro-kernel then epilogue per row. `first`: the first block
/// of the panel in this product (the micro-kernel may prefetch the panel for the rest);
/// `ahead`: this block's share of the next panel.
#[inline(always)]
unsafe fn block<V: V16, W: Storage, const NP: usize, const M: usize, E: Epilogue<V, NP>>(
    a: &Rows,
    r0: usize,
    at: &PanelAt<W>,
    epi: &E,
    first: bool,
    ahead: Ahead,
) {
    let (k, panel, p, striped) = (at.k, at.ptr, at.index, at.striped);
    let mut ptrs = [std::ptr::null::<f32>(); M];
    for (i, q) in ptrs.iter_mut().enumerate() {
        // SAFETY: rows r0..r0+M are valid (caller's contract).
        *q = unsafe { a.ptr(r0 + i) };
    }
    for i in 0..M {
        epi.prefetch(r0 + i, p);
    }
    // SAFETY: forwarded contract: rows hold k floats, the panel k * NP * 16.
    let acc = unsafe { tile::<V, W, M, NP>(&ptrs, k, panel, first, ahead, striped) };
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: (r0 + i, p) is inside the epilogue's bounds (caller's contract).
        unsafe { epi.finish(r0 + i, p, row) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next panel is the one after `p` in the walk's order, none after the last or
    /// without fetching blocks or lines; the share rounds up.
    #[test]
    fn the_fetch_names_the_next_panel_in_walk_order() {
        let base = std::ptr::null::<u8>().wrapping_add(64);
        let f = |panel_lines, fetchers| Fetch {
            base,
            panel_bytes: 1000,
            panel_lines,
            fetchers,
        };
        let at = |n: usize| base.wrapping_add(n);
        assert_eq!(f(15, 4).next(2, false, false), (at(3000), 15, 4));
        assert_eq!(f(15, 4).next(2, false, true), (at(1000), 15, 4));
        assert_eq!(f(16, 4).next(0, false, false), (at(1000), 16, 4));
        for (lines, fetchers, last) in [(15, 4, true), (15, 0, false), (0, 4, false)] {
            let (ptr, l, each) = f(lines, fetchers).next(2, last, false);
            assert!(
                ptr.is_null() && l == 0 && each == 0,
                "{lines} {fetchers} {last}"
            );
        }
    }

    /// `ahead_blocks` counts the blocks the walk's loop visits that fetch, for every
    /// blocking the paths use and any row count; their shares cover the next panel's
    /// lines once, in order.
    #[test]
    fn fetching_blocks_share_the_next_panel_exactly() {
        for (mr, np, max_acc) in [(6, 4, 24), (12, 2, 24), (8, 3, 24), (4, 6, 24), (6, 4, 6)] {
            for rows in 0..64 {
                // The walk's order: full blocks, then remainder blocks of 4, 2, 1.
                let mut sizes = vec![mr; rows / mr];
                let mut left = rows % mr;
                while left > 0 {
                    let m = if left >= 4 && mr > 4 {
                        4
                    } else if left >= 2 && mr > 2 {
                        2
                    } else {
                        1
                    };
                    sizes.push(m);
                    left -= m;
                }
                let fetchers = ahead_blocks(rows, mr, np, max_acc);
                let visited = sizes.iter().filter(|&&m| fetches(m, np, max_acc)).count();
                assert_eq!(fetchers, visited, "mr {mr}, np {np}, {rows} rows");
                for lines in [0usize, 1, 7, 4400, 16384] {
                    if fetchers == 0 {
                        continue;
                    }
                    let each = lines.div_ceil(fetchers);
                    let next = std::ptr::null::<u8>().wrapping_add(4096);
                    let (mut b, mut at) = (0, 0);
                    for &m in &sizes {
                        let a = Ahead::share(fetches(m, np, max_acc), next, lines, each, &mut b);
                        if a.lines > 0 {
                            assert_eq!(a.ptr, next.wrapping_add(at * 64));
                            at += a.lines;
                        }
                    }
                    assert_eq!(
                        (b, at),
                        (fetchers, lines),
                        "mr {mr}, {rows} rows, {lines} lines"
                    );
                }
            }
        }
    }
}
