//! The plain product's epilogues: `out[row][cols] = acc (+ bias[cols])`, and
//! `out[row][cols] += acc` for a product split along `k`.

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

/// Adds a product to what `out` holds: the later slices of a product split along `k`
/// (the weight gradients' `k` is every step's rows).
pub(crate) struct AddStore {
    pub(crate) out: *mut f32,
    pub(crate) stride: usize,
}

// SAFETY: as for `Store`.
unsafe impl Sync for AddStore {}

impl<V: V16, const NP: usize> Epilogue<V, NP> for AddStore {
    #[inline(always)]
    unsafe fn finish(&self, row: usize, panel: usize, acc: &[V; NP]) {
        let col0 = panel * NP * LANES;
        for (q, &a) in acc.iter().enumerate() {
            // SAFETY: the driver sized `out` (rows x stride) to cover every panel.
            unsafe {
                let at = self.out.add(row * self.stride + col0 + q * LANES);
                V::load(at).add(a).store(at);
            }
        }
    }
}
