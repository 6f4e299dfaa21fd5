//! The callers' tensors as `f32`: used in place when they are `f32`, widened into
//! workspace copies when they are half precision. Shared by both drivers.

use crate::element::Element;

/// An `f32` view of a caller's slice: the slice itself, or a converted copy in `buf`.
///
/// # Safety
/// `buf` must be valid for `s.len()` writes and not otherwise in use.
pub(crate) unsafe fn input_f32<T: Element>(s: &[T], buf: *mut f32) -> &[f32] {
    match T::as_f32(s) {
        Some(f) => f,
        None => {
            // SAFETY: caller's contract: `buf` holds s.len() floats, unaliased.
            let dst = unsafe { std::slice::from_raw_parts_mut(buf, s.len()) };
            T::slice_to_f32(s, dst);
            dst
        }
    }
}

/// How many `f32` a widened copy of `len` elements of `T` needs: 0 for `f32`, which is
/// used in place.
pub(crate) fn copy_len<T: Element>(len: usize) -> usize {
    if T::as_f32(&[]).is_some() {
        0
    } else {
        len
    }
}
