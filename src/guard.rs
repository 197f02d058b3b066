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
/// Use it for futures that know nothing of `wherefore` (a socket read, a channel receive): without
/// it, a cancelled task waiting on them would not notice until they complete on their own.
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
