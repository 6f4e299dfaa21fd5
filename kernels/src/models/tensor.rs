//! Little-endian tensor bytes as typed slices: borrowed where the bytes allow it
//! (aligned, little-endian host, same type), converted otherwise. Shared by both loaders.

use std::borrow::Cow;
use std::fmt;

use crate::Element;

/// The element type of a tensor stored in a model file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dtype {
    /// IEEE single precision.
    F32,
    /// IEEE half precision (`half::f16`).
    F16,
    /// bfloat16 (`half::bf16`).
    Bf16,
    /// IEEE double precision: read by rounding each value to `f32` (nearest, ties to
    /// even), as `model.float()` would.
    F64,
}

impl Dtype {
    /// `"f32"`, `"f16"`, `"bf16"` or `"f64"`.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
            Dtype::F64 => "f64",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::F64 => 8,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The element types a model's weights can be handed to the packer in without
/// conversion: `f32`, `f16`, `bf16`.
///
/// # Safety
/// Every bit pattern of `Self` must be a valid value and `Self` must have no padding
/// (the zero-copy path reinterprets file bytes as `[Self]`).
pub(crate) unsafe trait Stored: Element {
    /// The file dtype stored as exactly this type.
    const DTYPE: Dtype;
}

// SAFETY: IEEE single: every 4-byte pattern is a value, no padding.
unsafe impl Stored for f32 {
    const DTYPE: Dtype = Dtype::F32;
}
// SAFETY: `half::f16` is a `repr(transparent)` u16.
unsafe impl Stored for half::f16 {
    const DTYPE: Dtype = Dtype::F16;
}
// SAFETY: `half::bf16` is a `repr(transparent)` u16.
unsafe impl Stored for half::bf16 {
    const DTYPE: Dtype = Dtype::Bf16;
}

/// Reads one little-endian element of `dtype` (`b.len() == dtype.size()`) as `f32`.
fn read_f32(dtype: Dtype, b: &[u8]) -> f32 {
    match dtype {
        Dtype::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        Dtype::F16 => half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(),
        Dtype::Bf16 => half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(),
        Dtype::F64 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            f64::from_le_bytes(a) as f32
        }
    }
}

/// `bytes` (little-endian elements of `dtype`, `bytes.len()` a multiple of its size) as
/// `[T]`: borrowed when `dtype` is `T`'s, the host is little-endian and the bytes are
/// aligned for `T`; otherwise converted (exactly when `T` holds every `dtype` value,
/// else rounded to nearest, ties to even).
pub(crate) fn typed<T: Stored>(bytes: &[u8], dtype: Dtype) -> Cow<'_, [T]> {
    if dtype == T::DTYPE && cfg!(target_endian = "little") {
        // SAFETY: `Stored` types accept every bit pattern and have no padding, so any
        // aligned run of their size in bytes is a valid value; `align_to` only returns
        // aligned, in-bounds middle parts.
        let (head, mid, tail) = unsafe { bytes.align_to::<T>() };
        if head.is_empty() && tail.is_empty() {
            return Cow::Borrowed(mid);
        }
    }
    Cow::Owned(
        bytes
            .chunks_exact(dtype.size())
            .map(|b| T::from_f32(read_f32(dtype, b)))
            .collect(),
    )
}

/// `bytes` (little-endian elements of `dtype`) widened (or, from f64, rounded) to `f32`.
pub(crate) fn to_f32_vec(bytes: &[u8], dtype: Dtype) -> Vec<f32> {
    typed::<f32>(bytes, dtype).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    #[test]
    fn borrows_aligned_same_type_and_converts_the_rest() {
        let vals = [1.5f32, -2.25, 3.0e-3];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = typed::<f32>(&bytes, Dtype::F32);
        assert_eq!(&*t, &vals);
        // A byte offset of 1 cannot be aligned for f32 if offset 0 is: one of the two
        // must be a copy, and both must read the same values.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        assert_eq!(&*typed::<f32>(&shifted[1..], Dtype::F32), &vals);
        // Widening f16 and bf16 is exact; f64 rounds to nearest.
        let h: Vec<u8> = [f16::from_f32(0.5), f16::from_f32(-3.0)]
            .iter()
            .flat_map(|v| v.to_bits().to_le_bytes())
            .collect();
        assert_eq!(to_f32_vec(&h, Dtype::F16), vec![0.5, -3.0]);
        let b: Vec<u8> = [bf16::from_f32(7.0)]
            .iter()
            .flat_map(|v| v.to_bits().to_le_bytes())
            .collect();
        assert_eq!(&*typed::<bf16>(&b, Dtype::Bf16), &[bf16::from_f32(7.0)]);
        let d: Vec<u8> = 0.1f64.to_le_bytes().to_vec();
        assert_eq!(to_f32_vec(&d, Dtype::F64), vec![0.1f32]);
        // f32 to f16 rounds to nearest even.
        let one_third: Vec<u8> = (1.0f32 / 3.0).to_le_bytes().to_vec();
        assert_eq!(
            &*typed::<f16>(&one_third, Dtype::F32),
            &[f16::from_f32(1.0 / 3.0)]
        );
    }
}
