//! The AMX instructions the int8 block needs, as `asm!` (stable Rust has no AMX
//! intrinsics). Every tile is configured as 16 rows of 64 bytes: the output tiles
//! hold 16 rows × 16 `i32` sums, the activation tile 16 rows × 64 `u8` codes (64 of
//! `k`), a weight tile 16 row groups of 4 `k` × 16 columns (the panels' `[k4][col][4]`
//! layout read with the panel's row stride, so no repacking).
//!
//! Registers of a 16-row block ([`block`]): outputs `tmm0..tmm{NP-1}`, activations
//! `tmm7`, weights `tmm6` and `tmm5` alternately (`tmm6` alone for 6-vector panels,
//! whose outputs take `tmm5`). Of a 32-row block ([`block2`]), per pair of output
//! columns tiles: outputs `tmm0..tmm3`, activations `tmm4` and `tmm5`, weights `tmm6`
//! and `tmm7`.

use core::arch::asm;

/// Rows of a block (and of every tile).
pub(super) const ROWS: usize = 16;
/// Row groups of 4 `k` per step: 64 bytes of each activation row.
pub(super) const DEPTH4: usize = 16;

/// `ldtilecfg`'s 64-byte operand: palette 1, then bytes per row (u16 at 16 + 2t) and
/// rows (u8 at 48 + t) of each tile `t`.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

static CONFIG: TileConfig = {
    let mut c = [0u8; 64];
    c[0] = 1;
    let mut t = 0;
    while t < 8 {
        c[16 + 2 * t] = 64;
        c[48 + t] = ROWS as u8;
        t += 1;
    }
    TileConfig(c)
};

/// Loads the tile layout on this thread.
///
/// # Safety
/// AMX must be available and permitted (`super::available()`).
#[inline(always)]
pub(super) unsafe fn configure() {
    // SAFETY: `CONFIG` is a valid 64-byte palette-1 configuration; the instruction
    // only reads it.
    unsafe {
        asm!(
            "ldtilecfg [{cfg}]",
            cfg = in(reg) &CONFIG,
            options(nostack, readonly, preserves_flags)
        )
    }
}

/// Returns the tiles to their initial state (no tile state left to save on switches).
///
/// # Safety
/// AMX must be available and permitted.
#[inline(always)]
pub(super) unsafe fn release() {
    // SAFETY: touches only the tile registers.
    unsafe { asm!("tilerelease", options(nostack, nomem, preserves_flags)) }
}

/// Zeroes output tile `$c`.
macro_rules! zero {
    ($c:literal) => {
        asm!(
            concat!("tilezero tmm", $c),
            options(nostack, nomem, preserves_flags)
        )
    };
}

/// Loads tile `$t` from 16 rows of 64 bytes at `$p`, `$s` bytes apart.
macro_rules! load {
    ($t:literal, $p:expr, $s:expr) => {
        asm!(
            concat!("tileloadd tmm", $t, ", [{p} + {s}*1]"),
            p = in(reg) $p,
            s = in(reg) $s,
            options(nostack, readonly, preserves_flags)
        )
    };
}

/// `tmm$c += tmm$a (u8) · tmm$b (i8)`; `tmm7` as `$a` when not given.
macro_rules! dot {
    ($c:literal, $b:literal) => {
        dot!($c, 7, $b)
    };
    ($c:literal, $a:literal, $b:literal) => {
        asm!(
            concat!("tdpbusd tmm", $c, ", tmm", $a, ", tmm", $b),
            options(nostack, nomem, preserves_flags)
        )
    };
}

/// Stores output tile `$c` to 16 rows of 64 bytes at `$p`, `$s` bytes apart.
macro_rules! store {
    ($c:literal, $p:expr, $s:expr) => {
        asm!(
            concat!("tilestored [{p} + {s}*1], tmm", $c),
            p = in(reg) $p,
            s = in(reg) $s,
            options(nostack, preserves_flags)
        )
    };
}

/// `out[i * NP * 16 + c] = Σ_k a_i[k] · panel[k][c]` for 16 rows and the panel's
/// `NP * 16` columns.
///
/// # Safety
/// After [`configure`] on this thread; row `i` at `a + i * stride` holds `4 * k4`
/// readable bytes, `k4` a multiple of [`DEPTH4`]; the panel `k4 * NP * 64` bytes;
/// `out` 16 * NP * 16 writable `i32`; `NP` in 1..=6.
#[inline(always)]
pub(super) unsafe fn block<const NP: usize>(
    a: *const u8,
    stride: usize,
    k4: usize,
    panel: *const i8,
    out: *mut i32,
) {
    // One panel row group: NP vectors of 16 columns × 4 codes.
    let group = NP * 64;
    // SAFETY: (whole body) tiles configured (caller); every load reads 16 rows of 64
    // bytes inside the rows (bytes 4 q0 .. 4 q0 + 64 < 4 k4) or the panel (row groups
    // q0 .. q0 + 16 < k4, columns 16 j .. 16 j + 16 < NP * 16); the stores write 16 rows
    // of 16 sums inside `out`. The branches are on constants.
    unsafe {
        zero!(0);
        if NP > 1 {
            zero!(1);
        }
        if NP > 2 {
            zero!(2);
        }
        if NP > 3 {
            zero!(3);
        }
        if NP > 4 {
            zero!(4);
        }
        if NP > 5 {
            zero!(5);
        }
        let mut q0 = 0;
        while q0 < k4 {
            load!(7, a.add(4 * q0), stride);
            let w = panel.add(q0 * group);
            if NP <= 5 {
                load!(6, w, group);
                dot!(0, 6);
                if NP > 1 {
                    load!(5, w.add(64), group);
                    dot!(1, 5);
                }
                if NP > 2 {
                    load!(6, w.add(128), group);
                    dot!(2, 6);
                }
                if NP > 3 {
                    load!(5, w.add(192), group);
                    dot!(3, 5);
                }
                if NP > 4 {
                    load!(6, w.add(256), group);
                    dot!(4, 6);
                }
            } else {
                load!(6, w, group);
                dot!(0, 6);
                load!(6, w.add(64), group);
                dot!(1, 6);
                load!(6, w.add(128), group);
                dot!(2, 6);
                load!(6, w.add(192), group);
                dot!(3, 6);
                load!(6, w.add(256), group);
                dot!(4, 6);
                load!(6, w.add(320), group);
                dot!(5, 6);
            }
            q0 += DEPTH4;
        }
        let row = NP * 64;
        store!(0, out, row);
        if NP > 1 {
            store!(1, out.add(16), row);
        }
        if NP > 2 {
            store!(2, out.add(32), row);
        }
        if NP > 3 {
            store!(3, out.add(48), row);
        }
        if NP > 4 {
            store!(4, out.add(64), row);
        }
        if NP > 5 {
            store!(5, out.add(80), row);
        }
    }
}

/// [`block`] for 32 rows (two row blocks), in passes over pairs of output column tiles:
/// each weight tile serves both row blocks and each activation tile both columns, so a
/// row reads half the weight tiles the 16-row block reads (the weights come from L2,
/// the rows from L1: the weight loads were most of the tiles' time).
///
/// # Safety
/// As for [`block`], with 32 rows at `a` and `out` 32 * NP * 16 writable `i32`.
#[inline(always)]
pub(super) unsafe fn block2<const NP: usize>(
    a: *const u8,
    stride: usize,
    k4: usize,
    panel: *const i8,
    out: *mut i32,
) {
    let group = NP * 64;
    let row = NP * 64;
    let a1 = a.wrapping_add(ROWS * stride);
    let out1 = out.wrapping_add(ROWS * NP * 16);
    let mut c0 = 0;
    while c0 < NP {
        let two = c0 + 1 < NP;
        // SAFETY: (whole loop) tiles configured (caller); the loads read 16 rows of 64
        // bytes inside rows 0..32 (bytes 4 q0 .. 4 q0 + 64 < 4 k4) or the panel (row
        // groups q0 .. q0 + 16 < k4, columns 16 c0 .. 16 (c0 + 2) <= NP * 16); the
        // stores write rows 0..32, columns 16 c0 .. 16 (c0 + 2) of `out`.
        unsafe {
            zero!(0);
            zero!(2);
            if two {
                zero!(1);
                zero!(3);
            }
            let mut q0 = 0;
            while q0 < k4 {
                let w = panel.add(q0 * group + c0 * 64);
                load!(4, a.add(4 * q0), stride);
                load!(6, w, group);
                load!(5, a1.add(4 * q0), stride);
                dot!(0, 4, 6);
                dot!(2, 5, 6);
                if two {
                    load!(7, w.add(64), group);
                    dot!(1, 4, 7);
                    dot!(3, 5, 7);
                }
                q0 += DEPTH4;
            }
            store!(0, out.add(c0 * 16), row);
            store!(2, out1.add(c0 * 16), row);
            if two {
                store!(1, out.add(c0 * 16 + 16), row);
                store!(3, out1.add(c0 * 16 + 16), row);
            }
        }
        c0 += 2;
    }
}
