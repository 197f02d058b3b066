//! loom models of races in the scope tree, run against the real `wherefore` code.
//!
//! Build and run only with the crate-specific cfg (see DESIGN.md, "Model checking"):
//!
//! ```text
//! RUSTFLAGS="--cfg wherefore_loom" LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test -p loom-tests --release --target-dir target/loom
//! ```
#![cfg(wherefore_loom)]

use loom::thread;
use wherefore::{Cancelled, Cause, Scope};

fn tag_of(cause: &Cause) -> String {
    match cause.root() {
        Cause::Explicit(e) => format!("{:?}", e.tag().expect("tagged")),
        other => panic!("not explicit: {other}"),
    }
}

/// Two threads cancel the same scope with different causes: exactly one `cancel` call reports
/// that it took effect, and every observer sees that call's cause.
#[test]
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
