//! bf16 weights in row pairs, the layout `vdpbf16ps` multiplies.

#[cfg(test)]
use super::LANES;
use super::{index, Panels};
use crate::aligned::AlignedVec;
use crate::element::Storage;

/// A bf16 matrix packed for `vdpbf16ps`: like [`Panels`] (same columns, same panels of
/// `NP` vectors), but each panel is stored as `[k.div_ceil(2)][NP * 16]` 32-bit words,
/// word `(q, c)` holding rows `2q` (low half) and `2q + 1` (high half) of column `c`. An
/// odd `k` pads the last pair with a zero row.
#[derive(Clone)]
pub(crate) struct PairPanels<const NP: usize> {
    data: AlignedVec<u32>,
    k: usize,
    panels: usize,
}

impl<W: Storage, const NP: usize> Panels<W, NP> {
    /// Whether `vdpbf16ps` computes every product of these weights as IEEE
    /// multiplication would, whatever the inputs: no weight is subnormal (the
    /// instruction reads it as 0, so `inf * w` would become NaN instead of ±inf) or
    /// infinite (a subnormal input, read as 0, would make `x * inf` NaN). Subnormal
    /// inputs times finite weights only lose a product below 2^-126 in magnitude.
    /// `false` for weights not stored as bf16.
    pub(crate) fn dot_products_exact(&self) -> bool {
        W::as_bf16(self.data()).is_some_and(|d| {
            d.iter().all(|w| {
                !w.is_infinite() && (w.is_normal() || *w == half::bf16::ZERO || w.is_nan())
            })
        })
    }

    /// The same matrix with rows taken two at a time (see [`PairPanels`]), if it is
    /// stored as bf16 (in either layout). Exact: the bf16 values are copied, not
    /// re-rounded.
    pub(crate) fn to_k_pairs(&self) -> Option<PairPanels<NP>> {
        let src = W::as_bf16(self.data())?;
        let width = Self::WIDTH;
        let k = self.k();
        let kq = k.div_ceil(2);
        let mut data = AlignedVec::<u32>::zeros(self.panels() * kq * width);
        let out = data.as_mut_slice();
        let striped = self.striped();
        let at = |p: usize, kk: usize, col: usize| -> u32 {
            if kk < k {
                u32::from(src[index::<half::bf16, NP>(striped, k, p, kk, col)].to_bits())
            } else {
                0 // an odd k's last pair: the missing row is a zero weight
            }
        };
        for p in 0..self.panels() {
            for q in 0..kq {
                for col in 0..width {
                    out[(p * kq + q) * width + col] =
                        at(p, 2 * q, col) | at(p, 2 * q + 1, col) << 16;
                }
            }
        }
        Some(PairPanels {
            data,
            k,
            panels: self.panels(),
        })
    }
}

impl<const NP: usize> PairPanels<NP> {
    /// Borrowed raw view for the kernels.
    pub(crate) fn view(&self) -> PairPanelsView<NP> {
        PairPanelsView {
            ptr: self.data.as_slice().as_ptr(),
            k: self.k,
            panels: self.panels,
        }
    }

    #[cfg(test)]
    fn panels(&self) -> usize {
        self.panels
    }

    /// Total packed columns.
    #[cfg(test)]
    fn cols(&self) -> usize {
        self.panels * NP * LANES
    }

    #[cfg(test)]
    fn k(&self) -> usize {
        self.k
    }
}

/// What a kernel needs of a [`PairPanels`]; the width is the type's `NP`. (Read by the
/// AVX512-BF16 kernel only, so unread on other targets.)
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct PairPanelsView<const NP: usize> {
    pub(crate) ptr: *const u32,
    pub(crate) k: usize,
    pub(crate) panels: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_pairs_hold_consecutive_rows_of_one_column() {
        // 4 gates x 20 rows, odd k = 3; value encodes (gate, unit, k) exactly in bf16.
        use half::bf16;
        let (rows, k) = (20, 3);
        let w: Vec<f32> = (0..4 * rows * k)
            .map(|i| {
                let (r, kk) = (i / k, i % k);
                (r / rows * 64 + r % rows * 3 + kk) as f32
            })
            .collect();
        for striped in [false, true] {
            let p = Panels::<bf16, 4>::pack_layout(&w, rows, k, &[0, 1, 2, 3], striped);
            pairs_of(&p, &w, rows, k);
        }
    }

    fn pairs_of(p: &Panels<half::bf16, 4>, w: &[f32], rows: usize, k: usize) {
        use half::bf16;
        let q = p.to_k_pairs().unwrap();
        assert_eq!((q.panels(), q.k(), q.cols()), (p.panels(), 3, p.cols()));
        let d = q.data.as_slice();
        let (width, kq) = (64, 2);
        let split = |v: u32| {
            (
                bf16::from_bits(v as u16).to_f32(),
                bf16::from_bits((v >> 16) as u16).to_f32(),
            )
        };
        // panel 0, pair 0, column 16 + 5: gate 1, unit 5, rows k = 0 and 1.
        assert_eq!(split(d[21]), (64.0 + 15.0, 64.0 + 16.0));
        // panel 1 (second unit tile), pair 1, column 3 * 16 + 2: gate 3, unit 18, k = 2
        // and the zero padding row.
        assert_eq!(
            split(d[(kq + 1) * width + 50]),
            (3.0 * 64.0 + 54.0 + 2.0, 0.0)
        );
        // unit 20 is padding.
        assert_eq!(d[kq * width + 4], 0);
        // Only bf16 storage has pairs.
        assert!(Panels::<f32, 4>::pack(w, rows, k, &[0])
            .to_k_pairs()
            .is_none());
    }
}
