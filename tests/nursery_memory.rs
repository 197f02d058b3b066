//! A nursery keeps nothing for members that finished: 10,000 members started and joined leave
//! no memory behind. One test in this binary, so the counting allocator sees only it.
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use common::*;
use wherefore::{Cancelled, Nursery};

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn run_members(count: usize) -> (usize, isize) {
    block_on(async {
        let before = LIVE_BYTES.load(Ordering::Relaxed);
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
                peak_growth = peak_growth.max(LIVE_BYTES.load(Ordering::Relaxed) - before);
            }
            Ok(sum)
        })
        .await
        .unwrap();
        assert!(
            peak_growth < 64 * 1024,
            "memory grew with finished members: {peak_growth} B"
        );
        (sum, LIVE_BYTES.load(Ordering::Relaxed) - before)
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
