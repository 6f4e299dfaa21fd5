//! Packing for the backward pass, apart from any compute (matrixmultiply's split): the
//! transposed weights (`W_hhᵀ`, `W_ihᵀ`, `W_hrᵀ`) rebuilt from the forward's packed
//! panels, and the runtime operands of the weight-gradient products (rows transposed
//! into contiguous `k`, and 16-column blocks of a row-major buffer gathered into
//! panels). Everything here writes `f32` panels of four 16-lane vectors (64 columns),
//! the layout `kernel::walk` reads as `PanelsView<f32, 4>`, into caller-provided
//! workspace memory; nothing allocates. The panels are in the layout the CPU's
//! packed weights take ([`striped`]): rows of 64 columns, or on CPUs without AVX-512
//! each vector's 16 columns over all `k` in one stripe.

use crate::element::{Element, Storage};
use crate::pack::{index, Panels, LANES};
use crate::parallel::Share;
use crate::simd::V16;

/// Columns of every panel built here.
pub(crate) const WIDTH: usize = 4 * LANES;

/// Packed columns of `Panels::pack(_, units, _, gates)` with `np` vectors per panel:
/// whole 16-unit tiles of all gates, rounded up to whole panels.
pub(crate) fn forward_cols(units: usize, gates: usize, np: usize) -> usize {
    (units.div_ceil(LANES) * gates * LANES).div_ceil(np * LANES) * np * LANES
}

/// Whether the panels built here are striped (`[4][k][16]` per panel, else `[k][64]`):
/// as the CPU's packed weights are (`pack::striped_here`), so on CPUs without
/// AVX-512, where every path takes a panel one vector at a time. Every view of them
/// says so (`PanelsView::striped`).
#[inline]
pub(crate) fn striped() -> bool {
    super::striped_here::<4>()
}

/// Floats of `k` rows of panels covering `cols` columns.
pub(crate) fn panels_len(k: usize, cols: usize) -> usize {
    cols.div_ceil(WIDTH) * WIDTH * k
}

/// Writes the transpose of `src` into the f32 panels at `dst` (`dst_k` rows, panels of
/// 64 columns): source element (row `kk`, packed column `c`) goes to destination row
/// `k0 + c`, column `map(kk)`. The packed columns of `src` are its gate-interleaved
/// columns (`[tile][gate][16]`, padding included, zero), so destination rows
/// `k0 .. k0 + src.cols()` follow that layout. Other destination elements are left
/// as they are (the caller zeroes the buffer first). Only source rows `share.of(k)`
/// are written: a team's members each write their share (distinct destination
/// columns).
///
/// Panels of every storage go in 16 × 16 blocks widened and transposed in registers
/// by `blocks` (the path's [`TransposeBlocks`]) wherever 16 source rows map to 16
/// consecutive destination columns of one 16-column block; the rest (a `map` that
/// breaks a block, a share's last rows) element by element. (Element by element, a
/// 1024-unit LSTM's `W_hhᵀ` took 6 ms, as long as two of its backward's 25 steps.)
///
/// # Safety
/// `dst` must be valid for `dst_k * (panels)` writes covering every `map(kk)` column,
/// and `k0 + src.cols() <= dst_k`; `blocks` must be a detected path's.
pub(crate) unsafe fn transpose_panels<W: Element, const NP: usize>(
    src: &Panels<W, NP>,
    dst: *mut f32,
    dst_k: usize,
    k0: usize,
    map: impl Fn(usize) -> usize,
    share: Share,
    blocks: TransposeBlocksFn,
) {
    // SAFETY: forwarded contract.
    unsafe { transpose_panels_in(striped(), src, dst, dst_k, k0, map, share, blocks) }
}

/// [`transpose_panels`] into panels striped or not (`dst_striped`; the tests take both).
///
/// # Safety
/// As for [`transpose_panels`].
#[allow(clippy::too_many_arguments)]
unsafe fn transpose_panels_in<W: Element, const NP: usize>(
    dst_striped: bool,
    src: &Panels<W, NP>,
    dst: *mut f32,
    dst_k: usize,
    k0: usize,
    map: impl Fn(usize) -> usize,
    share: Share,
    blocks: TransposeBlocksFn,
) {
    let width = NP * LANES;
    let (k, data, striped) = (src.k(), src.data(), src.striped());
    // The destination's layout: from one row to the next, a panel row or a lane.
    let row_step = if dst_striped { LANES } else { WIDTH };
    // The source's: from one row to the next, and from one 16-column block to the next.
    let (src_stride, src_step) = if striped {
        (LANES, k * LANES)
    } else {
        (width, LANES)
    };
    let elem = BlockElem::of::<W>();
    let mine = share.of(k, LANES);
    for p in 0..src.panels() {
        let mut kk = mine.start;
        while kk < mine.end {
            let n = (mine.end - kk).min(LANES);
            let dc = map(kk);
            let run =
                n == LANES && dc.is_multiple_of(LANES) && (1..LANES).all(|j| map(kk + j) == dc + j);
            if run {
                // The 16 source rows' NP blocks go to 16 destination columns of
                // rows `k0 + p * width ..`, one block of 16 rows after another.
                let first =
                    index::<f32, 4>(dst_striped, dst_k, dc / WIDTH, k0 + p * width, dc % WIDTH);
                let op = TransposeBlocks {
                    src: data[index::<W, NP>(striped, k, p, kk, 0)..]
                        .as_ptr()
                        .cast::<u8>(),
                    elem,
                    striped,
                    src_stride,
                    src_step,
                    // SAFETY: caller's contract: rows `k0 + p*width ..+ width` and
                    // columns `dc .. dc + 16` are inside `dst`.
                    dst: unsafe { dst.add(first) },
                    dst_stride: row_step,
                    dst_step: LANES * row_step,
                    n: NP,
                };
                // SAFETY: the op reads rows kk..kk+16 of the panel's NP vectors
                // (inside `data`, laid out as `index` says: whole 16-lane vectors,
                // each in its place for `W`) and writes inside `dst` as above;
                // `blocks` is the caller's detected path.
                unsafe { blocks(op) };
            } else {
                for kk in kk..kk + n {
                    let dc = map(kk);
                    let first =
                        index::<f32, 4>(dst_striped, dst_k, dc / WIDTH, k0 + p * width, dc % WIDTH);
                    // SAFETY: caller's contract: column `dc` and rows `k0 + p*width
                    // + col` are inside `dst`.
                    let out = unsafe { dst.add(first) };
                    for col in 0..width {
                        let v = data[index::<W, NP>(striped, k, p, kk, col)].to_f32();
                        // SAFETY: as above.
                        unsafe { *out.add(col * row_step) = v };
                    }
                }
            }
            kk += n;
        }
    }
}

/// The element type of a [`TransposeBlocks`] source (the packed weights' storage).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockElem {
    F32,
    F16,
    Bf16,
}

impl BlockElem {
    /// The kind of `W` (every [`Element`] is one of the three).
    fn of<W: Element>() -> Self {
        let t = std::any::TypeId::of::<W>();
        if t == std::any::TypeId::of::<half::f16>() {
            BlockElem::F16
        } else if t == std::any::TypeId::of::<half::bf16>() {
            BlockElem::Bf16
        } else {
            BlockElem::F32
        }
    }
}

/// `n` blocks of 16 × 16 values of a packed panel, each widened to `f32` and
/// transposed in registers ([`V16::transpose16`]): [`transpose_panels`]' whole blocks.
/// The source is `elem` values from `src` (in elements of that type): row `j` of the
/// blocks at `src + j * src_stride`; block `b` is, in a striped panel, the stripe at
/// `src + b * src_step`, else vector `b` of the `n` vectors of that panel row, where
/// the storage places it (`Storage::load_vec`: bf16 pairs vectors). Block `b` writes
/// its column `i` (16 floats) at `dst + b * dst_step + i * dst_stride`.
#[derive(Clone, Copy)]
pub(crate) struct TransposeBlocks {
    pub(crate) src: *const u8,
    pub(crate) elem: BlockElem,
    pub(crate) striped: bool,
    pub(crate) src_stride: usize,
    pub(crate) src_step: usize,
    pub(crate) dst: *mut f32,
    pub(crate) dst_stride: usize,
    pub(crate) dst_step: usize,
    pub(crate) n: usize,
}

/// A path's [`TransposeBlocks`] (`passes::transpose_blocks`).
pub(crate) type TransposeBlocksFn = unsafe fn(TransposeBlocks);

impl TransposeBlocks {
    /// Runs the blocks with vector type `V`.
    ///
    /// # Safety
    /// `V`'s ISA must be available; `src` holds `elem` values; every row read and
    /// column written lies inside the source and the destination.
    #[inline(always)]
    pub(crate) unsafe fn run<V: V16>(self) {
        // SAFETY: forwarded contract, at the type `elem` names.
        unsafe {
            match self.elem {
                BlockElem::F32 => self.run_as::<V, f32>(),
                BlockElem::F16 => self.run_as::<V, half::f16>(),
                BlockElem::Bf16 => self.run_as::<V, half::bf16>(),
            }
        }
    }

    /// [`TransposeBlocks::run`] with the source's type `W`.
    #[inline(always)]
    unsafe fn run_as<V: V16, W: Storage>(self) {
        let src = self.src.cast::<W>();
        for blk in 0..self.n {
            // SAFETY: the caller's contract.
            unsafe {
                let mut b = [V::zero(); LANES];
                for (j, v) in b.iter_mut().enumerate() {
                    let row = src.add(j * self.src_stride);
                    *v = if self.striped {
                        W::load_stripe::<V>(row.add(blk * self.src_step))
                    } else {
                        W::load_vec::<V>(row, blk, self.n)
                    };
                }
                V::transpose16(&mut b);
                let to = self.dst.add(blk * self.dst_step);
                for (i, v) in b.iter().enumerate() {
                    v.store(to.add(i * self.dst_stride));
                }
            }
        }
    }
}

/// Zeroes `share` of the `len` floats at `dst`, cut at cache lines (a team's members
/// each their share, then a barrier before anyone writes into the buffer).
///
/// # Safety
/// `dst` must be valid for `len` writes.
pub(crate) unsafe fn clear(dst: *mut f32, len: usize, share: Share) {
    let part = share.of(len, LANES);
    // SAFETY: `part` lies inside the `len` floats.
    unsafe { std::ptr::write_bytes(dst.add(part.start), 0, part.len()) };
}

/// `dst[i] = Σ_r left[i][r]` for this member's share of the `rows` rows of `len`
/// floats (a bias gradient from the transposed gradient rows): each sum in one fixed
/// order (16 lanes, then the lanes in order), so it is the same for any thread count.
///
/// # Safety
/// `left` holds `rows * len` floats, `dst` `rows`.
pub(crate) unsafe fn sum_rows(
    left: *const f32,
    len: usize,
    rows: usize,
    dst: *mut f32,
    share: Share,
) {
    for i in share.of(rows, 1) {
        // SAFETY: row `i < rows` of `len` floats.
        let row = unsafe { std::slice::from_raw_parts(left.add(i * len), len) };
        let mut acc = [0.0f32; LANES];
        let mut chunks = row.chunks_exact(LANES);
        for c in &mut chunks {
            for (a, &v) in acc.iter_mut().zip(c) {
                *a += v;
            }
        }
        for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
            *a += v;
        }
        // SAFETY: `i < rows`.
        unsafe { *dst.add(i) = acc.iter().sum() };
    }
}

/// Rows of a runtime operand: row `r` (`r < rows`) at `base + r * stride`, `width`
/// values each, in blocks of 16: block `q` (columns `16 q ..`) at `q * block_stride`
/// within the row (16 for a plain row-major operand; `G · 16` for one gate's units in
/// gate-interleaved rows).
#[derive(Clone, Copy)]
pub(crate) struct RowSource {
    pub(crate) base: *const f32,
    pub(crate) stride: usize,
    pub(crate) width: usize,
    pub(crate) block_stride: usize,
}

impl RowSource {
    /// Plain row-major rows: `width` consecutive values from `base + r * stride`.
    pub(crate) fn plain(base: *const f32, stride: usize, width: usize) -> RowSource {
        RowSource {
            base,
            stride,
            width,
            block_stride: LANES,
        }
    }

    /// Where column `i` (a multiple of 16) of row `r` starts, as an offset from `base`.
    #[inline(always)]
    fn at(&self, r: usize, i: usize) -> usize {
        r * self.stride + i / LANES * self.block_stride
    }
}

/// Which rows of a runtime operand hold data: all, or, for the `T·B` rows of a
/// sequence (row `r` is step `r / batch` of batch row `r % batch`), those of steps
/// within their row's length.
#[derive(Clone, Copy)]
pub(crate) struct RowMask {
    /// The `batch` lengths, or null: every row.
    lens: *const usize,
    batch: usize,
}

impl RowMask {
    /// Every row holds data.
    pub(crate) const ALL: RowMask = RowMask {
        lens: std::ptr::null(),
        batch: 1,
    };

    /// Rows of steps below their batch row's length; every row when `lens` is null.
    ///
    /// # Safety
    /// `lens` is null or holds `batch >= 1` lengths, and outlives the mask's use.
    pub(crate) unsafe fn lengths(lens: *const usize, batch: usize) -> RowMask {
        RowMask { lens, batch }
    }

    /// Whether row `r` holds data.
    #[inline(always)]
    pub(crate) fn keeps(&self, r: usize) -> bool {
        // SAFETY: a non-null `lens` holds `batch` lengths (`lengths`' contract).
        self.lens.is_null() || r / self.batch < unsafe { *self.lens.add(r % self.batch) }
    }
}

/// A transpose of rows `rows` of `src` into `dst` (row `i` of `dst`, at `dst + i *
/// ld`, holds column `i` of `src`), with zeros for source rows `mask` leaves out, and,
/// when `ones`, a last row `src.width` of ones (the weight-gradient products' bias
/// row: `Σ_r d[r]`). A team's members each take their share of the rows: distinct
/// destination columns.
///
/// It runs in 16 × 16 blocks transposed in registers ([`V16::transpose16`]), 16 source
/// rows at a time across their whole width: each block reads one line of each source
/// row and writes one line of each destination row. Blocks cut by the range's end or
/// the width go through a zero-padded buffer. (The scalar transpose through a 64 × 64
/// buffer it replaced took 3.8-5.4 ms (median of 15) on 3200 rows of 1024 where this
/// takes 1.8-1.9 on the AVX-512 path and 2.8 on AVX2, the source and destination in
/// cache; Xeon model 167, 1 thread. The weight gradients' copy into PyTorch's layout
/// stays in `training::weight_grads`' tiles: through these blocks, in 16-row strips
/// over every destination row, it took longer.)
#[derive(Clone)]
pub(crate) struct Transpose {
    pub(crate) src: RowSource,
    pub(crate) rows: std::ops::Range<usize>,
    pub(crate) dst: *mut f32,
    pub(crate) ld: usize,
    pub(crate) ones: bool,
    pub(crate) mask: RowMask,
}

impl Transpose {
    /// Source rows `rows` of `src` transposed in order into `dst` (`ld` floats a row),
    /// no ones row, every row kept: the plain transpose.
    pub(crate) fn plain(
        src: RowSource,
        rows: std::ops::Range<usize>,
        dst: *mut f32,
        ld: usize,
    ) -> Transpose {
        Transpose {
            src,
            rows,
            dst,
            ld,
            ones: false,
            mask: RowMask::ALL,
        }
    }

    /// Runs the transpose with vector type `V`.
    ///
    /// # Safety
    /// `V`'s ISA must be available; `src` must be valid for every row in `rows`; `dst`
    /// for `(src.width + ones) * ld` floats with `rows.end <= ld`.
    #[inline(always)]
    pub(crate) unsafe fn run<V: V16>(self) {
        let Transpose {
            src,
            rows,
            dst,
            ld,
            ones,
            mask,
        } = self;
        let width = src.width;
        let nq = width.div_ceil(LANES);
        let mut r0 = rows.start;
        while r0 < rows.end {
            let n = (rows.end - r0).min(LANES);
            let mut keep = [false; LANES];
            for (j, k) in keep.iter_mut().enumerate().take(n) {
                *k = mask.keeps(r0 + j);
            }
            let all = keep.iter().all(|&k| k);
            for q in 0..nq {
                let i0 = q * LANES;
                let m = (width - i0).min(LANES);
                // SAFETY: rows r0..r0+n are in `rows` and columns i0..i0+m below
                // `width` (whole vectors only when n == m == 16); destination rows
                // i0..i0+m of `ld >= rows.end` floats, columns r0..r0+n; the ISA is
                // the caller's.
                unsafe {
                    let mut b = [V::zero(); LANES];
                    if n == LANES && m == LANES {
                        // Every row loaded (the range's rows are readable), masked ones
                        // then zeroed: no branch per row in the common unmasked case.
                        let from = src.base.add(src.at(r0, i0));
                        for (j, v) in b.iter_mut().enumerate() {
                            *v = V::load(from.add(j * src.stride));
                        }
                        if !all {
                            for (v, &k) in b.iter_mut().zip(&keep) {
                                if !k {
                                    *v = V::zero();
                                }
                            }
                        }
                        V::transpose16(&mut b);
                        for (i, v) in b.iter().enumerate() {
                            v.store(dst.add((i0 + i) * ld + r0));
                        }
                    } else {
                        // `pad` is zero past `m` for every row (same `m` throughout).
                        let mut pad = [0.0f32; LANES];
                        for (j, v) in b.iter_mut().enumerate().filter(|&(j, _)| keep[j]) {
                            let from = src.base.add(src.at(r0 + j, i0));
                            std::ptr::copy_nonoverlapping(from, pad.as_mut_ptr(), m);
                            *v = V::load(pad.as_ptr());
                        }
                        V::transpose16(&mut b);
                        for (i, v) in b.iter().take(m).enumerate() {
                            v.store(pad.as_mut_ptr());
                            let to = dst.add((i0 + i) * ld + r0);
                            std::ptr::copy_nonoverlapping(pad.as_ptr(), to, n);
                        }
                    }
                }
            }
            r0 += n;
        }
        if ones {
            for r in rows {
                // SAFETY: row `width` of `dst` exists when `ones`; r < rows.end <= ld.
                unsafe { *dst.add(width * ld + r) = 1.0 };
            }
        }
    }
}

/// 16-column blocks of a row-major runtime operand, chosen gate by gate: block `q` of
/// row `r` starts at `base + r * stride + (q / pick.len()) * tile_stride + pick[q %
/// pick.len()] * 16`. E.g. every gate of a gate-interleaved row (`tile_stride = G *
/// 16`, `pick = 0..G`), or only some gates of it.
#[derive(Clone, Copy)]
pub(crate) struct BlockCols<'a> {
    pub(crate) base: *const f32,
    pub(crate) stride: usize,
    pub(crate) tile_stride: usize,
    pub(crate) pick: &'a [usize],
    /// Blocks per row.
    pub(crate) blocks: usize,
}

impl BlockCols<'_> {
    /// Columns, a whole number of panels.
    pub(crate) fn cols(&self) -> usize {
        (self.blocks * LANES).div_ceil(WIDTH) * WIDTH
    }

    /// Panels.
    pub(crate) fn panels(&self) -> usize {
        self.cols() / WIDTH
    }

    /// Offset of block `q` within a row.
    fn offset(&self, q: usize) -> usize {
        let n = self.pick.len();
        (q / n) * self.tile_stride + self.pick[q % n] * LANES
    }
}

/// Rows of `k` (`T·B`) per slice of a weight-gradient product (the recurrent layers'
/// and the output layer's), the slices' products added in order (the kernels'
/// `AddStore`). A slice bounds a panel's slice (`KC` x 64 floats = 512 KiB) so that
/// it stays in L2 while a chunk's row blocks pass over it; each further slice costs a
/// pass over the output to add it. Slices of 512 rows paid off while the walk's chunks
/// held only a few hundred rows; with chunks over all rows, the slices' additions were
/// the larger cost: each weight-gradient product of a 1024-unit LSTM's training step
/// (`k` = 1600) took 79 ms in slices of 512 and 71 ms in one slice (Xeon model 167,
/// avx512bf16, 1 thread).
pub(crate) const KC: usize = 2048;

/// Gathers panels `panels` of `src` over `rows` rows into `dst`, the right operand of a
/// weight-gradient product (`k` = the rows), in slices of `kc` rows: slice `s` (rows
/// `s kc ..`, `n_s` of them) is a packing of its own at `dst + s kc · src.panels() ·
/// 64`, panel `p` at `p n_s 64` within it, `[r][64]` or, [`striped`], `[4][r][16]`
/// (so with `kc >= rows`, panel `p` at `dst + p · rows · 64`). Blocks past
/// `src.blocks` are zero.
///
/// # Safety
/// `src` must be valid for every row and block; `dst` for `src.panels() * rows * 64`
/// floats; `kc > 0`.
pub(crate) unsafe fn gather_blocks(
    src: &BlockCols<'_>,
    rows: usize,
    kc: usize,
    panels: std::ops::Range<usize>,
    dst: *mut f32,
) {
    // SAFETY: forwarded contract.
    unsafe { gather_blocks_in(striped(), src, rows, kc, panels, dst) }
}

/// [`gather_blocks`] into panels striped or not (the tests take both).
///
/// # Safety
/// As for [`gather_blocks`].
unsafe fn gather_blocks_in(
    striped: bool,
    src: &BlockCols<'_>,
    rows: usize,
    kc: usize,
    panels: std::ops::Range<usize>,
    dst: *mut f32,
) {
    let layout = Gathered {
        striped,
        panels: src.panels(),
        rows,
        kc,
    };
    // SAFETY: caller's contract; `out` holds the 16 floats of block `block` of row `r`.
    unsafe {
        layout.fill(panels, dst, |r, block, out| {
            if block < src.blocks {
                let from = src.base.add(r * src.stride + src.offset(block));
                std::ptr::copy_nonoverlapping(from, out, LANES);
            } else {
                std::ptr::write_bytes(out, 0, LANES);
            }
        })
    }
}

/// The layout both gathers write: slices of `kc` of the `rows` rows, slice `s` (rows
/// `s kc ..`, `n_s` of them) a packing of its own of `panels` panels at `s kc · panels
/// · 64`, panel `p` at `p n_s 64` within it, `[r][64]` or, `striped`, `[4][r][16]`.
struct Gathered {
    striped: bool,
    panels: usize,
    rows: usize,
    kc: usize,
}

impl Gathered {
    /// Calls `fill(r, block, out)` for every row `r` and 16-column block `block` of
    /// panels `panels`, `out` where that block of row `r` goes in `dst`. Sixteen rows
    /// at a time, all their panels: each source row is read front to back while the
    /// sixteen stay in L1, and each panel's sixteen destination rows are 4 KiB in one
    /// piece. (Panel by panel over all rows, every read was on another page.)
    ///
    /// # Safety
    /// `dst` must be valid for `panels * rows * 64` floats; `kc > 0`.
    #[inline(always)]
    unsafe fn fill(
        &self,
        panels: std::ops::Range<usize>,
        dst: *mut f32,
        fill: impl Fn(usize, usize, *mut f32),
    ) {
        let (rows, kc) = (self.rows, self.kc);
        for k0 in (0..rows).step_by(kc) {
            let (_, n) = slice_of(k0, rows, kc);
            let mut r0 = k0;
            while r0 < k0 + n {
                let r1 = (k0 + n).min(r0 + LANES);
                for p in panels.clone() {
                    let panel = (k0 * self.panels + p * n) * WIDTH;
                    for q in 0..WIDTH / LANES {
                        for r in r0..r1 {
                            let at = if self.striped {
                                panel + (q * n + r - k0) * LANES
                            } else {
                                panel + (r - k0) * WIDTH + q * LANES
                            };
                            // SAFETY: the caller's contract: `at + 16` lies inside `dst`.
                            fill(r, p * (WIDTH / LANES) + q, unsafe { dst.add(at) });
                        }
                    }
                }
                r0 = r1;
            }
        }
    }
}

/// Gathers panels `panels` of the rows of `src` (`rows` of them; rows `mask` leaves
/// out, and columns past `src.width`, zero) into `dst` in [`gather_blocks`]' layout:
/// slices of `kc` rows, each a packing of its own. The right operand of a
/// weight-gradient product whose output is the gradient in the caller's layout (`k` =
/// the `T·B` rows, columns the layer's input or state units).
///
/// # Safety
/// `src` must be valid for `width` values of every row (in its blocks); `dst` for
/// `src.width.div_ceil(64) * rows * 64` floats; `kc > 0`.
pub(crate) unsafe fn gather_rows(
    src: RowSource,
    mask: RowMask,
    rows: usize,
    kc: usize,
    panels: std::ops::Range<usize>,
    dst: *mut f32,
) {
    // SAFETY: forwarded contract.
    unsafe { gather_rows_in(striped(), src, mask, rows, kc, panels, dst) }
}

/// [`gather_rows`] into panels striped or not (the tests take both).
///
/// # Safety
/// As for [`gather_rows`].
unsafe fn gather_rows_in(
    striped: bool,
    src: RowSource,
    mask: RowMask,
    rows: usize,
    kc: usize,
    panels: std::ops::Range<usize>,
    dst: *mut f32,
) {
    let layout = Gathered {
        striped,
        panels: src.width.div_ceil(WIDTH),
        rows,
        kc,
    };
    // SAFETY: caller's contract: `out` holds the 16 floats of block `block` of row
    // `r`, of which the source row holds the first `keep`.
    unsafe {
        layout.fill(panels, dst, |r, block, out| {
            let i0 = block * LANES;
            let keep = match mask.keeps(r) {
                true => src.width.saturating_sub(i0).min(LANES),
                false => 0,
            };
            if keep > 0 {
                std::ptr::copy_nonoverlapping(src.base.add(src.at(r, i0)), out, keep);
            }
            std::ptr::write_bytes(out.add(keep), 0, LANES - keep);
        })
    }
}

/// The first row and the row count of the `kc`-row slice of `0..rows` that holds row
/// `r`.
#[inline]
pub(crate) fn slice_of(r: usize, rows: usize, kc: usize) -> (usize, usize) {
    let k0 = r / kc * kc;
    (k0, kc.min(rows - k0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where row `row`, column `col` of panels of `k` rows lies.
    fn at(striped: bool, k: usize, row: usize, col: usize) -> usize {
        index::<f32, 4>(striped, k, col / WIDTH, row, col % WIDTH)
    }

    /// Where row `r`, column `c` of panel `p` of `gather_blocks`' slices of `kc` of
    /// `rows` rows (`panels` panels) lies.
    fn sliced_at(
        striped: bool,
        (rows, kc, panels): (usize, usize, usize),
        r: usize,
        p: usize,
        c: usize,
    ) -> usize {
        let (k0, n) = slice_of(r, rows, kc);
        (k0 * panels + p * n) * WIDTH + at(striped, n, r - k0, c)
    }

    /// The whole-block transpose of the path of `isa` (the dispatch tables' entry).
    fn blocks_at(isa: crate::Isa) -> TransposeBlocksFn {
        struct Entry;
        impl crate::arch::ForBackend for Entry {
            type Output = TransposeBlocksFn;
            fn call<B: crate::arch::Backend>(self) -> TransposeBlocksFn {
                crate::passes::transpose_blocks::<B>
            }
        }
        crate::arch::dispatch(isa.detected().unwrap(), Entry)
    }

    /// Every element lands where it belongs, for every storage, both source and both
    /// destination layouts, at every ISA this CPU runs: 40 units of 2 gates (two
    /// panels, the second half padding) by `k` = 40 source rows (two whole 16-row
    /// blocks, then 8 rows element by element).
    #[test]
    fn transposed_panels_hold_the_transpose() {
        // 2 gates x 40 units: w[(g*40 + u)*k + kk] = 100 g + u + 1000 kk.
        let (rows, k) = (40, 40);
        let w: Vec<f32> = (0..2 * rows * k)
            .map(|i| {
                let (r, kk) = (i / k, i % k);
                (r / rows * 100 + r % rows + 1000 * kk) as f32
            })
            .collect();
        for isa in crate::Isa::available() {
            let blocks = blocks_at(isa);
            // Both source layouts, into both destination layouts.
            for (striped, to) in [(false, false), (true, false), (false, true), (true, true)] {
                for_storage::<f32>(&w, (rows, k), (striped, to), blocks);
                for_storage::<half::f16>(&w, (rows, k), (striped, to), blocks);
                for_storage::<half::bf16>(&w, (rows, k), (striped, to), blocks);
            }
        }
    }

    fn for_storage<W: Element>(
        w: &[f32],
        (rows, k): (usize, usize),
        (striped, to): (bool, bool),
        blocks: TransposeBlocksFn,
    ) {
        let p = Panels::<W, 4>::pack_layout(w, rows, k, &[0, 1], striped);
        let dst_k = p.cols();
        let transpose = |blocks: TransposeBlocksFn| {
            let mut dst = vec![0.0f32; panels_len(dst_k, k)];
            // SAFETY: dst covers dst_k rows of the panels of k columns; `blocks` is a
            // detected path's (or writes nothing).
            unsafe {
                let out = dst.as_mut_ptr();
                transpose_panels_in(to, &p, out, dst_k, 0, |kk| kk, Share::ALL, blocks)
            };
            dst
        };
        let dst = transpose(blocks);
        // Rows 0..32 are whole blocks: a "blocks" that writes nothing leaves them zero
        // (unit 1 of gate 0, row 0 holds 1), rows 32.. go element by element.
        unsafe fn none(_: TransposeBlocks) {}
        let without = transpose(none);
        assert_eq!(
            without[at(to, dst_k, 1, 0)],
            0.0,
            "{}: blocks not taken",
            W::NAME
        );
        assert_eq!(without[at(to, dst_k, 1, 32)], dst[at(to, dst_k, 1, 32)]);
        // Every row: packed column `c` (tile, gate, lane) holds that unit's weights.
        for c in 0..dst_k {
            let (tile, gate, lane) = (c / 32, c / 16 % 2, c % 16);
            let unit = tile * 16 + lane;
            for kk in 0..k {
                let want = if unit < rows {
                    W::from_f32((gate * 100 + unit + 1000 * kk) as f32).to_f32()
                } else {
                    0.0 // padding
                };
                let got = W::from_f32(dst[at(to, dst_k, c, kk)]).to_f32();
                assert_eq!(
                    got,
                    want,
                    "{}: packed column {c}, k {kk}, layouts {striped} {to}",
                    W::NAME
                );
            }
        }
    }

    /// A team's members each transposing their share write, together, what one
    /// caller writes alone, and the whole-block path writes what the element-by-element
    /// one does, with a map that keeps some 16-row blocks whole and cuts others (a later
    /// layer's, 24 units padded to 32) and with one that cuts every block.
    #[test]
    fn transposed_panels_in_shares_equal_the_whole() {
        let (rows, k) = (20, 72);
        let w: Vec<f32> = (0..2 * rows * k).map(|i| i as f32).collect();
        let p = Panels::<f32, 4>::pack(&w, rows, k, &[0, 1]);
        let dst_k = p.cols();
        let later = |kk: usize| kk / 24 * 32 + kk % 24;
        let gaps = |kk: usize| kk / 10 * 16 + kk % 10;
        let to = striped();
        // A path whose "blocks" write nothing: where a test sees zeros, blocks ran.
        unsafe fn none(_: TransposeBlocks) {}
        for (name, map, cut) in [
            ("later", &later as &dyn Fn(usize) -> usize, false),
            ("gaps", &gaps, true),
        ] {
            let transpose = |shares: &[Share], blocks: TransposeBlocksFn| {
                let mut dst = vec![0.0f32; panels_len(dst_k, 2 * 64)];
                for &share in shares {
                    // SAFETY: dst covers dst_k rows of two panels; map(kk) < 128.
                    unsafe { transpose_panels(&p, dst.as_mut_ptr(), dst_k, 0, map, share, blocks) };
                }
                dst
            };
            // Packed column `c` of source row `kk` at row `c`, column `map(kk)`.
            let mut want = vec![0.0f32; panels_len(dst_k, 2 * 64)];
            for kk in 0..k {
                for c in 0..dst_k {
                    let from = index::<f32, 4>(p.striped(), k, c / WIDTH, kk, c % WIDTH);
                    want[at(to, dst_k, c, map(kk))] = p.data()[from];
                }
            }
            // Gate 1, unit 3 (tile 0): packed column 16 + 3; its weights are row 20 + 3.
            assert_eq!(want[at(to, dst_k, 16 + 3, map(39))], w[(20 + 3) * k + 39]);
            // Whole blocks exist under `later` (their writes are missing without
            // them), none under `gaps`.
            let without = transpose(&[Share::ALL], none);
            assert_eq!(without == want, cut, "{name}: blocks taken");
            for isa in crate::Isa::available() {
                let blocks = blocks_at(isa);
                assert_eq!(transpose(&[Share::ALL], blocks), want, "{name}, {isa:?}");
                for count in 2..4 {
                    let shares: Vec<Share> = (0..count).map(|i| Share::part(i, count)).collect();
                    let got = transpose(&shares, blocks);
                    assert_eq!(got, want, "{name}, {isa:?}, {count} shares");
                    // A share left out leaves its columns zero.
                    let got = transpose(&shares[1..], blocks);
                    assert_ne!(got, want, "{name}, {isa:?}, {count} shares");
                }
            }
        }
    }

    /// Runs `op` on the path of `isa` (through the dispatch tables' entry).
    fn run_at(isa: crate::Isa, op: Transpose) {
        struct Run(Transpose);
        impl crate::arch::ForBackend for Run {
            type Output = ();
            fn call<B: crate::arch::Backend>(self) {
                // SAFETY: `dispatch` chose `B` for a detected ISA; the callers size
                // the destination for the op.
                unsafe { crate::passes::transpose::<B>(self.0) }
            }
        }
        crate::arch::dispatch(isa.detected().unwrap(), Run(op));
    }

    /// A transpose in order at every ISA this CPU runs.
    fn transpose_each_isa(
        src: RowSource,
        rows: std::ops::Range<usize>,
        dst: &[f32],
        ld: usize,
        ones: bool,
        mask: RowMask,
    ) -> Vec<(crate::Isa, Vec<f32>)> {
        crate::Isa::available()
            .into_iter()
            .map(|isa| {
                let mut out = dst.to_vec();
                let op = Transpose {
                    ones,
                    mask,
                    ..Transpose::plain(src, rows.clone(), out.as_mut_ptr(), ld)
                };
                run_at(isa, op);
                (isa, out)
            })
            .collect()
    }

    #[test]
    fn rows_transpose_with_mask_and_ones() {
        let src: Vec<f32> = (0..5 * 3).map(|v| v as f32).collect(); // 5 rows of 3
        let s = RowSource::plain(src.as_ptr(), 3, 3);
        // One step of 5 batch rows, row 2 of length 0.
        let lens = [1usize, 1, 0, 1, 1];
        // SAFETY: `lens` holds 5 lengths and outlives the mask.
        let mask = unsafe { RowMask::lengths(lens.as_ptr(), 5) };
        for (isa, dst) in transpose_each_isa(s, 0..5, &[f32::NAN; 4 * 5], 5, true, mask) {
            assert_eq!(&dst[..5], &[0.0, 3.0, 0.0, 9.0, 12.0], "{isa:?}");
            assert_eq!(&dst[10..15], &[2.0, 5.0, 0.0, 11.0, 14.0], "{isa:?}");
            assert_eq!(&dst[15..], &[1.0; 5], "{isa:?}");
        }
    }

    /// Sizes that end inside a block and row ranges that start inside one (a team
    /// member's share), whole 16 x 16 blocks and cut ones: every element of the range
    /// lands transposed (zero in the rows past their batch row's length), the ones row
    /// under it, and nothing outside its columns is written, at every ISA.
    #[test]
    fn rows_transpose_across_blocks_and_shares() {
        // Batch rows of 7: lengths of 0, 3 and "all" steps.
        let lens = [usize::MAX, usize::MAX, 3, 0, usize::MAX, 5, usize::MAX];
        let keep = |r: usize| r / 7 < lens[r % 7];
        let cases = [
            (150, 70, 0..150),
            (150, 70, 37..131),
            (64, 129, 0..64),
            (48, 32, 16..48),
            (5, 3, 0..5),
        ];
        for (nrows, width, share) in cases {
            let stride = width + 3;
            let src: Vec<f32> = (0..nrows * stride).map(|v| v as f32).collect();
            let s = RowSource::plain(src.as_ptr(), stride, width);
            let ld = nrows + 5;
            let dst = vec![f32::NAN; (width + 1) * ld];
            // SAFETY: `lens` holds 7 lengths and outlives the mask.
            let mask = unsafe { RowMask::lengths(lens.as_ptr(), 7) };
            for (isa, dst) in transpose_each_isa(s, share.clone(), &dst, ld, true, mask) {
                for i in 0..=width {
                    for r in 0..ld {
                        let got = dst[i * ld + r];
                        let want = match (share.contains(&r), i == width) {
                            (false, _) => f32::NAN,
                            (true, true) => 1.0,
                            (true, false) if keep(r) => src[r * stride + i],
                            (true, false) => 0.0,
                        };
                        assert!(
                            got == want || (got.is_nan() && want.is_nan()),
                            "{isa:?} {nrows} x {width}, rows {share:?}: dst[{i}][{r}] = {got}, want {want}"
                        );
                    }
                }
            }
        }
    }

    /// One gate's units of gate-interleaved rows (blocks `G · 16` apart, the last tile
    /// cut: 20 units), transposed into rows in unit order at every ISA: the weight
    /// gradients' transposed gate gradients.
    #[test]
    fn one_gates_blocks_transpose_in_unit_order() {
        let (g, units, nrows) = (3, 20, 37);
        let stride = g * 32 + 5;
        let src: Vec<f32> = (0..nrows * stride).map(|v| v as f32).collect();
        for gate in 0..g {
            let s = RowSource {
                base: src[gate * LANES..].as_ptr(),
                stride,
                width: units,
                block_stride: g * LANES,
            };
            let dst = vec![f32::NAN; units * nrows];
            for (isa, dst) in transpose_each_isa(s, 0..nrows, &dst, nrows, false, RowMask::ALL) {
                for u in 0..units {
                    for r in 0..nrows {
                        let want = src[r * stride + u / 16 * g * 16 + gate * 16 + u % 16];
                        assert_eq!(
                            dst[u * nrows + r],
                            want,
                            "{isa:?} gate {gate} unit {u} row {r}"
                        );
                    }
                }
            }
        }
    }

    /// `gather_rows`: widths that end inside a block and a panel, rows past their
    /// batch row's length, slices of `kc` rows cut inside a 16-row group, two panel
    /// ranges (two team members): every kept value in its place, zeros elsewhere.
    #[test]
    fn rows_gather_with_masks_cut_widths_and_slices() {
        let (rows, kc, width, stride) = (45, 40, 150, 157);
        let src: Vec<f32> = (0..rows * stride)
            .map(|v| (v / stride * 1000 + v % stride) as f32)
            .collect();
        let lens = [usize::MAX, 2, 0, 5, usize::MAX, 4, 6];
        let keep = |r: usize| r / 7 < lens[r % 7];
        // SAFETY: `lens` holds 7 lengths and outlives the mask.
        let mask = unsafe { RowMask::lengths(lens.as_ptr(), 7) };
        let s = RowSource::plain(src.as_ptr(), stride, width);
        for striped in [false, true] {
            let mut dst = vec![f32::NAN; 3 * rows * 64];
            // SAFETY: 3 panels of 45 rows; the rows hold `width` values; the two ranges
            // are disjoint.
            unsafe {
                gather_rows_in(striped, s, mask, rows, kc, 0..1, dst.as_mut_ptr());
                gather_rows_in(striped, s, mask, rows, kc, 1..3, dst.as_mut_ptr());
            }
            for r in 0..rows {
                for p in 0..3 {
                    for c in 0..64 {
                        let col = 64 * p + c;
                        let want = if col < width && keep(r) {
                            (1000 * r + col) as f32
                        } else {
                            0.0
                        };
                        let at = sliced_at(striped, (rows, kc, 3), r, p, c);
                        assert_eq!(dst[at], want, "{striped}: row {r} panel {p} column {c}");
                    }
                }
            }
        }
    }

    /// `RowMask::ALL` keeps every row; a mask of lengths keeps step `t` of batch row
    /// `b` exactly when `t < lens[b]`.
    #[test]
    fn row_masks_keep_the_steps_within_each_length() {
        assert!((0..100).all(|r| RowMask::ALL.keeps(r)));
        let lens = [2usize, 0, 1];
        // SAFETY: `lens` holds 3 lengths and outlives the mask.
        let mask = unsafe { RowMask::lengths(lens.as_ptr(), 3) };
        let kept: Vec<usize> = (0..9).filter(|&r| mask.keeps(r)).collect();
        assert_eq!(kept, [0, 2, 3]);
        // SAFETY: null: every row.
        let all = unsafe { RowMask::lengths(std::ptr::null(), 3) };
        assert!((0..9).all(|r| all.keeps(r)));
    }

    #[test]
    fn blocks_gather_the_picked_gates() {
        // 2 rows of 2 tiles x 3 gates x 16.
        let src: Vec<f32> = (0..2 * 96).map(|v| v as f32).collect();
        let b = BlockCols {
            base: src.as_ptr(),
            stride: 96,
            tile_stride: 48,
            pick: &[0, 2],
            blocks: 4,
        };
        assert_eq!(b.panels(), 1);
        for striped in [false, true] {
            let mut dst = vec![f32::NAN; 2 * 64];
            // SAFETY: one panel of 2 rows.
            unsafe { gather_blocks_in(striped, &b, 2, 2, 0..1, dst.as_mut_ptr()) };
            let at = |r, c| sliced_at(striped, (2, 2, 1), r, 0, c);
            // Row 1, block 3 = tile 1, gate 2: source offset 96 + 48 + 32.
            assert_eq!(dst[at(1, 48)], (96 + 48 + 32) as f32);
            assert_eq!(dst[at(0, 16)], 32.0); // row 0, block 1 = tile 0 gate 2
        }
    }

    #[test]
    fn sliced_gather_packs_each_slice_on_its_own() {
        // 5 rows of 2 panels (128 columns), value 1000 r + column; slices of 2 rows.
        let src: Vec<f32> = (0..5 * 128)
            .map(|v| (v / 128 * 1000 + v % 128) as f32)
            .collect();
        let b = BlockCols {
            base: src.as_ptr(),
            stride: 128,
            tile_stride: 16,
            pick: &[0],
            blocks: 8,
        };
        for striped in [false, true] {
            let mut dst = vec![f32::NAN; 5 * 128];
            // SAFETY: 2 panels of 5 rows.
            unsafe { gather_blocks_in(striped, &b, 5, 2, 0..2, dst.as_mut_ptr()) };
            for r in 0..5 {
                let (k0, n) = slice_of(r, 5, 2);
                assert_eq!((k0, n), (r / 2 * 2, if r < 4 { 2 } else { 1 }));
                for p in 0..2 {
                    for c in 0..64 {
                        let at = sliced_at(striped, (5, 2, 2), r, p, c);
                        assert_eq!(dst[at], (1000 * r + 64 * p + c) as f32, "row {r} panel {p}");
                    }
                }
            }
        }
    }

    #[test]
    fn gather_in_row_groups_covers_every_row_block_and_split() {
        // 45 rows (slices of 40 and 5: groups of 16, 16, 8 and one of 5) of 10 blocks,
        // so the third panel holds two blocks of zeros; gathered in two panel ranges,
        // as two team members do.
        let (rows, kc, stride) = (45, 40, 160);
        let src: Vec<f32> = (0..rows * stride)
            .map(|v| (v / stride * 1000 + v % stride) as f32)
            .collect();
        let b = BlockCols {
            base: src.as_ptr(),
            stride,
            tile_stride: 16,
            pick: &[0],
            blocks: 10,
        };
        assert_eq!(b.panels(), 3);
        for striped in [false, true] {
            let mut dst = vec![f32::NAN; 3 * rows * 64];
            // SAFETY: 3 panels of 45 rows; the two ranges are disjoint.
            unsafe {
                gather_blocks_in(striped, &b, rows, kc, 0..1, dst.as_mut_ptr());
                gather_blocks_in(striped, &b, rows, kc, 1..3, dst.as_mut_ptr());
            }
            for r in 0..rows {
                for p in 0..3 {
                    for c in 0..64 {
                        let col = 64 * p + c;
                        let want = if col < 160 {
                            (1000 * r + col) as f32
                        } else {
                            0.0
                        };
                        let at = sliced_at(striped, (rows, kc, 3), r, p, c);
                        assert_eq!(dst[at], want, "row {r} panel {p} column {c}");
                    }
                }
            }
        }
    }
}
