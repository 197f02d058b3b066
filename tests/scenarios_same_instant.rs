//! Scenario 5: requests that reach a scope at the same virtual instant, under 100 seeds. The
//! cause recorded is always the one whose request was processed first, and the journal says
//! which lost.
mod common;

use std::cell::Cell;

use common::*;
use wherefore::event::{Event, RequestOutcome};
use wherefore::testing::{Report, check_seeds};
use wherefore::{Cancelled, Nursery, Scope};

/// The cancel requests that reached scope "job", in journal order: whether each took effect and
/// its cause. Checks on the way that every request that lost names the cause it lost to, and
/// that this is the first request's.
fn requests_to_job<T>(report: &Report<T>) -> Vec<(bool, String)> {
    let mut first: Option<String> = None;
    report
        .journal()
        .entries()
        .iter()
        .filter_map(|entry| match entry.event() {
            Event::CancelRequested {
                scope,
                cause,
                outcome,
            } if scope.name() == Some("job") => {
                let took = matches!(outcome, RequestOutcome::TookEffect);
                match outcome {
                    RequestOutcome::LostTo(winner) => {
                        assert_eq!(Some(winner.to_string()), first, "lost to the first request")
                    }
                    RequestOutcome::TookEffect => assert!(first.is_none(), "only one takes effect"),
                    other => panic!("unexpected outcome: {other}"),
                }
                first.get_or_insert_with(|| cause.to_string());
                Some((took, cause.to_string()))
            }
            _ => None,
        })
        .collect()
}

/// Scope "job" has a deadline at t=5; `cancellers` tasks wake at t=5 and cancel it explicitly
/// with their own tag. Returns the cause the scope recorded.
async fn same_instant(cancellers: &[&'static str], deadline: bool) -> String {
    let job = Scope::named("job");
    let handle = job.handle();
    if deadline {
        handle.set_timeout(secs(5));
    }
    wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
        for &tag in cancellers {
            let handle = handle.clone();
            n.start_soon_named(tag, async move {
                wherefore::sleep(secs(5)).await?;
                handle.cancel_with(format!("{tag} took it"));
                Ok(())
            })
            .unwrap();
        }
        let _ = job
            .run(async {
                let cancelled = wherefore::sleep(secs(60)).await.unwrap_err();
                wherefore::shield(wherefore::sleep(secs(1))).await?; // still running at t=5
                Err::<(), _>(cancelled)
            })
            .await?;
        Ok(())
    })
    .await
    .unwrap();
    handle.cause().unwrap().to_string()
}

#[test]
fn a_deadline_and_an_explicit_cancel_at_the_same_instant_resolve_deadline_first() {
    check_seeds(
        0..100,
        || same_instant(&["operator"], true),
        |report| {
            let requests = requests_to_job(report);
            assert_eq!(requests.len(), 2, "{requests:?}");
            assert!(requests[0].0, "the first request processed took effect");
            assert!(
                requests[0]
                    .1
                    .starts_with("scope \"job\" timed out after 5s"),
                "S9: deadlines first"
            );
            assert!(!requests[1].0, "the explicit cancel lost");
            assert_eq!(
                report.output().unwrap(),
                &requests[0].1,
                "the recorded cause is the winner"
            );
        },
    );
}

#[test]
fn two_explicit_cancels_at_the_same_instant_record_whichever_was_processed_first() {
    let a_won = Cell::new(0);
    check_seeds(
        0..100,
        || same_instant(&["alice", "bob"], false),
        |report| {
            let requests = requests_to_job(report);
            assert_eq!(requests.len(), 2, "{requests:?}");
            assert!(
                requests[0].0 && !requests[1].0,
                "first processed wins: {requests:?}"
            );
            assert_eq!(report.output().unwrap(), &requests[0].1);
            if requests[0].1.contains("alice") {
                a_won.set(a_won.get() + 1);
            }
        },
    );
    // The seeds really permute the two same-instant wake-ups.
    assert!(
        0 < a_won.get() && a_won.get() < 100,
        "alice won {} of 100",
        a_won.get()
    );
}

#[test]
fn without_a_seed_same_instant_wakeups_run_in_registration_order() {
    for _ in 0..3 {
        let cause = block_on(same_instant(&["alice", "bob"], false));
        assert!(cause.starts_with("explicit (\"alice took it\")"), "{cause}");
    }
}
