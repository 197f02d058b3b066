//! A persistent group keeps nothing for members that finished: 100,000 short members leave no
//! memory behind. The counting allocator counts per thread, so the harness's own threads do not
//! disturb the count.
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

#[test]
fn a_hundred_thousand_short_members_leave_no_memory_behind() {
    block_on(async {
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let jobs = n.persistent_group::<Cancelled>("jobs");
            // Warm up: the group's first members size its internal storage.
            for _ in 0..100 {
                jobs.spawn(async { wherefore::checkpoint().await }).unwrap();
            }
            wherefore::sleep(secs(1)).await?;
            let before = live_bytes();
            let mut peak = 0;
            for round in 0..1_000 {
                for _ in 0..100 {
                    jobs.spawn(async { wherefore::checkpoint().await }).unwrap();
                }
                wherefore::sleep(secs(1)).await?; // all 100 finish
                peak = peak.max(live_bytes() - before);
                assert!(
                    peak < 256 * 1024,
                    "memory grows with finished members: {peak} B at round {round}"
                );
            }
            let after = live_bytes() - before;
            assert!(
                after <= 0,
                "{after} bytes kept after 100,000 members finished"
            );
            let report = jobs.drain().await;
            assert_eq!(report.finished(), 100_100);
            Ok(())
        })
        .await
        .unwrap();
    });
}
