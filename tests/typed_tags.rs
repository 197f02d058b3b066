//! Reasons you can branch on: an explicit cancel keeps its tag as the value it was given, read
//! back by type (`tag_as`) from the cause a task observes, through the chain to its root; causes
//! are equal when they are the same request, not when they print alike.
mod common;

use std::sync::Mutex;

use common::*;
use wherefore::{Cancelled, Cause, Nursery, Scope, TaskExit};

/// A user's own reasons for stopping, as a service would define them.
#[derive(Debug, Clone, PartialEq)]
enum Stop {
    Signal(&'static str),
    Deploy,
}

/// The cleanup step a worker chooses, from the cause it observed.
fn cleanup_for(cause: &Cause) -> &'static str {
    match cause.root().tag_as::<Stop>() {
        Some(Stop::Signal(_)) => "flush and exit",
        Some(Stop::Deploy) => "hand over connections",
        None if cause.root().is_timeout() => "report the timeout",
        None => "plain cleanup",
    }
}

#[test]
fn a_tag_is_read_back_as_the_value_it_was_given() {
    let handle = Scope::named("service").handle();
    handle.cancel_with(Stop::Signal("SIGTERM"));
    let cause = handle.cause().unwrap();
    assert_eq!(cause.tag_as::<Stop>(), Some(&Stop::Signal("SIGTERM")));
    let Cause::Explicit(explicit) = &cause else {
        panic!("not explicit: {cause}")
    };
    assert_eq!(explicit.tag_as::<Stop>(), Some(&Stop::Signal("SIGTERM")));
    assert_eq!(explicit.tag_as::<&str>(), None, "a tag of another type");
    assert_eq!(
        format!("{:?}", explicit.tag().unwrap()),
        "Signal(\"SIGTERM\")",
        "and still printable"
    );
    assert!(
        cause
            .to_string()
            .starts_with("explicit (Signal(\"SIGTERM\")) at ")
    );
}

#[test]
fn an_untagged_cancel_and_other_causes_have_no_tag() {
    block_on(async {
        let untagged = Scope::new().handle();
        untagged.cancel();
        assert_eq!(untagged.cause().unwrap().tag_as::<Stop>(), None);
        assert_eq!(untagged.cause().unwrap().tag_as::<()>(), None);

        let err = wherefore::fail_after(secs(1), wherefore::sleep(secs(2)))
            .await
            .unwrap_err();
        assert_eq!(err.cause().tag_as::<Stop>(), None);
    });
}

#[test]
fn cleanup_branches_on_the_reason_at_the_root_of_the_chain() {
    block_on(async {
        let chosen = Mutex::new(Vec::new());
        for reason in [Some(Stop::Signal("SIGINT")), Some(Stop::Deploy), None] {
            let service = Scope::named("service");
            let stop = service.handle();
            let _ = service
                .run(wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
                    n.start_soon_named("worker", async {
                        let Err(cancelled) = wherefore::sleep_forever().await;
                        let cause = cancelled.cause();
                        assert!(
                            matches!(cause, Cause::Parent(_)),
                            "the worker's scope was cancelled through its nursery: {cause}"
                        );
                        assert_eq!(cause.tag_as::<Stop>(), None, "a parent link has no tag");
                        chosen.lock().unwrap().push(cleanup_for(cause));
                        Err::<(), _>(cancelled)
                    })
                    .unwrap();
                    wherefore::testing::wait_all_tasks_blocked().await?;
                    match reason.clone() {
                        Some(reason) => stop.cancel_with(reason),
                        None => stop.cancel(),
                    };
                    Ok(())
                }))
                .await;
        }
        let timed_out = wherefore::move_on_after(
            secs(5),
            Scope::named("worker").run(async {
                let Err(cancelled) = wherefore::sleep_forever().await;
                chosen.lock().unwrap().push(cleanup_for(cancelled.cause()));
                Err::<(), _>(cancelled)
            }),
        )
        .await;
        assert!(matches!(timed_out, Ok(None)));
        assert_eq!(
            chosen.into_inner().unwrap(),
            [
                "flush and exit",
                "hand over connections",
                "plain cleanup",
                "report the timeout"
            ]
        );
    });
}

#[test]
fn predicates_name_the_kind_of_this_link() {
    block_on(async {
        let explicit = Scope::new().handle();
        explicit.cancel();
        let explicit = explicit.cause().unwrap();
        assert!(explicit.is_explicit() && !explicit.is_timeout() && !explicit.is_sibling_failure());

        let err = wherefore::fail_after(secs(1), wherefore::sleep(secs(2)))
            .await
            .unwrap_err();
        assert!(err.cause().is_timeout() && !err.cause().is_explicit());

        let failure = causes_seen_by_siblings_of_a_failure(1).await.remove(0);
        assert!(failure.is_sibling_failure() && !failure.is_explicit());

        let outer = Scope::new();
        outer.handle().cancel();
        let inherited = outer
            .run(Scope::new().run(async { Ok::<_, Cancelled>(wherefore::cancelled().await) }))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(!inherited.is_explicit(), "this link is a parent link");
        assert!(inherited.root().is_explicit(), "its root is the request");
    });
}

#[test]
fn causes_are_equal_when_they_are_the_same_request() {
    block_on(async {
        let scope = Scope::named("job");
        let handle = scope.handle();
        handle.cancel_with("stop");
        let raised = scope
            .run(async { Err::<(), _>(wherefore::checkpoint().await.unwrap_err()) })
            .await;
        assert!(matches!(raised, Ok(None)));
        let recorded = handle.own_cause().unwrap();
        assert_eq!(handle.cause().unwrap(), recorded, "read twice");
        assert_eq!(recorded.clone(), recorded, "cloned");

        let twins: Vec<Cause> = (0..2)
            .map(|_| {
                let handle = Scope::named("job").handle();
                handle.cancel_with("stop");
                handle.cause().unwrap()
            })
            .collect();
        assert_eq!(
            twins[0].to_string(),
            twins[1].to_string(),
            "they print alike"
        );
        assert_ne!(twins[0], twins[1], "two requests");
        assert_ne!(twins[0], recorded);

        // Two members cancelled by the same failure see the same cause; a parent link equals a
        // link to the same scope, not one to another.
        let seen = causes_seen_by_siblings_of_a_failure(2).await;
        assert_eq!(seen[0], seen[1]);
        assert_ne!(seen[0], recorded);

        let outer = Scope::named("outer");
        let outer_handle = outer.handle();
        outer_handle.cancel();
        let links = outer
            .run(async {
                let a = Scope::new()
                    .run(async { Ok::<_, Cancelled>(wherefore::cancelled().await) })
                    .await?
                    .unwrap();
                let b = Scope::new()
                    .run(async { Ok::<_, Cancelled>(wherefore::cancelled().await) })
                    .await?
                    .unwrap();
                Ok::<_, Cancelled>((a, b))
            })
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(links.0, Cause::Parent(_)));
        assert_eq!(links.0, links.1, "both link to \"outer\"");
        assert_ne!(
            links.0,
            links.0.root(),
            "a link is not the request it leads to"
        );
        assert_eq!(links.0.root(), outer_handle.cause().unwrap());
    });
}

#[test]
fn errors_carrying_causes_compare_the_same_way() {
    block_on(async {
        let first = wherefore::fail_after(secs(1), wherefore::sleep(secs(2)))
            .await
            .unwrap_err();
        assert_eq!(first.clone(), first);
        let second = wherefore::fail_after(secs(1), wherefore::sleep(secs(2)))
            .await
            .unwrap_err();
        assert_ne!(first, second, "two deadlines, each its own");

        let scope = Scope::new();
        scope.handle().cancel();
        let _ = scope
            .run(async {
                let a = wherefore::checkpoint().await.unwrap_err();
                let b = wherefore::check_cancelled().unwrap_err();
                assert_eq!(a, b, "the same cancellation, raised in the same scope");
                let inner = Scope::new()
                    .run(async { Err::<(), _>(wherefore::checkpoint().await.unwrap_err()) })
                    .await;
                let Err(raised_below) = inner else {
                    panic!("the outer scope's cancellation passes the inner scope")
                };
                assert_ne!(a, raised_below, "raised in another scope");
                Err::<(), _>(a)
            })
            .await;
    });
}

#[test]
fn a_member_cancelled_by_a_request_ends_with_a_chain_to_that_very_request() {
    block_on(async {
        let job = Scope::named("job");
        let stop = job.handle();
        let exit = Mutex::new(None);
        let out = job
            .run(wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
                let mut child = n.spawn(wherefore::sleep_forever()).unwrap();
                wherefore::testing::wait_all_tasks_blocked().await?;
                stop.cancel_with(Stop::Deploy);
                // Joined in a shield: the nursery's scope is cancelled, the join waits anyway.
                *exit.lock().unwrap() = Some(wherefore::shield(child.join()).await?);
                Ok(())
            }))
            .await;
        assert!(matches!(out, Ok(None)), "\"job\" absorbed its cancellation");
        let Some(TaskExit::Cancelled(cause)) = exit.into_inner().unwrap() else {
            panic!("the member was cancelled")
        };
        assert!(matches!(cause, Cause::Parent(_)));
        assert_eq!(
            cause.root(),
            stop.cause().unwrap(),
            "the request that started it"
        );
        assert_eq!(cause.root().tag_as::<Stop>(), Some(&Stop::Deploy));
    });
}

#[test]
fn a_cause_is_two_words_wide() {
    assert_eq!(
        std::mem::size_of::<Cause>(),
        2 * std::mem::size_of::<usize>()
    );
    assert_eq!(
        std::mem::size_of::<Option<Cause>>(),
        std::mem::size_of::<Cause>()
    );
}

/// The causes that `siblings` members see when a sibling of theirs fails ("refused").
async fn causes_seen_by_siblings_of_a_failure(siblings: usize) -> Vec<Cause> {
    let seen = Mutex::new(Vec::new());
    let result = wherefore::nursery(async |n: Nursery<'_, BoxError>| {
        for _ in 0..siblings {
            n.start_soon(async {
                let cause = wherefore::cancelled().await;
                seen.lock().unwrap().push(cause);
                Ok(())
            })
            .unwrap();
        }
        n.start_soon(async { Err::<(), _>("refused".into()) })
            .unwrap();
        Ok(())
    })
    .await;
    assert!(result.is_err(), "the failure reaches the nursery's result");
    seen.into_inner().unwrap()
}
