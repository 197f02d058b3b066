//! First cause wins (S14, S15, S17): whichever cancellation reaches a scope first is the one it
//! keeps, in both orders; later requests are counted, not recorded.
mod common;

use common::*;
use wherefore::{Cancelled, Cause, Scope};

#[test]
fn explicit_cancel_before_the_deadline_keeps_the_explicit_cause() {
    block_on(async {
        let scope = Scope::named("job").with_timeout(secs(5));
        let handle = scope.handle();
        let out = scope
            .run(async {
                wherefore::sleep(secs(1)).await?;
                assert!(handle.cancel_with("operator"));
                wherefore::shield(wherefore::sleep(secs(10))).await?; // deadline passes meanwhile
                wherefore::checkpoint().await
            })
            .await;
        assert!(matches!(out, Ok(None)));
        assert!(matches!(handle.cause(), Some(Cause::Explicit(_))));
        // The deadline fired after the explicit cancel: no effect, but counted (S17).
        assert_eq!(handle.ignored_requests(), 1, "the lost deadline is counted");
    });
}

/// S17 for deadlines: a deadline that passes on a scope cancelled already, and one set in the
/// past on such a scope, are requests that lost: counted and journaled with the cause they lost
/// to.
#[test]
fn a_deadline_that_loses_to_an_earlier_cause_is_counted_and_journaled() {
    let report = wherefore::testing::run(async {
        let scope = Scope::named("job").with_timeout(secs(5));
        let handle = scope.handle();
        let _ = scope
            .run(async {
                handle.cancel_with("operator");
                wherefore::shield(wherefore::sleep(secs(10))).await?; // the deadline passes
                handle.set_timeout(std::time::Duration::ZERO); // a deadline in the past
                wherefore::checkpoint().await
            })
            .await;
        handle.ignored_requests()
    });
    assert_eq!(report.output(), Some(&2), "both deadlines were counted");
    let journal = report.journal().to_string();
    let lost: Vec<&str> = journal
        .lines()
        .filter(|line| line.contains("cancel   scope \"job\": scope \"job\" timed out"))
        .collect();
    assert_eq!(lost.len(), 2, "{journal}");
    assert!(lost[0].starts_with("t=5.000 "), "{}", lost[0]);
    assert!(lost[1].starts_with("t=10.000 "), "{}", lost[1]);
    for line in lost {
        assert!(
            line.contains("[lost to: explicit (\"operator\") at tests/first_cause.rs:"),
            "{line}"
        );
    }
}

#[test]
fn deadline_before_an_explicit_cancel_keeps_the_timeout_cause() {
    block_on(async {
        let scope = Scope::named("job").with_timeout(secs(5));
        let handle = scope.handle();
        let out = scope
            .run(async {
                let err = wherefore::sleep(secs(60)).await.unwrap_err();
                assert!(matches!(err.cause(), Cause::Timeout(_)));
                assert!(!handle.cancel_with("too late"));
                Err::<(), _>(err)
            })
            .await;
        assert!(matches!(out, Ok(None)));
        assert_eq!(handle.cause().unwrap().kind(), "timeout");
        assert_eq!(handle.ignored_requests(), 1);
    });
}

#[test]
fn parent_cancel_before_own_cancel_keeps_the_parent_cause() {
    block_on(async {
        let outer = Scope::named("outer");
        let outer_handle = outer.handle();
        let inner = Scope::named("inner");
        let inner_handle = inner.handle();
        let _ = outer
            .run(inner.run(async {
                assert!(outer_handle.cancel_with("first"));
                assert!(
                    !inner_handle.cancel_with("second"),
                    "already cancelled through its parent"
                );
                wherefore::checkpoint().await
            }))
            .await;
        let cause = inner_handle.cause().unwrap();
        assert!(matches!(cause, Cause::Parent(_)), "{cause}");
        assert!(cause.to_string().contains("explicit (\"first\")"));
        // The own request is still recorded as the scope's own cause (S14).
        assert!(
            inner_handle
                .own_cause()
                .unwrap()
                .to_string()
                .contains("\"second\"")
        );
    });
}

#[test]
fn own_cancel_before_parent_cancel_keeps_the_own_cause() {
    block_on(async {
        let outer = Scope::named("outer");
        let outer_handle = outer.handle();
        let inner = Scope::named("inner");
        let inner_handle = inner.handle();
        let _ = outer
            .run(inner.run(async {
                assert!(inner_handle.cancel_with("first"));
                assert!(
                    outer_handle.cancel_with("second"),
                    "the outer scope was not cancelled yet"
                );
                let err = wherefore::checkpoint().await.unwrap_err();
                assert!(matches!(err.cause(), Cause::Explicit(_)), "{}", err.cause());
                Err::<(), _>(err)
            }))
            .await;
        assert!(
            inner_handle
                .cause()
                .unwrap()
                .to_string()
                .contains("\"first\"")
        );
        assert_eq!(
            inner_handle.ignored_requests(),
            1,
            "the parent's cancellation arrived second"
        );
    });
}

/// S14: cancelled through the parent, then by itself, then shielded: the shield hides the
/// parent's cause and the scope reports its own.
#[test]
fn a_scope_shielded_after_both_causes_reports_its_own() {
    block_on(async {
        let outer = Scope::named("outer");
        let outer_handle = outer.handle();
        let inner = Scope::named("inner");
        let inner_handle = inner.handle();
        let _ = outer
            .run(inner.run(async {
                outer_handle.cancel_with("parent");
                inner_handle.cancel_with("own");
                assert!(matches!(inner_handle.cause(), Some(Cause::Parent(_))));
                inner_handle.set_shielded(true);
                let err = wherefore::checkpoint().await.unwrap_err();
                assert!(
                    err.cause().to_string().contains("\"own\""),
                    "{}",
                    err.cause()
                );
                Err::<(), _>(err)
            }))
            .await;
    });
}

/// S15: a request to a scope that has exited records nothing.
#[test]
fn cancelling_an_exited_scope_has_no_effect() {
    block_on(async {
        let scope = Scope::named("done");
        let handle = scope.handle();
        let out = scope.run(async { Ok::<_, Cancelled>(7) }).await;
        assert_eq!(out.unwrap(), Some(7));
        assert!(!handle.cancel_with("late"));
        assert!(handle.cause().is_none());
        assert!(!handle.is_cancelled());
    });
}

/// A scope cancelled through its handle before it is entered starts cancelled, and its body
/// still runs to its first cancellation point (S5).
#[test]
fn a_scope_cancelled_before_entry_runs_its_body_to_the_first_cancellation_point() {
    block_on(async {
        let scope = Scope::new();
        let handle = scope.handle();
        assert!(handle.cancel());
        let mut reached = false;
        let out = scope
            .run(async {
                reached = true;
                wherefore::checkpoint().await
            })
            .await;
        assert!(reached);
        assert!(matches!(out, Ok(None)));
    });
}

#[test]
fn concurrent_cancels_from_threads_pick_exactly_one_winner() {
    let handle = Scope::new().handle();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let h = handle.clone();
            std::thread::spawn(move || h.cancel_with(i))
        })
        .collect();
    let winners: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(winners.iter().filter(|w| **w).count(), 1);
    let winner = winners.iter().position(|w| *w).unwrap();
    let Some(Cause::Explicit(explicit)) = handle.cause() else {
        unreachable!()
    };
    assert_eq!(format!("{:?}", explicit.tag().unwrap()), winner.to_string());
    assert_eq!(handle.ignored_requests(), 7);
}

/// A reader on one thread never sees a scope's cause before its flag, while another thread
/// cancels it: after `cause()` is `Some`, `is_cancelled()` is true (invariant 7 of the tree; the
/// loom model `a_cause_is_never_seen_before_its_flag` covers every interleaving, this runs the
/// real threads).
#[test]
fn a_cause_read_on_another_thread_is_never_seen_before_the_flag() {
    for _ in 0..2_000 {
        let handle = Scope::new().handle();
        let remote = handle.clone();
        let reader = std::thread::spawn(move || {
            loop {
                let cause = remote.cause();
                let cancelled = remote.is_cancelled();
                assert!(cause.is_none() || cancelled, "cause before flag: {cause:?}");
                if cause.is_some() {
                    return;
                }
                std::hint::spin_loop();
            }
        });
        handle.cancel_with("now");
        reader.join().unwrap();
    }
}
