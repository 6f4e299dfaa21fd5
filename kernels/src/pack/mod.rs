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
//! cut into panels of `NP * 16`; a panel is stored `k`-major (`[k][NP * 16]`), which is
//! the order the micro-kernel streams it in, or, on a CPU without AVX-512, in stripes
//! (`[NP][k][16]`: each vector over all `k` in one piece, the order the AVX2 and
//! portable tiles, which take a panel one vector at a time, stream it in; see
//! [`Panels::pack_layout`]; bf16 with each vector's halves zipped,
//! [`Storage::stripe_position`]; int8 codes likewise, four `k` per word: `int8`).
//! Padding columns (units past `rows`, or past the last panel) are zero, which keeps
//! padded hidden units at exactly zero.
//!
//! The panel width `NP` is part of the type ([`Panels<W, NP>`], [`PanelsView<W, NP>`]),
//! and the kernels take it from there: a packing and a kernel cannot disagree on it.
//! Where the 16 values of a vector sit inside a panel row is the storage type's
//! [`Storage::position`].

mod int8;
mod pairs;
pub(crate) mod runtime;

pub(crate) use int8::{ColumnQuant, QuantView};
pub(crate) use pairs::{PairPanels, PairPanelsView};

use crate::aligned::AlignedVec;
use crate::element::{Element, Storage};

/// Lanes per vector tile: one tile of hidden units.
pub(crate) const LANES: usize = 16;

/// Rounds `n` up to a whole number of 64-unit blocks: the stride of every padded
/// state row, so any kernel (panels of up to 4 tiles) may write whole panels.
pub(crate) fn padded(n: usize) -> usize {
    n.div_ceil(64) * 64
}

/// A packed matrix: `panels` panels of `NP * 16` columns by `k` rows, stored as `W`
/// (int8 codes in their own layout, with per-column data: see `int8`).
#[derive(Clone)]
pub(crate) struct Panels<W: Storage, const NP: usize> {
    data: AlignedVec<W>,
    k: usize,
    panels: usize,
    /// The per-column data of int8 codes (`W::QUANTIZED`); `None` for float types.
    quant: Option<Box<ColumnQuant>>,
    /// `[NP][k][16]` per panel instead of `[k][NP * 16]`.
    striped: bool,
}

/// Where column `col` of panel `p`'s row `kk` is stored in a packing of `k` rows: in
/// the panel's rows (`[k][NP * 16]`, lanes placed by [`Storage::position`]) or, when
/// `striped`, in its vectors' stripes (`[NP][k][16]`, lanes placed by
/// [`Storage::stripe_position`]). (int8 codes: [`int8::index_i8`].)
#[inline]
pub(crate) fn index<W: Storage, const NP: usize>(
    striped: bool,
    k: usize,
    p: usize,
    kk: usize,
    col: usize,
) -> usize {
    let width = NP * LANES;
    if striped {
        p * k * width + (col / LANES * k + kk) * LANES + W::stripe_position(col % LANES)
    } else {
        (p * k + kk) * width + W::position(col, NP)
    }
}

/// Whether panels of `NP` vectors can be striped: with more than one vector (one
/// vector's stripe is its row).
const fn stripes_allowed<const NP: usize>() -> bool {
    NP > 1
}

/// The layout packed on this CPU: striped where every path it can run takes a panel
/// one vector at a time (AVX2 and portable: a vector's values in one stream keep the
/// tile fed from L3, where reading one line in `NP` of panel rows did not; AMD Zen 3,
/// `bench-suite/results/avx2-layout-zen3.md`), panel rows where AVX-512 can run (its
/// tile reads whole rows; `PackedRnn::with_isa` may pick any available path, and all
/// of them read panel rows correctly, so the choice is by CPU, not by path).
pub(crate) fn striped_here<const NP: usize>() -> bool {
    static NO_AVX512: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    stripes_allowed::<NP>()
        && *NO_AVX512.get_or_init(|| {
            crate::isa::Isa::available()
                .iter()
                .all(|i| matches!(i, crate::isa::Isa::Avx2 | crate::isa::Isa::Portable))
        })
}

impl<W: Storage, const NP: usize> Panels<W, NP> {
    /// Columns per panel.
    pub(crate) const WIDTH: usize = NP * LANES;

    /// Packs gates `gates` (indices of gate blocks) of `w` (`[n_gates * rows, k]`),
    /// rounding each value to `W` (to nearest, ties to even); int8 codes per output
    /// column for `i8` (`int8`).
    pub(crate) fn pack<S: Element>(w: &[S], rows: usize, k: usize, gates: &[usize]) -> Self {
        Self::pack_layout(w, rows, k, gates, striped_here::<NP>())
    }

    /// [`pack`](Self::pack) in the given layout: `striped` (`NP > 1` only) stores each
    /// 16-lane vector of a panel over all `k` in one piece (`[NP][k][16]`; int8:
    /// `[NP][k / 4][16][4]`) instead of the panel's rows (`[k][NP * 16]`).
    pub(crate) fn pack_layout<S: Element>(
        w: &[S],
        rows: usize,
        k: usize,
        gates: &[usize],
        striped: bool,
    ) -> Self {
        let striped = striped && stripes_allowed::<NP>();
        if W::QUANTIZED {
            return Self::pack_int8(w, rows, k, gates, striped);
        }
        let ng = gates.len();
        let tiles = rows.div_ceil(LANES);
        let cols = tiles * ng * LANES;
        let width = Self::WIDTH;
        let panels = cols.div_ceil(width);
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
                out[index::<W, NP>(striped, k, p, kk, col)] = W::round_from(v.to_f32());
            }
        }
        Panels {
            data,
            k,
            panels,
            quant: None,
            striped,
        }
    }

    /// Whether the panels are striped (see [`pack_layout`](Self::pack_layout)).
    pub(crate) fn striped(&self) -> bool {
        self.striped
    }

    pub(crate) fn k(&self) -> usize {
        self.k
    }

    pub(crate) fn panels(&self) -> usize {
        self.panels
    }

    /// Total packed columns (`panels * NP * 16`).
    pub(crate) fn cols(&self) -> usize {
        self.panels * Self::WIDTH
    }

    /// Borrowed raw view for the kernels.
    pub(crate) fn view(&self) -> PanelsView<W, NP> {
        PanelsView {
            ptr: self.data.as_slice().as_ptr(),
            k: self.k,
            panels: self.panels,
            quant: self.quant.as_ref().map(|q| q.view()),
            striped: self.striped,
        }
    }

    /// The stored values.
    pub(crate) fn data(&self) -> &[W] {
        self.data.as_slice()
    }
}

/// Packs a vector laid out like the columns of a packing of `gates`: element `c`
/// takes `v[gates[gi] * rows + u]` (zero in padding). Used for biases so they line up
/// with accumulator lanes.
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

/// `rows` consecutive `k`-vectors of `v` (`[rows][len]`), each widened to `f32` and
/// padded with zeros to [`padded`]`(len)`: per-unit vectors (peepholes, the GRU's
/// `b_hn`) in the layout of a padded state row.
pub(crate) fn padded_rows<S: Element>(v: &[S], rows: usize, len: usize) -> AlignedVec {
    let hs = padded(len);
    let mut out = AlignedVec::zeros(rows * hs);
    for r in 0..rows {
        for (o, x) in out.as_mut_slice()[r * hs..r * hs + len]
            .iter_mut()
            .zip(&v[r * len..(r + 1) * len])
        {
            *o = x.to_f32();
        }
    }
    out
}

/// What a kernel needs of a [`Panels`]: base pointer, `k` and the panel count (and
/// the per-column data of int8 codes); the width is the type's `NP`.
pub(crate) struct PanelsView<W, const NP: usize> {
    pub(crate) ptr: *const W,
    pub(crate) k: usize,
    pub(crate) panels: usize,
    pub(crate) quant: Option<QuantView>,
    /// `[NP][k][16]` per panel (see [`Panels::pack_layout`]); read by the paths whose
    /// vector type says `V16::READS_STRIPES`.
    pub(crate) striped: bool,
}

impl<W, const NP: usize> Clone for PanelsView<W, NP> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<W, const NP: usize> Copy for PanelsView<W, NP> {}

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
        let p = Panels::<f32, 2>::pack_layout(&w, rows, k, &[0, 1], false);
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
        let q = Panels::<f32, 4>::pack_layout(&w, rows, k, &[1], false);
        assert_eq!(q.panels(), 1);
        assert_eq!(q.data()[17 + 64 * 2], 1172.0); // unit 17, k = 2
    }

    /// The striped packing holds every value of the row packing, each vector of a panel
    /// over all `k` in one piece (bf16 with its halves zipped); `index` finds it in
    /// either.
    #[test]
    fn stripes_hold_each_vector_in_one_piece() {
        stripes_of::<f32>();
        stripes_of::<half::f16>();
        stripes_of::<half::bf16>();
    }

    fn stripes_of<W: Element>() {
        let (rows, k) = (40, 5);
        // Integers below 256: exact in every storage type.
        let w: Vec<f32> = (0..3 * rows * k).map(|i| (i % 256) as f32).collect();
        let by_rows = Panels::<W, 4>::pack_layout(&w, rows, k, &[0, 2, 1], false);
        let striped = Panels::<W, 4>::pack_layout(&w, rows, k, &[0, 2, 1], true);
        assert!(striped.striped() && !by_rows.striped());
        assert_eq!(striped.panels(), by_rows.panels());
        for p in 0..by_rows.panels() {
            for kk in 0..k {
                for col in 0..64 {
                    let r = by_rows.data()[index::<W, 4>(false, k, p, kk, col)].to_f32();
                    let s = striped.data()[index::<W, 4>(true, k, p, kk, col)].to_f32();
                    assert_eq!(r, s, "panel {p}, row {kk}, column {col}");
                    // Vector `col / 16` of panel `p` starts at `(4 p + col / 16) k 16`.
                    let at = (4 * p + col / 16) * k * 16 + kk * 16;
                    let at = at + W::stripe_position(col % 16);
                    assert_eq!(striped.data()[at].to_f32(), r);
                }
            }
        }
        // Single vectors keep their rows.
        assert!(!Panels::<W, 1>::pack_layout(&w, rows, k, &[0], true).striped());
    }

    #[test]
    fn padded_rows_pad_each_row() {
        let v = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let p = padded_rows(&v, 2, 3);
        let d = p.as_slice();
        assert_eq!(d.len(), 128);
        assert_eq!(&d[..4], &[1.0, 2.0, 3.0, 0.0]);
        assert_eq!(&d[64..68], &[4.0, 5.0, 6.0, 0.0]);
    }
}
