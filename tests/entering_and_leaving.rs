//! Scopes entering and leaving the tree by the less common roads: left from inside another
//! scope than their parent, left while a member's drop panics, or entered in another runtime
//! than the one they were created in.
mod common;

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use common::*;
use wherefore::{Cancelled, Nursery, NurseryBuilder, Scope};

/// A scope future that is dropped while another scope is being polled (not its parent, the usual
/// place) still leaves its parent: the parent's tree no longer shows it, and cancelling the
/// parent no longer reaches it.
#[test]
fn a_scope_dropped_inside_a_sibling_still_leaves_its_parent() {
    block_on(async {
        let parent = Scope::named("parent");
        let parent_handle = parent.handle();
        let child = Scope::named("child");
        let child_handle = child.handle();
        parent
            .run(async {
                let mut child = Box::pin(child.run(wherefore::sleep(secs(60))));
                poll_once_pending(&mut child, "the child sleeps").await;
                assert_eq!(
                    parent_handle.tree().to_string(),
                    "scope \"parent\" (running)\n  scope \"child\" (running)\n"
                );
                Scope::named("sibling")
                    .run(async move {
                        drop(child);
                        Ok::<_, Cancelled>(())
                    })
                    .await?;
                assert!(child_handle.has_exited());
                assert_eq!(
                    parent_handle.tree().to_string(),
                    "scope \"parent\" (running)\n"
                );
                parent_handle.cancel();
                Ok::<_, Cancelled>(())
            })
            .await
            .unwrap();
        assert!(
            !child_handle.is_cancelled(),
            "the parent's cancel came after the child left"
        );
    });
}

/// A scope created in one runtime and first polled in another takes the clock of its parent
/// there, not the one it was created under: a timeout made inside `wherefore::run` (real clock)
/// and run in a testing runtime fires on virtual time, at once.
#[test]
fn a_timeout_made_in_one_runtime_runs_on_the_clock_of_the_runtime_that_polls_it() {
    #[expect(
        clippy::async_yields_async,
        reason = "the timeout is made inside one runtime, to be awaited in another"
    )]
    let timeout = wherefore::run(async {
        wherefore::move_on_after(secs(3600), wherefore::sleep(secs(7200)))
    });
    let (out, elapsed) = awaited_on_virtual_time(|| timeout);
    assert_eq!(out.unwrap(), None, "moved on at its deadline");
    assert_eq!(
        elapsed,
        secs(3600),
        "on the testing runtime's virtual clock"
    );
}

/// The same scope polled inside a scope that was entered in the runtime polling it: the usual
/// case, where the scope holds its creator's environment already.
#[test]
fn a_timeout_made_and_run_in_one_runtime_uses_its_clock() {
    let (out, elapsed) =
        awaited_on_virtual_time(|| wherefore::move_on_after(secs(5), wherefore::sleep(secs(10))));
    assert_eq!(out.unwrap(), None);
    assert_eq!(elapsed, secs(5));
}

/// A nursery dropped while one of its members panics in its own drop still leaves its parent:
/// the panic reaches the code that dropped the nursery, and the parent's tree no longer shows the
/// nursery (the parent keeps its children by address, so a nursery left in it would be followed
/// after it is gone).
#[test]
fn a_nursery_whose_member_panics_while_dropped_still_leaves_its_parent() {
    dropped_while_a_member_panics_leaves_the_parent("  scope \"crew\" (running)\n", true, || {
        NurseryBuilder::named("crew").run(async |n: Nursery<'_, Cancelled>| {
            n.start_soon(async {
                let _bomb = PanicsWhenDropped;
                wherefore::sleep(secs(60)).await
            })
            .unwrap();
            wherefore::sleep(secs(60)).await
        })
    });
}

/// The same for a member whose own scope is recorded (it entered a scope inside it): that scope
/// leaves the nursery's too, though the member's drop panics.
#[test]
fn a_member_with_its_own_scope_that_panics_while_dropped_still_leaves_its_nursery() {
    dropped_while_a_member_panics_leaves_the_parent("    scope \"fragile\"", true, || {
        NurseryBuilder::named("crew").run(async |n: Nursery<'_, Cancelled>| {
            drop(
                n.spawn_named(
                    "fragile",
                    Scope::named("step").run(async {
                        let _bomb = PanicsWhenDropped;
                        wherefore::sleep(secs(60)).await
                    }),
                )
                .unwrap(),
            );
            wherefore::sleep(secs(60)).await
        })
    });
}

/// The same for a persistent group: its runner is dropped with the nursery, drops the group's
/// members, one of which panics, and the group's scope still leaves the nursery's. The group
/// catches that panic (it is the member's, reported to the group's failure handler), so the
/// nursery's drop does not panic.
#[test]
fn a_persistent_group_whose_member_panics_while_dropped_still_leaves_its_nursery() {
    dropped_while_a_member_panics_leaves_the_parent("scope \"jobs\" (running)", false, || {
        NurseryBuilder::named("crew").run(async |n: Nursery<'_, Cancelled>| {
            let jobs = n.persistent_group::<Cancelled>("jobs");
            jobs.start_soon(async {
                let _bomb = PanicsWhenDropped;
                wherefore::sleep(secs(60)).await
            })
            .unwrap();
            wherefore::sleep(secs(60)).await
        })
    });
}

/// Inside a scope "parent": polls the future `crew` makes once (pending), checks that the
/// parent's tree shows `running` (the scope the panicking member runs in), drops the future,
/// which must panic if `panics`, and checks that the parent's tree then shows the parent alone.
fn dropped_while_a_member_panics_leaves_the_parent<F: Future>(
    running: &str,
    panics: bool,
    crew: impl FnOnce() -> F,
) {
    block_on(async {
        let parent = Scope::named("parent");
        let parent_handle = parent.handle();
        parent
            .run(async {
                let mut crew = Box::pin(crew());
                poll_once_pending(&mut crew, "the crew sleeps").await;
                let before = parent_handle.tree().to_string();
                assert!(before.contains(running), "{before}");
                let dropped = catch_unwind(AssertUnwindSafe(|| drop(crew)));
                assert_eq!(
                    dropped.is_err(),
                    panics,
                    "the member's drop panicked through"
                );
                assert_eq!(
                    parent_handle.tree().to_string(),
                    "scope \"parent\" (running)\n"
                );
                Ok::<_, Cancelled>(())
            })
            .await
            .unwrap();
    });
}

/// A scope future forgotten while it runs leaks its record with it, which keeps the address its
/// parent holds valid: the parent's cancel still reaches the child through it, and the parent's
/// tree still shows it, with nothing but that leaked future holding the child.
#[test]
fn a_forgotten_scope_future_stays_reachable_from_its_parent() {
    block_on(async {
        let parent = Scope::named("parent");
        let parent_handle = parent.handle();
        parent
            .run(async {
                let mut child = Box::pin(Scope::named("child").run(wherefore::sleep(secs(60))));
                poll_once_pending(&mut child, "the child sleeps").await;
                std::mem::forget(child);
                parent_handle.cancel_with("stop");
                let tree = parent_handle.tree().to_string();
                assert!(
                    tree.contains(
                        "  scope \"child\" (cancelled: parent scope \"parent\" was cancelled"
                    ),
                    "{tree}"
                );
                Ok::<_, Cancelled>(())
            })
            .await
            .unwrap();
    });
}

/// Polls `future` once from the scope being polled (so that it enters as that scope's child), and
/// checks that it is still pending.
async fn poll_once_pending<F: Future>(future: &mut Pin<Box<F>>, what: &str) {
    poll_fn(|cx| {
        assert!(future.as_mut().poll(cx).is_pending(), "{what}");
        Poll::Ready(())
    })
    .await;
}

/// Panics when dropped.
struct PanicsWhenDropped;

impl Drop for PanicsWhenDropped {
    fn drop(&mut self) {
        panic!("dropped");
    }
}

/// Awaits the future `make` returns (made inside the testing runtime) and how much virtual time
/// that took.
fn awaited_on_virtual_time<F: Future>(make: impl FnOnce() -> F) -> (F::Output, Duration) {
    block_on(async {
        let start = wherefore::now();
        let out = make().await;
        (out, wherefore::now() - start)
    })
}
