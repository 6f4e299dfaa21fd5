//! Reusable scratch memory, so repeated calls do not allocate.

use rnn_reference::quant::ActivationQuant;
use rnn_reference::RnnConfig;

use crate::aligned::AlignedVec;
use crate::kernel::walk_i8::{Q8Scratch, RowQuant};
use crate::{Error, Result};

/// Scratch space for [`PackedRnn::forward`](crate::PackedRnn::forward) and
/// [`PackedCell::step`](crate::PackedCell::step). It grows on first use for a shape
/// and is reused afterwards: calls with the same or smaller shapes never allocate.
/// Not shared between threads at once; keep one per thread or per stream.
#[derive(Default)]
pub struct Workspace {
    buf: AlignedVec,
    /// f32 copies of half-precision inputs and outputs.
    io: AlignedVec,
}

impl Workspace {
    /// An empty workspace (allocates on first use).
    pub fn new() -> Self {
        Workspace::default()
    }

    /// Elements currently held.
    pub fn capacity(&self) -> usize {
        self.buf.len() + self.io.len()
    }

    /// Carves `sizes.len()` disjoint zero-or-garbage regions, each starting on a cache
    /// line, and returns their base pointers. Grows the buffer if needed.
    pub(crate) fn carve<const N: usize>(&mut self, sizes: [usize; N]) -> Result<[*mut f32; N]> {
        carve(&mut self.buf, sizes)
    }

    /// Like `carve`, from a second buffer that `carve` never touches.
    pub(crate) fn carve_io<const N: usize>(&mut self, sizes: [usize; N]) -> Result<[*mut f32; N]> {
        carve(&mut self.io, sizes)
    }
}

/// Carves `sizes.len()` disjoint regions of `buf` (see [`Workspace::carve`]).
pub(crate) fn carve<const N: usize>(
    buf: &mut AlignedVec,
    sizes: [usize; N],
) -> Result<[*mut f32; N]> {
    #[allow(clippy::blocks_in_conditions)]
    {
        let mut offsets = [0usize; N];
        let mut total = 0usize;
        for (o, &s) in offsets.iter_mut().zip(sizes.iter()) {
            *o = total;
            let s = s
                .checked_next_multiple_of(16)
                .ok_or_else(|| Error::Overflow {
                    arg: "workspace".into(),
                    what: "scratch size".into(),
                })?;
            total = total.checked_add(s).ok_or_else(|| Error::Overflow {
                arg: "workspace".into(),
                what: "scratch size".into(),
            })?;
        }
        buf.ensure(total);
        let base = buf.as_mut_slice().as_mut_ptr();
        // SAFETY: every offset is <= total <= buf.len(), so each pointer is inside (or
        // one past) the buffer.
        Ok(offsets.map(|o| unsafe { base.add(o) }))
    }
}

/// Workspace floats for the int8 operand scratch of a call whose products have at most
/// `rows` left-operand rows: `(codes, parameters)`: the widest product's rows of codes
/// (4-byte groups), and three floats (a [`RowQuant`]) per row plus one more slot (a
/// shared block's parameters). `None` on overflow.
pub(crate) fn q8_sizes(cfg: &RnnConfig, rows: usize) -> Option<(usize, usize)> {
    let words = |k: usize| k.div_ceil(4);
    let k_in = (0..cfg.num_layers)
        .map(|l| cfg.layer_input_size(l))
        .max()
        .unwrap_or(0);
    let k_step = cfg.hidden_size.max(cfg.output_size());
    let codes = rows
        .checked_mul(words(k_in))?
        .max(rows.checked_mul(words(k_step))?);
    Some((codes, rows.checked_add(1)?.checked_mul(3)?))
}

/// The int8 operand scratch over regions carved with the lengths [`q8_sizes`] gave,
/// quantizing by `scheme`.
pub(crate) fn q8_scratch(
    codes: *mut f32,
    params: *mut f32,
    (codes_len, params_len): (usize, usize),
    scheme: ActivationQuant,
) -> Q8Scratch {
    Q8Scratch {
        codes: codes.cast::<u8>(),
        codes_len: codes_len * 4,
        params: params.cast::<RowQuant>(),
        params_len: params_len / 3,
        qmax: scheme.qmax(),
        per_row: scheme.per_row(),
    }
}
