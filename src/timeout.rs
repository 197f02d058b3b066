//! Timeouts: scopes with a deadline that either move on (`None`) or fail (`TimedOut`).

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::body_poll::{BodyPoll, poll_in_steps};
use crate::cancelled::{CancelError, TimedOut};
use crate::cause::{Cause, Timeout};
use crate::planned_scope::PlannedScope;
use crate::scope::{CancelHandle, absorbed, catches, moved_on, reached};
use crate::scope_tree::{ScopeNode, TimeoutSlot};
use crate::sync::Frozen;

/// Runs `body` with a timeout; on timeout, moves on with `Ok(None)`.
///
/// The body is cancelled when the timeout passes: its next cancellation point fails with a
/// [`Cause::Timeout`] naming this scope, the body returns that error with `?`, and this scope
/// absorbs it. Any other error passes through as `Err`. See [`Scope::run`](crate::Scope::run) for
/// the full rules.
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
/// let slow = async {
///     wherefore::sleep(Duration::from_secs(60)).await?;
///     Ok::<_, wherefore::Cancelled>("slow")
/// };
/// match wherefore::move_on_after(Duration::from_secs(5), slow).await? {
///     Some(v) => println!("got {v}"),
///     None => println!("gave up after 5s"),
/// }
/// # Ok::<(), wherefore::Cancelled>(())
/// # }).unwrap();
/// ```
#[track_caller]
pub fn move_on_after<F, T, E>(timeout: Duration, body: F) -> MoveOnAfter<F>
where
    F: Future<Output = Result<T, E>>,
    E: CancelError,
{
    MoveOnAfter::new(TimeoutSlot::after(timeout, Location::caller()), body)
}

/// Runs `body` until `deadline`; past it, moves on with `Ok(None)`. See [`move_on_after`].
///
/// # Panics
///
/// When the deadline has to be armed (the future's first poll) and no clock is there: outside
/// `wherefore::run`, `wherefore::testing::block_on` and, with the `tokio` feature, a tokio
/// runtime. The message names the fix, as tokio's "no reactor running" does (DESIGN.md, "Time").
///
/// ```
/// # wherefore::testing::block_on(async {
/// let deadline = wherefore::now() + std::time::Duration::from_secs(1);
/// let out = wherefore::move_on_at(deadline, async { Ok::<_, wherefore::Cancelled>(1) }).await;
/// assert_eq!(out.unwrap(), Some(1));
/// # });
/// ```
#[track_caller]
pub fn move_on_at<F, T, E>(deadline: Instant, body: F) -> MoveOnAfter<F>
where
    F: Future<Output = Result<T, E>>,
    E: CancelError,
{
    MoveOnAfter::new(TimeoutSlot::at(deadline, Location::caller()), body)
}

pin_project_lite::pin_project! {
    /// Future returned by [`move_on_after`] and [`move_on_at`]: resolves to `Ok(Some(value))`,
    /// `Ok(None)` when it timed out (or absorbed another cancellation of its own), or `Err(e)`,
    /// as [`Scope::run`](crate::Scope::run) does.
    ///
    /// It is a scope with a deadline that takes no room in the scope tree until something needs
    /// it there: see DESIGN.md, "Unrecorded timeout scopes". While it runs so, the deadline's
    /// timer is stored in this future, linked into the clock's wheel (nothing is allocated for
    /// it); hence the future is `!Unpin`, as tokio's `Timeout` is: pin it (`std::pin::pin!`,
    /// `Box::pin`) to poll it through a reference, as in `tokio::select!` on a `&mut`.
    ///
    /// ```
    /// let fut: wherefore::MoveOnAfter<_> = wherefore::move_on_after(
    ///     std::time::Duration::from_secs(1),
    ///     async { Ok::<_, wherefore::Cancelled>(7) },
    /// );
    /// assert_eq!(wherefore::testing::block_on(fut).unwrap(), Some(7));
    ///
    /// // Pinned, it is polled through a reference (here, in a `select`):
    /// let mut fut = std::pin::pin!(wherefore::move_on_after(
    ///     std::time::Duration::from_secs(1),
    ///     async { Ok::<_, wherefore::Cancelled>(8) },
    /// ));
    /// let first = wherefore::testing::block_on(async {
    ///     futures::future::select(fut.as_mut(), std::future::pending::<()>()).await
    /// });
    /// assert!(matches!(first, futures::future::Either::Left((Ok(Some(8)), _))));
    /// ```
    #[derive(Debug)]
    #[must_use = "futures do nothing unless awaited"]
    pub struct MoveOnAfter<F> {
        #[pin]
        inner: PlannedScope<F>,
    }
}

impl<F: Future> MoveOnAfter<F> {
    fn new(slot: TimeoutSlot, body: F) -> Self {
        MoveOnAfter {
            inner: PlannedScope::new(slot, body),
        }
    }

    /// Begins a poll of the body in the scope (`body_poll.rs`).
    #[cfg_attr(debug_assertions, inline(never))] // out of the frame nested scopes recurse through
    #[cfg_attr(not(debug_assertions), inline)]
    fn begin<'a>(self: Pin<&'a mut Self>, cx: &mut Context<'_>) -> BodyPoll<'a, F> {
        self.project().inner.begin(cx)
    }
}

impl<F> MoveOnAfter<F> {
    /// Names the timeout's scope, as [`Scope::named`](crate::Scope::named) names a scope: the
    /// name shows in its causes (`scope "db-query" timed out after 2s`), its handle's
    /// [`scope`](CancelHandle::scope), journals and hang reports, where an unnamed timeout shows
    /// as `scope#N`.
    ///
    /// The scope stays unrecorded all the same (DESIGN.md, "Unrecorded timeout scopes"): the
    /// name waits in this future, and the scope's record takes it if one is made.
    ///
    /// # Panics
    ///
    /// When the scope was handed out unnamed: a [`handle`](Self::handle) to it is alive, or one
    /// cancelled it (its cause names the scope as it was). Name it first, then take its handle.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use std::time::Duration;
    /// let query = wherefore::move_on_after(Duration::from_secs(2), async {
    ///     wherefore::sleep(Duration::from_secs(5)).await?;
    ///     Ok::<_, wherefore::Cancelled>("rows")
    /// })
    /// .named("db-query");
    /// let handle = query.handle();
    /// assert_eq!(query.await.unwrap(), None); // gave up after 2s
    /// assert_eq!(handle.scope().name(), Some("db-query"));
    /// let cause = handle.cause().unwrap().to_string();
    /// assert!(cause.starts_with("scope \"db-query\" timed out after 2s (deadline set at "));
    /// # });
    /// ```
    #[track_caller]
    pub fn named(mut self, name: impl Into<Frozen<str>>) -> Self {
        self.inner.name(name.into());
        self
    }

    /// A handle to the scope this future runs its body in (which records the scope, if it was
    /// not: see DESIGN.md).
    ///
    /// ```
    /// let fut = wherefore::move_on_after(std::time::Duration::from_secs(1), async {
    ///     Ok::<_, wherefore::Cancelled>(())
    /// });
    /// let handle = fut.handle();
    /// assert!(handle.deadline().is_none()); // relative: fixed when entered
    /// handle.cancel(); // before entry: the body starts cancelled
    /// assert_eq!(wherefore::testing::block_on(fut).unwrap(), Some(()));
    /// ```
    pub fn handle(&self) -> CancelHandle {
        CancelHandle::from_node(self.inner.record())
    }
}

impl<F, T, E> Future for MoveOnAfter<F>
where
    F: Future<Output = Result<T, E>>,
    E: CancelError,
{
    type Output = Result<Option<T>, E>;

    #[cfg_attr(debug_assertions, inline(always))] // nested scopes recurse through it (`body_poll.rs`)
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let ended = poll_in_steps!(self.as_mut().begin(cx), cx, |ended, _, _| ended);
        move_on(self.project().inner, ended)
    }
}

/// How a [`MoveOnAfter`] resolves once its body's poll ended: out of the frame nested scopes
/// recurse through (`body_poll.rs`).
#[cfg_attr(debug_assertions, inline(never))]
#[cfg_attr(not(debug_assertions), inline)]
fn move_on<F, T, E: CancelError>(
    mut inner: Pin<&mut PlannedScope<F>>,
    polled: Poll<Option<Result<T, E>>>,
) -> Poll<Result<Option<T>, E>> {
    let Poll::Ready(polled) = polled else {
        return Poll::Pending;
    };
    let result = reached(polled, inner.as_mut().reach());
    let absorbed = inner
        .as_mut()
        .recorded()
        .is_some_and(|node| catches(node, &result));
    inner.exit();
    Poll::Ready(moved_on(result, absorbed))
}

/// Runs `body` with a timeout; on timeout, fails with [`TimedOut`].
///
/// Resolves to `Ok(body's result)` or `Err(TimedOut)`, like `tokio::time::timeout`. The error
/// is produced only when this scope's own deadline fired (S6): if an enclosing scope or an
/// explicit cancel stopped the body, its `Cancelled` comes back unchanged inside `Ok(Err(_))`.
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
/// let out = wherefore::fail_after(Duration::from_secs(1), async {
///     wherefore::sleep(Duration::from_secs(5)).await?;
///     Ok::<_, wherefore::Cancelled>(())
/// })
/// .await;
/// let err = out.unwrap_err();
/// assert!(err.to_string().contains("timed out after 1s"));
/// # });
/// ```
#[track_caller]
pub fn fail_after<F, T, E>(timeout: Duration, body: F) -> FailAfter<F>
where
    F: Future<Output = Result<T, E>>,
    E: CancelError,
{
    FailAfter::new(TimeoutSlot::after(timeout, Location::caller()), body)
}

/// Runs `body` until `deadline`; past it, fails with [`TimedOut`]. See [`fail_after`].
///
/// # Panics
///
/// When the deadline has to be armed (the future's first poll) and no clock is there: outside
/// `wherefore::run`, `wherefore::testing::block_on` and, with the `tokio` feature, a tokio
/// runtime. The message names the fix, as tokio's "no reactor running" does (DESIGN.md, "Time").
///
/// ```
/// # wherefore::testing::block_on(async {
/// let deadline = wherefore::now();
/// let out = wherefore::fail_at(deadline, wherefore::checkpoint()).await;
/// assert!(out.is_err());
/// # });
/// ```
#[track_caller]
pub fn fail_at<F, T, E>(deadline: Instant, body: F) -> FailAfter<F>
where
    F: Future<Output = Result<T, E>>,
    E: CancelError,
{
    FailAfter::new(TimeoutSlot::at(deadline, Location::caller()), body)
}

pin_project_lite::pin_project! {
    /// Future returned by [`fail_after`] and [`fail_at`].
    ///
    /// Like [`MoveOnAfter`], it is `!Unpin` (its deadline's timer is stored in it while it
    /// runs): pin it to poll it through a reference.
    ///
    /// ```
    /// let fut: wherefore::FailAfter<_> =
    ///     wherefore::fail_after(std::time::Duration::from_secs(1), wherefore::checkpoint());
    /// let fut = std::pin::pin!(fut);
    /// assert!(wherefore::testing::block_on(fut).is_ok());
    /// ```
    #[derive(Debug)]
    #[must_use = "futures do nothing unless awaited"]
    pub struct FailAfter<F> {
        #[pin]
        inner: PlannedScope<F>,
    }
}

impl<F: Future> FailAfter<F> {
    fn new(slot: TimeoutSlot, body: F) -> Self {
        FailAfter {
            inner: PlannedScope::new(slot, body),
        }
    }

    /// Begins a poll of the body in the scope (`body_poll.rs`).
    #[cfg_attr(debug_assertions, inline(never))] // out of the frame nested scopes recurse through
    #[cfg_attr(not(debug_assertions), inline)]
    fn begin<'a>(self: Pin<&'a mut Self>, cx: &mut Context<'_>) -> BodyPoll<'a, F> {
        self.project().inner.begin(cx)
    }
}

impl<F> FailAfter<F> {
    /// Names the timeout's scope, as [`MoveOnAfter::named`] does: the name shows in its causes,
    /// its handle, journals and hang reports, and in the [`TimedOut`] it fails with.
    ///
    /// # Panics
    ///
    /// When the scope was handed out unnamed: a [`handle`](Self::handle) to it is alive, or one
    /// cancelled it. Name it first, then take its handle.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use std::time::Duration;
    /// let handshake = wherefore::sleep(Duration::from_secs(3));
    /// let err = wherefore::fail_after(Duration::from_secs(1), handshake)
    ///     .named("handshake")
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.timeout().scope().name(), Some("handshake"));
    /// assert!(err.to_string().starts_with("scope \"handshake\" timed out after 1s (deadline set at "));
    /// # });
    /// ```
    #[track_caller]
    pub fn named(mut self, name: impl Into<Frozen<str>>) -> Self {
        self.inner.name(name.into());
        self
    }

    /// A handle to the scope this future runs its body in (which records the scope, if it was
    /// not: see DESIGN.md). Cancelling it is not a timeout: the body's `Cancelled` comes back in
    /// `Ok(Err(_))`, as for any cancellation that is not the scope's own deadline (S6).
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use std::time::Duration;
    /// let fut = wherefore::fail_after(Duration::from_secs(60), wherefore::sleep(Duration::from_secs(90)));
    /// let handle = fut.handle();
    /// handle.set_timeout(Duration::from_secs(1)); // before entry: counts from entry
    /// let err = fut.await.unwrap_err(); // the moved deadline fired: a timeout all the same
    /// assert_eq!(err.timeout().after(), Some(Duration::from_secs(1)));
    /// # });
    /// ```
    pub fn handle(&self) -> CancelHandle {
        CancelHandle::from_node(self.inner.record())
    }
}

impl<F, T, E> Future for FailAfter<F>
where
    F: Future<Output = Result<T, E>>,
    E: CancelError,
{
    type Output = Result<Result<T, E>, TimedOut>;

    #[cfg_attr(debug_assertions, inline(always))] // nested scopes recurse through it (`body_poll.rs`)
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let ended = poll_in_steps!(self.as_mut().begin(cx), cx, |ended, _, _| ended);
        fail(self.project().inner, ended)
    }
}

/// How a [`FailAfter`] resolves once its body's poll ended: out of the frame nested scopes
/// recurse through (`body_poll.rs`).
#[cfg_attr(debug_assertions, inline(never))]
#[cfg_attr(not(debug_assertions), inline)]
fn fail<F, T, E: CancelError>(
    mut inner: Pin<&mut PlannedScope<F>>,
    polled: Poll<Option<Result<T, E>>>,
) -> Poll<Result<Result<T, E>, TimedOut>> {
    let Poll::Ready(polled) = polled else {
        return Poll::Pending;
    };
    let result = reached(polled, inner.as_mut().reach());
    // An unrecorded scope was never cancelled: it absorbs nothing, and did not time out.
    let timed_out = match inner.as_mut().recorded() {
        Some(node) => match own_timeout(node) {
            Some(timeout) if absorbed(node, &result) => {
                node.set_caught();
                Some(TimedOut { timeout })
            }
            _ => None,
        },
        None => None,
    };
    inner.exit();
    Poll::Ready(match timed_out {
        Some(timed_out) => Err(timed_out),
        None => Ok(result),
    })
}

/// The scope's own timeout, if that is what cancelled it (its effective cause).
fn own_timeout(node: &ScopeNode) -> Option<Timeout> {
    match node.own_cause() {
        Some(Cause::Timeout(timeout)) if node.cause().is_some_and(|c| c.is_timeout()) => {
            Some(timeout)
        }
        _ => None,
    }
}
