//! Shields: scopes that cancellation from outside cannot enter, so cleanup can still await.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::body_poll::{BodyPoll, poll_in_steps};
use crate::cancelled::CancelError;
use crate::reach::Reach;
use crate::scope::{CancelHandle, InScope, Scope, ScopeExit, ScopeFuture, named_too_late};
use crate::sync::Frozen;

/// Runs `body` in a shielded scope: cancellation of enclosing scopes does not reach it, so
/// cleanup after a cancellation can still await (sleep, I/O through [`guard`](crate::guard)).
///
/// A shield only blocks cancellation from above; when it ends, the enclosing cancellation is
/// still pending and the next cancellation point outside fails again (level-triggered, S1).
/// A shield without a deadline can hang forever: for cleanup that might, use
/// [`shield_with_grace`].
///
/// ```
/// # wherefore::testing::block_on(async {
/// use std::time::Duration;
/// use wherefore::Scope;
/// let scope = Scope::new();
/// let handle = scope.handle();
/// let out = scope
///     .run(async {
///         handle.cancel_with("shutdown");
///         let flushed = wherefore::shield(async {
///             wherefore::sleep(Duration::from_secs(1)).await?; // not cancelled in here
///             Ok::<_, wherefore::Cancelled>("flushed")
///         })
///         .await?;
///         assert_eq!(flushed, "flushed");
///         wherefore::checkpoint().await // cancelled again outside the shield
///     })
///     .await;
/// assert!(matches!(out, Ok(None)));
/// # });
/// ```
pub fn shield<F: Future>(body: F) -> Shielded<F> {
    Shielded {
        inner: InScope::new(Scope::new().shielded().into_node(), body),
    }
}

/// Runs `body` in a shielded scope with its own deadline: cleanup that can await, but for at
/// most `grace`. When the grace period passes, the body is cancelled with a
/// [`Cause::Timeout`](crate::Cause::Timeout) naming the shield, and this resolves to `Ok(None)`.
///
/// # Panics
///
/// When the deadline has to be armed (the future's first poll) and no clock is there: outside
/// `wherefore::run`, `wherefore::testing::block_on` and, with the `tokio` feature, a tokio
/// runtime. The message names the fix, as tokio's "no reactor running" does (DESIGN.md, "Time").
///
/// ```
/// # wherefore::testing::block_on(async {
/// use std::time::Duration;
/// let out = wherefore::shield_with_grace(Duration::from_secs(2), async {
///     wherefore::sleep(Duration::from_secs(60)).await?; // cleanup that hangs
///     Ok::<_, wherefore::Cancelled>(())
/// })
/// .await;
/// assert!(matches!(out, Ok(None))); // cut at the grace deadline
/// # });
/// ```
#[track_caller]
pub fn shield_with_grace<F, T, E>(grace: Duration, body: F) -> ShieldWithGrace<F>
where
    F: Future<Output = Result<T, E>>,
    E: CancelError,
{
    ShieldWithGrace {
        inner: Scope::new().shielded().with_timeout(grace).run(body),
    }
}

pin_project_lite::pin_project! {
    /// Future returned by [`shield_with_grace`]: resolves to `Ok(Some(value))`, `Ok(None)` when
    /// the grace period ran out (the body was cut short and ended with that cancellation), or
    /// `Err(e)`, as [`Scope::run`] does.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use std::time::Duration;
    /// let flush: wherefore::ShieldWithGrace<_> =
    ///     wherefore::shield_with_grace(Duration::from_secs(5), async { Ok::<_, wherefore::Cancelled>(3) });
    /// assert_eq!(flush.await.unwrap(), Some(3));
    /// # });
    /// ```
    #[derive(Debug)]
    #[must_use = "futures do nothing unless awaited"]
    pub struct ShieldWithGrace<F> {
        #[pin]
        inner: ScopeFuture<F>,
    }
}

impl<F> ShieldWithGrace<F> {
    /// Names the shield's scope, as [`Scope::named`] names a scope: the name shows in the
    /// `Timeout` cause of a grace period that ran out (`scope "flush" timed out after 5s`), in
    /// its handle, journals and hang reports.
    ///
    /// # Panics
    ///
    /// When the scope was handed out unnamed: a [`handle`](Self::handle) to it is alive, or one
    /// cancelled it. Name it first, then take its handle.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use std::time::Duration;
    /// let flush = wherefore::shield_with_grace(Duration::from_secs(5), async {
    ///     wherefore::sleep(Duration::from_secs(60)).await?; // cleanup that hangs
    ///     Ok::<_, wherefore::Cancelled>(())
    /// })
    /// .named("flush");
    /// let handle = flush.handle();
    /// assert!(matches!(flush.await, Ok(None))); // cut at the grace deadline
    /// let cause = handle.cause().unwrap().to_string();
    /// assert!(cause.starts_with("scope \"flush\" timed out after 5s"));
    /// # });
    /// ```
    #[track_caller]
    pub fn named(mut self, name: impl Into<Frozen<str>>) -> Self {
        if let Err(name) = self.inner.rename(name.into()) {
            named_too_late(&self.inner.handle().scope(), &name);
        }
        self
    }

    /// A handle to the shield's scope: to read why it was cancelled, move its grace deadline, or
    /// lower its shield.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use std::time::Duration;
    /// let cleanup = wherefore::shield_with_grace(Duration::from_secs(5), async {
    ///     wherefore::sleep(Duration::from_secs(60)).await?;
    ///     Ok::<_, wherefore::Cancelled>(())
    /// });
    /// let handle = cleanup.handle();
    /// assert!(handle.is_shielded());
    /// handle.cancel_with("give up"); // its own cancel reaches it, shield or not
    /// assert!(matches!(cleanup.await, Ok(None)));
    /// assert!(handle.cancelled_caught());
    /// # });
    /// ```
    pub fn handle(&self) -> CancelHandle {
        self.inner.handle()
    }
}

impl<F, T, E> Future for ShieldWithGrace<F>
where
    F: Future<Output = Result<T, E>>,
    E: CancelError,
{
    type Output = Result<Option<T>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

pin_project_lite::pin_project! {
    /// Future returned by [`shield`]. Resolves to the body's output.
    ///
    /// ```
    /// let cleanup: wherefore::Shielded<_> = wherefore::shield(async { "flushed" });
    /// assert_eq!(wherefore::testing::block_on(cleanup), "flushed");
    /// ```
    #[derive(Debug)]
    #[must_use = "futures do nothing unless awaited"]
    pub struct Shielded<F> {
        #[pin]
        inner: InScope<F>,
    }
}

impl<F: Future> Shielded<F> {
    /// Begins a poll of the body in the shield's scope (`body_poll.rs`).
    #[cfg_attr(debug_assertions, inline(never))] // out of the frame nested scopes recurse through
    #[cfg_attr(not(debug_assertions), inline)]
    fn begin<'a>(self: Pin<&'a mut Self>, cx: &mut Context<'_>) -> BodyPoll<'a, F, ScopeExit<'a>> {
        self.project().inner.begin(None, None, cx)
    }
}

impl<F: Future> Future for Shielded<F> {
    type Output = F::Output;

    #[cfg_attr(debug_assertions, inline(always))] // nested scopes recurse through it (`body_poll.rs`)
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // No reach: nothing from outside drops what a shield protects (S19), and no deadline of
        // its own could.
        poll_in_steps!(self.begin(cx), cx, leave)
    }
}

/// How a shield resolves once its body's poll ended: out of the frame nested scopes recurse
/// through (`body_poll.rs`).
fn leave<T>(polled: Poll<Option<T>>, _: Option<&mut Reach>, scope: &mut ScopeExit<'_>) -> Poll<T> {
    let Poll::Ready(output) = polled else {
        return Poll::Pending;
    };
    scope.exit();
    match output {
        Some(output) => Poll::Ready(output),
        None => unreachable!("a body polled without reach is never dropped"),
    }
}
