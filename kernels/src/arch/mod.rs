//! Per-ISA instantiations of the generic kernels, and the dispatcher.
//!
//! Layout follows memchr: `arch/<arch>/<isa>/` holds the vector type of that ISA
//! (`vector.rs`) and its backend (`mod.rs`): a zero-sized type implementing
//! [`Backend`], whose methods enter the ISA's `#[target_feature]` functions. Those are
//! generic over the storage type and the epilogue, so a cell (`cells`) is written once
//! against [`Backend`] and never listed here. The feature strings come from
//! [`isa_features!`](crate::isa::isa_features), the same list detection uses.
//!
//! The only way to reach a backend is [`dispatch`], which takes a [`Detected`] ISA.

#[cfg(test)]
mod int8_tests;
pub(crate) mod portable;
#[cfg(test)]
mod walk_tests;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;

use std::ops::Range;

use crate::element::Storage;
use crate::isa::{Detected, Isa};
use crate::kernel::walk::Job;
use crate::kernel::walk_i8::Job8;
use crate::kernel::{Epilogue, Rows, SimdOp, Store};
use crate::pack::PairPanelsView;
use crate::simd::V16;

/// What every path is: its name and its vector type.
pub(crate) trait Path: Copy + Send + Sync + 'static {
    /// The ISA this backend implements (the dispatcher's tests check it).
    const ISA: Isa;
    /// The path's 16-lane vector.
    type V: V16;
}

/// The micro-kernel over panels of `NP` vectors, with this path's rows per register
/// block for that width (its blocking parameter, as in matrixmultiply's kernel trait).
pub(crate) trait Blocked<const NP: usize>: Path {
    /// Rows per register block.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    const MR: usize;

    /// Runs [`walk::run`](crate::kernel::walk::run) over `panels` inside the path's
    /// `#[target_feature]` code.
    ///
    /// # Safety
    /// The path's features were detected (guaranteed when `Self` came from
    /// [`dispatch`]); `job` and `epi` satisfy `walk::run`'s contract for `panels`.
    unsafe fn panels<W: Storage, E: Epilogue<Self::V, NP>>(
        job: &Job<W, NP>,
        panels: Range<usize>,
        reverse: bool,
        epi: &E,
    );
}

/// One instruction set: the micro-kernel at every panel width the cells use, any
/// vector-generic operation, and the ISA's own extra kernels.
pub(crate) trait Backend: Blocked<2> + Blocked<3> + Blocked<4> + Blocked<6> {
    /// Runs `op` with this path's vector type inside its `#[target_feature]` code.
    ///
    /// # Safety
    /// As for [`Blocked::panels`], plus `op`'s own contract.
    unsafe fn run_op<O: SimdOp>(op: O) -> O::Output;

    /// The `vdpbf16ps` input projection, on paths that have it.
    fn dot_bf16() -> Option<DotFn> {
        None
    }

    /// What [`panels_i8`](Self::panels_i8) runs on this CPU (see
    /// [`int8_product`](crate::int8_product)).
    fn int8_product() -> &'static str;

    /// The int8 product ([`walk_i8::run`](crate::kernel::walk_i8::run)) over `panels`
    /// with this path's integer micro-kernel: `vpdpbusd` where the CPU has
    /// AVX512-VNNI (and AMX's tiles for full blocks of 16 rows where it has AMX-INT8),
    /// `vpmaddubsw` when `pairs_fit` and `vpmaddwd` on codes widened to
    /// words otherwise (`arch::x86_64::avx2::dot8`) on AVX2 and AVX-512 without VNNI,
    /// integer code on the portable path. Every one computes the same exact sums.
    ///
    /// # Safety
    /// As for [`Blocked::panels`], with `walk_i8::run`'s contract; `pairs_fit` only if
    /// `job.q.pairs_fit_i16` holds for the largest activation code of `job`.
    unsafe fn panels_i8<const NP: usize, E: Epilogue<Self::V, NP>>(
        job: &Job8<NP>,
        panels: Range<usize>,
        reverse: bool,
        epi: &E,
        pairs_fit: bool,
    );
}

/// `out = a x w (+ bias)` with bf16 rows `a` and pair-packed bf16 `w`. (Read by the
/// AVX512-BF16 kernel only, so unread on other targets.)
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct DotJob {
    pub(crate) a: Rows<u16>,
    pub(crate) nrows: usize,
    pub(crate) w: PairPanelsView<4>,
}

// SAFETY: a job only reads its rows and panels, which outlive the team sharing it.
unsafe impl Sync for DotJob {}

/// A bf16 x bf16 input-projection kernel (`vdpbf16ps`) over some panels.
pub(crate) type DotFn = unsafe fn(&DotJob, Range<usize>, &Store);

/// Something to do with a backend chosen at run time (Rust has no generic closures).
pub(crate) trait ForBackend {
    /// What it returns.
    type Output;
    /// Does it with backend `B`.
    fn call<B: Backend>(self) -> Self::Output;
}

/// Calls `f` with the backend of a detected ISA: the one place that maps [`Isa`] to
/// code.
pub(crate) fn dispatch<F: ForBackend>(isa: Detected, f: F) -> F::Output {
    match isa.isa() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Bf16 => f.call::<x86_64::avx512::Avx512Bf16>(),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => f.call::<x86_64::avx512::Avx512>(),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => f.call::<x86_64::avx2::Avx2>(),
        // Only the portable path can be detected on other targets.
        _ => f.call::<portable::Portable>(),
    }
}

/// Defines a backend `$name` in the invoking module: the ZST, its [`Path`],
/// [`Blocked`] and [`Backend`] impls, and the `#[target_feature]` entry points they
/// call. Invoked through [`isa_features!`](crate::isa::isa_features), which appends
/// the feature list, so detection and code generation share one list.
macro_rules! define_backend {
    (
        $(#[$doc:meta])*
        $name:ident, isa: $isa:expr, vector: $v:ty,
        rows_per_block: { $($np:literal => $mr:literal),* $(,)? },
        features: [$($f:tt),*]
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub(crate) struct $name;

        impl $crate::arch::Path for $name {
            const ISA: $crate::isa::Isa = $isa;
            type V = $v;
        }

        $(
            impl $crate::arch::Blocked<$np> for $name {
                const MR: usize = $mr;

                #[inline(always)]
                unsafe fn panels<
                    W: $crate::element::Storage,
                    E: $crate::kernel::Epilogue<$v, $np>,
                >(
                    job: &$crate::kernel::walk::Job<W, $np>,
                    panels: std::ops::Range<usize>,
                    reverse: bool,
                    epi: &E,
                ) {
                    // SAFETY: forwarded contract (features detected, job and epilogue
                    // valid for these panels).
                    unsafe { panels_entry::<W, E, $np, $mr>(job, panels, reverse, epi) }
                }
            }
        )*

        /// The micro-kernel walk, compiled with this path's features.
        ///
        /// # Safety
        /// See [`Blocked::panels`](crate::arch::Blocked::panels).
        $(#[target_feature(enable = $f)])*
        unsafe fn panels_entry<
            W: $crate::element::Storage,
            E: $crate::kernel::Epilogue<$v, NP>,
            const NP: usize,
            const MR: usize,
        >(
            job: &$crate::kernel::walk::Job<W, NP>,
            panels: std::ops::Range<usize>,
            reverse: bool,
            epi: &E,
        ) {
            // SAFETY: reached only through `dispatch` (features detected); the caller
            // sized every buffer for these rows and panels.
            unsafe { $crate::kernel::walk::run::<$v, W, NP, MR, E>(job, panels, reverse, epi) }
        }

        /// Any vector-generic operation, compiled with this path's features.
        ///
        /// # Safety
        /// See [`Backend::run_op`](crate::arch::Backend::run_op).
        $(#[target_feature(enable = $f)])*
        #[cfg_attr(not(test), allow(dead_code))]
        unsafe fn op_entry<O: $crate::kernel::SimdOp>(op: O) -> O::Output {
            // SAFETY: reached only through `dispatch` (features detected); forwarded
            // contract of the operation.
            unsafe { op.run::<$v>() }
        }
    };
}
pub(crate) use define_backend;

/// Defines `$name`, the int8 product with integer type `$d`, vector type `$v` and
/// matrix unit `$m` (none when not given) compiled with the path's features plus
/// `$extra` (a callback of
/// [`isa_features!`](crate::isa::isa_features), which appends the path's list). Only the
/// x86 paths have separately compiled int8 entries.
#[cfg(target_arch = "x86_64")]
macro_rules! define_i8_entry {
    (
        $(#[$doc:meta])*
        $name:ident, vector: $v:ty, dot: $d:ty, extra: [$($x:tt),*], features: [$($f:tt),*]
    ) => {
        $crate::arch::define_i8_entry!(
            $(#[$doc])*
            $name, vector: $v, dot: $d, matrix: $crate::kernel::walk_i8::NoMatrix,
            extra: [$($x),*], features: [$($f),*]
        );
    };
    (
        $(#[$doc:meta])*
        $name:ident, vector: $v:ty, dot: $d:ty, matrix: $m:ty, extra: [$($x:tt),*],
        features: [$($f:tt),*]
    ) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The features were detected; `walk_i8::run`'s contract.
        $(#[target_feature(enable = $f)])*
        $(#[target_feature(enable = $x)])*
        unsafe fn $name<const NP: usize, E: $crate::kernel::Epilogue<$v, NP>>(
            job: &$crate::kernel::walk_i8::Job8<NP>,
            panels: std::ops::Range<usize>,
            reverse: bool,
            epi: &E,
        ) {
            // SAFETY: reached only after detection; forwarded contract.
            unsafe { $crate::kernel::walk_i8::run::<$v, $d, $m, NP, E>(job, panels, reverse, epi) }
        }
    };
}
#[cfg(target_arch = "x86_64")]
pub(crate) use define_i8_entry;

/// The path's one copy of ONNX's activations, compiled with its features (a callback
/// of [`isa_features!`](crate::isa::isa_features)): `activation_entry` and
/// `activation_slope_entry`, which the path's [`V16::activation`](crate::simd::V16::activation)
/// and [`V16::activation_slope`](crate::simd::V16::activation_slope) call. Out of line
/// on purpose: inlined, the eleven functions would grow every epilogue instance (and
/// the build time with them) for a path the standard functions never take.
#[cfg(target_arch = "x86_64")]
macro_rules! define_activation_entries {
    (vector: $v:ty, features: [$($f:tt),*]) => {
        /// [`activation`](crate::simd::activations::activation) with this path's
        /// features.
        ///
        /// # Safety
        /// The path's features were detected.
        $(#[target_feature(enable = $f)])*
        #[inline(never)]
        pub(crate) unsafe fn activation_entry(x: $v, a: rnn_reference::Activation) -> $v {
            // SAFETY: the caller detected the features this function is compiled with.
            unsafe { $crate::simd::activations::activation(x, a) }
        }

        /// [`value_and_slope`](crate::simd::activation_slopes::value_and_slope) with
        /// this path's features.
        ///
        /// # Safety
        /// The path's features were detected.
        $(#[target_feature(enable = $f)])*
        #[inline(never)]
        pub(crate) unsafe fn activation_slope_entry(
            x: $v,
            a: rnn_reference::Activation,
        ) -> ($v, $v) {
            // SAFETY: as above.
            unsafe { $crate::simd::activation_slopes::value_and_slope(x, a) }
        }
    };
}
#[cfg(target_arch = "x86_64")]
pub(crate) use define_activation_entries;

/// Implements [`Backend`] for a backend defined by [`define_backend!`] in the same
/// module, with an optional `vdpbf16ps` product; the module's `panels_i8` function is
/// its int8 product.
macro_rules! impl_backend {
    ($name:ident $(, dot_bf16: $dot:expr)?) => {
        impl $crate::arch::Backend for $name {
            #[inline(always)]
            unsafe fn run_op<O: $crate::kernel::SimdOp>(op: O) -> O::Output {
                // SAFETY: forwarded contract.
                unsafe { op_entry(op) }
            }

            fn int8_product() -> &'static str {
                int8_product()
            }

            #[inline(always)]
            unsafe fn panels_i8<const NP: usize, E: $crate::kernel::Epilogue<Self::V, NP>>(
                job: &$crate::kernel::walk_i8::Job8<NP>,
                panels: std::ops::Range<usize>,
                reverse: bool,
                epi: &E,
                pairs_fit: bool,
            ) {
                // SAFETY: forwarded contract.
                unsafe { panels_i8::<NP, E>(job, panels, reverse, epi, pairs_fit) }
            }
            $(
                fn dot_bf16() -> Option<$crate::arch::DotFn> {
                    Some($dot)
                }
            )?
        }
    };
}
pub(crate) use impl_backend;

#[cfg(test)]
mod tests {
    use super::*;

    struct IsaOf;
    impl ForBackend for IsaOf {
        type Output = (Isa, bool);
        fn call<B: Backend>(self) -> (Isa, bool) {
            (B::ISA, B::dot_bf16().is_some())
        }
    }

    /// A forced path must run that path's code: the backend dispatched for an ISA is
    /// that ISA's (no silent fallback to the portable path), and only the
    /// AVX512-BF16 path has the `vdpbf16ps` product.
    #[test]
    fn every_available_isa_gets_its_own_backend() {
        for isa in Isa::available() {
            let (got, dot) = dispatch(isa.detected().unwrap(), IsaOf);
            assert_eq!(got, isa);
            assert_eq!(dot, isa == Isa::Avx512Bf16);
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
    }
}
