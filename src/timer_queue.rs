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

use linked::List;
pub(crate) use linked::TimerNode;

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
mod tests;
