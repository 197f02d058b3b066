//! How a nursery's state is shared: between threads ([`Sendable`], the default: the nursery
//! future is `Send` when its body and members are) or within one thread ([`Local`]: members may
//! be `!Send`, and so is the nursery future).
//!
//! One implementation serves both: a nursery is generic over its sharing `S`, keeps its state
//! behind the same locks in both, and differs only in what it admits. [`Holds`] says what a
//! sharing admits: `Sendable` holds `Send` values only, `Local` holds anything. The one place
//! that relies on it is the `Send` of a sendable nursery's type-erased members (`member.rs`).

use std::fmt;

mod sealed {
    /// Seals [`Sharing`](super::Sharing): the two sharings are the crate's.
    pub trait Sealed {}

    /// Seals [`Holds`](super::Holds): its method names this type, which no other crate can, so
    /// no other crate can claim that a sharing holds a type (the `Send` of a sendable nursery's
    /// members rests on it).
    #[derive(Debug)]
    pub struct Token;
}

/// How a nursery's state is shared: [`Sendable`] (the default) or [`Local`]. Sealed.
///
/// ```
/// use wherefore::{Cancelled, LocalNursery, Nursery, Sharing};
/// fn describe<S: Sharing>(n: &Nursery<'_, Cancelled, S>) -> String {
///     format!("{n:?}")
/// }
/// wherefore::testing::block_on(async {
///     wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
///         assert!(describe(&n).contains("sendable"));
///         Ok(())
///     })
///     .await
///     .unwrap();
///     wherefore::nursery_local(async |n: LocalNursery<'_, Cancelled>| {
///         assert!(describe(&n).contains("local"));
///         Ok(())
///     })
///     .await
///     .unwrap();
/// });
/// ```
pub trait Sharing: sealed::Sealed + fmt::Debug + Default + Send + Sync + Unpin + 'static {
    /// `"sendable"` or `"local"`, for `Debug` output.
    const NAME: &'static str;
}

/// Whether a nursery of sharing `Self` may hold a value of type `T` (a member's future, its
/// output). [`Sendable`] holds `Send` values, [`Local`] any. Sealed.
///
/// ```
/// fn holds<S: wherefore::Holds<T>, T>() {}
/// holds::<wherefore::Sendable, String>();
/// holds::<wherefore::Local, std::rc::Rc<u8>>(); // only the local flavour holds an `Rc`
/// ```
#[diagnostic::on_unimplemented(
    message = "`{T}` cannot be sent between threads safely, so a `Nursery` cannot hold it",
    label = "not `Send`",
    note = "a nursery's future is `Send`, so its members and their outputs must be; \
            for `!Send` members open the nursery with `wherefore::nursery_local` \
            (its handle is a `LocalNursery`)"
)]
pub trait Holds<T: ?Sized>: Sharing {
    #[doc(hidden)]
    fn sealed(_: sealed::Token);
}

/// The default sharing: the nursery's state may move between threads, so the nursery future is
/// `Send` (it can be `tokio::spawn`ed, or be an axum handler) when its body is; its members, and
/// their outputs, must be `Send`.
///
/// ```
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() {
/// use wherefore::{Cancelled, Nursery};
/// let task = tokio::spawn(wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
///     let mut child = n.spawn(async { Ok(6 * 7) }).unwrap();
///     Ok(child.join().await?.completed())
/// }));
/// assert_eq!(task.await.unwrap().unwrap(), Some(42));
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Sendable;

/// The sharing of [`nursery_local`](crate::nursery_local): members may be `!Send` (hold an
/// `Rc`, borrow a `Cell`), and the nursery future is `!Send` (it runs where tokio runs a future
/// in place: `#[tokio::main]`, `block_on`, a `LocalSet`). The same semantics otherwise.
///
/// ```
/// # wherefore::testing::block_on(async {
/// use std::rc::Rc;
/// use wherefore::LocalNursery;
/// let shared = Rc::new(5);
/// let out = wherefore::nursery_local(async |n: LocalNursery<'_, wherefore::Cancelled>| {
///     let shared = shared.clone();
///     let mut child = n.spawn(async move { Ok(*shared + 1) }).unwrap();
///     Ok(child.join().await?.completed())
/// })
/// .await;
/// assert_eq!(out.unwrap(), Some(6));
/// # });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Local;

impl sealed::Sealed for Sendable {}
impl sealed::Sealed for Local {}

impl Sharing for Sendable {
    const NAME: &'static str = "sendable";
}

impl Sharing for Local {
    const NAME: &'static str = "local";
}

impl<T: Send + ?Sized> Holds<T> for Sendable {
    fn sealed(_: sealed::Token) {}
}

impl<T: ?Sized> Holds<T> for Local {
    fn sealed(_: sealed::Token) {}
}
