//! Element types: `f32`, and the half-precision storage formats `half::f16` and
//! `half::bf16` (this crate computes in `f32` on CPUs without native half arithmetic);
//! and the weight types, which add `i8` (int8 codes with per-column scales, `int8`).
//!
//! [`Element`] (inputs, outputs and weights) and [`WeightType`] (weights only) are the
//! public, sealed traits; [`Storage`] is their crate-internal half: how a type is
//! stored in packed panels and widened into a [`V16`], the type tests the drivers
//! need (which are trait methods, not comparisons of names or `TypeId`s), and the
//! type's dispatch tables (built at the concrete type, so compiled in this crate).

use half::slice::HalfFloatSliceExt;

use crate::aligned::Plain;
use crate::isa::Isa;
use crate::simd::V16;
use crate::Result;

mod int8;

pub(crate) use int8::Coded;

mod sealed {
    /// Implemented for exactly the weight types (the three element types and `i8`, plus
    /// the crate's private import source); carries the crate-internal
    /// [`Storage`](super::Storage) plumbing (unnameable outside the crate).
    pub trait Sealed: super::storage::Storage {}
    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
    impl Sealed for i8 {}
    impl Sealed for super::Coded {}
}

pub(crate) use storage::{KernelTables, OutputTables, Storage, TableFamily};

/// How weights are stored once packed: `f32`, `half::f16`, `half::bf16` (every value
/// rounded once, to nearest even), or `i8`: int8 codes with a scale per output unit
/// (symmetric per-channel quantization of float weights, or codes imported as given),
/// multiplied by activations quantized to `uint8` at run time (see
/// [`ActivationQuant`](crate::ActivationQuant)). Every [`Element`] is one.
pub trait WeightType:
    sealed::Sealed + Copy + Default + Send + Sync + std::fmt::Debug + 'static
{
    /// `"f32"`, `"f16"`, `"bf16"` or `"int8"`.
    const STORAGE_NAME: &'static str;
}

impl WeightType for f32 {
    const STORAGE_NAME: &'static str = "f32";
}

impl WeightType for half::f16 {
    const STORAGE_NAME: &'static str = "f16";
}

impl WeightType for half::bf16 {
    const STORAGE_NAME: &'static str = "bf16";
}

impl WeightType for i8 {
    const STORAGE_NAME: &'static str = "int8";
}

/// A tensor element type: `f32`, `half::f16` or `half::bf16`. Weights may be stored in
/// any of them (see [`PackedRnn::pack`](crate::PackedRnn::pack)) and inputs and outputs
/// given in any of them; arithmetic is always `f32`.
pub trait Element: WeightType {
    /// `"f32"`, `"f16"` or `"bf16"`.
    const NAME: &'static str;
    /// Rounds to nearest, ties to even (exact for `f32`); NaN stays NaN, values beyond
    /// the range become ±inf.
    fn from_f32(v: f32) -> Self;
    /// Exact widening.
    fn to_f32(self) -> f32;
    /// Widens a slice (`dst.len() == src.len()`), with SIMD where `half` has it.
    fn slice_to_f32(src: &[Self], dst: &mut [f32]);
    /// Rounds a slice (`dst.len() == src.len()`), with SIMD where `half` has it.
    fn slice_from_f32(src: &[f32], dst: &mut [Self]);
}

impl Element for f32 {
    const NAME: &'static str = "f32";
    #[inline]
    fn from_f32(v: f32) -> Self {
        v
    }
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
    fn slice_to_f32(src: &[Self], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    fn slice_from_f32(src: &[f32], dst: &mut [Self]) {
        dst.copy_from_slice(src);
    }
}

impl Element for half::f16 {
    const NAME: &'static str = "f16";
    #[inline]
    fn from_f32(v: f32) -> Self {
        half::f16::from_f32(v)
    }
    #[inline]
    fn to_f32(self) -> f32 {
        half::f16::to_f32(self)
    }
    fn slice_to_f32(src: &[Self], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
    fn slice_from_f32(src: &[f32], dst: &mut [Self]) {
        dst.convert_from_f32_slice(src);
    }
}

impl Element for half::bf16 {
    const NAME: &'static str = "bf16";
    #[inline]
    fn from_f32(v: f32) -> Self {
        half::bf16::from_f32(v)
    }
    #[inline]
    fn to_f32(self) -> f32 {
        half::bf16::to_f32(self)
    }
    fn slice_to_f32(src: &[Self], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
    fn slice_from_f32(src: &[f32], dst: &mut [Self]) {
        dst.convert_from_f32_slice(src);
    }
}

mod storage {
    use super::*;

    /// How an element type is stored in packed panels and loaded into a [`V16`], plus
    /// the type tests the drivers need. Public only inside a private module: nameable
    /// in this crate, sealed for everyone else.
    pub trait Storage: Copy + Default + Send + Sync + 'static + Plain {
        /// Whether vectors are stored in lane-interleaved pairs (bf16): an odd vector
        /// per panel row then widens on its own, so kernels prefer panels of even width.
        const PAIRED: bool = false;

        /// Whether values are int8 codes with per-column scales (`i8`): packed by
        /// `pack::int8`, multiplied by the integer product (`passes` sends every job
        /// of such panels there).
        const QUANTIZED: bool = false;

        /// The code, zero point and scale this source value carries, when it is an
        /// imported int8 weight ([`Coded`](super::Coded)); packing int8 panels then
        /// keeps the code instead of quantizing the value.
        fn coded(self) -> Option<(i8, i8, f32)> {
            None
        }

        /// Rounds to nearest, ties to even (what packing stores).
        fn round_from(v: f32) -> Self;

        /// The slice as `f32` when the type is `f32` (no copy needed).
        fn as_f32(s: &[Self]) -> Option<&[f32]> {
            let _ = s;
            None
        }

        /// Mutable [`as_f32`](Storage::as_f32).
        fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]> {
            let _ = s;
            None
        }

        /// The slice as `bf16` when the type is `bf16` (the `vdpbf16ps` inputs).
        fn as_bf16(s: &[Self]) -> Option<&[half::bf16]> {
            let _ = s;
            None
        }

        /// Where element `col` (vector `col / 16`, lane `col % 16`) of a packed panel
        /// row of `np` vectors is stored. The identity, except for bf16, which stores
        /// vectors in lane-interleaved pairs for [`V16::load_bf16_pair`].
        #[inline(always)]
        fn position(col: usize, _np: usize) -> usize {
            col
        }

        /// Loads vector `j` of a packed panel row of `np` vectors.
        ///
        /// # Safety
        /// `V`'s ISA must be available and `p` valid for `np * 16` reads, `j < np`.
        #[inline(always)]
        unsafe fn load_vec<V: V16>(p: *const Self, j: usize, _np: usize) -> V {
            // SAFETY: forwarded contract.
            unsafe { Self::load16::<V>(p.add(16 * j)) }
        }

        /// Loads one packed panel row of `NP` vectors.
        ///
        /// # Safety
        /// `V`'s ISA must be available and `p` valid for `NP * 16` reads.
        #[inline(always)]
        unsafe fn load_row<V: V16, const NP: usize>(p: *const Self) -> [V; NP] {
            // SAFETY: forwarded contract.
            let mut out = [unsafe { V::zero() }; NP];
            for (j, v) in out.iter_mut().enumerate() {
                // SAFETY: vector j lies inside the row.
                *v = unsafe { Self::load16::<V>(p.add(16 * j)) };
            }
            out
        }

        /// Loads 16 consecutive stored values.
        ///
        /// # Safety
        /// `V`'s ISA must be available and `p` valid for 16 reads.
        unsafe fn load16<V: V16>(p: *const Self) -> V;

        /// Where lane `l` of a vector is stored within a row of a striped panel's
        /// vector (16 values; `pack::index`). The identity, except for bf16, which
        /// zips the two halves of the vector for [`V16::load_bf16_zipped`].
        #[inline(always)]
        fn stripe_position(l: usize) -> usize {
            l
        }

        /// Loads one row of a striped panel's vector (16 values placed by
        /// [`stripe_position`](Self::stripe_position)).
        ///
        /// # Safety
        /// `V`'s ISA must be available and `p` valid for 16 reads.
        #[inline(always)]
        unsafe fn load_stripe<V: V16>(p: *const Self) -> V {
            // SAFETY: forwarded contract.
            unsafe { Self::load16::<V>(p) }
        }

        /// This type's dispatch table for `isa` (the recurrent layers'). Every weight
        /// type writes its own body (there is no default), building the table at its
        /// own type: the bodies are then ordinary functions of this crate, so the
        /// tables and every kernel they point to are compiled once, here, and not again
        /// in each crate that calls a generic entry point such as
        /// `PackedRnn::<f32>::forward` (a generic function is compiled where it is
        /// used: that made every test binary, fuzz target and dependent crate compile
        /// all the kernels of every ISA again).
        fn kernels(isa: Isa) -> Result<<KernelTables as TableFamily>::Of<Self>>;

        /// The output layer's table for `isa` (the element types only), for the same
        /// reason as [`kernels`](Self::kernels).
        fn output_kernels(isa: Isa) -> Result<<OutputTables as TableFamily>::Of<Self>>;
    }

    /// A family of per-weight-type tables of function pointers, defined by the layer
    /// that owns the table (the dispatch table, the output layer's): `Of<W>` is the
    /// table for weights `W`, and `build` makes it for a detected ISA. This layer only
    /// names the families, so that [`Storage`] can return their tables while the
    /// module graph stays one-way.
    pub trait TableFamily {
        /// The table for weights stored as `W`.
        type Of<W: Storage>;
        /// The table of `isa` for weights `W`, or an error if this CPU cannot run it.
        fn build<W: Storage>(isa: Isa) -> Result<Self::Of<W>>;
    }

    /// The recurrent layers' dispatch table (its [`TableFamily`] impl is the dispatch
    /// module's).
    pub struct KernelTables;

    /// The output layer's table (its [`TableFamily`] impl is the output module's).
    pub struct OutputTables;

    /// The bodies of [`Storage::kernels`] and [`Storage::output_kernels`] for a type
    /// that has both tables, at that concrete type.
    macro_rules! tables_of_this_type {
        () => {
            #[inline(never)]
            fn kernels(isa: Isa) -> Result<<KernelTables as TableFamily>::Of<Self>> {
                KernelTables::build::<Self>(isa)
            }

            #[inline(never)]
            fn output_kernels(isa: Isa) -> Result<<OutputTables as TableFamily>::Of<Self>> {
                OutputTables::build::<Self>(isa)
            }
        };
    }

    impl Storage for f32 {
        fn round_from(v: f32) -> Self {
            v
        }
        fn as_f32(s: &[Self]) -> Option<&[f32]> {
            Some(s)
        }
        fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]> {
            Some(s)
        }
        #[inline(always)]
        unsafe fn load16<V: V16>(p: *const Self) -> V {
            // SAFETY: forwarded contract.
            unsafe { V::load(p) }
        }

        tables_of_this_type!();
    }

    impl Storage for half::f16 {
        fn round_from(v: f32) -> Self {
            half::f16::from_f32(v)
        }
        #[inline(always)]
        unsafe fn load16<V: V16>(p: *const Self) -> V {
            // SAFETY: forwarded contract; f16 is a transparent u16.
            unsafe { V::load_f16(p.cast::<u16>()) }
        }

        tables_of_this_type!();
    }

    impl Storage for half::bf16 {
        const PAIRED: bool = true;

        fn round_from(v: f32) -> Self {
            half::bf16::from_f32(v)
        }

        fn as_bf16(s: &[Self]) -> Option<&[half::bf16]> {
            Some(s)
        }

        #[inline(always)]
        fn position(col: usize, np: usize) -> usize {
            let (j, l) = (col / 16, col % 16);
            if j < np / 2 * 2 {
                (j / 2) * 32 + 2 * l + (j % 2)
            } else {
                col
            }
        }

        #[inline(always)]
        unsafe fn load_vec<V: V16>(p: *const Self, j: usize, np: usize) -> V {
            if j < np / 2 * 2 {
                // SAFETY: vectors j & !1 and j | 1 are stored as a pair at 16 (j & !1).
                let (a, b) = unsafe { V::load_bf16_pair(p.add(16 * (j & !1)).cast::<u16>()) };
                if j.is_multiple_of(2) {
                    a
                } else {
                    b
                }
            } else {
                // SAFETY: an odd last vector is stored plainly at 16 j.
                unsafe { Self::load16::<V>(p.add(16 * j)) }
            }
        }

        #[inline(always)]
        unsafe fn load_row<V: V16, const NP: usize>(p: *const Self) -> [V; NP] {
            // SAFETY: forwarded contract.
            let mut out = [unsafe { V::zero() }; NP];
            let mut j = 0;
            while j + 2 <= NP {
                // SAFETY: vectors j and j + 1 are stored as 32 interleaved u16 at 16 j.
                let (a, b) = unsafe { V::load_bf16_pair(p.add(16 * j).cast::<u16>()) };
                out[j] = a;
                out[j + 1] = b;
                j += 2;
            }
            if j < NP {
                // SAFETY: an odd last vector is stored plainly at 16 j.
                out[j] = unsafe { Self::load16::<V>(p.add(16 * j)) };
            }
            out
        }

        #[inline(always)]
        unsafe fn load16<V: V16>(p: *const Self) -> V {
            // SAFETY: forwarded contract; bf16 is a transparent u16.
            unsafe { V::load_bf16(p.cast::<u16>()) }
        }

        #[inline(always)]
        fn stripe_position(l: usize) -> usize {
            2 * (l % 8) + l / 8
        }

        #[inline(always)]
        unsafe fn load_stripe<V: V16>(p: *const Self) -> V {
            // SAFETY: forwarded contract; bf16 is a transparent u16, zipped as
            // `stripe_position` places it.
            unsafe { V::load_bf16_zipped(p.cast::<u16>()) }
        }

        tables_of_this_type!();
    }
}
