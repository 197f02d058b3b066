//! Regressions found by the differential tests against Trio (issue 27, `differential/`): each is
//! a minimised program, written in the API, named for its scenario.
mod common;

use std::time::Duration;

use common::*;
use wherefore::{Cancelled, Cause, Scope};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The root cause a cancellation point reports, with the scope that holds it.
fn root(c: &Cancelled) -> (&'static str, String) {
    let root = c.cause().root();
    let scope = match &root {
        Cause::Timeout(t) => t.scope().name().map(str::to_owned),
        Cause::Explicit(e) => e.scope().name().map(str::to_owned),
        _ => None,
    };
    (root.kind(), scope.unwrap_or_default())
}

/// Seed 664, minimised: a scope is entered under a parent cancelled by its deadline, with a
/// deadline of its own already past. Its deadline passed before it was entered, like a cancel
/// through its handle before entry: an own request from before entry, which came before anything
/// it could inherit (it inherits only from its entry on). Trio: the scope's own deadline.
#[test]
fn a_scope_entered_with_its_deadline_past_under_a_cancelled_parent_reports_its_own_timeout() {
    block_on(async {
        let t0 = wherefore::now();
        wherefore::sleep_until(t0 + ms(100)).await.unwrap();
        let outer = Scope::named("s2").with_deadline(t0 + ms(97));
        let inner = Scope::named("s3").with_deadline(t0 + ms(98));
        let seen = outer
            .run(inner.run(async {
                let err = wherefore::sleep_until(t0 + ms(140)).await.unwrap_err();
                Ok::<_, Cancelled>(root(&err))
            }))
            .await;
        assert_eq!(
            seen.unwrap().unwrap().unwrap(),
            ("timeout", "s3".to_owned())
        );
    });
}

/// Seed 1229, minimised: the parent is cancelled explicitly, then a scope whose deadline passed
/// earlier is entered inside it. Trio: the scope's own deadline.
#[test]
fn a_scope_entered_with_its_deadline_past_inside_an_explicitly_cancelled_one_reports_its_own_timeout()
 {
    block_on(async {
        let t0 = wherefore::now();
        wherefore::sleep_until(t0 + ms(60)).await.unwrap();
        let outer = Scope::named("n1");
        outer.handle().cancel();
        let inner = Scope::named("s4").with_deadline(t0 + ms(15));
        let seen = outer
            .run(inner.run(async {
                let err = wherefore::sleep_until(t0 + ms(300)).await.unwrap_err();
                Ok::<_, Cancelled>(root(&err))
            }))
            .await;
        assert_eq!(
            seen.unwrap().unwrap().unwrap(),
            ("timeout", "s4".to_owned())
        );
    });
}

/// The same rule for a cancel through the handle before entry, which already held: the scope's
/// own request from before entry comes first, whatever its parent's state.
#[test]
fn a_scope_cancelled_before_entry_inside_a_cancelled_one_reports_its_own_cause() {
    block_on(async {
        let outer = Scope::named("outer");
        outer.handle().cancel();
        let inner = Scope::named("inner");
        inner.handle().cancel();
        let seen = outer
            .run(inner.run(async {
                let err = wherefore::checkpoint().await.unwrap_err();
                Ok::<_, Cancelled>(root(&err))
            }))
            .await;
        assert_eq!(
            seen.unwrap().unwrap().unwrap(),
            ("explicit", "inner".to_owned())
        );
    });
}
