//! Timers that live in their owner's pinned future: linked into a bucket of the wheel, so that
//! adding one allocates nothing and taking it back is an unlink.
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

use super::Stored;
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
