//! Timeouts: scopes with a deadline that either move on (`None`) or fail (`TimedOut`).

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::cancelled::{CancelError, TimedOut};
use crate::cause::Cause;
use crate::scope::{InScope, Scope, ScopeFuture, absorbed};

/// Runs `body` with a timeout; on timeout, moves on with `Ok(None)`.
///
/// The body is cancelled when the timeout passes: its next cancellation point fails with a
/// [`Cause::Timeout`] naming this scope, the body returns that error with `?`, and this scope
/// absorbs it. Any other error passes through as `Err`. See [`Scope::run`] for the full rules.
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
pub fn move_on_after<F, T, E>(timeout: Duration, body: F) -> ScopeFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: CancelError,
{
    Scope::timing_out(timeout, Location::caller()).run(body)
}

/// Runs `body` until `deadline`; past it, moves on with `Ok(None)`. See [`move_on_after`].
///
/// ```
/// # wherefore::testing::block_on(async {
/// let deadline = wherefore::now() + std::time::Duration::from_secs(1);
/// let out = wherefore::move_on_at(deadline, async { Ok::<_, wherefore::Cancelled>(1) }).await;
/// assert_eq!(out.unwrap(), Some(1));
/// # });
/// ```
#[track_caller]
pub fn move_on_at<F, T, E>(deadline: Instant, body: F) -> ScopeFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: CancelError,
{
    Scope::new().with_deadline(deadline).run(body)
}

/// Runs `body` with a timeout; on timeout, fails with [`TimedOut`].
///
/// Resolves to `Ok(body's result)` or `Err(TimedOut)`, like `tokio::time::timeout`. The error
/// is produced only when this scope's own deadline fired (S6): if an enclosing scope or an
/// explicit cancel stopped the body, its `Cancelled` comes back unchanged inside `Ok(Err(_))`.
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
    FailAfter::new(Scope::timing_out(timeout, Location::caller()), body)
}

/// Runs `body` until `deadline`; past it, fails with [`TimedOut`]. See [`fail_after`].
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
    FailAfter::new(Scope::new().with_deadline(deadline), body)
}

pin_project_lite::pin_project! {
    /// Future returned by [`fail_after`] and [`fail_at`].
    ///
    /// ```
    /// let fut: wherefore::FailAfter<_> =
    ///     wherefore::fail_after(std::time::Duration::from_secs(1), wherefore::checkpoint());
    /// assert!(wherefore::testing::block_on(fut).is_ok());
    /// ```
    #[derive(Debug)]
    #[must_use = "futures do nothing unless awaited"]
    pub struct FailAfter<F> {
        #[pin]
        inner: InScope<F>,
    }
}

impl<F: Future> FailAfter<F> {
    fn new(scope: Scope, body: F) -> Self {
        FailAfter {
            inner: InScope::new(scope.into_node(), body),
        }
    }
}

impl<F, T, E> Future for FailAfter<F>
where
    F: Future<Output = Result<T, E>>,
    E: CancelError,
{
    type Output = Result<Result<T, E>, TimedOut>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut inner = self.project().inner;
        let result = std::task::ready!(inner.as_mut().poll_body(cx));
        let node = inner.node();
        let absorbed = absorbed(node, &result);
        let own_timeout = match node.own_cause() {
            Some(Cause::Timeout(timeout))
                if node.cause().is_some_and(|c| c.kind() == "timeout") =>
            {
                Some(timeout)
            }
            _ => None,
        };
        inner.exit();
        Poll::Ready(match (absorbed, own_timeout) {
            (true, Some(timeout)) => Err(TimedOut { timeout }),
            _ => Ok(result),
        })
    }
}
