//! A growable `f32` buffer aligned to cache lines, so packed weight panels and state
//! rows never straddle a line where they need not.

/// One 64-byte cache line of `f32`.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// Zero-initialised, 64-byte aligned `f32` storage.
#[derive(Clone, Default)]
pub(crate) struct AlignedVec {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedVec {
    /// `len` zeros.
    pub(crate) fn zeros(len: usize) -> Self {
        AlignedVec {
            lines: vec![Line([0.0; 16]); len.div_ceil(16)],
            len,
        }
    }

    /// Grows (never shrinks) to at least `len` elements; contents are unspecified after
    /// a growth. Allocates only when growing.
    pub(crate) fn ensure(&mut self, len: usize) {
        if len > self.len {
            *self = AlignedVec::zeros(len);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn as_slice(&self) -> &[f32] {
        // SAFETY: `Line` is `repr(C)` over `[f32; 16]` with no padding (64 bytes, align
        // 64), so the lines form `16 * lines.len() >= len` contiguous initialised f32.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<f32>(), self.len) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f32>(), self.len) }
    }
}
