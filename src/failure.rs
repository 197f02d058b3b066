//! What a nursery reports: the failures of its members, in order, and the errors of spawning.

use std::error::Error;
use std::fmt;

use crate::cancelled::{CancelError, Cancelled};
use crate::identity::TaskInfo;

/// A nursery member (a spawned task, or the body) that failed.
///
/// ```
/// # wherefore::testing::block_on(async {
/// use wherefore::{FailureKind, Nursery};
/// type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// let err = wherefore::nursery(async |n: Nursery<'_, BoxError>| {
///     n.start_soon_named("db", async { Err::<(), _>("disk full".into()) }).unwrap();
///     Ok(())
/// })
/// .await
/// .unwrap_err();
/// let failure = &err.failures()[0];
/// assert_eq!(failure.task().name(), Some("db"));
/// assert!(matches!(failure.kind(), FailureKind::Error(e) if e.to_string() == "disk full"));
/// # });
/// ```
#[derive(Debug)]
pub struct Failure<E> {
    pub(crate) task: TaskInfo,
    pub(crate) kind: FailureKind<E>,
}

/// How a member failed.
///
/// ```
/// let kind: wherefore::FailureKind<std::io::Error> =
///     wherefore::FailureKind::Panic("boom".to_owned());
/// assert_eq!(kind.to_string(), "panicked: boom");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum FailureKind<E> {
    /// It returned this error.
    Error(E),
    /// It panicked with this message (only in [`collect_panics`](crate::NurseryBuilder::collect_panics)
    /// mode; by default a panic resumes once every member has finished).
    Panic(String),
}

impl<E> Failure<E> {
    /// The member that failed.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # type BoxError = Box<dyn std::error::Error + Send + Sync>;
    /// let err = wherefore::nursery(async |n: wherefore::Nursery<'_, BoxError>| {
    ///     n.start_soon_named("db", async { Err::<(), _>("disk full".into()) }).unwrap();
    ///     Ok(())
    /// }).await.unwrap_err();
    /// let failure = &err.failures()[0];
    /// assert_eq!(failure.task().name(), Some("db"));
    /// assert_eq!(failure.task().spawned_at().file(), file!());
    /// # });
    /// ```
    pub fn task(&self) -> &TaskInfo {
        &self.task
    }

    /// How it failed.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::FailureKind;
    /// # type BoxError = Box<dyn std::error::Error + Send + Sync>;
    /// let err = wherefore::nursery(async |n: wherefore::Nursery<'_, BoxError>| {
    ///     n.start_soon(async { Err::<(), _>("disk full".into()) }).unwrap();
    ///     Ok(())
    /// }).await.unwrap_err();
    /// let FailureKind::Error(e) = err.failures()[0].kind() else { unreachable!() };
    /// assert_eq!(e.to_string(), "disk full"); // the member's own error
    /// # });
    /// ```
    pub fn kind(&self) -> &FailureKind<E> {
        &self.kind
    }

    /// The member's identity and how it failed, by value.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # type BoxError = Box<dyn std::error::Error + Send + Sync>;
    /// let err = wherefore::nursery(async |n: wherefore::Nursery<'_, BoxError>| {
    ///     n.start_soon(async { Err::<(), _>("x".into()) }).unwrap();
    ///     Ok(())
    /// }).await.unwrap_err();
    /// let (task, kind) = err.into_failures().remove(0).into_parts();
    /// assert!(task.name().is_none());
    /// assert!(matches!(kind, wherefore::FailureKind::Error(_)));
    /// # });
    /// ```
    pub fn into_parts(self) -> (TaskInfo, FailureKind<E>) {
        (self.task, self.kind)
    }
}

impl<E: fmt::Display> fmt::Display for FailureKind<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Error(e) => write!(f, "failed: {e}"),
            FailureKind::Panic(message) => write!(f, "panicked: {message}"),
        }
    }
}

impl<E: fmt::Display> fmt::Display for Failure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (spawned at {}) {}",
            self.task, self.task.spawned_at, self.kind
        )
    }
}

/// Why a nursery did not return its body's value.
///
/// ```
/// # wherefore::testing::block_on(async {
/// use wherefore::{Nursery, NurseryError};
/// type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// let err = wherefore::nursery(async |n: Nursery<'_, BoxError>| {
///     n.start_soon_named("a", async { Err::<(), _>("first".into()) }).unwrap();
///     n.start_soon_named("b", async { Err::<(), _>("second".into()) }).unwrap();
///     Ok(())
/// })
/// .await
/// .unwrap_err();
/// assert!(matches!(err, NurseryError::Failed(ref f) if f.len() == 2));
/// assert!(err.to_string().starts_with("2 nursery members failed: task \"a\""));
/// # });
/// ```
#[derive(Debug)]
pub enum NurseryError<E> {
    /// One or more members failed; every failure, in the order they happened (S3: failures win
    /// over a cancellation, which stays pending for the enclosing scope).
    Failed(Vec<Failure<E>>),
    /// No member failed, but a cancellation ends the nursery: an enclosing scope's that reached
    /// it, whatever the body returned (S18: propagate it with `?`, the scope that caused it
    /// absorbs it; so a body that has something to hand over after such a cancellation, a
    /// report, leaves it where the caller can read it rather than returning it), or the body
    /// ended with the nursery's own cancellation through its
    /// [`cancel_handle`](crate::Nursery::cancel_handle) (a nursery never absorbs; see DESIGN.md).
    Cancelled(Cancelled),
}

impl<E> NurseryError<E> {
    /// The failures, in order; empty for a cancellation.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::{Cancelled, Nursery};
    /// # type BoxError = Box<dyn std::error::Error + Send + Sync>;
    /// let failed = wherefore::nursery(async |n: Nursery<'_, BoxError>| {
    ///     n.start_soon_named("a", async { Err::<(), _>("first".into()) }).unwrap();
    ///     n.start_soon_named("b", async { Err::<(), _>("second".into()) }).unwrap();
    ///     Ok(())
    /// }).await.unwrap_err();
    /// let names: Vec<_> = failed.failures().iter().map(|f| f.task().name()).collect();
    /// assert_eq!(names, [Some("a"), Some("b")]);
    ///
    /// let cancelled = wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    ///     n.cancel_handle().cancel();
    ///     wherefore::checkpoint().await
    /// }).await.unwrap_err();
    /// assert!(cancelled.failures().is_empty());
    /// # });
    /// ```
    pub fn failures(&self) -> &[Failure<E>] {
        match self {
            NurseryError::Failed(failures) => failures,
            NurseryError::Cancelled(_) => &[],
        }
    }

    /// The failures by value; empty for a cancellation.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use std::io;
    /// use wherefore::FailureKind;
    /// let err = wherefore::nursery(async |n: wherefore::Nursery<'_, io::Error>| {
    ///     n.start_soon(async { Err::<(), _>(io::Error::from(io::ErrorKind::TimedOut)) }).unwrap();
    ///     Ok(())
    /// }).await.unwrap_err();
    /// let (_task, kind) = err.into_failures().remove(0).into_parts();
    /// let FailureKind::Error(owned) = kind else { unreachable!() }; // the `io::Error` itself
    /// assert_eq!(owned.kind(), io::ErrorKind::TimedOut);
    /// # });
    /// ```
    pub fn into_failures(self) -> Vec<Failure<E>> {
        match self {
            NurseryError::Failed(failures) => failures,
            NurseryError::Cancelled(_) => Vec::new(),
        }
    }
}

impl<E: fmt::Display> fmt::Display for NurseryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NurseryError::Cancelled(c) => fmt::Display::fmt(c, f),
            NurseryError::Failed(failures) => {
                match failures.len() {
                    1 => f.write_str("a nursery member failed: ")?,
                    n => write!(f, "{n} nursery members failed: ")?,
                }
                for (i, failure) in failures.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{failure}")?;
                }
                Ok(())
            }
        }
    }
}

impl<E: fmt::Display + fmt::Debug> Error for NurseryError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            NurseryError::Cancelled(c) => Some(c),
            NurseryError::Failed(_) => None,
        }
    }
}

impl<E> From<Cancelled> for NurseryError<E> {
    fn from(c: Cancelled) -> Self {
        NurseryError::Cancelled(c)
    }
}

impl<E> CancelError for NurseryError<E> {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            NurseryError::Cancelled(c) => Some(c),
            NurseryError::Failed(_) => None,
        }
    }
}

/// A future that could not be spawned, handed back.
///
/// ```
/// # wherefore::testing::block_on(async {
/// use wherefore::{Nursery, SpawnError};
/// // A handle that escaped its nursery (here, as the body's value):
/// let kept = wherefore::nursery(async |n: Nursery<'_, wherefore::Cancelled>| Ok(n.clone()))
///     .await
///     .unwrap();
/// let late = kept.spawn(async { Ok(5) });
/// let Err(SpawnError::Closed(fut)) = late else { unreachable!() };
/// assert_eq!(fut.await.unwrap(), 5); // nothing was lost
/// # });
/// ```
#[non_exhaustive]
pub enum SpawnError<F> {
    /// The nursery has finished (its body and every member ended), so nothing can join it.
    Closed(F),
    /// The persistent group is shutting down, draining, or done, or its scope was cancelled (S10).
    ShuttingDown(F),
    /// A worker member (feature `tokio`) was spawned outside a tokio runtime.
    NoRuntime(F),
}

impl<F> SpawnError<F> {
    /// The future that was not spawned.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::{Cancelled, Nursery};
    /// # let kept = wherefore::nursery(async |n: Nursery<'_, Cancelled>| Ok(n.clone()))
    /// #     .await
    /// #     .unwrap();
    /// // `kept` is the handle of a nursery that has finished:
    /// let refused = kept.spawn(async { Ok("not lost") }).unwrap_err();
    /// assert_eq!(refused.into_future().await.unwrap(), "not lost"); // run it here instead
    /// # });
    /// ```
    pub fn into_future(self) -> F {
        match self {
            SpawnError::Closed(f) | SpawnError::ShuttingDown(f) | SpawnError::NoRuntime(f) => f,
        }
    }
}

impl<F> fmt::Debug for SpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::Closed(_) => f.write_str("Closed(..)"),
            SpawnError::ShuttingDown(_) => f.write_str("ShuttingDown(..)"),
            SpawnError::NoRuntime(_) => f.write_str("NoRuntime(..)"),
        }
    }
}

impl<F> fmt::Display for SpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::Closed(_) => f.write_str("spawn into a closed nursery"),
            SpawnError::ShuttingDown(_) => f.write_str("spawn into a group that is shutting down"),
            SpawnError::NoRuntime(_) => {
                f.write_str("spawn of a worker member outside a tokio runtime")
            }
        }
    }
}

impl<F> Error for SpawnError<F> {}

/// A member's failure is an error of its own when the member's error type is one (not
/// `Box<dyn Error>`, which std does not make an `Error`): its source is the member's error (none
/// for a panic), so error reporters walk from the member to what it returned.
///
/// ```
/// # wherefore::testing::block_on(async {
/// use std::error::Error;
/// use std::io;
/// let err = wherefore::nursery(async |n: wherefore::Nursery<'_, io::Error>| {
///     n.start_soon_named("db", async { Err::<(), _>(io::Error::other("disk full")) }).unwrap();
///     Ok(())
/// })
/// .await
/// .unwrap_err();
/// let failure: &dyn Error = &err.failures()[0];
/// assert_eq!(failure.source().unwrap().to_string(), "disk full");
/// # });
/// ```
impl<E: Error + 'static> Error for Failure<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.kind {
            FailureKind::Error(e) => Some(e),
            FailureKind::Panic(_) => None,
        }
    }
}
