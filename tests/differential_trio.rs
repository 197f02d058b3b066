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

/// Seed 11407, minimised (issue 27): a sleep to an instant already past completed at once,
/// without yielding; Trio's sleeps always yield (a schedule point), so there the member started
/// just before runs first, and its failure cancels the body at that very sleep. Decided Trio's
/// way: a sleep already due when first polled yields once, as `checkpoint` does.
#[test]
fn a_sleep_to_a_past_instant_lets_a_member_started_just_before_run_first() {
    block_on(async {
        let t0 = wherefore::now();
        wherefore::sleep_until(t0 + ms(385)).await.unwrap();
        let seen = std::sync::Mutex::new(None);
        let _ = wherefore::nursery(async |n: wherefore::Nursery<'_, BoxError>| {
            drop(
                n.spawn_named("m6", async { Err::<(), BoxError>("op8".into()) })
                    .unwrap(),
            );
            let slept = wherefore::sleep_until(t0 + ms(235)).await;
            *seen.lock().unwrap() = Some(slept.is_err());
            Ok(())
        })
        .await;
        assert_eq!(
            seen.into_inner().unwrap(),
            Some(true),
            "Trio: the member failed first, so the sleep failed with its nursery's cancellation"
        );
    });
}

/// Seed 10732, minimised: a member cancelled with its nursery (from a scope above it) runs a
/// shielded cleanup and then ends with its cancellation, as members should; meanwhile a shield
/// was raised between the nursery and the scope that was cancelled, so the nursery is no longer
/// cancelled when the member ends. Its `Cancelled` was raised in the nursery while the nursery
/// was cancelled: the member ended only because it was cancelled, which is never a failure (S3).
/// wherefore classified a member's end by whether its nursery was cancelled *when it ended*
/// (`task::classify`), so it called it an escaped cancellation, a failure that failed the
/// nursery and everything above. Trio: the nursery ends normally; so does ours now, which reads
/// the root of the cancellation's cause (the nursery or a scope around it holds it).
#[test]
fn a_member_ending_with_its_cancellation_after_a_shield_above_lifted_it_is_no_failure() {
    block_on(async {
        let outer = Scope::named("n1");
        let stop = outer.handle();
        let middle = Scope::named("s8");
        let lift = middle.handle();
        let out = outer
            .run(middle.run(async {
                wherefore::nursery(async |n: wherefore::Nursery<'_, Cancelled>| {
                    drop(
                        n.spawn_named("m11", async {
                            let cancelled = wherefore::sleep_forever().await.unwrap_err();
                            wherefore::shield(wherefore::sleep(ms(50))).await?; // cleanup
                            Err::<(), _>(cancelled)
                        })
                        .unwrap(),
                    );
                    drop(
                        n.spawn_named(
                            "m10",
                            wherefore::shield(async {
                                wherefore::sleep(ms(10)).await?;
                                stop.cancel();
                                wherefore::sleep(ms(10)).await?;
                                lift.set_shielded(true);
                                Ok(())
                            }),
                        )
                        .unwrap(),
                    );
                    Ok(())
                })
                .await
            }))
            .await;
        assert!(
            matches!(out, Ok(Some(Some(())))),
            "the member ended cancelled, no failure: {out:?}"
        );
    });
}
