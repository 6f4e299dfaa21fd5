//! A product shared by a team: each member takes its share of the panels (disjoint
//! output columns), runs it through the backend, and the team meets at a barrier.
//! Used by the cells' recurrent passes and by the drivers' input projections.

use std::ops::Range;

use crate::arch::{Backend, Blocked, DotFn, DotJob};
use crate::element::Storage;
use crate::kernel::quantize::{params, QuantizeOp, RangeOp};
use crate::kernel::walk::Job;
use crate::kernel::walk_i8::{Job8, RowQuant};
use crate::kernel::{AddStore, Epilogue, Rows, Store};
use crate::pack::runtime::{slice_of, Transpose, TransposeBlocks, KC, WIDTH};
use crate::pack::PanelsView;
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
    B: Backend + Blocked<NP>,
    W: Storage,
    E: Epilogue<B::V, NP>,
{
    if W::QUANTIZED {
        // SAFETY: forwarded.
        return unsafe { pass_i8::<B, W, E, NP>(team, job, zigzag, epi) };
    }
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
/// (`Store`; `AddStore` adds it to `epi.out`), split by panels, then meets the team.
///
/// # Safety
/// `B` came from `arch::dispatch`; `job.a` holds `job.nrows` rows of `job.w.k` floats,
/// `epi.out` `job.nrows` rows of `epi.stride >=` the packed columns, `epi.bias` (or
/// null) as many floats.
pub(crate) unsafe fn gemm<B: Backend, W: Storage, E: Epilogue<B::V, 4>>(
    team: &Team<'_>,
    job: &Job<W, 4>,
    epi: &E,
) {
    if W::QUANTIZED {
        // SAFETY: forwarded.
        return unsafe { pass_i8::<B, W, E, 4>(team, job, false, epi) };
    }
    let work = job.nrows * job.w.k * job.w.panels * 64;
    // SAFETY: forwarded; members write disjoint column ranges.
    share_panels(team, work, job.w.panels, |mine| unsafe {
        B::panels(job, mine, false, epi)
    });
}

/// A weight-gradient-style product `out = a × right` whose `k` runs in slices of
/// [`KC`]: the `nrows` left rows at `a + i · a_stride` (`k` floats each), the right
/// operand `f32` panels in `gather_blocks`' slice-major layout (`panels` of them); the
/// first slice stored by `gemm`, each later one added by `gemm_add`, in order (the same
/// sums for any thread count). Every member of the team calls it.
///
/// # Safety
/// `gemm` and `gemm_add` came from a dispatched backend; `a` holds `nrows` rows of `k`
/// floats `a_stride` apart, `right` `panels · 64 · k` floats, `out` `nrows` rows of
/// `stride >= panels · 64` floats.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_k_sliced(
    team: &Team<'_>,
    (gemm, gemm_add): (GemmF32, GemmAddF32),
    (a, a_stride, nrows): (*const f32, usize, usize),
    right: *const f32,
    k: usize,
    panels: usize,
    out: *mut f32,
    stride: usize,
) {
    for k0 in (0..k).step_by(KC) {
        let (_, kc) = slice_of(k0, k, KC);
        let job = Job {
            a: Rows::strided(a.wrapping_add(k0), a_stride, nrows),
            nrows,
            w: PanelsView {
                // Slice `k0 / KC` of the panels (`gather_blocks`' layout).
                ptr: right.wrapping_add(k0 * panels * WIDTH),
                k: kc,
                panels,
                quant: None,
                striped: crate::pack::runtime::striped(),
            },
        };
        // SAFETY: the caller's contract: the slice's rows and panels lie inside `a`
        // and `right`, the output inside `out`; each product ends in a barrier.
        unsafe {
            if k0 == 0 {
                let store = Store {
                    out,
                    stride,
                    bias: std::ptr::null(),
                };
                gemm(team, &job, &store)
            } else {
                gemm_add(team, &job, &AddStore { out, stride })
            }
        }
    }
}

/// A team's plain product with a bias ([`gemm`] with [`Store`]).
pub(crate) type GemmFn<W> = unsafe fn(&Team<'_>, &Job<W, 4>, &Store);
/// The `f32` product that stores ([`gemm`] with [`Store`]).
pub(crate) type GemmF32 = GemmFn<f32>;
/// The `f32` product that adds ([`gemm`] with [`AddStore`]).
pub(crate) type GemmAddF32 = unsafe fn(&Team<'_>, &Job<f32, 4>, &AddStore);

/// A runtime transpose ([`Transpose`]) through one path's vector type.
pub(crate) type TransposeFn = unsafe fn(Transpose);

/// Runs `op` with backend `B`: the entry a dispatch table keeps as its [`TransposeFn`].
///
/// # Safety
/// `B` came from `arch::dispatch`; `op` meets [`Transpose::run`]'s contract.
pub(crate) unsafe fn transpose<B: Backend>(op: Transpose) {
    // SAFETY: forwarded.
    unsafe { B::run_op(op) }
}

/// Runs `op` with backend `B`: the entry a dispatch table keeps as its
/// [`TransposeBlocksFn`](crate::pack::runtime::TransposeBlocksFn).
///
/// # Safety
/// `B` came from `arch::dispatch`; `op` meets [`TransposeBlocks::run`]'s contract.
pub(crate) unsafe fn transpose_blocks<B: Backend>(op: TransposeBlocks) {
    // SAFETY: forwarded.
    unsafe { B::run_op(op) }
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

/// [`pass`] (and [`gemm`]) for int8 panels: the team quantizes the job's rows into
/// their scratch (`job.a.q8`), split by rows among the members: each row with its own
/// range, or all with the range of every row, which the leader takes first and leaves
/// in the parameter slot past the rows for the others to read after a barrier; meets,
/// then each member runs its share of the integer product, whose exact sums are scaled
/// into the `f32` tiles `epi` takes; then the team meets again.
///
/// # Safety
/// As for [`pass`]; `job.w` holds int8 codes (`W::QUANTIZED`) with their column data,
/// and `job.a.q8` has room for `nrows` rows of `4 · ceil(k / 4)` codes and `nrows + 1`
/// rows' parameters.
unsafe fn pass_i8<B, W, E, const NP: usize>(
    team: &Team<'_>,
    job: &Job<W, NP>,
    zigzag: bool,
    epi: &E,
) where
    B: Backend,
    W: Storage,
    E: Epilogue<B::V, NP>,
{
    // The drivers give every int8 job its scratch and every int8 panel its column
    // data; a missing one is a bug in this crate, never a caller's input.
    let q8 = job.a.q8.expect("int8 product without operand scratch");
    let q = job.w.quant.expect("int8 panels without column data");
    let (k, nrows) = (job.w.k, job.nrows);
    let k4 = k.div_ceil(4);
    let stride = 4 * k4;
    assert!(
        nrows * stride <= q8.codes_len && nrows < q8.params_len,
        "int8 operand scratch too small"
    );
    // Each member quantizes its share of the rows; a row's codes depend on that row
    // and its block's parameters alone, so any split gives the same codes. About 16
    // operations per value against a multiply-add's one.
    let mine = team.chunk(nrows, threads_for(nrows * k * 16, nrows, usize::MAX));
    let block = if q8.per_row {
        None
    } else {
        // One range over every row: the leader takes it (it needs every row) into the
        // slot past the rows, which nobody else writes; everyone reads it after the
        // barrier, and the leader writes it again only after the next one (below).
        // SAFETY: the rows hold `k` readable floats each (the job's contract); the
        // scratch has `nrows + 1` parameter slots (checked above).
        unsafe {
            let slot = q8.params.add(nrows);
            if team.is_leader() {
                let r = B::run_op(RangeOp {
                    a: &job.a,
                    rows: 0..nrows,
                    k,
                });
                let (scale, zp) = params(r, q8.qmax);
                slot.write(RowQuant {
                    scale,
                    zero_point: i32::from(zp),
                    sum: 0,
                });
            }
            team.sync();
            let p = slot.read();
            Some((p.scale, p.zero_point as u8))
        }
    };
    if !mine.is_empty() {
        // SAFETY: the rows hold `k` readable floats each (the job's contract); the
        // scratch holds `nrows` rows of `stride >= k` bytes and `nrows` parameters
        // (checked above); members write disjoint rows of it.
        unsafe {
            B::run_op(QuantizeOp {
                a: &job.a,
                rows: mine,
                k,
                dst: q8.codes,
                stride,
                params: q8.params,
                qmax: q8.qmax,
                block,
            });
        }
    }
    team.sync();
    let j8 = Job8 {
        a: q8.codes,
        stride,
        rows: q8.params,
        nrows,
        w: job.w.ptr.cast::<i8>(),
        k4,
        panels: job.w.panels,
        q,
        striped: job.w.striped,
    };
    let pairs_fit = q.pairs_fit_i16(q8.qmax);
    // Integer multiply-adds run about 4 per float one.
    let work = nrows * k * job.w.panels * 64 / 4;
    // SAFETY: forwarded; the codes were written before the barrier; members write
    // disjoint panels.
    share_panels(team, work, job.w.panels, |mine| unsafe {
        B::panels_i8(&j8, mine, zigzag, epi, pairs_fit)
    });
}
