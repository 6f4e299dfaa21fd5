//! The int8 weight type's storage (`i8` codes in panels) and [`Coded`], the source
//! type that carries imported codes through the cells' packing recipes.

use super::storage::{KernelTables, OutputTables, Storage, TableFamily};
use super::{Element, WeightType};
use crate::aligned::Plain;
use crate::isa::Isa;
use crate::simd::V16;
use crate::{Error, Result};

/// The refusal of a table this storage type has none of (never asked for: [`Coded`]
/// never reaches a driver).
fn no_table(what: &str, ty: &str) -> Error {
    Error::Invalid {
        arg: "weight type".into(),
        expected: format!("a weight type with {what}"),
        actual: ty.into(),
    }
}

/// Widens 16 stored values with `f` through a stack copy (the paths that never run on
/// these types in practice: every int8 product goes through the integer kernels).
///
/// # Safety
/// `V`'s ISA must be available and `p` valid for 16 reads.
#[inline(always)]
unsafe fn widen16<T: Copy, V: V16>(p: *const T, f: impl Fn(T) -> f32) -> V {
    let mut v = [0.0f32; 16];
    for (l, o) in v.iter_mut().enumerate() {
        // SAFETY: forwarded contract: 16 readable values.
        *o = f(unsafe { p.add(l).read() });
    }
    // SAFETY: forwarded contract; `v` holds 16 floats.
    unsafe { V::load(v.as_ptr()) }
}

impl Storage for i8 {
    const QUANTIZED: bool = true;

    fn round_from(v: f32) -> Self {
        v.round_ties_even() as i8
    }

    #[inline(always)]
    unsafe fn load16<V: V16>(p: *const Self) -> V {
        // SAFETY: forwarded contract.
        unsafe { widen16(p, f32::from) }
    }

    #[inline(never)]
    fn kernels(isa: Isa) -> Result<<KernelTables as TableFamily>::Of<Self>> {
        KernelTables::build::<Self>(isa)
    }

    #[inline(never)]
    fn output_kernels(isa: Isa) -> Result<<OutputTables as TableFamily>::Of<Self>> {
        OutputTables::build::<Self>(isa)
    }
}

/// An imported int8 weight on its way into the packing: its dequantized value (what
/// every float consumer of a weight set reads: biases, peepholes and the float types'
/// packing) and the code, zero point and scale it came from, which the int8 packing
/// keeps exactly (see [`Storage::coded`]). Biases and per-unit vectors are carried as
/// values with no code.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub(crate) struct Coded {
    value: f32,
    scale: f32,
    code: i8,
    zero_point: i8,
    /// 1 for a weight with a code, 0 for a plain value (a byte: `Plain` types admit
    /// every bit pattern).
    has_code: u8,
    _pad: [u8; 5],
}

impl Coded {
    /// A weight with its code.
    pub(crate) fn weight(code: i8, zero_point: i8, scale: f32) -> Self {
        Coded {
            value: (i32::from(code) - i32::from(zero_point)) as f32 * scale,
            scale,
            code,
            zero_point,
            has_code: 1,
            _pad: [0; 5],
        }
    }
}

// SAFETY: `repr(C)` of two f32 and eight bytes: 16 bytes, no implicit padding, and
// every bit pattern is a valid value.
unsafe impl Plain for Coded {}

impl WeightType for Coded {
    const STORAGE_NAME: &'static str = "coded";
}

impl Element for Coded {
    const NAME: &'static str = "coded";

    fn from_f32(v: f32) -> Self {
        Coded {
            value: v,
            ..Coded::default()
        }
    }

    fn to_f32(self) -> f32 {
        self.value
    }

    fn slice_to_f32(src: &[Self], dst: &mut [f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = s.value;
        }
    }

    fn slice_from_f32(src: &[f32], dst: &mut [Self]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = Coded::from_f32(s);
        }
    }
}

impl Storage for Coded {
    fn round_from(v: f32) -> Self {
        Coded::from_f32(v)
    }

    fn coded(self) -> Option<(i8, i8, f32)> {
        (self.has_code != 0).then_some((self.code, self.zero_point, self.scale))
    }

    #[inline(always)]
    unsafe fn load16<V: V16>(p: *const Self) -> V {
        // SAFETY: forwarded contract.
        unsafe { widen16(p, |c: Coded| c.value) }
    }

    fn kernels(_: Isa) -> Result<<KernelTables as TableFamily>::Of<Self>> {
        Err(no_table("kernels", "an import source"))
    }

    fn output_kernels(_: Isa) -> Result<<OutputTables as TableFamily>::Of<Self>> {
        Err(no_table("an output layer", "an import source"))
    }
}
