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
//! Each level of scopes, shields and timeouts here is a recursive type of the test's
//! ([`nesting!`]) rather than a boxed `async` block: in a debug build a boxed block awaiting a
//! scope costs about 400 bytes a level by itself, its box's poll included (DESIGN.md, "Stack"),
//! which is the user's frame, not the scope's. Nurseries nest as boxed blocks.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use common::block_on;
use wherefore::{
    CancelError, CancelHandle, Cancelled, Cause, MoveOnAfter, Nursery, Scope, ScopeFuture, Shielded,
};

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

/// One level of nesting of one kind of scope: its future around the next level, or the innermost
/// body. A recursive type for each kind (`$level`), built in a loop by `$level::nest`; `$resolved`
/// turns what the kind's future resolves to back into the body's result.
macro_rules! nesting {
    ($level:ident, $future:ident, $wrap:expr, $resolved:expr) => {
        enum $level {
            Scope(Pin<Box<$future<$level>>>),
            Innermost(Innermost),
        }

        impl $level {
            /// `depth` scopes, one inside the other, around `innermost`.
            fn nest(depth: usize, innermost: Innermost) -> $level {
                let mut level = $level::Innermost(innermost);
                for _ in 0..depth {
                    level = $level::Scope(Box::pin($wrap(level)));
                }
                level
            }
        }

        impl Future for $level {
            type Output = Result<(), Cancelled>;

            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                match self.get_mut() {
                    $level::Scope(scope) => scope.as_mut().poll(cx).map($resolved),
                    $level::Innermost(body) => body.as_mut().poll(cx),
                }
            }
        }
    };
}

nesting!(
    ScopeLevel,
    ScopeFuture,
    |next| Scope::new().run(next),
    not_absorbed
);
nesting!(ShieldLevel, Shielded, wherefore::shield, |out| out);
nesting!(
    TimeoutLevel,
    MoveOnAfter,
    |next| wherefore::move_on_after(Duration::from_secs(2 * 3600), next),
    not_absorbed
);

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

/// What the innermost body saw: the cause of the cancellation that reached it (if one did), and
/// its scope.
type Seen = Arc<Mutex<Option<(Option<Cause>, CancelHandle)>>>;

/// An innermost body that notes its scope, runs `before` (which may cancel an outer scope),
/// then waits at a cancellation point for `wait` and notes the cancellation that reached it.
fn innermost(seen: &Seen, before: impl FnOnce() + Send + 'static, wait: Duration) -> Innermost {
    let seen = seen.clone();
    Box::pin(async move {
        let here = CancelHandle::current().expect("inside the innermost scope");
        before();
        let waited = wherefore::sleep(wait).await;
        *seen.lock().unwrap() = Some((waited.as_ref().err().map(|c| c.cause().clone()), here));
        waited
    })
}

/// What [`cancelled_from_the_innermost`] saw of a cancellation that reached through the nesting.
struct Reached {
    /// The cause of the cancellation that reached the innermost body.
    cause: Cause,
    /// The innermost scope, and the outermost.
    innermost: CancelHandle,
    outermost: CancelHandle,
    /// What the outermost scope resolved to.
    resolved: Result<Option<()>, Cancelled>,
}

/// Runs the nesting `nest` makes around an innermost body inside an outermost scope, on a
/// default-size thread; the innermost body cancels the outermost scope, then waits at a
/// cancellation point.
fn cancelled_from_the_innermost<N>(nest: impl FnOnce(Innermost) -> N + Send + 'static) -> Reached
where
    N: Future<Output = Result<(), Cancelled>>,
{
    let seen = Seen::default();
    let in_the_innermost = seen.clone();
    let (outermost, resolved) = on_default_size_thread(move || {
        block_on(async move {
            let outermost = Scope::named("outermost");
            let stop = outermost.handle();
            let handle = stop.clone();
            let cancel = move || assert!(stop.cancel_with("enough"));
            let body = innermost(&in_the_innermost, cancel, Duration::ZERO);
            let resolved = outermost.run(nest(body)).await;
            (handle, resolved)
        })
    });
    let (cause, innermost) = seen.lock().unwrap().take().expect("the innermost body ran");
    Reached {
        cause: cause.expect("the innermost body was cancelled"),
        innermost,
        outermost,
        resolved,
    }
}

#[test]
fn five_thousand_nested_scopes_are_entered_cancelled_and_left_on_a_default_size_thread() {
    const DEPTH: usize = 5_000;
    let seen = cancelled_from_the_innermost(|body| ScopeLevel::nest(DEPTH - 1, body));

    // The cancellation of the outermost scope reached the innermost through every level ...
    assert_eq!(seen.cause.chain().count(), DEPTH);
    assert!(seen.cause.root().is_explicit());
    assert_eq!(seen.cause.root().tag_as::<&str>(), Some(&"enough"));
    // ... went back up through them all, to be absorbed by the outermost, its owner ...
    assert!(matches!(seen.resolved, Ok(None)), "{:?}", seen.resolved);
    assert!(seen.outermost.cancelled_caught());
    // ... and every scope was left.
    assert!(seen.innermost.has_exited());
    assert!(seen.outermost.has_exited());
}

#[test]
fn five_thousand_nested_shields_keep_an_outer_cancellation_out_on_a_default_size_thread() {
    const DEPTH: usize = 5_000;
    let seen = Seen::default();
    let in_the_innermost = seen.clone();
    let resolved = on_default_size_thread(move || {
        block_on(async move {
            let outside = Scope::named("outside");
            let stop = outside.handle();
            let cancel = move || assert!(stop.cancel());
            let body = innermost(&in_the_innermost, cancel, Duration::from_secs(1));
            outside.run(ShieldLevel::nest(DEPTH, body)).await
        })
    });

    // The innermost body slept its second out, shielded from the cancellation outside ...
    let (cause, innermost) = seen.lock().unwrap().take().expect("the innermost body ran");
    assert_eq!(cause, None);
    assert!(innermost.is_shielded());
    assert!(innermost.has_exited());
    // ... and once out of the shields the outer scope's body returned what it returned.
    assert!(matches!(resolved, Ok(Some(()))), "{resolved:?}");
}

#[test]
fn four_thousand_nested_timeouts_are_entered_timed_out_and_left_on_a_default_size_thread() {
    const DEPTH: usize = 4_000;
    let seen = Seen::default();
    let in_the_innermost = seen.clone();
    let resolved = on_default_size_thread(move || {
        block_on(async move {
            // The inner timeouts are of two hours; the outermost, of one, passes first.
            let start = wherefore::now();
            let body = innermost(&in_the_innermost, || {}, Duration::from_secs(3 * 3600));
            let nested = TimeoutLevel::nest(DEPTH - 1, body);
            let resolved = wherefore::move_on_after(Duration::from_secs(3600), nested).await;
            (resolved, wherefore::now() - start)
        })
    });

    let (cause, innermost) = seen.lock().unwrap().take().expect("the innermost body ran");
    let cause = cause.expect("the innermost body was cancelled");
    assert_eq!(cause.chain().count(), DEPTH);
    assert!(cause.root().is_timeout());
    assert!(innermost.has_exited());
    let (resolved, took) = resolved;
    assert!(matches!(resolved, Ok(None)), "{resolved:?}");
    assert_eq!(took, Duration::from_secs(3600));
}

#[test]
fn a_thousand_nested_nurseries_are_entered_cancelled_and_left_on_a_default_size_thread() {
    const DEPTH: usize = 1_000;
    let seen = cancelled_from_the_innermost(|mut nested| {
        // Each level a boxed `async` block around a nursery whose body awaits the next, as a
        // recursive `async fn` would be (a nursery's future is not a type one can name).
        for _ in 0..DEPTH {
            let next = nested;
            nested = Box::pin(async move {
                wherefore::nursery(async move |_: Nursery<'_, Cancelled>| next.await)
                    .await
                    .map_err(|e| e.as_cancelled().expect("cancelled, not failed").clone())
            });
        }
        nested
    });

    assert_eq!(seen.cause.chain().count(), DEPTH + 1);
    assert_eq!(seen.cause.root().tag_as::<&str>(), Some(&"enough"));
    assert!(matches!(seen.resolved, Ok(None)), "{:?}", seen.resolved);
    assert!(seen.outermost.cancelled_caught());
    assert!(seen.innermost.has_exited());
}
