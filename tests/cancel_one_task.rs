//! Cancelling one member through its `JoinHandle` (issue 26): the member alone ends
//! `TaskExit::Cancelled` with an explicit cause, wherever it is blocked; its siblings and its
//! nursery carry on; the request has no effect once the member ended (S15) and returns false
//! when the member was cancelled already; the member's exit stays readable after the joiner's
//! own cancellation (S8).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use wherefore::{Cancelled, Cause, Nursery, NurseryError, Scope, TaskExit};

#[test]
fn a_member_waiting_at_a_cancellation_point_is_cancelled_alone() {
    let report = wherefore::testing::run(async {
        wherefore::NurseryBuilder::named("jobs")
            .run(async |n: Nursery<'_, Cancelled>| {
                let start = wherefore::now();
                let mut slow = n.spawn_named("slow", wherefore::sleep(secs(60))).unwrap();
                let mut sibling = n.spawn_named("sibling", wherefore::sleep(secs(2))).unwrap();
                wherefore::sleep(secs(1)).await?;
                assert!(
                    slow.cancel_with("no longer needed"),
                    "it was running, uncancelled"
                );
                let exit = slow.join().await?;
                let TaskExit::Cancelled(Cause::Explicit(explicit)) = &exit else {
                    panic!("cancelled explicitly, not {exit}");
                };
                assert_eq!(
                    format!("{:?}", explicit.tag().unwrap()),
                    "\"no longer needed\""
                );
                assert_eq!(
                    explicit.scope().name(),
                    Some("slow"),
                    "the member's own scope"
                );
                assert_eq!(wherefore::now() - start, secs(1), "it ended at once");
                assert!(matches!(sibling.join().await?, TaskExit::Completed(())));
                assert_eq!(
                    wherefore::now() - start,
                    secs(2),
                    "the sibling ran its course"
                );
                Ok(())
            })
            .await
    });
    assert!(
        matches!(report.output(), Some(Ok(()))),
        "a member cancelled alone is no failure of its nursery"
    );
    assert!(report.journal().observed_by("sibling").is_empty());
    assert_eq!(report.journal().observed_by("slow").len(), 1);
}

#[test]
fn a_member_blocked_in_a_foreign_future_is_dropped_there() {
    let dropped = AtomicBool::new(false);
    block_on(async {
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let dropped = &dropped;
            let mut reader = n
                .spawn(async move {
                    let _noticed = OnDrop(|| dropped.store(true, Ordering::Relaxed));
                    std::future::pending::<()>().await; // knows nothing of wherefore
                    Ok(())
                })
                .unwrap();
            wherefore::checkpoint().await?; // it runs, and blocks
            assert!(reader.cancel());
            let exit = reader.join().await?;
            assert!(
                matches!(exit, TaskExit::Cancelled(Cause::Explicit(_))),
                "{exit}"
            );
            Ok(())
        })
        .await
        .unwrap();
    });
    assert!(
        dropped.load(Ordering::Relaxed),
        "its future was dropped (S19)"
    );
}

#[test]
fn scopes_the_member_entered_are_cancelled_with_it() {
    block_on(async {
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let mut fetch = n
                .spawn_named(
                    "fetch",
                    Scope::named("retry").run(async {
                        wherefore::sleep(secs(60)).await?;
                        Ok::<_, Cancelled>(())
                    }),
                )
                .unwrap();
            wherefore::checkpoint().await?;
            assert!(fetch.cancel());
            // The scope "retry" absorbs nothing: the cancellation is its parent's, the member's.
            let exit = fetch.join().await?;
            let TaskExit::Cancelled(cause) = &exit else {
                panic!("cancelled, not {exit}");
            };
            assert!(
                cause
                    .to_string()
                    .starts_with("parent scope \"fetch\" was cancelled: explicit cancel at "),
                "{cause}"
            );
            Ok(())
        })
        .await
        .unwrap();
    });
}

#[test]
fn a_member_cancelled_with_its_nursery_reads_the_nursery_cause() {
    block_on(async {
        let result = wherefore::NurseryBuilder::named("pool")
            .run(async |n: Nursery<'_, Cancelled>| {
                let child = n
                    .spawn_named(
                        "child",
                        Scope::named("step").run(wherefore::sleep(secs(60))),
                    )
                    .unwrap();
                wherefore::checkpoint().await?; // the child enters "step": its scope is recorded
                n.cancel_handle().cancel_with("stop");
                assert!(!child.cancel(), "already cancelled, with its nursery");
                let cause = child.cause().unwrap();
                assert!(
                    cause.to_string().starts_with("explicit (\"stop\") at "),
                    "the member's own scope adds no link to the chain: {cause}"
                );
                wherefore::checkpoint().await
            })
            .await;
        assert!(matches!(result, Err(NurseryError::Cancelled(_))));
    });
}

#[test]
fn cancelling_a_member_that_ended_has_no_effect() {
    block_on(async {
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let mut quick = n.spawn(async { Ok(7) }).unwrap();
            assert!(matches!(quick.join().await?, TaskExit::Completed(7)));
            assert!(!quick.cancel(), "S15: an ended member is not cancelled");
            assert!(quick.cause().is_none());
            let scope = quick.cancel_handle();
            assert!(!scope.cancel(), "its scope exited");
            assert!(!scope.is_cancelled());
            assert!(matches!(quick.exit(), Some(TaskExit::Completed(()))));
            Ok(())
        })
        .await
        .unwrap();
    });
}

#[test]
fn cancelling_through_the_scope_handle_from_another_thread_reaches_a_blocked_member() {
    let exit = wherefore::run(async {
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let mut blocked = n
                .spawn_named("blocked", async {
                    std::future::pending::<()>().await;
                    Ok(())
                })
                .unwrap();
            wherefore::checkpoint().await?; // blocked in a foreign future
            let scope = blocked.cancel_handle();
            let canceller = std::thread::spawn(move || scope.cancel_with("from a thread"));
            let exit = blocked.join().await?;
            assert!(canceller.join().unwrap());
            Ok(exit.to_string())
        })
        .await
        .unwrap()
    });
    assert!(
        exit.starts_with("cancelled: explicit (\"from a thread\") at "),
        "{exit}"
    );
}

#[test]
fn cancel_inside_the_member_cancels_it_alone() {
    block_on(async {
        let ran_on = Mutex::new(false);
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let mut quitter = n
                .spawn(async {
                    wherefore::CancelHandle::current()
                        .unwrap()
                        .cancel_with("giving up");
                    wherefore::checkpoint().await?;
                    Ok(())
                })
                .unwrap();
            let ran_on = &ran_on;
            let mut sibling = n
                .spawn(async move {
                    wherefore::sleep(secs(1)).await?;
                    *ran_on.lock().unwrap() = true;
                    Ok(())
                })
                .unwrap();
            assert!(matches!(quitter.join().await?, TaskExit::Cancelled(_)));
            assert!(matches!(sibling.join().await?, TaskExit::Completed(())));
            Ok(())
        })
        .await
        .unwrap();
        assert!(*ran_on.lock().unwrap());
    });
}

#[test]
fn the_childs_exit_stays_readable_after_the_joiners_own_cancellation() {
    block_on(async {
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let mut child = n.spawn(async { Ok("result") }).unwrap();
            wherefore::checkpoint().await?; // the child has finished
            let joined = Scope::new()
                .run(async {
                    wherefore::CancelHandle::current().unwrap().cancel(); // my own scope
                    Ok::<_, Cancelled>(child.join().await)
                })
                .await?;
            // S8: my own cancellation won, though the child had finished...
            assert!(matches!(joined, Some(Err(_))));
            // ...and the child's exit was not lost.
            assert!(matches!(child.exit(), Some(TaskExit::Completed(()))));
            assert!(matches!(
                child.try_join(),
                Some(TaskExit::Completed("result"))
            ));
            assert!(
                matches!(child.join().await?, TaskExit::Joined),
                "taken already"
            );
            Ok(())
        })
        .await
        .unwrap();
    });
}

#[test]
fn a_cancel_racing_the_members_end_on_another_thread_is_either_effective_or_nothing() {
    // The member ends on the runtime's thread while a thread cancels it: the request either
    // took effect (the member saw it, or it had already returned its value: S7) or found it
    // ended (false, S15). Never a lost wake-up: the run always finishes.
    for _ in 0..200 {
        let took = Arc::new(AtomicBool::new(false));
        let took_by_thread = took.clone();
        let exit = wherefore::run(async {
            wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
                let mut child = n
                    .spawn(async {
                        for _ in 0..3 {
                            wherefore::checkpoint().await?;
                        }
                        Ok(())
                    })
                    .unwrap();
                let scope = child.cancel_handle();
                let canceller = std::thread::spawn(move || {
                    took_by_thread.store(scope.cancel(), Ordering::Relaxed);
                });
                let exit = child.join().await?;
                canceller.join().unwrap();
                Ok(exit)
            })
            .await
            .unwrap()
        });
        match exit {
            TaskExit::Completed(()) | TaskExit::Cancelled(_) => {}
            other => panic!("unexpected exit {other}"),
        }
        if matches!(exit, TaskExit::Cancelled(_)) {
            assert!(
                took.load(Ordering::Relaxed),
                "cancelled only by an effective request"
            );
        }
    }
}

/// Runs a closure when dropped.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

#[test]
fn a_yield_that_wakes_another_waker_does_not_hide_the_members_wait_from_its_handle() {
    use futures::FutureExt;
    block_on(async {
        let start = wherefore::now();
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let mut member = n
                .spawn(async {
                    // A yield polled by hand wakes a waker that is not the member's...
                    let _ = wherefore::checkpoint().now_or_never();
                    // ...and the member then waits in its nursery's scope, unrecorded.
                    wherefore::sleep(secs(3600)).await
                })
                .unwrap();
            wherefore::sleep(secs(1)).await?;
            assert!(member.cancel());
            assert!(matches!(member.join().await?, TaskExit::Cancelled(_)));
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(
            wherefore::now() - start,
            secs(1),
            "woken by its cancellation, not its sleep"
        );
    });
}

#[test]
fn a_member_that_cancels_itself_through_its_handle_sees_it_at_once() {
    block_on(async {
        let slot: Mutex<Option<wherefore::JoinHandle<bool>>> = Mutex::new(None);
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let slot = &slot;
            let member = n
                .spawn(async move {
                    wherefore::checkpoint().await?; // the handle is in the slot by now
                    let took = slot
                        .lock()
                        .unwrap()
                        .as_ref()
                        .unwrap()
                        .cancel_with("give up");
                    Ok(took && wherefore::check_cancelled().is_err())
                })
                .unwrap();
            *slot.lock().unwrap() = Some(member);
            Ok(())
        })
        .await
        .unwrap();
        let mut member = slot.into_inner().unwrap().unwrap();
        assert!(matches!(member.try_join(), Some(TaskExit::Completed(true))));
    });
}

#[test]
fn a_timeout_inside_a_member_with_a_handle_stays_unrecorded() {
    block_on(async {
        let pool = wherefore::NurseryBuilder::named("pool");
        pool.run(async |n: Nursery<'_, Cancelled>| {
            let mut member = n
                .spawn_named(
                    "fetch",
                    wherefore::move_on_after(secs(3600), wherefore::sleep(secs(60))),
                )
                .unwrap();
            wherefore::sleep(secs(1)).await?;
            let tree = n.cancel_handle().tree().to_string();
            // The member's own scope is recorded (the timeout entered under it); the timeout is
            // not: a snapshot does not show an unrecorded scope.
            assert_eq!(
                tree,
                "scope \"pool\" (running)\n  task \"fetch\" blocked at sleep in scope \"fetch\"\n  scope \"fetch\" (running)\n",
                "{tree}"
            );
            member.join().await?;
            Ok(())
        })
        .await
        .unwrap();
    });
}
