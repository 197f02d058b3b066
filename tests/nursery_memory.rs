//! A nursery keeps nothing for members that finished: 10,000 members started and joined leave
//! no memory behind. The counting allocator counts per thread, so the harness's own threads
//! (which may allocate at any time) do not disturb the count.
mod common;

use common::counting::{Counting, live_bytes};
use common::*;
use wherefore::{Cancelled, Nursery};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn run_members(count: usize) -> (usize, isize) {
    block_on(async {
        // The enclosing scope allocates room for its children with its first child, and keeps it
        // until it exits: a nursery entered once before the count leaves only the members'
        // memory to count.
        empty_nursery().await;
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

async fn empty_nursery() {
    wherefore::nursery(async |_: Nursery<'_, Cancelled>| Ok(()))
        .await
        .unwrap();
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
