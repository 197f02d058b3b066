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
