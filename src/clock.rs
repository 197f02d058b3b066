//! Time: where `now` comes from, and the timers (scope deadlines and sleeping tasks) waiting on it.
//!
//! A runtime owns one [`Clock`]; every scope entered in that runtime shares it (scopes take it
//! from their parent). Two sources of time exist: the real one (`Instant::now()`, used by
//! [`run`](crate::run)) and a virtual one that stands still while any task can run and jumps to
//! the next timer when none can (used by [`testing`](crate::testing)).
//!
//! Timers are kept in one queue (a timing wheel, see `timer_queue.rs`; an unrecorded timeout's
//! timer is stored in its own future, an [`UnrecordedTimer`], and linked there). Keys order them
//! by instant, then by *rank*: deadlines before wake-ups, then (deadlines) depth with ancestors first,
//! or (wake-ups, under a seeded schedule) a random number; then by *seq*: scope creation order for
//! deadlines, registration order for wake-ups. Firing pops them in that order, which gives S9:
//! every deadline due at an instant is processed before any task woken at that instant runs, and
//! ties are deterministic.

use std::task::Waker;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use crate::scope_tree::{Registered, ScopeNode, flags_say_cancelled};
use crate::sync::{self, Arc, AtomicU64, Mutex, Ordering};
pub(crate) use crate::timer_queue::TimerHandle;
use crate::timer_queue::{NodeTimer, TimerKey, TimerNode, TimerQueue};

/// The rank of every wake-up: above every deadline's (a depth), so that at one instant all
/// deadlines fire first (S9); the low bits hold the seeded shuffle.
const WAKE_RANK: u64 = 1 << 63;

/// The key of a scope's deadline at `depth`: deadlines keep their defined order (S9), whatever
/// the seed.
fn deadline_key(at: Instant, depth: u32, seq: u64) -> TimerKey {
    TimerKey {
        at,
        rank: u64::from(depth),
        seq,
    }
}

/// The timer of an unrecorded scope, stored in the scope's future (`timer_queue/linked.rs`):
/// adding it to the clock allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct UnrecordedTimer(TimerNode<Timer>);

/// What a timer does when it fires: cancel a scope at its deadline (kept as its address, removed
/// when the scope moves its deadline or exits: the scope tree's invariant 6), or wake a sleeping
/// task, or (the deadline of a scope entered without a record, `scope_tree/unrecorded.rs`) wake
/// the task polling that scope, noting whether its parent was cancelled then.
#[derive(Debug)]
enum Timer {
    Deadline(Registered),
    Wake(Waker),
    /// The parent's address is valid while the timer is here: the unrecorded scope holds a
    /// reference to it until it takes its timer back, under the clock's lock.
    Unrecorded {
        parent: Registered,
        waker: Waker,
    },
}

/// A timer taken out of the queue to fire, its scope turned back into a reference.
enum Fired {
    Deadline(ScopeNode),
    Wake(Waker),
}

/// What became of the deadline of an unrecorded scope when the scope takes it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It had not fired: now removed.
    Pending,
    /// It fired; `first` says whether the parent was not effectively cancelled then, so that
    /// the timeout reached the scope before the parent's cancellation did (S14).
    Fired { first: bool },
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

impl Source {
    fn now(&self) -> Instant {
        match self {
            Source::Real => Instant::now(),
            #[cfg(all(feature = "tokio", not(wherefore_loom)))]
            Source::Tokio => ::tokio::time::Instant::now().into_std(),
            Source::Virtual { start, elapsed } => *start + *sync::lock(elapsed),
        }
    }
}

#[derive(Debug)]
struct Timers {
    queue: TimerQueue<Timer>,
    next_seq: u64,
    /// The runtime driving this clock, woken when it must look at the timers again.
    runtime: Option<Waker>,
    /// What the runtime last planned to sleep until (see [`Plan`]).
    plan: Plan,
    /// Deadlines of unrecorded scopes that fired and were not taken back yet, with what their
    /// [`Outcome::Fired`] says.
    fired_unrecorded: HashMap<TimerHandle, bool>,
}

/// What the runtime planned the last time it asked for the earliest timer (`next_timer`), before
/// it went to sleep. A timer added earlier than that must wake it, so that it plans again (the
/// timer may come from another thread); any other timer will be seen when it next asks.
#[derive(Clone, Copy, Debug)]
enum Plan {
    /// It has not asked yet: it will before it sleeps.
    NotYet,
    /// It sleeps until this instant at the latest.
    Until(Instant),
    /// There was no timer: it sleeps until woken.
    Forever,
}

/// A small, fast, seedable generator (SplitMix64): enough to permute schedules reproducibly.
#[derive(Debug)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next(&mut self) -> u64 {
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
    /// How many deadlines of unrecorded scopes fired so far: an unrecorded scope that sees the
    /// count it saw last knows its own did not fire, without the lock.
    unrecorded_fired: AtomicU64,
}

impl Clock {
    fn with_source(source: Source, seed: Option<u64>) -> Arc<Clock> {
        let start = source.now();
        Arc::new(Clock {
            source,
            schedule: seed.map(|seed| Mutex::new(SplitMix64(seed))),
            timers: Mutex::new(Timers {
                queue: TimerQueue::new(start),
                next_seq: 0,
                runtime: None,
                plan: Plan::NotYet,
                fired_unrecorded: HashMap::new(),
            }),
            unrecorded_fired: AtomicU64::new(0),
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
        self.shuffle_by(items.len(), |i, j| items.swap(i, j));
    }

    /// Shuffles `len` items that `swap` exchanges by position, as [`shuffle`](Clock::shuffle)
    /// does a slice (the same draws, so the same order for the same seed).
    pub(crate) fn shuffle_by(&self, len: usize, mut swap: impl FnMut(usize, usize)) {
        let Some(rng) = &self.schedule else { return };
        let mut rng = sync::lock(rng);
        for i in (1..len).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            swap(i, j);
        }
    }

    pub(crate) fn is_virtual(&self) -> bool {
        matches!(self.source, Source::Virtual { .. })
    }

    /// Whether tokio drives this clock (its timers fire on tokio's timer, in any runtime task).
    pub(crate) fn is_tokio(&self) -> bool {
        #[cfg(all(feature = "tokio", not(wherefore_loom)))]
        if let Source::Tokio = self.source {
            return true;
        }
        false
    }

    pub(crate) fn now(&self) -> Instant {
        self.source.now()
    }

    pub(crate) fn set_runtime_waker(&self, waker: Option<Waker>) {
        sync::lock(&self.timers).runtime = waker;
    }

    /// Adds a timer under the key `key` makes (given the timers, under their lock), the way
    /// `add` puts it in the queue.
    fn insert<R>(
        &self,
        key: impl FnOnce(&mut Timers) -> TimerKey,
        add: impl FnOnce(&mut TimerQueue<Timer>, TimerKey) -> R,
    ) -> R {
        let mut timers = sync::lock(&self.timers);
        let key = key(&mut timers);
        let added = add(&mut timers.queue, key);
        let replan = match timers.plan {
            Plan::NotYet => false,
            Plan::Until(at) => key.at < at,
            Plan::Forever => true,
        };
        let runtime = if replan {
            timers.plan = Plan::Until(key.at);
            timers.runtime.clone()
        } else {
            None
        };
        drop(timers);
        if let Some(waker) = runtime {
            waker.wake();
        }
        added
    }

    pub(crate) fn add_deadline(
        &self,
        at: Instant,
        depth: u32,
        seq: u64,
        node: &ScopeNode,
    ) -> TimerHandle {
        let timer = Timer::Deadline(node.registered());
        self.insert(
            |_| deadline_key(at, depth, seq),
            |queue, key| queue.insert(key, timer),
        )
    }

    /// Adds the deadline of a scope entered under `parent` but not recorded in the tree, stored
    /// in `node`; it is ordered as [`add_deadline`](Clock::add_deadline) orders a recorded one
    /// at `depth`.
    ///
    /// # Safety
    ///
    /// `node` is in no clock, stays at its address until
    /// [`take_unrecorded`](Clock::take_unrecorded) took it back from this clock, and is given to
    /// no other clock meanwhile.
    pub(crate) unsafe fn add_unrecorded(
        &self,
        at: Instant,
        depth: u32,
        seq: u64,
        parent: &ScopeNode,
        waker: Waker,
        node: &UnrecordedTimer,
    ) {
        let timer = Timer::Unrecorded {
            parent: parent.registered(),
            waker,
        };
        self.insert(
            |_| deadline_key(at, depth, seq),
            // SAFETY: the caller's promise is the queue's.
            |queue, key| unsafe { queue.insert_node(key, &node.0, timer) },
        );
    }

    /// Replaces the waker of an unrecorded scope's deadline, if it has not fired.
    ///
    /// # Safety
    ///
    /// `node` was given to no other clock since this one last took it back.
    pub(crate) unsafe fn refresh_unrecorded(&self, node: &UnrecordedTimer, waker: &Waker) {
        let mut timers = sync::lock(&self.timers);
        let refresh = |timer: &mut Timer| {
            if let Timer::Unrecorded { waker: w, .. } = timer {
                w.clone_from(waker);
            }
        };
        // SAFETY: the caller's promise.
        unsafe { timers.queue.with_node_timer(&node.0, refresh) };
    }

    /// How many deadlines of unrecorded scopes fired so far.
    pub(crate) fn unrecorded_fired(&self) -> u64 {
        self.unrecorded_fired.load(Ordering::Acquire)
    }

    /// Whether the deadline of an unrecorded scope fired (and was not taken back yet).
    ///
    /// # Safety
    ///
    /// As for [`refresh_unrecorded`](Clock::refresh_unrecorded).
    pub(crate) unsafe fn has_fired(&self, node: &UnrecordedTimer) -> bool {
        let mut timers = sync::lock(&self.timers);
        // SAFETY: the caller's promise.
        unsafe { timers.queue.node_popped(&node.0) }
            .is_some_and(|handle| timers.fired_unrecorded.contains_key(&handle))
    }

    /// Takes back the deadline of an unrecorded scope: removes it, or its outcome if it fired.
    /// `None` if `node` was in no clock.
    ///
    /// # Safety
    ///
    /// As for [`refresh_unrecorded`](Clock::refresh_unrecorded).
    pub(crate) unsafe fn take_unrecorded(&self, node: &UnrecordedTimer) -> Option<Outcome> {
        let mut timers = sync::lock(&self.timers);
        // SAFETY: the caller's promise.
        let (outcome, removed) = match unsafe { timers.queue.remove_node(&node.0) } {
            NodeTimer::Pending(timer) => (Outcome::Pending, Some(timer)),
            NodeTimer::Popped(handle) => {
                let first = timers.fired_unrecorded.remove(&handle).unwrap_or(false);
                (Outcome::Fired { first }, None)
            }
            NodeTimer::Off => return None,
        };
        drop(timers);
        drop(removed); // its waker is dropped here, outside the lock
        Some(outcome)
    }

    pub(crate) fn add_wake(&self, at: Instant, waker: Waker) -> TimerHandle {
        let rank = WAKE_RANK | (self.random().unwrap_or(0) >> 1);
        let key = |timers: &mut Timers| {
            timers.next_seq += 1;
            TimerKey {
                at,
                rank,
                seq: timers.next_seq,
            }
        };
        self.insert(key, |queue, key| queue.insert(key, Timer::Wake(waker)))
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
        drop(removed); // a sleeping task's waker is dropped here, outside the lock
    }

    /// When the runtime must look at the timers next; it calls this before it sleeps, and a
    /// timer added later than the returned instant does not wake it (see [`Plan`]).
    ///
    /// On the virtual clock this is the earliest timer's instant exactly: time jumps there. On a
    /// real clock it may be earlier (the start of a bucket of the timer wheel, see
    /// `timer_queue.rs`): waking then costs a look at the timers, whereas finding the exact
    /// instant would order timers that are mostly removed before their time.
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        let mut timers = sync::lock(&self.timers);
        let next = if self.is_virtual() {
            timers.queue.first().map(|key| key.at)
        } else {
            timers.queue.next_wake()
        };
        timers.plan = next.map_or(Plan::Forever, Plan::Until);
        next
    }

    /// Fires every timer due at the current time, in key order. Returns how many fired.
    pub(crate) fn fire_due(&self) -> usize {
        let now = self.now();
        let mut fired = 0;
        loop {
            let next = {
                let mut timers = sync::lock(&self.timers);
                let popped = timers.queue.pop_due(now);
                popped.map(|(handle, timer)| match timer {
                    // SAFETY: the scope was registered until `pop_due` took its timer, under
                    // the lock still held here (the scope tree's invariant 6).
                    Timer::Deadline(scope) => (handle, Fired::Deadline(unsafe { scope.node() })),
                    Timer::Wake(waker) => (handle, Fired::Wake(waker)),
                    Timer::Unrecorded { parent, waker } => {
                        // The parent is looked at now, in key order (S9 and S14): whether
                        // its cancellation reached the scope before this deadline did.
                        // SAFETY: the unrecorded scope that registered this timer holds a
                        // reference to its parent until it takes the timer back, under this
                        // lock (`scope_tree/unrecorded.rs`, invariant 1); the timer was there.
                        let first = !flags_say_cancelled(unsafe { parent.flags() });
                        timers.fired_unrecorded.insert(handle, first);
                        self.unrecorded_fired.fetch_add(1, Ordering::Release);
                        (handle, Fired::Wake(waker))
                    }
                })
            };
            let Some((handle, fired_timer)) = next else {
                return fired;
            };
            fired += 1;
            match fired_timer {
                Fired::Deadline(node) => node.deadline_fired(handle),
                Fired::Wake(waker) => waker.wake(),
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
