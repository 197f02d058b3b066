//! Time: where `now` comes from, and the timers (scope deadlines and sleeping tasks) waiting on it.
//!
//! A runtime owns one [`Clock`]; every scope entered in that runtime shares it (scopes take it
//! from their parent). Two sources of time exist: the real one (`Instant::now()`, used by
//! [`run`](crate::run)) and a virtual one that stands still while any task can run and jumps to
//! the next timer when none can (used by [`testing`](crate::testing)).
//!
//! Timers are kept in one queue (a heap over a slab, see `TimerQueue`). Keys order them by instant, then deadlines before
//! wake-ups, then (deadlines) depth with ancestors first and scope creation order, or (wake-ups)
//! registration order. Firing pops them in that order, which gives S9: every deadline due at an
//! instant is processed before any task woken at that instant runs, and ties are deterministic.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::scope_tree::ScopeNode;
use crate::slab::{Slab, SlabKey};
use crate::sync::{self, Arc, Mutex};

/// A registered timer, as its owner keeps it to move or remove it: the entry and the `seq` of
/// its key (16 bytes, where the key is 48).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TimerHandle {
    entry: SlabKey,
    seq: u64,
}

/// Orders timers; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct TimerKey {
    at: Instant,
    /// 0 for a scope deadline, 1 for a task wake-up.
    class: u8,
    depth: u32,
    /// Zero, or under a seeded schedule a random number that shuffles same-instant wake-ups.
    shuffle: u64,
    seq: u64,
    /// Where the timer's entry lives in the queue (not part of the order in practice: `seq`
    /// already makes keys unique).
    entry: SlabKey,
}

impl TimerKey {
    fn handle(&self) -> TimerHandle {
        TimerHandle {
            entry: self.entry,
            seq: self.seq,
        }
    }
}

#[derive(Debug)]
enum Timer {
    Deadline(ScopeNode),
    Wake(Waker),
}

#[derive(Debug)]
enum Source {
    Real,
    /// `tokio::time::Instant::now()`: paused and auto-advanced with tokio's test utilities.
    #[cfg(all(feature = "tokio", not(wherefore_loom)))]
    Tokio,
    /// `start` plus the elapsed virtual time.
    Virtual {
        start: Instant,
        elapsed: Mutex<Duration>,
    },
}

#[derive(Debug)]
struct Timers {
    queue: TimerQueue,
    next_seq: u64,
    /// Woken when a timer earlier than every other is added, so a runtime parked until the old
    /// earliest timer wakes up and re-plans (the timer may come from another thread).
    runtime: Option<Waker>,
}

/// Pending timers: a min-heap of keys over a slab of entries.
///
/// Removing a timer (the common fate of a timeout) frees its entry at once and leaves its key in
/// the heap, skipped when it surfaces; when stale keys outnumber live ones they are dropped in
/// place, so the heap never holds much more than twice the pending timers. Timeouts mostly arrive
/// in deadline order, so a push rarely sifts. An entry keeps only its key's `seq` beside the
/// timer: a key is live if its slab key (whose stamp is unique per insertion) finds an entry with
/// the same `seq`.
#[derive(Debug)]
struct TimerQueue {
    heap: BinaryHeap<Reverse<TimerKey>>,
    entries: Slab<(u64, Timer)>,
}

impl TimerQueue {
    fn new() -> Self {
        TimerQueue {
            heap: BinaryHeap::new(),
            entries: Slab::new(),
        }
    }

    /// Adds `timer` under `key` (its `entry` is filled in); returns the complete key.
    fn insert(&mut self, mut key: TimerKey, timer: Timer) -> TimerKey {
        key.entry = self.entries.insert((key.seq, timer));
        self.heap.push(Reverse(key));
        key
    }

    fn is_live(entries: &Slab<(u64, Timer)>, timer: TimerHandle) -> bool {
        entries
            .get(timer.entry)
            .is_some_and(|(seq, _)| *seq == timer.seq)
    }

    fn get_mut(&mut self, timer: TimerHandle) -> Option<&mut Timer> {
        match self.entries.get_mut(timer.entry) {
            Some((seq, t)) if *seq == timer.seq => Some(t),
            _ => None,
        }
    }

    fn remove(&mut self, timer: TimerHandle) -> Option<Timer> {
        if !Self::is_live(&self.entries, timer) {
            return None;
        }
        let (_, removed) = self.entries.remove(timer.entry)?;
        if self.heap.len() > 64 && self.heap.len() > 2 * self.entries.len() {
            let entries = &self.entries;
            self.heap
                .retain(|Reverse(key)| Self::is_live(entries, key.handle()));
        }
        Some(removed)
    }

    /// The earliest live key, dropping stale ones on the way.
    fn first(&mut self) -> Option<TimerKey> {
        loop {
            let Reverse(top) = *self.heap.peek()?;
            if Self::is_live(&self.entries, top.handle()) {
                return Some(top);
            }
            self.heap.pop();
        }
    }

    /// Takes the earliest timer if it is due at `now`.
    fn pop_due(&mut self, now: Instant) -> Option<(TimerKey, Timer)> {
        let first = self.first()?;
        if first.at > now {
            return None;
        }
        self.heap.pop();
        let (_, timer) = self.entries.remove(first.entry)?;
        Some((first, timer))
    }
}

/// A small, fast, seedable generator (SplitMix64): enough to permute schedules reproducibly.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A source of time plus the timers waiting on it.
#[derive(Debug)]
pub(crate) struct Clock {
    source: Source,
    /// The seeded schedule of a testing runtime made `with_seed`.
    schedule: Option<Mutex<SplitMix64>>,
    timers: Mutex<Timers>,
}

impl Clock {
    fn with_source(source: Source, seed: Option<u64>) -> Arc<Clock> {
        Arc::new(Clock {
            source,
            schedule: seed.map(|seed| Mutex::new(SplitMix64(seed))),
            timers: Mutex::new(Timers {
                queue: TimerQueue::new(),
                next_seq: 0,
                runtime: None,
            }),
        })
    }

    /// The real clock.
    pub(crate) fn real() -> Arc<Clock> {
        Self::with_source(Source::Real, None)
    }

    /// Tokio's clock; its timers are fired by a task on the tokio runtime (see `tokio.rs`).
    #[cfg(all(feature = "tokio", not(wherefore_loom)))]
    pub(crate) fn tokio() -> Arc<Clock> {
        Self::with_source(Source::Tokio, None)
    }

    /// A virtual clock starting now.
    /// A virtual clock starting now; with a seed, same-instant wake-ups (and the tasks a
    /// cancellation wakes) come in an order shuffled by that seed, reproducibly.
    pub(crate) fn virtual_time(seed: Option<u64>) -> Arc<Clock> {
        Self::with_source(
            Source::Virtual {
                start: Instant::now(),
                elapsed: Mutex::new(Duration::ZERO),
            },
            seed,
        )
    }

    /// Whether this clock belongs to a seeded testing runtime.
    pub(crate) fn is_seeded(&self) -> bool {
        self.schedule.is_some()
    }

    /// The next number of the seeded schedule, if there is one.
    fn random(&self) -> Option<u64> {
        self.schedule.as_ref().map(|rng| sync::lock(rng).next())
    }

    /// Shuffles `items` with the seeded schedule; leaves them in order without one.
    pub(crate) fn shuffle<T>(&self, items: &mut [T]) {
        let Some(rng) = &self.schedule else { return };
        let mut rng = sync::lock(rng);
        for i in (1..items.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }

    pub(crate) fn is_virtual(&self) -> bool {
        matches!(self.source, Source::Virtual { .. })
    }

    pub(crate) fn now(&self) -> Instant {
        match &self.source {
            Source::Real => Instant::now(),
            #[cfg(all(feature = "tokio", not(wherefore_loom)))]
            Source::Tokio => ::tokio::time::Instant::now().into_std(),
            Source::Virtual { start, elapsed } => *start + *sync::lock(elapsed),
        }
    }

    pub(crate) fn set_runtime_waker(&self, waker: Option<Waker>) {
        sync::lock(&self.timers).runtime = waker;
    }

    fn insert(&self, key: TimerKey, timer: Timer) -> TimerHandle {
        let mut timers = sync::lock(&self.timers);
        let key = timers.queue.insert(key, timer);
        let earliest = timers.queue.first() == Some(key);
        let runtime = if earliest {
            timers.runtime.clone()
        } else {
            None
        };
        drop(timers);
        if let Some(waker) = runtime {
            waker.wake();
        }
        key.handle()
    }

    pub(crate) fn add_deadline(
        &self,
        at: Instant,
        depth: u32,
        seq: u64,
        node: ScopeNode,
    ) -> TimerHandle {
        let key = TimerKey {
            at,
            class: 0,
            depth,
            shuffle: 0, // deadlines keep their defined order (S9), whatever the seed
            seq,
            entry: 0,
        };
        self.insert(key, Timer::Deadline(node))
    }

    pub(crate) fn add_wake(&self, at: Instant, waker: Waker) -> TimerHandle {
        let seq = {
            let mut timers = sync::lock(&self.timers);
            timers.next_seq += 1;
            timers.next_seq
        };
        let key = TimerKey {
            at,
            class: 1,
            depth: 0,
            shuffle: self.random().unwrap_or(0),
            seq,
            entry: 0,
        };
        self.insert(key, Timer::Wake(waker))
    }

    /// Replaces the waker of a wake-up timer, if it is still pending.
    pub(crate) fn refresh_wake(&self, timer: TimerHandle, waker: &Waker) -> bool {
        match sync::lock(&self.timers).queue.get_mut(timer) {
            Some(Timer::Wake(w)) => {
                w.clone_from(waker); // skips an equivalent waker
                true
            }
            _ => false,
        }
    }

    pub(crate) fn remove(&self, timer: TimerHandle) {
        let removed = sync::lock(&self.timers).queue.remove(timer);
        drop(removed); // a deadline's node may be dropped here, outside the lock
    }

    /// The instant of the earliest pending timer.
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        sync::lock(&self.timers).queue.first().map(|key| key.at)
    }

    /// Fires every timer due at the current time, in key order. Returns how many fired.
    pub(crate) fn fire_due(&self) -> usize {
        let now = self.now();
        let mut fired = 0;
        loop {
            let next = sync::lock(&self.timers).queue.pop_due(now);
            let Some((key, timer)) = next else {
                return fired;
            };
            fired += 1;
            match timer {
                Timer::Deadline(node) => node.deadline_fired(key.handle()),
                Timer::Wake(waker) => waker.wake(),
            }
        }
    }

    /// Virtual clock only: moves time forward by `by` and fires what is due.
    #[cfg(wherefore_loom)]
    pub(crate) fn advance_by(&self, by: Duration) {
        if let Source::Virtual { elapsed, .. } = &self.source {
            let mut elapsed = sync::lock(elapsed);
            *elapsed += by;
        }
        self.fire_due();
    }

    /// Virtual clock only: jumps to the earliest pending timer (the caller then fires what is
    /// due). Returns `false` when no timer is pending (nothing can ever happen again).
    pub(crate) fn advance_to_next_timer(&self) -> bool {
        let Source::Virtual { start, elapsed } = &self.source else {
            return false;
        };
        let Some(next) = self.next_timer() else {
            return false;
        };
        {
            let mut elapsed = sync::lock(elapsed);
            let target = next.saturating_duration_since(*start);
            if target > *elapsed {
                *elapsed = target;
            }
        }
        true
    }
}
