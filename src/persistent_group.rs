//! Persistent task groups: a home for background work that must outlive the request that
//! started it (a result write, an audit record, a cache refresh) but not the service.
//!
//! A group is a scope in the tree, a child of the nursery it was opened in, and is run by one
//! member of that nursery (named after the group), which polls the group's members inline, like
//! the nursery does its own. Unlike a nursery, a group does not fail when a member fails: the
//! failure goes to a handler, and the others carry on. Its handle is `Send + Sync`, so any task or
//! thread can spawn into it while it is open.
//!
//! Lifecycle: `Open` → (`shutdown` | `drain` | the enclosing scope is cancelled) → closing, where
//! spawns are refused with the future handed back → `Done` when the last member has ended (or was
//! dropped at the end of the shutdown's grace period), with a [`ShutdownReport`].

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::cancelled::CancelError;
use crate::cancelled::Cancelled;
use crate::cause::{Cause, Explicit};
use crate::checkpoint::CancelWait;
use crate::clock::{Clock, TimerHandle};
use crate::context;
use crate::env::Env;
use crate::event::Event;
use crate::failure::{Failure, FailureKind, SpawnError};
use crate::identity::{ScopeInfo, TaskId, TaskInfo};
use crate::member::{sendable_member, unjoined};
use crate::member_scope::MemberScope;
use crate::member_set::{MemberSet, Reached, remember};
use crate::scope::CancelHandle;
use crate::scope_tree::{ExitOnDrop, ScopeNode, WaitRegistration, WaiterKey};
use crate::sharing::Sendable;
use crate::sync::{self, Arc, AtomicUsize, Frozen, Mutex, Ordering};
use crate::task::{End, JoinHandle, panic_message, report_spawn};

/// The error type of group members unless chosen otherwise.
///
/// ```
/// # wherefore::testing::block_on(async {
/// # use wherefore::{Cancelled, Nursery, PersistentGroup};
/// # wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
/// let jobs: PersistentGroup = n.persistent_group("jobs"); // `PersistentGroup<BoxError>`
/// jobs.spawn(async {
///     let _n: u32 = "not a number".parse()?; // any error converts with `?`
///     Ok(())
/// })
/// .unwrap();
/// assert_eq!(jobs.drain().await.failed(), 1);
/// # Ok(())
/// # }).await.unwrap();
/// # });
/// ```
pub type BoxError = Box<dyn Error + Send + Sync>;

type Member<E> = crate::member::Member<'static, E, Sendable>;

/// The handle of a persistent task group: spawn background work into it from any task or thread,
/// and shut it down gracefully. `Clone + Send + Sync`.
///
/// Open one with [`Nursery::persistent_group`](crate::Nursery::persistent_group). Members are
/// `Send + 'static` futures returning `Result<(), E>`; they run in the group's scope, a child of
/// the nursery's, so a request scope's timeout does not reach work the request spawned here, while
/// the service's cancellation does (with a `Parent` cause chain).
///
/// ```
/// # wherefore::testing::block_on(async {
/// use std::time::Duration;
/// use wherefore::{Cancelled, Nursery, Scope};
///
/// wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
///     let jobs = n.persistent_group::<Cancelled>("jobs");
///     // A request that times out after 1 s, having started a 5 s write in the group:
///     let request = Scope::named("request").with_timeout(Duration::from_secs(1));
///     let _ = request
///         .run(async {
///             jobs.start_soon_named("write", wherefore::sleep(Duration::from_secs(5))).unwrap();
///             wherefore::sleep(Duration::from_secs(60)).await
///         })
///         .await;
///     let report = jobs.drain().await; // the write still completes
///     assert_eq!(report.finished(), 1);
///     Ok(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
pub struct PersistentGroup<E = BoxError> {
    group: Arc<Group<E>>,
}

impl<E> Clone for PersistentGroup<E> {
    fn clone(&self) -> Self {
        self.group.handles.fetch_add(1, Ordering::Relaxed);
        PersistentGroup {
            group: self.group.clone(),
        }
    }
}

impl<E> Drop for PersistentGroup<E> {
    /// The last handle gone, nobody can spawn into the group or shut it down any more: it closes
    /// to spawns and finishes like [`drain`](PersistentGroup::drain), and says so to the hook.
    fn drop(&mut self) {
        // Release: the handle's spawns happen before; Acquire on the last: they are seen.
        if self.group.handles.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let abandoned = {
            let mut st = sync::lock(&self.group.state);
            let open = st.phase.is_open();
            if open {
                st.phase = GroupPhase::Draining;
            }
            open
        };
        if abandoned {
            if let Some(env) = self.group.node.env() {
                env.emit(|| Event::GroupAbandoned {
                    group: self.group.node.info().clone(),
                });
            }
            self.wake_runner();
        }
    }
}

/// What the handles and the runner share.
struct Group<E> {
    node: ScopeNode,
    /// How many `PersistentGroup` handles exist; when the last goes, the group drains.
    handles: AtomicUsize,
    on_failure: Frozen<dyn Fn(Failure<E>) + Send + Sync>,
    /// A failure as text, for the report of a handler that panicked on it.
    describe: fn(&Failure<E>) -> String,
    state: Mutex<GroupState<E>>,
}

struct GroupState<E> {
    phase: GroupPhase,
    /// Spawned, not yet taken by the runner.
    incoming: Vec<Running<E>>,
    /// The runner's waker, to hand it new members and state changes.
    runner: Option<Waker>,
    /// Tasks waiting in `shutdown` or `drain`.
    waiters: Vec<Waker>,
    /// Set once, when the group is done.
    report: Option<ShutdownReport>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GroupPhase {
    Open,
    /// Closed to spawns, waiting for the members to end by themselves.
    Draining,
    /// Closed to spawns, members cancelled; those still running at `grace_ends` are dropped.
    ShuttingDown {
        grace_ends: Option<Instant>,
    },
    Done,
}

impl GroupPhase {
    fn is_open(self) -> bool {
        self == GroupPhase::Open
    }
}

/// A member as the runner holds it.
struct Running<E> {
    task: TaskInfo,
    started: Instant,
    future: Member<E>,
}

impl<E> Running<E> {
    /// Polls the member (in its own scope, under the group's); its exit is reported and left
    /// for its handle when it ends.
    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<End<E>> {
        Pin::new(&mut self.future).poll(cx).map(|ended| ended.end)
    }
}

impl<E> PersistentGroup<E>
where
    E: CancelError + fmt::Display + Send + 'static,
{
    /// A group named `name` whose failures go to `on_failure`; its runner still has to be spawned.
    pub(crate) fn new(
        name: Frozen<str>,
        on_failure: Frozen<dyn Fn(Failure<E>) + Send + Sync>,
    ) -> (PersistentGroup<E>, Runner<E>) {
        let group = Arc::new(Group {
            node: ScopeNode::new(Some(name)),
            handles: AtomicUsize::new(1),
            on_failure,
            describe: |failure| failure.to_string(),
            state: Mutex::new(GroupState {
                phase: GroupPhase::Open,
                incoming: Vec::new(),
                runner: None,
                waiters: Vec::new(),
                report: None,
            }),
        });
        let runner = Runner {
            group: group.clone(),
            running: MemberSet::new(),
            tally: Tally::default(),
            grace_timer: None,
            cancel_wait: None,
            members_wait: CancelWait::default(),
        };
        (PersistentGroup { group }, runner)
    }

    /// Spawns an unnamed member. Works from any clone, on any thread, while the group is open.
    ///
    /// Returns the member's [`JoinHandle`] (join it, cancel it alone, read how it ended), or
    /// hands the future back in [`SpawnError::ShuttingDown`] once the group is closing (S10):
    /// after `shutdown` or `drain`, or once its enclosing scope was cancelled. Dropping the
    /// handle neither cancels nor detaches the member: the group still runs it.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::{Cancelled, Nursery, SpawnError, TaskExit};
    /// wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    ///     let jobs = n.persistent_group::<Cancelled>("jobs");
    ///     let remote = jobs.clone();
    ///     std::thread::spawn(move || remote.spawn(async { Ok(()) }).unwrap()).join().unwrap();
    ///     let mut stuck = jobs.spawn(wherefore::sleep(std::time::Duration::from_secs(3600))).unwrap();
    ///     stuck.cancel(); // this member alone
    ///     assert!(matches!(stuck.join().await?, TaskExit::Cancelled(_)));
    ///     jobs.drain().await;
    ///     let late = jobs.spawn(async { Ok(()) });
    ///     assert!(matches!(late, Err(SpawnError::ShuttingDown(_))));
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> Result<JoinHandle<()>, SpawnError<F>>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.spawn_task(None, Location::caller(), future)
    }

    /// Spawns a named member; see [`spawn`](Self::spawn).
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::{Cancelled, Nursery};
    /// wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    ///     let jobs = n.persistent_group::<Cancelled>("jobs");
    ///     let audit = jobs.spawn_named("audit", async { Ok(()) }).unwrap();
    ///     assert_eq!(audit.task().name(), Some("audit"));
    ///     jobs.drain().await;
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn_named<F>(
        &self,
        name: impl Into<Frozen<str>>,
        future: F,
    ) -> Result<JoinHandle<()>, SpawnError<F>>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.spawn_task(Some(name.into()), Location::caller(), future)
    }

    /// Starts an unnamed member without a [`JoinHandle`], as
    /// [`Nursery::start_soon`](crate::Nursery::start_soon) does: the group still runs it and
    /// reports its failure; it returns who the member is, or hands the future back once the
    /// group is closing (S10). Its cell keeps no exit (and no scope of its own).
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::{Cancelled, Nursery};
    /// wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    ///     let jobs = n.persistent_group::<Cancelled>("jobs");
    ///     let task = jobs.start_soon(async { Ok(()) }).unwrap();
    ///     assert_eq!(task.name(), None);
    ///     assert_eq!(jobs.drain().await.finished(), 1);
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn start_soon<F>(&self, future: F) -> Result<TaskInfo, SpawnError<F>>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.start_task(None, Location::caller(), future)
    }

    /// Starts a named member without a [`JoinHandle`]; see [`start_soon`](Self::start_soon).
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::{Cancelled, Nursery};
    /// wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    ///     let jobs = n.persistent_group::<Cancelled>("jobs");
    ///     let task = jobs.start_soon_named("audit", async { Ok(()) }).unwrap();
    ///     assert_eq!(task.to_string(), "task \"audit\"");
    ///     jobs.drain().await;
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn start_soon_named<F>(
        &self,
        name: impl Into<Frozen<str>>,
        future: F,
    ) -> Result<TaskInfo, SpawnError<F>>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.start_task(Some(name.into()), Location::caller(), future)
    }

    fn spawn_task<F>(
        &self,
        name: Option<Frozen<str>>,
        spawned_at: &'static Location<'static>,
        future: F,
    ) -> Result<JoinHandle<()>, SpawnError<F>>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let node = self.group.node.clone();
        self.admit(name, spawned_at, future, |task, future| {
            // Its own scope, under the group's, as a nursery member has.
            let scope = MemberScope::new(task.clone(), node);
            sendable_member::<Sendable, _, (), E>(scope, future)
        })
    }

    fn start_task<F>(
        &self,
        name: Option<Frozen<str>>,
        spawned_at: &'static Location<'static>,
        future: F,
    ) -> Result<TaskInfo, SpawnError<F>>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.admit(name, spawned_at, future, |task, future| {
            let member = match task.name.clone() {
                Some(name) => unjoined::<Sendable, _, _, E>(task, name, future),
                None => unjoined::<Sendable, _, _, E>(task, (), future),
            };
            (member, task.clone())
        })
    }

    /// Admits `future` as a new member named `name`, made into a member (and what the caller
    /// returns) by `make`, or hands it back once the group is closing (S10).
    fn admit<F, R>(
        &self,
        name: Option<Frozen<str>>,
        spawned_at: &'static Location<'static>,
        future: F,
        make: impl FnOnce(&TaskInfo, F) -> (Member<E>, R),
    ) -> Result<R, SpawnError<F>>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let node = &self.group.node;
        let env = node.env().or_else(context::env);
        let id = match &env {
            Some(env) => env.next_id(),
            None => sync::next_id(),
        };
        let task = TaskInfo {
            id: TaskId(id),
            name,
            spawned_at,
        };
        let started = now(env.as_ref());
        let (runner, handle) = {
            let mut st = sync::lock(&self.group.state);
            // A group whose scope was cancelled from outside is closing too.
            if !st.phase.is_open() || node.is_cancelled() {
                return Err(SpawnError::ShuttingDown(future));
            }
            let (member, made) = make(&task, future);
            st.incoming.push(Running {
                task: task.clone(),
                started,
                future: member,
            });
            (st.runner.clone(), made)
        };
        if let Some(env) = &env {
            report_spawn(env, &task, node.info());
        }
        if let Some(runner) = runner {
            runner.wake();
        }
        Ok(handle)
    }
}

impl<E> PersistentGroup<E> {
    /// Shuts the group down: refuses new members, cancels every member with an
    /// [`Explicit`](Cause::Explicit) cause tagged `"shutdown"` (their shielded cleanup runs),
    /// waits up to `grace` for them to end, then drops those still running and names them in the
    /// report.
    ///
    /// Not a cancellation point: the wait is bounded by `grace`, and shutting down usually
    /// happens in a scope that is itself being cancelled. A second call while one is in progress
    /// waits for the same outcome; after it, returns the same report at once (the first call's
    /// cause and grace stand).
    ///
    /// The grace period is the group's and cannot be extended by a member: a member in a
    /// shielded cleanup, even one with a longer grace of its own, is dropped when the group's
    /// grace ends.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use std::time::Duration;
    /// use wherefore::{Cancelled, Nursery};
    /// wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    ///     let jobs = n.persistent_group::<Cancelled>("jobs");
    ///     jobs.start_soon_named("polite", wherefore::sleep(Duration::from_secs(3600))).unwrap();
    ///     jobs.spawn_named("stubborn", async {
    ///         wherefore::shield(std::future::pending::<()>()).await; // deaf to cancellation
    ///         Ok(())
    ///     })
    ///     .unwrap();
    ///     wherefore::checkpoint().await?;
    ///     let report = jobs.shutdown(Duration::from_secs(10)).await;
    ///     assert_eq!((report.cancelled(), report.dropped().len()), (1, 1));
    ///     assert_eq!(report.dropped()[0].task().name(), Some("stubborn"));
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn shutdown(&self, grace: Duration) -> Shutdown<E> {
        let cause = Cause::Explicit(Explicit::new(
            self.group.node.info().clone(),
            Location::caller(),
            Some("shutdown"),
        ));
        self.shutdown_with_cause(grace, cause)
    }

    /// [`shutdown`](Self::shutdown) with a cause of the caller's choosing, for example the cause
    /// that stopped the service, so members see why.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use std::time::Duration;
    /// # use wherefore::{Cancelled, Nursery};
    /// wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    ///     let jobs = n.persistent_group::<Cancelled>("jobs");
    ///     let why = wherefore::Scope::new().handle();
    ///     why.cancel_with("SIGTERM");
    ///     let report = jobs.shutdown_with_cause(Duration::ZERO, why.cause().unwrap()).await;
    ///     assert!(report.to_string().contains("SIGTERM"));
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn shutdown_with_cause(&self, grace: Duration, cause: Cause) -> Shutdown<E> {
        let env = self.group.node.env().or_else(context::env);
        let grace_ends = env
            .as_ref()
            .and_then(|env| env.clock().now().checked_add(grace));
        let started = {
            let mut st = sync::lock(&self.group.state);
            match st.phase {
                GroupPhase::Open | GroupPhase::Draining => {
                    st.phase = GroupPhase::ShuttingDown { grace_ends };
                    true
                }
                GroupPhase::ShuttingDown { .. } | GroupPhase::Done => false,
            }
        };
        if started {
            self.group.node.record_own(cause);
            self.wake_runner();
        }
        Shutdown {
            group: self.group.clone(),
        }
    }

    /// Closes the group to new members and waits for the members to end by themselves, without
    /// cancelling them. Not a cancellation point; wrap it in [`guard`](crate::guard) to give up
    /// waiting when the caller is cancelled.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::{Cancelled, Nursery};
    /// wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    ///     let jobs = n.persistent_group::<Cancelled>("jobs");
    ///     jobs.start_soon(wherefore::sleep(std::time::Duration::from_secs(5))).unwrap();
    ///     let report = jobs.drain().await;
    ///     assert_eq!(report.finished(), 1);
    ///     assert!(report.cause().is_none());
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn drain(&self) -> Shutdown<E> {
        let started = {
            let mut st = sync::lock(&self.group.state);
            let open = st.phase.is_open();
            if open {
                st.phase = GroupPhase::Draining;
            }
            open
        };
        if started {
            self.wake_runner();
        }
        Shutdown {
            group: self.group.clone(),
        }
    }

    fn wake_runner(&self) {
        let runner = sync::lock(&self.group.state).runner.clone();
        if let Some(runner) = runner {
            runner.wake();
        }
    }

    /// Whether spawning is still accepted.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::{Cancelled, Nursery};
    /// wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    ///     let jobs = n.persistent_group::<Cancelled>("jobs");
    ///     assert!(jobs.is_open());
    ///     jobs.drain().await;
    ///     assert!(!jobs.is_open());
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn is_open(&self) -> bool {
        sync::lock(&self.group.state).phase.is_open() && !self.group.node.is_cancelled()
    }

    /// The handle of the group's scope: read its cause, or cancel the members without closing
    /// the group... which also closes it (a cancelled group accepts no new members).
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::{Cancelled, Nursery};
    /// wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    ///     let jobs = n.persistent_group::<Cancelled>("jobs");
    ///     assert_eq!(jobs.cancel_handle().scope().name(), Some("jobs"));
    ///     jobs.drain().await;
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle::from_node(self.group.node.clone())
    }
}

impl<E> fmt::Debug for PersistentGroup<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersistentGroup")
            .field("scope", self.group.node.info())
            .field("phase", &sync::lock(&self.group.state).phase)
            .finish()
    }
}

impl<E> fmt::Display for PersistentGroup<E> {
    /// `group "jobs" (open)`, `(closing)` or `(done)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match sync::lock(&self.group.state).phase {
            GroupPhase::Open => "open",
            GroupPhase::Draining | GroupPhase::ShuttingDown { .. } => "closing",
            GroupPhase::Done => "done",
        };
        let name = self.group.node.info();
        write!(f, "group {} ({phase})", name.name().unwrap_or("unnamed"))
    }
}

/// Future returned by [`PersistentGroup::shutdown`] and [`PersistentGroup::drain`]: resolves to
/// the group's [`ShutdownReport`] once it is done.
///
/// ```
/// # wherefore::testing::block_on(async {
/// # use std::time::Duration;
/// # use wherefore::{Cancelled, Nursery, Shutdown};
/// # wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
/// # let jobs = n.persistent_group::<Cancelled>("jobs");
/// jobs.start_soon(wherefore::sleep(Duration::from_secs(1))).unwrap();
/// let done: Shutdown<Cancelled> = jobs.drain(); // closes the group at once
/// assert!(!jobs.is_open());
/// assert_eq!(done.await.finished(), 1); // resolves when the last member has ended
/// # Ok(())
/// # }).await.unwrap();
/// # });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Shutdown<E> {
    group: Arc<Group<E>>,
}

impl<E> fmt::Debug for Shutdown<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("group", self.group.node.info())
            .finish()
    }
}

impl<E> Future for Shutdown<E> {
    type Output = ShutdownReport;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ShutdownReport> {
        let mut st = sync::lock(&self.group.state);
        match &st.report {
            Some(report) => Poll::Ready(report.clone()),
            None => {
                if !st.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    st.waiters.push(cx.waker().clone());
                }
                // Not a cancellation point, and not to be dropped by one either: a shutdown is
                // bounded by its grace, and is usually awaited in a cancelled scope (S19).
                context::park_reachable();
                Poll::Pending
            }
        }
    }
}

/// How a group ended: who finished, who failed, who was cancelled, who was cut, and why.
///
/// `Display` gives one summary line, then one line per dropped member.
///
/// ```
/// # wherefore::testing::block_on(async {
/// # use wherefore::{Cancelled, Nursery};
/// # wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
/// # let jobs = n.persistent_group::<Cancelled>("jobs");
/// jobs.start_soon(async { Ok(()) }).unwrap();
/// let report = jobs.drain().await;
/// assert_eq!(
///     report.to_string(),
///     "group jobs ended: 1 finished, 0 failed, 0 cancelled, 0 dropped"
/// );
/// # Ok(())
/// # }).await.unwrap();
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct ShutdownReport {
    group: ScopeInfo,
    cause: Option<Cause>,
    tally: Tally,
    dropped: Vec<DroppedMember>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    finished: usize,
    failed: usize,
    cancelled: usize,
}

/// A member that was still running when its group's grace period ended, and was dropped.
///
/// ```
/// # wherefore::testing::block_on(async {
/// # use std::time::Duration;
/// # use wherefore::{Cancelled, DroppedMember, Nursery};
/// # wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
/// # let jobs = n.persistent_group::<Cancelled>("jobs");
/// jobs.spawn_named("upload", async {
///     wherefore::shield(std::future::pending::<()>()).await; // deaf to cancellation
///     Ok(())
/// })
/// .unwrap();
/// wherefore::checkpoint().await?; // let it start
/// let report = jobs.shutdown(Duration::from_secs(2)).await;
/// let cut: &DroppedMember = &report.dropped()[0];
/// assert_eq!(cut.task().name(), Some("upload"));
/// assert!(report.to_string().contains("dropped task \"upload\" (spawned at "));
/// # Ok(())
/// # }).await.unwrap();
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct DroppedMember {
    task: TaskInfo,
    ran_for: Duration,
    blocked_at: Option<String>,
    /// The innermost scope it was blocked in, and whether that scope was shielded then.
    blocked_in: Option<(ScopeInfo, bool)>,
    /// The panic of its drop, if dropping it panicked.
    drop_panicked: Option<String>,
}

impl DroppedMember {
    /// Who it was.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use std::time::Duration;
    /// # use wherefore::{Cancelled, Nursery};
    /// # wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    /// # let jobs = n.persistent_group::<Cancelled>("jobs");
    /// # let stubborn = || async { wherefore::shield(std::future::pending::<()>()).await; Ok(()) };
    /// let upload = jobs.spawn_named("upload", stubborn()).unwrap();
    /// wherefore::checkpoint().await?;
    /// let report = jobs.shutdown(Duration::from_secs(1)).await;
    /// assert_eq!(report.dropped()[0].task(), upload.task()); // the member spawning returned
    /// # Ok(())
    /// # }).await.unwrap();
    /// # });
    /// ```
    pub fn task(&self) -> &TaskInfo {
        &self.task
    }

    /// How long it had run when it was dropped.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use std::time::Duration;
    /// # use wherefore::{Cancelled, Nursery};
    /// # wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    /// # let jobs = n.persistent_group::<Cancelled>("jobs");
    /// # let stubborn = || async { wherefore::shield(std::future::pending::<()>()).await; Ok(()) };
    /// jobs.start_soon(stubborn()).unwrap();
    /// wherefore::sleep(Duration::from_secs(5)).await?;
    /// let report = jobs.shutdown(Duration::from_secs(2)).await;
    /// assert_eq!(report.dropped()[0].ran_for(), Duration::from_secs(7)); // 5 s, then the grace
    /// # Ok(())
    /// # }).await.unwrap();
    /// # });
    /// ```
    pub fn ran_for(&self) -> Duration {
        self.ran_for
    }

    /// The cancellation point or guarded foreign future it was blocked on, when known (the
    /// runtime of [`testing`](crate::testing) keeps track; the production runtime does not).
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use std::time::Duration;
    /// # use wherefore::{Cancelled, Nursery};
    /// # wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    /// # let jobs = n.persistent_group::<Cancelled>("jobs");
    /// // Waits on a foreign future, shielded from the shutdown:
    /// jobs.start_soon(wherefore::shield(wherefore::guard(std::future::pending::<()>()))).unwrap();
    /// wherefore::checkpoint().await?;
    /// let report = jobs.shutdown(Duration::from_secs(1)).await;
    /// let point = report.dropped()[0].blocked_at().unwrap();
    /// assert_eq!(point, "guard(core::future::pending::Pending<()>)");
    /// # Ok(())
    /// # }).await.unwrap();
    /// # });
    /// ```
    pub fn blocked_at(&self) -> Option<&str> {
        self.blocked_at.as_deref()
    }

    /// The innermost scope it was blocked in, when known (as for
    /// [`blocked_at`](Self::blocked_at)): a shield, for a member cut in its shielded cleanup.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use std::time::Duration;
    /// use wherefore::{Cancelled, Nursery};
    /// wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    ///     let jobs = n.persistent_group::<Cancelled>("jobs");
    ///     jobs.spawn_named("flush", async {
    ///         let _ = wherefore::cancelled().await;
    ///         wherefore::shield(wherefore::sleep(Duration::from_secs(60))).await // too slow
    ///     })
    ///     .unwrap();
    ///     wherefore::checkpoint().await?;
    ///     let report = jobs.shutdown(Duration::from_secs(5)).await;
    ///     let cut = &report.dropped()[0];
    ///     assert_eq!(cut.blocked_at(), Some("sleep"));
    ///     assert!(cut.was_shielded()); // a cleanup the grace cut short
    ///     assert!(cut.blocked_in().unwrap().name().is_none()); // the unnamed shield's scope
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn blocked_in(&self) -> Option<&ScopeInfo> {
        self.blocked_in.as_ref().map(|(scope, _)| scope)
    }

    /// Whether that scope was shielded: the member was in a cleanup the group's grace cut short
    /// (the group's grace wins over shields, see [`PersistentGroup::shutdown`]).
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use std::time::Duration;
    /// # use wherefore::{Cancelled, Nursery};
    /// # wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    /// # let jobs = n.persistent_group::<Cancelled>("jobs");
    /// jobs.spawn(async {
    ///     let _ = wherefore::cancelled().await; // the shutdown...
    ///     wherefore::shield(wherefore::sleep(Duration::from_secs(60))).await // ...a slow cleanup
    /// })
    /// .unwrap();
    /// wherefore::checkpoint().await?;
    /// let report = jobs.shutdown(Duration::from_secs(5)).await;
    /// assert!(report.dropped()[0].was_shielded()); // cut short in its cleanup
    /// # Ok(())
    /// # }).await.unwrap();
    /// # });
    /// ```
    pub fn was_shielded(&self) -> bool {
        self.blocked_in
            .as_ref()
            .is_some_and(|(_, shielded)| *shielded)
    }

    /// The panic message of its drop, if dropping it panicked (the panic was caught, and also
    /// given to the group's failure handler).
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use std::time::Duration;
    /// use wherefore::{Cancelled, Nursery};
    /// struct Fragile;
    /// impl Drop for Fragile {
    ///     fn drop(&mut self) {
    ///         panic!("could not release the lease");
    ///     }
    /// }
    /// wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    ///     let jobs = n.persistent_group_with::<Cancelled>("jobs", |_failure| {});
    ///     jobs.spawn_named("lease", async {
    ///         let _lease = Fragile;
    ///         wherefore::shield(std::future::pending::<()>()).await;
    ///         Ok(())
    ///     })
    ///     .unwrap();
    ///     wherefore::checkpoint().await?;
    ///     let report = jobs.shutdown(Duration::from_secs(1)).await;
    ///     assert_eq!(report.dropped()[0].drop_panicked(), Some("could not release the lease"));
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn drop_panicked(&self) -> Option<&str> {
        self.drop_panicked.as_deref()
    }
}

impl ShutdownReport {
    /// The group.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use std::time::Duration;
    /// # use wherefore::{Cancelled, Nursery};
    /// # wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    /// # let jobs = n.persistent_group::<Cancelled>("jobs");
    /// let report = jobs.drain().await;
    /// assert_eq!(report.group().name(), Some("jobs"));
    /// # Ok(())
    /// # }).await.unwrap();
    /// # });
    /// ```
    pub fn group(&self) -> &ScopeInfo {
        &self.group
    }

    /// Why it was shut down; `None` when it was drained or ended with its enclosing scope.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use std::time::Duration;
    /// # use wherefore::{Cancelled, Nursery};
    /// # wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    /// # let jobs = n.persistent_group::<Cancelled>("jobs");
    /// let report = jobs.shutdown(Duration::ZERO).await;
    /// assert!(report.cause().unwrap().to_string().starts_with("explicit (\"shutdown\") at "));
    ///
    /// let other = n.persistent_group::<Cancelled>("other");
    /// assert!(other.drain().await.cause().is_none());
    /// # Ok(())
    /// # }).await.unwrap();
    /// # });
    /// ```
    pub fn cause(&self) -> Option<&Cause> {
        self.cause.as_ref()
    }

    /// Members that completed successfully, over the group's life.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use std::time::Duration;
    /// # use wherefore::{Cancelled, Nursery};
    /// # wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    /// # let jobs = n.persistent_group::<Cancelled>("jobs");
    /// jobs.start_soon(async { Ok(()) }).unwrap();
    /// jobs.start_soon(wherefore::sleep(Duration::from_secs(1))).unwrap();
    /// assert_eq!(jobs.drain().await.finished(), 2);
    /// # Ok(())
    /// # }).await.unwrap();
    /// # });
    /// ```
    pub fn finished(&self) -> usize {
        self.tally.finished
    }

    /// Members that failed (returned an error or panicked), over the group's life.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use std::time::Duration;
    /// # use wherefore::{BoxError, Cancelled, Nursery};
    /// # wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    /// # let jobs = n.persistent_group_with::<BoxError>("jobs", |_failure| {});
    /// jobs.start_soon(async { Err("smtp down".into()) }).unwrap();
    /// jobs.start_soon(async { panic!("bug") as Result<(), _> }).unwrap();
    /// jobs.start_soon(async { Ok(()) }).unwrap();
    /// assert_eq!(jobs.drain().await.failed(), 2); // errors and panics alike
    /// # Ok(())
    /// # }).await.unwrap();
    /// # });
    /// ```
    pub fn failed(&self) -> usize {
        self.tally.failed
    }

    /// Members that ended because they were cancelled.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use std::time::Duration;
    /// # use wherefore::{Cancelled, Nursery};
    /// # wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    /// # let jobs = n.persistent_group::<Cancelled>("jobs");
    /// jobs.start_soon(wherefore::sleep(Duration::from_secs(3600))).unwrap();
    /// wherefore::checkpoint().await?;
    /// let report = jobs.shutdown(Duration::from_secs(1)).await;
    /// assert_eq!((report.cancelled(), report.finished()), (1, 0));
    /// # Ok(())
    /// # }).await.unwrap();
    /// # });
    /// ```
    pub fn cancelled(&self) -> usize {
        self.tally.cancelled
    }

    /// Members dropped at the end of the grace period, in spawn order.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use std::time::Duration;
    /// # use wherefore::{Cancelled, Nursery};
    /// # wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    /// # let jobs = n.persistent_group::<Cancelled>("jobs");
    /// # let stubborn = || async { wherefore::shield(std::future::pending::<()>()).await; Ok(()) };
    /// jobs.start_soon_named("a", stubborn()).unwrap();
    /// jobs.start_soon_named("b", stubborn()).unwrap();
    /// jobs.start_soon_named("c", async { Ok(()) }).unwrap();
    /// wherefore::checkpoint().await?;
    /// let report = jobs.shutdown(Duration::from_secs(1)).await;
    /// let names: Vec<_> = report.dropped().iter().map(|m| m.task().name()).collect();
    /// assert_eq!(names, [Some("a"), Some("b")]);
    /// # Ok(())
    /// # }).await.unwrap();
    /// # });
    /// ```
    pub fn dropped(&self) -> &[DroppedMember] {
        &self.dropped
    }
}

impl fmt::Display for ShutdownReport {
    /// One summary line, then one line per dropped member.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.group.name().unwrap_or("unnamed");
        match &self.cause {
            Some(cause) => write!(f, "group {name} shut down ({cause})")?,
            None => write!(f, "group {name} ended")?,
        }
        write!(
            f,
            ": {} finished, {} failed, {} cancelled, {} dropped",
            self.tally.finished,
            self.tally.failed,
            self.tally.cancelled,
            self.dropped.len()
        )?;
        for member in &self.dropped {
            write!(
                f,
                "\n  dropped {} (spawned at {}) after {:?}",
                member.task, member.task.spawned_at, member.ran_for
            )?;
            if let Some(point) = &member.blocked_at {
                write!(f, ", blocked at {point}")?;
            }
            if let Some((scope, shielded)) = &member.blocked_in {
                let shielded = if *shielded { " (shielded)" } else { "" };
                write!(f, " in {scope}{shielded}")?;
            }
            if let Some(panic) = &member.drop_panicked {
                write!(f, "; its drop panicked: {panic}")?;
            }
        }
        Ok(())
    }
}

/// The member of the enclosing nursery that runs the group.
pub(crate) struct Runner<E> {
    group: Arc<Group<E>>,
    running: MemberSet<RunningFuture<E>>,
    tally: Tally,
    /// The wake-up at the end of the grace period, once shutting down.
    grace_timer: Option<(Arc<Clock>, TimerHandle)>,
    /// Registration with the group's scope, to notice a cancellation from outside.
    cancel_wait: Option<WaiterKey>,
    /// Registered with the group's scope while members are blocked in foreign futures (S19).
    members_wait: CancelWait,
}

/// A running member, polled in the group's scope.
struct RunningFuture<E> {
    member: Running<E>,
}

impl<E: CancelError + fmt::Display> Future for RunningFuture<E> {
    type Output = (TaskInfo, End<E>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let end = std::task::ready!(this.member.poll_end(cx));
        Poll::Ready((this.member.task.clone(), end))
    }
}

impl<E: CancelError + fmt::Display> Reached for RunningFuture<E> {
    fn reached(self, cancelled: Cancelled) -> Self::Output {
        let Running { task, future, .. } = self.member;
        (task, future.reached(cancelled).end)
    }
}

impl<E> Unpin for Runner<E> {}

impl<E: CancelError + fmt::Display> Runner<E> {
    /// Takes the spawned members into the running set. Returns the phase, and whether any came.
    fn admit(&mut self, cx: &mut Context<'_>) -> (GroupPhase, bool) {
        let (incoming, phase) = {
            let mut st = sync::lock(&self.group.state);
            remember(&mut st.runner, cx.waker());
            (std::mem::take(&mut st.incoming), st.phase)
        };
        let any = !incoming.is_empty();
        self.running
            .extend(incoming.into_iter().map(|member| RunningFuture { member }));
        (phase, any)
    }

    /// Whether the group's scope is cancelled; registers to be woken when it is, otherwise.
    fn scope_cancelled(&mut self, cx: &mut Context<'_>) -> bool {
        match self.node().register_waiter(self.cancel_wait, cx.waker()) {
            WaitRegistration::Cancelled(_) => {
                self.cancel_wait = None;
                true
            }
            WaitRegistration::Waiting(key) => {
                self.cancel_wait = Some(key);
                false
            }
        }
    }

    /// At the end of the grace period, drops the members still running; before it, makes sure
    /// the runner is woken then.
    fn enforce_grace(
        &mut self,
        grace_ends: Option<Instant>,
        cx: &mut Context<'_>,
    ) -> Vec<DroppedMember> {
        let Some(env) = self.node().env() else {
            return Vec::new();
        };
        let Some(grace_ends) = grace_ends else {
            return Vec::new();
        };
        let clock = env.clock().clone();
        let now = clock.now();
        if now < grace_ends {
            match &self.grace_timer {
                Some((clock, key)) if clock.refresh_wake(*key, cx.waker()) => {}
                _ => {
                    let key = clock.add_wake(grace_ends, cx.waker().clone());
                    self.grace_timer = Some((clock, key));
                }
            }
            return Vec::new();
        }
        self.drop_running(Some(&env), now)
    }
}

impl<E> Runner<E> {
    fn node(&self) -> &ScopeNode {
        &self.group.node
    }

    /// Drops every member still running, naming each (how long it ran, where it was blocked if
    /// the runtime knows).
    fn drop_running(&mut self, env: Option<&Arc<Env>>, now: Instant) -> Vec<DroppedMember> {
        let live = env.map(|env| env.live_tasks()).unwrap_or_default();
        let mut dropped = Vec::new();
        let group = &self.group;
        self.running.take_each(|running| {
            let task = running.member.task.clone();
            let blocked = live
                .iter()
                .find(|t| t.info.id == task.id)
                .and_then(|t| t.blocked_at.as_ref());
            let ran_for = now.saturating_duration_since(running.member.started);
            // Dropped one at a time, each drop's panic caught: it is that member's, and the
            // report and the other members must not be lost to it.
            let drop_panicked = catch_unwind(AssertUnwindSafe(|| drop(running)))
                .err()
                .map(|payload| panic_message(payload.as_ref()));
            dropped.push(DroppedMember {
                blocked_at: blocked.map(|(at, _, _)| at.to_string()),
                blocked_in: blocked.map(|(_, scope, shielded)| (scope.clone(), shielded.0)),
                drop_panicked,
                ran_for,
                task,
            });
        });
        dropped.sort_by_key(|member| member.task.id);
        // Each member's drop reported it dropped, and left `TaskExit::Dropped` for its handle.
        for member in &dropped {
            if let Some(panic) = &member.drop_panicked {
                let kind = FailureKind::Panic(format!("in its drop: {panic}"));
                to_handler(group, member.task.clone(), kind);
            }
        }
        dropped
    }

    fn finish(&mut self, phase: GroupPhase, dropped: Vec<DroppedMember>) {
        let cause = match phase {
            GroupPhase::ShuttingDown { .. } => self.node().own_cause(),
            _ => None,
        };
        let report = ShutdownReport {
            group: self.node().info().clone(),
            cause,
            tally: self.tally,
            dropped,
        };
        if let Some(env) = self.node().env() {
            env.emit(|| Event::GroupFinished {
                group: report.group.clone(),
                cause: report.cause.clone(),
                finished: report.tally.finished,
                failed: report.tally.failed,
                cancelled: report.tally.cancelled,
                dropped: report.dropped.iter().map(|m| m.task.clone()).collect(),
            });
        }
        let waiters = {
            let mut st = sync::lock(&self.group.state);
            st.phase = GroupPhase::Done;
            st.report = Some(report);
            st.runner = None;
            std::mem::take(&mut st.waiters)
        };
        self.release();
        self.node().exit();
        for waiter in waiters {
            waiter.wake();
        }
    }

    /// Gives back the timer and the scope registration.
    fn release(&mut self) {
        if let Some((clock, key)) = self.grace_timer.take() {
            clock.remove(key);
        }
        if let Some(key) = self.cancel_wait.take() {
            self.node().remove_waiter(key);
        }
    }
}

/// Counts a member's end in `tally`; a failure goes to the group's handler.
fn ended<E>(tally: &mut Tally, group: &Group<E>, task: TaskInfo, end: End<E>) {
    let kind = match end {
        End::Completed => {
            tally.finished += 1;
            return;
        }
        End::Cancelled => {
            tally.cancelled += 1;
            return;
        }
        End::Failed(e) => FailureKind::Error(e),
        End::Panicked(payload) => FailureKind::Panic(panic_message(payload.as_ref())),
    };
    tally.failed += 1;
    to_handler(group, task, kind);
}

/// Gives a failure to the group's handler. A panic of the handler is caught and reported (to the
/// hook, or to stderr without one), naming the member and its failure; the group goes on, and
/// the next failure reaches the handler again.
fn to_handler<E>(group: &Group<E>, task: TaskInfo, kind: FailureKind<E>) {
    let failure = Failure { task, kind };
    // Kept for the report, in case the handler panics; failures are rare, this text is cheap.
    let (task, text) = (failure.task.clone(), (group.describe)(&failure));
    let Err(payload) = catch_unwind(AssertUnwindSafe(|| (group.on_failure)(failure))) else {
        return;
    };
    let panic = panic_message(payload.as_ref());
    // To stderr unless a hook or a `tracing` subscriber takes it: never lost.
    let env = group.node.env().filter(|env| env.reports_errors());
    match env {
        Some(env) => env.emit(|| Event::HandlerPanicked {
            group: group.node.info().clone(),
            task,
            failure: text,
            panic,
        }),
        None => eprintln!(
            "wherefore: group {}: the failure handler panicked ({panic}) on: {text}",
            group.node.info()
        ),
    }
}

impl<E: CancelError + fmt::Display> Future for Runner<E> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let node = this.node().clone();
        if node.enter_if_new() {
            this.running.set_schedule(node.clock());
        }
        let _scope = context::lend(&node);
        let mut phase;
        loop {
            let (now, came) = this.admit(cx);
            phase = now;
            let (running, tally, group) = (&mut this.running, &mut this.tally, &this.group);
            let _ = running.poll_batch(cx, |(task, end)| ended(tally, group, task, end));
            if !came && sync::lock(&this.group.state).incoming.is_empty() {
                break;
            }
        }
        // Members blocked in foreign futures are ended there once the group's scope is cancelled
        // (S19): by a shutdown, or from outside.
        if !this.running.has_foreign() {
            this.members_wait.clear();
        } else if let Poll::Ready(cancelled) = this.members_wait.poll(cx, "foreign future", None) {
            for member in this.running.take_foreign() {
                let (task, end) = member.reached(cancelled.clone());
                ended(&mut this.tally, &this.group, task, end);
            }
        }
        // A cancellation of the enclosing scope closes the group as a drain would.
        let closing = !phase.is_open() || this.scope_cancelled(cx);
        if closing && phase.is_open() {
            let mut st = sync::lock(&this.group.state);
            if st.phase.is_open() {
                st.phase = GroupPhase::Draining;
            }
            phase = st.phase;
        }
        let dropped = match phase {
            GroupPhase::ShuttingDown { grace_ends } if !this.running.is_empty() => {
                this.enforce_grace(grace_ends, cx)
            }
            _ => Vec::new(),
        };
        let idle = this.running.is_empty() && sync::lock(&this.group.state).incoming.is_empty();
        if closing && idle {
            this.finish(phase, dropped);
            return Poll::Ready(());
        }
        // Its members are reached where they are; the group closes by itself (S19).
        context::park_reachable();
        Poll::Pending
    }
}

impl<E> Drop for Runner<E> {
    /// The enclosing nursery was dropped before the group was done: nothing will run the members
    /// any more. They are dropped and named in the report, so a task waiting in `shutdown` or
    /// `drain` still gets one.
    fn drop(&mut self) {
        // The scope is left even if a member's drop or a hook panics before `finish` does it
        // (invariant 6 of the scope tree).
        let _leave = ExitOnDrop(self.node().clone());
        let phase = {
            let mut st = sync::lock(&self.group.state);
            if st.phase == GroupPhase::Done {
                return;
            }
            let incoming = std::mem::take(&mut st.incoming);
            self.running
                .extend(incoming.into_iter().map(|member| RunningFuture { member }));
            st.phase
        };
        let env = self.node().env();
        let dropped = self.drop_running(env.as_ref(), now(env.as_ref()));
        self.finish(phase, dropped);
    }
}

/// The current time on `env`'s clock, or the real time without one.
fn now(env: Option<&Arc<Env>>) -> Instant {
    env.map_or_else(Instant::now, |env| env.clock().now())
}

/// The default failure handler: a line on stderr, so no failure is lost.
pub(crate) fn log_failure<E: fmt::Display>(
    group: Frozen<str>,
) -> impl Fn(Failure<E>) + Send + Sync {
    move |failure| eprintln!("wherefore: group {group}: member {failure}")
}
