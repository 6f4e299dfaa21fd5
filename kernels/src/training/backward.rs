//! The backward driver: per layer (last first) and direction, the transposed weights,
//! the time loop of backward steps (from the last step the forward ran to the first),
//! the pass that yields `∂L/∂h0`, the weight-gradient products; per layer, `∂x` of
//! both directions as one product (the next lower layer's `∂L/∂y`).

use super::forward::Bases;
use super::kernels::{back_kernels, BackKernels};
use super::profile::{Phase, PhaseClock};
use super::weight_grads::{self, DestSlot, Operands};
use super::workspace::{Dims, Kept, Scratch, TrainingWorkspace};
use super::{GradientsMut, LayerGradsMut, OutputGrads};
use crate::cells::backward::BackPtrs;
use crate::cells::{step_fmas, CustomActs, StateBufs, StepPtrs};
use crate::dispatch::{kernels, Kernels};
use crate::element::Element;
use crate::kernel::walk::Job;
use crate::kernel::{Rows, Store};
use crate::pack::runtime::{panels_len, transpose_panels, WIDTH};
use crate::pack::PanelsView;
use crate::packed::PackedRnn;
use crate::parallel::{run_team, threads_for, Team};
use crate::Result;

/// The caller's outputs as raw pointers (written by the team's leader only).
#[derive(Clone, Copy)]
struct Outs {
    dx: Option<*mut f32>,
    dh0: Option<*mut f32>,
    dc0: Option<*mut f32>,
    sets: *mut LayerGradsMut<'static>,
}

/// The caller's `∂L/∂h_n` and `∂L/∂c_n`.
type Finals<'a, T> = (Option<&'a [T]>, Option<&'a [T]>);

/// Everything the team shares.
struct Ctx<'a, W: Element> {
    rnn: &'a PackedRnn<W>,
    k: &'a Kernels<W>,
    bk: &'a BackKernels,
    d: &'a Dims,
    kept: &'a Kept,
    sc: &'a Scratch,
    bases: Bases,
    lens: *const usize,
    outs: Outs,
    /// The weight gradients' destination, published by the leader.
    dest: DestSlot,
    /// The phases' times (`TrainingWorkspace::backward_profile`).
    clock: PhaseClock,
}

// SAFETY: the pointers point into the workspace and the caller's buffers, which
// outlive the team; members write disjoint panels, rows or blocks (their `Share`)
// between barriers, everything else is the leader's; `dest` is atomics.
unsafe impl<W: Element> Sync for Ctx<'_, W> {}

/// Runs the backward of the run recorded in `tws` (checked by the caller).
pub(super) fn run<W: Element, T: Element>(
    rnn: &PackedRnn<W>,
    tws: &mut TrainingWorkspace,
    grads: OutputGrads<'_, T>,
    out: GradientsMut<'_, '_>,
) -> Result<()> {
    let started = std::time::Instant::now();
    let cfg = &rnn.cfg;
    let Some(rec) = tws.run else {
        return Ok(());
    };
    let isa = rnn.isa()?;
    let (k, bk) = (kernels::<W>(isa)?, back_kernels(isa)?);
    let d = Dims::new(cfg, rec.shape, rec.mode)?;
    let kept = Kept::new(&d, cfg.num_layers)?;
    let sc = Scratch::new::<W>(&d, cfg)?;
    tws.scratch.ensure(sc.total);
    let bases = Bases {
        kept: tws.kept.as_mut_slice().as_mut_ptr(),
        scratch: tws.scratch.as_mut_slice().as_mut_ptr(),
    };
    let lens = if rec.has_lens {
        tws.lens.as_ptr()
    } else {
        std::ptr::null()
    };
    // SAFETY: `sc.dy` holds R * D * pp floats; `sc.da` R floats with attention.
    unsafe {
        load_dy(&d, rec.shape, grads.dy, bases.scratch.add(sc.dy));
        if d.att {
            std::ptr::write_bytes(bases.scratch.add(sc.da), 0, d.r);
        }
    }
    let outs = Outs {
        dx: out.dx.map(<[f32]>::as_mut_ptr),
        dh0: out.dh0.map(<[f32]>::as_mut_ptr),
        dc0: out.dc0.map(<[f32]>::as_mut_ptr),
        sets: out.weights.as_mut_ptr().cast(),
    };
    let ctx = Ctx {
        rnn,
        k: &k,
        bk: &bk,
        d: &d,
        kept: &kept,
        sc: &sc,
        bases,
        lens,
        outs,
        dest: DestSlot::default(),
        clock: PhaseClock::default(),
    };
    let want = threads_for(
        step_fmas(cfg, d.b).saturating_mul(d.t),
        cfg.output_size().div_ceil(64).max(d.zs / WIDTH),
        rayon::current_num_threads(),
    );
    let (dh_n, dc_n) = (grads.dh_n, grads.dc_n);
    // SAFETY: every buffer was sized above for the recorded config and shape.
    run_team(want, &|team: &Team<'_>| unsafe {
        for layer in (0..cfg.num_layers).rev() {
            backward_layer(&ctx, layer, (dh_n, dc_n), team);
        }
    });
    if let Some(dx) = outs.dx {
        // SAFETY: `dx` holds dims.x floats (checked); `sc.dx` R * ip.
        unsafe { store_dx(&d, rec.shape, bases.scratch.add(sc.dx), dx, lens) };
    }
    if let (Some(da), true) = (out.dattention, d.att) {
        for t in 0..d.t {
            for b in 0..d.b {
                // SAFETY: `sc.da` holds R floats; `da` was checked to hold T * B.
                da[rec.shape.row(t, b)] = unsafe { *bases.scratch.add(sc.da + d.row(t, b)) };
            }
        }
    }
    tws.profile = ctx.clock.profile(started.elapsed());
    Ok(())
}

/// `∂L/∂a[t, b] −= Σ_j ∂z'_j z_j` over the units of every row that ran step `t`, in
/// unit order (so the sum is the same for any thread count).
///
/// # Safety
/// As for [`backward_layer`]; the step's epilogues wrote `da_units`.
unsafe fn sum_attention_grads<W: Element>(c: &Ctx<'_, W>, t: usize) {
    let (d, sb, sc) = (c.d, c.bases.scratch, c.sc);
    for b in 0..d.b {
        // SAFETY: `lens` (when not null) holds B lengths.
        if !c.lens.is_null() && t >= unsafe { *c.lens.add(b) } {
            continue;
        }
        // SAFETY: `da_units` holds B rows of hp floats, `da` R floats.
        unsafe {
            let units = std::slice::from_raw_parts(sb.add(sc.da_units + b * d.hp), d.h);
            let s = units.iter().fold(0.0f32, |s, &v| s + v);
            *sb.add(sc.da + d.row(t, b)) -= s;
        }
    }
}

/// `∂L/∂y` (caller's layout, `T`) into `[R, D * pp]` time-major f32 rows, zero padded:
/// block `k` of a row holds `y`'s block `k` (with summed directions, one block that
/// both directions read, and a zero block after it).
///
/// # Safety
/// `dst` holds `R * D * pp` floats; `dy` was checked.
unsafe fn load_dy<T: Element>(d: &Dims, shape: rnn_reference::SeqShape, dy: &[T], dst: *mut f32) {
    let w = d.yb * d.ho;
    for t in 0..d.t {
        for b in 0..d.b {
            let src = &dy[shape.row(t, b) * w..][..w];
            for blk in 0..d.d {
                // SAFETY: the caller's contract.
                let row = unsafe {
                    std::slice::from_raw_parts_mut(
                        dst.add(d.row(t, b) * d.d * d.pp + blk * d.pp),
                        d.pp,
                    )
                };
                if blk < d.yb {
                    T::slice_to_f32(&src[blk * d.ho..][..d.ho], &mut row[..d.ho]);
                    row[d.ho..].fill(0.0);
                } else {
                    row.fill(0.0);
                }
            }
        }
    }
}

/// Layer 0's `∂x` (`[R, ip]` time-major) into the caller's `dx`, zero where a row did
/// not run.
///
/// # Safety
/// `src` holds `R * ip` floats, `dx` `R * I`; `lens` null or `B` lengths.
unsafe fn store_dx(
    d: &Dims,
    shape: rnn_reference::SeqShape,
    src: *const f32,
    dx: *mut f32,
    lens: *const usize,
) {
    for t in 0..d.t {
        for b in 0..d.b {
            // SAFETY: the caller's contract.
            unsafe {
                let o = dx.add(shape.row(t, b) * d.i);
                if lens.is_null() || t < *lens.add(b) {
                    std::ptr::copy_nonoverlapping(src.add(d.row(t, b) * d.ip), o, d.i);
                } else {
                    std::ptr::write_bytes(o, 0, d.i);
                }
            }
        }
    }
}

/// One layer: both directions' time loops and weight gradients, then `∂x`.
///
/// # Safety
/// `c` describes buffers sized for its config and shape.
unsafe fn backward_layer<W: Element, T: Element>(
    c: &Ctx<'_, W>,
    layer: usize,
    finals: Finals<'_, T>,
    team: &Team<'_>,
) {
    let d = c.d;
    let (kb, sb) = (c.bases.kept, c.bases.scratch);
    let lk = c.kept.layer(layer, d);
    let want_dx = layer > 0 || c.outs.dx.is_some();
    let dx_cols = if layer > 0 { d.d * d.pp } else { d.ip };
    let mut lap = c.clock.start(team);
    // SAFETY: offsets from `Kept`/`Scratch`, which sized every region.
    unsafe {
        let zbase = if d.keep {
            kb.add(lk.z)
        } else {
            sb.add(c.sc.dg)
        };
        let w_ih_t = sb.add(c.sc.w_ih_t);
        // Every member zeroes, then transposes, its share (a fifth of a 2-thread
        // 16×512 LSTM's backward was such serial copies on the leader).
        let share = team.share();
        if want_dx {
            crate::pack::runtime::clear(w_ih_t, panels_len(d.zrow, dx_cols), share);
        }
        team.sync();
        if want_dx {
            for dir in 0..d.d {
                let set = &c.rnn.sets[layer * d.d + dir];
                let map = |kk: usize| {
                    if layer > 0 {
                        kk / d.ho * d.pp + kk % d.ho
                    } else {
                        kk
                    }
                };
                transpose_panels(
                    &set.w_ih,
                    w_ih_t,
                    d.zrow,
                    dir * d.zs,
                    map,
                    share,
                    c.bk.blocks,
                );
            }
        }
        team.sync();
        c.clock.lap(&mut lap, Phase::Transposes);
        for dir in 0..d.d {
            direction(c, layer, dir, finals, team);
        }
        lap = c.clock.start(team);
        if want_dx {
            let job = Job {
                a: Rows::strided(zbase, d.zrow, d.r),
                nrows: d.r,
                w: PanelsView {
                    ptr: w_ih_t.cast_const(),
                    k: d.zrow,
                    panels: dx_cols / WIDTH,
                    quant: None,
                    striped: crate::pack::runtime::striped(),
                },
            };
            let (out, stride) = if layer > 0 {
                (sb.add(c.sc.dy), d.d * d.pp)
            } else {
                (sb.add(c.sc.dx), d.ip)
            };
            let store = Store {
                out,
                stride,
                bias: std::ptr::null(),
            };
            (c.bk.gemm)(team, &job, &store);
            c.clock.lap(&mut lap, Phase::InputProducts);
        }
    }
}

/// One direction of one layer: the time loop, `∂L/∂h0` (`∂L/∂c0`), the weight
/// gradients.
///
/// # Safety
/// As for [`backward_layer`].
unsafe fn direction<W: Element, T: Element>(
    c: &Ctx<'_, W>,
    layer: usize,
    dir: usize,
    (dh_n, dc_n): Finals<'_, T>,
    team: &Team<'_>,
) {
    let (d, cfg) = (c.d, &c.rnn.cfg);
    let (kb, sb, sc) = (c.bases.kept, c.bases.scratch, c.sc);
    let lk = c.kept.layer(layer, d);
    let set = &c.rnn.sets[layer * d.d + dir];
    let ld = layer * d.d + dir;
    let rev = cfg.direction.is_reverse(dir);
    let mut lap = c.clock.start(team);
    // SAFETY: offsets from `Kept`/`Scratch`, which sized every region
    // for this shape; steps, slots and rows are below their counts.
    unsafe {
        let zbase = if d.keep { kb.add(lk.z) } else { sb.add(sc.dg) };
        let ext = if d.keep {
            kb.add(lk.ext[dir])
        } else {
            sb.add(sc.ext)
        };
        let (dhc, dc, dp) = (sb.add(sc.dhc), sb.add(sc.dc), sb.add(sc.dp));
        let slot_h = |j: usize| kb.add(lk.hist_h[dir] + j * d.b * d.pp).cast_const();
        let slot_c = |j: usize| {
            if d.lstm {
                kb.add(lk.hist_c[dir] + j * d.b * d.hp).cast_const()
            } else {
                std::ptr::null()
            }
        };
        let share = team.share();
        set.cell.clear_backward(cfg, sb.add(sc.w_back), share);
        team.sync();
        set.cell
            .pack_backward(cfg, sb.add(sc.w_back), share, c.bk.blocks);
        if team.is_leader() {
            init_carry(d, ld, dh_n, dhc, d.pp, d.ho);
            if d.lstm {
                init_carry(d, ld, dc_n, dc, d.hp, d.h);
            }
            // The peephole sums (LSTM: 3 rows; peephole GRU: 2), the layer norm's.
            std::ptr::write_bytes(dp, 0, 3 * d.hp);
            if d.ln {
                std::ptr::write_bytes(sb.add(sc.ln_acc), 0, 2 * d.zs);
            }
        }
        team.sync();
        let bc = set.cell.backward_views(cfg, sb.add(sc.w_back));
        let gru = bc.carry_width() > 0;
        let carry = |s: usize| sb.add(sc.carry[s % 2]);
        let time = |s: usize| if rev { d.t - 1 - s } else { s };
        let ptrs = |s: usize| {
            let t = time(s);
            let (z, z_stride) = if d.keep {
                (zbase.add(t * d.b * d.zrow + dir * d.zs), d.zrow)
            } else {
                (sb.add(sc.zstep), d.zs)
            };
            let later = if gru {
                carry(s + 1).cast_const()
            } else if s + 1 < d.t {
                zbase
                    .add(time(s + 1) * d.b * d.zrow + dir * d.zs)
                    .cast_const()
            } else {
                dhc.cast_const()
            };
            BackPtrs {
                batch: d.b,
                t,
                lens: c.lens,
                hid: d.h,
                out_units: d.ho,
                clip: cfg.clip,
                acts: CustomActs(cfg.custom_activations(dir)),
                zigzag: s % 2 == 1,
                z,
                z_stride,
                dg: zbase.add(t * d.b * d.zrow + dir * d.zs),
                dg_stride: d.zrow,
                ext: ext.add(t * d.b * d.hp),
                ext_stride: d.hp,
                h_prev: slot_h(d.before(t, rev)),
                h_after: slot_h(d.after(t, rev)),
                h_stride: d.pp,
                c_prev: slot_c(d.before(t, rev)),
                c_after: slot_c(d.after(t, rev)),
                c_stride: d.hp,
                // Summed directions both read block 0: ∂y reaches each whole.
                dy: sb.add(sc.dy + t * d.b * d.d * d.pp + cfg.direction.output_block(dir) * d.pp),
                dy_stride: d.d * d.pp,
                dhc,
                dc,
                later,
                later_stride: if gru { bc.carry_width() } else { d.zrow },
                carry_out: carry(s),
                dh_rows: sb.add(sc.dh_rows + t * d.b * d.pp),
                dp,
                att: c.kept.att_ptrs(kb, d, t).0,
                da_units: sb.add(sc.da_units),
                ln_dm: sb.add(sc.ln_dm),
                ln_du: sb.add(sc.ln_du),
                ln_dun: sb.add(sc.ln_dun),
                ln_stride: d.zs,
                ln_acc: sb.add(sc.ln_acc),
            }
        };
        for s in (0..d.t).rev() {
            if !d.keep {
                recompute(c, layer, dir, time(s), team);
            }
            (c.bk.step)(&bc, &ptrs(s), s + 1 == d.t, team);
            if d.att {
                // The step's passes ended in a barrier: every unit's `∂z' ⊙ z` is in.
                if team.is_leader() {
                    sum_attention_grads(c, time(s));
                }
                // The next step's epilogues overwrite `da_units`.
                team.sync();
            }
        }
        // After the earliest step: its own gradients (or step buffer) times W_hhᵀ.
        let mut last = ptrs(0);
        if !gru {
            last.later = last.dg;
        } else {
            last.later = carry(0);
        }
        (c.bk.finish)(&bc, &last, team);
        if team.is_leader() {
            store_initial(c, ld, dhc, dc, dp);
        }
        team.sync();
        c.clock.lap(&mut lap, Phase::TimeLoop);
        let o = Operands {
            x: kb.add(lk.input).cast_const(),
            width: d.width(layer),
            h_prev: slot_h(usize::from(rev)),
            ext,
            dg: zbase.add(dir * d.zs),
            dh_rows: sb.add(sc.dh_rows),
            left_t: sb.add(sc.left_t),
            right: sb.add(sc.right),
            out: sb.add(sc.out),
            lens: c.lens,
        };
        let sets = c.outs.sets.add(ld);
        weight_grads::run(
            bc.grad_jobs(),
            &o,
            d,
            cfg.gates(),
            c.bk,
            sets,
            &c.dest,
            (&c.clock, &mut lap),
            team,
        );
    }
}

/// The carry rows of set `ld` from the caller's final-state gradient (zeros without
/// one), `width` values per row padded to `stride`.
///
/// # Safety
/// `dst` holds `B * stride` floats; `src` (when given) was checked.
unsafe fn init_carry<T: Element>(
    d: &Dims,
    ld: usize,
    src: Option<&[T]>,
    dst: *mut f32,
    stride: usize,
    width: usize,
) {
    // SAFETY: the caller's contract.
    let rows = unsafe { std::slice::from_raw_parts_mut(dst, d.b * stride) };
    rows.fill(0.0);
    if let Some(src) = src {
        for b in 0..d.b {
            T::slice_to_f32(
                &src[(ld * d.b + b) * width..][..width],
                &mut rows[b * stride..][..width],
            );
        }
    }
}

/// `∂L/∂h0`, `∂L/∂c0` of set `ld`, the peephole gradients and the layer norm's (`γ`
/// and the biases) into the caller's buffers.
///
/// # Safety
/// The carry buffers hold `B` padded rows, `dp` `3 * hp`, the layer-norm sums
/// `2 * zs`; the caller's buffers were checked.
unsafe fn store_initial<W: Element>(
    c: &Ctx<'_, W>,
    ld: usize,
    dhc: *mut f32,
    dc: *mut f32,
    dp: *mut f32,
) {
    let d = c.d;
    // SAFETY: the caller's contract.
    unsafe {
        for b in 0..d.b {
            if let Some(o) = c.outs.dh0 {
                std::ptr::copy_nonoverlapping(
                    dhc.add(b * d.pp),
                    o.add((ld * d.b + b) * d.ho),
                    d.ho,
                );
            }
            if let Some(o) = c.outs.dc0 {
                std::ptr::copy_nonoverlapping(dc.add(b * d.hp), o.add((ld * d.b + b) * d.h), d.h);
            }
        }
        let set = &mut *c.outs.sets.add(ld);
        if let Some(p) = set.dpeephole.as_deref_mut() {
            // LSTM: 3 rows (i, f, o); peephole GRU: 2 (r, z).
            for k in 0..p.len() / d.h {
                std::ptr::copy_nonoverlapping(dp.add(k * d.hp), p.as_mut_ptr().add(k * d.h), d.h);
            }
        }
        if d.ln {
            // The layer norm's sums, `[2][G][hp]`: `∂L/∂γ`, then the biases' (both
            // biases join after the normalisation, so both get the same sum; the
            // weight-gradient products of this cell add no bias row).
            let acc = c.bases.scratch.add(c.sc.ln_acc);
            let blocks = [
                (0, set.dlayer_norm.as_deref_mut()),
                (d.zs, set.db_ih.as_deref_mut()),
                (d.zs, set.db_hh.as_deref_mut()),
            ];
            for (at, dst) in blocks {
                let Some(dst) = dst else { continue };
                for k in 0..dst.len() / d.h {
                    let src = acc.add(at + k * d.hp);
                    std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr().add(k * d.h), d.h);
                }
            }
        }
    }
}

/// Recomputes step `t`'s pre-activations (and extra rows) into the one-step scratch:
/// its input projection, then the forward step with its states from the history.
///
/// # Safety
/// As for [`backward_layer`].
unsafe fn recompute<W: Element>(
    c: &Ctx<'_, W>,
    layer: usize,
    dir: usize,
    t: usize,
    team: &Team<'_>,
) {
    let (d, cfg) = (c.d, &c.rnn.cfg);
    let (kb, sb, sc) = (c.bases.kept, c.bases.scratch, c.sc);
    let lk = c.kept.layer(layer, d);
    let set = &c.rnn.sets[layer * d.d + dir];
    let rev = cfg.direction.is_reverse(dir);
    let width = d.width(layer);
    // SAFETY: offsets from `Kept`/`Scratch`; `t < T`.
    unsafe {
        let zstep = sb.add(sc.zstep);
        let job = Job {
            a: Rows::strided(kb.add(lk.input + t * d.b * width), width, d.b),
            nrows: d.b,
            w: set.w_ih.view(),
        };
        let store = Store {
            out: zstep,
            stride: d.zs,
            bias: set.bias.as_slice().as_ptr(),
        };
        (c.k.gemm)(team, &job, &store);
        let c_slot = |j: usize| {
            if d.lstm {
                kb.add(lk.hist_c[dir] + j * d.b * d.hp)
            } else {
                std::ptr::null_mut()
            }
        };
        let st = StateBufs {
            h_prev: kb.add(lk.hist_h[dir] + d.before(t, rev) * d.b * d.pp),
            h_next: sb.add(sc.hstep),
            c_prev: c_slot(d.before(t, rev)),
            c_next: sb.add(sc.cstep),
            aux: if d.ext {
                sb.add(sc.ext + t * d.b * d.hp)
            } else {
                sb.add(sc.aux)
            },
            aux2: sb.add(sc.aux2),
        };
        let mut sp = StepPtrs::new(cfg, dir, d.b, zstep, &st, false);
        sp.pre_stride = d.zs;
        sp.keep_pre = true;
        (sp.att, sp.att_stride) = c.kept.att_ptrs(kb, d, t);
        (c.k.step)(&set.cell, &sp, team);
    }
}
