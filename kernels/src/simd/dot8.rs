//! [`Dot8`]: the integer micro-kernel's vocabulary, 16 `i32` lanes (one tile of
//! columns) accumulating products of `uint8` activation codes and `int8` weight codes,
//! four `k` at a time. Each instruction set implements it with its own instructions
//! (`vpdpbusd`; `vpmaddubsw` + `vpmaddwd`; `vpmaddwd` on widened codes; scalar code);
//! every implementation computes the same exact sums.

/// 16 lanes of `i32` sums `Σ_k a[k] · (w[k, lane] + W_OFFSET)`, `a` unsigned 8-bit codes and `w`
/// signed 8-bit codes, taken four `k` at a time: weights as 64 bytes (lane `l` in bytes
/// `4l .. 4l + 4`, the packing of `pack::int8`), activations as 4 bytes broadcast to
/// every lane. Sums wrap modulo 2³² (the drivers keep the exact sums in range).
///
/// # Safety
/// Implementors document the CPU features their methods need (callers use a type only
/// after detecting them) and must compute `dot` exactly for every input their users
/// allow (see each type).
pub(crate) unsafe trait Dot8: Copy {
    /// How many `Self` a block may keep live besides the weights and activations.
    const MAX_ACC: usize;
    /// Rows per register block.
    const MR: usize;
    /// The most 16-lane weight vectors a block may keep live at once (types whose
    /// [`W`](Dot8::W) takes many registers keep it small).
    const MAX_GS: usize = 6;
    /// What the type adds to every weight code: `dot` computes `Σ a · (w + W_OFFSET)`,
    /// and the walk subtracts `W_OFFSET · Σ a` per row (a type may work on the codes
    /// made unsigned, `w + 128`, to widen them cheaply).
    const W_OFFSET: i32 = 0;
    /// 16 lanes × 4 weight codes, as loaded (possibly pre-split for the instructions).
    type W: Copy;
    /// 4 activation codes broadcast, as the instructions take them.
    type A: Copy;
    /// All lanes 0.
    unsafe fn zero() -> Self;
    /// Loads 64 bytes of weight codes from `p` (no alignment needed).
    unsafe fn load_w(p: *const i8) -> Self::W;
    /// Broadcasts the 4 activation codes at `p` (no alignment needed).
    unsafe fn splat_a(p: *const u8) -> Self::A;
    /// `self + Σ_{j<4} a[j] · (w[4l + j] + W_OFFSET)` per lane `l`.
    unsafe fn dot(self, a: Self::A, w: Self::W) -> Self;
    /// Lane-wise `self + o` (wrapping).
    unsafe fn add(self, o: Self) -> Self;
    /// Stores the 16 lanes to `p` (no alignment needed).
    unsafe fn store(self, p: *mut i32);
}
