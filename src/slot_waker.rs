//! The wakers of a member set's slots, without an allocation per slot: the wakers of `CHUNK`
//! consecutive slots live in one shared chunk, and each `Waker` keeps its chunk alive.
//!
//! Waking a slot queues its index in the set's [`ReadyQueue`] (once: a per-slot flag says whether
//! it is queued already) and wakes the task polling the set. A waker may be woken from any thread
//! and may outlive the set; its chunk goes when the last of its wakers does.
//!
//! `std` builds a `Waker` from an `Arc` only when the `Arc` is the waker's whole identity, which
//! here would mean one allocation per slot. A slot's waker is instead a raw waker whose data is a
//! pointer to the slot's flag inside its chunk; the flag records its position, which leads back to
//! the chunk and its reference count. The `unsafe` this takes is below, each block with its
//! argument, all resting on:
//!
//! 1. `flags` is the first field of the `repr(C)` chunk, so `flags[0]` is at the chunk's address,
//!    and the flag at position `p` is `p` flags after it.
//! 2. Every raw waker owns one strong count of its chunk (taken when it is made or cloned,
//!    released when it is dropped), so the chunk outlives every use of its data pointer. The one
//!    exception is the waker [`WakerChunk::lend_waker`] lends for one poll: it owns no count, is
//!    never dropped, and lives only as long as the borrow of the chunk it was lent from
//!    ([`LentWaker`]). Its clones own their count like any other.
//! 3. A chunk is only shared (`Frozen`), never mutated but through its atomics and the queue's
//!    mutex, so it is `Send + Sync` and shared references to it may coexist on any thread.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::task::{RawWaker, RawWakerVTable, Waker};

use crate::slot_queue::SlotQueue;
use crate::sync::{self, AtomicBool, Frozen, Mutex, Ordering};

/// Slots per chunk (fewer under loom, whose models count every atomic).
#[cfg(not(wherefore_loom))]
pub(crate) const CHUNK: usize = 1024;
#[cfg(wherefore_loom)]
pub(crate) const CHUNK: usize = 4;

/// Slots woken since the last batch, and the waker of the task polling the set, under one lock.
pub(crate) struct ReadyQueue {
    pub(crate) state: Mutex<Ready>,
}

pub(crate) struct Ready {
    pub(crate) slots: SlotQueue,
    pub(crate) nursery: Option<Waker>,
}

impl ReadyQueue {
    pub(crate) fn new() -> Frozen<ReadyQueue> {
        Frozen::new(ReadyQueue {
            state: Mutex::new(Ready {
                slots: SlotQueue::new(),
                nursery: None,
            }),
        })
    }
}

/// The wakers of slots `first .. first + CHUNK`.
#[repr(C)]
pub(crate) struct WakerChunk {
    /// First field (invariant 1).
    flags: [SlotFlag; CHUNK],
    first: u32,
    queue: Frozen<ReadyQueue>,
}

struct SlotFlag {
    /// Whether the slot is in the ready queue (or the batch being polled) already.
    queued: AtomicBool,
    /// Whether the slot's member returned `Pending` last in a foreign future (S19). Touched only
    /// by the set that owns the slot, in its polls: atomic only because the chunk is shared.
    foreign: AtomicBool,
    /// The flag's position in `flags` (invariant 1). Two bytes, so that a flag takes four: the
    /// set's memory per member (BENCHMARKS.md, workload 1).
    position: u16,
}

const _: () = {
    assert!(CHUNK <= 1 << 16, "a position fits in a `u16`");
    #[cfg(not(wherefore_loom))] // loom's atomics are larger
    assert!(
        std::mem::size_of::<SlotFlag>() == 4,
        "a flag takes four bytes (BENCHMARKS.md)"
    );
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<WakerChunk>(); // invariant 3
};

impl WakerChunk {
    pub(crate) fn new(first: u32, queue: Frozen<ReadyQueue>) -> Frozen<WakerChunk> {
        Frozen::new(WakerChunk {
            flags: std::array::from_fn(|position| SlotFlag {
                queued: AtomicBool::new(false),
                foreign: AtomicBool::new(false),
                position: position as u16, // < CHUNK <= 2^16 (asserted above)
            }),
            first,
            queue,
        })
    }

    /// Whether the slot at `position` is queued; cleared by the set just before it polls it.
    pub(crate) fn queued(&self, position: usize) -> &AtomicBool {
        &self.flags[position].queued
    }

    /// Whether the member at `position` is blocked in a foreign future (the set's own mark).
    pub(crate) fn foreign(&self, position: usize) -> &AtomicBool {
        &self.flags[position].foreign
    }

    /// The waker of the slot at `position`, lent for as long as `chunk` is borrowed: nothing is
    /// counted or stored per slot, and a clone kept from it is a waker like any other
    /// (invariant 2). Returned rather than passed to a closure: the member set polls its members
    /// with it, and nested nurseries recurse through that poll (a closure would be two more
    /// frames a level in a debug build).
    pub(crate) fn lend_waker(chunk: &Frozen<WakerChunk>, position: usize) -> LentWaker<'_> {
        assert!(position < CHUNK, "a slot's position lies within its chunk");
        let base = Frozen::as_ptr(chunk);
        // SAFETY: `base` points to a live chunk (we hold `chunk`), and `position < CHUNK` keeps
        // the pointer within its `flags`; no reference is made, so the pointer may later step
        // back to the whole chunk (invariant 1).
        let flag = unsafe { (&raw const (*base).flags).cast::<SlotFlag>().add(position) };
        // SAFETY: the vtable's functions keep `RawWaker`'s contract (see each), and what they
        // touch is `Send + Sync` (invariant 3). This waker owns no count: it is never dropped
        // (`ManuallyDrop`), and it lives only while `chunk` is borrowed, which keeps the chunk
        // alive (invariant 2's exception).
        let waker =
            ManuallyDrop::new(unsafe { Waker::from_raw(RawWaker::new(flag.cast(), &VTABLE)) });
        LentWaker {
            waker,
            _chunk: PhantomData,
        }
    }

    /// The waker of the slot at `position`, owning its count of the chunk.
    #[cfg(test)]
    pub(crate) fn waker(chunk: &Frozen<WakerChunk>, position: usize) -> Waker {
        Self::lend_waker(chunk, position).clone()
    }

    /// Queues the slot at `position` unless it is queued already, and wakes the set's task.
    fn wake(&self, position: usize) {
        if self.flags[position].queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let nursery = {
            let mut ready = sync::lock(&self.queue.state);
            ready.slots.push(self.first + position as u32);
            ready.nursery.take()
        };
        if let Some(nursery) = nursery {
            nursery.wake();
        }
    }
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_raw, wake_raw, wake_by_ref_raw, drop_raw);

/// A slot's waker lent by [`WakerChunk::lend_waker`]: owns no count of its chunk, so it is never
/// dropped, and lives no longer than the borrow of the chunk (invariant 2's exception).
pub(crate) struct LentWaker<'a> {
    waker: ManuallyDrop<Waker>,
    _chunk: PhantomData<&'a Frozen<WakerChunk>>,
}

impl Deref for LentWaker<'_> {
    type Target = Waker;

    fn deref(&self) -> &Waker {
        &self.waker
    }
}

/// The chunk a waker's data pointer lies in, and the flag's position.
///
/// # Safety
/// `data` is the data pointer of a live waker lent by [`WakerChunk::lend_waker`], or of a clone
/// of one.
unsafe fn locate(data: *const ()) -> (*const WakerChunk, usize) {
    let flag = data.cast::<SlotFlag>();
    // SAFETY: the waker is live, so its chunk is (invariant 2) and `flag` points at one of its
    // flags; stepping back by the flag's position lands on `flags[0]`, the chunk's address
    // (invariant 1).
    unsafe {
        let position = (*flag).position as usize;
        (flag.sub(position).cast::<WakerChunk>(), position)
    }
}

unsafe fn clone_raw(data: *const ()) -> RawWaker {
    // SAFETY: `data` belongs to the live waker being cloned (the vtable's contract); the clone
    // owns the count taken here (invariant 2).
    unsafe { Frozen::increment_strong_count(locate(data).0) };
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake_raw(data: *const ()) {
    // SAFETY: `data` belongs to the live waker being consumed: woken first, then its count is
    // released.
    unsafe {
        wake_by_ref_raw(data);
        drop_raw(data);
    }
}

unsafe fn wake_by_ref_raw(data: *const ()) {
    // SAFETY: `data` belongs to a live waker, whose count keeps the chunk alive for this call
    // (invariant 2); shared access is all a chunk allows (invariant 3).
    let (chunk, position) = unsafe {
        let (chunk, position) = locate(data);
        (&*chunk, position)
    };
    chunk.wake(position);
}

unsafe fn drop_raw(data: *const ()) {
    // SAFETY: `data` belongs to the live waker being dropped, which owns one count (invariant 2);
    // the pointer is the one `Frozen::as_ptr` gave.
    unsafe { Frozen::decrement_strong_count(locate(data).0) };
}

#[cfg(all(test, not(wherefore_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_woken_slot_is_queued_once_with_its_index_until_its_flag_is_cleared() {
        let queue = ReadyQueue::new();
        let chunk = WakerChunk::new(2 * CHUNK as u32, queue.clone());
        let waker = WakerChunk::waker(&chunk, 5);
        let clone = waker.clone();
        waker.wake_by_ref();
        clone.wake_by_ref(); // already queued
        let fifth = 2 * CHUNK as u32 + 5;
        let queued = |queue: &ReadyQueue| sync::lock(&queue.state).slots.iter().collect::<Vec<_>>();
        assert_eq!(queued(&queue), [fifth]);
        chunk.queued(5).store(false, Ordering::Release);
        clone.wake(); // consumed
        assert_eq!(queued(&queue), [fifth, fifth]);
        assert!(waker.will_wake(&WakerChunk::waker(&chunk, 5)));
        assert!(!waker.will_wake(&WakerChunk::waker(&chunk, 6)));
    }

    #[test]
    fn wakers_keep_their_chunk_alive_on_any_thread_and_release_it() {
        let queue = ReadyQueue::new();
        let chunk = WakerChunk::new(0, queue.clone());
        let wakers: Vec<Waker> = (0..CHUNK).map(|p| WakerChunk::waker(&chunk, p)).collect();
        assert_eq!(Frozen::strong_count(&chunk), 1 + CHUNK);
        let weak = Frozen::downgrade(&chunk);
        drop(chunk); // the wakers keep it
        std::thread::scope(|s| {
            for waker in wakers {
                s.spawn(move || {
                    let twice = waker.clone();
                    waker.wake();
                    drop(twice);
                });
            }
        });
        assert!(
            weak.upgrade().is_none(),
            "the last waker released the chunk"
        );
        let mut queued: Vec<u32> = sync::lock(&queue.state).slots.iter().collect();
        queued.sort_unstable();
        assert_eq!(queued, (0..CHUNK as u32).collect::<Vec<_>>());
    }
}
