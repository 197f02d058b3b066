//! Structured concurrency in the style of Trio's nurseries, where **every cancellation says why**.
//!
//! - A tree of cancel [`Scope`]s: a scope entered while another is being polled is its child.
//!   Cancelling a scope cancels everything below it, except behind a [`shield`].
//! - Every cancellation carries a typed [`Cause`] ([`Timeout`](Cause::Timeout),
//!   [`SiblingPanic`](Cause::SiblingPanic), [`Parent`](Cause::Parent),
//!   [`Explicit`](Cause::Explicit), ...) that chains through the tree and prints as one line.
//! - [`nursery`] runs tasks that cannot leak: it returns only when all of them have finished, and
//!   a failure in one cancels the others with a cause that names it.
//! - Cancellation is level-triggered and cooperative: every cancellation point ([`checkpoint`],
//!   [`sleep`], [`cancelled`], [`guard`], [`JoinHandle::join`]) fails with [`Cancelled`] while the
//!   task's scope is cancelled, and the scope that caused it absorbs it.
//! - [`Nursery::persistent_group`] is the home for background work that must outlive the request
//!   that started it but not the service, with a graceful [`shutdown`](PersistentGroup::shutdown).
//! - [`run`] is a small embedded executor with the real clock; [`testing`] runs the same code on
//!   virtual time and records a journal of every spawn, cancel request, observed cancellation and
//!   exit; [`event::Hook`] gives the same events to your own logs in production.
//! - With the `tokio` feature, all of it works inside tokio (its clock, paused time included),
//!   nursery members can run on tokio's worker threads (`Nursery::spawn_worker`), and
//!   `tokio::shutdown_on_signals` turns Ctrl+C / SIGTERM into a cancellation with a cause.
//!
//! ```
//! use std::time::Duration;
//! use wherefore::{Cancelled, Nursery};
//!
//! wherefore::testing::block_on(async {
//!     let out = wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
//!         n.spawn_named("fetch", async {
//!             wherefore::sleep(Duration::from_secs(1)).await?;
//!             Ok(())
//!         })
//!         .unwrap();
//!         n.spawn_named("log", async { Ok(()) }).unwrap();
//!         Ok(42)
//!     })
//!     .await; // waits for every member
//!     assert_eq!(out.unwrap(), 42);
//!
//!     let slow = async {
//!         wherefore::sleep(Duration::from_secs(60)).await?;
//!         Ok::<_, Cancelled>("slow")
//!     };
//!     match wherefore::move_on_after(Duration::from_secs(5), slow).await {
//!         Ok(Some(v)) => println!("finished: {v}"),
//!         Ok(None) => println!("timed out"),
//!         Err(cancelled) => println!("we were cancelled ourselves: {cancelled}"),
//!     }
//! });
//! ```
//!
//! DESIGN.md in the repository describes the scope state machine, the invariants and the choices
//! made where Trio, asyncio, Kotlin and Go disagree.

// Under loom the embedded runtime is left out, so some of its helpers go unused.
#![cfg_attr(wherefore_loom, allow(dead_code))]
// docs.rs builds with every feature and `--cfg docsrs` (Cargo.toml), and labels what a feature
// gates.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body_poll;
mod cancelled;
mod cause;
mod checkpoint;
mod clock;
mod context;
mod env;
pub mod event;
mod failure;
mod guard;
mod identity;
#[cfg(wherefore_loom)]
#[doc(hidden)]
pub mod loom_support;
mod member;
mod member_scope;
mod member_set;
mod nursery;
mod persistent_group;
mod planned_scope;
mod reach;
#[cfg(not(wherefore_loom))]
mod runtime;
mod scope;
mod scope_tree;
mod sharing;
mod shield;
mod slab;
mod sleep;
mod slot_queue;
mod slot_waker;
mod snapshot;
mod sync;
mod task;
#[cfg(not(wherefore_loom))]
pub mod testing;
mod timeout;
mod timer_queue;
#[cfg(all(feature = "tokio", not(wherefore_loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;
mod trace;

pub use cancelled::{CancelError, Cancelled, TimedOut};
pub use cause::{Cause, Chain, Explicit, Parent, SiblingFailure, Timeout};
pub use checkpoint::{
    CancelledFuture, Checkpoint, YieldNow, cancelled, check_cancelled, checkpoint, yield_now,
};
pub use failure::{Failure, FailureKind, NurseryError, SpawnError};
pub use guard::{Cancellable, Guarded, guard};
pub use identity::{ScopeId, ScopeInfo, TaskId, TaskInfo};
pub use nursery::{LocalNursery, Nursery, NurseryBuilder, nursery, nursery_local};
pub use persistent_group::{BoxError, DroppedMember, PersistentGroup, Shutdown, ShutdownReport};
#[cfg(not(wherefore_loom))]
pub use runtime::{Runtime, run};
pub use scope::{CancelHandle, Scope, ScopeCancelled, ScopeFuture};
pub use sharing::{Holds, Local, Sendable, Sharing};
pub use shield::{ShieldWithGrace, Shielded, shield, shield_with_grace};
pub use sleep::{Sleep, SleepForever, now, sleep, sleep_forever, sleep_until};
pub use snapshot::TreeSnapshot;
pub use task::{Join, JoinHandle, TaskExit};
pub use timeout::{FailAfter, MoveOnAfter, fail_after, fail_at, move_on_after, move_on_at};

/// The README's examples, compiled and run as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
