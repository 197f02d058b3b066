//! Members started with `Nursery::start_soon`, without a handle: waited for, named in failures
//! and reports like any member, refused by a finished nursery, reported dropped with their
//! nursery.
mod common;

use std::cell::RefCell;

use common::*;
use wherefore::event::Event;
use wherefore::testing::Journal;
use wherefore::{
    Cancelled, Cause, FailureKind, LocalNursery, Nursery, NurseryBuilder, SpawnError, TaskId,
};

/// How each task of `ids` ended, as the journal reports it.
fn exits(journal: &Journal, ids: &[TaskId]) -> Vec<String> {
    journal
        .entries()
        .iter()
        .filter_map(|entry| match entry.event() {
            Event::TaskExited { task, exit } if ids.contains(&task.id()) => {
                Some(format!("{} {exit}", task))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn members_started_without_a_handle_are_waited_for_and_reported() {
    let log = RefCell::new(Vec::new());
    let report = wherefore::testing::run(async {
        let started = wherefore::nursery_local(async |n: LocalNursery<'_, Cancelled>| {
            let mut started = Vec::new();
            for (label, delay) in [("slow", 2), ("fast", 1)] {
                let log = &log;
                let task = n
                    .start_soon(async move {
                        wherefore::sleep(secs(delay)).await?;
                        log.borrow_mut().push(label);
                        Ok(())
                    })
                    .unwrap();
                started.push(task);
            }
            Ok(started)
        })
        .await
        .unwrap();
        log.borrow_mut().push("nursery returned");
        started
    });
    assert_eq!(log.into_inner(), ["fast", "slow", "nursery returned"]);
    let started = report.output().unwrap();
    assert!(started.iter().all(|task| task.name().is_none()));
    assert!(
        started
            .iter()
            .all(|task| task.spawned_at().file() == file!())
    );
    let ids: Vec<TaskId> = started.iter().map(|task| task.id()).collect();
    let (fast, slow) = (&started[1], &started[0]);
    assert_eq!(
        exits(report.journal(), &ids),
        [format!("{fast} completed"), format!("{slow} completed")]
    );
}

#[test]
fn a_failing_member_without_a_handle_cancels_its_siblings_and_reaches_the_nursery() {
    block_on(async {
        let seen = RefCell::new(None);
        let mut failing = None;
        let err = wherefore::nursery_local(async |n: LocalNursery<'_, BoxError>| {
            let seen = &seen;
            n.start_soon(async move {
                *seen.borrow_mut() = Some(wherefore::cancelled().await);
                Ok(())
            })
            .unwrap();
            let task = n
                .start_soon(async {
                    wherefore::sleep(secs(1)).await?;
                    Err("boom".into())
                })
                .unwrap();
            failing = Some(task);
            Ok(())
        })
        .await
        .unwrap_err();
        let failing = failing.unwrap();
        assert_eq!(err.failures().len(), 1);
        assert_eq!(err.failures()[0].task(), &failing);
        let Some(Cause::SiblingError(sibling)) = seen.take() else {
            panic!("the sibling was not cancelled by the failure")
        };
        assert_eq!(sibling.task(), &failing);
        assert_eq!(sibling.message(), "boom");
    });
}

#[test]
fn starting_a_member_in_a_finished_nursery_hands_the_future_back() {
    let ran = std::cell::Cell::new(false);
    block_on(async {
        let escaped =
            wherefore::nursery_local(async |n: LocalNursery<'_, Cancelled>| Ok(n.clone()))
                .await
                .unwrap();
        let late = escaped.start_soon(async {
            ran.set(true);
            Ok(())
        });
        let Err(SpawnError::Closed(future)) = late else {
            panic!("a finished nursery accepted a member")
        };
        assert!(!ran.get(), "a refused member does not run");
        future.await.unwrap();
        assert!(ran.get(), "the future handed back is the one given");
    });
}

#[test]
fn a_member_without_a_handle_dropped_with_its_nursery_is_reported_dropped() {
    let report = wherefore::testing::run(async {
        let started = RefCell::new(None);
        let nursery = wherefore::nursery_local(async |n: LocalNursery<'_, Cancelled>| {
            let task = n
                .start_soon(async {
                    std::future::pending::<()>().await; // ignores cancellation
                    Ok(())
                })
                .unwrap();
            *started.borrow_mut() = Some(task);
            std::future::pending::<()>().await;
            Ok(())
        });
        // Poll the nursery until its member runs, then drop it.
        let mut nursery = Box::pin(nursery);
        assert!(futures::poll!(nursery.as_mut()).is_pending());
        drop(nursery);
        started.take().unwrap()
    });
    let task = report.output().unwrap();
    assert_eq!(
        exits(report.journal(), &[task.id()]),
        [format!(
            "{task} dropped with its nursery before it finished"
        )]
    );
}

#[test]
fn a_panicking_member_without_a_handle_is_a_failure_named_by_its_task() {
    let report = wherefore::testing::run(async {
        let mut crasher = None;
        let err = NurseryBuilder::named("workers")
            .collect_panics()
            .run(async |n: Nursery<'_, Cancelled>| {
                let task = n
                    .start_soon(async { panic!("index out of range") as Result<(), _> })
                    .unwrap();
                crasher = Some(task);
                Ok(())
            })
            .await
            .unwrap_err();
        (err.into_failures(), crasher.unwrap())
    });
    let (failures, crasher) = report.output().unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].task(), crasher);
    assert!(matches!(failures[0].kind(), FailureKind::Panic(m) if m == "index out of range"));
    assert_eq!(
        exits(report.journal(), &[crasher.id()]),
        [format!("{crasher} panicked: index out of range")]
    );
}

#[test]
fn a_named_member_without_a_handle_is_named_in_its_siblings_cause_and_in_the_journal() {
    let seen = RefCell::new(None);
    let report = wherefore::testing::run(async {
        let mut fetch = None;
        let err = wherefore::nursery_local(async |n: LocalNursery<'_, BoxError>| {
            let seen = &seen;
            n.start_soon(async move {
                *seen.borrow_mut() = Some(wherefore::cancelled().await);
                Ok(())
            })
            .unwrap();
            let task = n
                .start_soon_named("fetch", async { Err("boom".into()) })
                .unwrap();
            fetch = Some(task);
            Ok(())
        })
        .await
        .unwrap_err();
        assert_eq!(err.failures()[0].task().name(), Some("fetch"));
        fetch.unwrap()
    });
    let fetch = report.output().unwrap();
    assert_eq!(fetch.to_string(), "task \"fetch\"");
    let cause = seen.take().expect("the sibling was cancelled").to_string();
    assert!(
        cause.starts_with("sibling task \"fetch\" (spawned at tests/start_soon.rs:"),
        "{cause}"
    );
    assert_eq!(
        exits(report.journal(), &[fetch.id()]),
        ["task \"fetch\" failed: boom"]
    );
}
