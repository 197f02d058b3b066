//! Making a foreign future a cancellation point.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::cancelled::Cancelled;
use crate::checkpoint::{CancelWait, parked};

/// Runs a foreign future as a cancellation point: it resolves with the future's output, or fails
/// with [`Cancelled`] as soon as the current scope is effectively cancelled, dropping the future
/// at that moment.
///
/// A foreign future needs no guard to be stopped: when the scope a task is blocked in is
/// cancelled, the scope future around it drops what it is blocked in and resolves as if a
/// cancellation point had failed (S19). Use `guard` where the cancellation should be an error
/// *at this await*, for the code after it to handle (clean up, answer, return a value) rather
/// than the whole body being dropped; and in a `join!` or `select!` whose other branches wait at
/// cancellation points, where the task counts as reachable through them and the foreign branch
/// would otherwise run on until it completes.
///
/// ```
/// # wherefore::testing::block_on(async {
/// use wherefore::Scope;
/// let scope = Scope::new();
/// let handle = scope.handle();
/// let out = scope
///     .run(async {
///         handle.cancel();
///         // A future that never completes by itself:
///         wherefore::guard(std::future::pending::<()>()).await?;
///         Ok::<(), wherefore::Cancelled>(())
///     })
///     .await;
/// assert!(matches!(out, Ok(None)));
/// # });
/// ```
pub fn guard<F: Future>(future: F) -> Guarded<F> {
    Guarded {
        future: Some(future),
        wait: CancelWait::default(),
    }
}

/// `.cancellable()` on any future: the method form of [`guard`].
///
/// ```
/// # wherefore::testing::block_on(async {
/// use wherefore::Cancellable;
/// let value = async { 7 }.cancellable().await?;
/// assert_eq!(value, 7);
/// # Ok::<(), wherefore::Cancelled>(())
/// # }).unwrap();
/// ```
pub trait Cancellable: Future + Sized {
    /// Wraps the future with [`guard`].
    fn cancellable(self) -> Guarded<Self> {
        guard(self)
    }
}

impl<F: Future> Cancellable for F {}

pin_project_lite::pin_project! {
    /// Future returned by [`guard`] and [`Cancellable::cancellable`].
    ///
    /// ```
    /// let guarded: wherefore::Guarded<_> = wherefore::guard(async { 1 });
    /// assert_eq!(wherefore::testing::block_on(guarded).unwrap(), 1);
    /// ```
    #[derive(Debug)]
    #[must_use = "futures do nothing unless awaited"]
    pub struct Guarded<F> {
        #[pin]
        future: Option<F>,
        wait: CancelWait,
    }
}

impl<F: Future> Future for Guarded<F> {
    type Output = Result<F::Output, Cancelled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(cancelled) =
            this.wait
                .poll(cx, "guard", Some(std::any::type_name::<F>()))
        {
            this.future.set(None); // drop the foreign future now, not when we are dropped
            return Poll::Ready(Err(cancelled));
        }
        parked(match this.future.as_mut().as_pin_mut() {
            Some(future) => future.poll(cx).map(Ok),
            None => Poll::Pending, // polled after completion; never resolves again
        })
    }
}
