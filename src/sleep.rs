//! Sleeping on the runtime's clock, as a cancellation point; and sleeping until cancelled.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::cancelled::Cancelled;
use crate::checkpoint::{CancelWait, parked};
use crate::clock::TimerHandle;
use crate::context;
use crate::env::Env;
use crate::sync::Arc;

/// The current time on the runtime's clock: the real time under [`run`](crate::run), the virtual
/// time under [`testing`](crate::testing).
///
/// # Panics
///
/// Outside a `wherefore` runtime there is no clock; this panics with a message saying so.
///
/// ```
/// # wherefore::testing::block_on(async {
/// use std::time::Duration;
/// let start = wherefore::now();
/// wherefore::sleep(Duration::from_secs(3600)).await?; // virtual: takes no real time
/// assert_eq!(wherefore::now() - start, Duration::from_secs(3600));
/// # Ok::<(), wherefore::Cancelled>(())
/// # }).unwrap();
/// ```
pub fn now() -> Instant {
    current_env("wherefore::now").clock().now()
}

/// The environment whose clock the calling code uses: its runtime's, its scope's, or (with the
/// `tokio` feature, on a tokio runtime) a fresh one on tokio's clock; or a panic that says how to
/// get one.
pub(crate) fn current_env(what: &str) -> Arc<Env> {
    let env = context::env()
        .or_else(|| context::waiting_scope().and_then(|(node, _)| node.env()))
        .or_else(Env::ambient);
    match env {
        Some(env) => env,
        None => panic!(
            "{what} needs a clock: call it inside `wherefore::run` or `wherefore::testing::block_on` \
             (or, with the `tokio` feature, on a tokio runtime)"
        ),
    }
}

/// Sleeps for `duration`, measured from the first poll; a cancellation point.
///
/// Fails with [`Cancelled`] as soon as the current scope is effectively cancelled.
///
/// # Panics
///
/// When first polled outside a `wherefore` runtime (there is no clock to sleep on).
///
/// ```
/// # wherefore::testing::block_on(async {
/// wherefore::sleep(std::time::Duration::from_millis(10)).await?;
/// # Ok::<(), wherefore::Cancelled>(())
/// # }).unwrap();
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        target: Target::After(duration),
        timer: None,
        wait: CancelWait::default(),
    }
}

/// Sleeps until `deadline`; a cancellation point. A deadline already past yields once, as
/// [`checkpoint`](crate::checkpoint) does, and completes (unless the scope is cancelled): every
/// sleep is a schedule point, as in Trio.
///
/// # Panics
///
/// When first polled outside a `wherefore` runtime.
///
/// ```
/// # wherefore::testing::block_on(async {
/// let at = wherefore::now() + std::time::Duration::from_secs(1);
/// wherefore::sleep_until(at).await?;
/// assert_eq!(wherefore::now(), at);
/// # Ok::<(), wherefore::Cancelled>(())
/// # }).unwrap();
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        target: Target::At(deadline),
        timer: None,
        wait: CancelWait::default(),
    }
}

#[derive(Debug, Clone, Copy)]
enum Target {
    After(Duration),
    At(Instant),
    /// So far away that it never comes.
    Never,
}

/// Future returned by [`sleep`] and [`sleep_until`].
///
/// ```
/// let nap: wherefore::Sleep = wherefore::sleep(std::time::Duration::from_secs(1));
/// assert!(wherefore::testing::block_on(nap).is_ok());
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    target: Target,
    /// The environment (its clock; kept alive while we wait) and the registered wake-up, once
    /// polled.
    timer: Option<(Arc<Env>, Option<TimerHandle>)>,
    wait: CancelWait,
}

impl Future for Sleep {
    type Output = Result<(), Cancelled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        parked(self.poll_sleep(cx))
    }
}

impl Sleep {
    fn poll_sleep(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Cancelled>> {
        let this = &mut *self;
        if let Poll::Ready(cancelled) = this.wait.poll(cx, "sleep", None) {
            return Poll::Ready(Err(cancelled));
        }
        let first = this.timer.is_none();
        let (env, key) = this
            .timer
            .get_or_insert_with(|| (current_env("wherefore::sleep"), None));
        let clock = env.clock();
        let now = clock.now();
        let at = match this.target {
            Target::At(at) => at,
            Target::Never => return Poll::Pending,
            Target::After(duration) => match now.checked_add(duration) {
                Some(at) => {
                    this.target = Target::At(at);
                    at
                }
                None => {
                    this.target = Target::Never;
                    return Poll::Pending;
                }
            },
        };
        if at <= now {
            if let Some(key) = key.take() {
                clock.remove(key);
            }
            if first {
                // Due already when first polled: a schedule point all the same, as Trio's
                // sleeps are (`sleep(Duration::ZERO)` yields, and a loop of them cannot starve
                // its siblings). Polled again at once.
                cx.waker().wake_by_ref();
                context::yielded(cx.waker());
                return Poll::Pending;
            }
            return Poll::Ready(Ok(()));
        }
        match key {
            Some(k) if clock.refresh_wake(*k, cx.waker()) => {}
            _ => *key = Some(clock.add_wake(at, cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((env, Some(key))) = self.timer.take() {
            env.clock().remove(key);
        }
    }
}

/// Waits until the current scope is cancelled, then fails with its [`Cancelled`]: a task that
/// has nothing to do but wait to be told to stop (Trio's `sleep_forever`). A cancellation point,
/// and only that: it never succeeds, which its output says (`Result<Infallible, Cancelled>`), so
/// `?` hands the cancellation on and the code after it never runs.
///
/// Where [`cancelled`](crate::cancelled) resolves with the cause (waiting for one's own
/// cancellation is what it is for), this fails with it, as every cancellation point does, so a
/// scope around it absorbs it. Needs no clock; outside any scope it never resolves.
///
/// ```
/// # wherefore::testing::block_on(async {
/// use std::time::Duration;
/// let out = wherefore::move_on_after(Duration::from_secs(30), async {
///     wherefore::sleep_forever().await?; // never succeeds: `?` returns from here
///     Ok::<(), wherefore::Cancelled>(())
/// })
/// .await;
/// assert!(matches!(out, Ok(None))); // the timeout fired, and its scope absorbed it
///
/// // Or take the cancellation in hand:
/// let scope = wherefore::Scope::new();
/// scope.handle().cancel_with("enough");
/// let _ = scope
///     .run(async {
///         let Err(cancelled) = wherefore::sleep_forever().await;
///         assert_eq!(cancelled.cause().tag_as::<&str>(), Some(&"enough"));
///         Err::<(), _>(cancelled)
///     })
///     .await;
/// # });
/// ```
pub fn sleep_forever() -> SleepForever {
    SleepForever {
        wait: CancelWait::default(),
    }
}

/// Future returned by [`sleep_forever`].
///
/// ```
/// let waiting: wherefore::SleepForever = wherefore::sleep_forever();
/// let scope = wherefore::Scope::new();
/// scope.handle().cancel();
/// let out = wherefore::testing::block_on(scope.run(waiting));
/// assert!(matches!(out, Ok(None))); // failed at once, and absorbed
/// ```
#[derive(Debug, Default)]
#[must_use = "futures do nothing unless awaited"]
pub struct SleepForever {
    wait: CancelWait,
}

impl Future for SleepForever {
    type Output = Result<Infallible, Cancelled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        parked(self.wait.poll(cx, "sleep_forever", None).map(Err))
    }
}
