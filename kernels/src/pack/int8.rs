//! int8 panels: the columns of [`Panels`] (same gate interleaving, same panels of `NP`
//! vectors), stored as codes four `k` at a time, and the per-column data the integer
//! product needs ([`ColumnQuant`]).
//!
//! A panel is `[k.div_ceil(4)][NP * 16][4]` bytes: the 32-bit word `(q, c)` holds the
//! codes of rows `4q .. 4q + 4` of column `c`, the operand layout of `vpdpbusd` (and of
//! `vpmaddubsw` pairs). A `k` that is not a multiple of 4 pads with zero codes, which
//! contribute nothing whatever the activation bytes beside them. Striped
//! ([`Panels::pack_layout`]), the same words are `[NP][k.div_ceil(4)][16][4]`: each
//! vector of 16 words over all `k` in one piece, for the tiles that take one vector (one
//! cache line) of a panel row at a time.

use super::{Panels, LANES};
use crate::aligned::AlignedVec;
use crate::element::{Element, Storage};

/// Per-column data of an int8 matrix (padding columns: all zero, so their outputs are
/// exactly 0).
#[derive(Clone)]
pub(crate) struct ColumnQuant {
    /// `s_w[c]`.
    scale: AlignedVec<f32>,
    /// `zp_w[c]`, when some column has a nonzero one.
    zero_point: Option<AlignedVec<i32>>,
    /// `Σ_k (w[k, c] − zp_w[c])`: times the activations' zero point, the correction
    /// that turns `Σ q w` into `Σ (q − zp_a)(w − zp_w)`.
    col_sum: AlignedVec<i32>,
    /// The largest `max(w₀, 0) + max(w₁, 0)` and the smallest `min(w₀, 0) + min(w₁, 0)`
    /// over the code pairs `(4q, 4q + 1)` and `(4q + 2, 4q + 3)` of every column: with
    /// activation codes up to `qmax`, `vpmaddubsw`'s `i16` pair sums are exact iff
    /// `qmax · pair_max <= 32767` and `qmax · pair_min >= −32768`.
    pair_max: i32,
    pair_min: i32,
}

/// What the integer product needs of a [`ColumnQuant`].
#[derive(Clone, Copy)]
pub(crate) struct QuantView {
    pub(crate) scale: *const f32,
    /// Null when every zero point is 0.
    pub(crate) zero_point: *const i32,
    pub(crate) col_sum: *const i32,
    pair_max: i32,
    pair_min: i32,
}

impl QuantView {
    /// Whether `vpmaddubsw` (unsigned activation codes up to `qmax` times these signed
    /// codes, pairs summed in `i16` with saturation) is exact for every pair.
    pub(crate) fn pairs_fit_i16(&self, qmax: u8) -> bool {
        let q = i32::from(qmax);
        q * self.pair_max <= i32::from(i16::MAX) && q * self.pair_min >= i32::from(i16::MIN)
    }
}

impl ColumnQuant {
    pub(crate) fn view(&self) -> QuantView {
        QuantView {
            scale: self.scale.as_slice().as_ptr(),
            zero_point: self
                .zero_point
                .as_ref()
                .map_or(std::ptr::null(), |z| z.as_slice().as_ptr()),
            col_sum: self.col_sum.as_slice().as_ptr(),
            pair_max: self.pair_max,
            pair_min: self.pair_min,
        }
    }
}

/// The codes, zero point and scale of one source row (one packed column): imported
/// codes as given, else the symmetric per-row quantization of the values
/// (`rnn_reference::quant::quantize_matrix`, the same formula: `s = max |w| / 127`,
/// `code = round_half_even(w / s)`; a zero row gets scale 1, a non-finite one a NaN
/// scale and codes 0).
fn column_codes<S: Element>(src: &[S]) -> (Vec<i8>, i8, f32) {
    if let Some((_, zp, scale)) = src.first().and_then(|v| v.coded()) {
        let codes = src
            .iter()
            .map(|v| v.coded().map_or(0, |(c, _, _)| c))
            .collect();
        return (codes, zp, scale);
    }
    let (max, finite) = src.iter().fold((0.0f32, true), |(m, f), v| {
        let v = v.to_f32();
        (m.max(v.abs()), f && v.is_finite())
    });
    let s = if !finite {
        f32::NAN
    } else if max == 0.0 {
        1.0
    } else {
        max / 127.0
    };
    let codes = src
        .iter()
        .map(|v| {
            let q = (v.to_f32() / s).round_ties_even().clamp(-127.0, 127.0);
            if q.is_nan() {
                0
            } else {
                q as i8
            }
        })
        .collect();
    (codes, 0, s)
}

/// Where code `kk` of column `col` of panel `p` is stored in an int8 packing of `k4`
/// word rows: in the panel's rows (`[k4][NP * 16][4]`) or, when `striped`, in its
/// vectors' stripes (`[NP][k4][16][4]`).
#[inline]
pub(crate) fn index_i8<const NP: usize>(
    striped: bool,
    k4: usize,
    p: usize,
    kk: usize,
    col: usize,
) -> usize {
    let width = NP * LANES;
    let word = if striped {
        p * k4 * width + (col / LANES * k4 + kk / 4) * LANES + col % LANES
    } else {
        (p * k4 + kk / 4) * width + col
    };
    word * 4 + kk % 4
}

impl<W: Storage, const NP: usize> Panels<W, NP> {
    /// The int8 packing of [`Panels::pack_layout`] (for `W = i8`): codes per column as
    /// [`column_codes`] gives them, four `k` per 32-bit word, in panel rows or stripes,
    /// and the [`ColumnQuant`].
    pub(super) fn pack_int8<S: Element>(
        w: &[S],
        rows: usize,
        k: usize,
        gates: &[usize],
        striped: bool,
    ) -> Self {
        let ng = gates.len();
        let tiles = rows.div_ceil(LANES);
        let width = Self::WIDTH;
        let panels = (tiles * ng * LANES).div_ceil(width);
        let k4 = k.div_ceil(4);
        let cols = panels * width;
        let mut data = AlignedVec::<W>::zeros(panels * k4 * width * 4);
        let mut scale = AlignedVec::<f32>::zeros(cols);
        let mut zero_point = AlignedVec::<i32>::zeros(cols);
        let mut col_sum = AlignedVec::<i32>::zeros(cols);
        let (mut pair_max, mut pair_min) = (0i32, 0i32);
        let out = data.as_mut_slice();
        for c in 0..cols {
            let (j, gi, l) = (c / (LANES * ng), (c / LANES) % ng, c % LANES);
            let u = j * LANES + l;
            if j >= tiles || u >= rows {
                continue;
            }
            let (codes, zp, s) = column_codes(&w[(gates[gi] * rows + u) * k..][..k]);
            let (p, col) = (c / width, c % width);
            for (kk, &q) in codes.iter().enumerate() {
                out[index_i8::<NP>(striped, k4, p, kk, col)] = W::round_from(f32::from(q));
            }
            for pair in codes.chunks(2) {
                let (a, b) = (i32::from(pair[0]), pair.get(1).map_or(0, |&v| i32::from(v)));
                pair_max = pair_max.max(a.max(0) + b.max(0));
                pair_min = pair_min.min(a.min(0) + b.min(0));
            }
            scale.as_mut_slice()[c] = s;
            zero_point.as_mut_slice()[c] = i32::from(zp);
            col_sum.as_mut_slice()[c] = codes.iter().map(|&q| i32::from(q) - i32::from(zp)).sum();
        }
        let any_zp = zero_point.as_slice().iter().any(|&z| z != 0);
        Panels {
            data,
            k,
            panels,
            quant: Some(Box::new(ColumnQuant {
                scale,
                zero_point: any_zp.then_some(zero_point),
                col_sum,
                pair_max,
                pair_min,
            })),
            striped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::element::Coded;

    #[test]
    fn codes_sit_four_k_per_word_with_column_sums() {
        // 1 gate x 3 rows, k = 5: row r holds r * 10 + kk (max 24: scale 24 / 127).
        let (rows, k) = (3, 5);
        let w: Vec<f32> = (0..rows * k).map(|e| (e / k * 10 + e % k) as f32).collect();
        let p = Panels::<i8, 4>::pack_layout(&w, rows, k, &[0], false);
        let q = p.quant.as_ref().unwrap();
        let (k4, width) = (2, 64);
        let d = p.data();
        // Row 2 (column 2): values 20..24, scale 24/127: codes round(v * 127 / 24).
        let s = 24.0f32 / 127.0;
        assert_eq!(q.scale.as_slice()[2], s);
        let code = |v: f32| (v / s).round_ties_even() as i8;
        assert_eq!(d[2 * 4 + 1], code(21.0));
        assert_eq!(d[(width + 2) * 4], code(24.0)); // kk = 4: word 1, byte 0
        assert_eq!(d[(width + 2) * 4 + 1], 0); // padding k
        let sum: i32 = (20..25).map(|v| i32::from(code(v as f32))).sum();
        assert_eq!(q.col_sum.as_slice()[2], sum);
        assert_eq!(q.scale.as_slice()[3], 0.0); // padding column
        assert!(q.zero_point.is_none());
        // Pairs are rows (4q, 4q + 1) and (4q + 2, 4q + 3): the largest is 22 + 23.
        assert_eq!(q.pair_max, i32::from(code(22.0)) + i32::from(code(23.0)));
        assert_eq!(p.data().len(), k4 * width * 4);
    }

    #[test]
    fn imported_codes_are_kept_with_their_zero_points() {
        let w: Vec<Coded> = [-128i8, 127, 5, 127]
            .iter()
            .map(|&c| Coded::weight(c, -3, 0.5))
            .collect();
        let p = Panels::<i8, 4>::pack_layout(&w, 1, 4, &[0], false);
        let q = p.quant.as_ref().unwrap();
        assert_eq!(&p.data()[..4], &[-128, 127, 5, 127]);
        assert_eq!(q.zero_point.as_ref().unwrap().as_slice()[0], -3);
        assert_eq!(q.col_sum.as_slice()[0], -128 + 127 + 5 + 127 + 4 * 3);
        // Pairs (-128, 127) and (5, 127): 255 * 132 saturates an i16, 127 * 132 not.
        assert_eq!((q.pair_max, q.pair_min), (5 + 127, -128));
        assert!(!q.view().pairs_fit_i16(255));
        assert!(q.view().pairs_fit_i16(127));
    }

    /// The striped packing holds every code of the row packing (and the same column
    /// data), each vector's words over all `k` in one piece; `index_i8` finds a code in
    /// either.
    #[test]
    fn stripes_hold_each_vector_of_words_in_one_piece() {
        let (rows, k) = (40, 7);
        let w: Vec<f32> = (0..3 * rows * k)
            .map(|i| (i % 251) as f32 - 125.0)
            .collect();
        let by_rows = Panels::<i8, 4>::pack_layout(&w, rows, k, &[0, 2, 1], false);
        let striped = Panels::<i8, 4>::pack_layout(&w, rows, k, &[0, 2, 1], true);
        assert!(striped.striped() && !by_rows.striped());
        assert_eq!(striped.panels(), by_rows.panels());
        let (qr, qs) = (
            by_rows.quant.as_ref().unwrap(),
            striped.quant.as_ref().unwrap(),
        );
        assert_eq!(qr.col_sum.as_slice(), qs.col_sum.as_slice());
        assert_eq!(qr.scale.as_slice(), qs.scale.as_slice());
        let k4 = k.div_ceil(4);
        let mut seen = 0;
        for p in 0..by_rows.panels() {
            for kk in 0..4 * k4 {
                for col in 0..64 {
                    let r = by_rows.data()[index_i8::<4>(false, k4, p, kk, col)];
                    let s = striped.data()[index_i8::<4>(true, k4, p, kk, col)];
                    assert_eq!(r, s, "panel {p}, k {kk}, column {col}");
                    // Vector `col / 16` of panel `p` starts at byte `(4 p + col / 16) k4 64`.
                    let at = (4 * p + col / 16) * k4 * 64 + (kk / 4 * 16 + col % 16) * 4 + kk % 4;
                    assert_eq!(striped.data()[at], r);
                    seen += usize::from(r != 0);
                }
            }
        }
        assert!(seen > 800, "the codes compared are mostly nonzero: {seen}");
        // One vector per panel keeps its rows.
        assert!(!Panels::<i8, 1>::pack_layout(&w, rows, k, &[0], true).striped());
    }
}
