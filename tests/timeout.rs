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
