//! Trio's `cancel_called` and `cancelled_caught` on a `CancelHandle`: whether the scope was
//! cancelled itself, and whether its future ended by catching that cancellation.
mod common;

use common::*;
use futures::channel::oneshot;
use wherefore::{CancelHandle, Cancelled, Nursery, Scope};

/// The two answers of a handle, in the order of Trio's attributes.
fn called_and_caught(handle: &CancelHandle) -> (bool, bool) {
    (handle.cancel_called(), handle.cancelled_caught())
}

#[test]
fn a_scope_cancelled_by_its_handle_calls_and_catches() {
    block_on(async {
        let scope = Scope::named("job");
        let handle = scope.handle();
        assert_eq!(called_and_caught(&handle), (false, false));
        let out = scope
            .run(async {
                handle.cancel();
                assert_eq!(called_and_caught(&handle), (true, false), "while it runs");
                wherefore::checkpoint().await
            })
            .await;
        assert!(matches!(out, Ok(None)));
        assert_eq!(called_and_caught(&handle), (true, true));
    });
}

/// S7: cancelled after the body's last cancellation point, or a body that swallowed it: the
/// request was made, nothing was caught.
#[test]
fn a_body_that_finishes_anyway_was_cancelled_but_caught_nothing() {
    block_on(async {
        let late = Scope::new();
        let late_handle = late.handle();
        let out = late
            .run(async {
                late_handle.cancel();
                Ok::<_, Cancelled>("done")
            })
            .await;
        assert_eq!(out.unwrap(), Some("done"));
        assert_eq!(called_and_caught(&late_handle), (true, false));

        let swallowed = wherefore::move_on_after(secs(1), async {
            let _ = wherefore::sleep(secs(5)).await; // swallowed
            Ok::<_, Cancelled>("partial")
        });
        let handle = swallowed.handle();
        assert_eq!(swallowed.await.unwrap(), Some("partial"));
        assert_eq!(called_and_caught(&handle), (true, false));
    });
}

/// S2: the outermost cancelled scope catches; a scope cancelled only through its parent was not
/// cancelled itself and catches nothing.
#[test]
fn an_enclosing_scopes_cancellation_is_caught_by_that_scope_only() {
    block_on(async {
        let outer = Scope::named("outer");
        let outer_handle = outer.handle();
        let inner = Scope::named("inner");
        let inner_handle = inner.handle();
        let out = outer
            .run(inner.run(async {
                outer_handle.cancel();
                wherefore::checkpoint().await
            }))
            .await;
        assert!(matches!(out, Ok(None)));
        assert!(
            inner_handle.cause().unwrap().root() == outer_handle.cause().unwrap(),
            "the outer cancellation reached the inner scope"
        );
        assert_eq!(called_and_caught(&inner_handle), (false, false));
        assert_eq!(called_and_caught(&outer_handle), (true, true));

        // Both cancelled: still the outermost (S2).
        let outer = Scope::new();
        let outer_handle = outer.handle();
        let inner = Scope::new();
        let inner_handle = inner.handle();
        let _ = outer
            .run(inner.run(async {
                inner_handle.cancel();
                outer_handle.cancel();
                wherefore::checkpoint().await
            }))
            .await;
        assert_eq!(called_and_caught(&inner_handle), (true, false));
        assert_eq!(called_and_caught(&outer_handle), (true, true));
    });
}

#[test]
fn timeouts_catch_their_own_deadline_and_fail_after_only_as_timed_out() {
    block_on(async {
        let moved_on = wherefore::move_on_after(secs(1), wherefore::sleep(secs(5)));
        let handle = moved_on.handle();
        assert_eq!(moved_on.await.unwrap(), None);
        assert_eq!(called_and_caught(&handle), (true, true));

        let timed_out = wherefore::fail_after(secs(1), wherefore::sleep(secs(5)));
        let handle = timed_out.handle();
        assert!(timed_out.await.is_err());
        assert_eq!(called_and_caught(&handle), (true, true));

        // Cancelled through the handle: not a timeout (S6), handed back as an error.
        let explicit = wherefore::fail_after(secs(10), wherefore::sleep(secs(20)));
        let handle = explicit.handle();
        handle.cancel();
        assert!(explicit.await.expect("not TimedOut").is_err());
        assert_eq!(called_and_caught(&handle), (true, false));

        let in_time = wherefore::move_on_after(secs(10), wherefore::sleep(secs(1)));
        let handle = in_time.handle();
        assert_eq!(in_time.await.unwrap(), Some(()));
        assert_eq!(called_and_caught(&handle), (false, false));
    });
}

#[test]
fn a_shield_with_grace_catches_its_grace_running_out() {
    block_on(async {
        let worker = Scope::named("worker");
        let worker_handle = worker.handle();
        worker_handle.cancel();
        let (shield_handle, out) = worker
            .run(async {
                let flush = wherefore::shield_with_grace(secs(2), wherefore::sleep(secs(60)));
                let shield_handle = flush.handle();
                let flushed = flush.await?;
                Ok::<_, Cancelled>((shield_handle, flushed))
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out, None, "cut at the grace deadline");
        assert_eq!(called_and_caught(&shield_handle), (true, true));
        assert_eq!(
            called_and_caught(&worker_handle),
            (true, false),
            "the worker's body finished after its shield"
        );
    });
}

/// S19: a body blocked in a foreign future is dropped and the scope ends as if a cancellation
/// point had failed: caught as well.
#[test]
fn a_body_dropped_in_a_foreign_future_is_caught() {
    block_on(async {
        let (_tx, rx) = oneshot::channel::<()>();
        let timeout = wherefore::move_on_after(secs(1), async {
            let _ = rx.await; // foreign: knows nothing of scopes
            Ok::<_, Cancelled>(())
        });
        let handle = timeout.handle();
        assert_eq!(timeout.await.unwrap(), None);
        assert_eq!(called_and_caught(&handle), (true, true));
    });
}

/// S18: a nursery never catches a cancellation; cancelled itself (by its handle, or by a
/// member's failure) it was called.
#[test]
fn a_nursery_is_called_but_never_catches() {
    block_on(async {
        let mut nursery_handle = None;
        let out = wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            nursery_handle = Some(n.cancel_handle());
            drop(n.spawn(wherefore::sleep_forever()).unwrap());
            wherefore::testing::wait_all_tasks_blocked().await?;
            n.cancel_handle().cancel();
            wherefore::checkpoint().await
        })
        .await;
        assert!(
            out.is_err(),
            "the body's cancellation is the nursery's result"
        );
        assert_eq!(called_and_caught(&nursery_handle.unwrap()), (true, false));

        let mut failed_handle = None;
        let out = wherefore::nursery(async |n: Nursery<'_, BoxError>| {
            failed_handle = Some(n.cancel_handle());
            n.start_soon(async { Err::<(), _>("refused".into()) })
                .unwrap();
            Ok(())
        })
        .await;
        assert!(out.is_err());
        assert_eq!(called_and_caught(&failed_handle.unwrap()), (true, false));
    });
}

/// S15: a cancel after the scope exited records nothing.
#[test]
fn a_cancel_after_exit_is_not_called() {
    block_on(async {
        let scope = Scope::new();
        let handle = scope.handle();
        let _ = scope.run(async { Ok::<_, Cancelled>(()) }).await;
        assert!(!handle.cancel());
        assert_eq!(called_and_caught(&handle), (false, false));
    });
}
