//! Packing of weight matrices into panels for the register-tile micro-kernel.
//!
//! A PyTorch weight matrix is `[gates * rows, k]` row-major: output unit `u` of gate
//! `g` is row `g * rows + u`. Packing turns a chosen subset of gates into *columns*
//! grouped 16 units at a time and gate-interleaved:
//!
//! ```text
//! column c  ->  unit tile j = c / (16 * ng),  gate index (c / 16) % ng,  lane c % 16
//! ```
//!
//! so one 16-unit tile of hidden units yields all `ng` gates side by side. Columns are
//! cut into panels of `np * 16`; a panel is stored `k`-major (`[k][np * 16]`), which is
//! the order the micro-kernel streams it in. Padding columns (units past `rows`, or
//! past the last panel) are zero, which keeps padded hidden units at exactly zero.

use crate::aligned::AlignedVec;
use crate::element::{Element, WeightLoad};

/// Lanes per vector tile: one tile of hidden units.
pub(crate) const LANES: usize = 16;

/// Rounds `n` up to a whole number of 64-unit blocks: the stride of every padded
/// state row, so any kernel (panels of up to 4 tiles) may write whole panels.
pub(crate) fn padded(n: usize) -> usize {
    n.div_ceil(64) * 64
}

/// A packed matrix: `panels` panels of `np * 16` columns by `k` rows, stored as `W`.
#[derive(Clone)]
pub(crate) struct Panels<W: WeightLoad = f32> {
    data: AlignedVec<W>,
    k: usize,
    np: usize,
    panels: usize,
}

impl<W: WeightLoad> Panels<W> {
    /// Packs gates `gates` (indices of gate blocks) of `w` (`[n_gates * rows, k]`),
    /// rounding each value to `W` (to nearest, ties to even).
    pub(crate) fn pack<S: Element>(
        w: &[S],
        rows: usize,
        k: usize,
        gates: &[usize],
        np: usize,
    ) -> Self {
        let ng = gates.len();
        let tiles = rows.div_ceil(LANES);
        let cols = tiles * ng * LANES;
        let panels = cols.div_ceil(np * LANES);
        let width = np * LANES;
        let mut data = AlignedVec::zeros(panels * k * width);
        let out = data.as_mut_slice();
        for c in 0..panels * width {
            let (j, gi, l) = (c / (LANES * ng), (c / LANES) % ng, c % LANES);
            let u = j * LANES + l;
            if j >= tiles || u >= rows {
                continue;
            }
            let src = &w[(gates[gi] * rows + u) * k..][..k];
            let (p, col) = (c / width, c % width);
            for (kk, &v) in src.iter().enumerate() {
                out[(p * k + kk) * width + W::position(col, np)] = W::round_from(v.to_f32());
            }
        }
        Panels {
            data,
            k,
            np,
            panels,
        }
    }

    /// Packs a vector laid out like the columns: element `c` takes `v[gates[gi] * rows + u]`.
    /// Used for biases and peepholes so they line up with accumulator lanes.
    pub(crate) fn pack_vector<S: Element>(
        v: &[S],
        rows: usize,
        gates: &[usize],
        stride_cols: usize,
    ) -> AlignedVec {
        let ng = gates.len();
        let mut out = AlignedVec::zeros(stride_cols);
        let o = out.as_mut_slice();
        for (c, slot) in o.iter_mut().enumerate() {
            let (j, gi, l) = (c / (LANES * ng), (c / LANES) % ng, c % LANES);
            let u = j * LANES + l;
            if u < rows {
                *slot = v[gates[gi] * rows + u].to_f32();
            }
        }
        out
    }

    pub(crate) fn k(&self) -> usize {
        self.k
    }

    pub(crate) fn panels(&self) -> usize {
        self.panels
    }

    /// Total packed columns (`panels * np * 16`).
    pub(crate) fn cols(&self) -> usize {
        self.panels * self.np * LANES
    }

    /// Borrowed raw view for the kernels.
    pub(crate) fn view(&self) -> PanelsView<W> {
        PanelsView {
            ptr: self.data.as_slice().as_ptr(),
            k: self.k,
            panels: self.panels,
        }
    }

    #[cfg(test)]
    pub(crate) fn data(&self) -> &[W] {
        self.data.as_slice()
    }
}

impl Panels<half::bf16> {
    /// Whether `vdpbf16ps` computes every product of these weights as IEEE
    /// multiplication would, whatever the inputs: no weight is subnormal (the
    /// instruction reads it as 0, so `inf * w` would become NaN instead of ±inf) or
    /// infinite (a subnormal input, read as 0, would make `x * inf` NaN). Subnormal
    /// inputs times finite weights only lose a product below 2^-126 in magnitude.
    pub(crate) fn dot_products_exact(&self) -> bool {
        self.data
            .as_slice()
            .iter()
            .all(|w| !w.is_infinite() && (w.is_normal() || *w == half::bf16::ZERO || w.is_nan()))
    }

    /// The same matrix with rows taken two at a time: the layout `vdpbf16ps` multiplies
    /// (see [`PairPanels`]). Exact: the bf16 values are copied, not re-rounded.
    pub(crate) fn to_k_pairs(&self) -> PairPanels {
        let width = self.np * LANES;
        let kq = self.k.div_ceil(2);
        let mut data = AlignedVec::<u32>::zeros(self.panels * kq * width);
        let out = data.as_mut_slice();
        let src = self.data.as_slice();
        let at = |p: usize, kk: usize, col: usize| -> u32 {
            if kk < self.k {
                let pos = <half::bf16 as WeightLoad>::position(col, self.np);
                u32::from(src[(p * self.k + kk) * width + pos].to_bits())
            } else {
                0 // an odd k's last pair: the missing row is a zero weight
            }
        };
        for p in 0..self.panels {
            for q in 0..kq {
                for col in 0..width {
                    out[(p * kq + q) * width + col] =
                        at(p, 2 * q, col) | at(p, 2 * q + 1, col) << 16;
                }
            }
        }
        PairPanels {
            data,
            k: self.k,
            width,
            panels: self.panels,
        }
    }
}

/// A bf16 matrix packed for `vdpbf16ps`: like [`Panels`] (same columns, same panels),
/// but each panel is stored as `[k.div_ceil(2)][width]` 32-bit words, word `(q, c)`
/// holding rows `2q` (low half) and `2q + 1` (high half) of column `c`. An odd `k` pads
/// the last pair with a zero row.
#[derive(Clone)]
pub(crate) struct PairPanels {
    data: AlignedVec<u32>,
    k: usize,
    width: usize,
    panels: usize,
}

impl PairPanels {
    /// Borrowed raw view for the kernels.
    pub(crate) fn view(&self) -> PairPanelsView {
        PairPanelsView {
            ptr: self.data.as_slice().as_ptr(),
            k: self.k,
            panels: self.panels,
        }
    }

    pub(crate) fn panels(&self) -> usize {
        self.panels
    }

    /// Total packed columns.
    pub(crate) fn cols(&self) -> usize {
        self.panels * self.width
    }

    pub(crate) fn k(&self) -> usize {
        self.k
    }
}

/// What a kernel needs of a [`PairPanels`].
#[derive(Clone, Copy)]
pub(crate) struct PairPanelsView {
    pub(crate) ptr: *const u32,
    pub(crate) k: usize,
    pub(crate) panels: usize,
}

/// What a kernel needs of a [`Panels`]: base pointer, `k` and the panel count.
pub(crate) struct PanelsView<W = f32> {
    pub(crate) ptr: *const W,
    pub(crate) k: usize,
    pub(crate) panels: usize,
}

impl<W> Clone for PanelsView<W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<W> Copy for PanelsView<W> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_gate_interleaved_per_tile() {
        // 2 gates x 20 rows, k = 3; value encodes (gate, unit, k).
        let (rows, k) = (20, 3);
        let w: Vec<f32> = (0..2 * rows * k)
            .map(|i| {
                let (r, kk) = (i / k, i % k);
                (r / rows * 1000 + r % rows * 10 + kk) as f32
            })
            .collect();
        let p = Panels::<f32>::pack(&w, rows, k, &[0, 1], 2);
        assert_eq!(p.panels(), 2); // two 16-unit tiles, two gates each
        let d = p.data();
        let width = 32;
        // panel 0, k = 2, column 16 + 5: gate 1, unit 5.
        assert_eq!(d[2 * width + 21], 1052.0);
        // panel 1, k = 1, column 3: gate 0, unit 19.
        assert_eq!(d[(k + 1) * width + 3], 191.0);
        // panel 1, column 4: unit 20 is padding.
        assert_eq!(d[(k + 1) * width + 4], 0.0);
        // Only gate 1 of the pair, 4 tiles per panel.
        let q = Panels::<f32>::pack(&w, rows, k, &[1], 4);
        assert_eq!(q.panels(), 1);
        assert_eq!(q.data()[17 + 64 * 2], 1172.0); // unit 17, k = 2
    }

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
        let p = Panels::<bf16>::pack(&w, rows, k, &[0, 1, 2, 3], 4);
        let q = p.to_k_pairs();
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
    }
}
