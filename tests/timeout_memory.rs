//! An unrecorded timeout allocates nothing for itself: no scope record (it takes no place in the
//! tree) and no timer entry (its timer lives in its own future, linked into the clock's wheel).
//! A thousand live timeouts cost exactly the allocations of the thousand futures around them.
mod common;

use common::counting::{Counting, allocations};
use common::*;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made while `count` futures, each passing one `checkpoint()` (inside a
/// `move_on_after` of an hour if `timed`), run together in a `FuturesUnordered`.
fn allocations_of(count: usize, timed: bool) -> usize {
    block_on(async {
        // The clock's wheel allocates its levels with the first timer it holds: one timeout
        // before the count leaves only the timeouts' own allocations to count.
        let warm = wherefore::move_on_after(secs(3600), wherefore::checkpoint());
        assert!(matches!(warm.await, Ok(Some(()))));
        let before = allocations();
        let mut set = FuturesUnordered::new();
        for _ in 0..count {
            set.push(async move {
                if timed {
                    let out = wherefore::move_on_after(secs(3600), wherefore::checkpoint()).await;
                    assert!(
                        matches!(out, Ok(Some(()))),
                        "an hour-long timeout that did not fire"
                    );
                } else {
                    assert!(wherefore::checkpoint().await.is_ok());
                }
            });
        }
        while set.next().await.is_some() {}
        allocations() - before
    })
}

#[test]
fn a_thousand_live_timeouts_allocate_nothing_for_themselves() {
    allocations_of(10, true); // warm up thread-locals and lazily allocated statics
    let bodies = allocations_of(1_000, false);
    let timed = allocations_of(1_000, true);
    assert!(
        bodies >= 1_000,
        "each future is allocated by the set: {bodies}"
    );
    assert_eq!(
        timed, bodies,
        "allocations with the timeouts around the bodies, and without"
    );
}
