//! The plain product's epilogue: `out[row][cols] = acc (+ bias[cols])`.

use super::walk::Epilogue;
use crate::pack::LANES;
use crate::simd::V16;

/// Stores a plain product (input projection, LSTM projection), adding a
/// column-aligned bias if one is given.
pub(crate) struct Store {
    pub(crate) out: *mut f32,
    pub(crate) stride: usize,
    /// Column-aligned bias or null.
    pub(crate) bias: *const f32,
}

// SAFETY: the pointers point into buffers that outlive the team sharing the epilogue;
// members write disjoint panels (disjoint columns of every output row).
unsafe impl Sync for Store {}

impl<V: V16, const NP: usize> Epilogue<V, NP> for Store {
    #[inline(always)]
    unsafe fn finish(&self, row: usize, panel: usize, acc: &[V; NP]) {
        let col0 = panel * NP * LANES;
        for (q, &a) in acc.iter().enumerate() {
            let c = col0 + q * LANES;
            // SAFETY: the driver sized `out` (rows x stride) and `bias` (stride) to
            // cover every panel's columns.
            unsafe {
                let v = if self.bias.is_null() {
                    a
                } else {
                    a.add(V::load(self.bias.add(c)))
                };
                v.store(self.out.add(row * self.stride + c));
            }
        }
    }
}
