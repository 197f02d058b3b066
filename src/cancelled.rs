//! The errors a cancellation point returns, and how a scope recognises its own cancellation inside
//! a user's error type.

use std::error::Error;
use std::fmt;

use crate::cause::{Cause, Timeout};
use crate::identity::ScopeInfo;
use crate::scope_tree::ScopeNode;

/// The error every cancellation point returns once the task's scope is effectively cancelled.
///
/// It carries the [`Cause`] and remembers the scope it was raised in, so that only the scope that
/// caused it absorbs it (see [`CancelError`]). Propagate it with `?`; a scope boundary such as
/// [`move_on_after`](crate::move_on_after) catches it.
///
/// ```
/// # wherefore::testing::block_on(async {
/// use std::time::Duration;
/// let out = wherefore::move_on_after(Duration::from_secs(1), async {
///     wherefore::sleep(Duration::from_secs(10)).await?; // fails with `Cancelled`
///     Ok::<_, wherefore::Cancelled>("finished")
/// })
/// .await;
/// assert!(matches!(out, Ok(None))); // the timeout scope absorbed its own cancellation
/// # });
/// ```
#[derive(Clone)]
pub struct Cancelled {
    pub(crate) cause: Cause,
    /// The innermost effectively-cancelled scope of the task at the cancellation point.
    pub(crate) raised_in: ScopeNode,
}

impl Cancelled {
    /// Why the scope was cancelled.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::{Cause, Scope};
    /// let scope = Scope::new();
    /// scope.handle().cancel_with("stop");
    /// let out = scope.run(async {
    ///     let err = wherefore::checkpoint().await.unwrap_err();
    ///     assert!(matches!(err.cause(), Cause::Explicit(_)));
    ///     Err::<(), _>(err)
    /// }).await;
    /// assert!(matches!(out, Ok(None)));
    /// # });
    /// ```
    pub fn cause(&self) -> &Cause {
        &self.cause
    }

    /// The innermost cancelled scope the task was in when the cancellation point failed.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::Scope;
    /// let scope = Scope::named("job");
    /// scope.handle().cancel();
    /// let _ = scope.run(async {
    ///     let err = wherefore::checkpoint().await.unwrap_err();
    ///     assert_eq!(err.scope().name(), Some("job"));
    ///     Err::<(), _>(err)
    /// }).await;
    /// # });
    /// ```
    pub fn scope(&self) -> ScopeInfo {
        self.raised_in.info().clone()
    }
}

/// The same cancellation: the same cause (the same request, see [`Cause`]), raised in the same
/// scope.
///
/// ```
/// # wherefore::testing::block_on(async {
/// let scope = wherefore::Scope::new();
/// scope.handle().cancel();
/// let _ = scope
///     .run(async {
///         let first = wherefore::checkpoint().await.unwrap_err();
///         let again = wherefore::checkpoint().await.unwrap_err(); // level-triggered
///         assert_eq!(first, again);
///         Err::<(), _>(first)
///     })
///     .await;
/// # });
/// ```
impl PartialEq for Cancelled {
    fn eq(&self, other: &Self) -> bool {
        self.cause == other.cause && self.raised_in.ptr_eq(&other.raised_in)
    }
}

impl Eq for Cancelled {}

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cancelled: {}", self.cause)
    }
}

impl fmt::Debug for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancelled")
            .field("cause", &self.cause)
            .field("raised_in", self.raised_in.info())
            .finish()
    }
}

impl Error for Cancelled {}

/// The error of [`fail_after`](crate::fail_after) and [`fail_at`](crate::fail_at) when their own
/// deadline fired. Carries the [`Timeout`] cause; displays as it does, naming the scope (the
/// timeout's name, if it was [given one](crate::FailAfter::named)).
///
/// Two `TimedOut` are equal when they carry the same deadline passing (see [`Timeout`]).
///
/// ```
/// # wherefore::testing::block_on(async {
/// use std::time::Duration;
/// let out = wherefore::fail_after(Duration::from_secs(1), async {
///     wherefore::sleep(Duration::from_secs(2)).await?;
///     Ok::<_, wherefore::Cancelled>(())
/// })
/// .await;
/// let timed_out = out.unwrap_err();
/// assert_eq!(timed_out.timeout().after(), Some(Duration::from_secs(1)));
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedOut {
    pub(crate) timeout: Timeout,
}

impl TimedOut {
    /// The deadline that fired, in which scope, set where.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use std::time::Duration;
    /// let slow = wherefore::sleep(Duration::from_secs(9));
    /// let err = wherefore::fail_after(Duration::from_secs(3), slow).await.unwrap_err();
    /// assert_eq!(err.timeout().after(), Some(Duration::from_secs(3)));
    /// assert_eq!(err.timeout().set_at().file(), file!()); // where `fail_after` was called
    /// # });
    /// ```
    pub fn timeout(&self) -> &Timeout {
        &self.timeout
    }

    /// The same as a [`Cause`], for logging alongside other causes.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use std::time::Duration;
    /// let err = wherefore::fail_after(Duration::ZERO, wherefore::checkpoint()).await.unwrap_err();
    /// assert_eq!(err.cause().kind(), "timeout");
    /// # });
    /// ```
    pub fn cause(&self) -> Cause {
        Cause::Timeout(self.timeout.clone())
    }
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.timeout, f)
    }
}

impl Error for TimedOut {}

/// An error type that can carry a [`Cancelled`], so that scopes can recognise their own
/// cancellation inside it.
///
/// Scope bodies return `Result<T, E>` with `E: CancelError`. When a body ends with an error whose
/// [`as_cancelled`](CancelError::as_cancelled) is a cancellation that this scope caused, the scope
/// absorbs it (for example `move_on_after` returns `Ok(None)`); any other error passes through.
///
/// Implemented for [`Cancelled`] itself, for `Box<dyn Error + Send + Sync>` and `std::io::Error`
/// (found through the `source()` chain), and for [`NurseryError`](crate::NurseryError). For your
/// own error enum, add a variant:
///
/// ```
/// use wherefore::{CancelError, Cancelled};
///
/// #[derive(Debug)]
/// enum MyError {
///     Cancelled(Cancelled),
///     Io(std::io::Error),
/// }
/// impl From<Cancelled> for MyError {
///     fn from(c: Cancelled) -> Self {
///         MyError::Cancelled(c)
///     }
/// }
/// impl CancelError for MyError {
///     fn as_cancelled(&self) -> Option<&Cancelled> {
///         match self {
///             MyError::Cancelled(c) => Some(c),
///             _ => None,
///         }
///     }
/// }
/// # let _ = MyError::Io(std::io::Error::other("x"));
/// ```
pub trait CancelError: From<Cancelled> {
    /// The cancellation this error carries, if it is one.
    fn as_cancelled(&self) -> Option<&Cancelled>;
}

impl CancelError for Cancelled {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        Some(self)
    }
}

/// Walks an error's `source()` chain for a [`Cancelled`]. Iterative, like every chain walk here.
fn find_cancelled<'a>(mut err: &'a (dyn Error + 'static)) -> Option<&'a Cancelled> {
    loop {
        if let Some(c) = err.downcast_ref::<Cancelled>() {
            return Some(c);
        }
        err = err.source()?;
    }
}

impl CancelError for Box<dyn Error + Send + Sync> {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        find_cancelled(self.as_ref())
    }
}

impl From<Cancelled> for std::io::Error {
    fn from(c: Cancelled) -> Self {
        std::io::Error::other(c)
    }
}

impl CancelError for std::io::Error {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        find_cancelled(self.get_ref()?)
    }
}
