//! The clock's pending timers: a hierarchical timing wheel over a slab, with an exact order for
//! what is due.
//!
//! Most timers never fire: a timeout is usually removed when its scope exits. So adding and
//! removing must be cheap, and ordering can wait until a timer comes close. Adding puts the
//! timer's slab key at the back of one bucket of the wheel (O(1), no ordering); removing frees
//! its entry and takes the key back out if it is at either end of its bucket (timeouts that end
//! in the order they began, or in the opposite order when nested or successive), else leaves it
//! behind, skipped when met (O(1) either way). Only when time (or a question about the
//! earliest timer) reaches a bucket are its keys moved down a level, and at the bottom into
//! `due`, a heap ordered by the complete key ([`Stored`]): that heap gives S9's exact order among
//! timers of the same millisecond and of the same instant.
//!
//! Besides slab keys, a bucket links timers stored in their owners' futures (`linked.rs`: the
//! unrecorded timeouts'), which leave it by an unlink, from anywhere; they take a slab entry only
//! when they reach `due` or lie beyond the wheel. Invariants 1 and 2 below speak of both (a
//! linked node's key is the one it holds); invariant 3 only of slab keys, as nodes leave nothing
//! behind.
//!
//! # The wheel
//!
//! Time is counted in *ticks* (milliseconds since the queue's `base`). Level `l` has 64 buckets,
//! each `64^l` ticks wide; six levels span 2^36 ticks (about 2.2 years); keys beyond that wait in
//! `overflow`. `position` is the tick the wheel has been advanced to; it never moves back, and
//! it may run ahead of the clock (looking for the earliest timer advances it), which is harmless:
//! keys at or before `position` are in `due`, whose order is exact, and a due key is handed out
//! only once its instant has passed.
//!
//! # Invariants
//!
//! 1. A live key with tick `<= position` is in `due`. A live key with tick `> position` is in
//!    the bucket of level `l` = the highest 6-bit group in which its tick differs from `position`
//!    (slot = its tick's group `l`), or in `overflow` if that group is above the top level.
//! 2. Hence, at each level, every occupied bucket lies after `position`'s own bucket, every key
//!    at a lower level is earlier than every key at a higher one, and the first occupied bucket
//!    of the lowest occupied level holds the earliest keys of the wheel. Every move of `position`
//!    (`process`, `advance`, `reach_overflow`) keeps 1.
//! 3. Keys left behind by removals are counted in `stale` (an estimate: keys met and dropped on
//!    the way are not subtracted); when it passes the live count, every bucket is swept. So the
//!    structure never holds much more than twice the live timers.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

mod linked;

pub(crate) use linked::TimerNode;
use linked::{List, Place, with_state};

use crate::slab::{Slab, SlabKey};

/// Buckets per level, and the bits of a tick each level covers.
const SLOTS: usize = 64;
const BITS: u32 = 6;
const LEVELS: usize = 6;

/// Orders timers: by instant, then `rank`, then `seq` (see the clock's module documentation for
/// what the clock puts in them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct TimerKey {
    pub(crate) at: Instant,
    pub(crate) rank: u64,
    pub(crate) seq: u64,
}

/// A [`TimerKey`] as the queue stores it: its instant as nanoseconds since the queue's `base`
/// (computed once, when the timer is added), so that finding its tick again (to take it out of
/// its bucket) and comparing keys in `due` are integer operations, and an entry is 8 bytes
/// smaller. Exact for every instant from `base` to 584 years after it; an earlier instant is
/// stored as `base` (it is due: no timer is added for an instant before its clock started, as
/// `base` is when the clock started), a later one as the last instant that fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Stored {
    nanos: u64,
    rank: u64,
    seq: u64,
}

impl Stored {
    /// What a node holds before it is first added.
    const ZERO: Stored = Stored {
        nanos: 0,
        rank: 0,
        seq: 0,
    };
}

/// A registered timer, as its owner keeps it to move or remove it: its entry's key, whose stamp
/// tells it from whatever takes the entry's place after it (one word in every scope record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TimerHandle {
    entry: SlabKey,
}

#[derive(Debug)]
struct Level<T> {
    /// Bit `s` is set iff `slots[s]` holds keys (maybe only stale ones) or `linked[s]` nodes.
    occupied: u64,
    /// Keys in the order they were put there.
    slots: [VecDeque<SlabKey>; SLOTS],
    /// Timers stored in their owners (`linked.rs`), in the order they were linked.
    linked: [List<T>; SLOTS],
}

impl<T> Level<T> {
    /// Clears bucket `slot`'s bit if it holds nothing any more.
    fn note_if_empty(&mut self, slot: usize) {
        if self.slots[slot].is_empty() && self.linked[slot].is_empty() {
            self.occupied &= !(1 << slot);
        }
    }
}

/// What [`TimerQueue::remove_node`] found of a node's timer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NodeTimer<T> {
    /// It was pending: here it is, removed.
    Pending(T),
    /// It moved to a slab entry and was popped from there (fired): this was its handle.
    Popped(TimerHandle),
    /// The node was in no queue.
    Off,
}

/// Pending timers carrying a `T` each; see the module documentation.
#[derive(Debug)]
pub(crate) struct TimerQueue<T> {
    entries: Slab<(Stored, T)>,
    /// Tick zero.
    base: Instant,
    position: u64,
    /// Allocated with the first timer that lands in it.
    levels: Option<Box<[Level<T>; LEVELS]>>,
    overflow: Vec<SlabKey>,
    due: BinaryHeap<Reverse<(Stored, SlabKey)>>,
    stale: usize,
}

impl<T> TimerQueue<T> {
    /// An empty queue whose ticks count from `base`.
    pub(crate) fn new(base: Instant) -> Self {
        TimerQueue {
            entries: Slab::new(),
            base,
            position: 0,
            levels: None,
            overflow: Vec::new(),
            due: BinaryHeap::new(),
            stale: 0,
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.base).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }

    fn store(&self, key: TimerKey) -> Stored {
        Stored {
            nanos: self.nanos(key.at),
            rank: key.rank,
            seq: key.seq,
        }
    }

    fn instant(&self, nanos: u64) -> Instant {
        self.base + std::time::Duration::from_nanos(nanos)
    }

    fn key(&self, stored: Stored) -> TimerKey {
        TimerKey {
            at: self.instant(stored.nanos),
            rank: stored.rank,
            seq: stored.seq,
        }
    }

    /// The tick (millisecond since `base`) of a stored instant.
    fn tick(nanos: u64) -> u64 {
        nanos / 1_000_000
    }

    pub(crate) fn insert(&mut self, key: TimerKey, timer: T) -> TimerHandle {
        debug_assert!(
            key.at >= self.base,
            "no timer lies before its clock started"
        );
        let key = self.store(key);
        let entry = self.entries.insert((key, timer));
        self.place(entry, key);
        TimerHandle { entry }
    }

    pub(crate) fn get_mut(&mut self, handle: TimerHandle) -> Option<&mut T> {
        self.entries.get_mut(handle.entry).map(|(_, timer)| timer)
    }

    pub(crate) fn remove(&mut self, handle: TimerHandle) -> Option<T> {
        let (key, timer) = self.entries.remove(handle.entry)?;
        if !self.unplace(handle.entry, key) {
            self.stale += 1;
            if self.stale > 64 && self.stale > self.entries.len() {
                self.sweep();
            }
        }
        Some(timer)
    }

    /// Adds the timer `timer` under `key`, stored in `node` (`linked.rs`): linked into its
    /// bucket, or in a slab entry (the node moved there) if it is due already or beyond the
    /// wheel.
    ///
    /// # Safety
    ///
    /// `node` is in no queue, and stays at its address until [`remove_node`](Self::remove_node)
    /// took it back from this queue; no other queue is given it meanwhile (`linked.rs`,
    /// invariants 1 and 2).
    pub(crate) unsafe fn insert_node(&mut self, key: TimerKey, node: &TimerNode<T>, timer: T) {
        debug_assert!(
            key.at >= self.base,
            "no timer lies before its clock started"
        );
        let key = self.store(key);
        let node: *const TimerNode<T> = node;
        // SAFETY (all three): the caller's promise: the node is live and this queue's from now.
        match self.wheel_bucket(key) {
            Some((level, slot)) => unsafe {
                // The key is handed on, not read back: a load of what was just stored through
                // another width stalls (`perf annotate` put a quarter of this path there).
                with_state(node, |state| {
                    debug_assert_eq!(state.place, Place::Off, "a node is in one queue at a time");
                    state.key = key;
                    state.timer = Some(timer);
                });
                self.link(node, level, slot);
            },
            None => {
                let entry = self.entries.insert((key, timer));
                self.place(entry, key);
                unsafe { with_state(node, |state| state.place = Place::Moved(entry)) };
            }
        }
    }

    /// The wheel's bucket for a key (invariant 1), or `None` if it is due or beyond the wheel.
    fn wheel_bucket(&self, key: Stored) -> Option<(usize, usize)> {
        let tick = Self::tick(key.nanos);
        (tick > self.position)
            .then(|| self.bucket_of(tick))
            .flatten()
    }

    /// Links a node that is in no list into bucket `slot` of `level`.
    ///
    /// # Safety
    ///
    /// `node` is live and this queue's (`linked.rs`, invariants 1 and 2), in no list, and holds
    /// its key, which belongs in that bucket, and its timer.
    unsafe fn link(&mut self, node: *const TimerNode<T>, level: usize, slot: usize) {
        let level_of = &mut self.levels_mut()[level];
        // SAFETY: the caller's promise; the bucket's list holds live nodes of this queue.
        unsafe {
            level_of.linked[slot].push_back(node);
            with_state(node, |state| {
                state.place = Place::Linked {
                    level: level as u8,
                    slot: slot as u8,
                }
            });
        }
        level_of.occupied |= 1 << slot;
    }

    /// Puts a node taken out of its bucket where invariant 1 wants its key now: linked into a
    /// lower bucket, or moved to a slab entry (placed there) if it is due.
    ///
    /// # Safety
    ///
    /// `node` is live and this queue's (`linked.rs`, invariants 1 and 2), and in no list.
    unsafe fn place_node(&mut self, node: *const TimerNode<T>) {
        // SAFETY: the caller's promise.
        let key = unsafe { with_state(node, |state| state.key) };
        if let Some((level, slot)) = self.wheel_bucket(key) {
            // SAFETY: as above; the node holds its key and its timer (it was linked).
            unsafe { self.link(node, level, slot) };
            return;
        }
        // SAFETY: as above.
        let timer = unsafe { with_state(node, |state| state.timer.take()) };
        let Some(timer) = timer else {
            unreachable!("a node taken from a bucket holds its timer")
        };
        let entry = self.entries.insert((key, timer));
        self.place(entry, key);
        // SAFETY: as above.
        unsafe { with_state(node, |state| state.place = Place::Moved(entry)) };
    }

    /// Takes a node's timer back out of the queue: unlinked, or its slab entry removed; or, if
    /// it fired, the handle it fired under. The node is in no queue afterwards.
    ///
    /// # Safety
    ///
    /// `node` was never given to another queue since it was last taken back from this one.
    pub(crate) unsafe fn remove_node(&mut self, node: &TimerNode<T>) -> NodeTimer<T> {
        let node: *const TimerNode<T> = node;
        // SAFETY: the caller's promise: the node is this queue's or in none (then `Off`).
        let place = unsafe {
            with_state(node, |state| {
                std::mem::replace(&mut state.place, Place::Off)
            })
        };
        match place {
            Place::Off => NodeTimer::Off,
            Place::Moved(entry) => {
                let handle = TimerHandle { entry };
                match self.remove(handle) {
                    Some(timer) => NodeTimer::Pending(timer),
                    None => NodeTimer::Popped(handle),
                }
            }
            Place::Linked { level, slot } => {
                let (level, slot) = (usize::from(level), usize::from(slot));
                let Some(levels) = self.levels.as_mut() else {
                    unreachable!("a linked node is in a level (`linked.rs`, invariant 3)")
                };
                let level = &mut levels[level];
                // SAFETY: the node is this queue's, linked in this list (invariant 3), whose
                // nodes are live.
                let timer = unsafe {
                    level.linked[slot].unlink(node);
                    with_state(node, |state| state.timer.take())
                };
                level.note_if_empty(slot);
                match timer {
                    Some(timer) => NodeTimer::Pending(timer),
                    None => unreachable!("a linked node holds its timer"),
                }
            }
        }
    }

    /// Runs `f` on a node's pending timer, wherever it is; `false` if it is not pending.
    ///
    /// # Safety
    ///
    /// As for [`remove_node`](Self::remove_node).
    pub(crate) unsafe fn with_node_timer(
        &mut self,
        node: &TimerNode<T>,
        f: impl FnOnce(&mut T),
    ) -> bool {
        let node: *const TimerNode<T> = node;
        // SAFETY: the caller's promise, as in `remove_node`.
        let place = unsafe { with_state(node, |state| state.place) };
        match place {
            Place::Off => false,
            Place::Moved(entry) => match self.entries.get_mut(entry) {
                Some((_, timer)) => {
                    f(timer);
                    true
                }
                None => false,
            },
            // SAFETY: as above.
            Place::Linked { .. } => unsafe {
                with_state(node, |state| state.timer.as_mut().map(f).is_some())
            },
        }
    }

    /// The handle a node's timer fired under, if it moved to a slab entry and was popped.
    ///
    /// # Safety
    ///
    /// As for [`remove_node`](Self::remove_node).
    pub(crate) unsafe fn node_popped(&mut self, node: &TimerNode<T>) -> Option<TimerHandle> {
        let node: *const TimerNode<T> = node;
        // SAFETY: the caller's promise, as in `remove_node`.
        match unsafe { with_state(node, |state| state.place) } {
            Place::Moved(entry) if self.entries.get(entry).is_none() => Some(TimerHandle { entry }),
            _ => None,
        }
    }

    /// Takes `entry`'s key back out of its bucket if it is at either end (timeouts that end in
    /// the order they began, or nest, or follow one another), so that nothing is left behind.
    /// Returns whether it did.
    fn unplace(&mut self, entry: SlabKey, key: Stored) -> bool {
        let tick = Self::tick(key.nanos);
        if tick <= self.position {
            return false; // in `due`, which is a heap
        }
        let Some((level, slot)) = self.bucket_of(tick) else {
            if self.overflow.last() != Some(&entry) {
                return false;
            }
            self.overflow.pop();
            return true;
        };
        let Some(levels) = self.levels.as_mut() else {
            return false;
        };
        let level = &mut levels[level];
        let bucket = &mut level.slots[slot];
        // Either end keeps the bucket's room for the next timer.
        if bucket.back() == Some(&entry) {
            bucket.pop_back();
        } else if bucket.front() == Some(&entry) {
            bucket.pop_front();
        } else {
            return false;
        }
        level.note_if_empty(slot);
        true
    }

    /// Where invariant 1 puts a key with this tick (after `position`): its level and slot, or
    /// `None` for the overflow.
    fn bucket_of(&self, tick: u64) -> Option<(usize, usize)> {
        let level = ((63 - (tick ^ self.position).leading_zeros()) / BITS) as usize;
        (level < LEVELS).then(|| (level, (tick >> (BITS as usize * level)) as usize % SLOTS))
    }

    /// The earliest pending timer. Advances the wheel as far as it must to know (invariant 2).
    pub(crate) fn first(&mut self) -> Option<TimerKey> {
        loop {
            if let Some(key) = self.first_due() {
                return Some(self.key(key));
            }
            match self.next_bucket() {
                Some((level, slot, start)) => self.process(level, slot, start),
                None => {
                    let earliest = self
                        .overflow
                        .iter()
                        .filter_map(|&entry| self.entries.get(entry))
                        .map(|(key, _)| key.nanos)
                        .min()?;
                    self.reach_overflow(Self::tick(earliest));
                }
            }
        }
    }

    /// An instant at or before the earliest timer, found without moving anything: the earliest
    /// due key's, else the start of the wheel's earliest bucket (exact to the millisecond at the
    /// bottom level). A runtime that sleeps until then and fires what is due finds the next one
    /// a level closer: a timer that is removed before its time (a timeout's usual fate) is
    /// never ordered at all. Only the overflow (beyond the wheel) is searched. A bucket left
    /// with removed timers only still counts: waking for it clears it.
    pub(crate) fn next_wake(&mut self) -> Option<Instant> {
        if let Some(key) = self.first_due() {
            return Some(self.instant(key.nanos));
        }
        let start = self.next_bucket().and_then(|(_, _, start)| {
            self.base
                .checked_add(std::time::Duration::from_millis(start))
        });
        start.or_else(|| self.first().map(|key| key.at))
    }

    /// Takes the earliest timer if its instant is at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(TimerHandle, T)> {
        let now = self.nanos(now);
        self.advance(Self::tick(now));
        self.first_due().filter(|key| key.nanos <= now)?;
        let Reverse((_, entry)) = self.due.pop()?;
        let (_, timer) = self.entries.remove(entry)?;
        Some((TimerHandle { entry }, timer))
    }

    /// The earliest live key in `due`, dropping stale ones from its top.
    fn first_due(&mut self) -> Option<Stored> {
        loop {
            let Reverse((key, entry)) = *self.due.peek()?;
            if self.entries.get(entry).is_some_and(|(k, _)| *k == key) {
                return Some(key);
            }
            self.due.pop();
        }
    }

    /// Puts `entry` where invariant 1 wants it, relative to the current `position`.
    fn place(&mut self, entry: SlabKey, key: Stored) {
        let tick = Self::tick(key.nanos);
        if tick <= self.position {
            self.due.push(Reverse((key, entry)));
            return;
        }
        let Some((level, slot)) = self.bucket_of(tick) else {
            self.overflow.push(entry);
            return;
        };
        let level = &mut self.levels_mut()[level];
        level.slots[slot].push_back(entry);
        level.occupied |= 1 << slot;
    }

    /// The wheel's levels, allocated with the first timer that lands in them.
    fn levels_mut(&mut self) -> &mut [Level<T>; LEVELS] {
        self.levels.get_or_insert_with(|| {
            // A level at a time: the six together (18 KB) would be built on the stack first,
            // too much for a loom model's thread.
            let levels: Box<[Level<T>]> = (0..LEVELS)
                .map(|_| Level {
                    occupied: 0,
                    slots: std::array::from_fn(|_| VecDeque::new()),
                    linked: std::array::from_fn(|_| List::default()),
                })
                .collect();
            match levels.try_into() {
                Ok(levels) => levels,
                Err(_) => unreachable!("LEVELS levels were made"),
            }
        })
    }

    /// The first occupied bucket of the lowest occupied level, and the tick it starts at.
    fn next_bucket(&self) -> Option<(usize, usize, u64)> {
        let levels = self.levels.as_ref()?;
        let (level, occupied) = levels
            .iter()
            .enumerate()
            .find_map(|(l, level)| (level.occupied != 0).then_some((l, level.occupied)))?;
        let slot = occupied.trailing_zeros() as usize;
        let width = BITS as usize * level;
        let window = !((1u64 << (width + BITS as usize)) - 1);
        Some((
            level,
            slot,
            (self.position & window) | ((slot as u64) << width),
        ))
    }

    /// Moves `position` to the start of a bucket (after its own, invariant 2) and the bucket's
    /// keys down: to lower levels, or into `due`.
    fn process(&mut self, level: usize, slot: usize, start: u64) {
        debug_assert!(start > self.position, "buckets lie after the position");
        self.position = start;
        let Some(levels) = self.levels.as_mut() else {
            return;
        };
        levels[level].occupied &= !(1 << slot);
        let bucket = std::mem::take(&mut levels[level].slots[slot]);
        let mut linked = std::mem::take(&mut levels[level].linked[slot]);
        self.place_again(bucket);
        // SAFETY: the nodes of a bucket's list are live and ours (`linked.rs`, invariants 1
        // and 2); `linked` took them over from the bucket whole.
        while let Some(node) = unsafe { linked.pop_front() } {
            // SAFETY: as above; `node` is in no list now.
            unsafe { self.place_node(node) };
        }
    }

    /// Places the live ones of `entries` anew, relative to the current `position`.
    fn place_again(&mut self, entries: impl IntoIterator<Item = SlabKey>) {
        for entry in entries {
            if let Some(&(key, _)) = self.entries.get(entry) {
                self.place(entry, key);
            }
        }
    }

    /// Advances `position` to `target` (if it is not past it already), processing every bucket
    /// that starts at or before it.
    fn advance(&mut self, target: u64) {
        while self.position < target {
            match self.next_bucket() {
                Some((level, slot, start)) if start <= target => self.process(level, slot, start),
                // The wheel's earliest bucket starts later: so does everything in `overflow`.
                Some(_) => self.position = target,
                None => self.reach_overflow(target),
            }
        }
    }

    /// With the wheel empty: moves `position` to `target` and re-places the overflow's keys.
    fn reach_overflow(&mut self, target: u64) {
        let crossed = (target ^ self.position) >> (BITS as usize * LEVELS) != 0;
        self.position = self.position.max(target);
        if crossed {
            let overflow = std::mem::take(&mut self.overflow);
            self.place_again(overflow);
        }
    }

    /// Drops every key left behind by a removal (invariant 3).
    fn sweep(&mut self) {
        let entries = &self.entries;
        let live = |entry: &SlabKey| entries.get(*entry).is_some();
        if let Some(levels) = self.levels.as_mut() {
            for level in levels.iter_mut() {
                for slot in 0..SLOTS {
                    if level.occupied & (1 << slot) == 0 {
                        continue;
                    }
                    let bucket = &mut level.slots[slot];
                    bucket.retain(live);
                    if bucket.is_empty() {
                        *bucket = VecDeque::new();
                    }
                    level.note_if_empty(slot);
                }
            }
        }
        self.overflow.retain(live);
        self.due
            .retain(|Reverse((key, entry))| entries.get(*entry).is_some_and(|(k, _)| k == key));
        self.stale = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SplitMix64;
    use std::pin::Pin;
    use std::time::Duration;

    /// A reproducible stream of numbers: the clock's seeded generator.
    struct Numbers(SplitMix64);

    impl Numbers {
        fn below(&mut self, n: u64) -> u64 {
            self.0.next() % n
        }

        /// A delay from nanoseconds to past the wheel's span (2^36 ms), most of them short.
        fn delay(&mut self) -> Duration {
            let nanos = match self.below(10) {
                0..=3 => self.below(3_000_000),
                4..=6 => self.below(10_000_000_000),
                7 | 8 => self.below(10 * 86_400 * 1_000_000_000),
                _ => self.below(5 * 365 * 86_400 * 1_000_000_000),
            };
            Duration::from_nanos(nanos)
        }
    }

    /// A timer stored in a node the test owns, pinned in its box.
    type StoredTimer = Pin<Box<TimerNode<u64>>>;

    /// How a test holds a timer it added: by handle, or as the node that stores it.
    enum Held {
        Handle(TimerHandle),
        Node(StoredTimer),
    }

    impl Held {
        fn remove(&self, queue: &mut TimerQueue<u64>) -> Option<u64> {
            match self {
                Held::Handle(handle) => queue.remove(*handle),
                // SAFETY: the node is pinned in its box, added to this queue only, and the test
                // takes it back before the box goes (see `check_against_a_list`).
                Held::Node(node) => match unsafe { queue.remove_node(node) } {
                    NodeTimer::Pending(value) => Some(value),
                    NodeTimer::Popped(_) | NodeTimer::Off => None,
                },
            }
        }
    }

    /// Runs random insertions (by handle, or stored in a node), removals, time steps and
    /// questions, checking every answer against a plain list of the live keys.
    fn check_against_a_list(seed: u64, steps: usize) {
        let mut numbers = Numbers(SplitMix64(seed));
        let base = Instant::now();
        let mut now = base;
        let mut queue = TimerQueue::new(base);
        let mut live: Vec<(TimerKey, Held, u64)> = Vec::new();
        // Nodes whose timer fired: their handles, to ask them about it.
        let mut popped: Vec<(StoredTimer, TimerHandle)> = Vec::new();
        let mut seq = 0;
        for _ in 0..steps {
            match numbers.below(10) {
                0..=4 => {
                    seq += 1;
                    let rank = if numbers.below(2) == 0 {
                        numbers.below(3)
                    } else {
                        (1 << 63) | numbers.below(3)
                    };
                    // Some timers share an instant, some lie in the past (never before `base`,
                    // which is when the clock started: see `Stored`).
                    let at = match numbers.below(8) {
                        0 => live.first().map_or(now, |(key, ..)| key.at),
                        1 => (now - base)
                            .checked_sub(numbers.delay())
                            .map_or(base, |since| base + since),
                        _ => now + numbers.delay(),
                    };
                    let key = TimerKey { at, rank, seq };
                    let held = if numbers.below(2) == 0 {
                        Held::Handle(queue.insert(key, seq))
                    } else {
                        let node = Box::pin(TimerNode::new());
                        // SAFETY: pinned in its box; taken back from this queue before the box
                        // is dropped (removed, or asked after it fired, below and at the end).
                        unsafe { queue.insert_node(key, &node, seq) };
                        Held::Node(node)
                    };
                    live.push((key, held, seq));
                }
                5 | 6 if !live.is_empty() => {
                    // Often the latest or the earliest timer added, as nested, successive or
                    // concurrent timeouts leave.
                    let by_seq = |i: &usize| live[*i].0.seq;
                    let index = match numbers.below(3) {
                        0 => (0..live.len()).max_by_key(by_seq).expect("not empty"),
                        1 => (0..live.len()).min_by_key(by_seq).expect("not empty"),
                        _ => numbers.below(live.len() as u64) as usize,
                    };
                    let (_, held, value) = live.swap_remove(index);
                    assert_eq!(held.remove(&mut queue), Some(value));
                    assert_eq!(
                        held.remove(&mut queue),
                        None,
                        "a removed timer stays removed"
                    );
                }
                7 => {
                    let earliest = live.iter().map(|(key, ..)| *key).min();
                    // (With only removed timers left in a bucket it may still name an instant.)
                    if let Some(key) = earliest {
                        let wake = queue
                            .next_wake()
                            .expect("a wake-up while a timer is pending");
                        assert!(
                            wake <= key.at,
                            "seed {seed}: never after the earliest timer"
                        );
                    }
                    assert_eq!(queue.first(), earliest);
                }
                _ => {
                    now += numbers.delay() / (1 + numbers.below(1000) as u32);
                    live.sort_by_key(|(key, ..)| *key);
                    let due = live.iter().take_while(|(key, ..)| key.at <= now).count();
                    let mut expected = Vec::new();
                    let mut nodes = Vec::new();
                    for (_, held, value) in live.drain(..due) {
                        expected.push(value);
                        if let Held::Node(node) = held {
                            nodes.push((value, node));
                        }
                    }
                    let mut fired = Vec::new();
                    while let Some((handle, value)) = queue.pop_due(now) {
                        fired.push(value);
                        if let Some(i) = nodes.iter().position(|(v, _)| *v == value) {
                            popped.push((nodes.swap_remove(i).1, handle));
                        }
                    }
                    assert_eq!(fired, expected, "seed {seed}: what is due, in key order");
                    for (node, handle) in popped.drain(..) {
                        // SAFETY: as where it was added.
                        unsafe {
                            assert_eq!(queue.node_popped(&node), Some(handle));
                            assert_eq!(queue.remove_node(&node), NodeTimer::Popped(handle));
                            assert_eq!(queue.remove_node(&node), NodeTimer::Off);
                        }
                    }
                }
            }
        }
        for (_, held, value) in live.drain(..) {
            assert_eq!(
                held.remove(&mut queue),
                Some(value),
                "seed {seed}: still pending"
            );
        }
        assert_eq!(queue.first(), None);
    }

    #[test]
    fn timers_fire_in_key_order_whatever_the_mix_of_delays_removals_and_questions() {
        // Under Miri (which checks the nodes' pointers) a few seeds: it runs ~1,000x slower.
        let seeds = if cfg!(miri) { 4 } else { 200 };
        for seed in 0..seeds {
            check_against_a_list(seed, 400);
        }
    }

    #[test]
    fn a_handle_reaches_its_timer_until_it_fires_and_nothing_after() {
        let base = Instant::now();
        let mut queue = TimerQueue::new(base);
        let key = TimerKey {
            at: base + Duration::from_secs(3600),
            rank: 0,
            seq: 1,
        };
        let handle = queue.insert(key, "timeout");
        assert_eq!(queue.get_mut(handle).copied(), Some("timeout"));
        assert_eq!(queue.pop_due(base + Duration::from_secs(3599)), None);
        assert_eq!(queue.first(), Some(key));
        assert_eq!(
            queue.pop_due(key.at),
            Some((handle, "timeout")),
            "fires at its instant exactly"
        );
        assert_eq!(queue.get_mut(handle), None);
        assert_eq!(queue.remove(handle), None);
        assert_eq!(queue.first(), None);
    }

    /// Three timers stored in their owners, all in one bucket of the wheel.
    fn three_stored_timers_in_one_bucket() -> (TimerQueue<u64>, Vec<StoredTimer>) {
        let base = Instant::now();
        let mut queue = TimerQueue::new(base);
        let nodes: Vec<_> = (0..3).map(|_| Box::pin(TimerNode::new())).collect();
        for (seq, node) in (0..).zip(&nodes) {
            let at = base + Duration::from_secs(3600) + Duration::from_micros(seq);
            // SAFETY: pinned in their boxes, which the test keeps until it took them back.
            unsafe { queue.insert_node(TimerKey { at, rank: 0, seq }, node, seq) };
        }
        (queue, nodes)
    }

    #[test]
    fn a_stored_timer_leaves_its_bucket_from_the_middle_and_either_end() {
        let (mut queue, nodes) = three_stored_timers_in_one_bucket();
        let occupied = |queue: &TimerQueue<u64>| {
            let levels = queue.levels.as_ref().expect("a timer landed in the wheel");
            levels
                .iter()
                .map(|level| level.occupied.count_ones())
                .sum::<u32>()
        };
        assert_eq!(occupied(&queue), 1, "all three share one bucket");
        // SAFETY (each call): the nodes were added to this queue only.
        for (index, expected_first) in [(1, 0), (0, 2)] {
            let taken = unsafe { queue.remove_node(&nodes[index]) };
            assert_eq!(taken, NodeTimer::Pending(index as u64));
            assert_eq!(queue.first().map(|key| key.seq), Some(expected_first));
        }
        assert_eq!(
            unsafe { queue.remove_node(&nodes[2]) },
            NodeTimer::Pending(2)
        );
        assert_eq!(unsafe { queue.remove_node(&nodes[2]) }, NodeTimer::Off);
        assert_eq!(queue.first(), None);
        assert_eq!(
            occupied(&queue),
            0,
            "the emptied bucket is no longer marked"
        );
        assert_eq!(
            queue.entries.len(),
            0,
            "stored timers take no slab entry in the wheel"
        );
    }

    #[test]
    fn a_stored_timer_that_comes_due_fires_from_a_slab_entry_its_node_remembers() {
        let (mut queue, nodes) = three_stored_timers_in_one_bucket();
        let at = queue.base + Duration::from_secs(3600);
        let (handle, value) = queue.pop_due(at).expect("the first is due at its instant");
        assert_eq!(value, 0);
        // SAFETY (each call): the nodes were added to this queue only.
        unsafe {
            assert_eq!(queue.node_popped(&nodes[0]), Some(handle));
            assert_eq!(queue.node_popped(&nodes[1]), None, "not due yet: not fired");
            assert_eq!(queue.remove_node(&nodes[0]), NodeTimer::Popped(handle));
            // Reaching the first moved the others down to the due heap, into slab entries.
            assert_eq!(queue.entries.len(), 2);
            let mut timer_of_1 = None;
            assert!(queue.with_node_timer(&nodes[1], |value| timer_of_1 = Some(*value)));
            assert_eq!(timer_of_1, Some(1), "a moved node still reaches its timer");
            assert_eq!(queue.remove_node(&nodes[1]), NodeTimer::Pending(1));
            assert_eq!(queue.remove_node(&nodes[2]), NodeTimer::Pending(2));
        }
        assert_eq!(queue.pop_due(at + Duration::from_secs(1)), None);
    }

    #[test]
    fn timeouts_one_after_another_leave_nothing_behind() {
        let base = Instant::now();
        let mut queue = TimerQueue::new(base);
        for seq in 0..10_000 {
            let at = base + Duration::from_secs(3600) + Duration::from_millis(seq);
            let handle = queue.insert(TimerKey { at, rank: 0, seq }, ());
            assert_eq!(queue.remove(handle), Some(()));
        }
        assert_eq!(queue.stale, 0, "each key was taken back out of its bucket");
        assert_eq!(queue.first(), None);
    }

    /// A queue holding 10,000 timers an hour away, a microsecond apart, in the order added.
    fn ten_thousand_timeouts_an_hour_away() -> (TimerQueue<()>, Vec<TimerHandle>) {
        let base = Instant::now();
        let mut queue = TimerQueue::new(base);
        let handles = (0..10_000)
            .map(|seq| {
                let at = base + Duration::from_secs(3600) + Duration::from_micros(seq);
                queue.insert(TimerKey { at, rank: 0, seq }, ())
            })
            .collect();
        (queue, handles)
    }

    #[test]
    fn timeouts_ending_in_the_order_they_began_leave_nothing_behind() {
        let (mut queue, handles) = ten_thousand_timeouts_an_hour_away();
        for handle in handles {
            assert_eq!(queue.remove(handle), Some(()));
        }
        assert_eq!(
            queue.stale, 0,
            "each key was taken from the front of its bucket"
        );
    }

    #[test]
    fn removals_are_swept_so_left_behind_keys_stay_bounded() {
        let (mut queue, handles) = ten_thousand_timeouts_an_hour_away();
        // A scrambled order (7,919 is prime to 10,000): most keys are inside their bucket.
        for i in 0..handles.len() {
            queue.remove(handles[i * 7_919 % handles.len()]);
        }
        let left: usize = queue
            .levels
            .iter()
            .flat_map(|levels| levels.iter())
            .flat_map(|level| level.slots.iter())
            .map(VecDeque::len)
            .sum();
        assert!(
            left <= 64,
            "{left} keys left behind after removing every timer"
        );
        assert_eq!(queue.first(), None);
    }
}
