//! The dispatch table: for one detected ISA and weight storage type, the functions the
//! drivers call. Built by [`arch::dispatch`], which is the only way to reach a
//! backend; every entry is an instantiation for that one backend.
//!
//! The drivers are generic over the weight type, but the tables are not built
//! generically: [`kernels`] asks the type ([`Storage::kernels`]), whose impl builds the
//! table ([`KernelTables`]' [`TableFamily::build`]) at its own concrete type. Generic
//! code is compiled in whichever crate instantiates it, so a generic path from a public
//! entry point to the kernels made every dependent crate, test binary and fuzz target
//! compile all of them again; through the per-type functions they are compiled once,
//! in this crate.

use std::marker::PhantomData;

use crate::arch::{dispatch, Backend, DotFn, ForBackend};
use crate::cells::{CellWeights, StepPtrs};
use crate::element::{KernelTables, Storage, TableFamily};
use crate::isa::Isa;
use crate::kernel::Store;
use crate::parallel::Team;
use crate::{passes, Result};

/// One step of one direction (see `cells::Cell::step`).
pub(crate) type StepFn<W> = unsafe fn(&CellWeights<W>, &StepPtrs, &Team<'_>);
pub(crate) use crate::passes::GemmFn;

/// Every kernel the drivers call, for one ISA and weight type `W`. (`pub` in a private
/// module: unnameable outside the crate, and as visible as the sealed
/// [`Storage::kernels`] that returns it.)
pub struct Kernels<W: Storage> {
    /// Which ISA this table is (checked by the tests: no silent fallback).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) isa: Isa,
    /// One recurrent step, whatever the cell.
    pub(crate) step: StepFn<W>,
    /// The input projection.
    pub(crate) gemm: GemmFn<W>,
    /// The `vdpbf16ps` input projection, where the ISA has it.
    pub(crate) dot_bf16: Option<DotFn>,
}

/// The table of `isa` for weights stored as `W`, or an error if this CPU cannot run it
/// (through [`Storage::kernels`], so the table is built by this crate's own code).
pub(crate) fn kernels<W: Storage>(isa: Isa) -> Result<Kernels<W>> {
    W::kernels(isa)
}

/// What each weight type's [`Storage::kernels`] runs, at that type.
impl TableFamily for KernelTables {
    type Of<W: Storage> = Kernels<W>;

    fn build<W: Storage>(isa: Isa) -> Result<Kernels<W>> {
        Ok(dispatch(isa.detected()?, Table::<W>(PhantomData)))
    }
}

/// Builds a [`Kernels`] for the backend `dispatch` picks.
struct Table<W>(PhantomData<W>);

impl<W: Storage> ForBackend for Table<W> {
    type Output = Kernels<W>;

    fn call<B: Backend>(self) -> Kernels<W> {
        Kernels {
            isa: B::ISA,
            step: CellWeights::<W>::step::<B>,
            gemm: passes::gemm::<B, W, Store>,
            // The bf16 pair product reads float panels only.
            dot_bf16: if W::QUANTIZED { None } else { B::dot_bf16() },
        }
    }
}

/// Which instructions the int8 product of path `isa` runs on this CPU:
/// - `"amx+vpdpbusd"`: AMX's tiles for every full block of 16 rows of a product whose
///   depth is a multiple of 64, AVX512-VNNI's `vpdpbusd` for the other rows and products;
/// - `"vpdpbusd"`: AVX512-VNNI alone;
/// - `"vpmaddubsw/vpmaddwd"`: AVX2's integer multiply-adds (AVX2, and AVX-512 without
///   VNNI);
/// - `"portable"`: integer code.
///
/// Every one sums the codes exactly, so the results are the same bit for bit; this says
/// only how fast. `RNN_KERNELS_NO_AMX` (any value) turns AMX off for the process, and
/// `RNN_KERNELS_NO_VNNI` VNNI, both read once.
///
/// ```
/// use rnn_kernels::{int8_product, Isa};
/// let isa = Isa::best();
/// println!("int8 on {}: {}", isa.name(), int8_product(isa).unwrap());
/// ```
pub fn int8_product(isa: Isa) -> Result<&'static str> {
    struct Int8Product;
    impl ForBackend for Int8Product {
        type Output = &'static str;

        fn call<B: Backend>(self) -> &'static str {
            B::int8_product()
        }
    }
    Ok(dispatch(isa.detected()?, Int8Product))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path names one of its own int8 forms, the portable path always its one.
    #[test]
    fn int8_product_names_a_form_of_its_path() {
        assert_eq!(int8_product(Isa::Portable).unwrap(), "portable");
        for isa in Isa::available() {
            let forms: &[&str] = match isa {
                Isa::Avx512Bf16 | Isa::Avx512 => {
                    &["amx+vpdpbusd", "vpdpbusd", "vpmaddubsw/vpmaddwd"]
                }
                Isa::Avx2 => &["vpmaddubsw/vpmaddwd"],
                Isa::Portable => &["portable"],
            };
            let got = int8_product(isa).unwrap();
            assert!(forms.contains(&got), "{isa}: {got}");
        }
    }

    /// The table handed out for an ISA is that ISA's, for every weight type.
    #[test]
    fn every_available_isa_gets_its_own_table() {
        for isa in Isa::available() {
            assert_eq!(kernels::<f32>(isa).unwrap().isa, isa);
            assert_eq!(kernels::<half::f16>(isa).unwrap().isa, isa);
            assert_eq!(kernels::<half::bf16>(isa).unwrap().isa, isa);
            let dot = kernels::<half::bf16>(isa).unwrap().dot_bf16.is_some();
            assert_eq!(dot, isa == Isa::Avx512Bf16);
        }
    }
}
