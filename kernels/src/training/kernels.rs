//! The backward's dispatch table: for one detected ISA, the functions the backward
//! driver calls (every entry an instantiation for that ISA's backend, as in
//! `dispatch`).

use crate::arch::{dispatch, Backend, ForBackend};
use crate::cells::backward::{BackCell, BackPtrs};
use crate::dispatch::GemmFn;
use crate::isa::Isa;
use crate::kernel::{AddStore, Store};
use crate::pack::runtime::TransposeBlocksFn;
use crate::parallel::Team;
use crate::{passes, Result};

/// One backward step (`first`: no later step).
pub(crate) type BackStepFn = unsafe fn(&BackCell, &BackPtrs, bool, &Team<'_>);
/// The pass after the earliest step.
pub(crate) type BackFinishFn = unsafe fn(&BackCell, &BackPtrs, &Team<'_>);

/// Every kernel the backward driver calls, for one ISA.
pub(crate) struct BackKernels {
    pub(crate) step: BackStepFn,
    pub(crate) finish: BackFinishFn,
    /// Products with runtime-packed f32 panels (weight gradients, `∂x`).
    pub(crate) gemm: GemmFn<f32>,
    /// The same, added to the output (the weight gradients' later `k` slices).
    pub(crate) gemm_add: passes::GemmAddF32,
    /// The runtime transposes of the products' left operands.
    pub(crate) transpose: passes::TransposeFn,
    /// The whole blocks of the transposed weights (`transpose_panels`).
    pub(crate) blocks: TransposeBlocksFn,
}

/// The table of `isa`, or an error if this CPU cannot run it.
pub(crate) fn back_kernels(isa: Isa) -> Result<BackKernels> {
    Ok(dispatch(isa.detected()?, Table))
}

struct Table;

impl ForBackend for Table {
    type Output = BackKernels;

    fn call<B: Backend>(self) -> BackKernels {
        BackKernels {
            step: BackCell::step::<B>,
            finish: BackCell::finish::<B>,
            gemm: passes::gemm::<B, f32, Store>,
            gemm_add: passes::gemm::<B, f32, AddStore>,
            transpose: passes::transpose::<B>,
            blocks: passes::transpose_blocks::<B>,
        }
    }
}
