//! Causes cost one allocation per cancel request (two with a tag that is not zero-sized), never
//! one per descendant: cancelling the root of a wide tree of waiting scopes, or of a deep chain,
//! allocates exactly once (the cause's record), however many scopes and waiting tasks it
//! reaches. Counted per thread.
mod common;

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use common::counting::{Counting, allocations};
use wherefore::{Cancelled, Nursery, Scope};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `cancel` once every scope of the tree is waiting; returns the allocations it made.
fn allocations_of(cancel: impl FnOnce()) -> usize {
    let before = allocations();
    cancel();
    allocations() - before
}

#[test]
fn cancelling_ten_thousand_waiting_scopes_allocates_once() {
    let made = wherefore::run(async {
        let root = Scope::named("root");
        let handle = root.handle();
        let mut made = None;
        let _ = root
            .run(wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
                for _ in 0..10_000 {
                    drop(
                        n.spawn(Scope::new().run(async {
                            let _cause = wherefore::cancelled().await;
                            Ok::<_, Cancelled>(())
                        }))
                        .unwrap(),
                    );
                }
                wherefore::checkpoint().await?; // every member is waiting in its own scope
                made = Some(allocations_of(|| {
                    handle.cancel();
                }));
                Ok(())
            }))
            .await;
        made
    });
    assert_eq!(
        made,
        Some(1),
        "one cause record, nothing per scope or per waiter"
    );
}

#[test]
fn cancelling_a_chain_of_a_thousand_nested_scopes_allocates_once() {
    let made = common::on_large_stack(|| {
        let made = Rc::new(Cell::new(None));
        let seen = made.clone();
        let out = wherefore::run(async move {
            let root = Scope::named("root");
            let handle = root.handle();
            let mut leaf: Pin<Box<dyn Future<Output = Result<(), Cancelled>>>> =
                Box::pin(async move {
                    seen.set(Some(allocations_of(|| {
                        handle.cancel();
                    })));
                    wherefore::checkpoint().await // fails: the whole chain is cancelled
                });
            for _ in 0..1_000 {
                let inner = leaf;
                leaf = Box::pin(async move { Scope::new().run(inner).await.map(|_| ()) });
            }
            root.run(leaf).await
        });
        assert!(
            matches!(out, Ok(None)),
            "the root absorbed its own cancellation"
        );
        made.get()
    });
    assert_eq!(made, Some(1), "one cause record, nothing per scope");
}

#[test]
fn a_tagged_cancel_allocates_its_tag_beside_the_record_unless_it_is_zero_sized() {
    #[derive(Debug)]
    struct Deploy; // zero-sized: boxing it allocates nothing
    let tagged = |cancel: &dyn Fn(&wherefore::CancelHandle)| {
        let handle = Scope::named("job").handle();
        allocations_of(|| cancel(&handle))
    };
    tagged(&|h| {
        h.cancel_with("warm up");
    });
    assert_eq!(tagged(&|h| assert!(h.cancel())), 1, "the record");
    assert_eq!(tagged(&|h| assert!(h.cancel_with(Deploy))), 1, "the record");
    assert_eq!(
        tagged(&|h| assert!(h.cancel_with("SIGTERM"))),
        2,
        "the record and the boxed tag: a thin pointer keeps `Cause` two words wide"
    );
}
