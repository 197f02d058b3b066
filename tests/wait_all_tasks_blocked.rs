//! `testing::wait_all_tasks_blocked`, as Trio's: it resolves when every other task of the
//! runtime is blocked, before the virtual clock moves on and before a run is reported stuck; it
//! is a cancellation point; and it refuses to run where no executor of this crate can tell.
mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use common::*;
use futures::channel::oneshot;
use wherefore::testing::wait_all_tasks_blocked;
use wherefore::{Cancelled, Nursery, Scope};

#[test]
fn it_resolves_once_every_member_is_blocked_and_before_time_moves() {
    block_on(async {
        let start = wherefore::now();
        let yields = AtomicU32::new(0);
        let slept = AtomicU32::new(0);
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            for _ in 0..3 {
                n.start_soon(async {
                    for _ in 0..100 {
                        wherefore::yield_now().await; // runnable all along
                        yields.fetch_add(1, Ordering::Relaxed);
                    }
                    wherefore::sleep(secs(1)).await?;
                    slept.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                })
                .unwrap();
            }
            wherefore::testing::wait_all_tasks_blocked().await?;
            assert_eq!(
                yields.load(Ordering::Relaxed),
                300,
                "every member ran until blocked"
            );
            assert_eq!(slept.load(Ordering::Relaxed), 0, "none woke up yet");
            assert_eq!(wherefore::now(), start, "no virtual time passed");

            wherefore::sleep(secs(1)).await?; // the clock moves, the members wake
            wait_all_tasks_blocked().await?;
            assert_eq!(slept.load(Ordering::Relaxed), 3);
            Ok(())
        })
        .await
        .unwrap();
    });
}

/// Members blocked for good (in a foreign future, with no timer anywhere) would make the run
/// stuck: the waiter resolves first.
#[test]
fn it_resolves_before_the_run_would_be_reported_stuck() {
    let report = wherefore::testing::run(async {
        let (_tx, rx) = oneshot::channel::<()>();
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            n.start_soon_named("reader", async {
                let _ = rx.await;
                Ok(())
            })
            .unwrap();
            wait_all_tasks_blocked().await?;
            n.cancel_handle().cancel_with("settled"); // drops the reader (S19)
            Ok(())
        })
        .await
    });
    assert!(report.stuck().is_none(), "{:?}", report.stuck());
    assert!(report.output().unwrap().is_ok());
}

/// Several waiters: the one that began first is let go first, and the next only when all are
/// blocked again.
#[test]
fn waiters_are_let_go_one_at_a_time_in_the_order_they_began() {
    block_on(async {
        let order = Mutex::new(Vec::new());
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            for name in ["first", "second", "third"] {
                let order = &order;
                n.start_soon(async move {
                    wait_all_tasks_blocked().await?;
                    order.lock().unwrap().push(name);
                    // Runnable again for a while: the next waiter waits for this one to block.
                    for _ in 0..10 {
                        wherefore::yield_now().await;
                    }
                    order.lock().unwrap().push(name);
                    Ok(())
                })
                .unwrap();
            }
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(
            order.into_inner().unwrap(),
            ["first", "first", "second", "second", "third", "third"]
        );
    });
}

/// A cancellation point: a waiter whose scope is cancelled fails at once (it leaves the queue),
/// and the waiter after it is let go when all are blocked.
#[test]
fn a_waiter_whose_scope_is_cancelled_fails_and_the_next_is_let_go() {
    block_on(async {
        let cancelled_one = Scope::named("impatient");
        let give_up = cancelled_one.handle();
        let seen = Mutex::new(Vec::new());
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            n.start_soon(async {
                let out = cancelled_one
                    .run(async {
                        let waited = wait_all_tasks_blocked().await;
                        seen.lock()
                            .unwrap()
                            .push(format!("impatient: {}", waited.is_ok()));
                        waited
                    })
                    .await?;
                assert_eq!(out, None, "its own cancellation, caught by its scope");
                Ok(())
            })
            .unwrap();
            n.start_soon(async {
                wherefore::yield_now().await; // begins to wait second
                wait_all_tasks_blocked().await?;
                seen.lock().unwrap().push("patient".to_owned());
                Ok(())
            })
            .unwrap();
            wherefore::checkpoint().await?;
            give_up.cancel(); // while both wait, before anything is let go
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(seen.into_inner().unwrap(), ["impatient: false", "patient"]);
    });
}

#[test]
fn on_the_real_clock_it_resolves_before_the_runtime_sleeps() {
    let started = std::time::Instant::now();
    let out = wherefore::run(async {
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            n.start_soon(wherefore::sleep(secs(3600))).unwrap();
            wait_all_tasks_blocked().await?;
            n.cancel_handle().cancel();
            Ok(())
        })
        .await
    });
    assert!(out.is_ok());
    assert!(
        started.elapsed() < secs(60),
        "it did not wait for the hour-long sleep"
    );
}

#[test]
#[should_panic(expected = "wait_all_tasks_blocked needs an executor that knows when its tasks")]
fn outside_an_executor_of_this_crate_it_panics_with_the_fix() {
    let _ = futures::executor::block_on(wait_all_tasks_blocked());
}

#[cfg(feature = "tokio")]
#[tokio::test]
#[should_panic(expected = "tokio's, or any other, does not say")]
async fn on_tokio_it_panics_with_the_fix() {
    // Inside a scope on tokio's clock: the environment is tokio's, which no executor of this
    // crate drives.
    let _ = Scope::new()
        .run(async { wait_all_tasks_blocked().await })
        .await;
}
