//! Deadlines: set, moved, past, huge, and due at the same instant.
mod common;

use std::time::{Duration, Instant};

use common::*;
use wherefore::{Cancelled, Cause, Scope};

fn elapsed_when_cancelled(change: impl FnOnce(&wherefore::CancelHandle, Instant)) -> Duration {
    block_on(async {
        let start = wherefore::now();
        let scope = Scope::named("job").with_timeout(secs(10));
        let handle = scope.handle();
        let out = scope
            .run(async {
                wherefore::sleep(secs(1)).await?;
                change(&handle, start);
                wherefore::sleep(secs(3600)).await
            })
            .await;
        assert!(matches!(out, Ok(None)));
        assert!(matches!(handle.cause(), Some(Cause::Timeout(_))));
        wherefore::now() - start
    })
}

#[test]
fn a_deadline_moved_earlier_fires_earlier() {
    let took = elapsed_when_cancelled(|h, start| h.set_deadline(start + secs(4)));
    assert_eq!(took, secs(4));
}

#[test]
fn a_deadline_moved_later_fires_later() {
    let took = elapsed_when_cancelled(|h, _| h.set_timeout(secs(20)));
    assert_eq!(took, secs(21));
}

#[test]
fn a_deadline_moved_into_the_past_cancels_at_the_next_checkpoint() {
    let took = elapsed_when_cancelled(|h, start| {
        h.set_deadline(start);
        assert!(h.is_cancelled(), "takes effect at once");
    });
    assert_eq!(took, secs(1));
}

#[test]
fn moving_a_deadline_after_it_fired_never_uncancels() {
    block_on(async {
        let scope = Scope::new().with_timeout(secs(1));
        let handle = scope.handle();
        let _ = scope
            .run(async {
                let err = wherefore::sleep(secs(2)).await.unwrap_err();
                let before = handle.cause().unwrap().to_string();
                handle.set_timeout(secs(100));
                assert!(handle.is_cancelled());
                assert_eq!(handle.cause().unwrap().to_string(), before);
                Err::<(), _>(err)
            })
            .await;
    });
}

#[test]
fn a_zero_timeout_runs_the_body_to_its_first_cancellation_point() {
    block_on(async {
        let mut steps = Vec::new();
        let out = wherefore::move_on_after(Duration::ZERO, async {
            steps.push("started");
            wherefore::checkpoint().await?;
            steps.push("after checkpoint");
            Ok::<_, Cancelled>(())
        })
        .await;
        assert!(matches!(out, Ok(None)));
        assert_eq!(steps, ["started"]);
    });
}

#[test]
fn a_huge_timeout_neither_overflows_nor_fires() {
    block_on(async {
        let out = wherefore::move_on_after(Duration::MAX, async {
            wherefore::sleep(secs(86_400 * 365)).await?;
            Ok::<_, Cancelled>("a year later")
        })
        .await;
        assert_eq!(out.unwrap(), Some("a year later"));
    });
}

#[test]
fn a_day_long_timeout_takes_no_real_time() {
    let real = Instant::now();
    block_on(async {
        let out = wherefore::fail_after(secs(86_400), wherefore::sleep(secs(2 * 86_400))).await;
        assert!(out.is_err());
    });
    assert!(real.elapsed() < Duration::from_secs(5));
}

/// S9: a task waking at the same instant as a deadline finds the scope already cancelled by the
/// deadline, whichever was registered first.
#[test]
fn deadlines_fire_before_tasks_woken_at_the_same_instant() {
    block_on(async {
        let scope = Scope::named("job");
        let handle = scope.handle();
        let start = wherefore::now();
        let out = wherefore::nursery(async |n: wherefore::Nursery<'_, Cancelled>| {
            let h = handle.clone();
            n.start_soon(async move {
                wherefore::sleep(secs(5)).await?; // registered before the deadline
                assert!(
                    !h.cancel_with("waker"),
                    "the deadline at the same instant came first"
                );
                Ok(())
            })
            .unwrap();
            wherefore::checkpoint().await?;
            handle.set_deadline(start + secs(5));
            scope.run(wherefore::sleep(secs(60))).await?;
            Ok(())
        })
        .await;
        assert!(out.is_ok());
        assert!(matches!(handle.cause(), Some(Cause::Timeout(_))));
    });
}

/// S9 ties between scopes: ancestors first, then creation order.
#[test]
fn same_instant_deadlines_fire_ancestors_first() {
    block_on(async {
        let at = wherefore::now() + secs(5);
        let outer = Scope::named("outer").with_deadline(at);
        let outer_handle = outer.handle();
        let inner = Scope::named("inner").with_deadline(at);
        let inner_handle = inner.handle();
        let _ = outer.run(inner.run(wherefore::sleep(secs(10)))).await;
        assert!(matches!(outer_handle.cause(), Some(Cause::Timeout(_))));
        // The inner scope got its parent's cancellation before its own deadline was processed.
        assert!(matches!(inner_handle.cause(), Some(Cause::Parent(_))));
        // Its own deadline fired next, at the same instant: recorded as its own cause (S14),
        // but it lost to the parent's and is counted as such.
        assert!(matches!(inner_handle.own_cause(), Some(Cause::Timeout(_))));
        assert_eq!(inner_handle.ignored_requests(), 1);
    });
}

#[test]
#[should_panic(expected = "no clock")]
fn a_deadline_without_a_runtime_is_a_clear_error() {
    futures::executor::block_on(async {
        let _ = wherefore::move_on_after(secs(1), async { Ok::<_, Cancelled>(()) }).await;
    });
}
