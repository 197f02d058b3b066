//! Cancel scopes: the builder, the future that runs a body inside one, and the handle that
//! controls it from anywhere.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::body_poll::{BodyPoll, poll_in_steps};
use crate::cancelled::CancelError;
use crate::cause::Cause;
use crate::checkpoint::CancelWait;
use crate::context::{self, RuntimeMark};
use crate::identity::ScopeInfo;
use crate::reach::Reach;
use crate::scope_tree::{Phase, ScopeNode};
use crate::sync::Frozen;
use crate::trace::ScopeSpan;

/// A cancel scope, ready to run a body: the general form of [`move_on_after`](crate::move_on_after)
/// and [`shield`](crate::shield).
///
/// Build it with a name, a deadline and a shield flag, take a [`CancelHandle`] if you want to
/// cancel it or move its deadline later, then [`run`](Scope::run) a body in it. The scope becomes
/// a child of the scope that is current when it is first polled (dynamic extent, as in Trio).
///
/// ```
/// # wherefore::testing::block_on(async {
/// use std::time::Duration;
/// use wherefore::Scope;
///
/// let scope = Scope::named("request").with_timeout(Duration::from_secs(5));
/// let handle = scope.handle();
/// let out = scope
///     .run(async {
///         wherefore::sleep(Duration::from_secs(1)).await?;
///         Ok::<_, wherefore::Cancelled>("done")
///     })
///     .await;
/// assert_eq!(out.unwrap(), Some("done"));
/// assert!(!handle.is_cancelled());
/// # });
/// ```
#[derive(Debug)]
#[must_use = "a scope does nothing until you `run` a body in it"]
pub struct Scope {
    node: ScopeNode,
}

impl Default for Scope {
    fn default() -> Self {
        Scope::new()
    }
}

impl Scope {
    /// An unnamed scope with no deadline, not shielded. Shown as `scope#N` in causes.
    ///
    /// ```
    /// let scope = wherefore::Scope::new();
    /// assert_eq!(scope.handle().scope().name(), None);
    /// ```
    pub fn new() -> Self {
        Scope {
            node: ScopeNode::new(None),
        }
    }

    /// A scope with a name, shown in causes and reports.
    ///
    /// ```
    /// let scope = wherefore::Scope::named("conn-7");
    /// assert_eq!(scope.handle().scope().to_string(), "scope \"conn-7\"");
    /// ```
    pub fn named(name: impl Into<Frozen<str>>) -> Self {
        Scope {
            node: ScopeNode::new(Some(name.into())),
        }
    }

    /// Sets an absolute deadline. A deadline in the past is valid (S12): the body runs to its
    /// first cancellation point, which fails with [`Cause::Timeout`].
    ///
    /// # Panics
    ///
    /// When the deadline has to be armed (the future's first poll) and no clock is there: outside
    /// `wherefore::run`, `wherefore::testing::block_on` and, with the `tokio` feature, a tokio
    /// runtime. The message names the fix, as tokio's "no reactor running" does (DESIGN.md, "Time").
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// let at = wherefore::now() + std::time::Duration::from_secs(2);
    /// let scope = wherefore::Scope::new().with_deadline(at);
    /// assert_eq!(scope.handle().deadline(), Some(at));
    /// # });
    /// ```
    #[track_caller]
    pub fn with_deadline(self, deadline: Instant) -> Self {
        self.node.set_deadline(Some(deadline), Location::caller());
        self
    }

    /// Sets a deadline `timeout` after the scope is entered. A timeout too large to represent
    /// never fires.
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
    /// let out = wherefore::Scope::new()
    ///     .with_timeout(Duration::from_secs(1))
    ///     .run(wherefore::sleep(Duration::from_secs(2)))
    ///     .await;
    /// assert!(matches!(out, Ok(None))); // timed out, absorbed
    /// # });
    /// ```
    #[track_caller]
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.node.set_timeout(timeout, Location::caller());
        self
    }

    /// Shields the scope: cancellation from enclosing scopes does not reach its body, while its
    /// own deadline and its own cancel still do.
    ///
    /// ```
    /// let scope = wherefore::Scope::new().shielded();
    /// assert!(scope.handle().is_shielded());
    /// ```
    pub fn shielded(self) -> Self {
        self.node.set_shielded(true);
        self
    }

    pub(crate) fn into_node(self) -> ScopeNode {
        self.node
    }

    /// A handle to cancel the scope, read its cause, or change its deadline and shield, from any
    /// task or thread.
    ///
    /// ```
    /// let scope = wherefore::Scope::new();
    /// let handle = scope.handle();
    /// assert!(handle.cancel()); // before entry: the body starts cancelled
    /// ```
    pub fn handle(&self) -> CancelHandle {
        CancelHandle {
            node: self.node.clone(),
        }
    }

    /// Runs `body` inside the scope.
    ///
    /// Resolves to `Ok(Some(value))` when the body returns a value (even if the scope was
    /// cancelled meanwhile and the body chose to finish anyway, S7), `Ok(None)` when the body
    /// failed with a cancellation that this scope absorbs (it is the outermost cancelled scope
    /// around the cancellation point and the cancellation came from inside it), and `Err(e)` for
    /// every other error, including a cancellation that belongs to an enclosing scope.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// let scope = wherefore::Scope::new();
    /// let handle = scope.handle();
    /// let out = scope
    ///     .run(async {
    ///         handle.cancel_with("enough");
    ///         wherefore::checkpoint().await?;
    ///         Ok::<_, wherefore::Cancelled>(1)
    ///     })
    ///     .await;
    /// assert!(matches!(out, Ok(None)));
    /// # });
    /// ```
    pub fn run<F, T, E>(self, body: F) -> ScopeFuture<F>
    where
        F: Future<Output = Result<T, E>>,
        E: CancelError,
    {
        ScopeFuture {
            span: ScopeSpan::new(self.node.info()),
            inner: InScope::new(self.node, body),
            reach: Reach::default(),
        }
    }
}

pin_project_lite::pin_project! {
    /// Runs a body inside a scope node: enters it on first poll, installs it as the current
    /// scope during each poll, and leaves it when the body completes or the future is dropped.
    #[derive(Debug)]
    pub(crate) struct InScope<F> {
        // Lent to the thread's context by address while the body is polled (`context::lend`),
        // so that a poll changes no reference count.
        node: ScopeNode,
        // How far this future took the node: kept here too, so that polling takes no lock.
        stage: Phase,
        // The runtime it was entered in: every later poll must be in the same one.
        runtime: RuntimeMark,
        // `None` once dropped because it was blocked in a foreign future when the scope was
        // cancelled (S19, `reach.rs`).
        #[pin]
        body: Option<F>,
    }

    impl<F> PinnedDrop for InScope<F> {
        fn drop(this: Pin<&mut Self>) {
            this.exit();
        }
    }
}

impl<F> InScope<F> {
    pub(crate) fn node(&self) -> &ScopeNode {
        &self.node
    }

    /// Leaves the scope (once).
    pub(crate) fn exit(self: Pin<&mut Self>) {
        let this = self.project();
        ScopeExit {
            node: this.node,
            stage: this.stage,
        }
        .exit();
    }
}

/// The scope a future leaves once its body ended, kept through the body's poll
/// ([`BodyPoll`]'s parts).
pub(crate) struct ScopeExit<'a> {
    pub(crate) node: &'a ScopeNode,
    stage: &'a mut Phase,
}

impl ScopeExit<'_> {
    /// Leaves the scope (once).
    pub(crate) fn exit(&mut self) {
        if *self.stage != Phase::Exited {
            *self.stage = Phase::Exited;
            self.node.exit();
        }
    }
}

impl<F: Future> InScope<F> {
    pub(crate) fn new(node: ScopeNode, body: F) -> Self {
        InScope {
            node,
            stage: Phase::Created,
            runtime: RuntimeMark::default(),
            body: Some(body),
        }
    }

    /// Begins a poll of the body in the scope (`body_poll.rs`): enters the scope on the first
    /// poll, checks the runtime on the later ones, and makes it current until the poll ends. On
    /// completion the scope is still entered, so the caller can decide absorption; it then
    /// leaves through the step's parts ([`ScopeExit`]; dropping the future leaves too).
    ///
    /// With `reach`, a body blocked in a foreign future when the scope is cancelled is dropped,
    /// and the poll resolves with the cancellation instead (S19). Without (a shield's), the body
    /// is out of reach on purpose, which its `Pending` says to the scope futures around it.
    #[cfg_attr(debug_assertions, inline(never))] // out of the frame nested scopes recurse through
    #[cfg_attr(not(debug_assertions), inline)]
    pub(crate) fn begin<'a>(
        self: Pin<&'a mut Self>,
        reach: Option<&'a mut Reach>,
        span: Option<&'a ScopeSpan>,
        cx: &mut Context<'_>,
    ) -> BodyPoll<'a, F, ScopeExit<'a>> {
        let this = self.project();
        let node: &'a ScopeNode = this.node;
        if *this.stage == Phase::Created {
            *this.stage = Phase::Entered;
            *this.runtime = RuntimeMark::here();
            node.enter(context::current(), None);
        } else {
            this.runtime.check(|| node.info().to_string());
        }
        let exit = ScopeExit {
            node,
            stage: this.stage,
        };
        BodyPoll::begin(this.body, reach, Some(context::lend(node)), exit, cx)
            .in_span(span.and_then(ScopeSpan::enter))
    }
}

/// The body's result, or (`None`: it was dropped, blocked in a foreign future) the error of the
/// cancellation that reached it, which `reach` holds.
pub(crate) fn reached<T, E: CancelError>(
    polled: Option<Result<T, E>>,
    reach: &mut Reach,
) -> Result<T, E> {
    polled.unwrap_or_else(|| Err(E::from(reach.take_cancelled())))
}

/// What a scope that moves on (rather than fails) resolves to: the body's value, `None` for a
/// cancellation it absorbed, else the body's error.
pub(crate) fn moved_on<T, E>(result: Result<T, E>, absorbed: bool) -> Result<Option<T>, E> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(_) if absorbed => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `result` is a cancellation that the scope of `node` absorbs.
pub(crate) fn absorbed<T, E: CancelError>(node: &ScopeNode, result: &Result<T, E>) -> bool {
    match result {
        Err(e) => e.as_cancelled().is_some_and(|c| node.absorbs(&c.raised_in)),
        Ok(_) => false,
    }
}

/// [`absorbed`], for a scope future that then resolves to `None`: if it absorbs, the scope notes
/// that it caught a cancellation ([`CancelHandle::cancelled_caught`]).
pub(crate) fn catches<T, E: CancelError>(node: &ScopeNode, result: &Result<T, E>) -> bool {
    let absorbed = absorbed(node, result);
    if absorbed {
        node.set_caught();
    }
    absorbed
}

/// Panics for a scope named after it was handed out unnamed (`MoveOnAfter::named` and the
/// like): its handle, and any cause recorded in it, already name it without `name`.
#[cold]
#[track_caller]
pub(crate) fn named_too_late(scope: &ScopeInfo, name: &str) -> ! {
    panic!(
        "wherefore: {scope} cannot be named {name:?}: it was handed out unnamed (a handle to it \
         is alive, or cancelled it); name it before taking its handle"
    )
}

pin_project_lite::pin_project! {
    /// Future returned by [`Scope::run`]; a [`ShieldWithGrace`](crate::ShieldWithGrace) runs
    /// its body in one.
    ///
    /// Resolves to `Result<Option<T>, E>`; see [`Scope::run`].
    ///
    /// ```
    /// let fut: wherefore::ScopeFuture<_> =
    ///     wherefore::Scope::new().run(async { Ok::<_, wherefore::Cancelled>(()) });
    /// # drop(fut);
    /// ```
    #[derive(Debug)]
    #[must_use = "futures do nothing unless awaited"]
    pub struct ScopeFuture<F> {
        #[pin]
        inner: InScope<F>,
        reach: Reach,
        // Entered around each of its polls, if it is named (feature `tracing`).
        span: ScopeSpan,
    }
}

impl<F, T, E> Future for ScopeFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: CancelError,
{
    type Output = Result<Option<T>, E>;

    #[cfg_attr(debug_assertions, inline(always))] // nested scopes recurse through it (`body_poll.rs`)
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        poll_in_steps!(self.begin(cx), cx, finish)
    }
}

/// How a scope future resolves once its body's poll ended: out of the frame nested scopes
/// recurse through (`body_poll.rs`).
fn finish<T, E: CancelError>(
    polled: Poll<Option<Result<T, E>>>,
    reach: Option<&mut Reach>,
    scope: &mut ScopeExit<'_>,
) -> Poll<Result<Option<T>, E>> {
    let Poll::Ready(polled) = polled else {
        return Poll::Pending;
    };
    let reach = reach.expect("a scope future polls its body with its reach");
    let result = reached(polled, reach);
    let absorbed = catches(scope.node, &result);
    scope.exit();
    Poll::Ready(moved_on(result, absorbed))
}

impl<F: Future> ScopeFuture<F> {
    /// Begins a poll of the body in the scope, watched by the future's reach (`body_poll.rs`).
    #[cfg_attr(debug_assertions, inline(never))] // out of the frame nested scopes recurse through
    #[cfg_attr(not(debug_assertions), inline)]
    fn begin<'a>(self: Pin<&'a mut Self>, cx: &mut Context<'_>) -> BodyPoll<'a, F, ScopeExit<'a>> {
        let this = self.project();
        this.inner.begin(Some(this.reach), Some(this.span), cx)
    }
}

impl<F> ScopeFuture<F> {
    /// Names the scope, if nothing has seen it yet (`ScopeNode::rename`): for
    /// `ShieldWithGrace::named`. Not public: a `Scope` is named when it is built.
    pub(crate) fn rename(&mut self, name: Frozen<str>) -> Result<(), Frozen<str>> {
        self.inner.node.rename(name)
    }

    /// A handle to the scope this future runs its body in.
    ///
    /// ```
    /// let fut = wherefore::Scope::new()
    ///     .with_timeout(std::time::Duration::from_secs(1))
    ///     .run(async { Ok::<_, wherefore::Cancelled>(()) });
    /// assert!(fut.handle().deadline().is_none()); // relative: fixed when entered
    /// ```
    pub fn handle(&self) -> CancelHandle {
        CancelHandle {
            node: self.inner.node().clone(),
        }
    }
}

/// Controls a scope from any task or thread: cancel it, read whether and why it was cancelled,
/// move its deadline, raise or lower its shield.
///
/// `Send + Sync + Clone`. Holding a handle keeps the scope's record (name, cause) alive, not the
/// scope's body: once the scope has exited, requests have no effect (S15) and reads return what
/// was recorded.
///
/// ```
/// # wherefore::testing::block_on(async {
/// use wherefore::Scope;
/// let scope = Scope::named("job");
/// let handle = scope.handle();
/// let remote = handle.clone();
/// std::thread::spawn(move || remote.cancel_with("from a thread")).join().unwrap();
/// assert!(handle.is_cancelled());
/// let out = scope.run(wherefore::checkpoint()).await;
/// assert!(matches!(out, Ok(None)));
/// # });
/// ```
#[derive(Clone)]
pub struct CancelHandle {
    node: ScopeNode,
}

impl CancelHandle {
    pub(crate) fn from_node(node: ScopeNode) -> Self {
        CancelHandle { node }
    }

    /// The handle of the scope the calling code runs in, if any.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// let out = wherefore::Scope::named("here")
    ///     .run(async {
    ///         let me = wherefore::CancelHandle::current().unwrap();
    ///         Ok::<_, wherefore::Cancelled>(me.scope().name().map(str::to_owned))
    ///     })
    ///     .await;
    /// assert_eq!(out.unwrap().unwrap().as_deref(), Some("here"));
    /// # });
    /// ```
    pub fn current() -> Option<CancelHandle> {
        context::current().map(CancelHandle::from_node)
    }

    /// Cancels the scope with an [`Explicit`](Cause::Explicit) cause and no tag.
    ///
    /// Returns whether this call made the scope effectively cancelled: `false` if it already was
    /// (through its own cause or its parent's; the request is still counted in
    /// [`ignored_requests`](Self::ignored_requests)) or if the scope has exited (S15).
    /// Idempotent: the first cause wins.
    ///
    /// ```
    /// let handle = wherefore::Scope::new().handle();
    /// assert!(handle.cancel());
    /// assert!(!handle.cancel());
    /// assert_eq!(handle.ignored_requests(), 1);
    /// ```
    #[track_caller]
    pub fn cancel(&self) -> bool {
        self.node.cancel_explicit(None::<()>, Location::caller())
    }

    /// Cancels the scope with an [`Explicit`](Cause::Explicit) cause carrying `tag` (a signal
    /// name, a reason, a request id). Returns as [`cancel`](Self::cancel) does.
    ///
    /// ```
    /// let handle = wherefore::Scope::new().handle();
    /// handle.cancel_with("SIGTERM");
    /// assert!(handle.cause().unwrap().to_string().starts_with("explicit (\"SIGTERM\") at "));
    /// ```
    #[track_caller]
    pub fn cancel_with<T>(&self, tag: T) -> bool
    where
        T: fmt::Debug + Send + Sync + 'static,
    {
        self.cancel_with_at(tag, Location::caller())
    }

    /// [`cancel_with`](Self::cancel_with) on behalf of the code at `location`.
    pub(crate) fn cancel_with_at<T>(&self, tag: T, location: &'static Location<'static>) -> bool
    where
        T: fmt::Debug + Send + Sync + 'static,
    {
        self.node.cancel_explicit(Some(tag), location)
    }

    /// Whether the scope is effectively cancelled now: by itself, its deadline, or an unshielded
    /// ancestor.
    ///
    /// ```
    /// let handle = wherefore::Scope::new().handle();
    /// assert!(!handle.is_cancelled());
    /// handle.cancel();
    /// assert!(handle.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.node.is_cancelled()
    }

    /// The cause that applies now (S14: the scope's own first cause if shielded, otherwise
    /// whichever of its own and its parent's reached it first), or the last one that applied.
    /// `None` if the scope was never cancelled.
    ///
    /// ```
    /// let handle = wherefore::Scope::new().handle();
    /// assert!(handle.cause().is_none());
    /// handle.cancel();
    /// assert_eq!(handle.cause().unwrap().kind(), "explicit");
    /// ```
    pub fn cause(&self) -> Option<Cause> {
        self.node.cause()
    }

    /// The scope's own first cause (its explicit cancel, deadline, or nursery failure), whatever
    /// its shield and its parents.
    ///
    /// ```
    /// let handle = wherefore::Scope::new().handle();
    /// handle.cancel();
    /// assert_eq!(handle.own_cause().unwrap().kind(), "explicit");
    /// ```
    pub fn own_cause(&self) -> Option<Cause> {
        self.node.own_cause()
    }

    /// Whether the scope has a cause of its own: it was cancelled (an explicit cancel, its
    /// deadline passing, its nursery's member failing), whether or not that cancellation did
    /// anything, as Trio's `CancelScope.cancel_called`. True also when the scope was cancelled
    /// by an enclosing scope first, or the request came after its body's last cancellation point;
    /// false when only an enclosing scope's cancellation reached it, and after a cancel of an
    /// exited scope (S15: it records nothing). The cause is [`own_cause`](Self::own_cause).
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use wherefore::Scope;
    /// let outer = Scope::named("outer");
    /// let stop = outer.handle();
    /// let inner = Scope::named("inner");
    /// let handle = inner.handle();
    /// let _ = outer
    ///     .run(inner.run(async {
    ///         stop.cancel(); // reaches the inner scope, through its parent
    ///         wherefore::checkpoint().await
    ///     }))
    ///     .await;
    /// assert!(handle.is_cancelled());
    /// assert!(!handle.cancel_called()); // nobody cancelled *it*
    /// assert!(stop.cancel_called());
    /// # });
    /// ```
    pub fn cancel_called(&self) -> bool {
        self.node.has_own_cause()
    }

    /// Whether the scope caught a cancellation: its future ended by absorbing one, resolving to
    /// `Ok(None)` ([`Scope::run`], [`move_on_after`](crate::move_on_after),
    /// [`shield_with_grace`](crate::shield_with_grace)) or to `Err(TimedOut)`
    /// ([`fail_after`](crate::fail_after)). As Trio's `CancelScope.cancelled_caught`: the scope
    /// was cancelled *and* its body ended with that cancellation, raised inside it. False while
    /// it runs, when the body finished anyway (S7: it returned a value, or another error), and
    /// when the cancellation belonged to an enclosing scope (S2: that one catches it). A
    /// nursery never catches one (S18: it returns `NurseryError::Cancelled`), so a nursery's
    /// handle always says false.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use std::time::Duration;
    /// let slow = wherefore::move_on_after(Duration::from_secs(1), wherefore::sleep(Duration::from_secs(5)));
    /// let slow_handle = slow.handle();
    /// assert_eq!(slow.await.unwrap(), None);
    /// assert!(slow_handle.cancelled_caught()); // its deadline fired and it moved on
    ///
    /// let late = wherefore::Scope::new();
    /// let late_handle = late.handle();
    /// let out = late
    ///     .run(async {
    ///         wherefore::checkpoint().await?;
    ///         late_handle.cancel(); // after the last cancellation point
    ///         Ok::<_, wherefore::Cancelled>("done")
    ///     })
    ///     .await;
    /// assert_eq!(out.unwrap(), Some("done"));
    /// assert!(late_handle.cancel_called());
    /// assert!(!late_handle.cancelled_caught()); // the body finished all the same
    /// # });
    /// ```
    pub fn cancelled_caught(&self) -> bool {
        self.node.caught()
    }

    /// How many cancel requests (explicit, deadline, parent) reached the scope after it was
    /// already cancelled and so changed nothing (S17).
    ///
    /// ```
    /// let handle = wherefore::Scope::new().handle();
    /// handle.cancel();
    /// handle.cancel_with("again");
    /// assert_eq!(handle.ignored_requests(), 1);
    /// ```
    pub fn ignored_requests(&self) -> u32 {
        self.node.ignored_requests()
    }

    /// Who the scope is.
    ///
    /// ```
    /// assert_eq!(wherefore::Scope::named("x").handle().scope().name(), Some("x"));
    /// ```
    pub fn scope(&self) -> ScopeInfo {
        self.node.info().clone()
    }

    /// The scope's absolute deadline, if it has one and it is known (a relative timeout becomes
    /// absolute when the scope is entered).
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// let handle = wherefore::Scope::new().handle();
    /// let at = wherefore::now();
    /// handle.set_deadline(at + std::time::Duration::from_secs(9));
    /// assert_eq!(handle.deadline(), Some(at + std::time::Duration::from_secs(9)));
    /// # });
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.node.deadline()
    }

    /// Moves the deadline; takes effect at once. A deadline moved into the past cancels the
    /// scope now (the next cancellation point fails). After the scope was cancelled, the new
    /// deadline is recorded but changes nothing: a deadline never un-cancels and never replaces
    /// the recorded cause (S13).
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// let scope = wherefore::Scope::new();
    /// let handle = scope.handle();
    /// let out = scope
    ///     .run(async {
    ///         handle.set_deadline(wherefore::now()); // now is not in the future: fires
    ///         wherefore::checkpoint().await
    ///     })
    ///     .await;
    /// assert!(matches!(out, Ok(None)));
    /// assert_eq!(handle.cause().unwrap().kind(), "timeout");
    /// # });
    /// ```
    #[track_caller]
    pub fn set_deadline(&self, deadline: Instant) {
        self.node.set_deadline(Some(deadline), Location::caller());
    }

    /// Sets the deadline `timeout` from now; see [`set_deadline`](Self::set_deadline).
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// let handle = wherefore::Scope::new().handle();
    /// handle.set_timeout(std::time::Duration::from_secs(1));
    /// # });
    /// ```
    #[track_caller]
    pub fn set_timeout(&self, timeout: Duration) {
        self.node.set_timeout(timeout, Location::caller());
    }

    /// Removes the deadline. Does not un-cancel a scope whose deadline already fired.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// let handle = wherefore::Scope::new().with_deadline(wherefore::now()).handle();
    /// handle.clear_deadline();
    /// assert_eq!(handle.deadline(), None);
    /// # });
    /// ```
    #[track_caller]
    pub fn clear_deadline(&self) {
        self.node.set_deadline(None, Location::caller());
    }

    /// Whether the scope is shielded.
    ///
    /// ```
    /// assert!(!wherefore::Scope::new().handle().is_shielded());
    /// ```
    pub fn is_shielded(&self) -> bool {
        self.node.is_shielded()
    }

    /// Raises or lowers the shield; takes effect at once. Lowering it lets a pending cancellation
    /// of an enclosing scope in; raising it stops one that came from above (the scope's own
    /// cause stays).
    ///
    /// ```
    /// let handle = wherefore::Scope::new().handle();
    /// handle.set_shielded(true);
    /// assert!(handle.is_shielded());
    /// ```
    pub fn set_shielded(&self, shielded: bool) {
        self.node.set_shielded(shielded);
    }

    /// A snapshot of this scope and everything below it: each scope's state and, under
    /// [`testing`](crate::testing), the live tasks and where each is blocked.
    ///
    /// A timeout scope (`move_on_after` and the like) that runs in a runtime without a hook and
    /// that nothing has asked about yet takes no place in the tree, and is not drawn: its body
    /// runs as if in the scope around it until it is recorded (see DESIGN.md, "Unrecorded
    /// timeout scopes"). A runtime with a hook (the journal's) records every scope.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use std::time::Duration;
    /// # use wherefore::{Cancelled, Nursery, NurseryBuilder};
    /// NurseryBuilder::named("workers")
    ///     .run(async |n: Nursery<'_, Cancelled>| {
    ///         n.start_soon_named("idle", wherefore::sleep(Duration::from_secs(1))).unwrap();
    ///         wherefore::checkpoint().await?; // let it start
    ///         let picture = n.cancel_handle().tree().to_string();
    ///         assert!(picture.starts_with("scope \"workers\" (running)\n"));
    ///         assert!(picture.contains("\n  task \"idle\" blocked at sleep\n"));
    ///         Ok(())
    ///     })
    ///     .await
    ///     .unwrap();
    /// # });
    /// ```
    pub fn tree(&self) -> crate::TreeSnapshot {
        let tasks = self
            .node
            .env()
            .map(|env| env.live_tasks())
            .unwrap_or_default();
        crate::TreeSnapshot::take(&self.node, &tasks)
    }

    /// Whether the scope has finished (its body completed or its future was dropped).
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// let scope = wherefore::Scope::new();
    /// let handle = scope.handle();
    /// let _ = scope.run(async { Ok::<_, wherefore::Cancelled>(()) }).await;
    /// assert!(handle.has_exited());
    /// assert!(!handle.cancel()); // S15: no effect on an exited scope
    /// # });
    /// ```
    pub fn has_exited(&self) -> bool {
        self.node.phase() == Phase::Exited
    }

    /// A future that resolves with the scope's cause once the scope is effectively cancelled
    /// (at once if it already is). `Send + 'static`, and no cancellation point: it waits for
    /// *this* scope from anywhere, in or out of any scope or runtime (a task of tokio's, a thread
    /// of its own), as `CancellationToken::cancelled` does. It never resolves if the scope is
    /// never cancelled.
    ///
    /// This is how a library that shuts down on a future of its own learns of a cancellation:
    /// axum's `serve(..).with_graceful_shutdown(service.cancelled())`, for one. Such a library's
    /// future is a foreign future (S19): awaited *inside* the scope it watches, it is dropped
    /// when that scope is cancelled, before it can drain; await it in a
    /// [`shield`](crate::shield), bounded by a timeout of its own, or outside that scope.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() {
    /// let service = wherefore::Scope::named("service").handle();
    /// let watcher = tokio::spawn(service.cancelled()); // outside any scope
    /// service.cancel_with("SIGTERM");
    /// let cause = watcher.await.unwrap();
    /// assert!(cause.to_string().starts_with("explicit (\"SIGTERM\") at "));
    /// # }
    /// ```
    pub fn cancelled(&self) -> ScopeCancelled {
        ScopeCancelled {
            node: self.node.clone(),
            wait: CancelWait::default(),
        }
    }
}

/// Future returned by [`CancelHandle::cancelled`]: resolves with the scope's cause once it is
/// cancelled.
///
/// ```
/// let handle = wherefore::Scope::new().handle();
/// let when: wherefore::ScopeCancelled = handle.cancelled();
/// handle.cancel();
/// let cause = futures::executor::block_on(when);
/// assert_eq!(cause.kind(), "explicit");
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct ScopeCancelled {
    node: ScopeNode,
    /// The task's waker, registered with `node` (taken out when this is dropped).
    wait: CancelWait,
}

impl Future for ScopeCancelled {
    type Output = Cause;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Cause> {
        let this = &mut *self;
        this.wait
            .poll_scope(this.node.clone(), cx)
            .map(|cancelled| cancelled.cause)
    }
}

impl fmt::Debug for ScopeCancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeCancelled")
            .field("scope", self.node.info())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelHandle")
            .field("scope", self.node.info())
            .field("cancelled", &self.node.is_cancelled())
            .finish()
    }
}

impl fmt::Display for CancelHandle {
    /// `scope "name"` followed by its state: `running`, `cancelled: <cause chain>`, `exited`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.node.info())?;
        match (self.node.phase(), self.node.cause()) {
            (_, Some(cause)) if self.node.is_cancelled() => write!(f, " (cancelled: {cause})"),
            (Phase::Exited, _) => f.write_str(" (exited)"),
            (Phase::Created, _) => f.write_str(" (not entered)"),
            (Phase::Entered, _) => f.write_str(" (running)"),
        }
    }
}
