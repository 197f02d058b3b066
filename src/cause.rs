//! Why a scope was cancelled: the typed [`Cause`] and the chain it forms through parent scopes.
//!
//! A cause is recorded once per cancel request and shared by reference after that: a descendant
//! that is cancelled because its parent was holds a [`Cause::Parent`] that points at the parent
//! scope and reads the parent's cause when asked, so cancelling a tree of any size allocates at
//! most once (for an explicit tag or a failure message), never once per descendant.

use std::any::Any;
use std::fmt;
use std::panic::Location;
use std::time::{Duration, Instant};

use crate::identity::{ScopeInfo, TaskInfo};
use crate::scope_tree::ScopeNode;
use crate::sync::Frozen;

/// Why a scope was cancelled.
///
/// Causes form a chain: a scope cancelled because an ancestor was carries [`Cause::Parent`], whose
/// [`Parent::cause`] is that ancestor's cause, and so on up to the [`root`](Cause::root) that started
/// it. `Display` renders the whole chain as one line, each hop separated by `": "`:
///
/// ```
/// use wherefore::{Cause, Scope};
///
/// let outer = Scope::named("server");
/// let server = outer.handle();
/// server.cancel_with("shutdown");
/// let cause = server.cause().unwrap();
/// assert!(matches!(cause, Cause::Explicit(_)));
/// assert!(cause.to_string().starts_with("explicit (\"shutdown\") at "));
/// ```
///
/// Cloning is cheap: every variant holds one shared reference only, so a cause is two words wide.
///
/// Two causes are equal when they are the same request: the same explicit cancel, the same
/// deadline passing, the same member failing, or a link to the same ancestor scope. Two
/// requests that print alike (two `cancel_with("stop")` on one line, run twice) are not equal:
///
/// ```
/// let handle = wherefore::Scope::new().handle();
/// handle.cancel_with("stop");
/// let seen = handle.cause().unwrap();
/// assert_eq!(seen, handle.own_cause().unwrap()); // the same request, read twice
///
/// let other = wherefore::Scope::new().handle();
/// other.cancel_with("stop");
/// assert_ne!(seen, other.cause().unwrap()); // another request with the same tag
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// Someone called [`CancelHandle::cancel`](crate::CancelHandle::cancel) or
    /// [`cancel_with`](crate::CancelHandle::cancel_with).
    Explicit(Explicit),
    /// The scope's own deadline passed.
    Timeout(Timeout),
    /// A sibling task (or the nursery's body) panicked, so its nursery cancelled the rest.
    SiblingPanic(SiblingFailure),
    /// A sibling task (or the nursery's body) returned an error, so its nursery cancelled the rest.
    SiblingError(SiblingFailure),
    /// An ancestor scope was cancelled; its cause is the next link of the chain.
    Parent(Parent),
}

impl Cause {
    /// The cause at the top of the chain: the one that started this cancellation.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use wherefore::{Cause, Scope};
    ///
    /// let outer = Scope::named("outer");
    /// let handle = outer.handle();
    /// let seen = outer
    ///     .run(Scope::named("inner").run(async {
    ///         handle.cancel_with("stop");
    ///         let cause = wherefore::cancelled().await;
    ///         Ok::<_, wherefore::Cancelled>(cause)
    ///     }))
    ///     .await
    ///     .unwrap() // no error escaped the outer scope
    ///     .unwrap() // the outer scope's body (the inner scope) returned a value
    ///     .unwrap(); // and so did the inner body
    /// assert!(matches!(seen, Cause::Parent(_)));
    /// assert!(matches!(seen.root(), Cause::Explicit(_)));
    /// # });
    /// ```
    pub fn root(&self) -> Cause {
        self.chain().last().unwrap_or_else(|| self.clone())
    }

    /// Iterates the chain from this cause up to its root, this cause first.
    ///
    /// ```
    /// let scope = wherefore::Scope::new();
    /// let handle = scope.handle();
    /// handle.cancel();
    /// assert_eq!(handle.cause().unwrap().chain().count(), 1);
    /// ```
    pub fn chain(&self) -> Chain {
        Chain {
            next: Some(self.clone()),
        }
    }

    /// A short name of this link's kind, as used in logs: `explicit`, `timeout`, `sibling-panic`,
    /// `sibling-error` or `parent`.
    ///
    /// ```
    /// let handle = wherefore::Scope::new().handle();
    /// handle.cancel();
    /// assert_eq!(handle.cause().unwrap().kind(), "explicit");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Cause::Explicit(_) => "explicit",
            Cause::Timeout(_) => "timeout",
            Cause::SiblingPanic(_) => "sibling-panic",
            Cause::SiblingError(_) => "sibling-error",
            Cause::Parent(_) => "parent",
        }
    }

    /// Whether this link is an explicit cancel request ([`Cause::Explicit`]).
    ///
    /// Like [`kind`](Self::kind), it reads this link only: a scope cancelled because an
    /// ancestor was holds a [`Parent`](Cause::Parent) link, and the request that started it is
    /// the [`root`](Self::root)'s.
    ///
    /// ```
    /// let handle = wherefore::Scope::new().handle();
    /// handle.cancel();
    /// assert!(handle.cause().unwrap().is_explicit());
    /// ```
    pub fn is_explicit(&self) -> bool {
        matches!(self, Cause::Explicit(_))
    }

    /// Whether this link is the scope's own deadline passing ([`Cause::Timeout`]). Reads this
    /// link only, as [`is_explicit`](Self::is_explicit) does: `cause.root().is_timeout()` asks
    /// whether a deadline started the chain.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use std::time::Duration;
    /// let err = wherefore::fail_after(Duration::from_secs(1), wherefore::sleep(Duration::from_secs(2)))
    ///     .await
    ///     .unwrap_err();
    /// assert!(err.cause().is_timeout());
    /// # });
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, Cause::Timeout(_))
    }

    /// Whether this link is a sibling's failure: its panic ([`Cause::SiblingPanic`]) or its error
    /// ([`Cause::SiblingError`]). Reads this link only, as [`is_explicit`](Self::is_explicit)
    /// does.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use wherefore::Nursery;
    /// type BoxError = Box<dyn std::error::Error + Send + Sync>;
    /// let result = wherefore::nursery(async |n: Nursery<'_, BoxError>| {
    ///     n.spawn(async {
    ///         assert!(wherefore::cancelled().await.is_sibling_failure());
    ///         Ok(())
    ///     })
    ///     .unwrap();
    ///     n.start_soon(async { Err::<(), _>("refused".into()) }).unwrap();
    ///     Ok(())
    /// })
    /// .await;
    /// assert!(result.is_err());
    /// # });
    /// ```
    pub fn is_sibling_failure(&self) -> bool {
        matches!(self, Cause::SiblingPanic(_) | Cause::SiblingError(_))
    }

    /// The tag of this link, if it is an explicit cancel tagged with a `T` (see
    /// [`Explicit::tag_as`]).
    ///
    /// Code that was cancelled because an enclosing scope was holds a [`Parent`](Cause::Parent)
    /// link, whose tag is `None`: the request that started the chain is its
    /// [`root`](Self::root), so cleanup that branches on the reason asks
    /// `cause.root().tag_as::<T>()`.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use wherefore::Scope;
    ///
    /// #[derive(Debug, PartialEq)]
    /// enum Stop {
    ///     Signal(&'static str),
    ///     Deploy,
    /// }
    ///
    /// let service = Scope::named("service");
    /// service.handle().cancel_with(Stop::Signal("SIGTERM"));
    /// let cause = service
    ///     .run(Scope::named("worker").run(async { Ok::<_, wherefore::Cancelled>(wherefore::cancelled().await) }))
    ///     .await
    ///     .unwrap().unwrap().unwrap(); // the worker's cause: its parent was cancelled
    /// assert_eq!(cause.tag_as::<Stop>(), None); // a `Parent` link has no tag
    /// assert_eq!(cause.root().tag_as::<Stop>(), Some(&Stop::Signal("SIGTERM")));
    /// assert_eq!(cause.root().tag_as::<&str>(), None); // tagged, but not with a `&str`
    /// # });
    /// ```
    pub fn tag_as<T: Any>(&self) -> Option<&T> {
        match self {
            Cause::Explicit(explicit) => explicit.tag_as(),
            _ => None,
        }
    }

    /// Writes this link alone, without the rest of the chain.
    fn fmt_link(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Explicit(e) => fmt::Display::fmt(e, f),
            Cause::Timeout(t) => fmt::Display::fmt(t, f),
            Cause::SiblingPanic(s) => {
                write!(f, "sibling {} panicked: {}", s.describe(), s.message())
            }
            Cause::SiblingError(s) => write!(f, "sibling {} failed: {}", s.describe(), s.message()),
            Cause::Parent(p) => write!(f, "parent {} was cancelled", p.scope()),
        }
    }
}

/// A cause is an error too, to hand to code that wants one (`anyhow`, a log's `error` field): it
/// displays as its whole chain, one line, and has no further source (the chain is in the text:
/// the parents' causes are read when asked, not held).
///
/// ```
/// let handle = wherefore::Scope::named("job").handle();
/// handle.cancel_with("operator");
/// let as_error: Box<dyn std::error::Error + Send + Sync> = Box::new(handle.cause().unwrap());
/// assert!(as_error.to_string().starts_with("explicit (\"operator\") at "));
/// ```
impl std::error::Error for Cause {}

impl fmt::Display for Cause {
    /// The whole chain on one line, each link separated by `": "`. Iterative: a chain thousands
    /// of scopes long does not grow the stack.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, link) in self.chain().enumerate() {
            if i > 0 {
                f.write_str(": ")?;
            }
            link.fmt_link(f)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cause({self})")
    }
}

/// Iterator over a cause chain, from a cause up to its root. Returned by [`Cause::chain`].
///
/// ```
/// let handle = wherefore::Scope::new().handle();
/// handle.cancel();
/// let kinds: Vec<_> = handle.cause().unwrap().chain().map(|c| c.kind()).collect();
/// assert_eq!(kinds, ["explicit"]);
/// ```
#[derive(Debug)]
pub struct Chain {
    next: Option<Cause>,
}

impl Iterator for Chain {
    type Item = Cause;

    fn next(&mut self) -> Option<Cause> {
        let current = self.next.take()?;
        if let Cause::Parent(parent) = &current {
            self.next = Some(parent.cause());
        }
        Some(current)
    }
}

/// An explicit cancel request: its optional tag and where `cancel` was called.
///
/// The tag is kept as the value it was given, so it can be matched by type
/// ([`tag_as`](Explicit::tag_as)) as well as printed ([`tag`](Explicit::tag)). Two `Explicit`
/// values are equal when they are the same request (one call to `cancel`).
///
/// ```
/// use wherefore::Cause;
/// let handle = wherefore::Scope::named("job").handle();
/// handle.cancel_with("shutdown");
/// let Some(Cause::Explicit(explicit)) = handle.cause() else { unreachable!() };
/// assert_eq!(explicit.tag_as::<&str>(), Some(&"shutdown"));
/// assert_eq!(explicit.scope().name(), Some("job"));
/// assert_eq!(explicit.location().file(), file!());
/// ```
#[derive(Clone)]
pub struct Explicit {
    /// One allocation per request (two for a tag that is not zero-sized: the tag is boxed, so
    /// that the pointer is thin and `Cause` two words wide).
    inner: Frozen<ExplicitRecord>,
}

struct ExplicitRecord {
    scope: ScopeInfo,
    location: &'static Location<'static>,
    tag: Option<Box<dyn Tag>>,
}

/// What a tag is kept as: printable, and readable as its own type.
trait Tag: fmt::Debug + Send + Sync + 'static {
    fn as_any(&self) -> &dyn Any;
    fn as_debug(&self) -> &(dyn fmt::Debug + Send + Sync);
}

impl<T: fmt::Debug + Send + Sync + 'static> Tag for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_debug(&self) -> &(dyn fmt::Debug + Send + Sync) {
        self
    }
}

impl Explicit {
    pub(crate) fn new<T>(
        scope: ScopeInfo,
        location: &'static Location<'static>,
        tag: Option<T>,
    ) -> Self
    where
        T: fmt::Debug + Send + Sync + 'static,
    {
        let tag = tag.map(|tag| Box::new(tag) as Box<dyn Tag>);
        Explicit {
            inner: Frozen::new(ExplicitRecord {
                scope,
                location,
                tag,
            }),
        }
    }

    /// The tag given to [`cancel_with`](crate::CancelHandle::cancel_with), if any, to print.
    ///
    /// ```
    /// # use wherefore::Cause;
    /// let handle = wherefore::Scope::new().handle();
    /// handle.cancel();
    /// let Some(Cause::Explicit(explicit)) = handle.cause() else { unreachable!() };
    /// assert!(explicit.tag().is_none());
    /// ```
    pub fn tag(&self) -> Option<&(dyn fmt::Debug + Send + Sync)> {
        self.inner.tag.as_deref().map(Tag::as_debug)
    }

    /// The tag given to [`cancel_with`](crate::CancelHandle::cancel_with), if there is one and
    /// it is a `T`: what cleanup matches on to tell one reason from another.
    ///
    /// A string literal tag is a `&'static str` (`tag_as::<&str>()`).
    ///
    /// ```
    /// # use wherefore::Cause;
    /// #[derive(Debug)]
    /// enum Stop {
    ///     Signal(i32),
    ///     Deploy,
    /// }
    /// let handle = wherefore::Scope::new().handle();
    /// handle.cancel_with(Stop::Signal(15));
    /// let Some(Cause::Explicit(explicit)) = handle.cause() else { unreachable!() };
    /// match explicit.tag_as::<Stop>() {
    ///     Some(Stop::Signal(n)) => assert_eq!(*n, 15),
    ///     Some(Stop::Deploy) | None => unreachable!(),
    /// }
    /// assert!(explicit.tag_as::<String>().is_none()); // another type: no tag of that type
    /// ```
    pub fn tag_as<T: Any>(&self) -> Option<&T> {
        self.inner.tag.as_deref()?.as_any().downcast_ref()
    }

    /// The scope that was cancelled.
    ///
    /// ```
    /// # use wherefore::Cause;
    /// let handle = wherefore::Scope::named("a").handle();
    /// handle.cancel();
    /// let Some(Cause::Explicit(explicit)) = handle.cause() else { unreachable!() };
    /// assert_eq!(explicit.scope(), &handle.scope());
    /// ```
    pub fn scope(&self) -> &ScopeInfo {
        &self.inner.scope
    }

    /// Where `cancel` was called (`#[track_caller]`).
    ///
    /// ```
    /// # use wherefore::Cause;
    /// let handle = wherefore::Scope::new().handle();
    /// handle.cancel();
    /// let Some(Cause::Explicit(explicit)) = handle.cause() else { unreachable!() };
    /// assert_eq!(explicit.location().line(), line!() - 2);
    /// ```
    pub fn location(&self) -> &'static Location<'static> {
        self.inner.location
    }
}

/// The same request: one call to `cancel` (its record), not one that prints alike.
impl PartialEq for Explicit {
    fn eq(&self, other: &Self) -> bool {
        Frozen::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Explicit {}

impl fmt::Display for Explicit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tag() {
            Some(tag) => write!(f, "explicit ({tag:?}) at {}", self.inner.location),
            None => write!(f, "explicit cancel at {}", self.inner.location),
        }
    }
}

impl fmt::Debug for Explicit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Explicit")
            .field("tag", &self.tag())
            .field("scope", &self.inner.scope)
            .field("location", &self.inner.location)
            .finish()
    }
}

/// A scope's own deadline passed: which scope, the deadline, and where it was set. Two
/// `Timeout` values are equal when they are the same deadline passing (its record).
///
/// ```
/// # wherefore::testing::block_on(async {
/// use std::time::Duration;
/// use wherefore::{Cause, Scope};
///
/// let scope = Scope::named("request").with_timeout(Duration::from_secs(5));
/// let handle = scope.handle();
/// let out = scope.run(wherefore::sleep(Duration::from_secs(60))).await;
/// assert!(matches!(out, Ok(None)));
/// let Some(Cause::Timeout(timeout)) = handle.cause() else { unreachable!() };
/// assert_eq!(timeout.scope().name(), Some("request"));
/// assert_eq!(timeout.after(), Some(Duration::from_secs(5)));
/// assert_eq!(
///     handle.cause().unwrap().to_string(),
///     format!("scope \"request\" timed out after 5s (deadline set at {})", timeout.set_at()),
/// );
/// # });
/// ```
#[derive(Clone)]
pub struct Timeout {
    /// One allocation per deadline that fires: keeps `Cause` two words wide.
    inner: Frozen<TimeoutRecord>,
}

#[derive(Debug)]
struct TimeoutRecord {
    scope: ScopeInfo,
    deadline: Instant,
    after: Option<Duration>,
    set_at: &'static Location<'static>,
}

impl fmt::Debug for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("scope", &self.inner.scope)
            .field("deadline", &self.inner.deadline)
            .field("after", &self.inner.after)
            .field("set_at", &self.inner.set_at)
            .finish()
    }
}

/// The same deadline passing (its record), not one that prints alike.
impl PartialEq for Timeout {
    fn eq(&self, other: &Self) -> bool {
        Frozen::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Timeout {}

impl Timeout {
    pub(crate) fn new(
        scope: ScopeInfo,
        deadline: Instant,
        after: Option<Duration>,
        set_at: &'static Location<'static>,
    ) -> Self {
        Timeout {
            inner: Frozen::new(TimeoutRecord {
                scope,
                deadline,
                after,
                set_at,
            }),
        }
    }

    /// The scope whose deadline passed.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::{Cause, Scope};
    /// let scope = Scope::named("r").with_timeout(std::time::Duration::ZERO);
    /// let handle = scope.handle();
    /// let _ = scope.run(wherefore::checkpoint()).await;
    /// let Some(Cause::Timeout(t)) = handle.cause() else { unreachable!() };
    /// assert_eq!(t.scope(), &handle.scope());
    /// # });
    /// ```
    pub fn scope(&self) -> &ScopeInfo {
        &self.inner.scope
    }

    /// The deadline that passed.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::{Cause, Scope};
    /// let scope = Scope::new().with_timeout(std::time::Duration::from_secs(1));
    /// let handle = scope.handle();
    /// let _ = scope.run(wherefore::sleep(std::time::Duration::from_secs(2))).await;
    /// let Some(Cause::Timeout(t)) = handle.cause() else { unreachable!() };
    /// assert_eq!(Some(t.deadline()), handle.deadline());
    /// # });
    /// ```
    pub fn deadline(&self) -> Instant {
        self.inner.deadline
    }

    /// How long after it was set the deadline lay, when that is known (it is unless the deadline
    /// was set before the scope had a clock and given as an `Instant`).
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::{Cause, Scope};
    /// let scope = Scope::new().with_timeout(std::time::Duration::from_millis(250));
    /// let handle = scope.handle();
    /// let _ = scope.run(wherefore::sleep(std::time::Duration::from_secs(1))).await;
    /// let Some(Cause::Timeout(t)) = handle.cause() else { unreachable!() };
    /// assert_eq!(t.after(), Some(std::time::Duration::from_millis(250)));
    /// # });
    /// ```
    pub fn after(&self) -> Option<Duration> {
        self.inner.after
    }

    /// Where the deadline was set (`#[track_caller]`).
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::{Cause, Scope};
    /// let scope = Scope::new().with_timeout(std::time::Duration::ZERO);
    /// let handle = scope.handle();
    /// let _ = scope.run(wherefore::checkpoint()).await;
    /// let Some(Cause::Timeout(t)) = handle.cause() else { unreachable!() };
    /// assert_eq!(t.set_at().file(), file!());
    /// # });
    /// ```
    pub fn set_at(&self) -> &'static Location<'static> {
        self.inner.set_at
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.after {
            Some(after) => write!(
                f,
                "{} timed out after {after:?} (deadline set at {})",
                self.inner.scope, self.inner.set_at
            ),
            None => write!(
                f,
                "{} timed out (deadline set at {})",
                self.inner.scope, self.inner.set_at
            ),
        }
    }
}

/// A nursery member that failed (returned an error or panicked), as seen by its siblings.
///
/// ```
/// # wherefore::testing::block_on(async {
/// use wherefore::{Cause, Nursery};
/// type BoxError = Box<dyn std::error::Error + Send + Sync>;
///
/// let seen = std::sync::Mutex::new(None);
/// let result = wherefore::nursery(async |n: Nursery<'_, BoxError>| {
///     let seen = &seen;
///     n.spawn(async move {
///         *seen.lock().unwrap() = Some(wherefore::cancelled().await);
///         Ok(())
///     })
///     .unwrap();
///     n.start_soon_named("fetch", async { Err::<(), _>("connection refused".into()) }).unwrap();
///     Ok(())
/// })
/// .await;
/// assert_eq!(result.unwrap_err().failures().len(), 1);
/// let Some(Cause::SiblingError(failure)) = seen.into_inner().unwrap() else { unreachable!() };
/// assert_eq!(failure.task().name(), Some("fetch"));
/// assert_eq!(failure.message(), "connection refused");
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct SiblingFailure {
    pub(crate) inner: Frozen<SiblingFailureInner>,
}

#[derive(Debug)]
pub(crate) struct SiblingFailureInner {
    pub(crate) task: TaskInfo,
    pub(crate) message: String,
}

/// The same failure (its record), not one that prints alike.
impl PartialEq for SiblingFailure {
    fn eq(&self, other: &Self) -> bool {
        Frozen::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for SiblingFailure {}

impl SiblingFailure {
    pub(crate) fn new(task: TaskInfo, message: String) -> Self {
        SiblingFailure {
            inner: Frozen::new(SiblingFailureInner { task, message }),
        }
    }

    /// The member that failed: id, name and spawn location.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::{Cause, Nursery};
    /// # type BoxError = Box<dyn std::error::Error + Send + Sync>;
    /// let result = wherefore::nursery(async |n: Nursery<'_, BoxError>| {
    ///     n.spawn(async {
    ///         let Cause::SiblingError(failed) = wherefore::cancelled().await else { panic!() };
    ///         assert_eq!(failed.task().name(), Some("fetch")); // who made me stop
    ///         Ok(())
    ///     })
    ///     .unwrap();
    ///     n.start_soon_named("fetch", async { Err::<(), _>("refused".into()) }).unwrap();
    ///     Ok(())
    /// })
    /// .await;
    /// assert_eq!(result.unwrap_err().failures().len(), 1);
    /// # });
    /// ```
    pub fn task(&self) -> &TaskInfo {
        &self.inner.task
    }

    /// The failure as text: the error's `Display`, or the panic message.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::{Cause, Nursery, NurseryBuilder};
    /// let result = NurseryBuilder::new()
    ///     .collect_panics()
    ///     .run(async |n: Nursery<'_, wherefore::Cancelled>| {
    ///         n.spawn(async {
    ///             let cause = wherefore::cancelled().await;
    ///             let Cause::SiblingPanic(failed) = cause else { panic!() };
    ///             assert_eq!(failed.message(), "boom"); // the sibling's panic message
    ///             Ok(())
    ///         })
    ///         .unwrap();
    ///         n.start_soon(async { panic!("boom") as Result<(), _> }).unwrap();
    ///         Ok(())
    ///     })
    ///     .await;
    /// assert_eq!(result.unwrap_err().failures().len(), 1); // only the panic failed
    /// # });
    /// ```
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    fn describe(&self) -> String {
        format!(
            "{} (spawned at {})",
            self.inner.task, self.inner.task.spawned_at
        )
    }
}

/// An ancestor scope was cancelled. Points at that scope and reads its cause on demand, so a
/// chain costs nothing to build.
///
/// ```
/// # wherefore::testing::block_on(async {
/// use wherefore::{Cause, Scope};
/// let outer = Scope::named("outer");
/// let handle = outer.handle();
/// handle.cancel();
/// let cause = outer
///     .run(Scope::named("inner").run(async { Ok::<_, wherefore::Cancelled>(wherefore::cancelled().await) }))
///     .await
///     .unwrap().unwrap().unwrap();
/// let Cause::Parent(parent) = cause else { unreachable!() };
/// assert_eq!(parent.scope().name(), Some("outer"));
/// assert!(matches!(parent.cause(), Cause::Explicit(_)));
/// # });
/// ```
#[derive(Clone)]
pub struct Parent {
    pub(crate) node: ScopeNode,
}

/// A link to the same ancestor scope (its record).
impl PartialEq for Parent {
    /// The same link: to the same scope, as it names it (a member's own scope whose cause is its
    /// nursery's names the nursery's: `ScopeNode::visible`).
    fn eq(&self, other: &Self) -> bool {
        self.node.ptr_eq(&other.node) || self.node.visible().ptr_eq(&other.node.visible())
    }
}

impl Eq for Parent {}

impl Parent {
    /// The ancestor scope that was cancelled.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use wherefore::{Cause, Scope};
    /// let outer = Scope::named("outer");
    /// outer.handle().cancel();
    /// let seen = outer
    ///     .run(Scope::new().run(async { Ok::<_, wherefore::Cancelled>(wherefore::cancelled().await) }))
    ///     .await
    ///     .unwrap().unwrap().unwrap();
    /// let Cause::Parent(parent) = seen else { unreachable!() };
    /// assert_eq!(parent.scope().name(), Some("outer"));
    /// # });
    /// ```
    pub fn scope(&self) -> ScopeInfo {
        self.node.visible().info().clone()
    }

    /// That ancestor's own cause: the next link of the chain.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use wherefore::{Cause, Scope};
    /// let outer = Scope::named("outer");
    /// outer.handle().cancel_with("why");
    /// let seen = outer
    ///     .run(Scope::new().run(async { Ok::<_, wherefore::Cancelled>(wherefore::cancelled().await) }))
    ///     .await
    ///     .unwrap().unwrap().unwrap();
    /// let Cause::Parent(parent) = seen else { unreachable!() };
    /// assert_eq!(parent.cause().kind(), "explicit");
    /// # });
    /// ```
    pub fn cause(&self) -> Cause {
        self.node.cause_for_children()
    }
}

impl fmt::Debug for Parent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parent")
            .field("scope", self.node.visible().info())
            .finish_non_exhaustive()
    }
}
