//! How deep scopes nest on a thread's stack (issue 24, item 7).
//!
//! Polling nested futures recurses by nature: every level of nesting is at least one frame on
//! the stack of the thread that polls it. What a scope adds to its level is its poll's frame,
//! which keeps only the body's poll (`body_poll.rs`); that matters most in a debug build, where
//! every temporary of a function has its own slot. These tests run on a thread of std's default
//! size for spawned threads, 2 MiB, in whatever profile the tests are built in (debug under
//! `cargo nextest run`). A stack overflow aborts the process it happens in: under nextest, which
//! runs every test in a process of its own, that fails this test alone.
//!
//! Each level here is a recursive type of the test's ([`Level`]) rather than a boxed `async`
//! block: in a debug build a boxed block awaiting a scope costs about 400 bytes a level by
//! itself, its box's poll included (DESIGN.md, "Stack"), which is the user's frame, not the
//! scope's.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use common::block_on;
use wherefore::{CancelHandle, Cancelled, Cause, Scope, ScopeFuture};

/// The stack of a thread spawned with std's default settings.
const DEFAULT_THREAD_STACK: usize = 2 * 1024 * 1024;

/// Runs `f` on a thread with std's default stack size (set explicitly, so that `RUST_MIN_STACK`
/// cannot make the test easier).
fn on_default_size_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(DEFAULT_THREAD_STACK)
        .spawn(f)
        .expect("spawn a thread")
        .join()
        .expect("the thread finished")
}

type Innermost = Pin<Box<dyn Future<Output = Result<(), Cancelled>> + Send>>;

/// One level of the nesting: a scope around the next level, or the innermost body.
enum Level {
    Scope(Pin<Box<ScopeFuture<Level>>>),
    Innermost(Innermost),
}

impl Level {
    /// `depth` scopes, one inside the other, around `innermost`; built in a loop.
    fn nest(depth: usize, innermost: Innermost) -> Level {
        let mut level = Level::Innermost(innermost);
        for _ in 0..depth {
            level = Level::Scope(Box::pin(Scope::new().run(level)));
        }
        level
    }
}

impl Future for Level {
    type Output = Result<(), Cancelled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Level::Scope(scope) => scope.as_mut().poll(cx).map(not_absorbed),
            Level::Innermost(body) => body.as_mut().poll(cx),
        }
    }
}

/// What a nested scope resolved to, which must not be a cancellation it absorbed: only the
/// outermost scope was cancelled.
fn not_absorbed(out: Result<Option<()>, Cancelled>) -> Result<(), Cancelled> {
    let value = out?;
    assert!(
        value.is_some(),
        "a nested scope absorbed its parent's cancellation"
    );
    Ok(())
}

#[test]
fn five_thousand_nested_scopes_are_entered_cancelled_and_left_on_a_default_size_thread() {
    const DEPTH: usize = 5_000;
    let seen: Arc<Mutex<Option<(Cause, CancelHandle)>>> = Arc::default();
    let innermost_saw = seen.clone();
    let (outermost, resolved) = on_default_size_thread(move || {
        block_on(async move {
            let outermost = Scope::named("outermost");
            let stop = outermost.handle();
            let outermost_handle = stop.clone();
            let innermost: Innermost = Box::pin(async move {
                let here = CancelHandle::current().expect("inside the innermost scope");
                stop.cancel_with("enough");
                let cancelled = wherefore::checkpoint().await.unwrap_err();
                *innermost_saw.lock().unwrap() = Some((cancelled.cause().clone(), here));
                Err(cancelled)
            });
            let resolved = outermost.run(Level::nest(DEPTH - 1, innermost)).await;
            (outermost_handle, resolved)
        })
    });

    // The cancellation of the outermost scope reached the innermost through every level ...
    let (cause, innermost) = seen.lock().unwrap().take().expect("the innermost body ran");
    assert_eq!(cause.chain().count(), DEPTH);
    assert!(cause.root().is_explicit());
    assert_eq!(cause.root().tag_as::<&str>(), Some(&"enough"));
    // ... went back up through them all, to be absorbed by the outermost, its owner ...
    assert!(matches!(resolved, Ok(None)), "{resolved:?}");
    assert!(outermost.cancelled_caught());
    // ... and every scope was left.
    assert!(innermost.has_exited());
    assert!(outermost.has_exited());
}
