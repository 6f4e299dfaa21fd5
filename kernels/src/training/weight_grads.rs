//! The weight-gradient products of one layer and direction, after its time loop: for
//! each of the cell's [`GradJob`]s, pack the left operand transposed (`k` = the `T·B`
//! rows, contiguous; rows of steps a batch row did not run are zero) and the right
//! operand's 16-column blocks into panels, multiply over all rows at once, and copy
//! the result into the caller's gradient in PyTorch layout.

use super::workspace::Dims;
use crate::cells::backward::{GradJob, Left, Param, Right};
use crate::pack::runtime::{gather_blocks, BlockCols, RowMask, RowSource, Transpose, KC, WIDTH};
use crate::pack::LANES;
use crate::parallel::{Share, Team};
use crate::passes;
use crate::training::kernels::BackKernels;
use crate::training::profile::{Lap, Phase, PhaseClock};
use crate::training::LayerGradsMut;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Where the operands of one direction's products live.
pub(crate) struct Operands {
    /// The layer's input transposed, `[(width + 1), R]` (its last row ones), packed
    /// once per layer.
    pub(crate) x_t: *mut f32,
    pub(crate) width: usize,
    /// History rows of the states before each step (`R` rows of `pp` from the slot
    /// before step 0).
    pub(crate) h_prev: *const f32,
    /// The extra rows `[R, hp]`, the gate gradients of this direction (`[R]` rows of
    /// `zrow`), the projected LSTM's `∂h'` rows `[R, pp]`.
    pub(crate) ext: *const f32,
    pub(crate) dg: *const f32,
    pub(crate) dh_rows: *const f32,
    /// Scratch: another transposed left operand, the right panels, the output.
    pub(crate) left_t: *mut f32,
    pub(crate) right: *mut f32,
    pub(crate) out: *mut f32,
    /// Lengths (null: all full).
    pub(crate) lens: *const usize,
}

/// Where a job's product goes in the caller's gradients, published by the leader for
/// the team's copy-out (members read it after a barrier): the weight gradient (null:
/// none, e.g. a projection's when the caller did not ask) and the bias (null: none).
#[derive(Default)]
pub(crate) struct DestSlot {
    w: AtomicPtr<f32>,
    bias: AtomicPtr<f32>,
}

/// Runs `jobs` for one direction with gate count `g`, writing into `grads`.
///
/// # Safety
/// Every pointer of `o` covers the sizes `d` implies; only the leader dereferences
/// `grads`, and no one else uses the gradients it points to until the team ends.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn run(
    jobs: &[GradJob],
    o: &Operands,
    d: &Dims,
    g: usize,
    bk: &BackKernels,
    grads: *mut LayerGradsMut<'_>,
    slot: &DestSlot,
    (clock, lap): (&PhaseClock, &mut Lap),
    team: &Team<'_>,
) {
    // The right operand gathered last: jobs that share it (an LSTM's `∂W_ih` and
    // `∂W_hh` both take every gate's gradients) gather it once.
    let mut gathered = None;
    for job in jobs {
        let (left, rows) = match job.left {
            // The ones row is the last: a job without biases leaves it out.
            Left::Input => (o.x_t.cast_const(), o.width + usize::from(job.ones)),
            other => {
                let (base, stride, width) = match other {
                    Left::HPrev => (o.h_prev, d.pp, d.ho),
                    _ => (o.ext, d.hp, d.h),
                };
                let src = RowSource {
                    base,
                    stride,
                    width,
                };
                // Every member its share of the rows (distinct columns of `left_t`).
                let mine = team.share().of(d.r, LANES);
                let op = Transpose {
                    src,
                    rows: mine,
                    dst: o.left_t,
                    ld: d.r,
                    ones: job.ones,
                    // SAFETY: `lens` is null or holds `B` lengths (the caller's contract).
                    mask: unsafe { RowMask::lengths(o.lens, d.b) },
                };
                // SAFETY: `left_t` holds `(max(H, H_out) + 1) * R` floats; `bk` is
                // the detected ISA's table.
                unsafe { (bk.transpose)(op) };
                (o.left_t.cast_const(), width + usize::from(job.ones))
            }
        };
        if team.is_leader() {
            // SAFETY: only the leader dereferences `grads`; the pointers it publishes
            // stay valid while the caller's borrow of the gradients lasts (the team's
            // whole run), and nobody else uses them meanwhile.
            let (w, bias) = unsafe { destination(job, &mut *grads) };
            slot.w.store(w, Ordering::Relaxed);
            slot.bias.store(bias, Ordering::Relaxed);
        }
        let right = match job.right {
            Right::Gates(pick) => BlockCols {
                base: o.dg,
                stride: d.zrow,
                tile_stride: g * LANES,
                pick,
                blocks: d.hp / LANES * pick.len(),
            },
            Right::Ext => BlockCols {
                base: o.ext,
                stride: d.hp,
                tile_stride: LANES,
                pick: &[0],
                blocks: d.hp / LANES,
            },
            Right::DhRows => BlockCols {
                base: o.dh_rows,
                stride: d.pp,
                tile_stride: LANES,
                pick: &[0],
                blocks: d.pp / LANES,
            },
        };
        let panels = right.panels();
        // The panels are split over the team like the product (disjoint panels).
        if gathered != Some(job.right) {
            let mine = team.chunk(panels, panels);
            // SAFETY: `right` holds `panels_len(R, zs)` floats >= these panels.
            unsafe { gather_blocks(&right, d.r, KC, mine, o.right) };
            gathered = Some(job.right);
        }
        // The leader's transposed left operand and every member's panels are in.
        team.sync();
        clock.lap(lap, Phase::WeightOperands);
        let cols = panels * WIDTH;
        // SAFETY: the left rows hold `R` floats `R` apart, `right` the slice-major
        // panels gathered above, the output `rows * cols` floats.
        unsafe {
            passes::gemm_k_sliced(
                team,
                (bk.gemm, bk.gemm_add),
                (left, d.r, rows),
                o.right.cast_const(),
                d.r,
                panels,
                o.out,
                cols,
            )
        };
        clock.lap(lap, Phase::WeightProducts);
        // The unpadded columns: the gradient's rows in PyTorch layout.
        let useful = 2 * d.r * rows * job.gates.len() * units_of(job, d);
        clock.count(team, u64::try_from(useful).unwrap_or(u64::MAX));
        // The barrier that ended the product also published the destination.
        let (w, bias) = (
            slot.w.load(Ordering::Relaxed),
            slot.bias.load(Ordering::Relaxed),
        );
        // SAFETY: `w` and `bias` (when not null) are the caller's arrays for this job;
        // the members' shares of the blocks write distinct elements of `w`, and only
        // the leader writes `bias`.
        unsafe {
            copy_out(job, o.out, cols, rows, d, w, team.share());
            if team.is_leader() && !bias.is_null() {
                copy_bias(job, o.out, cols, rows, d, bias);
            }
        }
        team.sync();
        clock.lap(lap, Phase::WeightOperands);
    }
}

/// The caller's arrays a job's product goes to: the weight gradient (null when the
/// caller has none for it) and the bias (null when the job has no ones row or the
/// caller no bias gradient).
fn destination(job: &GradJob, g: &mut LayerGradsMut<'_>) -> (*mut f32, *mut f32) {
    let (w, bias): (Option<&mut [f32]>, Option<&mut [f32]>) = match job.param {
        Param::Input => (Some(&mut *g.dw_ih), g.db_ih.as_deref_mut()),
        Param::Recurrent => (Some(&mut *g.dw_hh), g.db_hh.as_deref_mut()),
        Param::Projection => (g.dw_hr.as_deref_mut(), None),
    };
    let raw = |v: Option<&mut [f32]>| v.map_or(std::ptr::null_mut(), <[f32]>::as_mut_ptr);
    let w = raw(w);
    let bias = if job.ones && !w.is_null() {
        raw(bias)
    } else {
        std::ptr::null_mut()
    };
    (w, bias)
}

/// Units (rows per gate) of a job's gradient.
fn units_of(job: &GradJob, d: &Dims) -> usize {
    match job.param {
        Param::Projection => d.ho,
        _ => d.h,
    }
}

/// Copies `share` of a product's output (`rows` x `cols`, columns in the job's block
/// order) into the caller's gradient `w` (PyTorch layout: row `gate * units + unit`,
/// `rows - ones` columns). Nothing when `w` is null.
///
/// # Safety
/// `out` holds `rows * cols` floats; `w` (when not null) the job's whole gradient.
unsafe fn copy_out(
    job: &GradJob,
    out: *const f32,
    cols: usize,
    rows: usize,
    d: &Dims,
    w: *mut f32,
    share: Share,
) {
    if w.is_null() {
        return;
    }
    let width = rows - usize::from(job.ones);
    let units = units_of(job, d);
    let n = job.gates.len();
    let blocks = cols / LANES;
    // A transpose in tiles of `TILE_ROWS` output rows by `TILE_BLOCKS` 16-column blocks,
    // through `tile`: the tile's rows are copied in whole (512 bytes each), then each
    // of its columns is written out as a run of consecutive `w` values. (Read straight
    // from the output, column by column over all rows, every read was a cache miss: 7%
    // of a batch-64 LSTM training step. Tiles of 16 rows by one block touched 32 pages
    // per KiB moved: 8.8 ms per product of a 1024-unit LSTM, 5.5 ms in 64 x 8 tiles.
    // Those tiles still read each column from the output, and at a power-of-two
    // `cols` the tile's rows share one L1 set, so each of 16 lanes read every line
    // again: 9-10 ms of a 16 x 512 LSTM's 120-140 ms training step, 1 thread, avx2,
    // Zen 3; 2.7-2.9 ms through `tile`, 3.2-4.1 with the scalar transpose of then per
    // block. `pack::runtime::Transpose`'s register blocks, in 16-row strips over every
    // destination row, were slower in place: 7.3-16 ms against this loop's 3.1-14 per
    // 1024-unit gradient, Xeon model 167, avx512.)
    const TILE_ROWS: usize = 32;
    const TILE_BLOCKS: usize = 8;
    let mut tile = [[0.0f32; TILE_BLOCKS * LANES]; TILE_ROWS];
    let mine = share.of(blocks, TILE_BLOCKS);
    for q0 in mine.clone().step_by(TILE_BLOCKS) {
        let q1 = mine.end.min(q0 + TILE_BLOCKS);
        for i0 in (0..width).step_by(TILE_ROWS) {
            let i1 = width.min(i0 + TILE_ROWS);
            for (i, row) in (i0..i1).zip(tile.iter_mut()) {
                // SAFETY: `(i, q0 * 16 .. q1 * 16)` lies inside the output (i < rows).
                unsafe {
                    let from = out.add(i * cols + q0 * LANES);
                    std::ptr::copy_nonoverlapping(from, row.as_mut_ptr(), (q1 - q0) * LANES)
                };
            }
            for q in q0..q1 {
                let (unit0, gate) = (q / n * LANES, job.gates[q % n]);
                let col0 = (q - q0) * LANES;
                for lane in 0..units.saturating_sub(unit0).min(LANES) {
                    // SAFETY: row `gate * units + unit0 + lane` of `w` (`width` floats;
                    // the unit is below `units`), columns i0..i1 < width.
                    let dst = unsafe { w.add((gate * units + unit0 + lane) * width + i0) };
                    for (j, row) in tile[..i1 - i0].iter().enumerate() {
                        // SAFETY: as above, column `i0 + j < i1`.
                        unsafe { *dst.add(j) = row[col0 + lane] };
                    }
                }
            }
        }
    }
}

/// Copies the bias row (the ones row, row `rows - 1`) of a product's output into the
/// caller's bias gradient `b` (`[G * units]`).
///
/// # Safety
/// `out` holds `rows * cols` floats; `b` the job's whole bias gradient.
unsafe fn copy_bias(
    job: &GradJob,
    out: *const f32,
    cols: usize,
    rows: usize,
    d: &Dims,
    b: *mut f32,
) {
    let width = rows - 1;
    let units = units_of(job, d);
    let n = job.gates.len();
    for q in 0..cols / LANES {
        let (tile, gate) = (q / n, job.gates[q % n]);
        for lane in 0..LANES {
            let unit = tile * LANES + lane;
            if unit < units {
                // SAFETY: the ones row is row `width` of the output; `b` holds G * units.
                unsafe { *b.add(gate * units + unit) = *out.add(width * cols + q * LANES + lane) };
            }
        }
    }
}
