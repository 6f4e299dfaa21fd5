//! A product shared by a team: each member takes its share of the panels (disjoint
//! output columns), runs it through the backend, and the team meets at a barrier.
//! Used by the cells' recurrent passes and by the drivers' input projections.

use std::ops::Range;

use crate::arch::{Blocked, DotFn, DotJob};
use crate::element::Storage;
use crate::kernel::walk::Job;
use crate::kernel::{Epilogue, Store};
use crate::parallel::{threads_for, Team};

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

/// One recurrent pass: this member's share of `job` through `B`'s micro-kernel and
/// the cell epilogue `epi`, walking the panels backwards when `zigzag`; then meets the
/// team.
///
/// # Safety
/// `B` came from `arch::dispatch`; `job` and `epi` describe buffers valid for every
/// panel of `job.w` (see `walk::run`).
pub(crate) unsafe fn pass<B, W, E, const NP: usize>(
    team: &Team<'_>,
    job: &Job<W, NP>,
    zigzag: bool,
    epi: &E,
) where
    B: Blocked<NP>,
    W: Storage,
    E: Epilogue<B::V, NP>,
{
    let panels = job.w.panels;
    // Work in units of 64-column panels whatever the width: what the split has been
    // tuned with.
    let work = job.nrows * job.w.k * panels * 64;
    // SAFETY: forwarded; members write disjoint panels.
    share_panels(team, work, panels, |mine| unsafe {
        B::panels(job, mine, zigzag, epi)
    });
}

/// This member's share of the plain product `epi.out = job.a x job.w (+ epi.bias)`
/// (split by panels), then meets the team.
///
/// # Safety
/// `B` came from `arch::dispatch`; `job.a` holds `job.nrows` rows of `job.w.k` floats,
/// `epi.out` `job.nrows` rows of `epi.stride >=` the packed columns, `epi.bias` (or
/// null) as many floats.
pub(crate) unsafe fn gemm<B: Blocked<4>, W: Storage>(
    team: &Team<'_>,
    job: &Job<W, 4>,
    epi: &Store,
) {
    let work = job.nrows * job.w.k * job.w.panels * 64;
    // SAFETY: forwarded; members write disjoint column ranges.
    share_panels(team, work, job.w.panels, |mine| unsafe {
        B::panels(job, mine, false, epi)
    });
}

/// This member's share of the `vdpbf16ps` input projection (split by panels), then
/// meets the team.
///
/// # Safety
/// `f` came from a dispatched backend's `dot_bf16`; `job` and `epi` as for [`gemm`],
/// with bf16 rows.
pub(crate) unsafe fn gemm_dot(team: &Team<'_>, f: DotFn, job: &DotJob, epi: &Store) {
    // Half the instructions of the f32 product, so count half the work.
    let work = job.nrows * job.w.k * job.w.panels * 64 / 2;
    // SAFETY: forwarded; members write disjoint column ranges.
    share_panels(team, work, job.w.panels, |mine| unsafe {
        f(job, mine, epi)
    });
}
