//! Nurseries: members, failures, panics, spawning, and the two kinds of cancellation.
mod common;

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use common::*;
use wherefore::{
    Cancelled, Cause, FailureKind, LocalNursery, Nursery, NurseryBuilder, NurseryError, Scope,
    SpawnError, TaskExit,
};

#[test]
fn a_nursery_returns_only_after_every_member_finished() {
    let log = Mutex::new(Vec::new());
    block_on(async {
        let out = wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            for (name, delay) in [("slow", 3), ("fast", 1), ("middle", 2)] {
                let log = &log;
                n.start_soon_named(name, async move {
                    wherefore::sleep(secs(delay)).await?;
                    log.lock().unwrap().push(name);
                    Ok(())
                })
                .unwrap();
            }
            Ok("body done")
        })
        .await;
        assert_eq!(out.unwrap(), "body done");
        log.lock().unwrap().push("nursery returned");
    });
    assert_eq!(
        log.into_inner().unwrap(),
        ["fast", "middle", "slow", "nursery returned"]
    );
}

#[test]
fn members_can_spawn_siblings_through_a_clone_of_the_handle() {
    block_on(async {
        let count = std::cell::Cell::new(0);
        wherefore::nursery_local(async |n: LocalNursery<'_, Cancelled>| {
            let (count, spawner) = (&count, n.clone());
            n.start_soon(async move {
                for _ in 0..3 {
                    spawner
                        .start_soon(async move {
                            count.set(count.get() + 1);
                            Ok(())
                        })
                        .unwrap();
                }
                Ok(())
            })
            .unwrap();
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(count.get(), 3);
    });
}

/// A member fails while another is in a shielded cleanup: the cleanup finishes, the failure is
/// reported with the failing task's identity, and the survivor saw the sibling cause.
#[test]
fn a_failing_member_does_not_cut_short_a_siblings_shielded_cleanup() {
    let log = Mutex::new(Vec::new());
    block_on(async {
        let start = wherefore::now();
        let out = wherefore::nursery(async |n: Nursery<'_, BoxError>| {
            let log = &log;
            n.start_soon_named("writer", async move {
                let cause = wherefore::cancelled().await;
                log.lock()
                    .unwrap()
                    .push(format!("writer cancelled: {cause}"));
                wherefore::shield(wherefore::sleep(secs(2))).await?;
                log.lock()
                    .unwrap()
                    .push(format!("cleanup done at t={:?}", wherefore::now() - start));
                Err::<(), BoxError>(Box::new(wherefore::checkpoint().await.unwrap_err()))
            })
            .unwrap();
            n.start_soon_named("fetch", async {
                wherefore::sleep(secs(1)).await?;
                Err::<(), BoxError>("connection refused".into())
            })
            .unwrap();
            Ok(())
        })
        .await;
        let failures = out.unwrap_err().into_failures();
        assert_eq!(failures.len(), 1, "the writer was cancelled, not failed");
        assert_eq!(failures[0].task().name(), Some("fetch"));
        assert!(
            matches!(failures[0].kind(), FailureKind::Error(e) if e.to_string() == "connection refused")
        );
        assert_eq!(wherefore::now() - start, secs(3));
    });
    let log = log.into_inner().unwrap();
    assert!(
        log[0]
            .starts_with("writer cancelled: sibling task \"fetch\" (spawned at tests/nursery.rs:"),
        "{}",
        log[0]
    );
    assert!(
        log[0].ends_with(") failed: connection refused"),
        "{}",
        log[0]
    );
    assert_eq!(log[1], "cleanup done at t=3s");
}

#[test]
fn every_failure_is_reported_in_order() {
    block_on(async {
        let err = wherefore::nursery(async |n: Nursery<'_, BoxError>| {
            n.start_soon_named("second", async {
                // Cancelled by the first failure, but fails anyway during its cleanup.
                let _ = wherefore::cancelled().await;
                wherefore::shield(wherefore::sleep(secs(1))).await?;
                Err::<(), BoxError>("cleanup failed".into())
            })
            .unwrap();
            n.start_soon_named("first", async {
                wherefore::sleep(secs(1)).await?;
                Err::<(), BoxError>("boom".into())
            })
            .unwrap();
            Ok(())
        })
        .await
        .unwrap_err();
        let names: Vec<_> = err
            .failures()
            .iter()
            .map(|f| f.task().name().unwrap())
            .collect();
        assert_eq!(names, ["first", "second"]);
        assert!(
            err.to_string()
                .starts_with("2 nursery members failed: task \"first\" (spawned at ")
        );
    });
}

#[test]
fn a_failing_body_cancels_the_members_with_the_body_as_the_sibling() {
    block_on(async {
        let seen = Mutex::new(None);
        let err = wherefore::nursery(async |n: Nursery<'_, BoxError>| {
            let seen = &seen;
            n.start_soon(async move {
                *seen.lock().unwrap() = Some(wherefore::cancelled().await);
                Ok(())
            })
            .unwrap();
            wherefore::checkpoint().await?;
            Err::<(), _>("body gave up".into())
        })
        .await
        .unwrap_err();
        let body = err.failures()[0].task().name().unwrap().to_owned();
        assert!(body.starts_with("body of scope#"), "{body}");
        let Some(Cause::SiblingError(sibling)) = seen.lock().unwrap().take() else {
            panic!("no sibling cause")
        };
        assert_eq!(sibling.task().name(), Some(body.as_str()));
        assert_eq!(sibling.message(), "body gave up");
    });
}

/// A failing body is named after its nursery, so that nested nurseries' bodies, and a member
/// that happens to be called "body", read apart.
#[test]
fn a_failing_body_is_named_after_its_nursery() {
    block_on(async {
        let err = NurseryBuilder::named("outer")
            .run(async |n: Nursery<'_, BoxError>| {
                n.start_soon_named("body", async { Ok(()) }).unwrap(); // a member called "body"
                NurseryBuilder::named("inner")
                    .run(async |_: Nursery<'_, BoxError>| Err::<(), _>("inner gave up".into()))
                    .await
                    .map_err(|e| -> BoxError { e.to_string().into() })
            })
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string().split(" (spawned at ").next(),
            Some("a nursery member failed: task \"body of outer\"")
        );
        let text = err.to_string();
        assert!(
            text.contains("failed: a nursery member failed: task \"body of inner\" (spawned at "),
            "{text}"
        );
        assert!(text.ends_with(") failed: inner gave up"), "{text}");
    });
}

/// Default panic mode (S11): siblings are cancelled with `SiblingPanic`, every member finishes
/// (shielded cleanup included), then the panic resumes.
#[test]
fn a_panic_resumes_after_every_sibling_finished() {
    let log = Mutex::new(Vec::new());
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        block_on(async {
            let _ = wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
                let log = &log;
                n.start_soon_named("survivor", async move {
                    let cause = wherefore::cancelled().await;
                    log.lock().unwrap().push(cause.kind());
                    wherefore::shield(wherefore::sleep(secs(5))).await?;
                    log.lock().unwrap().push("cleanup finished");
                    Ok(())
                })
                .unwrap();
                n.start_soon_named("crasher", async {
                    wherefore::sleep(secs(1)).await?;
                    if true {
                        panic!("boom");
                    }
                    Ok(())
                })
                .unwrap();
                Ok(())
            })
            .await;
            log.lock().unwrap().push("nursery returned");
        })
    }));
    let payload = panicked.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    assert_eq!(
        log.into_inner().unwrap(),
        ["sibling-panic", "cleanup finished"]
    );
}

#[test]
fn collect_panics_mode_reports_a_panic_as_a_failure() {
    block_on(async {
        let seen = Mutex::new(None);
        let err = NurseryBuilder::named("workers")
            .collect_panics()
            .run(async |n: Nursery<'_, Cancelled>| {
                let seen = &seen;
                n.start_soon(async move {
                    *seen.lock().unwrap() = Some(wherefore::cancelled().await);
                    Ok(())
                })
                .unwrap();
                n.start_soon_named("crasher", async {
                    panic!("index out of range") as Result<(), _>
                })
                .unwrap();
                Ok(())
            })
            .await
            .unwrap_err();
        let failures = err.into_failures();
        assert_eq!(failures.len(), 1);
        assert!(matches!(failures[0].kind(), FailureKind::Panic(m) if m == "index out of range"));
        let cause = seen.lock().unwrap().take().unwrap();
        assert!(
            cause
                .to_string()
                .starts_with("sibling task \"crasher\" (spawned at tests/nursery.rs:")
        );
        assert!(
            cause
                .to_string()
                .ends_with(") panicked: index out of range")
        );
    });
}

#[test]
fn spawning_into_a_finished_nursery_hands_the_future_back() {
    block_on(async {
        let escaped = wherefore::nursery(async |n: Nursery<'_, Cancelled>| Ok(n.clone()))
            .await
            .unwrap();
        let late = escaped.spawn_named("late", async { Ok("handed back") });
        let Err(SpawnError::Closed(fut)) = late else {
            panic!("a finished nursery accepted a member")
        };
        assert_eq!(fut.await.unwrap(), "handed back");
    });
}

/// S4/S5: a member spawned into a cancelled but running nursery runs to its first cancellation
/// point and sees the nursery's cause.
#[test]
fn a_member_spawned_into_a_cancelled_nursery_runs_to_its_first_cancellation_point() {
    block_on(async {
        let steps = Mutex::new(Vec::new());
        let out = wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            n.cancel_handle().cancel_with("closing");
            let steps = &steps;
            let mut late = n
                .spawn(async move {
                    steps.lock().unwrap().push("ran");
                    wherefore::checkpoint().await?;
                    steps.lock().unwrap().push("passed the checkpoint");
                    Ok(())
                })
                .unwrap();
            let exit = wherefore::shield(late.join()).await?;
            assert!(matches!(exit, TaskExit::Cancelled(Cause::Explicit(_))));
            wherefore::checkpoint().await
        })
        .await;
        assert!(matches!(out, Err(NurseryError::Cancelled(_))));
        assert_eq!(steps.into_inner().unwrap(), ["ran"]);
    });
}

/// S3: failures win; the enclosing cancellation stays pending for the next cancellation point.
#[test]
fn failures_win_over_an_outer_cancellation_which_stays_pending() {
    block_on(async {
        let outer = Scope::named("outer");
        let outer_handle = outer.handle();
        let out = outer
            .run(async {
                let result = wherefore::nursery(async |n: Nursery<'_, BoxError>| {
                    n.start_soon_named("fails during cleanup", async {
                        let _ = wherefore::cancelled().await;
                        Err::<(), BoxError>("flush failed".into())
                    })
                    .unwrap();
                    outer_handle.cancel_with("shutdown");
                    wherefore::checkpoint().await?;
                    Ok(())
                })
                .await;
                let err = result.unwrap_err();
                assert_eq!(err.failures().len(), 1, "only the real failure: {err}");
                assert!(
                    wherefore::check_cancelled().is_err(),
                    "the outer cancel is still pending"
                );
                wherefore::checkpoint().await
            })
            .await;
        assert!(matches!(out, Ok(None)));
    });
}

/// The asyncio puzzle, part one: the task I await was cancelled. `join` succeeds (I am fine) and
/// tells me the child's exit was a cancellation, and why.
#[test]
fn joining_a_child_that_was_cancelled_gives_its_exit_not_my_cancellation() {
    block_on(async {
        let handle_cell = Mutex::new(None);
        wherefore::nursery(async |n: Nursery<'_, NurseryError<Cancelled>>| {
            let inner = Scope::named("inner");
            let inner_handle = inner.handle();
            let cell = &handle_cell;
            drop(
                n.spawn(inner.run(wherefore::nursery(
                    async move |inner_n: Nursery<'_, Cancelled>| {
                        let child = inner_n
                            .spawn_named("child", wherefore::sleep(secs(3600)))
                            .unwrap();
                        *cell.lock().unwrap() = Some(child);
                        Ok(())
                    },
                )))
                .unwrap(),
            );
            wherefore::checkpoint().await?; // let the inner nursery start its child
            let mut child = handle_cell.lock().unwrap().take().unwrap();
            inner_handle.cancel_with("stop the child");
            let exit = child.join().await?; // Ok: *I* am not cancelled
            let TaskExit::Cancelled(cause) = exit else {
                panic!("child not cancelled: {exit}")
            };
            assert!(cause.to_string().starts_with(
                "parent scope \"inner\" was cancelled: explicit (\"stop the child\")"
            ));
            Ok(())
        })
        .await
        .unwrap();
    });
}

/// The asyncio puzzle, part two: I am cancelled while awaiting a child. `join` fails with *my*
/// cancellation, and the child is untouched.
#[test]
fn being_cancelled_while_joining_gives_my_cancellation_not_the_childs_exit() {
    block_on(async {
        let child_finished_at = std::cell::Cell::new(None);
        let start = wherefore::now();
        wherefore::nursery_local(async |n: LocalNursery<'_, Cancelled>| {
            let finished = &child_finished_at;
            let mut child = n
                .spawn_named("child", async move {
                    wherefore::sleep(secs(10)).await?;
                    finished.set(Some(wherefore::now() - start));
                    Ok("child finished")
                })
                .unwrap();
            let me = Scope::named("me");
            let me_handle = me.handle();
            let waited = me
                .run(async {
                    let canceller = async {
                        wherefore::sleep(secs(1)).await?;
                        me_handle.cancel_with("impatient");
                        Ok::<_, Cancelled>(())
                    };
                    let (joined, _) = futures::join!(child.join(), canceller);
                    let own = joined.unwrap_err(); // my cancellation, not the child's exit
                    assert!(
                        own.cause()
                            .to_string()
                            .starts_with("explicit (\"impatient\")")
                    );
                    Err::<(), _>(own)
                })
                .await;
            assert!(
                matches!(waited, Ok(None)),
                "my scope absorbed my cancellation"
            );
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(
            child_finished_at.get(),
            Some(secs(10)),
            "the child ran to completion"
        );
    });
}

#[test]
fn dropping_a_join_handle_does_not_detach_or_cancel_the_member() {
    block_on(async {
        let done = std::cell::Cell::new(false);
        wherefore::nursery_local(async |n: LocalNursery<'_, Cancelled>| {
            let done = &done;
            drop(
                n.spawn(async move {
                    wherefore::sleep(secs(1)).await?;
                    done.set(true);
                    Ok(())
                })
                .unwrap(),
            );
            Ok(())
        })
        .await
        .unwrap();
        assert!(done.get());
    });
}

#[test]
fn dropping_an_unfinished_nursery_drops_its_members_and_refuses_spawns() {
    block_on(async {
        let dropped = std::cell::Cell::new(false);
        struct SetOnDrop<'a>(&'a std::cell::Cell<bool>);
        impl Drop for SetOnDrop<'_> {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let handle = std::rc::Rc::new(RefCell::new(None));
        let kept = handle.clone();
        let dropped_flag = &dropped;
        let member_handle = std::rc::Rc::new(RefCell::new(None));
        let member_slot = member_handle.clone();
        let out = wherefore::move_on_after(secs(1), async {
            wherefore::nursery_local(async move |n: LocalNursery<'_, Cancelled>| {
                *kept.borrow_mut() = Some(n.clone());
                let guard = SetOnDrop(dropped_flag);
                let member = n
                    .spawn(async move {
                        let _guard = guard;
                        std::future::pending::<()>().await; // ignores cancellation
                        Ok(())
                    })
                    .unwrap();
                *member_slot.borrow_mut() = Some(member);
                Ok(())
            })
            .await
        });
        // Poll the timeout only until the nursery is running, then drop it.
        let mut out = Box::pin(out);
        let _ = futures::poll!(out.as_mut());
        drop(out);
        assert!(dropped.get(), "the member was dropped with the nursery");
        let mut member = member_handle.borrow_mut().take().unwrap();
        assert!(matches!(member.try_join(), Some(TaskExit::Dropped)));
        let late = handle.borrow_mut().take().unwrap().spawn(async { Ok(()) });
        assert!(matches!(late, Err(SpawnError::Closed(_))));
    });
}

/// S8: joining a member that failed gives its exit (with the error's text) and never takes the
/// failure away from the nursery, which still reports it.
#[test]
fn joining_a_failed_member_does_not_consume_its_failure() {
    block_on(async {
        let err = wherefore::nursery(async |n: Nursery<'_, BoxError>| {
            let mut failing = n
                .spawn_named("db", async { Err::<(), BoxError>("disk full".into()) })
                .unwrap();
            let exit = wherefore::shield(failing.join()).await?;
            assert!(matches!(exit, TaskExit::Failed { ref message } if message == "disk full"));
            Ok(())
        })
        .await
        .unwrap_err();
        assert_eq!(err.failures().len(), 1);
        assert_eq!(err.failures()[0].task().name(), Some("db"));
    });
}

/// S18 (CPython's TaskGroup bug, fixed in 2026): the nursery is cancelled through its own
/// handle, its member cleans up in a shield, and meanwhile the deadline of an enclosing
/// `fail_after` passes. The timeout belongs to `fail_after`, which reports it.
#[test]
fn a_timeout_passing_while_a_cancelled_nursery_cleans_up_is_not_swallowed() {
    block_on(async {
        let start = wherefore::now();
        let out = wherefore::fail_after(
            secs(5),
            wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
                n.start_soon_named("cleaner", async {
                    let _ = wherefore::cancelled().await;
                    wherefore::shield(wherefore::sleep(secs(10))).await?; // the deadline passes
                    Ok(())
                })
                .unwrap();
                n.cancel_handle().cancel_with("done early");
                Ok("body value")
            }),
        )
        .await;
        let Err(timed_out) = out else {
            panic!("the timeout was swallowed: {out:?}")
        };
        assert!(
            timed_out.to_string().contains("timed out after 5s"),
            "{timed_out}"
        );
        assert_eq!(
            wherefore::now() - start,
            secs(10),
            "the cleanup was not cut short"
        );
    });
}

/// S18: a body that returns normally while an enclosing scope's cancellation reaches the members
/// does not end the cancellation there: the nursery's result carries it, with its chain, and the
/// enclosing scope absorbs it; nothing after the nursery in that scope runs.
#[test]
fn an_outer_cancellation_reaching_the_members_is_handed_on_whatever_the_body_returned() {
    block_on(async {
        let outer = Scope::named("outer");
        let stop = outer.handle();
        let after_the_nursery = Mutex::new(false);
        let out = outer
            .run(async {
                let inner = wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
                    n.start_soon_named("waiter", wherefore::sleep(secs(60)))
                        .unwrap();
                    n.start_soon_named("stopper", async {
                        wherefore::sleep(secs(1)).await?;
                        stop.cancel_with("stop");
                        Ok(())
                    })
                    .unwrap();
                    Ok("the body returned") // before either member ended
                })
                .await;
                let Err(NurseryError::Cancelled(cancelled)) = &inner else {
                    panic!("the outer cancellation was swallowed: {inner:?}")
                };
                assert!(
                    cancelled
                        .cause()
                        .to_string()
                        .starts_with("parent scope \"outer\" was cancelled: explicit (\"stop\")"),
                    "{}",
                    cancelled.cause()
                );
                inner?;
                *after_the_nursery.lock().unwrap() = true;
                Ok::<_, NurseryError<Cancelled>>(())
            })
            .await;
        assert!(
            matches!(out, Ok(None)),
            "the outer scope absorbed its own cancellation"
        );
        assert!(!*after_the_nursery.lock().unwrap());
    });
}

/// S18 with a shield: the nursery's scope is shielded while the outer scope is cancelled, so the
/// members carry on; when the body lowers the shield, the outer cancellation reaches them, and
/// the nursery hands it on to the outer scope instead of ending normally.
#[test]
fn a_nursery_that_lowers_its_shield_hands_the_outer_cancellation_on() {
    block_on(async {
        let start = wherefore::now();
        let outer = Scope::named("outer");
        let stop = outer.handle();
        let out = outer
            .run(wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
                let own = n.cancel_handle();
                own.set_shielded(true);
                n.start_soon_named("worker", wherefore::sleep(secs(60)))
                    .unwrap();
                stop.cancel_with("shutdown");
                wherefore::sleep(secs(1)).await?; // shielded: not cancelled
                assert!(!own.is_cancelled());
                own.set_shielded(false);
                Ok(())
            }))
            .await;
        assert!(matches!(out, Ok(None)), "{out:?}");
        assert_eq!(
            wherefore::now() - start,
            secs(1),
            "the worker ended when the shield fell"
        );
    });
}

/// A cancellation that belongs to the nursery alone (its own handle, no ancestor cancelled) is
/// absorbed: the body's value comes back.
#[test]
fn a_cancellation_of_the_nursery_alone_is_absorbed() {
    block_on(async {
        let out = wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            n.start_soon_named("waiter", wherefore::sleep(secs(60)))
                .unwrap();
            n.cancel_handle().cancel_with("enough");
            Ok("the body's value")
        })
        .await;
        assert_eq!(out.unwrap(), "the body's value");
    });
}

#[test]
fn a_nursery_polled_again_after_making_its_body_panicked_panics_rather_than_hangs() {
    use std::future::{Future, Ready};
    use std::task::{Context, Waker};

    let mut nursery = Box::pin(wherefore::nursery(
        |_: Nursery<'_, Cancelled>| -> Ready<Result<(), Cancelled>> { panic!("no body today") },
    ));
    let mut cx = Context::from_waker(Waker::noop());
    let made = catch_unwind(AssertUnwindSafe(|| nursery.as_mut().poll(&mut cx)));
    let payload = made.expect_err("making the body panicked");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"no body today"));

    let again = catch_unwind(AssertUnwindSafe(|| nursery.as_mut().poll(&mut cx)));
    let payload = again.expect_err("polled again, it panics");
    let message = payload
        .downcast_ref::<String>()
        .expect("a formatted message");
    assert!(
        message.contains("polled after making its body panicked"),
        "{message}"
    );
}
