//! ONNX Runtime's order for sequences of different lengths, which its int8 scheme
//! ([`ActivationQuant::OnnxRuntime`](rnn_reference::quant::ActivationQuant)) makes
//! visible: `h` is quantized over the whole batch at each step, so which rows share a
//! step decides the codes. `rnn_reference::quant::forward_quantized` defines it: rows
//! run aligned at their first step (at step `s`, row `b` of length `len_b` runs
//! `t = s`, or `t = len_b − 1 − s` in the reverse direction, while `s < len_b`); a row
//! that ended at the previous step still takes part with its last `h`, a row that
//! ended before with 0; only the first `max(len)` steps run and feed the input's range.
//!
//! The driver keeps its loop: for the reverse direction [`align_reverse`] reorders the
//! input projection so that block `s` holds each row's step `s`, and
//! [`finish_aligned_step`] replaces the usual after-step copies. `align_reverse` and
//! [`finish_aligned`] are serial (the leader's); `finish_aligned_step` takes a range of
//! rows, so the team's members each finish their share. None allocates.

use crate::cells::StateBufs;
use crate::sequence::{Tensor3, YSlot};

/// Reverses, for every row `b`, the order of its first `lens[b]` blocks of `pre`
/// (`[steps, batch, stride]`), so that block `s` holds time index `lens[b] − 1 − s`.
///
/// # Safety
/// `pre` holds `max(lens) · lens.len()` rows of `stride` floats.
pub(crate) unsafe fn align_reverse(pre: *mut f32, stride: usize, lens: &[usize]) {
    let batch = lens.len();
    for (b, &len) in lens.iter().enumerate() {
        for i in 0..len / 2 {
            let j = len - 1 - i;
            // SAFETY: i < j < len <= max(lens): both rows inside `pre`, and distinct.
            unsafe {
                std::ptr::swap_nonoverlapping(
                    pre.add((i * batch + b) * stride),
                    pre.add((j * batch + b) * stride),
                    stride,
                );
            }
        }
    }
}

/// Where the final states of this layer and direction go: `h_n`/`c_n` (if wanted)
/// already offset to the direction's first row.
#[derive(Clone, Copy)]
pub(crate) struct Finals {
    pub(crate) h_n: Option<*mut f32>,
    pub(crate) c_n: Option<*mut f32>,
}

/// After aligned step `s`, for the batch rows `rows`: rows still running write `y` at
/// their time index; a row that ended at the previous step (`s == len`) records its
/// state (still in `h_prev`/`c_prev`) as its final one; every ended row writes zeros to
/// `y` at `t = s` and gets a zero state, which the next step's batch-wide `h` range
/// sees. Each row touches only its own `y`, state and final rows.
///
/// # Safety
/// `(t, b)` is inside `dst` for `t < max(lens)`, `b < lens.len()`; `rows` within
/// `0..lens.len()`; state rows are padded to `ps`/`hs`; `fin`'s pointers hold
/// `lens.len()` rows of `ho` / `h` floats; no one else writes these rows meanwhile.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn finish_aligned_step(
    st: &StateBufs,
    dst: &Tensor3,
    s: usize,
    (slot, reverse): (YSlot, bool),
    (lens, rows): (&[usize], std::ops::Range<usize>),
    lstm: bool,
    fin: Finals,
    (ho, h, ps, hs): (usize, usize, usize, usize),
) {
    for b in rows {
        let len = lens[b];
        // SAFETY: caller's contract.
        unsafe {
            if s < len {
                let t = if reverse { len - 1 - s } else { s };
                slot.put(dst.at(t, b), st.h_next.add(b * ps), ho);
                continue;
            }
            if s == len {
                record_final(st, b, lstm, fin, (ho, h, ps, hs));
            }
            slot.zero(dst.at(s, b), ho);
            std::ptr::write_bytes(st.h_next.add(b * ps), 0, ps);
            if lstm {
                std::ptr::write_bytes(st.c_next.add(b * hs), 0, hs);
            }
        }
    }
}

/// After the last aligned step (`max(lens)`): the rows that ran to it record their
/// state; `y` is zero at the steps no row reached.
///
/// # Safety
/// As for [`finish_aligned_step`], with `(t, b)` inside `dst` for `t < steps`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn finish_aligned(
    st: &StateBufs,
    dst: &Tensor3,
    (slot, steps): (YSlot, usize),
    lens: &[usize],
    lstm: bool,
    fin: Finals,
    (ho, h, ps, hs): (usize, usize, usize, usize),
) {
    let run = lens.iter().copied().max().unwrap_or(0);
    for (b, &len) in lens.iter().enumerate() {
        // SAFETY: caller's contract.
        unsafe {
            if len == run {
                record_final(st, b, lstm, fin, (ho, h, ps, hs));
            }
            for t in run..steps {
                slot.zero(dst.at(t, b), ho);
            }
        }
    }
}

/// Copies row `b` of `h_prev`/`c_prev` to the final states.
///
/// # Safety
/// As for [`finish_aligned_step`].
unsafe fn record_final(
    st: &StateBufs,
    b: usize,
    lstm: bool,
    fin: Finals,
    (ho, h, ps, hs): (usize, usize, usize, usize),
) {
    // SAFETY: caller's contract.
    unsafe {
        if let Some(h_n) = fin.h_n {
            std::ptr::copy_nonoverlapping(st.h_prev.add(b * ps), h_n.add(b * ho), ho);
        }
        if let (true, Some(c_n)) = (lstm, fin.c_n) {
            std::ptr::copy_nonoverlapping(st.c_prev.add(b * hs), c_n.add(b * h), h);
        }
    }
}
