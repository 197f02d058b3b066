//! The embedded executor `run`, on the real clock.

use std::time::Duration;

use wherefore::{Cancelled, Cause, Scope};

#[test]
fn run_drives_a_future_to_completion() {
    assert_eq!(wherefore::run(async { 6 * 7 }), 42);
}

#[test]
fn run_provides_a_real_clock_for_sleeps_and_timeouts() {
    let out = wherefore::run(async {
        wherefore::move_on_after(Duration::from_millis(1), async {
            wherefore::sleep(Duration::from_secs(3600)).await?;
            Ok::<_, Cancelled>(())
        })
        .await
    });
    assert!(matches!(out, Ok(None)));
}

/// A cancel from another thread wakes a task blocked in `run` (the executor is parked).
#[test]
fn a_cancel_from_another_thread_wakes_the_parked_runtime() {
    let cause = wherefore::run(async {
        let scope = Scope::named("waiting");
        let handle = scope.handle();
        let canceller = std::thread::spawn(move || handle.cancel_with("from a thread"));
        let seen = scope
            .run(async { Ok::<_, Cancelled>(wherefore::cancelled().await) })
            .await;
        canceller.join().unwrap();
        seen.unwrap().unwrap()
    });
    assert!(matches!(cause, Cause::Explicit(_)));
}

/// Runs a job that never ends by itself, while another thread gives it a 1 ms timeout as soon
/// as it runs; resolves to what the job's scope resolved to.
async fn job_timed_out_from_another_thread() -> Result<Option<()>, Cancelled> {
    let scope = Scope::named("job");
    let handle = scope.handle();
    let setter = std::thread::spawn(move || {
        while handle.deadline().is_none() && !handle.has_exited() {
            handle.set_timeout(Duration::from_millis(1));
            std::thread::yield_now();
        }
    });
    let out = scope
        .run(wherefore::guard(std::future::pending::<()>()))
        .await;
    setter.join().unwrap();
    out
}

/// A deadline set from another thread while the runtime is parked with no timer is picked up.
#[test]
fn a_deadline_set_from_another_thread_wakes_the_parked_runtime() {
    let out = wherefore::run(job_timed_out_from_another_thread());
    assert!(matches!(out, Ok(None)));
}

/// On the real clock the runtime sleeps until the start of a bucket of the timer wheel, which
/// may come before the timer itself: it then looks again and sleeps on. A timer never fires early.
#[test]
fn a_sleep_on_the_real_clock_never_ends_early_though_the_runtime_wakes_on_the_way() {
    for millis in [3, 70, 150] {
        let wanted = Duration::from_millis(millis);
        let started = std::time::Instant::now();
        let slept = wherefore::run(async {
            let before = wherefore::now();
            wherefore::sleep(wanted).await.unwrap();
            wherefore::now() - before
        });
        assert!(
            slept >= wanted,
            "{slept:?} < {wanted:?} by the runtime's clock"
        );
        assert!(started.elapsed() >= wanted, "{wanted:?} by the wall clock");
    }
}

/// The runtime parks until its earliest timer (30 s away); a deadline earlier than that, set from
/// another thread, must wake it to re-plan rather than wait for the later timer.
#[test]
fn an_earlier_deadline_set_from_another_thread_wakes_a_runtime_parked_on_a_later_one() {
    let started = std::time::Instant::now();
    let out = wherefore::run(async {
        wherefore::move_on_after(Duration::from_secs(30), async {
            Ok::<_, Cancelled>(job_timed_out_from_another_thread().await)
        })
        .await
    });
    assert!(
        matches!(out, Ok(Some(Ok(None)))),
        "the job's own deadline fired, not the outer one"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// A task that never blocks (it only yields) keeps the runtime busy; real-time timers must still
/// fire, or the timeout below would never end and this test would hang.
#[test]
fn timers_fire_while_another_task_keeps_the_runtime_busy() {
    let out = wherefore::run(async {
        wherefore::nursery(async |n: wherefore::Nursery<'_, Cancelled>| {
            n.start_soon_named("busy", async {
                loop {
                    wherefore::checkpoint().await?;
                }
                #[allow(unreachable_code)]
                Ok::<(), Cancelled>(())
            })
            .unwrap();
            let timed_out = wherefore::move_on_after(Duration::from_millis(5), async {
                wherefore::sleep(Duration::from_secs(3600)).await?;
                Ok::<_, Cancelled>(())
            })
            .await?;
            n.cancel_handle().cancel_with("done");
            Ok(timed_out)
        })
        .await
    });
    // The body returned the timeout's `None`; the busy member ended cancelled, not failed.
    assert!(matches!(out, Ok(None)), "{out:?}");
}

/// A timeout first polled in one runtime and then in another would wait forever (its deadline
/// is in the first runtime's clock): it fails at once, with a message that names the problem.
#[test]
#[should_panic(expected = "was entered in one runtime and is now polled in another")]
fn a_timeout_moved_to_another_runtime_fails_at_once() {
    let mut timeout = Box::pin(wherefore::move_on_after(
        Duration::from_secs(1),
        wherefore::sleep(Duration::from_secs(60)),
    ));
    wherefore::testing::block_on(async {
        assert!(futures::poll!(timeout.as_mut()).is_pending());
    });
    let _ = wherefore::testing::block_on(timeout);
}

/// The same for a scope with a deadline, and for a nursery.
#[test]
fn a_scope_or_a_nursery_moved_to_another_runtime_fails_at_once() {
    let moved = |future: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>| {
        let mut future = future;
        wherefore::testing::block_on(async {
            assert!(futures::poll!(future.as_mut()).is_pending());
        });
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wherefore::testing::block_on(future)
        }))
        .unwrap_err()
    };
    let message = |payload: Box<dyn std::any::Any + Send>| match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(_) => "not a String".to_owned(),
    };
    let scope = wherefore::Scope::named("request").with_timeout(Duration::from_secs(1));
    let panic = moved(Box::pin(async move {
        let _ = scope.run(wherefore::sleep(Duration::from_secs(60))).await;
    }));
    assert!(message(panic).starts_with("wherefore: scope \"request\" was entered in one runtime"),);
    let panic = moved(Box::pin(async {
        let _ = wherefore::NurseryBuilder::named("crew")
            .run(async |n: wherefore::Nursery<'_, wherefore::Cancelled>| {
                n.start_soon(wherefore::sleep(Duration::from_secs(60)))
                    .unwrap();
                Ok(())
            })
            .await;
    }));
    assert!(message(panic).starts_with("wherefore: scope \"crew\" was entered in one runtime"));
}
