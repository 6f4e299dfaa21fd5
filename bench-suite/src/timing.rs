//! Timing helpers: repeated runs and their median, and huge-page-backed buffers.

use std::time::{Duration, Instant};

/// How many times to run a timed call.
#[derive(Clone, Copy, Debug)]
pub struct Repeats {
    /// Run at least this often...
    pub min_runs: usize,
    /// ...and at least this long...
    pub min_time: Duration,
    /// ...but never more often than this...
    pub max_runs: usize,
    /// ...and stop once this much time has passed (after one timed run).
    pub max_time: Duration,
}

/// Runs `f` once untimed (warm-up: workspaces grow, caches fill), then as often as
/// `r` says, and returns the median seconds per call. A warm-up that alone exceeds
/// `r.max_time` counts as the only sample (so very slow paths stay bounded).
pub fn time_median(r: Repeats, mut f: impl FnMut()) -> f64 {
    let t0 = Instant::now();
    f();
    let warm = t0.elapsed();
    if warm >= r.max_time {
        return warm.as_secs_f64();
    }
    let mut samples = Vec::with_capacity(r.min_runs.max(16));
    let start = Instant::now();
    loop {
        let t0 = Instant::now();
        f();
        samples.push(t0.elapsed().as_secs_f64());
        let (n, el) = (samples.len(), start.elapsed());
        if n >= r.max_runs.max(1) || el >= r.max_time || (n >= r.min_runs && el >= r.min_time) {
            break;
        }
    }
    median(&mut samples)
}

/// The median of `v` (sorts it). NaN for an empty slice.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// `n` copies of `v` in memory backed like the kernels' packed weights: 2 MiB pages
/// where the OS grants them for buffers of 4 MiB and more (Linux `madvise`), so
/// measurements pay the same TLB costs as the kernels' (`kernels/src/aligned.rs`).
pub fn huge_page_buffer<T: Copy>(n: usize, v: T) -> Vec<T> {
    let mut buf: Vec<T> = Vec::with_capacity(n);
    let bytes = n * std::mem::size_of::<T>();
    #[cfg(target_os = "linux")]
    if bytes >= 4 << 20 {
        extern "C" {
            fn madvise(
                addr: *mut std::ffi::c_void,
                len: usize,
                advice: std::ffi::c_int,
            ) -> std::ffi::c_int;
        }
        const HUGE: usize = 2 << 20;
        let p = buf.as_mut_ptr() as usize;
        let (start, end) = (p.next_multiple_of(HUGE), (p + bytes) / HUGE * HUGE);
        if end > start {
            // SAFETY: `[start, end)` is page-aligned and inside the fresh, untouched
            // capacity of `buf`; MADV_HUGEPAGE (14) only changes how it is backed.
            unsafe { madvise(start as *mut std::ffi::c_void, end - start, 14) };
        }
    }
    buf.resize(n, v);
    buf
}
