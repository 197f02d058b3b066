//! A nursery keeps nothing for members that finished: 10,000 members started and joined leave
//! no memory behind. The counting allocator counts per thread, so the harness's own threads
//! (which may allocate at any time) do not disturb the count.
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use wherefore::{Cancelled, Nursery};

struct Counting;

thread_local! {
    /// Bytes allocated minus bytes freed by this thread. Const-initialised and without a
    /// destructor, so the allocator may touch it.
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn live_bytes() -> isize {
    LIVE_BYTES.with(Cell::get)
}

fn count(delta: isize) {
    // `try_with`: during thread teardown the slot may be gone; those bytes are not ours.
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get() + delta));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn run_members(count: usize) -> (usize, isize) {
    block_on(async {
        let before = live_bytes();
        let mut peak_growth = 0;
        let sum = wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let mut sum = 0;
            for i in 0..count {
                let child = n
                    .spawn(async move {
                        wherefore::checkpoint().await?;
                        Ok(i)
                    })
                    .unwrap();
                sum += child.join().await?.completed().unwrap();
                peak_growth = peak_growth.max(live_bytes() - before);
            }
            Ok(sum)
        })
        .await
        .unwrap();
        assert!(
            peak_growth < 64 * 1024,
            "memory grew with finished members: {peak_growth} B"
        );
        (sum, live_bytes() - before)
    })
}

#[test]
fn ten_thousand_members_started_and_joined_leave_no_memory_behind() {
    run_members(10); // warm up thread-locals and lazily allocated statics
    let (sum, leftover) = run_members(10_000);
    assert_eq!(sum, (0..10_000).sum::<usize>());
    assert_eq!(
        leftover, 0,
        "bytes still allocated after the nursery returned"
    );
}
