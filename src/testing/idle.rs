//! Waiting until every other task of the runtime is blocked: Trio's
//! `trio.testing.wait_all_tasks_blocked`, for tests that must let everything else settle
//! (reach its next cancellation point, its next sleep) before they act.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::cancelled::Cancelled;
use crate::checkpoint::{CancelWait, parked};
use crate::context;
use crate::env::{Env, IdleWait};
use crate::sync::Arc;

/// Waits until every other task of the runtime is blocked (waiting at a cancellation point, a
/// sleep, a foreign future), then resolves: as Trio's `wait_all_tasks_blocked`.
///
/// "Every other task" is the runtime's: the nursery members, which are polled inline inside the
/// runtime's one future, are blocked when the executor finds nothing to poll but this waiter.
/// It resolves then, *before* the virtual clock moves on to the next timer (as Trio's does
/// before its autojump clock jumps), and before a run with no timer left is reported stuck.
/// With several waiters, the one that began first is let go first; the others wait until
/// everything is blocked again.
///
/// A cancellation point: it fails with [`Cancelled`] if the current scope is cancelled first.
///
/// # Panics
///
/// When first polled outside an executor of this crate ([`block_on`](super::block_on),
/// [`run`](super::run) and [`Runtime`](super::Runtime), or [`wherefore::run`](crate::run) on the
/// real clock, where it resolves whenever the executor is about to sleep): tokio's executor,
/// or any other, does not say when its tasks are blocked. As with a `sleep` outside a runtime,
/// the message names the fix.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use wherefore::{Cancelled, Nursery};
///
/// wherefore::testing::block_on(async {
///     let start = wherefore::now();
///     let steps = AtomicU32::new(0);
///     wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
///         n.spawn(async {
///             for _ in 0..3 {
///                 wherefore::checkpoint().await?; // yields: still runnable
///                 steps.fetch_add(1, Ordering::Relaxed);
///             }
///             wherefore::sleep(Duration::from_secs(10)).await // blocked
///         })
///         .unwrap();
///         wherefore::testing::wait_all_tasks_blocked().await?;
///         assert_eq!(steps.load(Ordering::Relaxed), 3); // the member ran until it blocked
///         assert_eq!(wherefore::now(), start); // and no virtual time passed
///         n.cancel_handle().cancel(); // done with it
///         Ok(())
///     })
///     .await
///     .unwrap();
/// });
/// ```
pub fn wait_all_tasks_blocked() -> WaitAllTasksBlocked {
    WaitAllTasksBlocked {
        wait: CancelWait::default(),
        waiting: None,
    }
}

/// Future returned by [`wait_all_tasks_blocked`].
///
/// ```
/// let settled: wherefore::testing::WaitAllTasksBlocked = wherefore::testing::wait_all_tasks_blocked();
/// assert!(wherefore::testing::block_on(settled).is_ok()); // the only task: at once
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct WaitAllTasksBlocked {
    /// The task's waker, registered with its scope: a cancellation point.
    wait: CancelWait,
    /// The runtime it waits in, and its ticket there, once polled.
    waiting: Option<(Arc<Env>, u64)>,
}

impl Future for WaitAllTasksBlocked {
    type Output = Result<(), Cancelled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        parked(self.poll_idle(cx))
    }
}

impl WaitAllTasksBlocked {
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Cancelled>> {
        if let Poll::Ready(cancelled) = self.wait.poll(cx, "wait_all_tasks_blocked", None) {
            self.leave();
            return Poll::Ready(Err(cancelled));
        }
        let (env, ticket) = match self.waiting.take() {
            Some((env, ticket)) => (env, Some(ticket)),
            None => (executor_env(), None),
        };
        match env.wait_idle(ticket, cx.waker()) {
            IdleWait::Waiting(ticket) => {
                self.waiting = Some((env, ticket));
                Poll::Pending
            }
            IdleWait::Released => {
                self.wait.clear();
                Poll::Ready(Ok(()))
            }
        }
    }

    /// Stops waiting, if it was.
    fn leave(&mut self) {
        if let Some((env, ticket)) = self.waiting.take() {
            env.leave_idle(ticket);
        }
    }
}

impl Drop for WaitAllTasksBlocked {
    fn drop(&mut self) {
        self.leave();
    }
}

/// The runtime polling this thread, if an executor of this crate drives it; else a panic that
/// says where this works.
fn executor_env() -> Arc<Env> {
    match context::env().filter(|env| env.has_executor()) {
        Some(env) => env,
        None => panic!(
            "wherefore::testing::wait_all_tasks_blocked needs an executor that knows when its \
             tasks are blocked: call it inside `wherefore::testing::block_on` (or \
             `wherefore::run`); tokio's, or any other, does not say"
        ),
    }
}
