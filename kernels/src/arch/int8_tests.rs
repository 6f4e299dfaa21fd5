//! Every integer micro-kernel against the naive int8 product
//! (`rnn_reference::quant::product`): operands quantized by the path's own
//! `QuantizeOp`, weights over the whole int8 range with zero points, every block
//! height and `k` remainder; results bit-identical (the sums are exact and the two
//! `f32` roundings the same). The AVX2 path runs both of its types: the `vpmaddubsw`
//! type only where the pairs fit (`pairs_fit_i16`), the `vpmaddwd` type always; a test
//! checks the fit rule itself on a case that saturates.

use rnn_reference::quant::{product, row_params, ActivationQuant, BlockParams, QuantizedMatrix};
use rnn_reference::testkit::rng::SplitMix64;

use super::{dispatch, Backend, ForBackend};
use crate::element::Coded;
use crate::isa::Isa;
use crate::kernel::quantize::QuantizeOp;
use crate::kernel::walk_i8::{Job8, RowQuant};
use crate::kernel::{Rows, Store};
use crate::pack::Panels;

/// One product: `nrows x k` floats times `n x k` codes.
struct Case {
    nrows: usize,
    k: usize,
    n: usize,
    a: Vec<f32>,
    codes: Vec<i8>,
    scales: Vec<f32>,
    zero_points: Vec<i8>,
    scheme: ActivationQuant,
}

impl Case {
    fn random(rng: &mut SplitMix64, nrows: usize, k: usize, n: usize, big: bool) -> Case {
        // Weight codes: the ends of the range often, so pairs reach their extremes
        // (only within ±64 when not `big`, where one `vpmaddubsw` is exact).
        let code = |rng: &mut SplitMix64| -> i8 {
            if big {
                match rng.below(4) {
                    0 => -128,
                    1 => 127,
                    _ => (rng.below(256) as i32 - 128) as i8,
                }
            } else {
                (rng.below(129) as i32 - 64) as i8
            }
        };
        let codes = (0..n * k).map(|_| code(rng)).collect();
        let scales = (0..n).map(|_| 0.001 + rng.uniform(0.02).abs()).collect();
        let zero_points = (0..n)
            .map(|_| if big && rng.coin() { code(rng) / 4 } else { 0 })
            .collect();
        let scheme = ActivationQuant::ALL[rng.below(3)];
        // Rows with a positive offset sometimes, so zero points vary.
        let a = (0..nrows * k)
            .map(|e| rng.sym() * 3.0 + if (e / k) % 3 == 1 { 2.0 } else { 0.0 })
            .collect();
        Case {
            nrows,
            k,
            n,
            a,
            codes,
            scales,
            zero_points,
            scheme,
        }
    }

    fn matrix(&self) -> QuantizedMatrix<'_> {
        QuantizedMatrix {
            codes: &self.codes,
            scales: &self.scales,
            zero_points: Some(&self.zero_points),
        }
    }

    fn expected(&self) -> Vec<f32> {
        let p: Vec<BlockParams> = row_params(&self.a, self.k, self.scheme);
        let m = self.matrix();
        product(&m, self.n, self.k, &self.a, &p, self.scheme.qmax())
    }
}

/// The kernels' product of `c` at backend `B` (rows `nrows x n`), with the
/// `vpmaddubsw` fast form allowed when `fast` (and the pairs fit), over panels in
/// rows or `striped`.
struct Run<'a, const NP: usize> {
    c: &'a Case,
    fast: bool,
    reverse: bool,
    striped: bool,
}

impl<const NP: usize> ForBackend for Run<'_, NP> {
    /// `None` where the path does not run (striped panels only on paths that read
    /// them).
    type Output = Option<Vec<f32>>;

    fn call<B: Backend>(self) -> Option<Vec<f32>> {
        if self.striped && !<B::V as crate::simd::V16>::READS_STRIPES {
            return None;
        }
        let c = self.c;
        let m = c.matrix();
        let w: Vec<Coded> = (0..c.n * c.k)
            .map(|e| {
                let (s, z) = m.row_params(e / c.k);
                Coded::weight(c.codes[e], z, s)
            })
            .collect();
        let panels = Panels::<i8, NP>::pack_layout(&w, c.n, c.k, &[0], self.striped);
        // (One vector per panel has only rows.)
        assert_eq!(panels.striped(), self.striped && NP > 1);
        let view = panels.view();
        let q = view.quant.unwrap();
        let stride = 4 * c.k.div_ceil(4);
        let mut codes = vec![0u8; c.nrows * stride];
        let mut params = vec![RowQuant::default(); c.nrows];
        let qmax = c.scheme.qmax();
        let rows = Rows::strided(c.a.as_ptr(), c.k, c.nrows);
        let block = (!c.scheme.per_row()).then(|| {
            // SAFETY: the rows hold k floats each; the backend came from `dispatch`.
            let r = unsafe {
                B::run_op(crate::kernel::quantize::RangeOp {
                    a: &rows,
                    rows: 0..c.nrows,
                    k: c.k,
                })
            };
            crate::kernel::quantize::params(r, qmax)
        });
        // SAFETY: `codes` holds nrows rows of stride >= k bytes, `params` nrows.
        unsafe {
            B::run_op(QuantizeOp {
                a: &rows,
                rows: 0..c.nrows,
                k: c.k,
                dst: codes.as_mut_ptr(),
                stride,
                params: params.as_mut_ptr(),
                qmax,
                block,
            })
        };
        let cols = panels.cols();
        let mut out = vec![f32::NAN; c.nrows * cols];
        let job = Job8::<NP> {
            a: codes.as_ptr(),
            stride,
            rows: params.as_ptr(),
            nrows: c.nrows,
            w: view.ptr.cast::<i8>(),
            k4: c.k.div_ceil(4),
            panels: view.panels,
            q,
            striped: view.striped,
        };
        let store = Store {
            out: out.as_mut_ptr(),
            stride: cols,
            bias: std::ptr::null(),
        };
        let fit = self.fast && q.pairs_fit_i16(qmax);
        // SAFETY: the job's buffers are sized above; `out` covers every panel's
        // columns; `fit` only when the pairs fit.
        unsafe { B::panels_i8(&job, 0..view.panels, self.reverse, &store, fit) };
        Some(
            (0..c.nrows)
                .flat_map(|r| out[r * cols..r * cols + c.n].to_vec())
                .collect(),
        )
    }
}

fn check(c: &Case, what: &str) {
    check_with::<4>(c, what, &[false]);
}

/// [`check`] with panels of `NP` vectors walked in each of `orders` (`reverse`), in
/// rows and, on the paths that read them, in stripes (whatever this CPU packs).
fn check_with<const NP: usize>(c: &Case, what: &str, orders: &[bool]) {
    let want = c.expected();
    for isa in Isa::available() {
        for (fast, &reverse, striped) in [false, true].into_iter().flat_map(|f| {
            orders
                .iter()
                .flat_map(move |r| [false, true].map(|s| (f, r, s)))
        }) {
            let run = Run::<NP> {
                c,
                fast,
                reverse,
                striped,
            };
            let Some(got) = dispatch(isa.detected().unwrap(), run) else {
                continue;
            };
            for (e, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g.to_bits() == w.to_bits(),
                    "{what} {isa} fast={fast} reverse={reverse} striped={striped} {:?} nrows {} k {} n {}: element {e} got {g}, want {w}",
                    c.scheme,
                    c.nrows,
                    c.k,
                    c.n
                );
            }
        }
    }
}

#[test]
fn every_micro_kernel_matches_the_naive_product_bit_for_bit() {
    let mut rng = SplitMix64::new(0x1a78);
    for &nrows in &[1, 2, 3, 5, 6, 7, 13] {
        for &k in &[1, 3, 4, 5, 17, 64, 130] {
            for &n in &[1, 16, 33, 70] {
                for big in [false, true] {
                    let c = Case::random(&mut rng, nrows, k, n, big);
                    check(&c, if big { "full range" } else { "within ±64" });
                }
            }
        }
    }
}

#[test]
fn the_walk_fetching_the_next_panel_ahead_sums_every_row_group() {
    // 25 panels of k = 1100 (275 groups of 4) are 1.7 MiB of codes, so the walk fetches
    // each next panel (in the one-group form: AVX-512's blocks of 4 and 6 rows) and
    // the fetch splits the tile's loop. 17 rows are blocks of 6, 6, 4, 1 (3 fetching
    // blocks, 2 lines per row group over the first 184 groups), 30 rows 5 blocks (1
    // line per group, not every group), 6 rows one block (4 lines per group, every
    // group), 5 rows blocks of 4 and 1, 3 rows 2 and 1 (no fetching block); both
    // panel orders.
    let mut rng = SplitMix64::new(0xfe7c);
    for nrows in [17, 30, 6, 5, 3] {
        let c = Case::random(&mut rng, nrows, 1100, 25 * 64, true);
        check_with::<4>(&c, "fetching ahead", &[false, true]);
    }
}

#[test]
fn amx_shaped_products_match_bit_for_bit() {
    // The shapes the AVX-512 path hands to AMX's tiles where the CPU has them (16-row
    // blocks, `k` a multiple of 64), with remainder rows on `vpdpbusd` (17, 35 rows),
    // every panel width the cells use, several 64-deep steps, and one `k` (100) that
    // the tiles do not take. At k = 1088 every panel width outgrows 32 KiB, so the
    // tiles take 32 rows a call: 35 rows are one such call and 3 rows, 48 one call of
    // 32 and one of 16, 64 two of 32. Elsewhere these run the vector tiles: the same
    // check.
    let mut rng = SplitMix64::new(0xa3c5);
    for (nrows, k, n) in [
        (16, 64, 64),
        (17, 128, 100),
        (35, 192, 48),
        (64, 64, 200),
        (32, 100, 64),
        (35, 1088, 70),
        (48, 1088, 33),
        (64, 1088, 64),
    ] {
        let c = Case::random(&mut rng, nrows, k, n, true);
        check_with::<2>(&c, "16-row blocks, 2 vectors", &[false]);
        check_with::<3>(&c, "16-row blocks, 3 vectors", &[true]);
        check_with::<4>(&c, "16-row blocks, 4 vectors", &[false, true]);
        check_with::<6>(&c, "16-row blocks, 6 vectors", &[false]);
    }
}

#[test]
fn extreme_codes_and_activations_are_exact() {
    // Activation codes 255 (rows of positive values: zero point 0) against weight
    // pairs (-128, -128) and (127, 127): the largest pair magnitudes, which saturate a
    // single `vpmaddubsw` (with 8-bit codes).
    let (nrows, k, n) = (3, 64, 16);
    let a: Vec<f32> = (0..nrows * k)
        .map(|e| if e % 4 == 3 { 0.5 } else { 1.0 })
        .collect();
    let codes: Vec<i8> = (0..n * k)
        .map(|e| if (e / 2) % 2 == 0 { -128 } else { 127 })
        .collect();
    for scheme in ActivationQuant::ALL {
        let c = Case {
            nrows,
            k,
            n,
            a: a.clone(),
            codes: codes.clone(),
            scales: vec![0.01; n],
            zero_points: vec![0; n],
            scheme,
        };
        check(&c, "extremes");
    }
}

#[test]
fn the_pair_rule_is_what_a_single_vpmaddubsw_needs() {
    // Two activation codes 255 times two weight codes 127: 64770 saturates an i16;
    // with 7-bit codes, 127 * 254 = 32258 does not.
    let w: Vec<Coded> = [127i8, 127, 0, 0]
        .iter()
        .map(|&c| Coded::weight(c, 0, 1.0))
        .collect();
    let p = Panels::<i8, 4>::pack(&w, 1, 4, &[0]);
    let q = p.view().quant.unwrap();
    assert!(!q.pairs_fit_i16(255));
    assert!(q.pairs_fit_i16(127));
}
