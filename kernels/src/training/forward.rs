//! The training forward: the forward driver's work (input projection, then the fused
//! steps), with each step reading and writing its states in per-step history slots
//! and (with `Activations::Keep`) its epilogues writing the gate pre-activations back
//! over the input projection, which is kept per layer.

use rnn_reference::{SeqShape, SequenceInput};

use super::workspace::{Dims, Kept, Run, Scratch, TrainingWorkspace};
use crate::cells::{state_sizes, step_fmas, StateBufs, StepPtrs};
use crate::dispatch::{kernels, Kernels};
use crate::element::Element;
use crate::io::{copy_len, input_f32};
use crate::kernel::walk::Job;
use crate::kernel::{Rows, Store};
use crate::packed::PackedRnn;
use crate::parallel::{run_team, threads_for, Team};
use crate::sequence::{check_call, finish_step, init_state, SequenceOutputMut, Tensor3, YSlot};
use crate::workspace::carve;
use crate::Result;

/// Pointers a training forward shares with its team.
#[derive(Clone, Copy)]
pub(crate) struct Bases {
    pub(crate) kept: *mut f32,
    pub(crate) scratch: *mut f32,
}

// SAFETY: the bases point into the workspace, which outlives the team; members write
// disjoint panels between barriers, serial parts are the leader's.
unsafe impl Sync for Bases {}

/// Validates, runs, and records the run in `tws`.
pub(super) fn run<W: Element, T: Element>(
    rnn: &PackedRnn<W>,
    tws: &mut TrainingWorkspace,
    shape: SeqShape,
    input: SequenceInput<'_, T>,
    out: SequenceOutputMut<'_, T>,
) -> Result<()> {
    let cfg = &rnn.cfg;
    tws.run = None;
    let dims = check_call(cfg, shape, &input, &out)?;
    let k = kernels::<W>(rnn.isa()?)?;
    let d = Dims::new(cfg, shape, tws.mode)?;
    let kept = Kept::new(&d, cfg.num_layers)?;
    let sc = Scratch::new::<W>(&d, cfg)?;
    tws.kept.ensure(kept.total);
    tws.scratch.ensure(sc.total);
    let io = [dims.h, dims.c, dims.y, dims.h, dims.c].map(copy_len::<T>);
    let [h0b, c0b, yb, hnb, cnb] = carve(&mut tws.io, io)?;
    let bases = Bases {
        kept: tws.kept.as_mut_slice().as_mut_ptr(),
        scratch: tws.scratch.as_mut_slice().as_mut_ptr(),
    };
    // f32 outputs are written in place; half ones go through f32 copies in `tws.io`.
    let is_f32 = copy_len::<T>(1) == 0;
    let mut out = out;
    let target = |v: &mut [T], buf: *mut f32| -> *mut f32 {
        if is_f32 {
            v.as_mut_ptr().cast::<f32>()
        } else {
            buf
        }
    };
    let outs = Outs {
        y: Tensor3::new(target(out.y, yb), &shape, d.yb * d.ho),
        h_n: out.h_n.as_deref_mut().map(|v| target(v, hnb)),
        c_n: out.c_n.as_deref_mut().map(|v| target(v, cnb)),
    };
    // SAFETY: each io region was carved with the length of what it receives.
    let states = unsafe {
        (
            input.h0.map(|h| input_f32(h, h0b)),
            input.c0.map(|c| input_f32(c, c0b)),
        )
    };
    // Layer 0's input, time-major f32.
    let in0 = kept.layer(0, &d).input;
    for t in 0..d.t {
        for b in 0..d.b {
            let r = shape.row(t, b);
            // SAFETY: `in0` holds R * I floats; row (t, b) is inside.
            let dst = unsafe {
                std::slice::from_raw_parts_mut(bases.kept.add(in0 + d.row(t, b) * d.i), d.i)
            };
            T::slice_to_f32(&input.x[r * d.i..(r + 1) * d.i], dst);
        }
    }
    // The AUGRU's attention, time-major f32 (the backward reads it too).
    if let Some(a) = input.attention {
        for t in 0..d.t {
            for b in 0..d.b {
                // SAFETY: `kept.att` holds R floats (`d.att`); row (t, b) is inside.
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(bases.kept.add(kept.att + d.row(t, b)), 1)
                };
                let r = shape.row(t, b);
                T::slice_to_f32(&a[r..r + 1], dst);
            }
        }
    }
    let want = threads_for(
        step_fmas(cfg, d.b),
        rnn.sets[0].cell.panels(),
        rayon::current_num_threads(),
    );
    let seq_lens = input.seq_lens;
    let ctx = Ctx {
        rnn,
        k: &k,
        d: &d,
        kept: &kept,
        sc: &sc,
        bases,
        outs,
        seq_lens,
        states,
    };
    // SAFETY: every buffer was sized above for this config and shape.
    run_team(want, &|team: &Team<'_>| unsafe { layers(&ctx, team) });
    if !is_f32 {
        // SAFETY: the copies hold exactly the callers' lengths (carved above).
        unsafe {
            T::slice_from_f32(std::slice::from_raw_parts(yb, dims.y), out.y);
            if let Some(v) = out.h_n {
                T::slice_from_f32(std::slice::from_raw_parts(hnb, dims.h), v);
            }
            if let Some(v) = out.c_n {
                T::slice_from_f32(std::slice::from_raw_parts(cnb, dims.c), v);
            }
        }
    }
    tws.lens.clear();
    tws.lens.extend_from_slice(input.seq_lens.unwrap_or(&[]));
    tws.run = Some(Run {
        cfg: *cfg,
        shape,
        mode: tws.mode,
        has_lens: input.seq_lens.is_some(),
    });
    Ok(())
}

/// Where the last layer's outputs go (f32: the caller's slices or their copies).
#[derive(Clone, Copy)]
struct Outs {
    y: Tensor3,
    h_n: Option<*mut f32>,
    c_n: Option<*mut f32>,
}

/// Everything the team shares.
struct Ctx<'a, W: Element> {
    rnn: &'a PackedRnn<W>,
    k: &'a Kernels<W>,
    d: &'a Dims,
    kept: &'a Kept,
    sc: &'a Scratch,
    bases: Bases,
    outs: Outs,
    seq_lens: Option<&'a [usize]>,
    states: (Option<&'a [f32]>, Option<&'a [f32]>),
}

// SAFETY: the pointers point into the workspace and the caller's outputs, which
// outlive the team; members write disjoint panels between barriers, serial parts are
// the leader's.
unsafe impl<W: Element> Sync for Ctx<'_, W> {}

/// Every layer and direction, by every member of the team.
///
/// # Safety
/// `c` describes buffers sized for its config and shape.
unsafe fn layers<W: Element>(c: &Ctx<'_, W>, team: &Team<'_>) {
    let (d, cfg) = (c.d, &c.rnn.cfg);
    let (kb, sb) = (c.bases.kept, c.bases.scratch);
    let tm = SeqShape::new(d.t, d.b);
    let (hl, cl, _) = state_sizes(cfg, d.b);
    let input = SequenceInput {
        x: &[],
        h0: c.states.0,
        c0: c.states.1,
        seq_lens: c.seq_lens,
        attention: None,
    };
    for layer in 0..cfg.num_layers {
        let lk = c.kept.layer(layer, d);
        let width = d.width(layer);
        let dst = if layer + 1 == cfg.num_layers {
            c.outs.y
        } else {
            // SAFETY: the next layer's input holds R * yb * H_out floats.
            Tensor3::new(
                unsafe { kb.add(c.kept.layer(layer + 1, d).input) },
                &tm,
                d.yb * d.ho,
            )
        };
        for dir in 0..d.d {
            let set = &c.rnn.sets[layer * d.d + dir];
            let ld = layer * d.d + dir;
            let rev = cfg.direction.is_reverse(dir);
            // SAFETY: offsets from `Kept`/`Scratch`, which sized every
            // region for this shape; slots and rows are below their counts.
            unsafe {
                let (pre, stride) = if d.keep {
                    (kb.add(lk.z + dir * d.zs), d.zrow)
                } else {
                    (sb.add(c.sc.pre), d.zs)
                };
                let job = Job {
                    a: Rows::strided(kb.add(lk.input), width, d.r),
                    nrows: d.r,
                    w: set.w_ih.view(),
                };
                let store = Store {
                    out: pre,
                    stride,
                    bias: set.bias.as_slice().as_ptr(),
                };
                (c.k.gemm)(team, &job, &store);
                let slot_h = |j: usize| kb.add(lk.hist_h[dir] + j * d.b * d.pp);
                let slot_c = |j: usize| kb.add(lk.hist_c[dir] + j * d.b * d.hp);
                let first = if rev { d.t - 1 } else { 0 };
                let init = StateBufs {
                    h_prev: slot_h(d.before(first, rev)),
                    h_next: std::ptr::null_mut(),
                    c_prev: slot_c(d.before(first, rev)),
                    c_next: std::ptr::null_mut(),
                    aux: std::ptr::null_mut(),
                    aux2: std::ptr::null_mut(),
                };
                if team.is_leader() {
                    let cl = if d.lstm { cl } else { 0 };
                    init_state(&init, &input, ld, d.b, (d.ho, d.h), (d.pp, d.hp), (hl, cl));
                }
                team.sync();
                for s in 0..d.t {
                    let t = if rev { d.t - 1 - s } else { s };
                    let aux = if d.keep && d.ext {
                        kb.add(lk.ext[dir] + t * d.b * d.hp)
                    } else {
                        sb.add(c.sc.aux)
                    };
                    let st = StateBufs {
                        h_prev: slot_h(d.before(t, rev)),
                        h_next: slot_h(d.after(t, rev)),
                        c_prev: slot_c(d.before(t, rev)),
                        c_next: slot_c(d.after(t, rev)),
                        aux,
                        aux2: sb.add(c.sc.aux2),
                    };
                    let mut sp =
                        StepPtrs::new(cfg, dir, d.b, pre.add(t * d.b * stride), &st, s % 2 == 1);
                    sp.pre_stride = stride;
                    sp.keep_pre = d.keep;
                    (sp.att, sp.att_stride) = c.kept.att_ptrs(kb, d, t);
                    (c.k.step)(&set.cell, &sp, team);
                    // Every member its share of the rows (disjoint).
                    let dims = (d.ho, d.pp, d.hp);
                    let (slot, rows) = (YSlot::of(cfg, dir), team.share().of(d.b, 1));
                    finish_step(&st, &dst, t, slot, rows, c.seq_lens, d.lstm, dims);
                    team.sync();
                }
                if team.is_leader() {
                    let last = if rev { 0 } else { d.t - 1 };
                    let (h_end, c_end) = (slot_h(d.after(last, rev)), slot_c(d.after(last, rev)));
                    for b in 0..d.b {
                        if let Some(h_n) = c.outs.h_n {
                            let o = h_n.add((ld * d.b + b) * d.ho);
                            std::ptr::copy_nonoverlapping(h_end.add(b * d.pp), o, d.ho);
                        }
                        if let Some(c_n) = c.outs.c_n {
                            let o = c_n.add((ld * d.b + b) * d.h);
                            std::ptr::copy_nonoverlapping(c_end.add(b * d.hp), o, d.h);
                        }
                    }
                }
                team.sync();
            }
        }
    }
}
