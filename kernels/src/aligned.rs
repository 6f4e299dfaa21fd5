//! A growable buffer aligned to cache lines, so packed weight panels and state rows
//! never straddle a line where they need not.

use std::marker::PhantomData;

/// One 64-byte cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Element types an [`AlignedVec`] may hold: plain numbers whose all-zero bit pattern is
/// the value 0 and whose size divides 64.
///
/// # Safety
/// Implementors must be `Copy`, have no padding and no invalid bit patterns, and a size
/// that divides 64.
pub unsafe trait Plain: Copy + 'static {}
// SAFETY: 4-byte IEEE floats: every bit pattern is valid, no padding.
unsafe impl Plain for f32 {}
// SAFETY: plain 4-byte integers: every bit pattern is valid, no padding.
unsafe impl Plain for u32 {}
// SAFETY: `half::f16` is a `repr(transparent)` u16: every bit pattern is valid.
unsafe impl Plain for half::f16 {}
// SAFETY: `half::bf16` is a `repr(transparent)` u16: every bit pattern is valid.
unsafe impl Plain for half::bf16 {}

/// Zero-initialised, 64-byte aligned storage of `T`.
#[derive(Clone)]
pub(crate) struct AlignedVec<T: Plain = f32> {
    lines: Vec<Line>,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Plain> Default for AlignedVec<T> {
    fn default() -> Self {
        AlignedVec {
            lines: Vec::new(),
            len: 0,
            _t: PhantomData,
        }
    }
}

impl<T: Plain> AlignedVec<T> {
    const PER_LINE: usize = 64 / std::mem::size_of::<T>();

    /// `len` zeros.
    pub(crate) fn zeros(len: usize) -> Self {
        AlignedVec {
            lines: vec![Line([0; 64]); len.div_ceil(Self::PER_LINE)],
            len,
            _t: PhantomData,
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

    pub(crate) fn as_slice(&self) -> &[T] {
        // SAFETY: the lines are `PER_LINE * lines.len() >= len` contiguous, initialised
        // (zeroed or written) elements of a `Plain` type, aligned to 64 >= align_of::<T>.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<T>(), self.len) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<T>(), self.len) }
    }
}
