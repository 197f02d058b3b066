//! The order in which a nursery polls its ready members: fixed by default, permuted by a seed,
//! reproducibly.

use std::cell::RefCell;

use wherefore::{Cancelled, LocalNursery};

/// Eight members that each yield once, then record their name; no timers involved.
fn order(seed: Option<u64>) -> Vec<usize> {
    let order = RefCell::new(Vec::new());
    let runtime = match seed {
        Some(seed) => wherefore::testing::Runtime::new().with_seed(seed),
        None => wherefore::testing::Runtime::new(),
    };
    runtime.block_on(async {
        wherefore::nursery_local(async |n: LocalNursery<'_, Cancelled>| {
            for i in 0..8 {
                let order = &order;
                n.start_soon(async move {
                    wherefore::checkpoint().await?;
                    order.borrow_mut().push(i);
                    Ok(())
                })
                .unwrap();
            }
            Ok(())
        })
        .await
        .unwrap();
    });
    order.into_inner()
}

#[test]
fn without_a_seed_ready_members_run_in_spawn_order() {
    assert_eq!(order(None), (0..8).collect::<Vec<_>>());
}

#[test]
fn a_seed_permutes_ready_members_reproducibly() {
    for seed in 0..10 {
        assert_eq!(
            order(Some(seed)),
            order(Some(seed)),
            "seed {seed} is reproducible"
        );
    }
    let distinct: std::collections::BTreeSet<Vec<usize>> =
        (0..10).map(|s| order(Some(s))).collect();
    assert!(
        distinct.len() > 5,
        "10 seeds gave only {} orders",
        distinct.len()
    );
}
