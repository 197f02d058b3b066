//! S19: a cancellation reaches a task blocked in a foreign future (a tokio sleep, a socket read,
//! `pending()`): the scope future around it drops it, as `tokio::time::timeout` would, and
//! resolves as if its cancellation point had failed. Inside a shield nothing is dropped from
//! outside; a shield's own deadline does reach it.
mod common;

use std::cell::Cell;
use std::time::{Duration, Instant};

use common::*;
use wherefore::{Cancelled, LocalNursery, Nursery, NurseryError, Scope, TaskExit};

fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Records when it is dropped: what a dropped body had borrowed is released then.
struct DropProbe<'a>(&'a Cell<Option<Instant>>);

impl Drop for DropProbe<'_> {
    fn drop(&mut self) {
        self.0.set(Some(wherefore::now()));
    }
}

#[cfg(feature = "tokio")]
mod on_tokio {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fail_after_stops_a_tokio_sleep_at_its_deadline() {
        let start = tokio::time::Instant::now();
        let dropped = Cell::new(None);
        let out = wherefore::fail_after(millis(20), async {
            let _probe = DropProbe(&dropped);
            tokio::time::sleep(millis(300)).await;
            Ok::<_, Cancelled>("slept")
        })
        .await;
        let timed_out = out.expect_err("the deadline stopped the sleep");
        assert_eq!(timed_out.timeout().after(), Some(millis(20)));
        assert_eq!(tokio::time::Instant::now() - start, millis(20));
        assert!(
            dropped.get().is_some(),
            "the body was dropped, and what it held released"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn fail_after_stops_a_socket_read_that_never_completes() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (_server, _) = listener.accept().await.unwrap(); // never writes
        let start = tokio::time::Instant::now();
        let out = wherefore::fail_after(millis(50), async {
            let mut buf = [0; 16];
            client.read(&mut buf).await // an `io::Error` is a `CancelError`
        })
        .await;
        assert!(out.is_err(), "timed out: {out:?}");
        assert_eq!(tokio::time::Instant::now() - start, millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn a_tokio_sleep_inside_a_shield_is_not_cut_short_but_its_grace_cuts_it() {
        let start = tokio::time::Instant::now();
        let out = wherefore::fail_after(millis(20), async {
            wherefore::shield(tokio::time::sleep(millis(300))).await; // cleanup: not cut
            let after_cleanup = tokio::time::Instant::now() - start;
            wherefore::checkpoint().await?; // then the timeout is seen
            Ok::<_, Cancelled>(after_cleanup)
        })
        .await;
        assert!(out.is_err(), "timed out after the cleanup");
        assert_eq!(tokio::time::Instant::now() - start, millis(300));

        let start = tokio::time::Instant::now();
        let cut = wherefore::shield_with_grace(millis(50), async {
            tokio::time::sleep(millis(300)).await; // a cleanup that hangs
            Ok::<_, Cancelled>(())
        })
        .await;
        assert!(
            matches!(cut, Ok(None)),
            "cut at the grace deadline: {cut:?}"
        );
        assert_eq!(tokio::time::Instant::now() - start, millis(50));
    }

    /// A body mixing foreign awaits and cancellation points: wherever it is when the deadline
    /// passes, it ends then, with the timeout.
    #[tokio::test(start_paused = true)]
    async fn a_body_mixing_foreign_awaits_and_checkpoints_ends_at_the_deadline() {
        for deadline in [millis(10), millis(35), millis(50)] {
            let start = tokio::time::Instant::now();
            let steps = Cell::new(0);
            let out = wherefore::fail_after(deadline, async {
                tokio::time::sleep(millis(20)).await; // foreign
                steps.set(1);
                wherefore::sleep(millis(20)).await?; // a cancellation point
                steps.set(2);
                tokio::time::sleep(millis(20)).await; // foreign
                steps.set(3);
                Ok::<_, Cancelled>(())
            })
            .await;
            assert!(out.is_err(), "{deadline:?}: {out:?}");
            assert_eq!(tokio::time::Instant::now() - start, deadline);
            let expected = (deadline.as_millis() / 20) as u32;
            assert_eq!(steps.get(), expected, "{deadline:?}");
        }
    }

    /// A member blocked in foreign I/O when a sibling fails ends at once, `Cancelled` with the
    /// sibling's failure as the cause, instead of holding the nursery until its I/O completes.
    #[tokio::test(start_paused = true)]
    async fn a_member_blocked_in_a_foreign_future_is_cancelled_when_a_sibling_fails() {
        let start = tokio::time::Instant::now();
        let out = wherefore::nursery(async |n: Nursery<'_, BoxError>| {
            let mut reader = n
                .spawn_named("reader", async {
                    tokio::time::sleep(Duration::from_secs(3600)).await; // foreign I/O
                    Ok(())
                })
                .unwrap();
            n.start_soon_named("fetch", async {
                tokio::time::sleep(millis(10)).await;
                Err::<(), BoxError>("upstream gone".into())
            })
            .unwrap();
            let exit = wherefore::shield(reader.join()).await.unwrap();
            let TaskExit::Cancelled(cause) = exit else {
                panic!("the reader was not cancelled: {exit}")
            };
            assert!(
                cause
                    .to_string()
                    .starts_with("sibling task \"fetch\" (spawned at tests/foreign_futures.rs:"),
                "{cause}"
            );
            Ok(())
        })
        .await;
        let failures = out.unwrap_err().into_failures();
        assert_eq!(failures.len(), 1, "the reader was cancelled, not failed");
        assert_eq!(tokio::time::Instant::now() - start, millis(10), "promptly");
    }
}

/// On the embedded runtime's virtual clock: `pending()` forever, stopped at the deadline.
#[test]
fn fail_after_stops_a_future_that_never_completes() {
    block_on(async {
        let start = wherefore::now();
        let out = wherefore::fail_after(secs(5), async {
            futures::future::pending::<()>().await;
            Ok::<_, Cancelled>(())
        })
        .await;
        assert!(out.is_err());
        assert_eq!(wherefore::now() - start, secs(5));
    });
}

/// An outer scope's cancellation reaches a foreign future inside an inner scope: the inner scope
/// passes the cancellation on (it is not its own), and the outer one absorbs it.
#[test]
fn a_cancellation_reaches_a_foreign_future_through_an_inner_scope() {
    block_on(async {
        let outer = Scope::named("outer");
        let stop = outer.handle();
        let inner_saw = Cell::new(None);
        let out = outer
            .run(wherefore::nursery_local(
                async |n: LocalNursery<'_, Cancelled>| {
                    n.start_soon(async {
                        wherefore::sleep(secs(1)).await?;
                        stop.cancel_with("stop");
                        Ok(())
                    })
                    .unwrap();
                    let inner = Scope::named("inner")
                        .run(async {
                            futures::future::pending::<()>().await;
                            Ok::<_, Cancelled>(())
                        })
                        .await;
                    inner_saw.set(Some(match &inner {
                        Err(cancelled) => cancelled.cause().to_string(),
                        Ok(other) => format!("{other:?}"),
                    }));
                    inner?;
                    Ok(())
                },
            ))
            .await;
        assert!(matches!(out, Ok(None)), "{out:?}");
        let saw = inner_saw.take().unwrap();
        // The chain names the scopes between: the nursery's, then "outer", which was cancelled.
        assert!(
            saw.contains("parent scope \"outer\" was cancelled: explicit (\"stop\")"),
            "{saw}"
        );
    });
}

/// The nursery's own body, blocked in a foreign future, is ended when a member fails.
#[test]
fn a_nursery_body_blocked_in_a_foreign_future_ends_when_a_member_fails() {
    block_on(async {
        let start = wherefore::now();
        let out = wherefore::nursery(async |n: Nursery<'_, BoxError>| {
            n.start_soon_named("fetch", async {
                wherefore::sleep(secs(2)).await?;
                Err::<(), BoxError>("no route".into())
            })
            .unwrap();
            futures::future::pending::<()>().await;
            Ok(())
        })
        .await;
        let Err(NurseryError::Failed(failures)) = out else {
            panic!("{out:?}")
        };
        assert_eq!(failures.len(), 1, "the body was cancelled, not failed");
        assert_eq!(wherefore::now() - start, secs(2));
    });
}

/// A persistent group's shutdown ends a member blocked in a foreign future at once (it is
/// cancelled; a shield would have kept it for the grace period).
#[test]
fn a_group_shutdown_ends_a_member_blocked_in_a_foreign_future() {
    block_on(async {
        let start = wherefore::now();
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let jobs = n.persistent_group::<Cancelled>("jobs");
            jobs.start_soon_named("stuck", async {
                futures::future::pending::<()>().await;
                Ok(())
            })
            .unwrap();
            wherefore::checkpoint().await?;
            let report = jobs.shutdown(secs(30)).await;
            assert_eq!(
                (report.cancelled(), report.dropped().len()),
                (1, 0),
                "{report}"
            );
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(
            wherefore::now() - start,
            secs(0),
            "not held for the grace period"
        );
    });
}

/// Starts a member named `name` that holds `held` while it is blocked in a foreign future, lets
/// it block, and cancels the nursery: the member is ended there, and `held` dropped.
async fn cancel_while_blocked_holding<'env, H: Send + 'env>(
    n: &Nursery<'env, Cancelled>,
    name: &str,
    held: H,
) -> Result<(), Cancelled> {
    n.start_soon_named(name.to_owned(), async move {
        let _held = held;
        futures::future::pending::<()>().await;
        Ok(())
    })
    .unwrap();
    wherefore::checkpoint().await?;
    n.cancel_handle().cancel_with("stop");
    Ok(())
}

/// A member ended where it is blocked in a foreign future is dropped after the nursery has let
/// go of its set: a drop that spawns into the same nursery is handed its future back (the
/// nursery is cancelled but open), instead of deadlocking.
#[test]
fn a_reached_member_whose_drop_spawns_into_its_nursery_does_not_hang() {
    struct SpawnsOnDrop<'a>(Nursery<'a, Cancelled>, &'a std::sync::atomic::AtomicBool);
    impl Drop for SpawnsOnDrop<'_> {
        fn drop(&mut self) {
            let spawned = self.0.spawn(async { Ok(()) });
            self.1
                .store(spawned.is_ok(), std::sync::atomic::Ordering::SeqCst);
        }
    }
    let accepted = std::sync::atomic::AtomicBool::new(false);
    block_on(async {
        let out = wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let guard = SpawnsOnDrop(n.clone(), &accepted);
            cancel_while_blocked_holding(&n, "holder", guard).await
        })
        .await;
        assert!(out.is_ok(), "{out:?}");
    });
    assert!(
        accepted.into_inner(),
        "the spawn from the drop was accepted (S4) and ran"
    );
}

/// A member ended where it is blocked, whose drop panics: the panic is the member's, reported as
/// its failure (here collected), and the nursery returns.
#[test]
fn a_reached_member_whose_drop_panics_is_a_failure() {
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("drop panicked");
        }
    }
    block_on(async {
        let out = wherefore::NurseryBuilder::named("crew")
            .collect_panics()
            .run(async |n: Nursery<'_, Cancelled>| {
                cancel_while_blocked_holding(&n, "fragile", PanicsOnDrop).await
            })
            .await;
        let failures = out.unwrap_err().into_failures();
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].task().name(), Some("fragile"));
        assert!(
            matches!(failures[0].kind(), wherefore::FailureKind::Panic(m) if m == "drop panicked")
        );
    });
}
