//! Inside tokio (feature `tokio`): nurseries, sleeps and timeouts need no setup beyond the
//! feature, on both runtime flavours, and follow tokio's paused clock.
#![cfg(feature = "tokio")]

use std::time::Duration;

use wherefore::{Cancelled, Cause, LocalNursery, Nursery, Scope};

/// "fast" ends at 5 ms, a timeout fires at 60 ms, "slow" ends at 120 ms. On a paused clock the
/// order is exact; on a real one the gaps leave room for a busy machine.
async fn service() -> Result<Vec<&'static str>, wherefore::NurseryError<Cancelled>> {
    let log = std::cell::RefCell::new(Vec::new());
    wherefore::nursery_local(async |n: LocalNursery<'_, Cancelled>| {
        let log = &log;
        n.start_soon_named("slow", async move {
            wherefore::sleep(Duration::from_millis(120)).await?;
            log.borrow_mut().push("slow");
            Ok(())
        })
        .unwrap();
        n.start_soon_named("fast", async move {
            wherefore::sleep(Duration::from_millis(5)).await?;
            log.borrow_mut().push("fast");
            Ok(())
        })
        .unwrap();
        let timed_out = wherefore::move_on_after(Duration::from_millis(60), async {
            wherefore::sleep(Duration::from_secs(3600)).await?;
            Ok::<_, Cancelled>(())
        })
        .await?;
        assert!(timed_out.is_none());
        log.borrow_mut().push("timeout");
        Ok(())
    })
    .await?;
    Ok(log.into_inner())
}

#[tokio::test(start_paused = true)]
async fn a_nursery_runs_inside_a_current_thread_tokio_test() {
    assert_eq!(service().await.unwrap(), ["fast", "timeout", "slow"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nursery_runs_inside_a_multi_thread_tokio_test() {
    assert_eq!(service().await.unwrap(), ["fast", "timeout", "slow"]);
}

/// With tokio's clock paused, an hour-long timeout takes no real time and the cause reports it.
#[tokio::test(start_paused = true)]
async fn a_timeout_follows_tokios_paused_clock() {
    let real = std::time::Instant::now();
    let start = tokio::time::Instant::now();
    let scope = Scope::named("request").with_timeout(Duration::from_secs(3600));
    let handle = scope.handle();
    let out = scope
        .run(async {
            wherefore::sleep(Duration::from_secs(7200)).await?;
            Ok::<_, Cancelled>(())
        })
        .await;
    assert!(matches!(out, Ok(None)));
    assert_eq!(
        tokio::time::Instant::now() - start,
        Duration::from_secs(3600)
    );
    assert!(matches!(handle.cause(), Some(Cause::Timeout(_))));
    assert!(
        real.elapsed() < Duration::from_secs(5),
        "paused time took real time"
    );
}

#[tokio::test(start_paused = true)]
async fn a_sleep_outside_any_scope_uses_tokios_clock() {
    let start = tokio::time::Instant::now();
    wherefore::sleep(Duration::from_secs(60)).await.unwrap();
    assert_eq!(tokio::time::Instant::now() - start, Duration::from_secs(60));
    assert_eq!(
        wherefore::now().duration_since(start.into_std()),
        Duration::from_secs(60)
    );
}

mod workers {
    use super::*;
    use std::sync::{Arc, Mutex};
    use wherefore::{BoxError, FailureKind, TaskExit};

    /// A worker member sees the nursery's cancellation with the same cause as an inline member.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_member_sees_the_same_cause_as_an_inline_one() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (worker_seen, inline_seen) = (seen.clone(), seen.clone());
        let out = wherefore::NurseryBuilder::named("pool")
            .run(async |n: Nursery<'_, Cancelled>| {
                drop(
                    n.spawn_worker_named("worker", async move {
                        let cause = wherefore::cancelled().await;
                        worker_seen.lock().unwrap().push(cause.to_string());
                        Ok(std::thread::current().id())
                    })
                    .unwrap(),
                );
                drop(
                    n.spawn_named("inline", async move {
                        let cause = wherefore::cancelled().await;
                        inline_seen.lock().unwrap().push(cause.to_string());
                        Ok(std::thread::current().id())
                    })
                    .unwrap(),
                );
                wherefore::sleep(Duration::from_millis(5)).await?;
                n.cancel_handle().cancel_with("stop");
                wherefore::checkpoint().await
            })
            .await;
        assert!(matches!(out, Err(wherefore::NurseryError::Cancelled(_))));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], seen[1], "the same cause on both threads");
        assert!(seen[0].starts_with("explicit (\"stop\") at tests/tokio.rs:"));
    }

    /// A failing worker cancels its siblings with the sibling cause naming it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_worker_cancels_its_siblings() {
        let err = wherefore::nursery(async |n: Nursery<'_, BoxError>| {
            drop(
                n.spawn_worker_named("parser", async {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    Err::<(), BoxError>("bad input".into())
                })
                .unwrap(),
            );
            let mut sibling = n
                .spawn_named("sibling", async { Ok(wherefore::cancelled().await) })
                .unwrap();
            let cause = wherefore::shield(sibling.join()).await?;
            let TaskExit::Completed(cause) = cause else {
                panic!("{cause}")
            };
            assert!(
                cause
                    .to_string()
                    .starts_with("sibling task \"parser\" (spawned at tests/tokio.rs:")
            );
            assert!(cause.to_string().ends_with(") failed: bad input"));
            Ok(())
        })
        .await
        .unwrap_err();
        assert_eq!(err.failures().len(), 1);
        assert_eq!(err.failures()[0].task().name(), Some("parser"));
    }

    /// A worker member is cancelled alone through its handle, on its own thread, where it is
    /// blocked in tokio's sleep; its sibling runs on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_is_cancelled_alone_through_its_handle() {
        wherefore::nursery(async |n: Nursery<'_, BoxError>| {
            let mut slow = n
                .spawn_worker_named("slow", async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok(())
                })
                .unwrap();
            let mut sibling = n
                .spawn_named("sibling", async {
                    wherefore::sleep(Duration::from_millis(5)).await?;
                    Ok(())
                })
                .unwrap();
            assert!(slow.cancel_with("enough"));
            let exit = slow.join().await?;
            assert!(
                exit.to_string()
                    .starts_with("cancelled: explicit (\"enough\") at "),
                "{exit}"
            );
            assert!(matches!(sibling.join().await?, TaskExit::Completed(())));
            Ok(())
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_worker_is_reported_as_a_panic() {
        let err = wherefore::NurseryBuilder::new()
            .collect_panics()
            .run(async |n: Nursery<'_, Cancelled>| {
                drop(
                    n.spawn_worker_named("crasher", async {
                        if true {
                            panic!("worker exploded");
                        }
                        Ok(())
                    })
                    .unwrap(),
                );
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err.failures()[0].kind(), FailureKind::Panic(m) if m == "worker exploded")
        );
    }

    /// Dropping the nursery future does not drop a worker member (it runs elsewhere): it is
    /// cancelled with a cause that says why.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_outliving_its_dropped_nursery_is_told_why() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let nursery = wherefore::nursery(async move |n: Nursery<'_, Cancelled>| {
            drop(
                n.spawn_worker(async move {
                    let cause = wherefore::cancelled().await;
                    tx.send(cause.to_string()).unwrap();
                    Ok(())
                })
                .unwrap(),
            );
            wherefore::sleep(Duration::from_secs(3600)).await
        });
        let _ = tokio::time::timeout(Duration::from_millis(5), nursery).await; // dropped here
        let cause = rx.await.unwrap();
        assert!(
            cause.starts_with("explicit (\"nursery dropped\") at tests/tokio.rs:"),
            "{cause}"
        );
    }

    #[test]
    fn a_worker_spawned_outside_tokio_is_handed_back() {
        wherefore::testing::block_on(async {
            wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
                let refused = n.spawn_worker(async { Ok(()) });
                assert!(matches!(refused, Err(wherefore::SpawnError::NoRuntime(_))));
                Ok(())
            })
            .await
            .unwrap();
        });
    }
}

/// Two nurseries on bare tokio each take an environment of their own, both on tokio's clock: a
/// timeout first polled in one and finished in the other is in the same runtime, and finishes.
#[tokio::test(start_paused = true)]
async fn a_timeout_moved_between_two_nurseries_on_tokio_finishes() {
    let mut timeout = Box::pin(wherefore::move_on_after(
        Duration::from_millis(50),
        wherefore::sleep(Duration::from_millis(10)),
    ));
    wherefore::nursery(async |_: Nursery<'_, Cancelled>| {
        assert!(futures::poll!(timeout.as_mut()).is_pending());
        Ok(())
    })
    .await
    .unwrap();
    let out = wherefore::nursery(async |_: Nursery<'_, Cancelled>| Ok(timeout.as_mut().await))
        .await
        .unwrap();
    assert!(matches!(out, Ok(Some(()))), "{out:?}");
}

/// Hooks under tokio (issue 28): `wherefore::tokio::with_hook` gives everything inside it one
/// environment on tokio's clock that reports to the hook, worker members on other threads
/// included.
mod hooked {
    use super::*;
    use std::sync::{Arc, Mutex};
    use wherefore::event::{Event, Hook};

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Hook for Log {
        fn on_event(&self, _at: Duration, event: &Event) {
            self.0.lock().unwrap().push(event.to_string());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hook_hears_the_cancellation_of_a_worker_on_another_thread() {
        let log = Arc::new(Log::default());
        wherefore::tokio::with_hook(log.clone(), async {
            let result = wherefore::NurseryBuilder::named("crew")
                .run(async |n: Nursery<'_, Cancelled>| {
                    let mut worker = n
                        .spawn_worker_named("worker", async {
                            wherefore::sleep(Duration::from_secs(3600)).await?;
                            Ok(())
                        })
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    worker.cancel_with("enough");
                    worker.join().await?;
                    Ok(())
                })
                .await;
            assert!(result.is_ok());
        })
        .await;
        let log = log.0.lock().unwrap();
        let has = |prefix: &str| log.iter().any(|line| line.starts_with(prefix));
        assert!(has("enter    scope \"crew\""), "{log:#?}");
        assert!(
            has("spawn    task \"worker\" in scope \"crew\""),
            "{log:#?}"
        );
        assert!(
            has("cancel   scope \"worker\": explicit (\"enough\") at tests/tokio.rs:"),
            "{log:#?}"
        );
        // Heard from the worker's own thread (an event names a task by its number).
        assert!(
            log.iter().any(|line| line.starts_with("observe  task#")
                && line.contains(" at sleep in scope \"worker\": explicit (\"enough\")")),
            "{log:#?}"
        );
        assert!(
            has("exit     task \"worker\": cancelled: explicit (\"enough\")"),
            "{log:#?}"
        );
    }

    #[test]
    #[should_panic(expected = "wherefore::tokio::with_hook polled outside a tokio runtime")]
    fn with_hook_outside_tokio_says_what_to_use_instead() {
        wherefore::testing::block_on(wherefore::tokio::with_hook(
            Arc::new(Log::default()),
            async {},
        ));
    }
}
