//! Cancellation points: where a task learns that its scope was cancelled.
//!
//! Delivery is level-triggered (S1): once a task's current scope is effectively cancelled, every
//! cancellation point it reaches fails with [`Cancelled`], until it leaves the scope. The points
//! are [`checkpoint`], [`check_cancelled`] (which does not yield), [`cancelled`], the sleeps, a
//! [`JoinHandle::join`](crate::JoinHandle::join), and any future wrapped with
//! [`guard`](crate::guard). And one that is not: [`yield_now`] yields without ever failing.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::cancelled::Cancelled;
use crate::cause::Cause;
use crate::context;
use crate::env::BlockedAt;
use crate::event::Event;
use crate::scope_tree::{ScopeNode, WaitRegistration, WaiterKey};

/// Fails with [`Cancelled`] if the current scope is effectively cancelled; never yields.
///
/// The equivalent of Trio's `checkpoint_if_cancelled`, for tight loops that must stay responsive
/// to cancellation without giving up their turn. Costs one thread-local read and one atomic load.
///
/// ```
/// # wherefore::testing::block_on(async {
/// use wherefore::Scope;
/// let scope = Scope::new();
/// let handle = scope.handle();
/// let out = scope
///     .run(async {
///         wherefore::check_cancelled()?; // not cancelled: passes
///         handle.cancel();
///         wherefore::check_cancelled()?; // fails: the scope absorbs it
///         Ok::<(), wherefore::Cancelled>(())
///     })
///     .await;
/// assert!(matches!(out, Ok(None)));
/// # });
/// ```
#[inline]
pub fn check_cancelled() -> Result<(), Cancelled> {
    check_cancelled_at("check_cancelled")
}

/// [`check_cancelled`], reporting a failure as observed at `point`.
#[inline]
fn check_cancelled_at(point: &'static str) -> Result<(), Cancelled> {
    if !context::current_is_cancelled() {
        return Ok(());
    }
    cold_cancelled_error(point)
}

#[cold]
fn cold_cancelled_error(point: &'static str) -> Result<(), Cancelled> {
    match context::raising().and_then(|node| node.cancelled_error()) {
        Some(c) => {
            report_observed(&c, point);
            Err(c)
        }
        None => Ok(()),
    }
}

/// Tells the runtime's hook that the current task failed at a cancellation point.
pub(crate) fn report_observed(cancelled: &Cancelled, point: &'static str) {
    context::with_env(|env| {
        env.emit_cancellation(|| Event::CancellationObserved {
            task: context::task(),
            scope: cancelled.raised_in.info().clone(),
            cause: cancelled.cause.clone(),
            point,
        })
    });
}

/// Tells the runtime's register of live tasks (kept under `testing`) where the current task is
/// blocked.
pub(crate) fn report_blocked(point: &'static str, detail: Option<&'static str>, scope: &ScopeNode) {
    context::with_env(|env| {
        if let Some(task) = context::task().filter(|_| env.tracks_tasks()) {
            env.task_blocked(
                task,
                BlockedAt { point, detail },
                scope.info(),
                scope.is_shielded(),
            );
        }
    });
}

/// A cancellation point that also yields once to the executor, like Trio's `checkpoint`.
///
/// Fails with [`Cancelled`] if the current scope is effectively cancelled, before or after the
/// yield.
///
/// ```
/// # wherefore::testing::block_on(async {
/// wherefore::checkpoint().await?;
/// # Ok::<(), wherefore::Cancelled>(())
/// # }).unwrap();
/// ```
pub fn checkpoint() -> Checkpoint {
    Checkpoint { yielded: false }
}

/// Future returned by [`checkpoint`].
///
/// ```
/// let point: wherefore::Checkpoint = wherefore::checkpoint();
/// # drop(point);
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Checkpoint {
    yielded: bool,
}

impl Future for Checkpoint {
    type Output = Result<(), Cancelled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        check_cancelled_at("checkpoint")?;
        if self.yielded {
            return Poll::Ready(Ok(()));
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        context::yielded(cx.waker()); // polled again at once, and fails then if cancelled
        Poll::Pending
    }
}

/// Yields once to the executor, and is **not** a cancellation point: it never fails, whatever
/// the current scope (tokio's `yield_now`; Trio's `cancel_shielded_checkpoint`).
///
/// For long work that should let other tasks (its nursery's siblings among them) run between
/// steps without stopping there when cancelled: cleanup under way, or a loop that looks for
/// cancellation where it chooses to ([`check_cancelled`]). [`checkpoint`] yields *and* is a
/// cancellation point.
///
/// ```
/// # wherefore::testing::block_on(async {
/// let scope = wherefore::Scope::new();
/// scope.handle().cancel();
/// let out = scope
///     .run(async {
///         wherefore::yield_now().await; // passes, cancelled or not
///         assert!(wherefore::checkpoint().await.is_err()); // a cancellation point fails
///         Ok::<_, wherefore::Cancelled>("finished anyway")
///     })
///     .await;
/// assert_eq!(out.unwrap(), Some("finished anyway")); // S7: the body chose to finish
/// # });
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// Future returned by [`yield_now`].
///
/// ```
/// let turn: wherefore::YieldNow = wherefore::yield_now();
/// wherefore::testing::block_on(turn);
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        // Polled again at once: not blocked, so no scope around it drops it (S19).
        context::yielded(cx.waker());
        Poll::Pending
    }
}

/// Waits until the current scope is effectively cancelled and resolves with the cause: a task
/// awaiting its *own* cancellation.
///
/// It never fails: being cancelled is what it waits for. Outside any scope it never resolves.
///
/// ```
/// # wherefore::testing::block_on(async {
/// use wherefore::{Cause, Scope};
/// let scope = Scope::named("worker");
/// scope.handle().cancel_with("shutdown");
/// let seen = scope.run(async { Ok::<_, wherefore::Cancelled>(wherefore::cancelled().await) }).await;
/// let cause = seen.unwrap().unwrap();
/// assert!(matches!(cause, Cause::Explicit(_)));
/// # });
/// ```
pub fn cancelled() -> CancelledFuture {
    CancelledFuture {
        wait: CancelWait::default(),
    }
}

/// Future returned by [`cancelled`].
///
/// ```
/// let waiting: wherefore::CancelledFuture = wherefore::cancelled();
/// # drop(waiting);
/// ```
#[derive(Debug, Default)]
#[must_use = "futures do nothing unless awaited"]
pub struct CancelledFuture {
    wait: CancelWait,
}

impl Future for CancelledFuture {
    type Output = Cause;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Cause> {
        parked(self.wait.poll(cx, "cancelled", None).map(|c| c.cause))
    }
}

/// What every cancellation point returns through: a `Pending` is where a cancellation wakes the
/// task, which it tells the scope futures around it (S19, `reach.rs`). Only the point's final
/// answer says so: a point that registered and then completed in the same poll says nothing.
#[inline]
pub(crate) fn parked<T>(polled: Poll<T>) -> Poll<T> {
    if polled.is_pending() {
        context::park_reachable();
    }
    polled
}

/// The part of every blocking cancellation point that waits for the current scope to be
/// cancelled: registers the task's waker with the scope and deregisters it on drop.
#[derive(Debug, Default)]
pub(crate) struct CancelWait {
    /// The scope the waker is registered with, where, and the waker registered.
    registered: Option<(ScopeNode, WaiterKey, Waker)>,
}

impl CancelWait {
    /// Ready with the error if the current scope is effectively cancelled (reported as observed
    /// at `point`); otherwise makes sure the waker is registered with it and returns `Pending`
    /// (reported as blocked at `point`, with `detail` such as a foreign future's type).
    pub(crate) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        point: &'static str,
        detail: Option<&'static str>,
    ) -> Poll<Cancelled> {
        let polled = self.poll_registration(cx);
        match &polled {
            Poll::Ready(cancelled) => report_observed(cancelled, point),
            Poll::Pending => {
                if let Some((node, ..)) = &self.registered {
                    report_blocked(point, detail, node);
                }
            }
        }
        polled
    }

    fn poll_registration(&mut self, cx: &mut Context<'_>) -> Poll<Cancelled> {
        // An unrecorded timeout scope waits in its parent, whose cancellation is its own until it
        // is recorded; a cancellation is raised in the current scope itself, recorded for that.
        let Some((mut node, mut via_parent)) = context::waiting_scope() else {
            self.clear();
            return Poll::Pending;
        };
        if via_parent && node.is_cancelled() {
            node = context::raising().expect("a scope is current");
            via_parent = false;
        }
        match self.poll_scope(node, cx) {
            // The parent was cancelled meanwhile: the current scope is recorded on the next try.
            Poll::Ready(_) if via_parent => self.poll_registration(cx),
            polled => polled,
        }
    }

    /// Waits for `node` itself to be effectively cancelled, whatever scope is current: registers
    /// the task's waker with it (or keeps the registration it has there), or is ready with the
    /// cancellation. Reports nothing: the cancellation points report, `CancelHandle::cancelled`
    /// is none.
    pub(crate) fn poll_scope(&mut self, node: ScopeNode, cx: &mut Context<'_>) -> Poll<Cancelled> {
        let key = match &self.registered {
            Some((registered, key, waker)) if registered.ptr_eq(&node) => {
                if waker.will_wake(cx.waker())
                    && !node.is_cancelled()
                    && node.drains() == key.drains
                {
                    // Already registered with this waker: the scope will wake it (invariant 4).
                    return Poll::Pending;
                }
                Some(*key)
            }
            _ => {
                self.clear();
                None
            }
        };
        match node.register_waiter(key, cx.waker()) {
            WaitRegistration::Cancelled(c) => {
                self.registered = None;
                Poll::Ready(c)
            }
            WaitRegistration::Waiting(key) => {
                self.registered = Some((node, key, cx.waker().clone()));
                Poll::Pending
            }
        }
    }

    /// Takes the waker out of its scope, if it is registered.
    pub(crate) fn clear(&mut self) {
        if let Some((node, key, _)) = self.registered.take() {
            node.remove_waiter(key);
        }
    }
}

impl Drop for CancelWait {
    fn drop(&mut self) {
        self.clear();
    }
}
