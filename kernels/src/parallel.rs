//! Splitting a kernel's panels across the threads of the caller's rayon pool.
//!
//! Every output element is computed by exactly one thread with the same instruction
//! sequence whatever the split, so results are bit-identical for any thread count.

use std::ops::Range;

/// Below this many multiply-adds per thread, a split costs more than it saves (a
/// rayon join is 1.5-11 µs here; 256 K FMA lanes take ~2-5 µs on one core).
const MIN_FMAS_PER_THREAD: usize = 256 * 1024;

/// How many threads to use for a pass of `fmas` multiply-adds over `panels` panels,
/// given at most `max_threads`.
pub(crate) fn threads_for(fmas: usize, panels: usize, max_threads: usize) -> usize {
    let by_work = (fmas / MIN_FMAS_PER_THREAD).max(1);
    max_threads.min(by_work).min(panels).max(1)
}

/// Runs `f` over `0..panels` split into `threads` contiguous chunks (thread `i` always
/// gets chunk `i`, which keeps its share of the weights in its own cache).
pub(crate) fn for_each_chunk(threads: usize, panels: usize, f: &(impl Fn(Range<usize>) + Sync)) {
    if threads <= 1 {
        f(0..panels);
        return;
    }
    let chunk = |i: usize| (i * panels / threads)..((i + 1) * panels / threads);
    rayon::scope(|s| {
        for i in 1..threads {
            s.spawn(move |_| f(chunk(i)));
        }
        f(chunk(0));
    });
}
