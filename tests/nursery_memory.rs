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
                let mut child = n
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

/// Bytes held per member while `count` members that only yield are running, started by
/// `start`. Measured right after the last one started, on the embedded runtime (a testing
/// runtime also keeps a record of every live task, for its hang reports).
fn bytes_per_running_member(count: usize, start: impl Fn(&Nursery<'_, Cancelled>)) -> f64 {
    wherefore::run(async {
        empty_nursery().await;
        let before = live_bytes();
        let mut held = 0;
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            for _ in 0..count {
                start(&n);
            }
            held = live_bytes() - before;
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(live_bytes(), before, "the members left memory behind");
        held as f64 / count as f64
    })
}

/// Workload 1's bytes target (BENCHMARKS.md): a member started without a handle takes at most
/// 1.25 times the 64 bytes of a `FuturesUnordered` task around a future that only yields, its
/// share of the member set included; a member with a handle takes more, for its exit.
#[test]
fn a_member_without_a_handle_takes_at_most_80_bytes_and_less_than_one_with_a_handle() {
    const COUNT: usize = 8 * 1024;
    bytes_per_running_member(16, |n| drop(n.start_soon(wherefore::checkpoint())));
    let unjoined = bytes_per_running_member(COUNT, |n| {
        n.start_soon(wherefore::checkpoint()).unwrap();
    });
    let joinable = bytes_per_running_member(COUNT, |n| {
        drop(n.spawn(wherefore::checkpoint()).unwrap());
    });
    assert!(
        unjoined <= 80.0,
        "{unjoined} B per member started without a handle"
    );
    assert!(
        unjoined < joinable,
        "{unjoined} B without a handle, {joinable} B with one"
    );
}
