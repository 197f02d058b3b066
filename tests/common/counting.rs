//! A global allocator that counts, per thread, the bytes allocated and not yet freed, and the
//! allocations made. A test binary that wants it declares
//! `#[global_allocator] static A: Counting = Counting;`.
//!
//! Per thread, so that the harness's own threads (which may allocate at any time) do not disturb
//! a test's count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct Counting;

thread_local! {
    /// Bytes allocated minus bytes freed by this thread. Const-initialised and without a
    /// destructor, so the allocator may touch it.
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
    /// Allocations made by this thread (same constraints).
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// Allocations made by the calling thread so far.
pub fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// Bytes allocated minus bytes freed by the calling thread so far.
pub fn live_bytes() -> isize {
    LIVE_BYTES.with(Cell::get)
}

fn count(delta: isize) {
    // `try_with`: during thread teardown the slot may be gone; those bytes are not a test's.
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get() + delta));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}
