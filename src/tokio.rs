//! Running inside tokio (feature `tokio`).
//!
//! Wherever code runs on a tokio runtime with no `wherefore` runtime around it (a
//! `#[tokio::test]`, a `#[tokio::main]`, a task), the first scope entered outside any other (or a
//! `sleep` outside any scope) gets an environment whose clock is tokio's, so sleeps, deadlines
//! and timeouts work, `tokio::time::pause()` included. Its timers are fired by a small tokio task,
//! aborted when the environment is dropped (when the last scope using it has gone).

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::body_poll::poll_reached;
use crate::cancelled::CancelError;
use crate::clock::Clock;
use crate::context;
use crate::env::Env;
use crate::event::Hook;
use crate::identity::TaskId;
use crate::reach::Reach;
use crate::scope::reached;
use crate::scope_tree::ScopeNode;
use crate::sync::{self, Arc};

/// An environment on tokio's clock, if the calling thread is inside a tokio runtime.
pub(crate) fn ambient_env() -> Option<Arc<Env>> {
    tokio_env(None)
}

/// An environment on tokio's clock reporting to `hook`, if the calling thread is inside a tokio
/// runtime.
fn tokio_env(hook: Option<Arc<dyn Hook>>) -> Option<Arc<Env>> {
    let handle = ::tokio::runtime::Handle::try_current().ok()?;
    let env = Env::new(Clock::tokio(), hook, false);
    let driver = handle.spawn(TimerDriver {
        env: Arc::downgrade(&env),
        sleep: Box::pin(::tokio::time::sleep(std::time::Duration::ZERO)),
    });
    *sync::lock(&env.timer_driver) = Some(driver.abort_handle());
    Some(env)
}

/// Fires an environment's due timers, then sleeps (on tokio's timer) until the next one, or until
/// the clock reports that an earlier timer was added.
struct TimerDriver {
    env: std::sync::Weak<Env>,
    sleep: Pin<Box<::tokio::time::Sleep>>,
}

impl Future for TimerDriver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let Some(env) = self.env.upgrade() else {
                return Poll::Ready(());
            };
            let clock = env.clock();
            clock.set_runtime_waker(Some(cx.waker().clone()));
            clock.fire_due();
            let Some(next) = clock.next_timer() else {
                return Poll::Pending; // woken by the clock when a timer is added
            };
            drop(env);
            let deadline = ::tokio::time::Instant::from_std(next);
            if self.sleep.deadline() != deadline {
                self.sleep.as_mut().reset(deadline);
            }
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A nursery member running on a tokio worker thread: installs the nursery's scope, the
    /// runtime environment and the member's task id around each poll, as the nursery does for its
    /// inline members.
    pub(crate) struct Worker<F> {
        scope: ScopeNode,
        env: Option<Arc<Env>>,
        task: TaskId,
        // Its watch while it is blocked in a foreign future (S19).
        reach: Reach,
        // `None` once dropped by `reach`.
        #[pin]
        future: Option<F>,
    }
}

impl<F> Worker<F> {
    pub(crate) fn new(scope: ScopeNode, env: Option<Arc<Env>>, task: TaskId, future: F) -> Self {
        Worker {
            scope,
            env,
            task,
            reach: Reach::default(),
            future: Some(future),
        }
    }
}

impl<F, T, E> Future for Worker<F>
where
    F: Future<Output = Result<T, E>>,
    E: CancelError,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _env = this.env.as_ref().map(context::enter_env);
        let _scope = context::lend(this.scope);
        let _task = context::enter_task(*this.task);
        // Ended where it is blocked in a foreign future once the nursery is cancelled, as an
        // inline member is (S19).
        let polled = std::task::ready!(poll_reached(this.future, cx, Some(&mut *this.reach)));
        Poll::Ready(reached(polled, this.reach))
    }
}

/// Why a graceful shutdown had to be forced: see [`shutdown_on_signals`].
///
/// ```
/// let forced = wherefore::tokio::Forced::SecondSignal("SIGINT");
/// assert_eq!(forced.to_string(), "a second SIGINT arrived during the graceful shutdown");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Forced {
    /// A second signal arrived while the graceful shutdown was running.
    SecondSignal(&'static str),
    /// The grace period passed before the service finished.
    GraceExpired(std::time::Duration),
}

/// A forced shutdown is an error, for a `main` that returns one.
///
/// ```
/// let forced: Box<dyn std::error::Error> =
///     Box::new(wherefore::tokio::Forced::GraceExpired(std::time::Duration::from_secs(5)));
/// assert_eq!(forced.to_string(), "the graceful shutdown did not finish within 5s");
/// ```
impl std::error::Error for Forced {}

impl std::fmt::Display for Forced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Forced::SecondSignal(signal) => {
                write!(f, "a second {signal} arrived during the graceful shutdown")
            }
            Forced::GraceExpired(grace) => {
                write!(f, "the graceful shutdown did not finish within {grace:?}")
            }
        }
    }
}

/// Graceful shutdown on Ctrl+C and SIGTERM: the first signal cancels `scope` with an
/// [`Explicit`](crate::Cause::Explicit) cause whose tag is the signal's name (`"SIGINT"` or
/// `"SIGTERM"`); the returned future then resolves, to force the shutdown, on a second signal or
/// when `grace` has passed since the first. Race it with the service and drop the service when it
/// wins.
///
/// On platforms without SIGTERM (Windows), only Ctrl+C is listened to. [`shutdown_on`] takes
/// any source of signals instead (for tests, or other signals). The cause's location is the
/// caller's line, where the shutdown was wired up.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() {
/// use std::time::Duration;
/// let server = wherefore::Scope::named("server");
/// let forced = wherefore::tokio::shutdown_on_signals(server.handle(), Duration::from_secs(10));
/// tokio::select! {
///     _ = server.run(async { wherefore::cancelled().await; Ok::<_, wherefore::Cancelled>(()) }) => {}
///     why = forced => eprintln!("forced: {why}"),
/// }
/// # }
/// ```
#[track_caller]
pub fn shutdown_on_signals(
    scope: crate::CancelHandle,
    grace: std::time::Duration,
) -> impl Future<Output = Forced> + Send + 'static {
    let caller = Location::caller();
    async move { listen_for_signals(scope, grace, caller).await }
}

async fn listen_for_signals(
    scope: crate::CancelHandle,
    grace: std::time::Duration,
    caller: &'static Location<'static>,
) -> Forced {
    let (tx, rx) = ::tokio::sync::mpsc::unbounded_channel::<&'static str>();
    let ctrl_c = tx.clone();
    let listeners = ::tokio::spawn(async move {
        let interrupts = async {
            while ::tokio::signal::ctrl_c().await.is_ok() {
                if ctrl_c.send("SIGINT").is_err() {
                    break;
                }
            }
        };
        #[cfg(unix)]
        let terms = async {
            use ::tokio::signal::unix::{SignalKind, signal};
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                while term.recv().await.is_some() {
                    if tx.send("SIGTERM").is_err() {
                        break;
                    }
                }
            }
        };
        #[cfg(not(unix))]
        let terms = async { drop(tx) };
        futures_util::future::join(interrupts, terms).await;
    });
    let mut rx = rx;
    let signals = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let forced = shut_down(scope, grace, signals, caller).await;
    listeners.abort();
    forced
}

/// [`shutdown_on_signals`] with the signals coming from a stream, each named by a string: the
/// first cancels `scope` with an explicit cause tagged with its name; the returned future
/// resolves on the next one, or when `grace` has passed since the first. If `signals` closes
/// before any signal, the future never resolves. The cause's location is the caller's line.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use wherefore::tokio::{Forced, shutdown_on};
/// let (send, mut signals) = tokio::sync::mpsc::unbounded_channel();
/// let signals = futures::stream::poll_fn(move |cx| signals.poll_recv(cx));
/// let server = wherefore::Scope::named("server");
/// let handle = server.handle();
/// send.send("SIGTERM").unwrap();
/// let forced = shutdown_on(handle.clone(), Duration::from_secs(10), signals).await;
/// assert_eq!(forced, Forced::GraceExpired(Duration::from_secs(10)));
/// assert!(handle.cause().unwrap().to_string().starts_with("explicit (\"SIGTERM\")"));
/// # }
/// ```
#[track_caller]
pub fn shutdown_on<S>(
    scope: crate::CancelHandle,
    grace: std::time::Duration,
    signals: S,
) -> impl Future<Output = Forced>
where
    S: futures_util::Stream<Item = &'static str>,
{
    shut_down(scope, grace, signals, Location::caller())
}

async fn shut_down<S>(
    scope: crate::CancelHandle,
    grace: std::time::Duration,
    signals: S,
    caller: &'static Location<'static>,
) -> Forced
where
    S: futures_util::Stream<Item = &'static str>,
{
    use futures_util::StreamExt;
    futures_util::pin_mut!(signals);
    let Some(first) = signals.next().await else {
        return std::future::pending().await;
    };
    scope.cancel_with_at(first, caller);
    let second = async {
        match signals.next().await {
            Some(signal) => Forced::SecondSignal(signal),
            None => std::future::pending().await,
        }
    };
    let expired = async {
        ::tokio::time::sleep(grace).await;
        Forced::GraceExpired(grace)
    };
    futures_util::pin_mut!(second, expired);
    match futures_util::future::select(second, expired).await {
        futures_util::future::Either::Left((forced, _)) => forced,
        futures_util::future::Either::Right((forced, _)) => forced,
    }
}

pin_project_lite::pin_project! {
    /// Future returned by [`with_hook`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # struct Ignore;
    /// # impl wherefore::event::Hook for Ignore {
    /// #     fn on_event(&self, _: std::time::Duration, _: &wherefore::event::Event) {}
    /// # }
    /// let hooked: wherefore::tokio::WithHook<_> =
    ///     wherefore::tokio::with_hook(std::sync::Arc::new(Ignore), async {});
    /// hooked.await;
    /// # }
    /// ```
    #[must_use = "futures do nothing unless awaited"]
    pub struct WithHook<F> {
        hook: Option<Arc<dyn Hook>>,
        env: Option<Arc<Env>>,
        #[pin]
        future: F,
    }
}

impl<F> std::fmt::Debug for WithHook<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithHook").finish_non_exhaustive()
    }
}

/// Runs `future` on tokio with `hook` receiving everything `wherefore` reports inside it, as an
/// embedded [`Runtime::with_hook`](crate::Runtime::with_hook) does: scopes entered and left,
/// spawns and exits, cancel requests and the cancellations tasks observe, deadlines, group
/// events, with the time since this future was first polled.
///
/// Every scope and nursery entered inside takes this environment (one tokio clock, one
/// numbering, one hook), and so do the worker members they start, on whatever thread they run.
/// Use it outermost, around the code that enters scopes: a scope entered inside another scope
/// takes its parent's environment, so under a scope entered outside this future the hook hears
/// only what happens in this future's own tasks (spawns, exits, observed cancellations).
/// A hook makes every scope recorded, as on the embedded runtime (timeouts included: see
/// DESIGN.md, "Unrecorded timeout scopes"), so events show every scope entered and left.
///
/// # Panics
///
/// When first polled outside a tokio runtime (there is no tokio clock to give the scopes
/// inside); use [`Runtime::with_hook`](crate::Runtime::with_hook) there.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use wherefore::event::{Event, Hook};
/// use wherefore::{Cancelled, Nursery};
///
/// #[derive(Default)]
/// struct Log(Mutex<Vec<String>>);
///
/// impl Hook for Log {
///     fn on_event(&self, _at: Duration, event: &Event) {
///         self.0.lock().unwrap().push(event.to_string());
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let log = Arc::new(Log::default());
/// wherefore::tokio::with_hook(log.clone(), async {
///     wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
///         n.start_soon_named("ping", wherefore::sleep(Duration::from_millis(1))).unwrap();
///         Ok(())
///     })
///     .await
///     .unwrap();
/// })
/// .await;
/// let log = log.0.lock().unwrap();
/// assert!(log.iter().any(|line| line.starts_with("spawn    task \"ping\"")));
/// assert!(log.iter().any(|line| line == "exit     task \"ping\": completed"));
/// # }
/// ```
#[track_caller]
pub fn with_hook<F: Future>(hook: Arc<dyn Hook>, future: F) -> WithHook<F> {
    WithHook {
        hook: Some(hook),
        env: None,
        future,
    }
}

impl<F: Future> Future for WithHook<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if this.env.is_none() {
            let made = tokio_env(this.hook.take());
            let Some(env) = made else {
                panic!(
                    "wherefore::tokio::with_hook polled outside a tokio runtime: use \
                     wherefore::Runtime::new().with_hook(..) there"
                );
            };
            *this.env = Some(env);
        }
        let _env = this.env.as_ref().map(context::enter_env);
        this.future.poll(cx)
    }
}
