//! loom models of a sendable nursery's shared state (its running set and the members spawned
//! while it polls them, a member's exit, the ready queue of its member set), run against the real
//! `wherefore` code.
//!
//! Build and run only with the crate-specific cfg (see DESIGN.md, "Model checking"):
//!
//! ```text
//! RUSTFLAGS="--cfg wherefore_loom" LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test -p loom-tests --release --target-dir target/loom --test send_nursery
//! ```
//!
//! Each model has a deliberately broken variant of the critical section it covers, behind a cfg
//! of its own so that each can be switched on alone; CI sets none of them:
//!
//! ```text
//! RUSTFLAGS="--cfg wherefore_loom --cfg wherefore_loom_broken_drain" LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test -p loom-tests --release --target-dir target/loom-broken --test send_nursery \
//!     a_member_spawns_from_another_thread_while_the_set_is_polled
//! RUSTFLAGS="--cfg wherefore_loom --cfg wherefore_loom_broken_exit" ... (same) ... \
//!     a_handle_is_joined_on_another_thread
//! RUSTFLAGS="--cfg wherefore_loom --cfg wherefore_loom_broken_batch" ... (same) ... \
//!     a_nursery_future_moves_between_threads
//! RUSTFLAGS="--cfg wherefore_loom --cfg wherefore_loom_broken_member_wake" ... (same) ... \
//!     a_member_is_cancelled_from_another_thread_as_it_first_blocks
//! ```
#![cfg(wherefore_loom)]

use std::future::{Future, poll_fn};
use std::task::{Context, Poll, Waker};

use loom::future::AtomicWaker;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;
use wherefore::{Cancelled, Nursery, SpawnError, TaskExit};

/// A one-shot signal between loom threads: a flag, and the waker of the task waiting for it.
struct Signal {
    raised: AtomicBool,
    waiter: AtomicWaker,
}

impl Signal {
    fn new() -> Arc<Signal> {
        Arc::new(Signal {
            raised: AtomicBool::new(false),
            waiter: AtomicWaker::new(),
        })
    }

    fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        self.waiter.wake();
    }

    /// Ready once the signal is raised.
    async fn wait(&self) {
        poll_fn(|cx| {
            self.waiter.register_by_ref(cx.waker());
            if self.raised.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

/// A handle moved to another thread spawns while the nursery future polls its members on its
/// own: the body spawned a member that yields twice, so the nursery is inside `poll_members`
/// (with `spawned.polling` set) for several polls, up to its last. The member spawned from the
/// other thread runs to its end (its flag is seen after the nursery returns), or, only if the
/// nursery had closed already, its future is handed back (`SpawnError::Closed`): never accepted
/// and lost, never a hang (loom reports a deadlock).
///
/// Under `--cfg wherefore_loom_broken_drain` (`take_spawned`, which `poll_members` calls after
/// each batch, checks that `spawned` is empty and clears `polling` in two critical sections) a spawn between the two is accepted into `spawned`
/// and dropped unpolled when the nursery closes: loom finds it, and the assertion below fails
/// (`a member is run if and only if its spawn was accepted`, `left: false`, `right: true`).
#[test]
#[cfg_attr(
    wherefore_loom_broken_drain,
    should_panic(expected = "a member is run if and only if its spawn was accepted")
)]
fn a_member_spawns_from_another_thread_while_the_set_is_polled() {
    loom::model(|| {
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let out = loom::future::block_on(wherefore::nursery(
            async move |n: Nursery<'static, Cancelled>| {
                n.start_soon(async {
                    wherefore::checkpoint().await?;
                    wherefore::checkpoint().await
                })
                .unwrap();
                let remote = n.clone();
                // Joined once the nursery has returned: the spawn may come at any point of it.
                let spawner = thread::spawn(move || {
                    let member = async move {
                        flag.store(true, Ordering::Release);
                        Ok(())
                    };
                    match remote.start_soon(member) {
                        Ok(_) => true,
                        Err(SpawnError::Closed(future)) => {
                            drop(future);
                            false
                        }
                        Err(other) => panic!("unexpected refusal: {other}"),
                    }
                });
                Ok(spawner)
            },
        ));
        let accepted = out.unwrap().join().unwrap();
        assert_eq!(
            ran.load(Ordering::Acquire),
            accepted,
            "a member is run if and only if its spawn was accepted"
        );
    });
}

/// A member's handle is joined on another thread (outside any scope: `join` only waits for the
/// exit) while the nursery polls that member to its end: the joiner gets exactly the member's
/// exit, is woken for it (no lost wake-up: loom reports a deadlock otherwise), and nothing is
/// leaked (the value is a loom `Arc`, which loom checks is released).
///
/// Under `--cfg wherefore_loom_broken_exit` (`Exit::finish` wakes the joiner, then stores the
/// exit in a second critical section) a joiner that registers again in between is never woken:
/// loom reports `deadlock; threads = [(Id(0), Blocked(Location(None))), (Id(1),
/// Blocked(Location(None)))]`, from the main thread joining the joiner, and unwinds cleanly.
#[test]
#[cfg_attr(wherefore_loom_broken_exit, should_panic(expected = "deadlock"))]
fn a_handle_is_joined_on_another_thread_while_its_member_exits() {
    loom::model(|| {
        let out = loom::future::block_on(wherefore::nursery(
            async |n: Nursery<'static, Cancelled>| {
                let member = n
                    .spawn(async {
                        wherefore::checkpoint().await?;
                        Ok(Arc::new(7))
                    })
                    .unwrap();
                Ok(thread::spawn(move || {
                    let mut member = member;
                    loom::future::block_on(member.join())
                }))
            },
        ));
        let joined = out.unwrap().join().unwrap();
        match joined {
            Ok(TaskExit::Completed(value)) => assert_eq!(*value, 7),
            other => panic!("unexpected: {other:?}"),
        }
    });
}

/// The nursery future is polled once on one thread (with a waker of that thread), then moved to
/// a second that runs it to its end, while a third wakes the member it waits on (during either
/// thread's polls, or between them): the wake-up reaches the nursery although its waker changed
/// between the polls (no deadlock), and the member ends once, reported completed.
///
/// Under `--cfg wherefore_loom_broken_batch` (`MemberSet::start_batch` registers the nursery's
/// waker in a critical section of its own, after it swapped the ready slots) the wake-up in
/// between goes to the first thread's waker: loom reports `deadlock; threads = [(Id(0),
/// Blocked(Location(None))), (Id(1), Terminated), (Id(2), Blocked(Location(None)))]`, from the
/// second thread parking in `block_on`, whose unwinding then drops a loom `Arc` after the
/// execution ended: `panic in a destructor during cleanup`, and the process aborts (so no
/// `should_panic` here).
#[test]
fn a_nursery_future_moves_between_threads_while_a_member_is_woken() {
    loom::model(|| {
        let signal = Signal::new();
        let waiting = signal.clone();
        let ends = Arc::new(AtomicUsize::new(0));
        let counted = ends.clone();
        let mut nursery = Box::pin(wherefore::nursery(
            async move |n: Nursery<'static, Cancelled>| {
                let member = n.spawn(async move {
                    waiting.wait().await;
                    counted.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                });
                Ok(member.unwrap())
            },
        ));
        let raiser = thread::spawn(move || signal.raise());
        let first = nursery
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        let member = match first {
            // Raised before the member first waited: done in the first poll.
            Poll::Ready(out) => out.unwrap(),
            Poll::Pending => {
                let runner = thread::spawn(move || loom::future::block_on(nursery));
                runner.join().unwrap().unwrap()
            }
        };
        raiser.join().unwrap();
        let mut member = member;
        assert!(matches!(member.try_join(), Some(TaskExit::Completed(()))));
        assert_eq!(ends.load(Ordering::Relaxed), 1);
    });
}

/// A handle on another thread spawns into a nursery whose set is empty while its body waits
/// (here for that very member): the spawn wakes the nursery, which polls the member.
///
/// This model found a lost wake-up: `MemberSet::poll_batch` returned at once on an empty set,
/// before it registered the nursery's waker, so `push` from the other thread found no waker to
/// wake (or a stale one, from before the nursery future moved) and the member was never polled
/// (`deadlock; threads = [(Id(0), Blocked(Location(None))), (Id(1), Terminated)]`). An empty set
/// now registers the waker too.
#[test]
fn a_member_spawns_from_another_thread_while_the_set_is_empty() {
    loom::model(|| {
        let signal = Signal::new();
        let out = loom::future::block_on(wherefore::nursery(
            async move |n: Nursery<'static, Cancelled>| {
                let remote = n.clone();
                let raised = signal.clone();
                let spawner = thread::spawn(move || {
                    remote
                        .start_soon(async move {
                            raised.raise();
                            Ok(())
                        })
                        .is_ok()
                });
                signal.wait().await; // raised by the member the other thread spawns
                Ok(spawner)
            },
        ));
        assert!(out.unwrap().join().unwrap());
    });
}

/// A member's handle, moved to another thread, cancels it while the nursery polls it for the
/// first time: the member blocks in a foreign future, unrecorded (its own scope not yet made),
/// so nothing but the waker it keeps at that first `Pending` can tell it that the handle made
/// and cancelled its scope meanwhile (`member_scope.rs`, invariant 3). Whatever the
/// interleaving, the member is polled again, dropped where it is blocked, and the nursery
/// finishes (no deadlock); the request took effect, since the member could not end otherwise.
///
/// Under `--cfg wherefore_loom_broken_member_wake` (`MemberScope::keep_waker` looks for a record
/// before taking its lock) a record made in between finds no waker, and loom reports
/// `deadlock; threads = [(Id(0), Blocked(Location(None))), (Id(1), Terminated)]`: the nursery's
/// thread parked for good, the canceller done. Its unwinding then drops loom objects after the
/// execution ended and the process aborts (so no `should_panic` here, as for the batch model).
#[test]
fn a_member_is_cancelled_from_another_thread_as_it_first_blocks() {
    loom::model(|| {
        let out = loom::future::block_on(wherefore::nursery(
            async |n: Nursery<'static, Cancelled>| {
                let member = n
                    .spawn(async {
                        std::future::pending::<()>().await;
                        Ok(())
                    })
                    .unwrap();
                Ok(thread::spawn(move || member.cancel()))
            },
        ));
        assert!(out.unwrap().join().unwrap(), "the request took effect");
    });
}
