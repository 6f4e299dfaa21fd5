//! The int8 product: the integer micro-kernel over a [`Dot8`] type, its panel walk, and
//! the step that turns each finished tile of exact `i32` sums into the `f32` tile a
//! cell's [`Epilogue`] takes, so every epilogue serves int8 weights unchanged:
//!
//! ```text
//! out[r, c] = f32(s_a[r] · s_w[c]) · f32(acc − zp_a[r] · Σ_k (w − zp_w[c]) − zp_w[c] · Σ_k q[r])
//! ```
//!
//! (`acc = Σ_k q[r, k] · w[k, c]` over the stored codes, after taking off
//! `W_OFFSET · Σ_k q[r]` for a [`Dot8`] type that offsets the codes; the corrections
//! make it `Σ_k (q − zp_a)(w − zp_w)`, exactly, in wrapping `i32`).
//!
//! Integer sums are exact in any order, so the blocking (rows per block, partial sums,
//! groups of vectors) may differ per instruction set and per block height: results
//! are identical whatever the thread split and the instruction set, up to the `f32`
//! epilogue.

use std::ops::Range;

use super::microkernel::{group_size, Ahead};
use super::walk::{Epilogue, Fetch, AHEAD_MIN_BYTES, ROW_CHUNK_FLOATS};
use crate::pack::{QuantView, LANES};
use crate::simd::{self, Dot8, V16};

/// Quantization parameters of one operand row: scale, zero point, and the sum of its
/// codes (for the weights' zero points and [`Dot8::W_OFFSET`]).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub(crate) struct RowQuant {
    pub(crate) scale: f32,
    pub(crate) zero_point: i32,
    pub(crate) sum: i32,
}

/// Where the left operand of an int8 product is quantized (scratch carved from the
/// workspace by the driver) and how: `qmax` and one range per row or per product.
#[derive(Clone, Copy)]
pub(crate) struct Q8Scratch {
    /// Room for `codes_len` bytes.
    pub(crate) codes: *mut u8,
    pub(crate) codes_len: usize,
    /// Room for `params_len` rows' parameters.
    pub(crate) params: *mut RowQuant,
    pub(crate) params_len: usize,
    /// The largest code: 255, or 127 for 7-bit codes.
    pub(crate) qmax: u8,
    /// One range per row; else one range over every row of the product.
    pub(crate) per_row: bool,
}

// SAFETY: the scratch outlives the team sharing it; only the leader writes it, and
// the team meets at a barrier before anyone reads it (`passes::pass_i8`).
unsafe impl Sync for Q8Scratch {}

/// One int8 product: `nrows` quantized operand rows times int8 panels of `NP` vectors.
pub(crate) struct Job8<const NP: usize> {
    /// Row `r`'s codes at `a + r * stride`, `4 * k4` readable bytes each.
    pub(crate) a: *const u8,
    pub(crate) stride: usize,
    /// `nrows` parameters.
    pub(crate) rows: *const RowQuant,
    pub(crate) nrows: usize,
    /// Panels of `[k4][NP * 16][4]` codes, or `[NP][k4][16][4]` when `striped`.
    pub(crate) w: *const i8,
    pub(crate) k4: usize,
    pub(crate) panels: usize,
    pub(crate) q: QuantView,
    /// The panels' layout (`PanelsView::striped`): striped only for paths whose
    /// `V16::READS_STRIPES`.
    pub(crate) striped: bool,
}

// SAFETY: a job only reads (its rows, parameters and panels), from buffers that outlive
// the team sharing it and that nobody writes while the product runs.
unsafe impl<const NP: usize> Sync for Job8<NP> {}

/// Operand bytes per row chunk: the chunk's codes stay in L2 while the panels of the
/// range pass over them (the same budget as the `f32` walk's, in bytes).
const ROW_CHUNK_BYTES: usize = ROW_CHUNK_FLOATS * 4;

/// A matrix unit (AMX's tiles) that computes a whole block of the product at once:
/// [`ROWS`](Self::ROWS) rows by every column of a panel, over all of `k`. The walk
/// gives it the full blocks of a product it [`takes`](Self::takes) and finishes the
/// other rows with the vector tiles, so results do not change: both sum exactly.
///
/// # Safety
/// `block` must write exactly `Σ_k a[r][k] · w[k][c]` (the raw codes: no
/// [`Dot8::W_OFFSET`]) for its rows and the panel's columns, reading nothing else.
pub(crate) unsafe trait Matrix8 {
    /// Rows per block; 0: no matrix unit.
    const ROWS: usize;
    /// The most blocks one call takes (`ROWS * MAX_BLOCKS <= MATRIX_MAX_ROWS`).
    const MAX_BLOCKS: usize;

    /// Whether the unit runs products of `k4` row groups and `np` vectors per panel.
    fn takes(k4: usize, np: usize) -> bool;

    /// How many blocks (at most `MAX_BLOCKS`) one call should take in such a product.
    fn blocks(k4: usize, np: usize) -> usize;

    /// Prepares this thread for blocks of `np` vectors (AMX: loads the tile layout).
    ///
    /// # Safety
    /// The unit's instructions must be available and `takes(_, np)` true.
    unsafe fn begin(np: usize);

    /// `out[i * np * 16 + c] = Σ_k codes(row i)[k] · panel[k][c]` for `blocks` blocks
    /// of rows (row `i` at `a + i * stride`, `4 * k4` bytes) and the panel's `np * 16`
    /// columns.
    ///
    /// # Safety
    /// After [`begin`](Self::begin) with this `np`, on this thread; `blocks` in
    /// `1..=MAX_BLOCKS`; the rows and the panel (`[k4][np * 16][4]` codes) readable;
    /// `out` holds `blocks * ROWS * np * 16` values.
    unsafe fn block(
        a: *const u8,
        stride: usize,
        k4: usize,
        panel: *const i8,
        np: usize,
        blocks: usize,
        out: *mut i32,
    );

    /// Ends this thread's use of the unit (AMX: releases the tiles).
    ///
    /// # Safety
    /// After [`begin`](Self::begin), on this thread.
    unsafe fn end();
}

/// The most rows one [`Matrix8::block`] call may cover (the walk's buffer for it).
pub(crate) const MATRIX_MAX_ROWS: usize = 32;

/// No matrix unit: every row goes through the vector tiles.
pub(crate) struct NoMatrix;

// SAFETY: `ROWS` is 0 and `takes` false, so the walk never calls `block`.
unsafe impl Matrix8 for NoMatrix {
    const ROWS: usize = 0;
    const MAX_BLOCKS: usize = 0;

    fn takes(_: usize, _: usize) -> bool {
        false
    }

    fn blocks(_: usize, _: usize) -> usize {
        0
    }

    unsafe fn begin(_: usize) {}

    unsafe fn block(
        _: *const u8,
        _: usize,
        _: usize,
        _: *const i8,
        _: usize,
        _: usize,
        _: *mut i32,
    ) {
    }

    unsafe fn end() {}
}

/// Computes rows `0..job.nrows` of `job` for panels in `panels` (in reverse order when
/// `reverse`) with the integer type `D`, and the matrix unit `X` for its full blocks
/// when it takes the product, handing each row tile to `epi`.
///
/// # Safety
/// `V`'s, `D`'s and `X`'s instruction sets must be available; `D` must be exact for the
/// codes of `job` (see its type); `job` must describe valid buffers; `panels` must lie
/// within `job.panels`; the epilogue's targets must cover every (row, panel) visited.
#[inline(always)]
pub(crate) unsafe fn run<V: V16, D: Dot8, X: Matrix8, const NP: usize, E: Epilogue<V, NP>>(
    job: &Job8<NP>,
    panels: Range<usize>,
    reverse: bool,
    epi: &E,
) {
    const {
        // The unit's sums are of the raw codes; its block fits the walk's buffer.
        assert!(X::ROWS == 0 || (D::W_OFFSET == 0 && X::ROWS * X::MAX_BLOCKS <= MATRIX_MAX_ROWS));
    }
    debug_assert!(panels.end <= job.panels);
    let width = NP * LANES;
    let n = panels.len();
    // Chunks of whole matrix calls where there is a unit, else of 8 rows.
    let gran = if X::ROWS > 0 {
        X::ROWS * X::MAX_BLOCKS
    } else {
        8
    };
    let chunk = (ROW_CHUNK_BYTES / (4 * job.k4).max(1))
        .max(1)
        .div_ceil(gran)
        * gran;
    // (The unit reads panel rows; stripes are packed only where it cannot run.)
    let matrix = X::ROWS > 0 && !job.striped && job.nrows >= X::ROWS && X::takes(job.k4, NP);
    let most = if matrix {
        X::blocks(job.k4, NP).clamp(1, X::MAX_BLOCKS)
    } else {
        0
    };
    if matrix {
        // SAFETY: the caller guarantees X's instructions; `takes` was true.
        unsafe { X::begin(NP) };
    }
    // As in the `f32` walk, the next panel is fetched into L2 in shares, one per
    // fetching row block, when this member's panels outgrow L2: an int8 LSTM's
    // recurrent codes are 4 MiB at H = 1024, so each step's first row block of a
    // panel otherwise waited on L3.
    let panel_bytes = job.k4 * width * 4;
    // (Not with the matrix unit: its blocks do not fetch, and it leaves few rows.)
    let panel_lines = if n * panel_bytes > AHEAD_MIN_BYTES && !matrix {
        panel_bytes / 64
    } else {
        0
    };
    let mut r0 = 0;
    while r0 < job.nrows {
        let r1 = job.nrows.min(r0 + chunk);
        let fetch = Fetch {
            base: job.w.cast::<u8>(),
            panel_bytes,
            panel_lines,
            fetchers: if panel_lines == 0 {
                0
            } else {
                fetching_blocks::<D, NP>(r1 - r0)
            },
        };
        for idx in 0..n {
            let p = if reverse {
                panels.end - 1 - idx
            } else {
                panels.start + idx
            };
            // SAFETY: `p < job.panels`: the panel lies inside the packed codes.
            let panel = unsafe { job.w.add(p * job.k4 * width * 4) };
            // The panel this member takes next (none after its last), in shares.
            let (next, lines, each) = fetch.next(p, idx + 1 == n, reverse);
            let mut b = 0;
            let mut r = r0;
            // SAFETY: (every block) rows stay below `nrows`; forwarded contract.
            unsafe {
                while matrix && r + X::ROWS <= r1 {
                    let blocks = ((r1 - r) / X::ROWS).min(most);
                    block_matrix::<V, D, X, NP, E>(job, r, blocks, panel, p, epi);
                    r += blocks * X::ROWS;
                }
                while r < r1 {
                    let m = block_rows::<D>(r1 - r);
                    let ahead = Ahead::share(fetches::<D, NP>(m), next, lines, each, &mut b);
                    // (The `const` guards: no block taller than `D::MR` is instantiated.)
                    match m {
                        6 if const { D::MR >= 6 } => {
                            block::<V, D, NP, 6, E>(job, r, panel, p, epi, ahead)
                        }
                        4 if const { D::MR >= 4 } => {
                            block::<V, D, NP, 4, E>(job, r, panel, p, epi, ahead)
                        }
                        2 if const { D::MR >= 2 } => {
                            block::<V, D, NP, 2, E>(job, r, panel, p, epi, ahead)
                        }
                        _ => block::<V, D, NP, 1, E>(job, r, panel, p, epi, ahead),
                    }
                    r += m;
                }
            }
        }
        r0 = r1;
    }
    if matrix {
        // SAFETY: after `begin` on this thread.
        unsafe { X::end() };
    }
}

/// `blocks` blocks of `X::ROWS` rows by the panel's columns on the matrix unit, then
/// the `f32` tile per row into `epi`.
///
/// # Safety
/// As for [`run`], after `X::begin(NP)`; `blocks` in `1..=X::MAX_BLOCKS`; rows
/// `r0..r0 + blocks * X::ROWS` below `nrows`.
#[inline(always)]
unsafe fn block_matrix<V: V16, D: Dot8, X: Matrix8, const NP: usize, E: Epilogue<V, NP>>(
    job: &Job8<NP>,
    r0: usize,
    blocks: usize,
    panel: *const i8,
    p: usize,
    epi: &E,
) {
    // At most 32 rows of 6 vectors (the largest panel): 12 KiB, not zeroed (that cost
    // a tenth of a 512-deep block): the unit writes every value read below.
    let mut sums = [std::mem::MaybeUninit::<i32>::uninit(); MATRIX_MAX_ROWS * 6 * LANES];
    // No runtime panic on the hot path: NP is checked at compile time, `blocks` is
    // clamped to `X::MAX_BLOCKS` by the walk (and `run` asserts the product fits).
    const { assert!(NP <= 6) };
    debug_assert!(blocks * X::ROWS <= MATRIX_MAX_ROWS);
    let rows = blocks * X::ROWS;
    for i in 0..rows {
        epi.prefetch(r0 + i, p);
    }
    // SAFETY: rows r0.. hold 4 k4 bytes each, `stride` apart; the panel k4 * NP * 64
    // bytes; `sums` rows * NP * 16 values (rows <= 32, NP <= 6).
    unsafe {
        X::block(
            job.a.add(r0 * job.stride),
            job.stride,
            job.k4,
            panel,
            NP,
            blocks,
            sums.as_mut_ptr().cast::<i32>(),
        )
    };
    for i in 0..rows {
        // SAFETY: V's ISA is available; row r0 + i < nrows has parameters; (r0 + i, p)
        // is inside the epilogue's bounds; the row's sums are NP groups of 16.
        unsafe {
            let mut out = [V::zero(); NP];
            let rq = *job.rows.add(r0 + i);
            for (j, o) in out.iter_mut().enumerate() {
                // (Written by `X::block`: row i < rows, 16 sums of vector j < NP.)
                let lanes = &*sums
                    .as_ptr()
                    .add((i * NP + j) * LANES)
                    .cast::<[i32; LANES]>();
                *o = scale_lanes::<V, D>(lanes, &rq, &job.q, (p * NP + j) * LANES);
            }
            epi.finish(r0 + i, p, &out);
        }
    }
}

/// The height of the next row block when `left` rows remain: `D::MR` rows capped at
/// 6, then 4, 2 or 1 (fewer instantiations than one per count).
#[inline(always)]
fn block_rows<D: Dot8>(left: usize) -> usize {
    match left.min(D::MR) {
        m if m >= 6 => 6,
        4 | 5 => 4,
        2 | 3 => 2,
        _ => 1,
    }
}

/// Whether an `m`-row block fetches a share of the next panel: only [`groups`]' form
/// with every accumulator in registers (one group of all `NP` vectors, one partial
/// sum), as in the `f32` walk; not AVX2's or the portable path's smaller register
/// files, nor the 1- and 2-row blocks of batch-1 steps.
const fn fetches<D: Dot8, const NP: usize>(m: usize) -> bool {
    m >= 3 && m * NP <= D::MAX_ACC && NP <= D::MAX_GS
}

/// The blocks of a chunk of `rows` rows that fetch (the walk's block sequence).
fn fetching_blocks<D: Dot8, const NP: usize>(rows: usize) -> usize {
    let (mut r, mut count) = (0, 0);
    while r < rows {
        let m = block_rows::<D>(rows - r);
        count += usize::from(fetches::<D, NP>(m));
        r += m;
    }
    count
}

/// One `M x NP` block: the integer tile, then the `f32` tile per row into `epi`.
#[inline(always)]
unsafe fn block<V: V16, D: Dot8, const NP: usize, const M: usize, E: Epilogue<V, NP>>(
    job: &Job8<NP>,
    r0: usize,
    panel: *const i8,
    p: usize,
    epi: &E,
    ahead: Ahead,
) {
    let mut rows = [std::ptr::null::<u8>(); M];
    for (i, q) in rows.iter_mut().enumerate() {
        // SAFETY: rows r0..r0+M are below nrows (caller's contract).
        *q = unsafe { job.a.add((r0 + i) * job.stride) };
    }
    for i in 0..M {
        epi.prefetch(r0 + i, p);
    }
    // SAFETY: forwarded contract: rows hold 4 k4 bytes, the panel k4 * NP * 64 in the
    // layout named (striped only for a `V` that reads stripes).
    let acc = unsafe {
        if V::READS_STRIPES && job.striped {
            tile::<D, M, NP, true>(&rows, job.k4, panel, ahead)
        } else {
            tile::<D, M, NP, false>(&rows, job.k4, panel, ahead)
        }
    };
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: row r0 + i < nrows has parameters; (r0 + i, p) is inside the
        // epilogue's bounds (caller's contract).
        unsafe {
            let rq = *job.rows.add(r0 + i);
            let out = scale_tile::<V, D, NP>(row, &rq, &job.q, p);
            epi.finish(r0 + i, p, &out);
        }
    }
}

/// The `f32` tile of one row: zero-point corrections in `i32`, one conversion, then the
/// product of the scales (`s_a · s_w[c]`, rounded) times the converted sum.
///
/// # Safety
/// `V`'s and `D`'s instruction sets must be available; `q` must hold every column of
/// panel `p`.
#[inline(always)]
unsafe fn scale_tile<V: V16, D: Dot8, const NP: usize>(
    acc: &[D; NP],
    rq: &RowQuant,
    q: &QuantView,
    p: usize,
) -> [V; NP] {
    // SAFETY: the caller guarantees V's ISA.
    let mut out = [unsafe { V::zero() }; NP];
    for (j, (o, a)) in out.iter_mut().zip(acc).enumerate() {
        let mut sums = [0i32; LANES];
        // SAFETY: `sums` holds 16 i32; the column data covers the panel's columns
        // (caller's contract); V's and D's ISAs are available.
        unsafe {
            a.store(sums.as_mut_ptr());
            *o = scale_lanes::<V, D>(&sums, rq, q, (p * NP + j) * LANES);
        }
    }
    out
}

/// 16 columns `c0..c0 + 16` of one row from their `i32` sums (with `D`'s offset):
/// [`scale_tile`]'s arithmetic, shared with the matrix unit's blocks.
///
/// # Safety
/// `V`'s instruction set must be available; `q` must hold columns `c0..c0 + 16`.
#[inline(always)]
unsafe fn scale_lanes<V: V16, D: Dot8>(
    sums: &[i32; LANES],
    rq: &RowQuant,
    q: &QuantView,
    c0: usize,
) -> V {
    let mut f = [0.0f32; LANES];
    // SAFETY: the column data covers column c0 + 15 (caller's contract); V's ISA is
    // available.
    unsafe {
        let col_sum = q.col_sum.add(c0);
        // `D`'s offset on every weight code (`rq.sum` is the row's code sum).
        let offset = D::W_OFFSET.wrapping_mul(rq.sum);
        if q.zero_point.is_null() {
            for (l, (s, f)) in sums.iter().zip(f.iter_mut()).enumerate() {
                *f = s
                    .wrapping_sub(offset)
                    .wrapping_sub(rq.zero_point.wrapping_mul(*col_sum.add(l)))
                    as f32;
            }
        } else {
            let zp = q.zero_point.add(c0);
            for (l, (s, f)) in sums.iter().zip(f.iter_mut()).enumerate() {
                let v = s
                    .wrapping_sub(offset)
                    .wrapping_sub(rq.zero_point.wrapping_mul(*col_sum.add(l)))
                    .wrapping_sub(rq.sum.wrapping_mul(*zp.add(l)));
                *f = v as f32;
            }
        }
        let m = V::splat(rq.scale).mul(V::load(q.scale.add(c0)));
        m.mul(V::load(f.as_ptr()))
    }
}

/// The integer tile `M x NP` over the whole `k` (`k4` groups of 4): the panel's vectors
/// in groups that fit the register file, two partial sums for blocks of one or two rows
/// (more independent chains to hide the latency), added at the end (exact). The form
/// with one group and one partial sum also fetches `ahead` into L2; the others get
/// none from the walk. `S`: the panel is striped (`[NP][k4][16][4]`), else in rows.
///
/// # Safety
/// `D`'s ISA must be available; each row valid for `4 k4` reads, `panel` for
/// `k4 * NP * 64`.
#[inline(always)]
unsafe fn tile<D: Dot8, const M: usize, const NP: usize, const S: bool>(
    rows: &[*const u8; M],
    k4: usize,
    panel: *const i8,
    ahead: Ahead,
) -> [[D; NP]; M] {
    // `const` blocks, so only the form taken is instantiated (see `microkernel::tile`).
    // SAFETY: (all arms) forwarded contract.
    unsafe {
        // Two partial sums where there is room for them.
        if const { M <= 2 && 2 * M * NP <= D::MAX_ACC } {
            match const { group_size(NP, tile_fit::<D>(M, true)) } {
                1 => groups::<D, M, NP, 1, 2, S>(rows, k4, panel, ahead),
                2 => groups::<D, M, NP, 2, 2, S>(rows, k4, panel, ahead),
                3 => groups::<D, M, NP, 3, 2, S>(rows, k4, panel, ahead),
                4 => groups::<D, M, NP, 4, 2, S>(rows, k4, panel, ahead),
                _ => groups::<D, M, NP, 6, 2, S>(rows, k4, panel, ahead),
            }
        } else {
            match const { group_size(NP, tile_fit::<D>(M, false)) } {
                1 => groups::<D, M, NP, 1, 1, S>(rows, k4, panel, ahead),
                2 => groups::<D, M, NP, 2, 1, S>(rows, k4, panel, ahead),
                3 => groups::<D, M, NP, 3, 1, S>(rows, k4, panel, ahead),
                4 => groups::<D, M, NP, 4, 1, S>(rows, k4, panel, ahead),
                _ => groups::<D, M, NP, 6, 1, S>(rows, k4, panel, ahead),
            }
        }
    }
}

/// The vectors one group of an `m`-row integer tile may take: the accumulators' room
/// per row (per partial sum when `split`), at most `D::MAX_GS` (0 when not one fits:
/// `group_size` then takes one vector).
const fn tile_fit<D: Dot8>(m: usize, split: bool) -> usize {
    let fit = D::MAX_ACC / (m * if split { 2 } else { 1 });
    if fit < D::MAX_GS {
        fit
    } else {
        D::MAX_GS
    }
}

/// [`tile`] with `GS` vectors per group (`GS` divides `NP`) and `P` partial sums; with
/// one group and one partial sum, the first row groups also fetch `ahead`.
#[inline(always)]
unsafe fn groups<
    D: Dot8,
    const M: usize,
    const NP: usize,
    const GS: usize,
    const P: usize,
    const S: bool,
>(
    rows: &[*const u8; M],
    k4: usize,
    panel: *const i8,
    ahead: Ahead,
) -> [[D; NP]; M] {
    // Bytes from one vector of a panel row to the next, and from one row (group of 4
    // `k`) of a vector to the next: 64 and `NP * 64` in rows, `64 k4` and 64 in stripes.
    let (vector, row) = if S { (k4 * 64, 64) } else { (64, NP * 64) };
    // (Constant per instantiation: the other forms never fetch.)
    let (per_row, fetching) = if P == 1 && GS == NP {
        ahead.per_row(k4)
    } else {
        (0, 0)
    };
    // SAFETY: the caller guarantees D's ISA; `zero` reads no memory.
    let zero = unsafe { D::zero() };
    let mut out = [[zero; NP]; M];
    let mut g0 = 0;
    while g0 + GS <= NP {
        // SAFETY: vector g0 < NP of the panel.
        let first = unsafe { panel.add(g0 * vector) };
        let mut acc = [[[zero; GS]; M]; P];
        let mut q = 0;
        // A separate loop, so the plain one below is unchanged (`fetching` is 0 but
        // in the one-group, one-sum form, whose single group passes here once).
        while q < fetching {
            for j in 0..per_row {
                simd::prefetch_l2(ahead.ptr.wrapping_add((q * per_row + j) * 64));
            }
            // SAFETY: group q < fetching <= k4 of the panel and of every row.
            unsafe { step::<D, M, GS>(&mut acc[0], rows, q, first.add(q * row), vector) };
            q += 1;
        }
        while q + P <= k4 {
            for (pp, part) in acc.iter_mut().enumerate() {
                // SAFETY: group q + pp < k4 of the panel and of every row.
                unsafe { step::<D, M, GS>(part, rows, q + pp, first.add((q + pp) * row), vector) };
            }
            q += P;
        }
        while q < k4 {
            // SAFETY: as above.
            unsafe { step::<D, M, GS>(&mut acc[0], rows, q, first.add(q * row), vector) };
            q += 1;
        }
        for i in 0..M {
            for j in 0..GS {
                let mut s = acc[0][i][j];
                for part in &acc[1..] {
                    // SAFETY: the caller guarantees D's ISA.
                    s = unsafe { s.add(part[i][j]) };
                }
                out[i][g0 + j] = s;
            }
        }
        g0 += GS;
    }
    out
}

/// One group of 4 `k`: `acc[i][j] += a_i[4q..4q+4] · w[q][j]`.
///
/// # Safety
/// As for [`tile`], with `q < k4` and `w` at vector `g0` of row group `q`, the next
/// vectors of the group `vector` bytes apart.
#[inline(always)]
unsafe fn step<D: Dot8, const M: usize, const GS: usize>(
    acc: &mut [[D; GS]; M],
    rows: &[*const u8; M],
    q: usize,
    w: *const i8,
    vector: usize,
) {
    // SAFETY: caller's contract: GS vectors of 64 bytes from `w`, `vector` apart, and
    // 4 bytes at 4q per row.
    unsafe {
        let mut wv = [D::load_w(w); GS];
        for (j, v) in wv.iter_mut().enumerate().skip(1) {
            *v = D::load_w(w.add(j * vector));
        }
        for i in 0..M {
            let a = D::splat_a(rows[i].add(4 * q));
            for j in 0..GS {
                acc[i][j] = acc[i][j].dot(a, wv[j]);
            }
        }
    }
}
