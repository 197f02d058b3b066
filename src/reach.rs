//! How a cancellation reaches code blocked in a foreign future (S19): a tokio sleep, a socket
//! read, an HTTP call, anything that knows nothing of `wherefore`.
//!
//! A body that returns `Pending` at a cancellation point is cancelled cooperatively, as ever: the
//! point registered with its scope, is woken when the scope is cancelled, and fails with
//! [`Cancelled`], which the body handles (cleanup, `?`). A body that returns `Pending` anywhere
//! else is blocked where no cancellation can reach it, so the scope future around it ([`Reach`],
//! kept by `ScopeFuture`, the timeouts and the nurseries) registers with the scope on its behalf
//! and, once the scope is effectively cancelled, drops the body, as `tokio::time::timeout` drops
//! its future, and resolves as if the body's cancellation point had failed: `Err(E::from(the
//! cancellation))`, which the scope absorbs (`None`, `TimedOut`) or passes on.
//!
//! What says where the body is blocked is [`context::park_reachable`]: every cancellation point
//! calls it when it returns `Pending` registered, as does a yield (`checkpoint`), a shield (its
//! inside is out of reach on purpose: a shield's cleanup is never dropped from outside), a
//! nursery (its members are its own to reach), and an inner [`Reach`] that registered. The
//! innermost scope future around a foreign future is therefore the one that drops it, and drops
//! no more than that.

use std::task::{Context, Poll};

use crate::cancelled::Cancelled;
use crate::checkpoint::CancelWait;
use crate::context;

/// A scope future's watch over its body: registered with the scope while the body is blocked in
/// a foreign future, so that the scope's cancellation wakes the task and the body is dropped.
///
/// Sixteen bytes in every scope future: the registration is boxed, made the first time its body
/// blocks in a foreign future (a body that only ever waits at cancellation points, a timeout
/// around a `checkpoint`, never pays for it).
#[derive(Debug, Default)]
pub(crate) struct Reach {
    /// Registered with the current scope while `foreign`; kept, cleared, when not.
    wait: Option<Box<CancelWait>>,
    /// The body returned `Pending` last without parking where a cancellation reaches it.
    foreign: bool,
}

impl Reach {
    /// Before the body is polled, in its scope: the cancellation to end it with, if it is
    /// blocked in a foreign future and its scope is now effectively cancelled. The caller drops
    /// the body and resolves with the error.
    #[inline]
    pub(crate) fn cancelled(&mut self, cx: &mut Context<'_>) -> Option<Cancelled> {
        if !self.foreign {
            return None;
        }
        // What the check parks is this future's own business, not its caller's.
        context::watch(|| self.check(cx)).0
    }

    /// Polls the body (with `poll`), in its scope, and watches where it blocks. `Ready(Err)` if it
    /// returned `Pending` in a foreign future while its scope is cancelled already: the caller
    /// drops it and resolves with the error.
    #[inline]
    pub(crate) fn poll<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<Result<T, Cancelled>> {
        let (polled, reachable) = context::watch(|| poll(cx));
        match polled {
            Poll::Ready(out) => Poll::Ready(Ok(out)),
            Poll::Pending if reachable => {
                if self.foreign {
                    self.foreign = false;
                    if let Some(wait) = &mut self.wait {
                        wait.clear(); // nothing to watch: the body is reachable where it is
                    }
                }
                context::park_reachable();
                Poll::Pending
            }
            Poll::Pending => {
                self.foreign = true;
                match self.check(cx) {
                    Some(cancelled) => Poll::Ready(Err(cancelled)),
                    None => {
                        context::park_reachable(); // watched here: out of the caller's concern
                        Poll::Pending
                    }
                }
            }
        }
    }

    /// Registers with the current scope (or learns it is cancelled).
    #[cold]
    fn check(&mut self, cx: &mut Context<'_>) -> Option<Cancelled> {
        let wait = self.wait.get_or_insert_with(Box::default);
        match wait.poll(cx, "foreign future", None) {
            Poll::Ready(cancelled) => {
                self.foreign = false;
                Some(cancelled)
            }
            Poll::Pending => None,
        }
    }
}
