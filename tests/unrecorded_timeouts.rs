//! Timeouts that enter the scope tree only when something needs them there (DESIGN.md,
//! "Unrecorded timeout scopes"): each scenario checks that what the body, the caller and the
//! handles see is what a recorded scope gives, on the path where the scope stays unrecorded
//! (`testing::block_on` has no hook) and, where it matters, against the same scenario under a
//! journal (a hooked runtime records every scope).
mod common;

use std::time::Duration;

use common::*;
use futures::channel::oneshot;
use wherefore::{CancelHandle, Cancelled, Cause, LocalNursery, Nursery, Scope};

fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What a body that waits on a foreign future (a channel, which knows nothing of scopes) and
/// then passes a cancellation point saw there.
fn observed(checked: Result<(), Cancelled>) -> String {
    match checked {
        Ok(()) => "not cancelled".to_owned(),
        Err(c) => format!("{} / root: {}", c.cause().kind(), c.cause().root().kind()),
    }
}

#[test]
fn a_timeout_nobody_asks_about_takes_no_place_in_the_tree_until_its_body_asks() {
    block_on(async {
        let request = Scope::named("request");
        let handle = request.handle();
        let out = request
            .run(async {
                let before = handle.tree().to_string();
                let inside = wherefore::move_on_after(secs(10), async {
                    let unasked = handle.tree().to_string();
                    let me = CancelHandle::current().expect("inside a scope");
                    let asked = handle.tree().to_string();
                    Ok::<_, Cancelled>((unasked, me.scope().id(), asked))
                })
                .await?;
                Ok::<_, Cancelled>((before, inside))
            })
            .await
            .unwrap()
            .unwrap();
        let (before, Some((unasked, id, asked))) = out else {
            panic!("the body finished in time")
        };
        assert_eq!(unasked, before, "unrecorded: the tree is as it was");
        assert_eq!(
            asked,
            format!("{before}  scope#{} (running)\n", id.get()),
            "asked for: recorded under the scope it entered in"
        );
    });
}

#[test]
fn an_unrecorded_timeout_that_fires_drops_a_body_blocked_in_a_foreign_future() {
    block_on(async {
        let start = wherefore::now();
        let (tx, rx) = oneshot::channel::<()>();
        let dropped_at = std::cell::Cell::new(None);
        wherefore::nursery_local(async |s: LocalNursery<'_, Cancelled>| {
            s.start_soon(async {
                wherefore::sleep(secs(2)).await?;
                assert!(
                    tx.send(()).is_err(),
                    "the receiver was dropped at the deadline"
                );
                Ok(())
            })
            .unwrap();
            let probe = DropProbe(&dropped_at);
            let out = wherefore::move_on_after(secs(1), async move {
                let _probe = probe;
                let _ = rx.await; // foreign: the timeout stays unrecorded while it waits
                unreachable!("dropped at the deadline (S19)") as Result<(), Cancelled>
            })
            .await?;
            assert_eq!(out, None, "its own timeout: absorbed");
            assert_eq!(dropped_at.get().map(|at| at - start), Some(secs(1)));
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(wherefore::now() - start, secs(2));
    });
}

/// Records when it is dropped, on the virtual clock.
struct DropProbe<'a>(&'a std::cell::Cell<Option<std::time::Instant>>);

impl Drop for DropProbe<'_> {
    fn drop(&mut self) {
        self.0.set(Some(wherefore::now()));
    }
}

#[test]
fn fail_after_reports_timed_out_when_its_unrecorded_deadline_fired() {
    block_on(async {
        let (tx, rx) = oneshot::channel::<()>();
        wherefore::nursery(async |s: Nursery<'_, Cancelled>| {
            s.start_soon(async {
                wherefore::sleep(secs(3)).await?;
                let _ = tx.send(());
                Ok(())
            })
            .unwrap();
            let out = wherefore::fail_after(secs(1), async {
                let _ = rx.await;
                wherefore::check_cancelled()
            })
            .await;
            let timed_out = out.expect_err("its own deadline fired");
            assert_eq!(timed_out.timeout().after(), Some(secs(1)));
            Ok(())
        })
        .await
        .unwrap();
    });
}

/// The parent is cancelled while the unrecorded scope's body waits on a foreign future, and the
/// scope's deadline comes after that: the body sees the parent's cancellation through a `Parent`
/// link in this scope (it was raised here), the scope does not absorb it, the parent does.
async fn parent_cancelled_first() -> (String, bool) {
    let outer = Scope::named("outer");
    let outer_handle = outer.handle();
    let (tx, rx) = oneshot::channel::<()>();
    let mut seen = String::new();
    let mut absorbed_inside = true;
    let out = outer
        .run(wherefore::nursery(async |s: Nursery<'_, Cancelled>| {
            s.start_soon(async {
                wherefore::sleep(millis(500)).await?;
                outer_handle.cancel_with("shutdown");
                Ok(())
            })
            .unwrap();
            s.start_soon(async {
                // Shielded from the cancellation above: lets the waiting body go on later.
                wherefore::shield(async {
                    wherefore::sleep(secs(2)).await?;
                    let _ = tx.send(());
                    Ok::<_, Cancelled>(())
                })
                .await
            })
            .unwrap();
            let out = wherefore::move_on_after(secs(1), async {
                // A cancellation point that waits: the scope stays unrecorded meanwhile.
                let checked = wherefore::guard(rx).await.map(drop);
                seen = observed(checked.clone());
                checked
            })
            .await;
            absorbed_inside = matches!(out, Ok(None));
            out.map(drop)
        }))
        .await;
    assert!(
        matches!(out, Ok(None)),
        "absorbed by the scope that was cancelled"
    );
    (seen, absorbed_inside)
}

#[test]
fn a_parent_cancelled_before_the_deadline_reaches_the_body_through_the_unrecorded_scope() {
    let (seen, absorbed_inside) = block_on(parent_cancelled_first());
    assert_eq!(seen, "parent / root: explicit");
    assert!(!absorbed_inside, "not the timeout's cancellation");
    let journaled = wherefore::testing::run(parent_cancelled_first());
    assert_eq!(
        journaled.into_output().unwrap(),
        (seen, absorbed_inside),
        "the same with every scope recorded"
    );
}

/// S9: a parent's deadline at the same instant as the unrecorded child's fires first, so the
/// child's first cause is its parent's.
async fn same_instant_deadlines() -> String {
    let (tx, rx) = oneshot::channel::<()>();
    let mut seen = String::new();
    let out = Scope::named("parent")
        .with_timeout(secs(1))
        .run(wherefore::nursery(async |s: Nursery<'_, Cancelled>| {
            s.start_soon(async {
                wherefore::shield(async {
                    wherefore::sleep(secs(2)).await?;
                    let _ = tx.send(());
                    Ok::<_, Cancelled>(())
                })
                .await
            })
            .unwrap();
            wherefore::move_on_after(secs(1), async {
                // A cancellation point that waits: the scope stays unrecorded meanwhile.
                let checked = wherefore::guard(rx).await.map(drop);
                seen = observed(checked.clone());
                checked
            })
            .await
            .map(drop)
        }))
        .await;
    assert!(
        matches!(out, Ok(None)),
        "the parent's own timeout: absorbed there"
    );
    seen
}

#[test]
fn a_parent_deadline_at_the_same_instant_as_an_unrecorded_one_comes_first() {
    let seen = block_on(same_instant_deadlines());
    assert_eq!(seen, "parent / root: timeout");
    let journaled = wherefore::testing::run(same_instant_deadlines());
    assert_eq!(journaled.into_output().unwrap(), seen);
}

/// The deadline fires, and then, before the scope's task runs again, its parent is cancelled:
/// the timeout came first (S14), as it does when the scope is recorded, so it is the cause the
/// body sees; the scope does not absorb it, as its parent is cancelled too and the outermost
/// cancelled scope is the one that absorbs (S2).
async fn deadline_then_parent() -> String {
    let (tx, rx) = oneshot::channel::<()>();
    let mut seen = String::new();
    wherefore::nursery(async |s: Nursery<'_, Cancelled>| {
        s.start_soon(async {
            wherefore::shield(async {
                wherefore::sleep(secs(2)).await?;
                let _ = tx.send(());
                Ok::<_, Cancelled>(())
            })
            .await
        })
        .unwrap();
        let cancel = s.cancel_handle();
        s.start_soon(async {
            let out = wherefore::move_on_after(secs(1), async {
                // A cancellation point that waits: the scope stays unrecorded meanwhile.
                let checked = wherefore::guard(rx).await.map(drop);
                seen = observed(checked.clone());
                checked
            })
            .await;
            assert!(
                out.is_err(),
                "the outermost cancelled scope absorbs, not this one"
            );
            out.map(drop)
        })
        .unwrap();
        // Woken at the deadline's instant, after the deadline fired, and polled before the
        // members: the nursery is cancelled before the timed-out member runs again.
        wherefore::sleep(secs(1)).await?;
        cancel.cancel_with("stop");
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    seen
}

#[test]
fn a_deadline_that_fired_before_its_parent_was_cancelled_stays_the_first_cause() {
    let seen = block_on(deadline_then_parent());
    assert_eq!(seen, "timeout / root: timeout");
    let journaled = wherefore::testing::run(deadline_then_parent());
    assert_eq!(journaled.into_output().unwrap(), seen);
}

#[test]
fn a_handle_taken_while_the_scope_runs_unrecorded_records_it_and_can_cancel_it() {
    block_on(async {
        let (tx, rx) = oneshot::channel::<()>();
        let mut fut = Box::pin(wherefore::move_on_after(secs(10), async {
            let _ = rx.await;
            wherefore::check_cancelled()
        }));
        assert!(
            futures::poll!(fut.as_mut()).is_pending(),
            "entered, waiting"
        );
        let handle = fut.handle();
        assert_eq!(
            handle.deadline().map(|at| at - wherefore::now()),
            Some(secs(10))
        );
        assert!(handle.cancel_with("enough"));
        let _ = tx.send(());
        assert_eq!(fut.await.unwrap(), None, "its own cancel: absorbed");
        assert_eq!(handle.cause().unwrap().kind(), "explicit");
    });
}

#[test]
fn a_handle_asked_for_after_an_unrecorded_scope_exited_names_an_exited_scope() {
    block_on(async {
        let mut fut = Box::pin(wherefore::move_on_after(secs(10), async {
            wherefore::checkpoint().await?;
            Ok::<_, Cancelled>(7)
        }));
        assert_eq!((&mut fut).await.unwrap(), Some(7));
        let handle = fut.handle();
        assert!(!handle.cancel(), "exited: the request has no effect (S15)");
        assert!(!handle.is_cancelled());
        assert!(handle.cause().is_none());
    });
}

#[test]
fn a_nursery_entered_in_an_unrecorded_timeout_is_cancelled_by_it() {
    block_on(async {
        let mut seen = String::new();
        let out = wherefore::move_on_after(secs(1), async {
            wherefore::nursery(async |s: Nursery<'_, Cancelled>| {
                s.start_soon(async {
                    let checked = wherefore::sleep(secs(5)).await;
                    seen = observed(checked.clone());
                    checked
                })
                .unwrap();
                Ok(())
            })
            .await
        })
        .await;
        // The member's cancellation is not a failure, and the timeout's cancellation, which
        // reached the nursery, is the timeout's to absorb (S18): the timeout ends timed out.
        assert!(matches!(out, Ok(None)));
        assert_eq!(seen, "parent / root: timeout");
    });
}

/// Invariant 3 of `scope_tree/unrecorded.rs`: the timer wakes the task that polled the scope
/// last. The body here returns `Pending` without arranging a wake-up of its own (it only looks
/// at its scope), so only the timer can wake the task; the first poll went through a waker that
/// wakes nothing.
#[test]
fn the_deadline_wakes_the_task_that_polled_the_unrecorded_scope_last() {
    use std::future::Future;
    use std::task::{Context, Poll};
    block_on(async {
        let mut fut = Box::pin(wherefore::move_on_after(secs(1), async {
            std::future::poll_fn(|_| match wherefore::check_cancelled() {
                Err(c) => Poll::Ready(Err::<(), _>(c)),
                Ok(()) => Poll::Pending,
            })
            .await
        }));
        let nowhere = futures::task::noop_waker();
        let first = fut.as_mut().poll(&mut Context::from_waker(&nowhere));
        assert!(first.is_pending());
        let start = wherefore::now();
        assert_eq!(fut.await.unwrap(), None, "woken at its deadline, timed out");
        assert_eq!(wherefore::now() - start, secs(1));
    });
}

/// A body that sleeps waits in the parent of its unrecorded timeout (the same cancellation
/// while the timeout is unrecorded), so the timeout stays out of the tree while its body sleeps;
/// its deadline then wakes the sleep with its own cause. Returns what the body saw and how many
/// scopes the tree drew while it slept.
async fn sleeping_in_a_timeout() -> (String, usize) {
    let request = Scope::named("request");
    let handle = request.handle();
    let mut drawn = 0;
    let mut seen = String::new();
    let out = request
        .run(wherefore::nursery(async |s: Nursery<'_, Cancelled>| {
            s.start_soon(async {
                wherefore::sleep(millis(500)).await?;
                let tree = handle.tree().to_string();
                drawn = tree
                    .lines()
                    .filter(|l| l.trim_start().starts_with("scope"))
                    .count();
                Ok(())
            })
            .unwrap();
            let out = wherefore::move_on_after(secs(1), async {
                let slept = wherefore::sleep(secs(5)).await;
                seen = observed(slept.clone());
                slept
            })
            .await?;
            assert_eq!(out, None, "its own timeout: absorbed");
            Ok(())
        }))
        .await;
    assert!(matches!(out, Ok(Some(()))));
    (seen, drawn)
}

#[test]
fn a_body_sleeping_in_an_unrecorded_timeout_waits_in_its_parent_until_the_deadline() {
    let (seen, drawn) = block_on(sleeping_in_a_timeout());
    assert_eq!(seen, "timeout / root: timeout");
    assert_eq!(
        drawn, 2,
        "the request and its nursery; the timeout is not recorded"
    );
    let (journaled_seen, journaled_drawn) = wherefore::testing::run(sleeping_in_a_timeout())
        .into_output()
        .unwrap();
    assert_eq!(
        journaled_seen, seen,
        "the same cause with every scope recorded"
    );
    assert_eq!(journaled_drawn, 3, "recorded under a journal: drawn");
}

/// A name waits in the timeout's future while its scope is unrecorded, and its record takes it
/// however the record comes to be made: its deadline firing, its body asking for its scope (a
/// cancellation point that fails, a scope entered inside), or a handle. Unrecorded
/// (`block_on`) and recorded from the start (under a journal), the same names.
#[test]
fn a_named_timeout_keeps_its_name_however_it_comes_to_be_recorded() {
    let scenario = || async {
        let mut seen = Vec::new();
        // The deadline fires: the cause the body observes names the scope.
        let out = wherefore::move_on_after(secs(1), async {
            let Err(cancelled) = wherefore::sleep(secs(5)).await else {
                panic!("the deadline fires first")
            };
            Err::<(), _>(cancelled)
        })
        .named("fires")
        .await;
        assert!(matches!(out, Ok(None)));
        // The body asks for its scope.
        let me = wherefore::move_on_after(secs(10), async {
            Ok::<_, Cancelled>(CancelHandle::current().unwrap())
        })
        .named("asked")
        .await
        .unwrap()
        .unwrap();
        seen.push(me.scope().to_string());
        // A scope entered inside (its parent must be recorded): its parent link names it.
        let out = wherefore::move_on_after(secs(1), async {
            Scope::new()
                .run(async {
                    let Err(cancelled) = wherefore::sleep(secs(5)).await else {
                        panic!("the deadline fires first")
                    };
                    let Cause::Parent(link) = cancelled.cause() else {
                        panic!("the inner scope is cancelled through its parent")
                    };
                    seen.push(link.scope().to_string());
                    Err::<(), _>(cancelled)
                })
                .await
        })
        .named("parent")
        .await;
        assert!(matches!(out, Ok(None)));
        // A handle taken while it runs unrecorded.
        let (tx, rx) = oneshot::channel::<()>();
        let mut waiting = Box::pin(
            wherefore::move_on_after(secs(10), async {
                let _ = rx.await;
                wherefore::check_cancelled()
            })
            .named("handled"),
        );
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        let handle = waiting.handle();
        handle.cancel();
        let _ = tx.send(());
        assert_eq!(waiting.await.unwrap(), None);
        seen.push(handle.scope().to_string());
        seen
    };
    let expected = ["scope \"asked\"", "scope \"parent\"", "scope \"handled\""];
    assert_eq!(block_on(scenario()), expected, "unrecorded until asked");
    let report = wherefore::testing::run(scenario());
    assert_eq!(
        report.output().unwrap(),
        &expected,
        "recorded from the start"
    );
    let journal = report.journal().to_string();
    for name in ["fires", "asked", "parent", "handled"] {
        assert!(
            journal.contains(&format!("enter    scope \"{name}\"")),
            "{name}: {journal}"
        );
    }
    assert!(
        journal.contains("cancel   scope \"fires\": scope \"fires\" timed out after 1s"),
        "{journal}"
    );
}
