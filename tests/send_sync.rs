//! Which public types are `Send`, `Sync`, `Clone`: checked at compile time.

use wherefore::*;

fn send_sync<T: Send + Sync>() {}
fn clone<T: Clone>() {}

#[test]
fn handles_causes_and_errors_cross_threads() {
    send_sync::<CancelHandle>();
    clone::<CancelHandle>();
    send_sync::<Cause>();
    clone::<Cause>();
    send_sync::<Cancelled>();
    send_sync::<TimedOut>();
    send_sync::<ScopeInfo>();
    send_sync::<TaskInfo>();
    send_sync::<Scope>();
    send_sync::<Sleep>();
    send_sync::<Checkpoint>();
    send_sync::<CancelledFuture>();
    send_sync::<NurseryError<Cancelled>>();
    send_sync::<testing::Stuck>();
    send_sync::<MoveOnAfter<Checkpoint>>();
    send_sync::<FailAfter<Checkpoint>>();
    send_sync::<ScopeFuture<Checkpoint>>();
    send_sync::<ShieldWithGrace<Checkpoint>>();
    send_sync::<SleepForever>();
    send_sync::<YieldNow>();
    send_sync::<testing::WaitAllTasksBlocked>();
}

#[test]
fn futures_are_send_when_their_body_is() {
    fn send<T: Send>(_: &T) {}
    let body = async { Ok::<_, Cancelled>(()) };
    send(&wherefore::move_on_after(
        std::time::Duration::from_secs(1),
        body,
    ));
    send(&wherefore::shield(async {}));
    send(&wherefore::shield_with_grace(
        std::time::Duration::from_secs(1),
        async { Ok::<_, Cancelled>(()) },
    ));
    send(&wherefore::guard(async {}));
    send(&wherefore::fail_after(
        std::time::Duration::from_secs(1),
        async { Ok::<_, Cancelled>(()) },
    ));
}

#[test]
fn persistent_groups_and_their_reports_cross_threads() {
    send_sync::<PersistentGroup<Cancelled>>();
    clone::<PersistentGroup<BoxError>>();
    send_sync::<ShutdownReport>();
    send_sync::<DroppedMember>();
    send_sync::<Shutdown<Cancelled>>();
    send_sync::<event::Event>();
    send_sync::<TreeSnapshot>();
    send_sync::<testing::Journal>();
}

fn send<T: Send>(_: &T) {}

#[test]
fn a_nursery_future_is_send_when_its_members_are() {
    send_sync::<Nursery<'static, Cancelled>>();
    clone::<Nursery<'static, Cancelled>>();
    send_sync::<JoinHandle<String>>();
    send_sync::<Join<String>>();
    send_sync::<ScopeCancelled>();
    let borrowed = std::sync::atomic::AtomicU32::new(0);
    let nursery = wherefore::nursery(async |n: Nursery<'_, NurseryError<Cancelled>>| {
        let borrowed = &borrowed; // members may borrow what is `Sync`
        let mut child = n
            .spawn(async move {
                borrowed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(String::from("done"))
            })
            .unwrap();
        // A nursery inside a member.
        n.start_soon(wherefore::nursery(async |m: Nursery<'_, Cancelled>| {
            m.start_soon(wherefore::checkpoint()).unwrap();
            Ok(())
        }))
        .unwrap();
        Ok(child.join().await?.completed())
    });
    send(&nursery);
    let built =
        NurseryBuilder::named("built")
            .collect_panics()
            .run(async |n: Nursery<'_, Cancelled>| {
                let group = n.persistent_group::<Cancelled>("jobs");
                group.start_soon(async { Ok(()) }).unwrap();
                let _ = group.drain().await;
                Ok(())
            });
    send(&built);
}

/// Compiled, not run: the places a `Send` future is required.
#[allow(dead_code, clippy::let_underscore_future)]
#[cfg(feature = "tokio")]
async fn where_send_futures_are_required() {
    // A request handler's task.
    let _ = ::tokio::spawn(wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
        n.start_soon(async { Ok(()) }).unwrap();
        Ok(())
    }));
    // A nursery inside a worker member (`Send + 'static`).
    let _ = wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
        drop(
            n.spawn_worker(async {
                wherefore::nursery(async |inner: Nursery<'_, Cancelled>| {
                    inner.start_soon(async { Ok(()) }).unwrap();
                    Ok(())
                })
                .await
                .map_err(|_| -> Cancelled { unreachable!() })
            })
            .unwrap(),
        );
        Ok(())
    })
    .await;
}

#[test]
fn a_local_nursery_holds_members_that_are_not_send() {
    fn not_send<T>(_: &T) -> bool {
        // True for every type; the point is that the call below compiles for an `Rc`.
        true
    }
    let shared = std::rc::Rc::new(std::cell::Cell::new(0));
    let local = wherefore::nursery_local(async |n: LocalNursery<'_, Cancelled>| {
        let shared = shared.clone();
        drop(
            n.spawn(async move {
                shared.set(shared.get() + 1);
                Ok(shared)
            })
            .unwrap(),
        );
        Ok(())
    });
    assert!(not_send(&local));
    wherefore::testing::block_on(local).unwrap();
    assert_eq!(shared.get(), 1);
}
