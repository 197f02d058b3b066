//! Timers that live in their owner's pinned future: linked into a bucket of the wheel, so that
//! adding one allocates nothing and taking it back is an unlink. This file holds the node, the
//! bucket's list, and the queue's side of them (adding, placing, finding, taking back): the timer
//! queue's `unsafe` is here, but for `process` handing a bucket's nodes to `place_node`.
//!
//! A [`TimerNode`] is the timer of an unrecorded timeout scope (`scope_tree/unrecorded.rs`),
//! inside the scope's future. While it sits in the wheel, the bucket's [`List`] links it
//! (doubly, so that it leaves from anywhere in O(1)) and the node itself holds its key and what
//! it does when it fires. A node that comes close enough to be ordered exactly (its tick reached:
//! the queue's `due` heap), or lies beyond the wheel, *moves* to a slab entry like any other
//! timer, and remembers the entry's key: nodes are many and short-lived, the ones that reach
//! `due` are few.
//!
//! # Invariants
//!
//! 1. A node's state is read and written only through the queue it was added to, under a
//!    `&mut` of that queue (the clock's lock): never by its owner directly, never by two queues.
//! 2. From [`TimerQueue::insert_node`](super::TimerQueue::insert_node) until
//!    [`TimerQueue::remove_node`](super::TimerQueue::remove_node) returns, the node stays at its
//!    address (its owner is pinned and takes it back before it is dropped). So every pointer a
//!    list holds, and every pointer in a linked node's `prev` and `next`, points to a live node.
//! 3. A node is [`Place::Linked`] iff a list links it, and then its `level` and `slot` name that
//!    list (the bucket invariant 1 of `timer_queue.rs` gives its key).

use std::marker::PhantomPinned;
use std::ptr;

use super::{NodeTimer, Stored, TimerHandle, TimerKey, TimerQueue};
use crate::slab::SlabKey;
use crate::sync::UnsafeCell;

/// Where a node's timer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Place {
    /// In no queue: never added, or taken back.
    Off,
    /// Linked in the list of the wheel's bucket `slot` of `level`.
    Linked { level: u8, slot: u8 },
    /// Moved to this slab entry (it may have fired and gone since: its stamp tells).
    Moved(SlabKey),
}

/// What a node holds, behind its cell (invariant 1).
#[derive(Debug)]
pub(super) struct NodeState<T> {
    pub(super) prev: *const TimerNode<T>,
    pub(super) next: *const TimerNode<T>,
    pub(super) place: Place,
    /// While linked: its key and its timer.
    pub(super) key: Stored,
    pub(super) timer: Option<T>,
}

/// A timer stored in its owner (see the module documentation); `!Unpin`, as its owner must be.
#[derive(Debug)]
pub(crate) struct TimerNode<T> {
    state: UnsafeCell<NodeState<T>>,
    _pinned: PhantomPinned,
}

// SAFETY: the state (raw pointers to other nodes, and a `T`) is only reached through the queue
// the node was added to, under a `&mut` of it (invariant 1): the queue is what crosses threads,
// behind its lock, and a `T: Send` may be used from the thread holding it.
unsafe impl<T: Send> Send for TimerNode<T> {}
// SAFETY: as for `Send`: a shared reference gives no access to the state by itself.
unsafe impl<T: Send> Sync for TimerNode<T> {}

impl<T> TimerNode<T> {
    #[inline]
    pub(crate) fn new() -> Self {
        TimerNode {
            state: UnsafeCell::new(NodeState {
                prev: ptr::null(),
                next: ptr::null(),
                place: Place::Off,
                key: Stored::ZERO,
                timer: None,
            }),
            _pinned: PhantomPinned,
        }
    }
}

impl<T> Drop for TimerNode<T> {
    /// Invariant 2, checked in debug builds: a node is taken back before it goes.
    fn drop(&mut self) {
        // SAFETY: `&mut self`: nothing else reaches the node now, as no queue links it any more
        // (invariant 2; it is what is checked).
        let place = self.state.with_mut(|state| unsafe { (*state).place });
        debug_assert_eq!(place, Place::Off, "a timer node dropped while in its queue");
    }
}

impl<T> Default for TimerNode<T> {
    #[inline]
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `f` on the state of `node`.
///
/// # Safety
///
/// `node` points to a live node, and the caller has the `&mut` of the queue it belongs to (or
/// the node is in no queue and the caller is its queue-to-be): invariants 1 and 2. `f` reaches
/// no other node's state.
pub(super) unsafe fn with_state<T, R>(
    node: *const TimerNode<T>,
    f: impl FnOnce(&mut NodeState<T>) -> R,
) -> R {
    // SAFETY: live by the caller's promise; no other access to this state runs meanwhile
    // (invariant 1), and `f` makes none to another node, so this `&mut` is the only one.
    unsafe { (*node).state.with_mut(|state| f(&mut *state)) }
}

/// The nodes of one bucket, in the order they were linked.
pub(super) struct List<T> {
    head: *const TimerNode<T>,
    tail: *const TimerNode<T>,
}

// SAFETY: a list is reached only through its queue, as its nodes' states are (invariant 1).
unsafe impl<T: Send> Send for List<T> {}
// SAFETY: as for `Send`: nothing is reached through a shared reference to a list.
unsafe impl<T: Send> Sync for List<T> {}

impl<T> std::fmt::Debug for List<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("List")
            .field("empty", &self.is_empty())
            .finish()
    }
}

impl<T> Default for List<T> {
    fn default() -> Self {
        List {
            head: ptr::null(),
            tail: ptr::null(),
        }
    }
}

impl<T> List<T> {
    pub(super) fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// Links `node` at the back.
    ///
    /// # Safety
    ///
    /// As for [`with_state`], for `node` and every node of the list; `node` is in no list.
    pub(super) unsafe fn push_back(&mut self, node: *const TimerNode<T>) {
        let tail = self.tail;
        // SAFETY: the caller's promise, one node at a time.
        unsafe {
            with_state(node, |state| {
                state.prev = tail;
                state.next = ptr::null();
            });
            if tail.is_null() {
                self.head = node;
            } else {
                with_state(tail, |state| state.next = node);
            }
        }
        self.tail = node;
    }

    /// Unlinks `node`, which this list links.
    ///
    /// # Safety
    ///
    /// As for [`with_state`], for `node` and every node of the list; the list links `node`.
    pub(super) unsafe fn unlink(&mut self, node: *const TimerNode<T>) {
        // SAFETY: the caller's promise, one node at a time.
        unsafe {
            let (prev, next) = with_state(node, |state| {
                (
                    std::mem::replace(&mut state.prev, ptr::null()),
                    std::mem::replace(&mut state.next, ptr::null()),
                )
            });
            if prev.is_null() {
                self.head = next;
            } else {
                with_state(prev, |state| state.next = next);
            }
            if next.is_null() {
                self.tail = prev;
            } else {
                with_state(next, |state| state.prev = prev);
            }
        }
    }

    /// Unlinks and returns the first node.
    ///
    /// # Safety
    ///
    /// As for [`with_state`], for every node of the list.
    pub(super) unsafe fn pop_front(&mut self) -> Option<*const TimerNode<T>> {
        let head = self.head;
        if head.is_null() {
            return None;
        }
        // SAFETY: the caller's promise; the list links its head.
        unsafe { self.unlink(head) };
        Some(head)
    }
}

/// The queue's side of stored timers: adding, placing, finding and taking them back.
impl<T> TimerQueue<T> {
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
        // SAFETY (each block): the caller's promise: the node is live and this queue's from now.
        debug_assert_eq!(
            unsafe { with_state(node, |state| state.place) },
            Place::Off,
            "a node is in one queue at a time"
        );
        match self.wheel_bucket(key) {
            Some((level, slot)) => unsafe {
                // The key is handed on, not read back: a load of what was just stored through
                // another width stalls (`perf annotate` put a quarter of this path there).
                with_state(node, |state| {
                    state.key = key;
                    state.timer = Some(timer);
                });
                self.link(node, level, slot);
            },
            None => unsafe { self.move_to_slab(node, key, timer) },
        }
    }

    /// Puts a node's timer in a slab entry, placed for `key` (in `due`, or beyond the wheel),
    /// and tells the node where it went.
    ///
    /// # Safety
    ///
    /// `node` is live and this queue's (`linked.rs`, invariants 1 and 2), and in no list.
    unsafe fn move_to_slab(&mut self, node: *const TimerNode<T>, key: Stored, timer: T) {
        let entry = self.entries.insert((key, timer));
        self.place(entry, key);
        // SAFETY: the caller's promise.
        unsafe { with_state(node, |state| state.place = Place::Moved(entry)) };
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
    pub(super) unsafe fn place_node(&mut self, node: *const TimerNode<T>) {
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
        // SAFETY: as above.
        unsafe { self.move_to_slab(node, key, timer) };
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
            Place::Moved(entry) => self.get_mut(TimerHandle { entry }).map(f).is_some(),
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
}
