//! The weight-gradient products of one layer and direction, after its time loop: for
//! each of the cell's [`GradJob`]s, pack the left operand transposed (`k` = the `T·B`
//! rows, contiguous; rows of steps a batch row did not run are zero) and the right
//! operand's 16-column blocks into panels, multiply over all rows at once, and copy
//! the result into the caller's gradient in PyTorch layout.

use super::workspace::Dims;
use crate::cells::backward::{GradJob, Left, Param, Right};
use crate::pack::runtime::{gather_blocks, transpose_rows, BlockCols, RowSource, KC, WIDTH};
use crate::pack::LANES;
use crate::parallel::Team;
use crate::passes;
use crate::training::kernels::BackKernels;
use crate::training::LayerGradsMut;

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

impl Operands {
    /// Whether row `r` (step `r / B`, batch row `r % B`) ran.
    fn active(&self, d: &Dims, r: usize) -> bool {
        // SAFETY: `lens` (when not null) holds `B` lengths.
        self.lens.is_null() || r / d.b < unsafe { *self.lens.add(r % d.b) }
    }
}

/// Runs `jobs` for one direction with gate count `g`, writing into `grads`.
///
/// # Safety
/// Every pointer of `o` covers the sizes `d` implies; only the leader touches `grads`.
pub(crate) unsafe fn run(
    jobs: &[GradJob],
    o: &Operands,
    d: &Dims,
    g: usize,
    bk: &BackKernels,
    grads: *mut LayerGradsMut<'_>,
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
                if team.is_leader() {
                    let src = RowSource {
                        base,
                        stride,
                        width,
                    };
                    // SAFETY: `left_t` holds `(max(H, H_out) + 1) * R` floats.
                    unsafe {
                        transpose_rows(src, 0..d.r, o.left_t, d.r, job.ones, |r| o.active(d, r))
                    };
                }
                (o.left_t.cast_const(), width + usize::from(job.ones))
            }
        };
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
        if team.is_leader() {
            // SAFETY: only the leader writes the caller's gradients.
            unsafe { copy_out(job, o.out, cols, rows, d, &mut *grads) };
        }
        team.sync();
    }
}

/// Copies a product's output (`rows` x `cols`, columns in the job's block order) into
/// the caller's gradient arrays.
///
/// # Safety
/// `out` holds `rows * cols` floats.
unsafe fn copy_out(
    job: &GradJob,
    out: *const f32,
    cols: usize,
    rows: usize,
    d: &Dims,
    g: &mut LayerGradsMut<'_>,
) {
    let width = rows - usize::from(job.ones);
    let (w, bias, units): (&mut [f32], Option<&mut [f32]>, usize) = match job.param {
        Param::Input => (&mut *g.dw_ih, g.db_ih.as_deref_mut(), d.h),
        Param::Recurrent => (&mut *g.dw_hh, g.db_hh.as_deref_mut(), d.h),
        Param::Projection => match g.dw_hr.as_deref_mut() {
            Some(w) => (w, None, d.ho),
            None => return,
        },
    };
    let n = job.gates.len();
    let blocks = cols / LANES;
    // A transpose in tiles of `TILE_ROWS` output rows by `TILE_BLOCKS` 16-column blocks:
    // each block's column of the tile becomes runs of up to 64 consecutive `w` values.
    // (Column by column over all rows, every read was a cache miss: 7% of a batch-64
    // LSTM training step. Tiles of 16 rows by one block touched 32 pages per KiB
    // moved: 8.8 ms per product of a 1024-unit LSTM, 5.5 ms in these tiles.)
    const TILE_ROWS: usize = 64;
    const TILE_BLOCKS: usize = 8;
    for q0 in (0..blocks).step_by(TILE_BLOCKS) {
        for i0 in (0..width).step_by(TILE_ROWS) {
            let i1 = width.min(i0 + TILE_ROWS);
            for q in q0..blocks.min(q0 + TILE_BLOCKS) {
                let (tile, gate) = (q / n, job.gates[q % n]);
                for lane in 0..LANES {
                    let unit = tile * LANES + lane;
                    if unit >= units {
                        break;
                    }
                    let dst = &mut w[(gate * units + unit) * width..][i0..i1];
                    for (k, v) in dst.iter_mut().enumerate() {
                        // SAFETY: (i0 + k, q*16 + lane) inside the output.
                        *v = unsafe { *out.add((i0 + k) * cols + q * LANES + lane) };
                    }
                }
            }
        }
    }
    if let (true, Some(b)) = (job.ones, bias) {
        for q in 0..blocks {
            let (tile, gate) = (q / n, job.gates[q % n]);
            for lane in 0..LANES {
                let unit = tile * LANES + lane;
                if unit < units {
                    // SAFETY: the ones row is row `width` of the output.
                    b[gate * units + unit] = unsafe { *out.add(width * cols + q * LANES + lane) };
                }
            }
        }
    }
}
