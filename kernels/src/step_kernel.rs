//! One recurrent step of one direction: the cell's passes in order, each split over
//! threads by panels. Shared by the sequence driver and the single-step API.

use std::ops::Range;

use rnn_reference::{CellKind, RnnConfig};

use crate::arch::{DotGemmArgs, DotGemmFn, GemmArgs, Kernels, StepArgs, StepFn};
use crate::element::WeightLoad;
use crate::generic::epilogue::StepPtrs;
use crate::generic::phase::Rows;
use crate::layer::PackedDirection;
use crate::pack::{padded, PairPanels, Panels};
use crate::parallel::{threads_for, Team};

/// State rows of one direction; strides are padded so kernels can store whole panels.
#[derive(Clone, Copy)]
pub(crate) struct StateBufs {
    pub(crate) h_prev: *mut f32,
    pub(crate) h_next: *mut f32,
    pub(crate) c_prev: *mut f32,
    pub(crate) c_next: *mut f32,
    pub(crate) aux: *mut f32,
    pub(crate) aux2: *mut f32,
}

impl StateBufs {
    pub(crate) fn swap(&mut self) {
        std::mem::swap(&mut self.h_prev, &mut self.h_next);
        std::mem::swap(&mut self.c_prev, &mut self.c_next);
    }
}

/// Element counts of the state buffers for `batch` rows: `(h, c, aux)` each, where `h`
/// rows have stride `padded(H_out)` and `c`/`aux` rows `padded(H)`.
pub(crate) fn state_sizes(cfg: &RnnConfig, batch: usize) -> (usize, usize, usize) {
    let hs = padded(cfg.hidden_size);
    (batch * padded(cfg.output_size()), batch * hs, batch * hs)
}

/// Runs `f` on this member's share of `panels` panels (split so each active member gets
/// enough of the `work` multiply-adds), then meets the team. Members get disjoint
/// panels, i.e. disjoint output columns.
fn share_panels(team: &Team<'_>, work: usize, panels: usize, f: impl FnOnce(Range<usize>)) {
    let active = threads_for(work, panels, usize::MAX);
    let mine = team.chunk(panels, active);
    if !mine.is_empty() {
        f(mine);
    }
    team.sync();
}

/// Runs this member's share of `a x w` through `f`, then meets the team.
///
/// # Safety
/// `args` must describe buffers valid for every panel of `args.w`.
unsafe fn pass<W: WeightLoad>(f: StepFn<W>, args: StepArgs<W>, zigzag: bool, team: &Team<'_>) {
    let panels = args.w.panels;
    let work = args.nrows * args.w.k * panels * 64;
    // SAFETY: forwarded; members write disjoint panels.
    share_panels(team, work, panels, |mine| unsafe { f(&args, mine, zigzag) });
}

/// This member's share of `out = a x w (+ bias)` (split by panels), then meets the
/// team.
///
/// # Safety
/// `a` must hold `nrows` rows of `w.k()` floats, `out` `nrows` rows of `out_stride >=
/// w.cols()` floats, `bias` (or null) `w.cols()` floats.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm<W: WeightLoad>(
    k: &Kernels<W>,
    a: Rows,
    nrows: usize,
    w: &Panels<W>,
    out: *mut f32,
    out_stride: usize,
    bias: *const f32,
    team: &Team<'_>,
) {
    let args = GemmArgs {
        a,
        nrows,
        w: w.view(),
        out,
        out_stride,
        bias,
    };
    let work = nrows * w.k() * w.cols();
    // SAFETY: forwarded; members write disjoint column ranges.
    share_panels(team, work, w.panels(), |mine| unsafe {
        (k.gemm)(&args, mine, false)
    });
}

/// This member's share of the `vdpbf16ps` input projection `out = a x w (+ bias)` (split
/// by panels), then meets the team.
///
/// # Safety
/// `f` must come from [`dot_bf16_kernel`](crate::arch::dot_bf16_kernel); `a` must hold
/// `nrows` rows of `w.k()` bf16 values, `out` `nrows` rows of `out_stride >= w.cols()`
/// floats, `bias` (or null) `w.cols()` floats.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_dot(
    f: DotGemmFn,
    a: Rows<u16>,
    nrows: usize,
    w: &PairPanels,
    out: *mut f32,
    out_stride: usize,
    bias: *const f32,
    team: &Team<'_>,
) {
    let args = DotGemmArgs {
        a,
        nrows,
        w: w.view(),
        out,
        out_stride,
        bias,
    };
    // Half the instructions of the f32 product, so count half the work.
    let work = nrows * w.k() * w.cols() / 2;
    // SAFETY: forwarded; members write disjoint column ranges.
    share_panels(team, work, w.panels(), |mine| unsafe { f(&args, mine) });
}

/// Multiply-adds of one step of one direction for `batch` rows (for sizing a team).
pub(crate) fn step_fmas(cfg: &RnnConfig, batch: usize) -> usize {
    let (g, h, ho) = (cfg.gates(), cfg.hidden_size, cfg.output_size());
    batch
        .saturating_mul(g * h)
        .saturating_mul(ho)
        .saturating_add(batch.saturating_mul(h).saturating_mul(ho))
}

/// One step for `batch` rows, by every member of `team` (each pass ends at a
/// barrier): reads `pre` (this step's input projection, `batch` rows
/// of `PackedDirection::pre_stride`), `h_prev`, `c_prev`; writes `h_next`, `c_next`.
///
/// # Safety
/// Buffers as described by [`state_sizes`] for `batch` rows, `pre` as above.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn step<W: WeightLoad>(
    k: &Kernels<W>,
    cfg: &RnnConfig,
    set: &PackedDirection<W>,
    batch: usize,
    pre: *const f32,
    b: &StateBufs,
    zigzag: bool,
    team: &Team<'_>,
) {
    let hs = padded(cfg.hidden_size);
    let ps = padded(cfg.output_size());
    let s = StepPtrs {
        pre,
        pre_stride: PackedDirection::<W>::pre_stride(cfg),
        h_prev: b.h_prev,
        h_next: b.h_next,
        h_stride: ps,
        c_prev: b.c_prev,
        c_next: b.c_next,
        c_stride: hs,
        aux: std::ptr::null_mut(),
        aux2: b.aux2,
        aux_stride: hs,
        peephole: set
            .peephole
            .as_ref()
            .map_or(std::ptr::null(), |p| p.as_slice().as_ptr()),
        b_hn: set
            .b_hn
            .as_ref()
            .map_or(std::ptr::null(), |p| p.as_slice().as_ptr()),
        clip: cfg.clip,
    };
    let h_rows = Rows::strided(b.h_prev, ps, batch);
    let aux_rows = Rows::strided(b.aux, hs, batch);
    let args = |s: StepPtrs, a: Rows, w: &Panels<W>| StepArgs {
        a,
        nrows: batch,
        w: w.view(),
        s,
        relu: matches!(
            cfg.cell,
            CellKind::Rnn {
                activation: rnn_reference::RnnActivation::Relu
            }
        ),
    };
    // SAFETY: (all passes) the caller sized every buffer per `state_sizes`; the packed
    // matrices' `k` match the row widths read (H_out for h, H for aux).
    unsafe {
        match cfg.cell {
            CellKind::Rnn { .. } => pass(k.rnn, args(s, h_rows, &set.w_hh), zigzag, team),
            CellKind::Lstm { proj_size, .. } => {
                let proj = proj_size.is_some();
                let s1 = StepPtrs {
                    aux: if proj { b.aux } else { std::ptr::null_mut() },
                    ..s
                };
                pass(k.lstm, args(s1, h_rows, &set.w_hh), zigzag, team);
                if let Some(w_hr) = &set.w_hr {
                    gemm(
                        k,
                        aux_rows,
                        batch,
                        w_hr,
                        b.h_next,
                        ps,
                        std::ptr::null(),
                        team,
                    );
                }
            }
            CellKind::Gru {
                linear_before_reset: true,
            } => pass(k.gru_lbr, args(s, h_rows, &set.w_hh), zigzag, team),
            CellKind::Gru {
                linear_before_reset: false,
            } => {
                let s1 = StepPtrs { aux: b.aux, ..s };
                pass(k.gru_rz, args(s1, h_rows, &set.w_hh), zigzag, team);
                if let Some(w_hn) = &set.w_hn {
                    pass(k.gru_n, args(s1, aux_rows, w_hn), zigzag, team);
                }
            }
        }
    }
}
