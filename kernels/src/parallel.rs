//! Threads: a team of rayon workers that runs a whole sequence together, meeting at a
//! spin barrier between passes (~0.15 µs here, against 1.5-11 µs for a rayon join per
//! pass).
//!
//! Every output element is computed by exactly one thread with the same instruction
//! sequence whatever the split, so results are bit-identical for any thread count.
//! Member `i` always takes chunk `i` of a pass's panels, which keeps its share of the
//! weights in its own core's cache from step to step; and when the team is the whole
//! pool, member `i` is pool worker `i` ([`seat`]), so that share stays in the same
//! core's cache from call to call too (a step-by-step caller, an output layer).
//!
//! The team never waits for a worker that has not started: members register as they
//! begin, the coordinator closes registration after a short wait, and only the members
//! registered by then take part (late ones return at once). So a busy or nested pool
//! costs parallelism, never a deadlock.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Below this many multiply-adds per thread and step, a split costs more than it saves
/// (24 K lanes are ~0.4 µs of one core; a barrier is ~0.15 µs). Measured: a batch-1
/// RNN step at H = 256 (65 K lanes) runs 1.5x faster on two threads with this value.
const MIN_FMAS_PER_THREAD: usize = 24 * 1024;

/// How long the coordinator waits for members to start.
const START_WAIT: Duration = Duration::from_micros(200);

/// How many threads to use for a step of `fmas` multiply-adds over at most `panels`
/// panels, given at most `max_threads`.
pub(crate) fn threads_for(fmas: usize, panels: usize, max_threads: usize) -> usize {
    let by_work = (fmas / MIN_FMAS_PER_THREAD).max(1);
    max_threads.min(by_work).min(panels).max(1)
}

/// A sense-reversing spin barrier for a fixed number of threads.
struct SpinBarrier {
    arrived: AtomicUsize,
    generation: AtomicUsize,
    size: AtomicUsize,
}

impl SpinBarrier {
    fn wait(&self) {
        let size = self.size.load(Ordering::Acquire);
        let gen = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == size {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
        } else {
            let mut spins = 0u32;
            while self.generation.load(Ordering::Acquire) == gen {
                if spins < 1 << 14 {
                    std::hint::spin_loop();
                    spins += 1;
                } else {
                    // Someone was descheduled: stop burning the core.
                    std::thread::yield_now();
                }
            }
        }
    }
}

/// One member's view of the team.
pub(crate) struct Team<'a> {
    index: usize,
    size: usize,
    barrier: Option<&'a SpinBarrier>,
}

impl Team<'_> {
    /// A team of one (no threads, no barrier).
    pub(crate) fn solo() -> Team<'static> {
        Team {
            index: 0,
            size: 1,
            barrier: None,
        }
    }

    /// Whether this member does the team's serial work.
    pub(crate) fn is_leader(&self) -> bool {
        self.index == 0
    }

    /// Waits until every member got here; everything written before is visible after.
    pub(crate) fn sync(&self) {
        if let Some(b) = self.barrier {
            b.wait();
        }
    }

    /// This member's share of `0..n`, split among `min(size, active)` members
    /// (members past `active` get nothing).
    pub(crate) fn chunk(&self, n: usize, active: usize) -> Range<usize> {
        let k = self.size.min(active).max(1);
        if self.index >= k {
            return n..n;
        }
        (self.index * n / k)..((self.index + 1) * n / k)
    }

    /// This member's part of work that every member shares (copies, transposes).
    pub(crate) fn share(&self) -> Share {
        Share {
            index: self.index,
            count: self.size,
        }
    }
}

/// One member's part of a copy or a transpose split over a team: part `index` of
/// `count`, for code that takes no [`Team`] (packing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Share {
    index: usize,
    count: usize,
}

impl Share {
    /// All of it: the caller works alone.
    pub(crate) const ALL: Share = Share { index: 0, count: 1 };

    /// Part `index` of `count` (`index < count`).
    #[cfg(test)]
    pub(crate) fn part(index: usize, count: usize) -> Share {
        assert!(index < count);
        Share { index, count }
    }

    /// This part of `0..n`, cut at multiples of `align` (a cache line's worth, so that
    /// members do not write the same lines); the `count` parts cover `0..n` once.
    pub(crate) fn of(self, n: usize, align: usize) -> Range<usize> {
        let groups = n.div_ceil(align);
        let at = |i: usize| (i * groups / self.count * align).min(n);
        at(self.index)..at(self.index + 1)
    }
}

/// Shares plain data holding raw pointers with a team.
#[derive(Clone, Copy)]
pub(crate) struct Shared<T>(pub(crate) T);

// SAFETY: used only for pointer bundles into buffers that outlive the team, whose
// members write disjoint regions between barriers.
unsafe impl<T> Sync for Shared<T> {}

impl<T: Copy> Shared<T> {
    /// The bundle (a method, so closures capture the whole `Shared`, not a field).
    pub(crate) fn get(&self) -> T {
        self.0
    }
}

const CLOSED: usize = 1 << (usize::BITS - 1);

/// Registration and start of a team: members 1.. join while it is open.
struct Start {
    registered: AtomicUsize,
    barrier: SpinBarrier,
}

/// Runs `f` on a team of up to `want` threads of the current rayon pool (the caller's
/// thread included) and returns when all are done. Uses `rayon::join` only, which keeps
/// its jobs on the stack: no allocation.
pub(crate) fn run_team(want: usize, f: &(dyn Fn(&Team<'_>) + Sync)) {
    if want <= 1 {
        f(&Team::solo());
        return;
    }
    let start = Start {
        registered: AtomicUsize::new(1), // the coordinator is member 0
        barrier: SpinBarrier {
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            size: AtomicUsize::new(0),
        },
    };
    rayon::join(
        || coordinate(want, &start, f),
        || members(want - 1, &start, f),
    );
}

/// Member 0: waits briefly for the others to start, closes registration, runs.
fn coordinate(want: usize, start: &Start, f: &(dyn Fn(&Team<'_>) + Sync)) {
    await_members(&start.registered, want, START_WAIT);
    let size = start.registered.fetch_or(CLOSED, Ordering::AcqRel) & !CLOSED;
    start.barrier.size.store(size, Ordering::Release);
    f(&Team {
        index: seat(0, size),
        size,
        barrier: (size > 1).then_some(&start.barrier),
    });
}

/// Spins until `want` members registered or `wait` passed, whichever comes first.
fn await_members(registered: &AtomicUsize, want: usize, wait: Duration) {
    let t0 = Instant::now();
    while registered.load(Ordering::Acquire) < want && t0.elapsed() < wait {
        std::hint::spin_loop();
    }
}

/// `n` would-be members, forked as a tree of joins so idle workers can steal them.
fn members(n: usize, start: &Start, f: &(dyn Fn(&Team<'_>) + Sync)) {
    match n {
        0 => {}
        1 => member(start, f),
        _ => {
            rayon::join(|| members(n / 2, start, f), || members(n - n / 2, start, f));
        }
    }
}

/// Registers (unless the team already started without it) and runs.
fn member(start: &Start, f: &(dyn Fn(&Team<'_>) + Sync)) {
    let mut cur = start.registered.load(Ordering::Acquire);
    let index = loop {
        if cur & CLOSED != 0 {
            return; // too late: the team started without us
        }
        match start.registered.compare_exchange_weak(
            cur,
            cur + 1,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => break cur,
            Err(now) => cur = now,
        }
    };
    let size = loop {
        let s = start.barrier.size.load(Ordering::Acquire);
        if s != 0 {
            break s;
        }
        std::hint::spin_loop();
    };
    f(&Team {
        index: seat(index, size),
        size,
        barrier: Some(&start.barrier),
    });
}

/// A member's index in a team of `size`: its worker's index when the team is the whole
/// pool, else `registered`, its order of registration. Either way the indices are
/// `0..size`, each once: every member runs on a distinct worker of the pool the team
/// was formed in (the coordinator spins on its worker until the team closes, and a
/// member blocks its worker until the team is done), and the rule is the same for all
/// (same `size`, same pool). Before, member `i` was whichever worker came `i`-th, so
/// two calls could swap the workers' shares of the weights between the cores' caches:
/// on a 2-vCPU Xeon (lscpu model 167) an int8 output layer of 16 x 1024 x 4096 took
/// 0.194-0.208 ms per call at 2 threads, 0.182-0.186 ms with this rule.
fn seat(registered: usize, size: usize) -> usize {
    match rayon::current_thread_index() {
        Some(w) if size == rayon::current_num_threads() && w < size => w,
        _ => registered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn chunks_cover_exactly_once() {
        for size in 1..5 {
            for active in 1..6 {
                for n in 0..20 {
                    let mut seen = vec![0; n];
                    for index in 0..size {
                        let t = Team {
                            index,
                            size,
                            barrier: None,
                        };
                        for k in t.chunk(n, active) {
                            seen[k] += 1;
                        }
                    }
                    assert!(seen.iter().all(|&c| c == 1), "{size} {active} {n}");
                }
            }
        }
    }

    #[test]
    fn shares_cover_exactly_once_balanced_cut_at_the_alignment() {
        for count in 1..5 {
            for align in [1, 3, 16] {
                for n in 0..70 {
                    let mut seen = vec![0; n];
                    // Balanced: no part is more than its even share of the groups.
                    let most = n.div_ceil(align).div_ceil(count) * align;
                    for index in 0..count {
                        let part = Share { index, count }.of(n, align);
                        assert!(part.len() <= most, "{count} {align} {n}: {part:?}");
                        // Cuts fall on multiples of `align` (or at `n`).
                        assert!(part.start.is_multiple_of(align) || part.start == n);
                        assert!(part.end.is_multiple_of(align) || part.end == n);
                        for k in part {
                            seen[k] += 1;
                        }
                    }
                    assert!(seen.iter().all(|&c| c == 1), "{count} {align} {n}");
                }
            }
        }
        assert_eq!(Share::ALL.of(37, 16), 0..37);
    }

    /// The split rule as documented: a thread per 24 K multiply-adds, no more than the
    /// panels or the threads given, never fewer than one. (Literals, not the constant:
    /// a changed threshold must fail here, since results cannot show it.)
    #[test]
    fn threads_for_splits_only_work_worth_a_barrier() {
        assert_eq!(threads_for(0, 0, 4), 1);
        assert_eq!(threads_for(24 * 1024 - 1, 64, 2), 1);
        assert_eq!(threads_for(24 * 1024, 64, 2), 1);
        assert_eq!(threads_for(48 * 1024, 64, 2), 2);
        // The measured case: a batch-1 RNN step at H = 256 (65 K lanes), two threads'
        // worth of work, not three.
        assert_eq!(threads_for(256 * 256, 64, 2), 2);
        assert_eq!(threads_for(256 * 256, 64, 8), 2);
        assert_eq!(threads_for(72 * 1024, 64, 8), 3);
        assert_eq!(threads_for(1 << 30, 3, 8), 3);
        assert_eq!(threads_for(1 << 30, 64, 5), 5);
        assert_eq!(threads_for(1 << 30, 64, 0), 1);
    }

    /// Teams of `want` in a pool of `pool` threads, `tries` times and then on while no
    /// team of `want` formed, for up to `patience`: every team has one leader and
    /// seats `0..size` once each, and a team of the whole pool seats each member at its
    /// worker's index. Returns the largest team formed.
    fn form_teams(pool: usize, want: usize, tries: usize, patience: Duration) -> usize {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(pool)
            .build()
            .unwrap();
        let (mut largest, mut tried, t0) = (0, 0, Instant::now());
        while tried < tries || (largest < want && t0.elapsed() < patience) {
            tried += 1;
            let (seats, leaders, size) =
                (AtomicU64::new(0), AtomicU64::new(0), AtomicUsize::new(0));
            pool.install(|| {
                run_team(want, &|team| {
                    assert!(team.index < team.size && team.size <= want.max(1));
                    let bit = 1u64 << team.index;
                    assert_eq!(seats.fetch_or(bit, Ordering::SeqCst) & bit, 0, "seat taken");
                    leaders.fetch_add(team.is_leader() as u64, Ordering::SeqCst);
                    size.store(team.size, Ordering::SeqCst);
                    if team.size == rayon::current_num_threads() {
                        assert_eq!(Some(team.index), rayon::current_thread_index());
                    }
                });
            });
            let size = size.load(Ordering::SeqCst);
            assert_eq!(seats.load(Ordering::SeqCst), (1u64 << size) - 1);
            assert_eq!(leaders.load(Ordering::SeqCst), 1);
            largest = largest.max(size);
        }
        largest
    }

    /// The start wait ends as soon as the team is complete, and not before the wait
    /// when it is not: the team's size is decided there. (An immediate return against
    /// 10 s, and a lower bound that only a broken wait misses: a busy machine cannot
    /// fail either.)
    #[test]
    fn the_start_wait_ends_when_all_came_or_the_wait_passed() {
        let all = AtomicUsize::new(3);
        let t0 = Instant::now();
        await_members(&all, 3, Duration::from_secs(20));
        assert!(t0.elapsed() < Duration::from_secs(10), "waited for nobody");
        let some = AtomicUsize::new(1);
        let t0 = Instant::now();
        await_members(&some, 3, Duration::from_millis(20));
        assert!(t0.elapsed() >= Duration::from_millis(20), "gave up early");
    }

    #[test]
    fn teams_seat_every_member_once_with_one_leader() {
        let (none, ten_s) = (Duration::ZERO, Duration::from_secs(10));
        assert_eq!(form_teams(2, 1, 5, none), 1);
        // A waiting worker joins within the start wait, but one the other tests keep
        // off the cores misses it (2 cores): a pair that does not form in 10 s of
        // tries is a broken start, not a busy machine.
        assert_eq!(form_teams(2, 2, 100, ten_s), 2);
        // More threads than these machines have: teams may start short, but are
        // always seated right.
        assert!(form_teams(3, 3, 50, none) >= 1);
        assert!(form_teams(4, 3, 50, none) >= 1);
    }

    #[test]
    fn team_members_meet_at_barriers() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let counter = AtomicU64::new(0);
        pool.install(|| {
            run_team(3, &|team| {
                for round in 0..100u64 {
                    counter.fetch_add(1, Ordering::SeqCst);
                    team.sync();
                    // Every member has added for this round before anyone reads.
                    let now = counter.load(Ordering::SeqCst);
                    assert!(now >= (round + 1) * team.size as u64);
                    team.sync();
                }
            });
        });
        assert_eq!(counter.load(Ordering::SeqCst) % 100, 0);
    }
}
