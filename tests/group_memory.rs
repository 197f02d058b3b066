//! A persistent group keeps nothing for members that finished: 100,000 short members leave no
//! memory behind. The counting allocator counts per thread, so the harness's own threads do not
//! disturb the count.
mod common;

use common::counting::{Counting, live_bytes};
use common::*;
use wherefore::{Cancelled, Nursery};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn a_hundred_thousand_short_members_leave_no_memory_behind() {
    block_on(async {
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let jobs = n.persistent_group::<Cancelled>("jobs");
            // Warm up: the group's first members size its internal storage.
            for _ in 0..100 {
                drop(jobs.spawn(async { wherefore::checkpoint().await }).unwrap());
            }
            wherefore::sleep(secs(1)).await?;
            let before = live_bytes();
            let mut peak = 0;
            for round in 0..1_000 {
                for _ in 0..100 {
                    drop(jobs.spawn(async { wherefore::checkpoint().await }).unwrap());
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
