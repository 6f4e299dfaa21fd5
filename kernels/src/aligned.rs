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
// SAFETY: plain 4-byte integers: every bit pattern is valid, no padding.
unsafe impl Plain for i32 {}
// SAFETY: plain bytes: every bit pattern is valid, no padding.
unsafe impl Plain for i8 {}
// SAFETY: plain bytes: every bit pattern is valid, no padding.
unsafe impl Plain for u8 {}
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

    /// `len` zeros. Buffers of several MiB (packed weights, big workspaces) ask the OS
    /// for 2 MiB pages before first touching them: a batch-1 step streams all of its
    /// weights, and with 4 KiB pages a 16 MiB matrix needs more TLB entries than the
    /// core has.
    pub(crate) fn zeros(len: usize) -> Self {
        let n = len.div_ceil(Self::PER_LINE);
        let mut lines: Vec<Line> = Vec::with_capacity(n);
        huge_pages::advise(lines.as_mut_ptr().cast(), n * std::mem::size_of::<Line>());
        lines.resize(n, Line([0; 64]));
        AlignedVec {
            lines,
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

/// Transparent huge pages for large buffers (Linux; elsewhere nothing).
mod huge_pages {
    /// Buffers smaller than this keep normal pages.
    #[cfg(target_os = "linux")]
    const MIN_BYTES: usize = 4 << 20;
    /// The huge page size on x86_64 and aarch64 Linux.
    #[cfg(target_os = "linux")]
    const HUGE: usize = 2 << 20;

    #[cfg(target_os = "linux")]
    extern "C" {
        /// POSIX `madvise` from the C library std already links.
        fn madvise(
            addr: *mut core::ffi::c_void,
            len: usize,
            advice: core::ffi::c_int,
        ) -> core::ffi::c_int;
    }

    /// Advises huge pages for the whole 2 MiB-aligned pages inside `[ptr, ptr + bytes)`
    /// (memory not yet touched, so its first touch can fault in huge pages). Advice
    /// only: failure (no THP, `never` policy) changes nothing.
    pub(super) fn advise(ptr: *mut u8, bytes: usize) {
        #[cfg(target_os = "linux")]
        if bytes >= MIN_BYTES {
            let start = (ptr as usize).next_multiple_of(HUGE);
            let end = (ptr as usize + bytes) / HUGE * HUGE;
            if end > start {
                // SAFETY: `[start, end)` lies inside an allocation this process owns
                // (the caller's fresh capacity) and is page-aligned; MADV_HUGEPAGE (14)
                // only changes how the kernel backs the range, never its contents or
                // validity.
                unsafe { madvise(start as *mut core::ffi::c_void, end - start, 14) };
            }
        }
        let _ = (ptr, bytes);
    }
}
