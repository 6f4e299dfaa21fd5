//! The whole-sequence driver: per layer and direction, the input projection for all
//! steps as one product, then the time loop of fused recurrent steps.

use rnn_reference::quant::ActivationQuant;
use rnn_reference::{
    check_len, check_seq_lens, check_sequence_attention, Direction, Error, RnnConfig, SeqDims,
    SeqShape, SequenceInput, TensorLayout,
};

use crate::arch::{DotFn, DotJob};
use crate::cells::{pre_stride, state_sizes, step_fmas, StateBufs, StepPtrs};
use crate::dispatch::{kernels, Kernels};
use crate::element::{Element, WeightType};
use crate::io::input_f32;
use crate::kernel::walk::Job;
use crate::kernel::{Rows, Store};
use crate::pack::padded;
use crate::packed::{PackedDirection, PackedRnn};
use crate::parallel::{run_team, threads_for, Team};
use crate::passes::gemm_dot;
use crate::sequence_aligned::{align_reverse, finish_aligned, finish_aligned_step, Finals};
use crate::workspace::{q8_scratch, q8_sizes, Workspace};
use crate::Result;

/// Where [`PackedRnn::forward`] writes, in element type `T` (`f32`, `half::f16` or
/// `half::bf16`). `y` is `[T, B, D*H_out]` (or `[B, T, ·]` for a batch-major shape);
/// `h_n` `[L*D, B, H_out]` and `c_n` `[L*D, B, H]` are optional (`c_n` only for LSTM).
pub struct SequenceOutputMut<'a, T = f32> {
    /// Outputs of the last layer, forward then reverse per step.
    pub y: &'a mut [T],
    /// Final hidden state of every layer and direction.
    pub h_n: Option<&'a mut [T]>,
    /// Final cell state of every layer and direction (LSTM only).
    pub c_n: Option<&'a mut [T]>,
}

/// Where rows of a `[·, ·, width]` tensor live, by step and batch row.
#[derive(Clone, Copy)]
pub(crate) struct Tensor3 {
    base: *mut f32,
    stride_t: usize,
    stride_b: usize,
}

impl Tensor3 {
    pub(crate) fn new(base: *mut f32, shape: &SeqShape, width: usize) -> Self {
        let (stride_t, stride_b) = match shape.layout {
            TensorLayout::TimeMajor => (shape.batch * width, width),
            TensorLayout::BatchMajor => (width, shape.steps * width),
        };
        Tensor3 {
            base,
            stride_t,
            stride_b,
        }
    }

    pub(crate) fn rows(&self, batch: usize) -> Rows {
        Rows {
            base: self.base,
            stride_t: self.stride_t,
            stride_b: self.stride_b,
            batch,
            q8: None,
        }
    }

    /// # Safety
    /// `(t, b)` must be inside the tensor.
    pub(crate) unsafe fn at(&self, t: usize, b: usize) -> *mut f32 {
        // SAFETY: caller's contract.
        unsafe { self.base.add(t * self.stride_t + b * self.stride_b) }
    }
}

impl<W: WeightType> PackedRnn<W> {
    /// Runs the whole sequence: every layer, every direction, optional sequence
    /// lengths, writing `out`. Validates every length first (an [`Error`] names the
    /// argument); allocates nothing once `ws` has grown to this shape.
    ///
    /// Inputs and outputs may be `f32`, `half::f16` or `half::bf16` (`T`), whatever the
    /// weight type. Rounding happens only at the edges: half inputs widen exactly;
    /// all arithmetic, the cell state, the recurrent `h` and the outputs passed between
    /// layers stay `f32`; `y`, `h_n` and `c_n` are rounded to `T` once, when written
    /// (to nearest, ties to even). With bf16 weights and bf16 inputs on
    /// [`Isa::Avx512Bf16`](crate::Isa::Avx512Bf16), the first layer's input projection multiplies the bf16
    /// values directly (`vdpbf16ps`: exact products, `f32` sums, subnormals flushed),
    /// unless a weight is infinite (a flushed zero times it would be NaN).
    pub fn forward<T: Element>(
        &self,
        ws: &mut Workspace,
        shape: SeqShape,
        input: SequenceInput<'_, T>,
        mut out: SequenceOutputMut<'_, T>,
    ) -> Result<()> {
        let cfg = &self.cfg;
        let dims = check_call(cfg, shape, &input, &out)?;
        let isa = self.isa()?;
        let k = kernels::<W>(isa)?;
        if let Some(x) = T::as_f32(input.x) {
            let input = SequenceInput {
                x,
                h0: input.h0.and_then(T::as_f32),
                c0: input.c0.and_then(T::as_f32),
                seq_lens: input.seq_lens,
                attention: input.attention.and_then(T::as_f32),
            };
            let out = SequenceOutputMut {
                y: T::as_f32_mut(out.y).unwrap_or_default(),
                h_n: out.h_n.take().and_then(T::as_f32_mut),
                c_n: out.c_n.take().and_then(T::as_f32_mut),
            };
            return self.run(&k, ws, shape, input, out, None);
        }
        // bf16 inputs and bf16 weights on an AVX512-BF16 CPU: layer 0 multiplies the
        // caller's bf16 `x` directly (`vdpbf16ps`), so `x` is never widened.
        let dot = self.dot_input(&k, input.x);
        // Half-precision inputs and outputs: widen into f32 copies, run, round back.
        let att_len = input.attention.map_or(0, <[T]>::len);
        let [x32, h032, c032, y32, hn32, cn32, att32] =
            ws.carve_io([dims.x, dims.h, dims.c, dims.y, dims.h, dims.c, att_len])?;
        // SAFETY: each region was carved with the length of the slice it receives.
        let input32 = unsafe {
            SequenceInput {
                x: if dot.is_some() {
                    &[]
                } else {
                    input_f32(input.x, x32)
                },
                h0: input.h0.map(|h| input_f32(h, h032)),
                c0: input.c0.map(|c| input_f32(c, c032)),
                seq_lens: input.seq_lens,
                attention: input.attention.map(|a| input_f32(a, att32)),
            }
        };
        // SAFETY: as above; the regions are disjoint from each other and from `ws.buf`.
        let (y, h_n, c_n) = unsafe {
            (
                std::slice::from_raw_parts_mut(y32, dims.y),
                std::slice::from_raw_parts_mut(hn32, dims.h),
                std::slice::from_raw_parts_mut(cn32, dims.c),
            )
        };
        let want_h = out.h_n.is_some();
        let want_c = out.c_n.is_some();
        self.run(
            &k,
            ws,
            shape,
            input32,
            SequenceOutputMut {
                y: &mut *y,
                h_n: want_h.then_some(&mut *h_n),
                c_n: want_c.then_some(&mut *c_n),
            },
            dot,
        )?;
        T::slice_from_f32(y, out.y);
        if let Some(o) = out.h_n {
            T::slice_from_f32(h_n, o);
        }
        if let Some(o) = out.c_n {
            T::slice_from_f32(c_n, o);
        }
        Ok(())
    }

    /// The `vdpbf16ps` input projection of layer 0, if the table has it, the
    /// weights and `x` are bf16, and no weight of the network is infinite (the
    /// flushed outputs reach every later layer).
    fn dot_input<T: Element>(&self, k: &Kernels<W>, x: &[T]) -> Option<DotInput> {
        let d = self.cfg.num_directions();
        if !self.sets.iter().all(PackedDirection::no_infinite_weight) {
            return None;
        }
        let mut f = None;
        for set in &self.sets[..d] {
            f = Some(set.dot_input(k, x)?.0);
        }
        Some(DotInput {
            f: f?,
            x: x.as_ptr().cast::<u16>(),
        })
    }

    /// The `f32` driver; every length was checked by `forward`. With `dot`, layer 0
    /// reads the bf16 `x` it names instead of `input.x` (then empty).
    fn run(
        &self,
        k: &Kernels<W>,
        ws: &mut Workspace,
        shape: SeqShape,
        input: SequenceInput<'_, f32>,
        mut out: SequenceOutputMut<'_, f32>,
        dot: Option<DotInput>,
    ) -> Result<()> {
        let cfg = &self.cfg;
        let dims = shape.dims(cfg)?;
        let lstm = cfg.cell.has_cell_state();

        let (t_len, batch) = (shape.steps, shape.batch);
        let (d_len, ho, h) = (cfg.num_directions(), cfg.output_size(), cfg.hidden_size);
        let rows = t_len * batch; // fits: x has rows * I elements
        let overflow = || Error::Overflow {
            arg: "steps".into(),
            what: "steps * batch * gates * padded hidden (input projection buffer)".into(),
        };
        let pre_len = rows.checked_mul(pre_stride(cfg)).ok_or_else(overflow)?;
        let io_len = if cfg.num_layers > 1 { dims.y } else { 0 };
        let (hl, cl, al) = state_sizes(cfg, batch);
        // ONNX Runtime's scheme with sequence lengths runs rows aligned at their first
        // step, and only the first max(len) steps (`sequence_aligned`).
        let aligned = (W::QUANTIZED && self.act_quant == ActivationQuant::OnnxRuntime)
            .then_some(input.seq_lens)
            .flatten();
        let run_len = aligned.map_or(t_len, |l| l.iter().copied().max().unwrap_or(0));
        let q8_lens = if W::QUANTIZED {
            q8_sizes(cfg, rows).ok_or_else(overflow)?
        } else {
            (0, 0)
        };
        // An AUGRU run aligned in reverse reads each row's attention at its own time
        // index: one step's values gathered here.
        let att_len = if aligned.is_some() && input.attention.is_some() {
            batch
        } else {
            0
        };
        let [pre, io0, io1, h0b, h1b, c0b, c1b, aux, aux2, codes, params, att_step] =
            ws.carve([
                pre_len, io_len, io_len, hl, hl, cl, cl, al, al, q8_lens.0, q8_lens.1, att_len,
            ])?;
        let q8 = W::QUANTIZED.then(|| q8_scratch(codes, params, q8_lens, self.act_quant));
        let (hs, ps) = (padded(h), padded(ho));
        let bufs = Bufs {
            pre,
            io: [io0, io1],
            h: [h0b, h1b],
            c: [c0b, c1b],
            aux,
            aux2,
            y_user: Tensor3::new(out.y.as_mut_ptr(), &shape, cfg.y_width()),
            h_n: out.h_n.as_deref_mut().map(<[f32]>::as_mut_ptr),
            c_n: out.c_n.as_deref_mut().map(<[f32]>::as_mut_ptr),
            x: input.x.as_ptr(),
            // AUGRU's attention, laid out like `x` with width 1 (read only).
            att: input
                .attention
                .map(|a| Tensor3::new(a.as_ptr().cast_mut(), &shape, 1)),
            att_step,
        };
        let tm = SeqShape::new(t_len, batch);
        let pre_stride = pre_stride(cfg);
        let want = threads_for(
            step_fmas(cfg, batch),
            self.sets[0].cell.panels(),
            rayon::current_num_threads(),
        );

        // Every member runs this same program; serial parts are the leader's, and
        // every hand-over is separated by a barrier (`gemm` and each step pass end in
        // one, the post-step copies are followed by one).
        let body = |team: &Team<'_>| {
            let bufs = &bufs;
            for layer in 0..cfg.num_layers {
                // Layer 0 reads `x` (only ever read through this pointer); later layers
                // read the previous layer's output buffer.
                let src = if layer == 0 {
                    Tensor3::new(bufs.x.cast_mut(), &shape, cfg.input_size)
                } else {
                    Tensor3::new(bufs.io[(layer - 1) % 2], &tm, cfg.y_width())
                };
                let dst = if layer + 1 == cfg.num_layers {
                    bufs.y_user
                } else {
                    Tensor3::new(bufs.io[layer % 2], &tm, cfg.y_width())
                };
                for dir in 0..d_len {
                    let set = &self.sets[layer * d_len + dir];
                    let ld = layer * d_len + dir;
                    let mut st = StateBufs {
                        h_prev: bufs.h[0],
                        h_next: bufs.h[1],
                        c_prev: bufs.c[0],
                        c_next: bufs.c[1],
                        aux: bufs.aux,
                        aux2: bufs.aux2,
                    };
                    if team.is_leader() {
                        // SAFETY: the state buffers were carved with hl / cl elements;
                        // h0/c0 were checked to hold L*D*B rows.
                        unsafe { init_state(&st, &input, ld, batch, (ho, h), (ps, hs), (hl, cl)) };
                    }
                    let pairs = set.dot_pairs().filter(|_| layer == 0);
                    let store = Store {
                        out: bufs.pre,
                        stride: pre_stride,
                        bias: set.bias.as_slice().as_ptr(),
                    };
                    if let (Some(d), Some(pairs)) = (dot, pairs) {
                        let xr = Tensor3::new(std::ptr::null_mut(), &shape, cfg.input_size);
                        let a = Rows {
                            base: d.x,
                            stride_t: xr.stride_t,
                            stride_b: xr.stride_b,
                            batch,
                            q8: None,
                        };
                        let job = DotJob {
                            a,
                            nrows: rows,
                            w: pairs.view(),
                        };
                        // SAFETY: `d.x` is the caller's bf16 `x`, checked to hold rows
                        // * I values laid out like `shape`; `d.f` came from the
                        // dispatched table; `pre` and the bias as below.
                        unsafe { gemm_dot(team, d.f, &job, &store) };
                    } else {
                        let job = Job {
                            a: src.rows(batch).with_q8(q8),
                            nrows: run_len * batch,
                            w: set.w_ih.view(),
                        };
                        // SAFETY: `src` holds rows * k_in floats (checked `x`, or an io
                        // buffer of dims.y); `pre` holds rows * pre_stride >= rows *
                        // w_ih.cols(); the bias covers w_ih.cols().
                        unsafe { (k.gemm)(team, &job, &store) };
                    }
                    let reverse = cfg.direction.is_reverse(dir);
                    let fin = Finals {
                        // SAFETY: h_n / c_n were checked to hold L*D*B rows.
                        h_n: bufs.h_n.map(|p| unsafe { p.add(ld * batch * ho) }),
                        // SAFETY: as above.
                        c_n: bufs.c_n.map(|p| unsafe { p.add(ld * batch * h) }),
                    };
                    if let (Some(lens), true) = (aligned, reverse) {
                        if team.is_leader() {
                            // SAFETY: the product wrote run_len * batch rows of `pre`.
                            unsafe { align_reverse(bufs.pre, pre_stride, lens) };
                        }
                        team.sync();
                    }
                    for s in 0..run_len {
                        let t = if reverse && aligned.is_none() {
                            t_len - 1 - s
                        } else {
                            s
                        };
                        // Aligned in reverse, row b runs time len_b − 1 − s (`s` once
                        // past its length, whose result is discarded).
                        let gather = aligned.filter(|_| reverse);
                        if let (Some(a), Some(lens), true) = (&bufs.att, gather, team.is_leader()) {
                            for (b, &len) in lens.iter().enumerate() {
                                let tb = if s < len { len - 1 - s } else { s };
                                // SAFETY: tb < steps, b < batch: inside the caller's
                                // attention (checked); `att_step` holds `batch` floats.
                                unsafe { *bufs.att_step.add(b) = *a.at(tb, b) };
                            }
                        }
                        if gather.is_some() && bufs.att.is_some() {
                            team.sync();
                        }
                        // SAFETY: `pre` row block t lies within rows * pre_stride; state
                        // buffers sized by `state_sizes`.
                        unsafe {
                            let pre_t = bufs.pre.add(t * batch * pre_stride);
                            let (att, att_stride) = match (&bufs.att, gather) {
                                (Some(_), Some(_)) => (bufs.att_step.cast_const(), 1),
                                (Some(a), None) => (a.at(t, 0).cast_const(), a.stride_b),
                                (None, _) => (std::ptr::null(), 0),
                            };
                            let sp = StepPtrs {
                                q8,
                                att,
                                att_stride,
                                ..StepPtrs::new(cfg, dir, batch, pre_t, &st, s % 2 == 1)
                            };
                            (k.step)(&set.cell, &sp, team);
                        }
                        if let Some(lens) = aligned {
                            let dims = (ho, h, ps, hs);
                            // SAFETY: (t, b) inside `dst` for t < steps, b < batch;
                            // state rows padded to ps / hs; `fin` as above; the
                            // members' rows are disjoint.
                            unsafe {
                                finish_aligned_step(
                                    &st,
                                    &dst,
                                    s,
                                    (YSlot::of(cfg, dir), reverse),
                                    (lens, team.share().of(batch, 1)),
                                    lstm,
                                    fin,
                                    dims,
                                );
                            }
                        } else {
                            // SAFETY: (t, b) inside `dst` for b < batch; state rows
                            // padded to ps / hs; the members' rows are disjoint.
                            unsafe {
                                finish_step(
                                    &st,
                                    &dst,
                                    t,
                                    YSlot::of(cfg, dir),
                                    team.share().of(batch, 1),
                                    input.seq_lens,
                                    lstm,
                                    (ho, ps, hs),
                                )
                            };
                        }
                        team.sync();
                        st.swap();
                    }
                    if let (Some(lens), true) = (aligned, team.is_leader()) {
                        let dims = (ho, h, ps, hs);
                        // SAFETY: as for `finish_aligned_step`.
                        unsafe {
                            let slot = YSlot::of(cfg, dir);
                            finish_aligned(&st, &dst, (slot, t_len), lens, lstm, fin, dims);
                        }
                    } else if team.is_leader() {
                        for b in 0..batch {
                            // SAFETY: row b of the padded state buffers holds >= ho / h
                            // floats; h_n / c_n were checked to hold L*D*B rows.
                            unsafe {
                                if let Some(h_n) = bufs.h_n {
                                    let dstp = h_n.add((ld * batch + b) * ho);
                                    std::ptr::copy_nonoverlapping(st.h_prev.add(b * ps), dstp, ho);
                                }
                                if let Some(c_n) = bufs.c_n {
                                    let dstp = c_n.add((ld * batch + b) * h);
                                    std::ptr::copy_nonoverlapping(st.c_prev.add(b * hs), dstp, h);
                                }
                            }
                        }
                    }
                }
            }
        };
        run_team(want, &body);
        Ok(())
    }
}

/// Checks every length and option of a sequence call (the forward's and the training
/// forward's) and returns the lengths the shape implies.
pub(crate) fn check_call<T>(
    cfg: &RnnConfig,
    shape: SeqShape,
    input: &SequenceInput<'_, T>,
    out: &SequenceOutputMut<'_, T>,
) -> Result<SeqDims> {
    let dims = shape.dims(cfg)?;
    check_len("x", dims.x, input.x.len())?;
    let lstm = cfg.cell.has_cell_state();
    if let Some(h0) = input.h0 {
        check_len("h0", dims.h, h0.len())?;
    }
    if let Some(h_n) = out.h_n.as_deref() {
        check_len("h_n", dims.h, h_n.len())?;
    }
    check_len("y", dims.y, out.y.len())?;
    for (name, len) in [
        ("c0", input.c0.map(<[T]>::len)),
        ("c_n", out.c_n.as_deref().map(<[T]>::len)),
    ] {
        match (lstm, len) {
            (true, Some(l)) => check_len(name, dims.c, l)?,
            (false, Some(_)) => {
                return Err(Error::Invalid {
                    arg: name.into(),
                    expected: format!("None (a {} has no cell state)", cfg.cell.name()),
                    actual: "a slice".into(),
                })
            }
            _ => {}
        }
    }
    check_seq_lens(input.seq_lens, &shape)?;
    check_sequence_attention(cfg, &shape, input.attention.map(<[T]>::len))?;
    Ok(dims)
}

/// Layer 0's input projection by `vdpbf16ps` straight from the caller's bf16 `x`.
#[derive(Clone, Copy)]
struct DotInput {
    f: DotFn,
    x: *const u16,
}

// SAFETY: `x` points into the caller's input slice, which outlives the team and is
// only read.
unsafe impl Sync for DotInput {}

/// Every buffer a sequence run shares between its team members.
struct Bufs {
    pre: *mut f32,
    io: [*mut f32; 2],
    h: [*mut f32; 2],
    c: [*mut f32; 2],
    aux: *mut f32,
    aux2: *mut f32,
    y_user: Tensor3,
    h_n: Option<*mut f32>,
    c_n: Option<*mut f32>,
    x: *const f32,
    /// AUGRU's attention (the caller's, or its widened copy), only read.
    att: Option<Tensor3>,
    /// One step's attention per row, gathered by the leader when an AUGRU runs aligned
    /// in reverse (`batch` floats; empty otherwise).
    att_step: *mut f32,
}

// SAFETY: the pointers are into the caller's slices and the workspace, which outlive
// the team; members write disjoint panels, and serial parts are separated from
// parallel ones by barriers.
unsafe impl Sync for Bufs {}

/// Zeroes the state buffers and copies in this layer and direction's `h0`/`c0`.
///
/// # Safety
/// `st.h_prev` holds `lens.0` floats and `st.c_prev` `lens.1`; `h0`/`c0` hold L*D*B rows.
pub(crate) unsafe fn init_state(
    st: &StateBufs,
    input: &SequenceInput<'_, f32>,
    ld: usize,
    batch: usize,
    (ho, h): (usize, usize),
    (ps, hs): (usize, usize),
    lens: (usize, usize),
) {
    // SAFETY: caller's contract.
    unsafe {
        std::ptr::write_bytes(st.h_prev, 0, lens.0);
        std::ptr::write_bytes(st.c_prev, 0, lens.1);
        for b in 0..batch {
            if let Some(h0) = input.h0 {
                let src = &h0[(ld * batch + b) * ho..][..ho];
                std::ptr::copy_nonoverlapping(src.as_ptr(), st.h_prev.add(b * ps), ho);
            }
            if let Some(c0) = input.c0 {
                let src = &c0[(ld * batch + b) * h..][..h];
                std::ptr::copy_nonoverlapping(src.as_ptr(), st.c_prev.add(b * hs), h);
            }
        }
    }
}

/// Where one direction's outputs go in a row of `y`: block `block` (`H_out` floats),
/// added to what is there when `add` (the reverse of two summed directions, which runs
/// after the forward one has written the block).
#[derive(Clone, Copy)]
pub(crate) struct YSlot {
    pub(crate) block: usize,
    pub(crate) add: bool,
}

impl YSlot {
    /// Direction `dir`'s slot.
    pub(crate) fn of(cfg: &RnnConfig, dir: usize) -> Self {
        YSlot {
            block: cfg.direction.output_block(dir),
            add: cfg.direction == Direction::BidirectionalSum && dir == 1,
        }
    }

    /// Writes (or adds) `ho` floats of `src` into the slot of the `y` row at `row`.
    ///
    /// # Safety
    /// `row` holds the slot's `ho` floats, `src` `ho` floats.
    #[inline]
    pub(crate) unsafe fn put(self, row: *mut f32, src: *const f32, ho: usize) {
        // SAFETY: caller's contract.
        unsafe {
            let dst = row.add(self.block * ho);
            if self.add {
                for k in 0..ho {
                    *dst.add(k) += *src.add(k);
                }
            } else {
                std::ptr::copy_nonoverlapping(src, dst, ho);
            }
        }
    }

    /// Zeros the slot (a step the row did not run; summed: the forward already did).
    ///
    /// # Safety
    /// As for [`put`](Self::put).
    #[inline]
    pub(crate) unsafe fn zero(self, row: *mut f32, ho: usize) {
        if !self.add {
            // SAFETY: caller's contract.
            unsafe { std::ptr::write_bytes(row.add(self.block * ho), 0, ho) };
        }
    }
}

/// After a step: writes `y` for the batch rows `rows` still running, and for rows past
/// their length keeps the old state and writes zeros. Every member of a team takes its
/// share of the rows (`Share::of`): at batch 64 and 2 threads the leader's copy of all
/// of `y` was 3% of an int8 LSTM's samples, with the other member waiting.
///
/// # Safety
/// `(t, b)` is inside `dst` and `b` inside `seq_lens` for every `b` in `rows`; state
/// rows are padded to `ps`/`hs`; no one else writes these rows meanwhile.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn finish_step(
    st: &StateBufs,
    dst: &Tensor3,
    t: usize,
    slot: YSlot,
    rows: std::ops::Range<usize>,
    seq_lens: Option<&[usize]>,
    lstm: bool,
    (ho, ps, hs): (usize, usize, usize),
) {
    for b in rows {
        let active = seq_lens.is_none_or(|l| t < l[b]);
        // SAFETY: caller's contract.
        unsafe {
            let yrow = dst.at(t, b);
            if active {
                slot.put(yrow, st.h_next.add(b * ps), ho);
            } else {
                std::ptr::copy_nonoverlapping(st.h_prev.add(b * ps), st.h_next.add(b * ps), ps);
                if lstm {
                    std::ptr::copy_nonoverlapping(st.c_prev.add(b * hs), st.c_next.add(b * hs), hs);
                }
                slot.zero(yrow, ho);
            }
        }
    }
}
