//! Deterministic testing on virtual time, with a journal of everything that happened.
//!
//! [`run`] runs a future on a virtual clock: time stands still while anything can run, and jumps
//! straight to the next deadline or timer when everything is blocked, so a test of an hour-long
//! timeout takes microseconds. It returns a [`Report`] with the output and a [`Journal`]: every
//! scope entered and left, task spawned and exited, cancel request (with its cause, and whether it
//! took effect or lost to an earlier one), cancellation observed at a cancellation point, shield
//! and deadline change, and clock jump, each with its virtual time. The journal's text is stable
//! (scopes and tasks are numbered per run), so a test can compare it literally.
//!
//! When every task is blocked and no timer is pending, the run stops with [`Stuck`], which
//! carries a [`TreeSnapshot`] of the live scope tree: each task, its scope, whether that scope
//! is cancelled and why, and the cancellation point or foreign future it is blocked on.
//!
//! ```
//! use std::time::Duration;
//! use wherefore::Scope;
//!
//! let report = wherefore::testing::run(async {
//!     let out = Scope::named("request")
//!         .with_timeout(Duration::from_secs(5))
//!         .run(async {
//!             wherefore::sleep(Duration::from_secs(60)).await?;
//!             Ok::<_, wherefore::Cancelled>(())
//!         })
//!         .await;
//!     assert!(matches!(out, Ok(None)));
//! });
//! let journal = report.journal().to_string();
//! assert!(journal.contains("t=5.000 clock    t=5.000\n"));
//! assert!(journal.contains("t=5.000 observe  task \"main\" at sleep in scope \"request\": "));
//! ```

//!
//! # Scenarios
//!
//! The tests in `tests/scenarios_*.rs` compare whole journals; shorter versions follow.
//!
//! **Graceful shutdown with a cleanup that hangs.** The cleanup's own grace period cuts it, with a
//! `Timeout` cause naming the shield, while the shutdown's cause stays pending outside it:
//!
//! ```
//! use std::time::Duration;
//! use wherefore::{Cancelled, Scope};
//!
//! let report = wherefore::testing::run(async {
//!     let worker = Scope::named("worker");
//!     let stop = worker.handle();
//!     worker
//!         .run(async {
//!             stop.cancel_with("shutdown");
//!             let cleanup = Scope::named("cleanup").shielded().with_timeout(Duration::from_secs(5));
//!             let _ = cleanup.run(wherefore::sleep(Duration::from_secs(3600))).await?;
//!             wherefore::checkpoint().await
//!         })
//!         .await
//! });
//! let causes = report.journal().observed_by("main");
//! assert_eq!(causes[0].to_string().split(" (").next(), Some("scope \"cleanup\" timed out after 5s"));
//! assert!(causes[1].to_string().starts_with("explicit (\"shutdown\")"));
//! ```
//!
//! **Who cancelled me.** The task reads the cause it observed, chain and all:
//!
//! ```
//! use std::time::Duration;
//! use wherefore::{Cancelled, Cause, Scope};
//!
//! let report = wherefore::testing::run(async {
//!     let service = Scope::named("service");
//!     service.handle().cancel_with("SIGTERM");
//!     let _ = service
//!         .run(Scope::named("worker").run(wherefore::sleep(Duration::from_secs(1))))
//!         .await;
//! });
//! let seen = &report.journal().observed_by("main")[0];
//! assert!(matches!(seen, Cause::Parent(_)));
//! assert!(matches!(seen.root(), Cause::Explicit(_)));
//! ```
//!
//! **Races at one instant, under many seeds.** Whatever the order, the first request processed
//! is the cause, and the journal says which lost:
//!
//! ```
//! use std::time::Duration;
//! use wherefore::{Cancelled, Nursery, Scope};
//!
//! wherefore::testing::check_seeds(
//!     0..20,
//!     || async {
//!         let job = Scope::named("job");
//!         let handle = job.handle();
//!         wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
//!             for tag in ["alice", "bob"] {
//!                 let handle = handle.clone();
//!                 n.spawn(async move {
//!                     wherefore::sleep(Duration::from_secs(1)).await?;
//!                     handle.cancel_with(tag);
//!                     Ok(())
//!                 })
//!                 .unwrap();
//!             }
//!             let _ = job.run(wherefore::sleep(Duration::from_secs(5))).await?;
//!             Ok(())
//!         })
//!         .await
//!         .unwrap();
//!         handle.cause().unwrap().to_string()
//!     },
//!     |report| {
//!         let text = report.journal().to_string();
//!         let winner = report.output().unwrap();
//!         assert!(text.contains(&format!("[lost to: {winner}]")), "{text}");
//!     },
//! );
//! ```

mod idle;
mod journal;

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::time::Duration;

pub use idle::{WaitAllTasksBlocked, wait_all_tasks_blocked};
pub use journal::{Entry, Journal};

use crate::clock::Clock;
use crate::env::Env;
use crate::event::{Event, Hook};
use crate::runtime::{self, Stalled};
use crate::snapshot::TreeSnapshot;
use crate::sync::Frozen;

/// Runs `future` on a fresh virtual clock and returns its output.
///
/// # Panics
///
/// When every task is blocked and no timer is pending (the run could never finish); the panic
/// message is the hang report. [`try_block_on`] and [`run`] return it instead.
///
/// ```
/// let v = wherefore::testing::block_on(async { 1 + 1 });
/// assert_eq!(v, 2);
/// ```
#[track_caller]
pub fn block_on<F: Future>(future: F) -> F::Output {
    Runtime::new().block_on(future)
}

/// Like [`block_on`], but returns [`Stuck`] instead of panicking when the run can never finish.
///
/// ```
/// let out = wherefore::testing::try_block_on(std::future::pending::<()>());
/// assert!(out.is_err());
/// ```
#[track_caller]
pub fn try_block_on<F: Future>(future: F) -> Result<F::Output, Stuck> {
    Runtime::new().run_inner(future, Location::caller(), None)
}

/// Runs `future` on a fresh virtual clock, recording a [`Journal`]; see the module docs.
///
/// ```
/// let report = wherefore::testing::run(async { 5 });
/// assert_eq!(report.output(), Some(&5));
/// assert!(report.journal().to_string().starts_with("t=0.000 enter    scope \"run\"\n"));
/// ```
#[track_caller]
pub fn run<F: Future>(future: F) -> Report<F::Output> {
    Runtime::new().run(future)
}

/// A virtual-time runtime with options.
///
/// ```
/// let report = wherefore::testing::Runtime::new().run(async { "done" });
/// assert_eq!(report.into_output().unwrap(), "done");
/// ```
#[derive(Default)]
pub struct Runtime {
    hook: Option<Frozen<dyn Hook>>,
    seed: Option<u64>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("hook", &self.hook.is_some())
            .field("seed", &self.seed)
            .finish()
    }
}

impl Runtime {
    /// A runtime with the default, fixed schedule and no hook of the user's.
    ///
    /// The fixed schedule: a nursery polls its ready members in the order they were woken (new
    /// members in spawn order), tasks woken at the same virtual instant are woken in the order
    /// their timers were registered, and tasks woken by a cancellation in the order they started
    /// waiting.
    ///
    /// ```
    /// use std::sync::Mutex;
    /// use wherefore::{Cancelled, Nursery};
    /// let order = Mutex::new(Vec::new());
    /// let runtime = wherefore::testing::Runtime::new();
    /// runtime.block_on(wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    ///     for name in ["a", "b", "c"] {
    ///         let order = &order;
    ///         n.start_soon(async move { Ok(order.lock().unwrap().push(name)) }).unwrap();
    ///     }
    ///     Ok(())
    /// }))
    /// .unwrap();
    /// assert_eq!(order.into_inner().unwrap(), ["a", "b", "c"]); // spawn order, every run
    /// ```
    pub fn new() -> Self {
        Runtime::default()
    }

    /// A runtime whose schedule is permuted by `seed`, reproducibly: each nursery polls its
    /// ready members in an order drawn from the seed, and tasks woken at the same virtual
    /// instant, or by the same cancellation, are woken in such an order. Deadlines keep their
    /// defined order (S9: every deadline due at an instant first, ancestors first, then creation
    /// order).
    ///
    /// [`check_seeds`] runs a scenario under many seeds.
    ///
    /// ```
    /// use std::sync::Mutex;
    /// use wherefore::{Cancelled, Nursery};
    /// let order = |seed| {
    ///     let order = Mutex::new(Vec::new());
    ///     wherefore::testing::Runtime::new().with_seed(seed).block_on(async {
    ///         wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    ///             for name in ["a", "b", "c", "d"] {
    ///                 let order = &order;
    ///                 n.spawn(async move {
    ///                     wherefore::sleep(std::time::Duration::from_secs(1)).await?;
    ///                     order.lock().unwrap().push(name);
    ///                     Ok(())
    ///                 })
    ///                 .unwrap();
    ///             }
    ///             Ok(())
    ///         })
    ///         .await
    ///         .unwrap();
    ///     });
    ///     order.into_inner().unwrap()
    /// };
    /// assert_eq!(order(7), order(7)); // reproducible
    /// assert!((0..20).any(|seed| order(seed) != ["a", "b", "c", "d"])); // permuted
    /// ```
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Also reports every event to `hook` (the journal is kept either way by [`run`](Self::run)).
    ///
    /// ```
    /// # use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
    /// # use wherefore::event::{Event, Hook};
    /// struct Count(AtomicUsize);
    /// impl Hook for Count {
    ///     fn on_event(&self, _: std::time::Duration, _: &Event) {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// }
    /// let count = Arc::new(Count(AtomicUsize::new(0)));
    /// wherefore::testing::Runtime::new().with_hook(count.clone()).block_on(async {});
    /// assert!(count.0.load(Ordering::Relaxed) > 0);
    /// ```
    pub fn with_hook(mut self, hook: std::sync::Arc<dyn Hook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Runs `future` and returns its output and the journal.
    ///
    /// ```
    /// let report = wherefore::testing::Runtime::new().run(async {
    ///     wherefore::sleep(std::time::Duration::from_secs(2)).await
    /// });
    /// assert!(report.output().unwrap().is_ok());
    /// assert!(report.journal().to_string().contains("t=2.000 clock    t=2.000\n"));
    /// ```
    #[track_caller]
    pub fn run<F: Future>(self, future: F) -> Report<F::Output> {
        let journal = Frozen::new(journal::Recorder::default());
        let outcome = self.run_inner(future, Location::caller(), Some(journal.clone()));
        Report {
            outcome,
            journal: journal.take(),
        }
    }

    /// Runs `future` and returns its output.
    ///
    /// # Panics
    ///
    /// With the hang report, when the run gets stuck.
    ///
    /// ```
    /// assert_eq!(wherefore::testing::Runtime::new().block_on(async { 3 }), 3);
    /// ```
    #[track_caller]
    pub fn block_on<F: Future>(self, future: F) -> F::Output {
        match self.run_inner(future, Location::caller(), None) {
            Ok(output) => output,
            Err(stuck) => panic!("{stuck}"),
        }
    }

    fn run_inner<F: Future>(
        self,
        future: F,
        started_at: &'static Location<'static>,
        journal: Option<Frozen<journal::Recorder>>,
    ) -> Result<F::Output, Stuck> {
        let hook: Option<Frozen<dyn Hook>> = match (self.hook, journal) {
            (None, None) => None,
            (Some(user), None) => Some(user),
            (None, Some(journal)) => Some(journal),
            (Some(user), Some(journal)) => Some(Frozen::new(Both(journal, user))),
        };
        let env = Env::new(Clock::virtual_time(self.seed), hook, true);
        let (root, main) = runtime::root_of(&env, started_at);
        runtime::drive(&env, &root, main, future).map_err(|Stalled(tree)| Stuck {
            at: env.elapsed(),
            tree,
        })
    }
}

/// Runs `scenario` once under each seed, checking each run's [`Report`] with `check`, which
/// fails by panicking (an `assert!`).
///
/// # Panics
///
/// On the first seed whose check fails, with the seed, the failure, a line that replays that run,
/// and its journal.
///
/// ```
/// use wherefore::Scope;
/// wherefore::testing::check_seeds(
///     0..50,
///     || async {
///         let scope = Scope::new().with_timeout(std::time::Duration::from_secs(1));
///         scope.run(wherefore::sleep(std::time::Duration::from_secs(2))).await
///     },
///     |report| assert!(matches!(report.output(), Some(Ok(None)))),
/// );
/// ```
#[track_caller]
pub fn check_seeds<S, Fut, C>(seeds: impl IntoIterator<Item = u64>, mut scenario: S, mut check: C)
where
    S: FnMut() -> Fut,
    Fut: Future,
    C: FnMut(&Report<Fut::Output>),
{
    for seed in seeds {
        let report = Runtime::new().with_seed(seed).run(scenario());
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| check(&report))) {
            panic!(
                "seed {seed} failed: {}\nreplay it with: \
                 wherefore::testing::Runtime::new().with_seed({seed}).run(..)\n\
                 journal of that run:\n{}",
                crate::task::panic_message(payload.as_ref()),
                report.journal()
            );
        }
    }
}

/// Two hooks in one: the journal, then the user's.
struct Both(Frozen<journal::Recorder>, Frozen<dyn Hook>);

impl Hook for Both {
    fn on_event(&self, at: Duration, event: &Event) {
        self.0.on_event(at, event);
        self.1.on_event(at, event);
    }
}

/// What [`run`] returns: the output (or why there is none) and the journal.
///
/// ```
/// let report = wherefore::testing::run(std::future::pending::<()>());
/// assert!(report.stuck().is_some());
/// assert!(report.output().is_none());
/// ```
#[derive(Debug)]
pub struct Report<T> {
    outcome: Result<T, Stuck>,
    journal: Journal,
}

impl<T> Report<T> {
    /// The journal of the run.
    ///
    /// ```
    /// let report = wherefore::testing::run(std::future::pending::<()>());
    /// assert!(report.stuck().is_some());
    /// assert!(!report.journal().entries().is_empty()); // kept even when the run got stuck
    /// ```
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The output, if the run finished.
    ///
    /// ```
    /// let report = wherefore::testing::run(async { "done" });
    /// assert_eq!(report.output(), Some(&"done"));
    /// ```
    pub fn output(&self) -> Option<&T> {
        self.outcome.as_ref().ok()
    }

    /// Why the run did not finish, if it did not.
    ///
    /// ```
    /// let report = wherefore::testing::run(wherefore::guard(std::future::pending::<()>()));
    /// let stuck = report.stuck().unwrap();
    /// assert!(stuck.to_string().contains("task \"main\" blocked at guard("));
    /// ```
    pub fn stuck(&self) -> Option<&Stuck> {
        self.outcome.as_ref().err()
    }

    /// The output, or the hang report.
    ///
    /// ```
    /// let report = wherefore::testing::run(async { 1 });
    /// assert_eq!(report.into_output().unwrap(), 1);
    /// ```
    pub fn into_output(self) -> Result<T, Stuck> {
        self.outcome
    }

    /// The output and the journal, by value.
    ///
    /// ```
    /// let (output, journal) = wherefore::testing::run(async { 1 }).into_parts();
    /// assert_eq!(output.unwrap(), 1);
    /// assert!(!journal.entries().is_empty());
    /// ```
    pub fn into_parts(self) -> (Result<T, Stuck>, Journal) {
        (self.outcome, self.journal)
    }
}

/// A run that got stuck: every task was blocked and no timer was pending, so nothing could ever
/// happen again. Displays as the hang report: the time, then the live scope tree.
///
/// ```
/// use wherefore::{Cancelled, Nursery};
/// let stuck = wherefore::testing::try_block_on(async {
///     wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
///         n.start_soon_named("reader", wherefore::guard(std::future::pending::<()>())).unwrap();
///         Ok(())
///     })
///     .await
/// })
/// .unwrap_err();
/// let report = stuck.to_string();
/// assert!(report.starts_with("stuck at t=0.000: every task is blocked and no timer is pending\n"));
/// assert!(report.contains("task \"reader\" blocked at guard(core::future::pending::Pending<()>)"));
/// ```
#[derive(Debug, Clone)]
pub struct Stuck {
    at: Duration,
    tree: TreeSnapshot,
}

impl Stuck {
    /// The virtual time at which the run got stuck.
    ///
    /// ```
    /// let stuck = wherefore::testing::try_block_on(std::future::pending::<()>()).unwrap_err();
    /// assert_eq!(stuck.at(), std::time::Duration::ZERO);
    /// ```
    pub fn at(&self) -> Duration {
        self.at
    }

    /// The live scope tree at that moment.
    ///
    /// ```
    /// let stuck = wherefore::testing::try_block_on(std::future::pending::<()>()).unwrap_err();
    /// assert_eq!(stuck.tree().to_string(), "scope \"run\" (running)\n  task \"main\"\n");
    /// ```
    pub fn tree(&self) -> &TreeSnapshot {
        &self.tree
    }
}

impl fmt::Display for Stuck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "stuck at {}: every task is blocked and no timer is pending",
            crate::event::At(self.at)
        )?;
        write!(f, "{}", self.tree)
    }
}

impl std::error::Error for Stuck {}
