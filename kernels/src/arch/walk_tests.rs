//! The micro-kernel walk on every available path against exact sums, at sizes where
//! it fetches the next panel ahead (this member's panels outgrow L2) and where it does
//! not: the fetch splits the product's loop, and a row lost or taken twice in the split
//! must show. Both panel layouts (rows, and the stripes of the paths that read them)
//! whatever this CPU packs; `f32` panels laid out by hand, the half types packed.

use super::{dispatch, Backend, Blocked, ForBackend};
use crate::element::{Element, Storage};
use crate::isa::Isa;
use crate::kernel::walk::Job;
use crate::kernel::{Rows, Store};
use crate::pack::{Panels, PanelsView};

/// Small integers, so every product and sum is exact in `f32`.
fn a_at(r: usize, kk: usize) -> f32 {
    ((r * 7 + kk * 3) % 7) as f32 - 3.0
}

/// Column `c` (of all panels), panel row `kk`.
fn w_at(c: usize, kk: usize) -> f32 {
    ((c * 3 + kk * 11) % 5) as f32 - 2.0
}

/// `a` (`nrows` rows of `w.k`) times the panels `w` (of 4 vectors) into `out`.
struct Product<'a, W> {
    a: &'a [f32],
    w: PanelsView<W, 4>,
    nrows: usize,
    reverse: bool,
    out: &'a mut [f32],
}

impl<W: Storage> ForBackend for Product<'_, W> {
    /// Whether the path ran (striped panels only on paths that read them).
    type Output = bool;

    fn call<B: Backend>(self) -> bool {
        if self.w.striped && !<B::V as crate::simd::V16>::READS_STRIPES {
            return false;
        }
        let job = Job {
            a: Rows::strided(self.a.as_ptr(), self.w.k, self.nrows),
            nrows: self.nrows,
            w: self.w,
        };
        let store = Store {
            out: self.out.as_mut_ptr(),
            stride: self.w.panels * 64,
            bias: std::ptr::null(),
        };
        // SAFETY: `B` came from `dispatch`; `a` holds `nrows` rows of `k` floats, `w`
        // (the caller's) `panels` panels of `k` rows of 64 values, `out` `nrows` rows of
        // the panels' columns.
        unsafe { <B as Blocked<4>>::panels(&job, 0..self.w.panels, self.reverse, &store) };
        true
    }
}

/// `a` times `w` (`panels` panels of `k` rows, in `striped` layout) on every available
/// path that reads that layout, in both panel orders, against `want` (exact).
#[allow(clippy::too_many_arguments)]
fn check_walk<W: Storage>(
    a: &[f32],
    w: *const W,
    nrows: usize,
    k: usize,
    panels: usize,
    striped: bool,
    want: &[f32],
    what: &str,
) {
    for isa in Isa::available() {
        for reverse in [false, true] {
            let mut out = vec![f32::NAN; want.len()];
            let product = Product {
                a,
                w: PanelsView {
                    ptr: w,
                    k,
                    panels,
                    quant: None,
                    striped,
                },
                nrows,
                reverse,
                out: &mut out,
            };
            if !dispatch(isa.detected().unwrap(), product) {
                continue;
            }
            let bad = (0..out.len()).find(|&i| out[i] != want[i]);
            assert!(
                bad.is_none(),
                "{what} {isa:?}, {nrows} rows, k = {k}, reverse {reverse}, striped {striped}: \
                 first wrong output {bad:?}"
            );
        }
    }
}

/// The exact `a x w` of [`a_at`] and [`w_at`].
fn exact(nrows: usize, k: usize, cols: usize) -> Vec<f32> {
    (0..nrows * cols)
        .map(|i| {
            (0..k)
                .map(|kk| a_at(i / cols, kk) * w_at(i % cols, kk))
                .sum()
        })
        .collect()
}

#[test]
fn walk_sums_every_panel_row_with_and_without_fetching_ahead() {
    // (rows, k, panels): 6 panels of 1100 rows are 1.7 MiB (the walk fetches ahead);
    // 17 rows are blocks of 6, 6, 4, 1 at six rows a block (3 fetching blocks, 2 lines
    // per panel row over the first 734 rows), 30 rows 5 blocks (1 line per row, not
    // every row), 6 rows one block (4 lines per row, every row), 3 and 5 rows blocks
    // of 2 and 1 or 4 and 1; 3 panels of 40 rows fetch nothing.
    let cases = [
        (17, 1100, 6),
        (30, 1100, 6),
        (6, 1100, 6),
        (5, 1100, 6),
        (3, 1100, 6),
        (17, 40, 3),
    ];
    for (nrows, k, panels) in cases {
        let a: Vec<f32> = (0..nrows * k).map(|i| a_at(i / k, i % k)).collect();
        // Panel `p`, row `kk`: its 64 columns, one panel after the other.
        let rows_w: Vec<f32> = (0..panels * k * 64)
            .map(|i| {
                let (p, kk, c) = (i / (k * 64), i / 64 % k, i % 64);
                w_at(p * 64 + c, kk)
            })
            .collect();
        // Panel `p`, vector `j`: its 16 columns over every row, one stripe after the
        // other.
        let striped_w: Vec<f32> = (0..panels * k * 64)
            .map(|i| {
                let (p, j, kk, l) = (i / (k * 64), i / (k * 16) % 4, i / 16 % k, i % 16);
                w_at(p * 64 + j * 16 + l, kk)
            })
            .collect();
        let want = exact(nrows, k, panels * 64);
        for (w, striped) in [(&rows_w, false), (&striped_w, true)] {
            check_walk(&a, w.as_ptr(), nrows, k, panels, striped, &want, "f32");
        }
    }
}

/// The half types' panels (packed: bf16's rows hold pairs of vectors) in both layouts;
/// [`w_at`]'s values are exact in each.
#[test]
fn half_panels_walk_in_both_layouts() {
    half_walk::<half::f16>("f16");
    half_walk::<half::bf16>("bf16");
}

fn half_walk<W: Element>(what: &str) {
    for (nrows, k, panels) in [(17, 1100, 6), (5, 40, 3), (2, 33, 2)] {
        let a: Vec<f32> = (0..nrows * k).map(|i| a_at(i / k, i % k)).collect();
        // One gate of `panels * 64` units, unit `c`'s row of `k`: column `c`.
        let units = panels * 64;
        let w: Vec<f32> = (0..units * k).map(|i| w_at(i / k, i % k)).collect();
        let want = exact(nrows, k, units);
        for striped in [false, true] {
            let p = Panels::<W, 4>::pack_layout(&w, units, k, &[0], striped);
            assert_eq!((p.panels(), p.striped()), (panels, striped));
            check_walk(
                &a,
                p.data().as_ptr(),
                nrows,
                k,
                panels,
                striped,
                &want,
                what,
            );
        }
    }
}
