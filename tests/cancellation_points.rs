//! `sleep_forever`, a cancellation point and nothing else, and `yield_now`, a yield that is not
//! a cancellation point.
mod common;

use std::sync::Mutex;

use common::*;
use wherefore::{Cancelled, Nursery, Scope};

#[test]
fn sleep_forever_fails_with_the_cancellation_of_its_scope() {
    block_on(async {
        let start = wherefore::now();
        let scope = Scope::named("idle");
        let handle = scope.handle();
        let out = scope
            .run(async {
                let until = wherefore::move_on_after(secs(7), async {
                    wherefore::sleep_forever().await?;
                    Ok::<(), Cancelled>(())
                });
                assert_eq!(until.await?, None, "its own timeout: absorbed");
                assert_eq!(wherefore::now() - start, secs(7), "it slept until then");
                handle.cancel_with("enough");
                let Err(cancelled) = wherefore::sleep_forever().await;
                assert_eq!(cancelled.cause(), &handle.cause().unwrap());
                assert_eq!(cancelled.scope().name(), Some("idle"));
                Err::<(), _>(cancelled)
            })
            .await;
        assert!(matches!(out, Ok(None)));
    });
}

#[test]
fn sleep_forever_outside_a_cancelled_scope_is_reported_where_it_hangs() {
    let stuck = wherefore::testing::try_block_on(wherefore::sleep_forever()).unwrap_err();
    assert!(
        stuck
            .to_string()
            .contains("task \"main\" blocked at sleep_forever"),
        "{stuck}"
    );
}

#[test]
fn yield_now_passes_in_a_cancelled_scope_where_checkpoint_fails() {
    block_on(async {
        let scope = Scope::new();
        let handle = scope.handle();
        handle.cancel();
        let out = scope
            .run(async {
                for _ in 0..3 {
                    wherefore::yield_now().await;
                }
                assert!(wherefore::checkpoint().await.is_err());
                Ok::<_, Cancelled>("finished")
            })
            .await;
        assert_eq!(out.unwrap(), Some("finished"));
        assert!(!handle.cancelled_caught());
    });
}

/// A yield lets the nursery's other members run: two members that only yield take turns.
#[test]
fn yield_now_lets_the_other_members_run() {
    block_on(async {
        let turns = Mutex::new(Vec::new());
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            for name in ["a", "b"] {
                let turns = &turns;
                n.start_soon(async move {
                    for _ in 0..3 {
                        turns.lock().unwrap().push(name);
                        wherefore::yield_now().await;
                    }
                    Ok(())
                })
                .unwrap();
            }
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(turns.into_inner().unwrap(), ["a", "b", "a", "b", "a", "b"]);
    });
}

/// S19: a body that is yielding is not blocked, so a cancelled scope around it does not drop
/// it: it runs on, to its next cancellation point.
#[test]
fn a_body_that_yields_is_not_dropped_when_its_scope_is_cancelled() {
    block_on(async {
        let steps = Mutex::new(0);
        let scope = Scope::new();
        let handle = scope.handle();
        let out = scope
            .run(async {
                for step in 0..5 {
                    if step == 2 {
                        handle.cancel();
                    }
                    wherefore::yield_now().await;
                    *steps.lock().unwrap() += 1;
                }
                wherefore::checkpoint().await
            })
            .await;
        assert!(matches!(out, Ok(None)));
        assert_eq!(*steps.lock().unwrap(), 5, "every step ran");
    });
}
