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
use crate::pack::PanelsView;

/// A plain product `out = a x w (+ bias)` over some panels.
#[derive(Clone, Copy)]
pub(crate) struct GemmArgs {
    pub(crate) a: Rows,
    pub(crate) nrows: usize,
    pub(crate) w: PanelsView,
    pub(crate) out: *mut f32,
    pub(crate) out_stride: usize,
    pub(crate) bias: *const f32,
}

/// One pass of a recurrent step: `a x w` then a cell epilogue.
#[derive(Clone, Copy)]
pub(crate) struct StepArgs {
    pub(crate) a: Rows,
    pub(crate) nrows: usize,
    pub(crate) w: PanelsView,
    pub(crate) s: StepPtrs,
    pub(crate) relu: bool,
}

// SAFETY: the raw pointers in these argument blocks point into buffers that outlive
// the parallel region that shares them; threads write disjoint panels (disjoint
// columns of every output row), so sharing them across threads is race-free.
unsafe impl Send for GemmArgs {}
// SAFETY: as above.
unsafe impl Sync for GemmArgs {}
// SAFETY: as above.
unsafe impl Send for StepArgs {}
// SAFETY: as above.
unsafe impl Sync for StepArgs {}

/// A panel-range kernel: `(args, panels, reverse order)`.
pub(crate) type GemmFn = unsafe fn(&GemmArgs, Range<usize>, bool);
/// A panel-range step pass.
pub(crate) type StepFn = unsafe fn(&StepArgs, Range<usize>, bool);

/// Every kernel of one instruction set.
pub(crate) struct Kernels {
    pub(crate) isa: Isa,
    /// `NP = 4` plain product with bias (input projection, LSTM projection).
    pub(crate) gemm: GemmFn,
    /// Elman RNN step, `NP = 4` tiles per panel.
    pub(crate) rnn: StepFn,
    /// LSTM step, one tile (4 gates) per panel.
    pub(crate) lstm: StepFn,
    /// GRU (linear before reset), one tile (3 gates) per panel.
    pub(crate) gru_lbr: StepFn,
    /// GRU original form, pass 1: one tile (r, z) per panel.
    pub(crate) gru_rz: StepFn,
    /// GRU original form, pass 2: `NP = 4` tiles of n per panel.
    pub(crate) gru_n: StepFn,
}

/// Defines the entry points of one ISA inside the module that invokes it. `$v` is the
/// ISA's [`V16`](vector::V16) type, `$feat` its `target_feature` string, `$mr4`,
/// `$mr3`, `$mr2` the rows per block for panels of 4, 3 and 2 vectors.
macro_rules! isa_kernels {
    ($isa:expr, $v:ty, $feat:literal, mr4 = $mr4:literal, mr3 = $mr3:literal, mr2 = $mr2:literal) => {
        use std::ops::Range;

        use crate::arch::{GemmArgs, Kernels, StepArgs};
        use crate::generic::epilogue::{
            GruLinearBeforeReset, GruNew, GruResetUpdate, Lstm, Rnn, Store,
        };
        use crate::generic::phase::run;

        /// The kernel table of this ISA.
        pub(crate) static KERNELS: Kernels = Kernels {
            isa: $isa,
            gemm,
            rnn,
            lstm,
            gru_lbr,
            gru_rz,
            gru_n,
        };

        #[target_feature(enable = $feat)]
        unsafe fn gemm(g: &GemmArgs, panels: Range<usize>, reverse: bool) {
            let epi = Store {
                out: g.out,
                stride: g.out_stride,
                bias: g.bias,
            };
            // SAFETY: reached only through the table of a detected ISA; the driver
            // sized every buffer for these rows and panels.
            unsafe { run::<$v, 4, $mr4, _>(&g.a, g.nrows, &g.w, panels, reverse, &epi) }
        }

        #[target_feature(enable = $feat)]
        unsafe fn rnn(a: &StepArgs, panels: Range<usize>, reverse: bool) {
            let epi = Rnn {
                s: a.s,
                relu: a.relu,
            };
            // SAFETY: as for `gemm`.
            unsafe { run::<$v, 4, $mr4, _>(&a.a, a.nrows, &a.w, panels, reverse, &epi) }
        }

        #[target_feature(enable = $feat)]
        unsafe fn lstm(a: &StepArgs, panels: Range<usize>, reverse: bool) {
            let epi = Lstm { s: a.s };
            // SAFETY: as for `gemm`.
            unsafe { run::<$v, 4, $mr4, _>(&a.a, a.nrows, &a.w, panels, reverse, &epi) }
        }

        #[target_feature(enable = $feat)]
        unsafe fn gru_lbr(a: &StepArgs, panels: Range<usize>, reverse: bool) {
            let epi = GruLinearBeforeReset { s: a.s };
            // SAFETY: as for `gemm`.
            unsafe { run::<$v, 3, $mr3, _>(&a.a, a.nrows, &a.w, panels, reverse, &epi) }
        }

        #[target_feature(enable = $feat)]
        unsafe fn gru_rz(a: &StepArgs, panels: Range<usize>, reverse: bool) {
            let epi = GruResetUpdate { s: a.s };
            // SAFETY: as for `gemm`.
            unsafe { run::<$v, 2, $mr2, _>(&a.a, a.nrows, &a.w, panels, reverse, &epi) }
        }

        #[target_feature(enable = $feat)]
        unsafe fn gru_n(a: &StepArgs, panels: Range<usize>, reverse: bool) {
            let epi = GruNew { s: a.s };
            // SAFETY: as for `gemm`.
            unsafe { run::<$v, 4, $mr4, _>(&a.a, a.nrows, &a.w, panels, reverse, &epi) }
        }
    };
}
pub(crate) use isa_kernels;

/// The kernel table of an ISA, or an error if this CPU cannot run it.
pub(crate) fn kernels(isa: Isa) -> Result<&'static Kernels, crate::Error> {
    let isa = isa.check()?;
    Ok(match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => &x86_64::avx512::KERNELS,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => &x86_64::avx2::KERNELS,
        _ => &portable::KERNELS,
    })
}
