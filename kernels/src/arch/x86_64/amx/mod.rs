//! Intel AMX for the int8 product: the tile unit multiplies 16 rows of `u8` activation
//! codes by a 64-column panel of `i8` weight codes (`tdpbusd`, exact `i32` sums) in a
//! few instructions, where AVX512-VNNI needs hundreds. The walk hands it the full
//! 16-row blocks of a product and keeps `vpdpbusd` for the rest, so the results are the
//! same bit for bit with or without it.
//!
//! Stable Rust has neither AMX intrinsics nor its feature detection, so the instructions
//! are `asm!` (`tiles`), and the detection reads CPUID and XCR0 and asks Linux for the
//! tile state (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), as the kernel requires before a
//! process's first tile instruction. `RNN_KERNELS_NO_AMX` (any value) turns it off.

mod tiles;

use std::sync::OnceLock;

use crate::kernel::walk_i8::Matrix8;

/// Whether the AMX int8 unit can run in this process (detected, enabled by the OS,
/// permitted, not turned off); checked once.
pub(crate) fn available() -> bool {
    static AMX: OnceLock<bool> = OnceLock::new();
    *AMX.get_or_init(|| std::env::var_os("RNN_KERNELS_NO_AMX").is_none() && detect())
}

/// AMX-TILE and AMX-INT8 in CPUID, their state enabled in XCR0, and Linux's permission.
// `__cpuid` is a safe function from Rust 1.94 or so, unsafe before (MSRV 1.89).
#[allow(unused_unsafe)]
fn detect() -> bool {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    // SAFETY: every x86_64 CPU has CPUID; it reads no memory.
    let (max, leaf1) = unsafe { (__cpuid(0).eax, __cpuid(1)) };
    if max < 7 {
        return false;
    }
    // SAFETY: as above; leaf 7 exists (max >= 7).
    let leaf7 = unsafe { __cpuid_count(7, 0) };
    // CPUID.(7, 0):EDX bit 24 AMX-TILE, bit 25 AMX-INT8; CPUID.1:ECX bit 27 OSXSAVE.
    let tile_int8 = 3 << 24;
    if leaf7.edx & tile_int8 != tile_int8 || leaf1.ecx & (1 << 27) == 0 {
        return false;
    }
    // XCR0 bits 17 (XTILECFG) and 18 (XTILEDATA): the OS saves the tile state.
    let (lo, _hi): (u32, u32);
    // SAFETY: `xgetbv` with ECX = 0 reads XCR0; OSXSAVE (checked above) makes it legal
    // in user mode. It touches no memory.
    unsafe {
        core::arch::asm!(
            "xgetbv",
            in("ecx") 0u32,
            out("eax") lo,
            out("edx") _hi,
            options(nomem, nostack, preserves_flags)
        )
    };
    let tile_state = 3 << 17;
    lo & tile_state == tile_state && request_permission()
}

/// Asks Linux to let this process use the tile data (`XTILEDATA`); without it the first
/// tile instruction of each thread faults.
#[cfg(target_os = "linux")]
fn request_permission() -> bool {
    const SYS_ARCH_PRCTL: isize = 158;
    const ARCH_REQ_XCOMP_PERM: usize = 0x1023;
    const XFEATURE_XTILEDATA: usize = 18;
    let ret: isize;
    // SAFETY: the `arch_prctl` system call with these arguments only changes which CPU
    // state the kernel lets this process use; it reads and writes no user memory. The
    // `syscall` instruction clobbers rcx and r11, declared here.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        )
    };
    ret == 0
}

/// Other systems: not supported here.
#[cfg(not(target_os = "linux"))]
fn request_permission() -> bool {
    false
}

/// The AMX tiles as the int8 walk's matrix unit: 16 or 32 rows by a panel of up to 6
/// vectors (see `tiles` for the 8 tiles' roles).
pub(crate) struct Amx;

// SAFETY: `tiles::block` computes the exact sums of the raw codes (`tdpbusd` sums
// `u8 × i8` products in `i32` without saturation) and reads only the given rows and
// panel; the walk calls it only after `available()` (its users check).
unsafe impl Matrix8 for Amx {
    const ROWS: usize = tiles::ROWS;
    const MAX_BLOCKS: usize = 2;

    fn takes(k4: usize, np: usize) -> bool {
        k4 > 0 && k4.is_multiple_of(tiles::DEPTH4) && (1..=6).contains(&np)
    }

    /// Two blocks (32 rows) when the panel outgrows 32 KiB (a 1024-deep LSTM panel is
    /// 64 KiB): each weight tile then comes from L2, and two blocks read half as many.
    /// Smaller panels stay in L1 with one block's activations, not with two blocks':
    /// there two blocks took 0.96-1.20× the time of one (1 thread, Xeon model 167,
    /// LSTM and GRU at H = 256 and 512, batch 16 and 64).
    fn blocks(k4: usize, np: usize) -> usize {
        if k4 * np * 64 > 32 * 1024 {
            2
        } else {
            1
        }
    }

    unsafe fn begin(_np: usize) {
        // SAFETY: the caller's contract: AMX is available.
        unsafe { tiles::configure() }
    }

    unsafe fn block(
        a: *const u8,
        stride: usize,
        k4: usize,
        panel: *const i8,
        np: usize,
        blocks: usize,
        out: *mut i32,
    ) {
        // SAFETY: (all arms) the caller's contract, with `np` in 1..=6 (`takes`) and
        // `blocks` 1 or 2.
        unsafe {
            match (np, blocks) {
                (1, 1) => tiles::block::<1>(a, stride, k4, panel, out),
                (2, 1) => tiles::block::<2>(a, stride, k4, panel, out),
                (3, 1) => tiles::block::<3>(a, stride, k4, panel, out),
                (4, 1) => tiles::block::<4>(a, stride, k4, panel, out),
                (5, 1) => tiles::block::<5>(a, stride, k4, panel, out),
                (_, 1) => tiles::block::<6>(a, stride, k4, panel, out),
                (1, _) => tiles::block2::<1>(a, stride, k4, panel, out),
                (2, _) => tiles::block2::<2>(a, stride, k4, panel, out),
                (3, _) => tiles::block2::<3>(a, stride, k4, panel, out),
                (4, _) => tiles::block2::<4>(a, stride, k4, panel, out),
                (5, _) => tiles::block2::<5>(a, stride, k4, panel, out),
                _ => tiles::block2::<6>(a, stride, k4, panel, out),
            }
        }
    }

    unsafe fn end() {
        // SAFETY: the caller's contract: after `begin` on this thread.
        unsafe { tiles::release() }
    }
}
