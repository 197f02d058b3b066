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
use crate::context::{self, Watch};

/// A scope future's watch over its body: registered with the scope while the body is blocked in
/// a foreign future, so that the scope's cancellation wakes the task and the body is dropped.
///
/// Twenty-four bytes in every scope future: the registration is boxed, made the first time its
/// body blocks in a foreign future (a body that only ever waits at cancellation points, a
/// timeout around a `checkpoint`, never pays for it), and so is a cancellation found.
#[derive(Debug, Default)]
pub(crate) struct Reach {
    /// Registered with the current scope while `foreign`; kept, cleared, when not.
    wait: Option<Box<CancelWait>>,
    /// The cancellation a check found, until the caller takes it (boxed: it is rare, and every
    /// scope future carries this struct).
    cancelled: Option<Box<Cancelled>>,
    /// The body returned `Pending` last without parking where a cancellation reaches it.
    foreign: bool,
}

impl Reach {
    /// Whether the body was blocked in a foreign future when last polled.
    #[inline]
    pub(crate) fn is_watching(&self) -> bool {
        self.foreign
    }

    /// Before the body is polled again, in its scope, when it was blocked in a foreign future:
    /// whether its scope is now effectively cancelled (the cancellation is then kept, for
    /// [`take_cancelled`](Self::take_cancelled): the caller drops the body and resolves with it).
    pub(crate) fn check_before(&mut self, cx: &mut Context<'_>) -> bool {
        // What the check parks is this future's own business, not its caller's.
        let watch = Watch::begin();
        let cancelled = self.check(cx);
        watch.end();
        cancelled
    }

    /// After the body, polled in its scope under a [`Watch`], returned `Pending` (`reachable` if
    /// it said so): whether it is blocked in a foreign future while its scope is cancelled
    /// already (kept, as for [`check_before`](Self::check_before)); else it is watched from now
    /// on. Either way the caller's own `Pending` is reachable.
    pub(crate) fn check_pending(&mut self, cx: &mut Context<'_>, reachable: bool) -> bool {
        if reachable {
            if self.foreign {
                self.foreign = false;
                if let Some(wait) = &mut self.wait {
                    wait.clear(); // nothing to watch: the body is reachable where it is
                }
            }
            context::park_reachable();
            return false;
        }
        self.foreign = true;
        let cancelled = self.check(cx);
        if !cancelled {
            context::park_reachable(); // watched here: out of the caller's concern
        }
        cancelled
    }

    /// The cancellation [`check_before`](Self::check_before) or
    /// [`check_pending`](Self::check_pending) found.
    pub(crate) fn take_cancelled(&mut self) -> Cancelled {
        *self
            .cancelled
            .take()
            .expect("taken once, after a check found the scope cancelled")
    }

    /// Registers with the current scope (or learns it is cancelled).
    #[cold]
    fn check(&mut self, cx: &mut Context<'_>) -> bool {
        let wait = self.wait.get_or_insert_with(Box::default);
        match wait.poll(cx, "foreign future", None) {
            Poll::Ready(cancelled) => {
                self.foreign = false;
                self.cancelled = Some(Box::new(cancelled));
                true
            }
            Poll::Pending => false,
        }
    }
}
