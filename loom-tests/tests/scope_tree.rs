//! loom models of races in the scope tree, run against the real `wherefore` code.
//!
//! Build and run only with the crate-specific cfg (see DESIGN.md, "Model checking"):
//!
//! ```text
//! RUSTFLAGS="--cfg wherefore_loom" LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test -p loom-tests --release --target-dir target/loom
//! ```
//!
//! Adding `--cfg wherefore_loom_broken` builds deliberately broken variants of two critical
//! sections (see `scope_tree.rs`), to show that these models can fail; CI does not run it:
//!
//! ```text
//! RUSTFLAGS="--cfg wherefore_loom --cfg wherefore_loom_broken" LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test -p loom-tests --release --target-dir target/loom-broken --test scope_tree two_threads
//! RUSTFLAGS=... (same) ... --test scope_tree cancel_races_waker
//! ```
#![cfg(wherefore_loom)]

use std::time::Duration;

use loom::thread;
use wherefore::loom_support::VirtualTime;
use wherefore::{Cancelled, Cause, Nursery, Scope, SpawnError, TaskExit};

fn tag_of(cause: &Cause) -> String {
    match cause.root() {
        Cause::Explicit(e) => format!("{:?}", e.tag().expect("tagged")),
        other => panic!("not explicit: {other}"),
    }
}

/// Two threads cancel the same scope with different causes: exactly one `cancel` call reports
/// that it took effect, and every observer sees that call's cause.
///
/// Under `--cfg wherefore_loom_broken` (a check-then-act split in `record_own`) both calls can
/// take effect, and loom finds that interleaving: the test then expects the panic.
#[test]
#[cfg_attr(wherefore_loom_broken, should_panic)]
fn two_threads_cancel_the_same_scope() {
    loom::model(|| {
        let handle = Scope::new().handle();
        let remote = handle.clone();
        let other = thread::spawn(move || {
            let took = remote.cancel_with("a");
            (took, tag_of(&remote.cause().expect("cancelled")))
        });
        let mine = handle.cancel_with("b");
        let my_view = tag_of(&handle.cause().expect("cancelled"));
        let (theirs, their_view) = other.join().unwrap();
        assert!(mine ^ theirs, "exactly one cancel took effect");
        let winner = if mine { "\"b\"" } else { "\"a\"" };
        assert_eq!(my_view, winner);
        assert_eq!(their_view, winner);
    });
}

/// A reader on one thread asks a scope for its cause, then whether it is cancelled, while
/// another thread cancels it: the reader sees no cause and no flag, or both, never a cause before
/// its flag (invariant 7 of the scope tree). With `cause()` reading the recorded inputs rather
/// than what the last update put into effect, loom finds the reader that sees the cause and then
/// `is_cancelled() == false`.
#[test]
fn a_cause_is_never_seen_before_its_flag() {
    loom::model(|| {
        let handle = Scope::new().handle();
        let remote = handle.clone();
        let canceller = thread::spawn(move || remote.cancel_with("now"));
        let cause = handle.cause();
        let cancelled = handle.is_cancelled();
        assert!(
            cause.is_none() || cancelled,
            "a cause was visible before the flag: {cause:?}"
        );
        canceller.join().unwrap();
        assert!(handle.is_cancelled() && handle.cause().is_some());
    });
}

/// The cancel of a parent races a child scope being entered, and the child's task waiting for
/// its cancellation: the child always ends cancelled with a `Parent` cause (never missed), and
/// the waiting task is woken (no lost wake-up: loom reports a deadlock otherwise).
#[test]
fn parent_cancel_races_child_attach_and_wait() {
    loom::model(|| {
        let parent = Scope::named("parent");
        let parent_handle = parent.handle();
        let child = Scope::named("child");
        let child_handle = child.handle();
        let canceller = thread::spawn(move || parent_handle.cancel_with("stop"));
        let seen = loom::future::block_on(
            parent.run(child.run(async { Ok::<_, Cancelled>(wherefore::cancelled().await) })),
        );
        canceller.join().unwrap();
        let cause = seen.unwrap().unwrap().unwrap();
        assert!(matches!(cause, Cause::Parent(_)), "{cause}");
        assert_eq!(tag_of(&cause), "\"stop\"");
        assert!(matches!(child_handle.cause(), Some(Cause::Parent(_))));
    });
}

/// A cancel races a task registering its waker at a cancellation point: the task is woken, and
/// a cancel that came before the registration makes the point return at once.
///
/// Under `--cfg wherefore_loom_broken` (the flag read before the lock in `register_waiter`) a
/// wake-up is lost: loom reports `deadlock; threads = [(Id(0), Blocked(..)), (Id(1),
/// Terminated)]`, and the process then aborts while unwinding (so no `should_panic` here).
#[test]
fn cancel_races_waker_registration() {
    loom::model(|| {
        let scope = Scope::new();
        let handle = scope.handle();
        let canceller = thread::spawn(move || handle.cancel());
        let out = loom::future::block_on(scope.run(async {
            wherefore::guard(std::future::pending::<()>()).await?;
            Ok::<_, Cancelled>(())
        }));
        canceller.join().unwrap();
        assert!(matches!(out, Ok(None)));
    });
}

/// A shield being lowered races the cancel of its parent: the task behind the shield, waiting
/// for its cancellation, is woken exactly when both have happened and sees the parent's cause.
#[test]
fn shield_lowered_races_parent_cancel() {
    loom::model(|| {
        let parent = Scope::named("parent");
        let parent_handle = parent.handle();
        let shield = Scope::named("shield").shielded();
        let shield_handle = shield.handle();
        let canceller = thread::spawn(move || parent_handle.cancel_with("stop"));
        let lowerer = thread::spawn(move || shield_handle.set_shielded(false));
        let seen = loom::future::block_on(
            parent.run(shield.run(async { Ok::<_, Cancelled>(wherefore::cancelled().await) })),
        );
        canceller.join().unwrap();
        lowerer.join().unwrap();
        let cause = seen.unwrap().unwrap().unwrap();
        assert!(matches!(cause, Cause::Parent(_)), "{cause}");
        assert_eq!(tag_of(&cause), "\"stop\"");
    });
}

/// A handle dropped on one thread while the scope is cancelled through another handle: no use
/// after free and no leak (loom checks that every `Arc` is released at the end).
#[test]
fn handle_dropped_while_the_scope_is_cancelled() {
    loom::model(|| {
        let scope = Scope::named("job");
        let first = scope.handle();
        let second = scope.handle();
        drop(scope);
        let dropper = thread::spawn(move || drop(first));
        assert!(second.cancel_with("stop"));
        dropper.join().unwrap();
        assert!(second.is_cancelled());
    });
}

/// A deadline firing races an explicit cancel: whichever is processed first is the cause, in
/// both orders; the other is ignored, and the task observes the winner.
#[test]
fn deadline_firing_races_explicit_cancel() {
    loom::model(|| {
        let time = VirtualTime::new();
        let (scope, handle) = time.enter(|| {
            let deadline = wherefore::now() + Duration::from_secs(5);
            let scope = Scope::named("job").with_deadline(deadline);
            let handle = scope.handle();
            (scope, handle)
        });
        let clock = time.clone();
        let ticker = thread::spawn(move || clock.advance(Duration::from_secs(5)));
        let remote = handle.clone();
        let canceller = thread::spawn(move || remote.cancel_with("operator"));
        let seen = time.enter(|| {
            loom::future::block_on(
                scope.run(async { Ok::<_, Cancelled>(wherefore::cancelled().await) }),
            )
        });
        ticker.join().unwrap();
        let explicit_won = canceller.join().unwrap();
        let recorded = handle.cause().unwrap();
        let observed = seen.unwrap().unwrap();
        assert_eq!(recorded.to_string(), observed.to_string());
        match recorded {
            Cause::Explicit(_) => assert!(explicit_won),
            Cause::Timeout(_) => assert!(!explicit_won),
            other => panic!("unexpected cause: {other}"),
        }
    });
}

/// A child scope leaving (and its record freed) races its parent's cancel, which walks the
/// parent's children by address (invariant 6 of the scope tree): the walk either reaches the child
/// while it is still there, or does not find it; it never follows the address of a freed record
/// (loom checks every `Arc`: a reference taken from a freed one fails the model).
#[test]
fn parent_cancel_races_child_scope_leaving() {
    loom::model(|| {
        let parent = Scope::named("parent");
        let stop = parent.handle();
        let canceller = thread::spawn(move || stop.cancel_with("stop"));
        let out = loom::future::block_on(parent.run(async {
            // No handle: the child's record goes as soon as its future is done.
            Scope::named("child").run(wherefore::checkpoint()).await
        }));
        canceller.join().unwrap();
        match out {
            Ok(Some(Some(()))) => {}
            // The parent's cancel reached the child at its checkpoint; the parent absorbs it.
            Ok(None) => {}
            other => panic!("unexpected: {other:?}"),
        }
    });
}

/// A deadline firing races its scope leaving (and its record freed): the clock keeps the scope by
/// address (invariant 6 of the scope tree), so firing must find the timer still registered, under
/// the clock's lock, or not at all. The scope ends timed out or finished, and no freed record is
/// followed (loom checks every `Arc`).
#[test]
fn deadline_firing_races_scope_leaving() {
    loom::model(|| {
        let time = VirtualTime::new();
        let scope = time
            .enter(|| Scope::named("job").with_deadline(wherefore::now() + Duration::from_secs(5)));
        let clock = time.clone();
        let ticker = thread::spawn(move || clock.advance(Duration::from_secs(5)));
        let out = time.enter(|| loom::future::block_on(scope.run(wherefore::checkpoint())));
        ticker.join().unwrap();
        match out {
            Ok(Some(())) => {}
            Ok(None) => {} // timed out at its checkpoint, absorbed by the scope
            other => panic!("unexpected: {other:?}"),
        }
    });
}

/// A member finishing races its nursery's cancellation: its exit is reported once, as whichever
/// happened first (completed, or cancelled with the parent's cause); nothing is freed twice or
/// leaked (loom checks every `Arc`).
#[test]
fn child_finishing_races_parent_cancel() {
    loom::model(|| {
        let outer = Scope::named("outer");
        let stop = outer.handle();
        let canceller = thread::spawn(move || stop.cancel_with("stop"));
        let exit = loom::future::block_on(outer.run(wherefore::nursery(
            async |n: Nursery<'_, Cancelled>| {
                let mut member = n
                    .spawn(async {
                        wherefore::check_cancelled()?;
                        Ok(())
                    })
                    .unwrap();
                Ok(wherefore::shield(member.join()).await?)
            },
        )));
        canceller.join().unwrap();
        match exit {
            Ok(Some(TaskExit::Completed(()))) => {}
            Ok(Some(TaskExit::Cancelled(cause))) => assert_eq!(tag_of(&cause), "\"stop\""),
            // The body itself was cancelled before the shield: the nursery reports it and the
            // outer scope absorbs it.
            Ok(None) => {}
            other => panic!("unexpected: {other:?}"),
        }
    });
}

/// Spawning into a persistent group races its closing: the spawn either succeeds and the member
/// runs to its end in the group, or is refused with the future handed back; never both, never
/// neither.
#[test]
fn spawn_races_group_closing() {
    loom::model(|| {
        let outcome =
            loom::future::block_on(wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
                let jobs = n.persistent_group::<Cancelled>("jobs");
                let remote = jobs.clone();
                let spawner = thread::spawn(move || match remote.spawn(async { Ok(()) }) {
                    Ok(_) => true,
                    Err(SpawnError::ShuttingDown(future)) => {
                        drop(future);
                        false
                    }
                    Err(other) => panic!("unexpected refusal: {other}"),
                });
                let report = jobs.drain().await;
                let accepted = spawner.join().unwrap();
                Ok((accepted, report.finished()))
            }));
        let (accepted, finished) = outcome.unwrap();
        assert_eq!(finished, usize::from(accepted));
    });
}

/// The deadline of a timeout scope that runs unrecorded (DESIGN.md, "Unrecorded timeout
/// scopes") fires from another thread while the scope's body runs and the scope leaves: the
/// clock reads the parent's flags by address while the timer is there, and the scope takes its
/// timer back (or its outcome, if it fired) before it lets go of its parent, so firing never
/// follows a freed record (loom checks every `Arc`). The timer is stored in the scope's future
/// and linked into the wheel: the firing thread moves it down the wheel and into the due heap
/// while the scope may unlink it (loom checks every access to the node's cell). The scope ends
/// timed out at its checkpoint (recorded with its own timeout, absorbed) or finished.
#[test]
fn unrecorded_deadline_firing_races_its_scope_leaving() {
    loom::model(|| {
        let time = VirtualTime::new();
        let parent = time.enter(|| Scope::named("parent"));
        let clock = time.clone();
        let ticker = thread::spawn(move || clock.advance(Duration::from_secs(5)));
        let out = time.enter(|| {
            loom::future::block_on(parent.run(async {
                wherefore::move_on_after(Duration::from_secs(5), wherefore::checkpoint()).await
            }))
        });
        ticker.join().unwrap();
        match out {
            Ok(Some(Some(()))) => {}
            Ok(Some(None)) => {} // timed out at its checkpoint, absorbed by the timeout
            other => panic!("unexpected: {other:?}"),
        }
    });
}

/// The same deadline races a cancel of the parent from a third thread: whichever reached the
/// scope first is the cause its body sees (S14), and the timeout absorbs only its own.
#[test]
fn unrecorded_deadline_firing_races_parent_cancel() {
    loom::model(|| {
        let time = VirtualTime::new();
        let parent = time.enter(|| Scope::named("parent"));
        let stop = parent.handle();
        let clock = time.clone();
        let ticker = thread::spawn(move || clock.advance(Duration::from_secs(5)));
        let canceller = thread::spawn(move || stop.cancel_with("stop"));
        let out = time.enter(|| {
            loom::future::block_on(parent.run(async {
                wherefore::move_on_after(Duration::from_secs(5), async {
                    wherefore::checkpoint().await?;
                    wherefore::check_cancelled()
                })
                .await
            }))
        });
        ticker.join().unwrap();
        canceller.join().unwrap();
        match out {
            // Finished before either reached it, or timed out with nothing else cancelled (its
            // own cause: absorbed by the timeout).
            Ok(Some(Some(()) | None)) => {}
            // The parent's cancel reached its body (first, or after the timeout while the
            // parent was cancelled too): the outermost cancelled scope, the parent, absorbs it.
            Ok(None) => {}
            other => panic!("unexpected: {other:?}"),
        }
    });
}
