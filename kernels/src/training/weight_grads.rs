//! The weight-gradient products of one layer and direction, after its time loop: for
//! each of the cell's [`GradJob`]s, transpose the gradient side (gate gradients or a
//! cell's gradient rows; `k` = the `T·B` rows, contiguous) into rows in the caller's
//! order (`gate · units + unit`), gather the activation side (the layer's input, the
//! states before each step, a cell's extra rows) into panels, and multiply over all
//! rows at once straight into the caller's gradient (through a padded buffer when its
//! rows are not whole panels). The bias gradient is the transposed rows' sums.

use super::workspace::Dims;
use crate::cells::backward::{Acts, GradJob, Grads, Param};
use crate::pack::runtime::{gather_rows, sum_rows, RowMask, RowSource, Transpose, KC, WIDTH};
use crate::pack::LANES;
use crate::parallel::{Share, Team};
use crate::passes;
use crate::training::kernels::BackKernels;
use crate::training::profile::{Lap, Phase, PhaseClock};
use crate::training::LayerGradsMut;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Where the operands of one direction's products live.
pub(crate) struct Operands {
    /// The layer's input rows (`width` values, `width` apart).
    pub(crate) x: *const f32,
    pub(crate) width: usize,
    /// History rows of the states before each step (`R` rows of `pp` from the slot
    /// before step 0).
    pub(crate) h_prev: *const f32,
    /// The extra rows `[R, hp]`, the gate gradients of this direction (`[R]` rows of
    /// `zrow`), the projected LSTM's `∂h'` rows `[R, pp]`.
    pub(crate) ext: *const f32,
    pub(crate) dg: *const f32,
    pub(crate) dh_rows: *const f32,
    /// Scratch: the transposed gradient side, the activation side's panels, the
    /// padded output.
    pub(crate) left_t: *mut f32,
    pub(crate) right: *mut f32,
    pub(crate) out: *mut f32,
    /// Lengths (null: all full).
    pub(crate) lens: *const usize,
}

/// Where a job's product goes in the caller's gradients, published by the leader for
/// the team's product and sums (members read it after a barrier): the weight gradient (null:
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
    // SAFETY: `lens` is null or holds `B` lengths (the caller's contract).
    let mask = unsafe { RowMask::lengths(o.lens, d.b) };
    // The gradient side transposed last: jobs that share it (an LSTM's `∂W_ih` and
    // `∂W_hh` both take every gate's gradients) transpose it once.
    let mut transposed = None;
    for job in jobs {
        let units = units_of(job, d);
        let n = job.gates.len();
        // Output rows `gates[j] * units + u` for gates `gates[0] ..` in order: the
        // product's rows `j * units + u` from the gradient's row `gates[0] * units`.
        debug_assert!(job.gates.windows(2).all(|w| w[1] == w[0] + 1));
        if transposed != Some(job.grads) {
            // Every member its share of the `T·B` rows (distinct columns of `left_t`).
            let mine = team.share().of(d.r, LANES);
            for j in 0..n {
                let src = match job.grads {
                    Grads::Gates(pick) => RowSource {
                        base: o.dg.wrapping_add(pick[j] * LANES),
                        stride: d.zrow,
                        width: units,
                        block_stride: g * LANES,
                    },
                    Grads::Ext => RowSource::plain(o.ext, d.hp, units),
                    Grads::DhRows => RowSource::plain(o.dh_rows, d.pp, units),
                };
                let op = Transpose {
                    mask,
                    ..Transpose::plain(
                        src,
                        mine.clone(),
                        o.left_t.wrapping_add(j * units * d.r),
                        d.r,
                    )
                };
                // SAFETY: `left_t` holds `max(G · H, H_out) · R` floats; the source
                // rows hold `units` values in their blocks; `bk` is the detected
                // ISA's table.
                unsafe { (bk.transpose)(op) };
            }
            transposed = Some(job.grads);
        }
        if team.is_leader() {
            // SAFETY: only the leader dereferences `grads`; the pointers it publishes
            // stay valid while the caller's borrow of the gradients lasts (the team's
            // whole run), and nobody else uses them meanwhile.
            let (w, bias) = unsafe { destination(job, &mut *grads) };
            slot.w.store(w, Ordering::Relaxed);
            slot.bias.store(bias, Ordering::Relaxed);
        }
        // The widths `any_staged` lists.
        let (base, stride, width) = match job.acts {
            Acts::Input => (o.x, o.width, o.width),
            Acts::HPrev => (o.h_prev, d.pp, d.ho),
            Acts::Ext => (o.ext, d.hp, d.h),
        };
        let panels = width.div_ceil(WIDTH);
        // The panels are split over the team like the product (disjoint panels).
        let mine = team.chunk(panels, panels);
        // SAFETY: `right` holds `panels_len(R, width)` floats; the rows hold `width`.
        unsafe {
            gather_rows(
                RowSource::plain(base, stride, width),
                mask,
                d.r,
                KC,
                mine,
                o.right,
            )
        };
        // The transposed rows, every member's panels and the destination are in.
        team.sync();
        clock.lap(lap, Phase::WeightOperands);
        let (w, bias) = (
            slot.w.load(Ordering::Relaxed),
            slot.bias.load(Ordering::Relaxed),
        );
        let rows = n * units;
        if w.is_null() {
            // No bias either (`destination`): nothing to compute.
            team.sync();
            continue;
        }
        // Straight into the caller's rows when they are whole panels.
        let direct = !staged(width);
        let cols = panels * WIDTH;
        let (out, out_stride) = if direct {
            // SAFETY: the gradient holds `G · units` rows of `width`.
            (unsafe { w.add(job.gates[0] * units * width) }, width)
        } else {
            (o.out, cols)
        };
        // SAFETY: the left rows hold `R` floats `R` apart, `right` the slice-major
        // panels gathered above, the output `rows` rows of `out_stride >= cols`
        // (direct: `cols == width`).
        unsafe {
            passes::gemm_k_sliced(
                team,
                (bk.gemm, bk.gemm_add),
                (o.left_t, d.r, rows),
                o.right.cast_const(),
                d.r,
                panels,
                out,
                out_stride,
            )
        };
        clock.lap(lap, Phase::WeightProducts);
        let useful = 2 * d.r * rows * width;
        clock.count(team, u64::try_from(useful).unwrap_or(u64::MAX));
        if !bias.is_null() {
            // SAFETY: `left_t` holds `rows` rows of `R`; `bias` the job's whole bias
            // gradient, whose rows from `gates[0] * units` the members share.
            unsafe {
                sum_rows(
                    o.left_t,
                    d.r,
                    rows,
                    bias.add(job.gates[0] * units),
                    team.share(),
                )
            };
        }
        if !direct {
            // SAFETY: `out` holds `rows` rows of `cols >= width`; the gradient's rows
            // from `gates[0] * units`, which the members share.
            unsafe {
                let to = w.add(job.gates[0] * units * width);
                copy_rows(o.out, cols, to, width, rows, team.share());
            }
        }
        team.sync();
        clock.lap(lap, Phase::WeightOperands);
    }
}

/// Whether a gradient with rows `width` wide goes through the padded output (its rows
/// are not whole panels of 64) rather than straight from the product.
fn staged(width: usize) -> bool {
    !width.is_multiple_of(WIDTH)
}

/// Whether any product of a call with dims `d` goes through the padded output: the
/// widths `run` takes (the layer's input, `I` or `D · H_out`; `H_out`; `H`), so that
/// the scratch reserves it exactly when `run` writes it. (`D · H_out` is cut only if
/// `H_out` is, so it adds nothing to the list.)
pub(crate) fn any_staged(d: &Dims) -> bool {
    [d.i, d.ho, d.h].into_iter().any(staged)
}

/// Copies this member's share of `rows` rows of `width` floats from `src` (`stride`
/// apart) to `dst` (`width` apart).
///
/// # Safety
/// `src` holds `rows * stride` floats, `dst` `rows * width`.
unsafe fn copy_rows(
    src: *const f32,
    stride: usize,
    dst: *mut f32,
    width: usize,
    rows: usize,
    share: Share,
) {
    for i in share.of(rows, 1) {
        // SAFETY: row `i < rows` of both.
        unsafe { std::ptr::copy_nonoverlapping(src.add(i * stride), dst.add(i * width), width) };
    }
}

/// The caller's arrays a job's product goes to: the weight gradient (null when the
/// caller has none for it) and the bias (null when the job has no bias (`ones`) or the
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Activations;
    use rnn_reference::testkit::variants::{lstm, GRU, LSTM};
    use rnn_reference::{CellKind, Direction, RnnConfig, SeqShape};

    /// The padded output is reserved exactly when some gradient's rows are not whole
    /// panels: the first layer's input, the recurrent (or projected) state, the cell's
    /// units.
    #[test]
    fn padded_output_only_for_cut_widths() {
        let staged = |cell: CellKind, i: usize, h: usize| {
            let cfg = RnnConfig::new(cell, i, h)
                .with_layers(2)
                .with_direction(Direction::Bidirectional);
            let d = Dims::new(&cfg, SeqShape::new(3, 2), Activations::Keep).unwrap();
            any_staged(&d)
        };
        assert!(!staged(LSTM, 64, 128));
        assert!(!staged(GRU, 128, 64));
        assert!(!staged(lstm(false, Some(64)), 64, 128));
        assert!(staged(LSTM, 65, 128));
        assert!(staged(GRU, 64, 96));
        // H_out = 32: the second layer's input (64) is whole, `∂W_hh`'s rows are not.
        assert!(staged(lstm(true, Some(32)), 64, 128));
        // H = 100, projected to 64: `∂W_hr`'s rows (100) are cut.
        assert!(staged(lstm(false, Some(64)), 64, 100));
    }
}
