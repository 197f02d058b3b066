//! Persistent task groups: background work that outlives requests but not the service.
mod common;

use std::sync::{Arc, Mutex};

use common::*;
use wherefore::{Cancelled, Cause, Nursery, Scope, SpawnError};

/// The story of seed 003, fixed: a request times out, and the write it started in the group
/// completes anyway. The service's own cancellation, later, does reach the group's members.
#[test]
fn a_request_timeout_does_not_reach_work_it_spawned_into_the_group() {
    let report = wherefore::testing::run(async {
        let service = Scope::named("service");
        let stop = service.handle();
        service
            .run(wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
                let jobs = n.persistent_group::<Cancelled>("jobs");
                let _ = Scope::named("request")
                    .with_timeout(secs(1))
                    .run(async {
                        jobs.start_soon_named("write", wherefore::sleep(secs(5)))
                            .unwrap();
                        jobs.start_soon_named("refresh", wherefore::sleep(secs(3600)))
                            .unwrap();
                        wherefore::sleep(secs(60)).await // the slow handler times out
                    })
                    .await?;
                wherefore::sleep(secs(10)).await?;
                stop.cancel_with("SIGTERM");
                let report = jobs.drain().await;
                assert_eq!((report.finished(), report.cancelled()), (1, 1), "{report}");
                wherefore::checkpoint().await
            }))
            .await
    });
    assert!(matches!(report.output(), Some(Ok(None))));
    assert!(
        report.journal().observed_by("write").is_empty(),
        "the write never saw a cancellation"
    );
    let refresh = report.journal().observed_by("refresh");
    assert_eq!(refresh.len(), 1);
    assert_eq!(
        refresh[0].chain().map(|c| c.kind()).collect::<Vec<_>>(),
        ["parent", "parent", "explicit"],
        "jobs <- the service's nursery <- service: {}",
        refresh[0]
    );
    let text = report.journal().to_string();
    assert!(
        text.contains("t=5.000 exit     task \"write\": completed"),
        "{text}"
    );
}

#[test]
fn a_failing_member_is_reported_and_does_not_cancel_the_others() {
    let failures = Arc::new(Mutex::new(Vec::new()));
    let seen = failures.clone();
    block_on(async {
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let jobs = n.persistent_group_with::<BoxError>("jobs", move |failure| {
                seen.lock().unwrap().push(failure.to_string())
            });
            jobs.start_soon_named("steady", async {
                wherefore::sleep(secs(5)).await?;
                Ok(())
            })
            .unwrap();
            jobs.start_soon_named("mailer", async {
                wherefore::sleep(secs(1)).await?;
                Err("smtp unreachable".into())
            })
            .unwrap();
            jobs.start_soon_named("crasher", async {
                wherefore::sleep(secs(2)).await?;
                if true {
                    panic!("bad index");
                }
                Ok(())
            })
            .unwrap();
            wherefore::sleep(secs(3)).await?;
            assert!(jobs.is_open(), "failures do not end the group");
            jobs.start_soon_named("late", async { Ok(()) }).unwrap();
            let report = jobs.drain().await;
            assert_eq!((report.finished(), report.failed()), (2, 2), "{report}");
            Ok(())
        })
        .await
        .unwrap();
    });
    let failures = failures.lock().unwrap();
    assert_eq!(failures.len(), 2);
    assert!(failures[0].starts_with("task \"mailer\" (spawned at tests/persistent_group.rs:"));
    assert!(
        failures[0].ends_with(") failed: smtp unreachable"),
        "{}",
        failures[0]
    );
    assert!(
        failures[1].ends_with(") panicked: bad index"),
        "{}",
        failures[1]
    );
}

/// Shutdown cancels members with an explicit cause; their shielded cleanup runs; a member that
/// ignores cancellation (awaits an unguarded foreign future) is dropped at the grace deadline
/// and named, with how long it ran and where it was stuck.
#[test]
fn shutdown_waits_for_cleanup_then_drops_and_names_what_still_runs() {
    let report = block_on(async {
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let jobs = n.persistent_group::<Cancelled>("jobs");
            jobs.start_soon_named("flusher", async {
                let cause = wherefore::cancelled().await;
                assert!(
                    cause
                        .to_string()
                        .starts_with("explicit (\"shutdown\") at tests/persistent_group.rs:")
                );
                wherefore::shield(wherefore::sleep(secs(3))).await?; // cleanup that fits in the grace
                Err(wherefore::checkpoint().await.unwrap_err())
            })
            .unwrap();
            jobs.start_soon_named("hung", async {
                wherefore::shield(std::future::pending::<()>()).await; // holds past any grace
                Ok(())
            })
            .unwrap();
            jobs.start_soon_named("quick", async { Ok(()) }).unwrap();
            wherefore::sleep(secs(2)).await?;
            let start = wherefore::now();
            let report = jobs.shutdown(secs(10)).await;
            assert_eq!(
                wherefore::now() - start,
                secs(10),
                "waited the whole grace period"
            );
            Ok(report)
        })
        .await
        .unwrap()
    });
    assert_eq!(
        (
            report.finished(),
            report.failed(),
            report.cancelled(),
            report.dropped().len()
        ),
        (1, 0, 1, 1)
    );
    let hung = &report.dropped()[0];
    assert_eq!(hung.task().name(), Some("hung"));
    assert_eq!(hung.ran_for(), secs(12));
    assert_eq!(
        hung.blocked_at(),
        None,
        "an unguarded future is no cancellation point"
    );
    assert!(matches!(report.cause(), Some(Cause::Explicit(_))));
    let text = report.to_string();
    assert!(
        text.starts_with(
            "group jobs shut down (explicit (\"shutdown\") at tests/persistent_group.rs:"
        ),
        "{text}"
    );
    assert!(text.contains("): 1 finished, 0 failed, 1 cancelled, 1 dropped\n  dropped task \"hung\" (spawned at tests/persistent_group.rs:"), "{text}");
    assert!(text.ends_with(") after 12s"), "{text}");
}

/// The group's grace wins over a member's own cleanup shield: dropping a future ends it, shield
/// or not.
#[test]
fn a_members_cleanup_shield_cannot_extend_the_groups_grace() {
    let report = block_on(async {
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let jobs = n.persistent_group::<Cancelled>("jobs");
            jobs.start_soon_named("slow-cleanup", async {
                let _ = wherefore::cancelled().await;
                wherefore::shield_with_grace(secs(60), wherefore::sleep(secs(3600))).await?;
                Ok(())
            })
            .unwrap();
            wherefore::checkpoint().await?;
            Ok(jobs.shutdown(secs(5)).await)
        })
        .await
        .unwrap()
    });
    assert_eq!(report.dropped().len(), 1);
    assert_eq!(report.dropped()[0].blocked_at(), Some("sleep"));
    // Whoever asks "why did the shutdown hang?" learns it was a shielded cleanup.
    assert!(report.dropped()[0].was_shielded());
    let shield = report.dropped()[0].blocked_in().unwrap();
    assert!(
        shield.name().is_none(),
        "the unnamed shield scope: {shield}"
    );
    assert!(
        report.to_string().contains(", blocked at sleep in scope#"),
        "{report}"
    );
    assert!(report.to_string().ends_with(" (shielded)"), "{report}");
}

/// A failure handler that panics does not take the group down: the panic is caught and reported
/// (to the hook: the journal), naming the member and its failure, and later failures still reach
/// the handler; the nursery is not cancelled.
#[test]
fn a_panicking_failure_handler_is_isolated_and_reported() {
    let handled = Arc::new(Mutex::new(Vec::new()));
    let seen = handled.clone();
    let report = wherefore::testing::run(async move {
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let jobs = n.persistent_group_with::<wherefore::BoxError>("jobs", move |failure| {
                let name = failure.task().name().unwrap_or("?").to_owned();
                seen.lock().unwrap().push(name.clone());
                if name == "first" {
                    panic!("the handler broke");
                }
            });
            jobs.start_soon_named("first", async { Err("disk full".into()) })
                .unwrap();
            wherefore::sleep(secs(1)).await?;
            jobs.start_soon_named("second", async { Err("disk still full".into()) })
                .unwrap();
            let report = jobs.drain().await;
            assert_eq!(report.failed(), 2);
            assert!(
                !n.cancel_handle().is_cancelled(),
                "the nursery was not cancelled"
            );
            Ok(())
        })
        .await
    });
    assert!(matches!(report.output(), Some(Ok(()))));
    assert_eq!(*handled.lock().unwrap(), ["first", "second"]);
    let journal = report.journal().to_string();
    let line = journal
        .lines()
        .find(|line| line.contains(" handler  "))
        .unwrap_or_else(|| panic!("no handler line: {journal}"));
    assert!(
        line.starts_with("t=0.000 handler  scope \"jobs\": the failure handler panicked (the handler broke) on: task \"first\" (spawned at tests/persistent_group.rs:"),
        "{line}"
    );
    assert!(line.ends_with(") failed: disk full"), "{line}");
}

/// When the last handle goes without a `shutdown` or a `drain`, nobody can spawn into the group
/// or shut it down any more: it drains (its members run to their end), the nursery returns, and
/// the journal says why.
#[test]
fn dropping_every_handle_drains_the_group() {
    let report = wherefore::testing::run(async {
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let jobs = n.persistent_group::<Cancelled>("jobs");
            let remote = jobs.clone();
            jobs.start_soon_named("write", wherefore::sleep(secs(3)))
                .unwrap();
            drop(jobs);
            wherefore::sleep(secs(1)).await?;
            remote
                .start_soon_named("late-write", wherefore::sleep(secs(1)))
                .unwrap(); // still open
            drop(remote); // the last one
            Ok(())
        })
        .await
    });
    assert!(
        matches!(report.output(), Some(Ok(()))),
        "the nursery returned"
    );
    let journal = report.journal().to_string();
    assert!(
        journal.contains("t=1.000 drain    scope \"jobs\": its last handle was dropped"),
        "{journal}"
    );
    assert!(
        journal.contains("t=2.000 exit     task \"late-write\": completed"),
        "{journal}"
    );
    assert!(
        journal.contains("t=3.000 exit     task \"write\": completed"),
        "{journal}"
    );
}

/// A member whose drop panics when the grace period ends is reported as that member's panic, in
/// the report and to the failure handler; the shutdown report is not lost and the nursery
/// returns.
#[test]
fn a_member_whose_drop_panics_at_the_end_of_the_grace_is_reported() {
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("drop failed");
        }
    }
    let handled = Arc::new(Mutex::new(Vec::new()));
    let seen = handled.clone();
    let report = block_on(async move {
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let jobs = n.persistent_group_with::<Cancelled>("jobs", move |failure| {
                seen.lock().unwrap().push(failure.to_string());
            });
            jobs.start_soon_named("fragile", async {
                let _bomb = PanicsOnDrop;
                wherefore::shield(std::future::pending::<()>()).await; // held to the grace's end
                Ok(())
            })
            .unwrap();
            jobs.start_soon_named("polite", wherefore::sleep(secs(3600)))
                .unwrap();
            wherefore::checkpoint().await?;
            Ok(jobs.shutdown(secs(5)).await)
        })
        .await
        .unwrap()
    });
    assert_eq!(report.cancelled(), 1, "{report}");
    let dropped = &report.dropped()[0];
    assert_eq!(dropped.task().name(), Some("fragile"));
    assert_eq!(dropped.drop_panicked(), Some("drop failed"));
    assert!(
        report
            .to_string()
            .contains("; its drop panicked: drop failed"),
        "{report}"
    );
    let handled = handled.lock().unwrap();
    assert_eq!(handled.len(), 1);
    assert!(
        handled[0].starts_with("task \"fragile\" (spawned at "),
        "{}",
        handled[0]
    );
    assert!(
        handled[0].ends_with(" panicked: in its drop: drop failed"),
        "{}",
        handled[0]
    );
}

#[test]
fn a_second_shutdown_waits_for_the_same_outcome_and_later_ones_return_it_at_once() {
    block_on(async {
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let jobs = n.persistent_group::<Cancelled>("jobs");
            jobs.start_soon_named("stubborn", async {
                wherefore::shield(std::future::pending::<()>()).await; // held to the grace's end
                Ok(())
            })
            .unwrap();
            wherefore::checkpoint().await?;
            let start = wherefore::now();
            let (first, second) = futures::join!(jobs.shutdown(secs(4)), async {
                wherefore::sleep(secs(1)).await?;
                Ok::<_, Cancelled>(jobs.shutdown(secs(100)).await) // its grace does not apply
            });
            let second = second?;
            assert_eq!(wherefore::now() - start, secs(4));
            assert_eq!(first.to_string(), second.to_string());
            let third = jobs.shutdown(secs(1)).await;
            assert_eq!(wherefore::now() - start, secs(4), "at once");
            assert_eq!(third.to_string(), first.to_string());
            Ok(())
        })
        .await
        .unwrap();
    });
}

#[test]
fn a_member_spawning_during_shutdown_gets_its_future_back() {
    block_on(async {
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let jobs = n.persistent_group::<Cancelled>("jobs");
            let spawner = jobs.clone();
            jobs.start_soon_named("spawner", async move {
                let _ = wherefore::cancelled().await;
                match spawner.spawn_named("follow-up", async { Ok(()) }) {
                    Err(SpawnError::ShuttingDown(future)) => drop(future),
                    Ok(_) => panic!("a closing group accepted a member"),
                    Err(other) => panic!("unexpected refusal: {other}"),
                }
                Ok(())
            })
            .unwrap();
            wherefore::checkpoint().await?;
            let report = jobs.shutdown(secs(1)).await;
            assert_eq!(
                report.finished(),
                1,
                "the spawner itself finished: {report}"
            );
            Ok(())
        })
        .await
        .unwrap();
    });
}

/// Spawning from another thread races the shutdown: each spawn either is accepted and then
/// runs to its end inside the group, or is refused with the future handed back. Never both,
/// never neither. The thread keeps spawning until it has been refused 100 times, so the race
/// really happens.
#[test]
fn shutdown_racing_spawns_from_another_thread_loses_nothing() {
    let (accepted, refused, report) = wherefore::run(async {
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let jobs = n.persistent_group::<Cancelled>("jobs");
            let remote = jobs.clone();
            let (started, has_started) = std::sync::mpsc::channel();
            let spawner = std::thread::spawn(move || {
                let (mut accepted, mut refused) = (0usize, 0usize);
                while refused < 100 {
                    match remote.spawn(async { Ok(()) }) {
                        Ok(_) => {
                            accepted += 1;
                            if accepted == 1 {
                                started.send(()).unwrap();
                            }
                        }
                        Err(refusal) => {
                            drop(refusal.into_future());
                            refused += 1;
                        }
                    }
                }
                (accepted, refused)
            });
            has_started.recv().unwrap(); // blocks the runtime briefly; spawning does not need it
            let report = jobs.shutdown(secs(5)).await;
            let (accepted, refused) = spawner.join().unwrap();
            Ok((accepted, refused, report))
        })
        .await
        .unwrap()
    });
    assert!(accepted > 0, "some spawns came before the shutdown");
    assert_eq!(refused, 100);
    assert_eq!(
        report.finished() + report.cancelled() + report.dropped().len(),
        accepted,
        "every accepted member ran to its end in the group: {report}"
    );
}

#[test]
fn dropping_the_nursery_still_answers_a_waiting_shutdown() {
    block_on(async {
        let kept = std::rc::Rc::new(std::cell::RefCell::new(None));
        let keep = kept.clone();
        let nursery = wherefore::nursery(async move |n: Nursery<'_, Cancelled>| {
            let jobs = n.persistent_group::<Cancelled>("jobs");
            jobs.start_soon_named("forever", wherefore::sleep(secs(3600)))
                .unwrap();
            *keep.borrow_mut() = Some(jobs.clone());
            wherefore::sleep(secs(3600)).await?;
            Ok(())
        });
        let mut nursery = Box::pin(nursery);
        let _ = futures::poll!(nursery.as_mut());
        let jobs = kept.borrow_mut().take().unwrap();
        drop(nursery);
        let report = jobs.drain().await;
        assert_eq!(report.dropped().len(), 1);
        assert_eq!(report.dropped()[0].task().name(), Some("forever"));
        assert!(matches!(
            jobs.spawn(async { Ok(()) }),
            Err(SpawnError::ShuttingDown(_))
        ));
    });
}

/// A group member's handle (issue 26): cancel that member alone, join it, read its exit; the
/// group and its other members carry on, and the report counts it cancelled, not failed.
#[test]
fn a_member_is_cancelled_alone_through_its_handle_and_joined() {
    let failures = Arc::new(Mutex::new(Vec::new()));
    let seen = failures.clone();
    let report = wherefore::testing::block_on(async {
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let jobs = n.persistent_group_with::<Cancelled>("jobs", move |failure| {
                seen.lock().unwrap().push(failure.to_string());
            });
            let mut upload = jobs
                .spawn_named("upload", wherefore::sleep(secs(3600)))
                .unwrap();
            let mut mail = jobs.spawn_named("mail", wherefore::sleep(secs(2))).unwrap();
            wherefore::sleep(secs(1)).await?;
            assert!(upload.cancel_with("user cancelled the upload"));
            let exit = upload.join().await?;
            assert!(
                exit.to_string()
                    .starts_with("cancelled: explicit (\"user cancelled the upload\") at "),
                "{exit}"
            );
            assert!(jobs.is_open(), "the group carries on");
            assert!(matches!(
                mail.join().await?,
                wherefore::TaskExit::Completed(())
            ));
            Ok(jobs.drain().await)
        })
        .await
        .unwrap()
    });
    assert_eq!(
        (report.finished(), report.cancelled(), report.failed()),
        (1, 1, 0),
        "{report}"
    );
    assert!(failures.lock().unwrap().is_empty());
}
