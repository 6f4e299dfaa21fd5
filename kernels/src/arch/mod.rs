//! Per-ISA instantiations of the generic kernels and the table the dispatcher hands
//! out. Layout follows memchr: `arch/<arch>/<isa>/` holds the vector type of that ISA
//! (`vector.rs`) and its `#[target_feature]` entry points (`mod.rs`).

pub(crate) mod math;
pub(crate) mod portable;
pub(crate) mod vector;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;

use std::ops::Range;

use crate::generic::epilogue::StepPtrs;
use crate::generic::phase::Rows;
use crate::isa::Isa;
use crate::pack::{PairPanelsView, PanelsView};

/// A plain product `out = a x w (+ bias)` over some panels.
pub(crate) struct GemmArgs<W> {
    pub(crate) a: Rows,
    pub(crate) nrows: usize,
    pub(crate) w: PanelsView<W>,
    pub(crate) out: *mut f32,
    pub(crate) out_stride: usize,
    pub(crate) bias: *const f32,
}

/// One pass of a recurrent step: `a x w` then a cell epilogue.
pub(crate) struct StepArgs<W> {
    pub(crate) a: Rows,
    pub(crate) nrows: usize,
    pub(crate) w: PanelsView<W>,
    pub(crate) s: StepPtrs,
    pub(crate) relu: bool,
}

// SAFETY: the raw pointers in these argument blocks point into buffers that outlive
// the parallel region that shares them; threads write disjoint panels (disjoint
// columns of every output row), so sharing them across threads is race-free.
unsafe impl<W> Send for GemmArgs<W> {}
// SAFETY: as above.
unsafe impl<W> Sync for GemmArgs<W> {}
// SAFETY: as above.
unsafe impl<W> Send for StepArgs<W> {}
// SAFETY: as above.
unsafe impl<W> Sync for StepArgs<W> {}

/// A panel-range kernel: `(args, panels, reverse order)`.
pub(crate) type GemmFn<W> = unsafe fn(&GemmArgs<W>, Range<usize>, bool);
/// A panel-range step pass.
pub(crate) type StepFn<W> = unsafe fn(&StepArgs<W>, Range<usize>, bool);

/// Every kernel of one instruction set, for weights stored as `W`.
pub struct Kernels<W: 'static> {
    /// Which ISA this table is (checked by the tests: no silent fallback).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) isa: Isa,
    /// `NP = 4` plain product with bias (input projection, LSTM projection).
    pub(crate) gemm: GemmFn<W>,
    /// Elman RNN step, `NP = 4` tiles per panel.
    pub(crate) rnn: StepFn<W>,
    /// LSTM step, one tile (4 gates) per panel.
    pub(crate) lstm: StepFn<W>,
    /// GRU (linear before reset), one tile (3 gates) per panel, or two for weight
    /// types stored in pairs ([`WeightLoad::PAIRED`](crate::element::WeightLoad::PAIRED)).
    pub(crate) gru_lbr: StepFn<W>,
    /// GRU original form, pass 1: one tile (r, z) per panel.
    pub(crate) gru_rz: StepFn<W>,
    /// GRU original form, pass 2: `NP = 4` tiles of n per panel.
    pub(crate) gru_n: StepFn<W>,
}

/// The kernel tables of one ISA, one per weight storage type.
pub struct IsaTables {
    pub(crate) f32: Kernels<f32>,
    pub(crate) f16: Kernels<half::f16>,
    pub(crate) bf16: Kernels<half::bf16>,
}

/// Picks the table of a weight type from an ISA's tables.
pub trait TableOf: crate::element::WeightLoad {
    /// This type's table among an ISA's tables.
    fn table(t: &'static IsaTables) -> &'static Kernels<Self>;
}

impl TableOf for f32 {
    fn table(t: &'static IsaTables) -> &'static Kernels<f32> {
        &t.f32
    }
}

impl TableOf for half::f16 {
    fn table(t: &'static IsaTables) -> &'static Kernels<half::f16> {
        &t.f16
    }
}

impl TableOf for half::bf16 {
    fn table(t: &'static IsaTables) -> &'static Kernels<half::bf16> {
        &t.bf16
    }
}

/// Defines the entry points of one ISA inside the module that invokes it. `$v` is the
/// ISA's [`V16`](vector::V16) type, `$feat` its `target_feature` string, `$mr4`,
/// `$mr3`, `$mr2`, `$mr6` the rows per block for panels of 4, 3, 2 and 6 vectors.
macro_rules! isa_kernels {
    ($isa:expr, $v:ty, $feat:literal, mr4 = $mr4:literal, mr3 = $mr3:literal, mr2 = $mr2:literal, mr6 = $mr6:literal) => {
        use std::ops::Range;

        use crate::arch::{GemmArgs, IsaTables, Kernels, StepArgs};
        use crate::element::WeightLoad;
        use crate::generic::epilogue::{
            GruLinearBeforeReset, GruNew, GruResetUpdate, Lstm, Rnn, Store,
        };
        use crate::generic::phase::run;

        const fn table<W: WeightLoad>(isa: crate::isa::Isa) -> Kernels<W> {
            Kernels {
                isa,
                gemm: gemm::<W>,
                rnn: rnn::<W>,
                lstm: lstm::<W>,
                // Paired storage (bf16) widens vectors two at a time: two tiles of
                // 3 gates per panel keep every vector in a pair.
                gru_lbr: if W::PAIRED {
                    gru_lbr_two_tiles::<W>
                } else {
                    gru_lbr::<W>
                },
                gru_rz: gru_rz::<W>,
                gru_n: gru_n::<W>,
            }
        }

        /// The kernel tables of this ISA.
        pub(crate) static TABLES: IsaTables = IsaTables {
            f32: table::<f32>($isa),
            f16: table::<half::f16>($isa),
            bf16: table::<half::bf16>($isa),
        };

        #[target_feature(enable = $feat)]
        unsafe fn gemm<W: WeightLoad>(g: &GemmArgs<W>, panels: Range<usize>, reverse: bool) {
            let epi = Store {
                out: g.out,
                stride: g.out_stride,
                bias: g.bias,
            };
            // SAFETY: reached only through the table of a detected ISA; the driver
            // sized every buffer for these rows and panels.
            unsafe { run::<$v, W, 4, $mr4, _>(&g.a, g.nrows, &g.w, panels, reverse, &epi) }
        }

        #[target_feature(enable = $feat)]
        unsafe fn rnn<W: WeightLoad>(a: &StepArgs<W>, panels: Range<usize>, reverse: bool) {
            let epi = Rnn {
                s: a.s,
                relu: a.relu,
            };
            // SAFETY: as for `gemm`.
            unsafe { run::<$v, W, 4, $mr4, _>(&a.a, a.nrows, &a.w, panels, reverse, &epi) }
        }

        #[target_feature(enable = $feat)]
        unsafe fn lstm<W: WeightLoad>(a: &StepArgs<W>, panels: Range<usize>, reverse: bool) {
            let epi = Lstm { s: a.s };
            // SAFETY: as for `gemm`.
            unsafe { run::<$v, W, 4, $mr4, _>(&a.a, a.nrows, &a.w, panels, reverse, &epi) }
        }

        #[target_feature(enable = $feat)]
        unsafe fn gru_lbr<W: WeightLoad>(a: &StepArgs<W>, panels: Range<usize>, reverse: bool) {
            let epi = GruLinearBeforeReset { s: a.s };
            // SAFETY: as for `gemm`.
            unsafe { run::<$v, W, 3, $mr3, _>(&a.a, a.nrows, &a.w, panels, reverse, &epi) }
        }

        #[target_feature(enable = $feat)]
        unsafe fn gru_lbr_two_tiles<W: WeightLoad>(
            a: &StepArgs<W>,
            panels: Range<usize>,
            reverse: bool,
        ) {
            let epi = GruLinearBeforeReset { s: a.s };
            // SAFETY: as for `gemm`.
            unsafe { run::<$v, W, 6, $mr6, _>(&a.a, a.nrows, &a.w, panels, reverse, &epi) }
        }

        #[target_feature(enable = $feat)]
        unsafe fn gru_rz<W: WeightLoad>(a: &StepArgs<W>, panels: Range<usize>, reverse: bool) {
            let epi = GruResetUpdate { s: a.s };
            // SAFETY: as for `gemm`.
            unsafe { run::<$v, W, 2, $mr2, _>(&a.a, a.nrows, &a.w, panels, reverse, &epi) }
        }

        #[target_feature(enable = $feat)]
        unsafe fn gru_n<W: WeightLoad>(a: &StepArgs<W>, panels: Range<usize>, reverse: bool) {
            let epi = GruNew { s: a.s };
            // SAFETY: as for `gemm`.
            unsafe { run::<$v, W, 4, $mr4, _>(&a.a, a.nrows, &a.w, panels, reverse, &epi) }
        }
    };
}
pub(crate) use isa_kernels;

/// The kernel table of an ISA for weights stored as `W`, or an error if this CPU
/// cannot run it.
pub(crate) fn kernels<W: TableOf>(isa: Isa) -> Result<&'static Kernels<W>, crate::Error> {
    let isa = isa.check()?;
    let tables: &'static IsaTables = match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Bf16 => &x86_64::avx512::TABLES_BF16,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => &x86_64::avx512::TABLES,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => &x86_64::avx2::TABLES,
        _ => &portable::TABLES,
    };
    Ok(W::table(tables))
}

/// `out = a x w (+ bias)` with bf16 rows `a` and pair-packed bf16 `w`.
pub(crate) struct DotGemmArgs {
    pub(crate) a: Rows<u16>,
    pub(crate) nrows: usize,
    pub(crate) w: PairPanelsView,
    pub(crate) out: *mut f32,
    pub(crate) out_stride: usize,
    pub(crate) bias: *const f32,
}

// SAFETY: as for `GemmArgs`: the pointers outlive the team that shares them and each
// member writes its own panels (disjoint columns).
unsafe impl Sync for DotGemmArgs {}

/// A bf16 x bf16 input-projection kernel (`vdpbf16ps`) over some panels.
pub(crate) type DotGemmFn = unsafe fn(&DotGemmArgs, Range<usize>);

/// The `vdpbf16ps` product for `isa`, if it has one and this CPU can run it.
pub(crate) fn dot_bf16_kernel(isa: Isa) -> Option<DotGemmFn> {
    match isa.check() {
        #[cfg(target_arch = "x86_64")]
        Ok(Isa::Avx512Bf16) => Some(x86_64::avx512::dot_bf16::gemm),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A forced path must run that path's code: the table handed out for an ISA is
    /// that ISA's, for every weight type (no silent fallback to the portable path).
    #[test]
    fn every_available_isa_gets_its_own_table() {
        for isa in Isa::available() {
            assert_eq!(kernels::<f32>(isa).unwrap().isa, isa);
            assert_eq!(kernels::<half::f16>(isa).unwrap().isa, isa);
            assert_eq!(kernels::<half::bf16>(isa).unwrap().isa, isa);
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("fma")
        {
            assert!(Isa::available().contains(&Isa::Avx512));
            let bf16 = std::arch::is_x86_feature_detected!("avx512bf16");
            assert_eq!(Isa::available().contains(&Isa::Avx512Bf16), bf16);
            let best = if bf16 { Isa::Avx512Bf16 } else { Isa::Avx512 };
            assert_eq!(Isa::best(), best);
        }
        // Only the AVX512-BF16 path has the `vdpbf16ps` product.
        for isa in Isa::available() {
            assert_eq!(dot_bf16_kernel(isa).is_some(), isa == Isa::Avx512Bf16);
        }
    }
}
