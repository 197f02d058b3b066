//! move_on_* and fail_*: what a timeout returns, and whose cancellation a scope absorbs.
mod common;

use common::*;
use wherefore::{Cancelled, Cause, Scope};

#[test]
fn move_on_after_returns_the_value_when_the_body_finishes_in_time() {
    block_on(async {
        let out = wherefore::move_on_after(secs(5), async {
            wherefore::sleep(secs(1)).await?;
            Ok::<_, Cancelled>(1)
        })
        .await;
        assert_eq!(out.unwrap(), Some(1));
    });
}

/// S7: the body swallows its cancellation and returns a value: the value is returned, and the
/// scope's cause stays readable through its handle.
#[test]
fn a_body_that_swallows_its_timeout_returns_its_value() {
    block_on(async {
        let fut = wherefore::move_on_after(secs(1), async {
            let _ = wherefore::sleep(secs(5)).await; // swallowed
            Ok::<_, Cancelled>("partial result")
        });
        let handle = fut.handle();
        assert_eq!(fut.await.unwrap(), Some("partial result"));
        assert!(matches!(handle.cause(), Some(Cause::Timeout(_))));
    });
}

/// S6: a fail_after scope cancelled from outside is not a timeout: the outer cancellation
/// propagates unchanged to the scope that caused it.
#[test]
fn fail_after_cancelled_from_outside_is_not_a_timeout() {
    block_on(async {
        let outer = Scope::named("outer");
        let outer_handle = outer.handle();
        let out = outer
            .run(async {
                let inner = wherefore::fail_after(secs(10), async {
                    outer_handle.cancel_with("shutdown");
                    wherefore::sleep(secs(1)).await?;
                    Ok::<_, Cancelled>(())
                })
                .await;
                let cancelled = inner.expect("not a timeout").unwrap_err();
                assert!(matches!(cancelled.cause(), Cause::Parent(_)));
                Err::<(), _>(cancelled)
            })
            .await;
        assert!(
            matches!(out, Ok(None)),
            "absorbed by the outer scope that caused it"
        );
    });
}

#[test]
fn fail_after_reports_its_own_deadline_as_timed_out() {
    block_on(async {
        let out = wherefore::fail_after(secs(2), wherefore::sleep(secs(3))).await;
        let err = out.unwrap_err();
        assert_eq!(err.timeout().after(), Some(secs(2)));
        assert_eq!(err.timeout().set_at().file(), file!());
    });
}

/// S2: with nested timeouts that both expired, the outermost absorbs; the inner one passes the
/// cancellation through.
#[test]
fn the_outermost_expired_timeout_absorbs() {
    block_on(async {
        let outer = wherefore::move_on_after(secs(1), async {
            let inner = wherefore::move_on_after(secs(1), async {
                wherefore::sleep(secs(5)).await?;
                Ok::<_, Cancelled>("inner")
            })
            .await;
            assert!(
                inner.is_err(),
                "the inner scope is not the outermost cancelled one"
            );
            inner.map(|_| "outer")
        })
        .await;
        assert!(matches!(outer, Ok(None)));
    });
}

/// S16: a `Cancelled` that escaped its own scope and is returned from a scope that is not
/// cancelled is not absorbed there: it passes through as an error.
#[test]
fn an_escaped_cancellation_is_not_absorbed_by_an_uncancelled_scope() {
    block_on(async {
        let elsewhere = Scope::named("elsewhere");
        elsewhere.handle().cancel();
        // The body keeps its cancellation as a value, so it escapes the scope that caused it.
        let escaped = elsewhere
            .run(async { Ok::<_, Cancelled>(wherefore::checkpoint().await.unwrap_err()) })
            .await
            .unwrap()
            .unwrap();
        let out = wherefore::move_on_after(secs(5), async { Err::<(), _>(escaped) }).await;
        let err = out.unwrap_err();
        assert_eq!(err.scope().name(), Some("elsewhere"));
    });
}

/// Item 4 of issue 26: a timeout named with `.named(..)` shows its name where a recorded
/// scope's name shows: the cause its body observes, its handle, and (for `fail_after`) the
/// `TimedOut` it fails with.
#[test]
fn a_named_timeout_shows_its_name_in_the_cause_its_body_observes() {
    block_on(async {
        let out = wherefore::move_on_after(secs(2), async {
            let Err(cancelled) = wherefore::sleep(secs(5)).await else {
                panic!("the deadline fires first")
            };
            assert_eq!(cancelled.scope().name(), Some("db-query"));
            assert!(
                cancelled
                    .cause()
                    .to_string()
                    .starts_with("scope \"db-query\" timed out after 2s (deadline set at "),
                "{}",
                cancelled.cause()
            );
            Err::<(), _>(cancelled)
        })
        .named("db-query")
        .await;
        assert!(matches!(out, Ok(None)));
    });
}

#[test]
fn a_named_fail_after_shows_its_name_in_timed_out() {
    block_on(async {
        let fut = wherefore::fail_after(secs(1), wherefore::sleep(secs(3))).named("handshake");
        let handle = fut.handle();
        let err = fut.await.unwrap_err();
        let Cause::Timeout(timeout) = handle.cause().unwrap() else {
            panic!("its own deadline")
        };
        assert_eq!(err.timeout(), &timeout, "the very deadline that passed");
        assert_eq!(handle.scope().name(), Some("handshake"));
        assert_eq!(
            err.to_string(),
            format!(
                "scope \"handshake\" timed out after 1s (deadline set at {})",
                timeout.set_at()
            )
        );
        let unnamed = wherefore::fail_after(secs(1), wherefore::sleep(secs(3)))
            .await
            .unwrap_err();
        assert!(unnamed.to_string().starts_with("scope#"), "{unnamed}");
    });
}

#[test]
fn a_named_shield_with_grace_names_the_grace_that_ran_out() {
    block_on(async {
        let worker = Scope::named("worker");
        worker.handle().cancel_with("shutdown");
        let out = worker
            .run(async {
                let flush = wherefore::shield_with_grace(secs(5), async {
                    wherefore::sleep(secs(60)).await?; // a cleanup that hangs
                    Ok::<_, Cancelled>(())
                })
                .named("flush");
                let handle = flush.handle();
                assert!(matches!(flush.await, Ok(None)), "cut at the grace deadline");
                let cause = handle.cause().unwrap();
                assert!(cause.is_timeout());
                assert!(
                    cause
                        .to_string()
                        .starts_with("scope \"flush\" timed out after 5s")
                );
                wherefore::checkpoint().await // the shutdown, still pending outside
            })
            .await;
        assert!(matches!(out, Ok(None)));
    });
}

/// A name given after the scope was handed out would disagree with what its handle and its
/// causes said already: refused, loudly.
#[test]
#[should_panic(expected = "cannot be named \"late\": it was handed out unnamed")]
fn naming_a_timeout_after_its_handle_was_taken_panics() {
    block_on(async {
        let fut = wherefore::move_on_after(secs(1), wherefore::checkpoint());
        let _handle = fut.handle();
        let _ = fut.named("late").await;
    });
}

#[test]
#[should_panic(expected = "cannot be named \"late\": it was handed out unnamed")]
fn naming_a_shield_with_grace_that_a_handle_cancelled_panics() {
    let fut = wherefore::shield_with_grace(secs(1), wherefore::checkpoint());
    fut.handle().cancel(); // its cause names the scope as it was, unnamed
    drop(fut.named("late"));
}

#[test]
fn a_timeout_whose_dropped_handle_saw_nothing_can_still_be_named() {
    block_on(async {
        let fut = wherefore::fail_after(secs(1), wherefore::sleep(secs(2)));
        drop(fut.handle()); // records the scope, and lets go of it
        let err = fut.named("probe").await.unwrap_err();
        assert_eq!(err.timeout().scope().name(), Some("probe"));
    });
}

/// `FailAfter::handle`, as `MoveOnAfter::handle`: cancelling through it is not a timeout (S6),
/// so the body's `Cancelled` comes back inside `Ok`.
#[test]
fn fail_after_cancelled_through_its_handle_is_not_a_timeout() {
    block_on(async {
        let fut = wherefore::fail_after(secs(10), wherefore::sleep(secs(20)));
        let handle = fut.handle();
        assert!(handle.cancel_with("enough"));
        let out = fut.await.expect("not a timeout");
        let cancelled = out.unwrap_err();
        assert!(cancelled.cause().is_explicit());
        assert_eq!(cancelled.cause(), &handle.cause().unwrap());
        assert!(
            !handle.cancelled_caught(),
            "the cancellation came back as an error"
        );
    });
}
