//! Nurseries: scopes that own tasks and return only when every one of them has finished.
//!
//! The nursery future owns its running members and polls them inline, so members need no
//! runtime, may borrow from the enclosing stack (`'env`) and may be `!Send`. The body and the
//! members get a cloneable [`Nursery`] handle; spawning through it puts the member straight into
//! the running set, or, when the set is busy polling (a member spawning a sibling), into a queue
//! that the nursery future drains into the set after each poll of a member. Members are bounded
//! by `'env`, which outlives the nursery future, so forgetting the nursery future leaks the
//! members but can never let them outlive what they borrow.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, Location, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Wake, Waker};

use crate::body_poll::poll_reached;
use crate::cancelled::CancelError;
use crate::cause::{Cause, SiblingFailure};
use crate::checkpoint::{CancelWait, report_blocked};
use crate::context::{self, RuntimeMark};
use crate::env::Env;
use crate::failure::{Failure, FailureKind, NurseryError, SpawnError};
use crate::identity::{ScopeInfo, TaskId, TaskInfo};
use crate::member::{Member, MemberName, member, sendable_unjoined, unjoined};
use crate::member_scope::MemberScope;
use crate::member_set::{MemberSet, Reached, remember};
use crate::persistent_group::PersistentGroup;
use crate::reach::Reach;
use crate::scope::CancelHandle;
use crate::scope::reached;
use crate::scope_tree::{ExitOnDrop, Phase, ScopeNode};
use crate::sharing::{Holds, Local, Sendable, Sharing};
use crate::sync::{self, Arc, AtomicBool, Frozen, Mutex, MutexGuard, Ordering};
use crate::task::{End, Ended, JoinHandle, classify, panic_message, report_spawn};
use crate::trace::ScopeSpan;

/// The handle through which the body and the members of a nursery spawn into it.
///
/// Cloneable. With the default sharing, [`Sendable`], it is `Send + Sync` and holds only `Send`
/// members, so the nursery future can move between threads (`tokio::spawn`, an axum handler);
/// [`LocalNursery`] (from [`nursery_local`]) holds `!Send` members and stays on its thread. See
/// [`nursery`].
///
/// ```
/// # wherefore::testing::block_on(async {
/// wherefore::nursery(async |n: wherefore::Nursery<'_, wherefore::Cancelled>| {
///     let spawner = n.clone(); // members can spawn siblings through a clone
///     n.spawn(async move {
///         spawner.start_soon(async { Ok(()) }).unwrap();
///         Ok(())
///     })
///     .unwrap();
///     Ok(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
pub struct Nursery<'env, E, S: Sharing = Sendable> {
    shared: Arc<Shared<'env, E, S>>,
}

/// The handle of a nursery opened with [`nursery_local`]: members may be `!Send`.
///
/// ```
/// # wherefore::testing::block_on(async {
/// use std::cell::Cell;
/// use wherefore::LocalNursery;
/// let total = Cell::new(0); // a `&Cell` is not `Send`: a local nursery holds it
/// wherefore::nursery_local(async |n: LocalNursery<'_, wherefore::Cancelled>| {
///     for i in 1..=3 {
///         let total = &total;
///         n.start_soon(async move {
///             total.set(total.get() + i);
///             Ok(())
///         })
///         .unwrap();
///     }
///     Ok(())
/// })
/// .await
/// .unwrap();
/// assert_eq!(total.get(), 6);
/// # });
/// ```
pub type LocalNursery<'env, E> = Nursery<'env, E, Local>;

impl<E, S: Sharing> Clone for Nursery<'_, E, S> {
    fn clone(&self) -> Self {
        Nursery {
            shared: self.shared.clone(),
        }
    }
}

/// What the nursery future and the handles share.
///
/// Lock order: `running` before `spawned`; nobody holds `spawned` while waiting for `running`.
/// The nursery future holds `running` while it polls the members, and sets `spawned.polling` for
/// that time, so a spawn that cannot take `running` then (a member spawning a sibling, on the
/// nursery's thread, or a handle on another thread) leaves the member in `spawned`, which the
/// nursery future drains into the set before it lets go of `running`. A spawn finds `running`
/// held with `polling` unset only for a moment (another spawn, the nursery closing), and waits.
struct Shared<'env, E, S> {
    node: ScopeNode,
    /// The running members, and whether spawns are accepted.
    running: Mutex<Running<'env, E, S>>,
    /// Members spawned while the nursery future polls the running ones.
    spawned: Mutex<Spawned<'env, E, S>>,
}

struct Running<'env, E, S> {
    /// False once the nursery has finished (or its future was dropped): spawns are refused. Set
    /// together with `Spawned::open`, under both locks.
    open: bool,
    members: MemberSet<Member<'env, E, S>>,
}

struct Spawned<'env, E, S> {
    /// As `Running::open`; read where `running` may be held further up this thread's stack.
    open: bool,
    /// The nursery future is polling the members: it drains `members` before it stops.
    polling: bool,
    members: Vec<Member<'env, E, S>>,
}

impl<'env, E, S> Nursery<'env, E, S>
where
    E: CancelError + fmt::Display + 'env,
    S: Sharing,
{
    /// Spawns an unnamed member. It starts at the nursery's next poll, inside the nursery's
    /// scope, and may spawn further members through a clone of this handle.
    ///
    /// Spawning into a nursery that is cancelled but still running is accepted (S4): the member
    /// runs to its first cancellation point. Spawning into a nursery that has finished hands the
    /// future back in [`SpawnError::Closed`]; from the body or a member this cannot happen,
    /// since the nursery is running while they are.
    ///
    /// In a [`Sendable`] nursery (the default) the future and its output must be `Send`; a
    /// [`LocalNursery`] holds any.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// let total = AtomicU32::new(0); // members may borrow from the enclosing stack
    /// wherefore::nursery(async |n: wherefore::Nursery<'_, wherefore::Cancelled>| {
    ///     for i in 1..=3 {
    ///         let total = &total;
    ///         n.spawn(async move {
    ///             total.fetch_add(i, Ordering::Relaxed);
    ///             Ok(())
    ///         })
    ///         .unwrap();
    ///     }
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(total.into_inner(), 6);
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(&self, future: F) -> Result<JoinHandle<T>, SpawnError<F>>
    where
        F: Future<Output = Result<T, E>> + 'env,
        T: 'env,
        S: Holds<F> + Holds<T>,
    {
        self.admit(
            task_info(None, Location::caller()),
            future,
            |task, future| member(self.own_scope(task), future),
        )
    }

    /// Spawns a named member; the name appears in causes, failures and reports.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// wherefore::nursery(async |n: wherefore::Nursery<'_, wherefore::Cancelled>| {
    ///     let fetch = n.spawn_named("fetch", async { Ok(()) }).unwrap();
    ///     assert_eq!(fetch.task().to_string(), "task \"fetch\"");
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn_named<F, T>(
        &self,
        name: impl Into<Frozen<str>>,
        future: F,
    ) -> Result<JoinHandle<T>, SpawnError<F>>
    where
        F: Future<Output = Result<T, E>> + 'env,
        T: 'env,
        S: Holds<F> + Holds<T>,
    {
        let task = task_info(Some(name.into()), Location::caller());
        self.admit(task, future, |task, future| {
            member(self.own_scope(task), future)
        })
    }

    /// Starts an unnamed member without a [`JoinHandle`], as Trio's `start_soon` does: the
    /// nursery still waits for it, its failure or panic still cancels its siblings and reaches
    /// the nursery's result, and hooks and hang reports still name it; only there is no handle
    /// to join it by, so the future must resolve to `Result<(), E>` (a value nobody could read
    /// is not accepted).
    ///
    /// What it saves is the handle's share of the member: a member started so is its future,
    /// its task's number and where it was started, in one allocation (48 bytes around a future
    /// that only yields, against 104 for [`spawn`](Nursery::spawn)). Use it for the members whose
    /// results go elsewhere (a channel, a shared total) or nowhere. It returns the member's
    /// [`TaskInfo`], and refuses a finished nursery as `spawn` does ([`SpawnError::Closed`]).
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// let served = AtomicU32::new(0);
    /// wherefore::nursery(async |n: wherefore::Nursery<'_, wherefore::Cancelled>| {
    ///     for _ in 0..3 {
    ///         let served = &served;
    ///         let task = n
    ///             .start_soon(async move {
    ///                 wherefore::checkpoint().await?;
    ///                 served.fetch_add(1, Ordering::Relaxed);
    ///                 Ok(())
    ///             })
    ///             .unwrap();
    ///         assert_eq!(task.name(), None);
    ///     }
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap(); // returns once all three have ended
    /// assert_eq!(served.into_inner(), 3);
    /// # });
    /// ```
    #[track_caller]
    pub fn start_soon<F>(&self, future: F) -> Result<TaskInfo, SpawnError<F>>
    where
        F: Future<Output = Result<(), E>> + 'env,
        S: Holds<F>,
    {
        self.start_as((), Location::caller(), future)
    }

    /// Starts a named member without a [`JoinHandle`]: [`start_soon`](Nursery::start_soon)
    /// with the name of [`spawn_named`](Nursery::spawn_named), shown in causes, failures and
    /// reports. The name takes its room in the member (16 bytes).
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// wherefore::nursery(async |n: wherefore::Nursery<'_, wherefore::Cancelled>| {
    ///     let task = n.start_soon_named("conn-7", async { Ok(()) }).unwrap();
    ///     assert_eq!(task.to_string(), "task \"conn-7\"");
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
        F: Future<Output = Result<(), E>> + 'env,
        S: Holds<F>,
    {
        self.start_as(name.into(), Location::caller(), future)
    }

    /// Starts `future` without a handle, as the member named `name` (`()` for none).
    fn start_as<F, N>(
        &self,
        name: N,
        started_at: &'static Location<'static>,
        future: F,
    ) -> Result<TaskInfo, SpawnError<F>>
    where
        F: Future<Output = Result<(), E>> + 'env,
        N: MemberName + 'env,
        S: Holds<F>,
    {
        let task = task_info(name.name(), started_at);
        self.admit(task, future, |task, future| {
            (unjoined(&task, name, future), task)
        })
    }

    /// The own scope of a new member `task`: unrecorded, under the nursery's.
    fn own_scope(&self, task: TaskInfo) -> MemberScope {
        MemberScope::new(task, self.shared.node.clone())
    }

    /// Admits `future` as the member `task`, made into a member (and what the caller returns)
    /// by `make`, or hands it back if the nursery has finished.
    fn admit<F, R>(
        &self,
        task: TaskInfo,
        future: F,
        make: impl FnOnce(TaskInfo, F) -> (Member<'env, E, S>, R),
    ) -> Result<R, SpawnError<F>> {
        let shared = &*self.shared;
        let admit = |future: F| {
            let scope = shared.node.info();
            context::with_env(|env| report_spawn(env, &task, scope));
            make(task, future)
        };
        // The set is free unless the nursery future is polling it (then `polling` is set) or
        // another spawn or the nursery's closing holds it for a moment (see `Shared`).
        let mut running = match sync::try_lock(&shared.running) {
            Some(running) => running,
            None => {
                let mut spawned = sync::lock(&shared.spawned);
                if !spawned.open {
                    return Err(SpawnError::Closed(future));
                }
                if spawned.polling {
                    let (member, made) = admit(future);
                    spawned.members.push(member); // drained before the polling ends
                    return Ok(made);
                }
                drop(spawned);
                sync::lock(&shared.running)
            }
        };
        if !running.open {
            return Err(SpawnError::Closed(future));
        }
        let (member, made) = admit(future);
        running.members.push(member);
        Ok(made)
    }
}

/// How a nursery's body is named where its failure is reported: `body of workers`, or
/// `body of scope#7` for an unnamed nursery.
fn body_name(nursery: &ScopeInfo) -> String {
    match nursery.name() {
        Some(name) => format!("body of {name}"),
        None => format!("body of {}", nursery.id()),
    }
}

/// A new member's identity: a fresh number, its name, where it was spawned.
fn task_info(name: Option<Frozen<str>>, spawned_at: &'static Location<'static>) -> TaskInfo {
    TaskInfo {
        id: TaskId(context::next_id()),
        name,
        spawned_at,
    }
}

#[cfg(all(feature = "tokio", not(wherefore_loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
impl<'env, E, S> Nursery<'env, E, S>
where
    E: CancelError + fmt::Display + Send + 'env,
    S: Sharing,
{
    /// Spawns a member that runs on tokio's worker threads (feature `tokio`) while it stays a
    /// member of this nursery: the nursery waits for it; its failure or panic cancels its
    /// siblings with the sibling cause; it sees the nursery's cancellation, with the same causes,
    /// at its cancellation points, because the nursery's scope follows it onto the worker thread.
    ///
    /// It must be `Send + 'static` (it may outlive the nursery's borrows). If the nursery future
    /// is dropped before it ends, the member keeps running on tokio until its next cancellation
    /// point, which fails with an explicit cause tagged `"nursery dropped"`.
    ///
    /// Outside a tokio runtime the future is handed back in [`SpawnError::NoRuntime`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() {
    /// use wherefore::{Cancelled, Nursery};
    /// let sum = wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    ///     let mut work = n.spawn_worker(async { Ok((1..=100u64).sum::<u64>()) }).unwrap();
    ///     Ok(work.join().await?.completed())
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(sum, Some(5050));
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_worker<F, T>(&self, future: F) -> Result<JoinHandle<T>, SpawnError<F>>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'env + 'static,
        E: 'static,
    {
        self.spawn_worker_task(None, Location::caller(), future)
    }

    /// [`spawn_worker`](Self::spawn_worker) with a name.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() {
    /// # use wherefore::{Cancelled, Nursery};
    /// wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    ///     let h = n.spawn_worker_named("hash", async { Ok(()) }).unwrap();
    ///     assert_eq!(h.task().name(), Some("hash"));
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_worker_named<F, T>(
        &self,
        name: impl Into<Frozen<str>>,
        future: F,
    ) -> Result<JoinHandle<T>, SpawnError<F>>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'env + 'static,
        E: 'static,
    {
        self.spawn_worker_task(Some(name.into()), Location::caller(), future)
    }

    fn spawn_worker_task<F, T>(
        &self,
        name: Option<Frozen<str>>,
        spawned_at: &'static Location<'static>,
        future: F,
    ) -> Result<JoinHandle<T>, SpawnError<F>>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'env + 'static,
        E: 'static,
    {
        let Ok(runtime) = ::tokio::runtime::Handle::try_current() else {
            return Err(SpawnError::NoRuntime(future));
        };
        let home = &self.shared.node;
        self.admit(task_info(name, spawned_at), future, |task, future| {
            // Started only once admitted: a refused future is handed back, never detached. Its
            // own scope is recorded from the start: the worker runs in it on another thread.
            let scope = ScopeNode::for_member(task.name.clone(), home);
            scope.enter(Some(home.clone()), None);
            let future = crate::trace::in_task_span(&task, future); // on the worker's thread too
            let worker = crate::tokio::Worker::new(scope.clone(), home.env(), task.id, future);
            let handle = runtime.spawn(worker);
            // Waits on tokio's handle, a foreign future, but a reachable one: the worker sees
            // the nursery's cancellation on its own thread (S19).
            let mut handle = handle;
            let joined = std::future::poll_fn(move |cx| {
                let polled = Pin::new(&mut handle).poll(cx);
                if polled.is_pending() {
                    context::park_reachable();
                }
                polled
            });
            let proxy = async move {
                match joined.await {
                    Ok(result) => result,
                    Err(failed) => match failed.try_into_panic() {
                        Ok(payload) => resume_unwind(payload), // caught and reported by the member
                        Err(_) => unreachable!("worker members are never aborted"),
                    },
                }
            };
            crate::member::sendable_member(MemberScope::recorded(task, home.clone(), scope), proxy)
        })
    }
}

impl<E, S: Sharing> Nursery<'_, E, S> {
    /// The handle of the nursery's own scope: cancelling it cancels every member (and the body).
    ///
    /// A nursery never absorbs a cancellation: when its own scope was cancelled, it returns
    /// [`NurseryError::Cancelled`] (see DESIGN.md for why). To stop a group of tasks and carry
    /// on, run the nursery inside a [`Scope`](crate::Scope) and cancel that.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use wherefore::{Nursery, NurseryError};
    /// let out = wherefore::nursery(async |n: Nursery<'_, wherefore::Cancelled>| {
    ///     n.spawn(async { wherefore::sleep(std::time::Duration::from_secs(3600)).await })
    ///         .unwrap();
    ///     n.cancel_handle().cancel_with("enough");
    ///     wherefore::checkpoint().await
    /// })
    /// .await;
    /// assert!(matches!(out, Err(NurseryError::Cancelled(_))));
    /// # });
    /// ```
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle::from_node(self.shared.node.clone())
    }

    /// Who the nursery's scope is.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// wherefore::NurseryBuilder::named("workers")
    ///     .run(async |n: wherefore::Nursery<'_, wherefore::Cancelled>| {
    ///         assert_eq!(n.scope().name(), Some("workers"));
    ///         Ok(())
    ///     })
    ///     .await
    ///     .unwrap();
    /// # });
    /// ```
    pub fn scope(&self) -> ScopeInfo {
        self.shared.node.info().clone()
    }
}

impl<'env, E, S> Nursery<'env, E, S>
where
    E: CancelError + fmt::Display + 'env,
    S: Sharing,
{
    /// Opens a [`PersistentGroup`] named `name` in this nursery: a scope below the nursery's for
    /// background work, run by a member of this nursery of the same name. Its members' failures
    /// are printed to stderr; see [`persistent_group_with`](Self::persistent_group_with).
    ///
    /// The nursery waits for the group like for any member, so shut the group down (or drain it)
    /// before the nursery can return; a cancellation of the nursery closes the group too. Opened
    /// on a nursery that has finished, the group is born done: it refuses every spawn.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::{Cancelled, Nursery};
    /// wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    ///     let jobs = n.persistent_group::<Cancelled>("jobs");
    ///     assert_eq!(jobs.cancel_handle().scope().name(), Some("jobs"));
    ///     jobs.start_soon(async { Ok(()) }).unwrap();
    ///     let report = jobs.drain().await; // or the nursery would wait for the group forever
    ///     assert_eq!(report.finished(), 1);
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn persistent_group<G>(&self, name: impl Into<Frozen<str>>) -> PersistentGroup<G>
    where
        G: CancelError + fmt::Display + Send + 'static,
    {
        let name = name.into();
        self.persistent_group_with(name.clone(), crate::persistent_group::log_failure(name))
    }

    /// Opens a [`PersistentGroup`] whose members' failures (errors and panics, with the member's
    /// name and spawn location) go to `on_failure` instead of stderr. The handler runs on the
    /// nursery's thread; keep it short.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use std::sync::{Arc, Mutex};
    /// use wherefore::{BoxError, Cancelled, Nursery};
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
    ///     let jobs = n.persistent_group_with::<BoxError>("jobs", move |failure| {
    ///         log.lock().unwrap().push(failure.to_string())
    ///     });
    ///     jobs.start_soon_named("mailer", async { Err("smtp down".into()) }).unwrap();
    ///     jobs.spawn_named("indexer", async { Ok(()) }).unwrap(); // unaffected
    ///     let report = jobs.drain().await;
    ///     assert_eq!((report.finished(), report.failed()), (1, 1));
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// assert!(seen.lock().unwrap()[0].starts_with("task \"mailer\" (spawned at "));
    /// # });
    /// ```
    #[track_caller]
    pub fn persistent_group_with<G>(
        &self,
        name: impl Into<Frozen<str>>,
        on_failure: impl Fn(Failure<G>) + Send + Sync + 'static,
    ) -> PersistentGroup<G>
    where
        G: CancelError + fmt::Display + Send + 'static,
    {
        let name = name.into();
        let (group, runner) = PersistentGroup::new(name.clone(), Frozen::new(on_failure));
        let runner = async move {
            runner.await;
            Ok(())
        };
        let task = task_info(Some(name.clone()), Location::caller());
        // Nothing joins or cancels the runner alone: no handle, and no scope of its own.
        let admitted = self.admit(task, runner, |task, runner| {
            (sendable_unjoined::<S, _, _, E>(&task, name, runner), ())
        });
        if let Err(refused) = admitted {
            drop(refused); // dropping the runner publishes an empty report and closes the group
        }
        group
    }
}

impl<E, S: Sharing> Nursery<'_, E, S> {
    /// Whether spawns are accepted. Read under `spawned`, which no caller holds while it could
    /// be formatting a handle (`running` may be held further up the stack, by the nursery future
    /// polling the member that formats it).
    fn is_open(&self) -> bool {
        sync::lock(&self.shared.spawned).open
    }
}

impl<E, S: Sharing> fmt::Debug for Nursery<'_, E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nursery")
            .field("scope", self.shared.node.info())
            .field("sharing", &S::NAME)
            .field("open", &self.is_open())
            .finish()
    }
}

impl<E, S: Sharing> fmt::Display for Nursery<'_, E, S> {
    /// The nursery's scope and whether it still accepts members: `nursery scope "x" (open)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.is_open() { "open" } else { "closed" };
        write!(f, "nursery {} ({state})", self.shared.node.info())
    }
}

/// Runs `body` and every member it spawns concurrently; returns when all have finished.
///
/// `body` is an async closure that receives the [`Nursery`] handle. The nursery is a cancel
/// scope: a child of the scope it is polled in, and the scope of its body and members.
///
/// - When a member or the body **fails** (returns an error that is not its cancellation, or
///   panics), the nursery cancels every other member with [`Cause::SiblingError`] or
///   [`Cause::SiblingPanic`] naming the failing task, waits for all to finish (shielded cleanup
///   included), and returns [`NurseryError::Failed`] with every failure in order. Members that
///   ended only because of that cancellation are not failures.
/// - **Panics**, by default, follow `std::thread::scope`: siblings are cancelled, everyone
///   finishes, then the first panic resumes (other failures are printed to stderr, never lost).
///   [`NurseryBuilder::collect_panics`] turns panics into failures instead.
/// - When a cancellation of an enclosing scope reached the nursery, it returns
///   [`NurseryError::Cancelled`] carrying it, whatever the body returned: the enclosing scope
///   absorbs it (a `fail_after` around the nursery reports its timeout). A nursery is never
///   where an outer cancellation ends.
/// - Otherwise it returns the body's value, or [`NurseryError::Cancelled`] if the body ended
///   with a cancellation.
///
/// The members run inline, polled by the nursery future, and may borrow from the stack around
/// it. They, and their outputs, must be `Send`: the nursery future is then `Send` whenever the
/// body is, so it can run in `tokio::spawn`, an axum handler, or a worker member. For `!Send`
/// members, use [`nursery_local`].
///
/// ```
/// # wherefore::testing::block_on(async {
/// use std::time::Duration;
/// use wherefore::Nursery;
///
/// let out = wherefore::nursery(async |n: Nursery<'_, wherefore::Cancelled>| {
///     n.spawn_named("fetch", async {
///         wherefore::sleep(Duration::from_secs(1)).await?;
///         Ok(())
///     })
///     .unwrap();
///     n.start_soon_named("log", async { Ok(()) }).unwrap();
///     Ok(42)
/// })
/// .await; // waits for every member
/// assert_eq!(out.unwrap(), 42);
/// # });
/// ```
///
/// Inside a task of a multi-thread runtime:
///
/// ```
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() {
/// use wherefore::{Cancelled, Nursery};
/// let request = tokio::spawn(wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
///     let mut a = n.spawn(async { Ok(1) }).unwrap();
///     let mut b = n.spawn(async { Ok(2) }).unwrap();
///     Ok(a.join().await?.completed().unwrap() + b.join().await?.completed().unwrap())
/// }));
/// assert_eq!(request.await.unwrap().unwrap(), 3);
/// # }
/// ```
#[track_caller]
pub fn nursery<'env, B, Fut, T, E>(
    body: B,
) -> impl Future<Output = Result<T, NurseryError<E>>> + 'env
where
    B: FnOnce(Nursery<'env, E>) -> Fut + 'env,
    Fut: Future<Output = Result<T, E>> + 'env,
    T: 'env,
    E: CancelError + fmt::Display + 'env,
{
    NurseryBuilder::new().run(body)
}

/// [`nursery`] for members that are not `Send` (they hold an `Rc`, borrow a `Cell`): the same
/// semantics, with a [`LocalNursery`] handle; the nursery future is `!Send`, so it runs where a
/// future is run in place (`#[tokio::main]`, `block_on`, a `LocalSet`, [`run`](crate::run)), as
/// tokio's `spawn_local` tasks do.
///
/// ```
/// # wherefore::testing::block_on(async {
/// use std::rc::Rc;
/// use wherefore::LocalNursery;
/// let out = wherefore::nursery_local(async |n: LocalNursery<'_, wherefore::Cancelled>| {
///     let config = Rc::new("eu-west");
///     let mut child = n.spawn(async move { Ok(config.len()) }).unwrap();
///     Ok(child.join().await?.completed())
/// })
/// .await;
/// assert_eq!(out.unwrap(), Some(7));
/// # });
/// ```
#[track_caller]
pub fn nursery_local<'env, B, Fut, T, E>(
    body: B,
) -> impl Future<Output = Result<T, NurseryError<E>>> + 'env
where
    B: FnOnce(LocalNursery<'env, E>) -> Fut + 'env,
    Fut: Future<Output = Result<T, E>> + 'env,
    T: 'env,
    E: CancelError + fmt::Display + 'env,
{
    NurseryBuilder::new().local().run(body)
}

/// Options for a nursery: a name, what to do with panics, and its sharing ([`Sendable`] unless
/// [`local`](NurseryBuilder::local)).
///
/// ```
/// # wherefore::testing::block_on(async {
/// use wherefore::{FailureKind, Nursery, NurseryBuilder};
/// let err = NurseryBuilder::named("workers")
///     .collect_panics()
///     .run(async |n: Nursery<'_, wherefore::Cancelled>| {
///         n.start_soon(async { panic!("boom") as Result<(), _> }).unwrap();
///         Ok(())
///     })
///     .await
///     .unwrap_err();
/// assert!(matches!(err.failures()[0].kind(), FailureKind::Panic(m) if m == "boom"));
/// # });
/// ```
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until you `run` a body"]
pub struct NurseryBuilder<S: Sharing = Sendable> {
    name: Option<Frozen<str>>,
    collect_panics: bool,
    sharing: PhantomData<S>,
}

impl NurseryBuilder {
    /// An unnamed, sendable nursery that resumes panics (the default of [`nursery`]).
    ///
    /// ```
    /// let builder = wherefore::NurseryBuilder::new();
    /// # let _ = builder;
    /// ```
    pub fn new() -> Self {
        NurseryBuilder::default()
    }

    /// A named nursery; the name is its scope's name.
    ///
    /// ```
    /// let builder = wherefore::NurseryBuilder::named("server");
    /// # let _ = builder;
    /// ```
    pub fn named(name: impl Into<Frozen<str>>) -> Self {
        NurseryBuilder {
            name: Some(name.into()),
            ..NurseryBuilder::default()
        }
    }
}

impl<S: Sharing> NurseryBuilder<S> {
    /// Report panics as [`FailureKind::Panic`] failures instead of resuming them.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::{FailureKind, Nursery, NurseryBuilder};
    /// let err = NurseryBuilder::new()
    ///     .collect_panics()
    ///     .run(async |n: Nursery<'_, wherefore::Cancelled>| {
    ///         n.start_soon_named("parser", async { panic!("bad input") as Result<(), _> }).unwrap();
    ///         Ok(())
    ///     })
    ///     .await
    ///     .unwrap_err(); // the panic did not resume: it is a failure
    /// let failure = &err.failures()[0];
    /// assert_eq!(failure.task().name(), Some("parser"));
    /// assert!(matches!(failure.kind(), FailureKind::Panic(m) if m == "bad input"));
    /// # });
    /// ```
    pub fn collect_panics(mut self) -> Self {
        self.collect_panics = true;
        self
    }

    /// A nursery for `!Send` members, as [`nursery_local`] opens.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use wherefore::{LocalNursery, NurseryBuilder};
    /// let cell = std::cell::Cell::new(1);
    /// NurseryBuilder::named("local")
    ///     .local()
    ///     .run(async |n: LocalNursery<'_, wherefore::Cancelled>| {
    ///         n.start_soon(async { Ok(cell.set(2)) }).unwrap();
    ///         Ok(())
    ///     })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(cell.get(), 2);
    /// # });
    /// ```
    pub fn local(self) -> NurseryBuilder<Local> {
        NurseryBuilder {
            name: self.name,
            collect_panics: self.collect_panics,
            sharing: PhantomData,
        }
    }

    /// Runs the nursery; see [`nursery`].
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use wherefore::{Cancelled, Nursery, NurseryBuilder};
    /// let sum = NurseryBuilder::named("adders")
    ///     .run(async |n: Nursery<'_, Cancelled>| {
    ///         let mut a = n.spawn(async { Ok(1) }).unwrap();
    ///         let mut b = n.spawn(async { Ok(2) }).unwrap();
    ///         Ok(a.join().await?.completed().unwrap() + b.join().await?.completed().unwrap())
    ///     })
    ///     .await;
    /// assert_eq!(sum.unwrap(), 3);
    /// # });
    /// ```
    #[track_caller]
    pub fn run<'env, B, Fut, T, E>(
        self,
        body: B,
    ) -> impl Future<Output = Result<T, NurseryError<E>>> + 'env
    where
        B: FnOnce(Nursery<'env, E, S>) -> Fut + 'env,
        Fut: Future<Output = Result<T, E>> + 'env,
        T: 'env,
        E: CancelError + fmt::Display + 'env,
    {
        let node = ScopeNode::new(self.name.clone());
        let span = ScopeSpan::new(node.info());
        let shared = Arc::new(Shared {
            node,
            running: Mutex::new(Running {
                open: true,
                members: MemberSet::new(),
            }),
            spawned: Mutex::new(Spawned {
                open: true,
                polling: false,
                members: Vec::new(),
            }),
        });
        let body_wake = Frozen::new(BodyWake {
            woken: AtomicBool::new(true),
            nursery: Mutex::new(None),
        });
        // A future of its own rather than an `async` block, and boxed: nested nurseries recurse
        // through its poll, and a debug build gives every temporary its own slot in the frame of
        // the code that awaits it, a copy of the future among them (issue 24).
        let driver = Box::pin(Driver {
            run: Run {
                shared,
                start: Some(body),
                body_made: false,
                body_ended: false,
                body_waker: Waker::from(body_wake.clone()),
                body_wake,
                body_task: task_info(None, Location::caller()),
                outcome: None,
                ends: Ends {
                    failures: Vec::new(),
                    panic: None,
                    collect_panics: self.collect_panics,
                },
                body_reach: Reach::default(),
                runtime: RuntimeMark::default(),
                members_wait: CancelWait::default(),
                ambient: None,
            },
            span,
            body: None,
        });
        NurseryFuture { driver }
    }
}

/// Wakes the nursery on behalf of its body, and records that the body asked to be polled.
struct BodyWake {
    woken: AtomicBool,
    nursery: Mutex<Option<Waker>>,
}

impl Wake for BodyWake {
    fn wake(self: Frozen<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Frozen<Self>) {
        self.woken.store(true, Ordering::Release);
        let nursery = sync::lock(&self.nursery).take();
        if let Some(nursery) = nursery {
            nursery.wake();
        }
    }
}

/// The future a nursery is: its [`Driver`], boxed (see `run`).
struct NurseryFuture<D> {
    driver: Pin<Box<D>>,
}

impl<D: Future> Future for NurseryFuture<D> {
    type Output = D::Output;

    #[cfg_attr(debug_assertions, inline(always))] // nested nurseries recurse through it
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<D::Output> {
        self.driver.as_mut().poll(cx)
    }
}

pin_project_lite::pin_project! {
    /// Polls the body and the running members inside the nursery scope.
    struct Driver<'env, B, Fut, T, E, S> {
        // Everything but the body and the span. Dropped first (`PinnedDrop`): the members,
        // then the body.
        run: Run<'env, B, T, E, S>,
        // Entered around each poll, if the nursery is named (feature `tracing`).
        span: ScopeSpan,
        // From the first poll until it ended.
        #[pin]
        body: Option<Fut>,
    }

    impl<'env, B, Fut, T, E, S> PinnedDrop for Driver<'env, B, Fut, T, E, S> {
        fn drop(this: Pin<&mut Self>) {
            this.project().run.dropped();
        }
    }
}

/// A nursery's state but its body's future.
struct Run<'env, B, T, E, S> {
    shared: Arc<Shared<'env, E, S>>,
    /// Makes the body, given the nursery's handle: called on the first poll.
    start: Option<B>,
    /// The body was made (`start` returned). Kept apart from the body rather than read from it:
    /// a shared reference to a running body, an `async` block holding references into itself,
    /// would invalidate them under Stacked Borrows.
    body_made: bool,
    /// The body ended (or panicked), and its future was dropped.
    body_ended: bool,
    /// The body's own waker: the nursery polls the body only when it was woken, not whenever a
    /// member wakes the nursery.
    body_wake: Frozen<BodyWake>,
    /// `body_wake`, as the waker the body is polled with.
    body_waker: Waker,
    body_task: TaskInfo,
    /// The body's result, once it ended without failing.
    outcome: Option<Result<T, crate::Cancelled>>,
    ends: Ends<E>,
    /// The body's watch while it is blocked in a foreign future (S19).
    body_reach: Reach,
    /// The runtime it was entered in: every later poll must be in the same one.
    runtime: RuntimeMark,
    /// Registered with the nursery's scope while members are blocked in foreign futures (S19).
    members_wait: CancelWait,
    /// The nursery's runtime environment, when it was first polled on a thread that had none (a
    /// nursery inside a bare tokio runtime, whose scopes take an environment of their own): it is
    /// the thread's environment during each poll, as a tokio worker's member has it
    /// (`tokio::Worker`), so that what its members create finds it there without a lock.
    ambient: Option<Arc<Env>>,
}

/// What the members' and the body's ends leave for the nursery's result.
struct Ends<E> {
    /// Every failure, in the order it happened.
    failures: Vec<Failure<E>>,
    /// The first panic, to resume at the end (default mode).
    panic: Option<Box<dyn Any + Send>>,
    collect_panics: bool,
}

impl<E: fmt::Display> Ends<E> {
    /// Records how a member (or the body) ended; a failure cancels the siblings (`node`'s scope).
    fn record(&mut self, node: &ScopeNode, ended: Ended<E>) {
        let Ended { task, end } = ended;
        let (cause, kind) = match end {
            End::Completed | End::Cancelled => return,
            End::Failed(e) => {
                let cause = Cause::SiblingError(SiblingFailure::new(task.clone(), e.to_string()));
                (cause, FailureKind::Error(e))
            }
            End::Panicked(payload) => {
                let message = panic_message(payload.as_ref());
                let cause = Cause::SiblingPanic(SiblingFailure::new(task.clone(), message.clone()));
                if !self.collect_panics {
                    self.panic.get_or_insert(payload);
                }
                (cause, FailureKind::Panic(message))
            }
        };
        node.record_own(cause);
        self.failures.push(Failure { task, kind });
    }
}

impl<'env, B, T, E, S> Run<'env, B, T, E, S>
where
    E: CancelError + fmt::Display,
    S: Sharing,
{
    fn node(&self) -> &ScopeNode {
        &self.shared.node
    }

    /// Polls a batch of running members, and those they spawn meanwhile; returns whether any
    /// member is left.
    fn poll_members(&mut self, cx: &mut Context<'_>) -> bool {
        let Run {
            shared,
            ends,
            members_wait,
            ..
        } = self;
        sync::lock(&shared.spawned).polling = true;
        let mut running = sync::lock(&shared.running);
        // Only the batch's poll is done here: nested nurseries recurse through it, and what
        // comes after is in functions of their own (issue 24, item 7).
        let batch = loop {
            let batch = running
                .members
                .poll_batch(cx, |ended| ends.record(&shared.node, ended));
            if !take_spawned(shared, &mut running) {
                break batch;
            }
        };
        watch_foreign(shared, ends, members_wait, running, batch, cx)
    }

    /// Refuses further spawns if no member is running, and says whether it did: with every
    /// member ended and the body too, the nursery is done, unless a spawn from another thread
    /// came in since the members were polled (it woke the nursery, which polls it next).
    fn close_if_idle(&self) -> bool {
        let mut running = sync::lock(&self.shared.running);
        if !running.members.is_empty() {
            return false;
        }
        running.open = false;
        sync::lock(&self.shared.spawned).open = false;
        true
    }

    /// The nursery's arrival in a poll: on the first, the body made (before the scope is
    /// entered, as when the nursery's future was an `async` block that made it) and the scope
    /// entered; on the later ones, the runtime checked.
    ///
    /// # Panics
    ///
    /// Polled again after the body's making panicked, as an `async` block resumed after a panic
    /// does: there is no body to run, and waiting for one would hang.
    #[cfg_attr(debug_assertions, inline(never))] // out of the frame nested nurseries recurse through
    #[cfg_attr(not(debug_assertions), inline)]
    fn arrive<Fut>(&mut self, node: &ScopeNode, mut body: Pin<&mut Option<Fut>>)
    where
        B: FnOnce(Nursery<'env, E, S>) -> Fut,
    {
        if let Some(start) = self.start.take() {
            let handle = Nursery {
                shared: self.shared.clone(),
            };
            body.set(Some(start(handle)));
            self.body_made = true;
        } else if !self.body_made {
            panic!(
                "wherefore: nursery {} polled after making its body panicked",
                node.info()
            );
        }
        if !node.enter_if_new() {
            self.runtime.check(|| node.info().to_string());
            return;
        }
        self.runtime = RuntimeMark::here();
        sync::lock(&self.shared.running)
            .members
            .set_schedule(node.clock());
        if context::env_address().is_null() {
            self.ambient = node.env();
        }
    }

    /// Whether the body is running and asked to be polled; registers the nursery's waker first.
    #[cfg_attr(debug_assertions, inline(never))] // out of the frame nested nurseries recurse through
    #[cfg_attr(not(debug_assertions), inline)]
    fn body_woken(&mut self, cx: &mut Context<'_>) -> bool {
        if self.body_ended {
            return false;
        }
        // Registered before the flag is read: a wake-up after the read finds the waker.
        remember(&mut sync::lock(&self.body_wake.nursery), cx.waker());
        self.body_wake.woken.swap(false, Ordering::AcqRel)
    }

    /// Records how the body's poll ended, if it did: its value, its cancellation, its failure or
    /// its panic (`caught`); a body that ended is dropped.
    #[cfg_attr(debug_assertions, inline(never))] // out of the frame nested nurseries recurse through
    #[cfg_attr(not(debug_assertions), inline)]
    fn body_polled<Fut>(
        &mut self,
        mut body: Pin<&mut Option<Fut>>,
        ended: Poll<Option<Result<T, E>>>,
        caught: Result<(), Box<dyn Any + Send>>,
    ) {
        let end = match caught {
            Ok(()) => {
                let Poll::Ready(polled) = ended else {
                    return;
                };
                match reached(polled, &mut self.body_reach) {
                    Ok(value) => {
                        self.outcome = Some(Ok(value));
                        End::Completed
                    }
                    Err(e) => match classify(self.node(), e) {
                        Ok(cancelled) => {
                            self.outcome = Some(Err(cancelled));
                            End::Cancelled
                        }
                        Err(e) => End::Failed(e),
                    },
                }
            }
            Err(payload) => End::Panicked(payload),
        };
        body.set(None);
        self.body_ended = true;
        let mut task = self.body_task.clone();
        if matches!(end, End::Failed(_) | End::Panicked(_)) {
            // Named after its nursery only when a failure names it: nested nurseries' bodies
            // must read apart, and a member may be called "body" too.
            task.name = Some(body_name(self.shared.node.info()).into());
        }
        self.ends.record(&self.shared.node, Ended { task, end });
    }

    /// The rest of a poll, after the body's: the members polled, and the nursery's end once
    /// everything ended.
    #[cfg_attr(debug_assertions, inline(never))] // out of the frame nested nurseries recurse through
    #[cfg_attr(not(debug_assertions), inline)]
    fn after_body(
        &mut self,
        node: &ScopeNode,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, NurseryError<E>>> {
        let members_left = self.poll_members(cx);
        if self.body_ended && !members_left && self.close_if_idle() {
            return Poll::Ready(self.finish());
        }
        if self.body_ended {
            // The task awaiting the nursery now waits for its members (for hang reports).
            report_blocked("nursery", None, node);
        }
        // A nursery is not dropped from outside when its scope is cancelled: its members see the
        // cancellation, and are reached by it, where they are (S19).
        context::park_reachable();
        Poll::Pending
    }

    fn finish(&mut self) -> Result<T, NurseryError<E>> {
        // Read before the scope is left: an ancestor's cancellation that reached the members is
        // the ancestor's to absorb, whatever the body returned (S18).
        let parents = self.shared.node.parents_cancellation();
        self.close();
        let ends = &mut self.ends;
        if let Some(payload) = ends.panic.take() {
            for failure in &ends.failures {
                if let FailureKind::Error(_) = failure.kind {
                    eprintln!("wherefore: nursery {}: {failure}", self.shared.node.info());
                }
            }
            resume_unwind(payload);
        }
        if !ends.failures.is_empty() {
            // S3: failures win; the ancestor's cancellation stays pending, level-triggered.
            return Err(NurseryError::Failed(std::mem::take(&mut ends.failures)));
        }
        if let Some(cancelled) = parents {
            return Err(NurseryError::Cancelled(cancelled));
        }
        match self.outcome.take() {
            Some(Ok(value)) => Ok(value),
            Some(Err(cancelled)) => Err(NurseryError::Cancelled(cancelled)),
            None => unreachable!("finish is called only after the body ended"),
        }
    }
}

impl<'env, B, Fut, T, E, S> Future for Driver<'env, B, Fut, T, E, S>
where
    B: FnOnce(Nursery<'env, E, S>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: CancelError + fmt::Display,
    S: Sharing,
{
    type Output = Result<T, NurseryError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _span = this.span.enter();
        let run = this.run;
        let mut body = this.body;
        let node = run.node().clone();
        run.arrive(&node, body.as_mut());
        let _env = run.ambient.as_ref().map(context::enter_env);
        let _current = context::lend(&node);
        if run.body_woken(cx) {
            // A body blocked in a foreign future is ended there when the nursery is cancelled, as
            // if its cancellation point had failed (S19), as a scope future's is; the body's
            // waker is the one registered. What the poll returns is written here rather than
            // returned through `catch_unwind`, whose frames in a debug build each keep a copy.
            let mut ended = Poll::Pending;
            let (reach, waker) = (&mut run.body_reach, &run.body_waker);
            let caught = catch_unwind(AssertUnwindSafe(|| {
                let mut body_cx = Context::from_waker(waker);
                ended = poll_reached(body.as_mut(), &mut body_cx, Some(reach));
            }));
            run.body_polled(body, ended, caught);
        }
        run.after_body(&node, cx)
    }
}

/// Moves the members spawned while a batch was polled into the running set, which polls them
/// next; says whether there were any. With none, the set's polling ends (`spawned.polling`).
#[cfg_attr(debug_assertions, inline(never))] // out of the frame members are polled in
#[cfg_attr(not(debug_assertions), inline)]
fn take_spawned<'env, E, S>(
    shared: &Shared<'env, E, S>,
    running: &mut Running<'env, E, S>,
) -> bool {
    let mut spawned = sync::lock(&shared.spawned);
    if spawned.members.is_empty() {
        // The deliberately broken build clears `polling` in a critical section of its own
        // (check-then-act): a spawn in between is left in `spawned`, never polled.
        #[cfg(wherefore_loom_broken_drain)]
        let mut spawned = {
            drop(spawned);
            sync::lock(&shared.spawned)
        };
        spawned.polling = false;
        return false;
    }
    let added = std::mem::take(&mut spawned.members);
    drop(spawned);
    running.members.extend(added);
    true
}

/// After a batch: the members blocked in foreign futures watched, and ended where they are
/// once the nursery is cancelled (S19); says whether any member is left.
#[cfg_attr(debug_assertions, inline(never))] // out of the frame members are polled in
#[cfg_attr(not(debug_assertions), inline)]
fn watch_foreign<'env, E: fmt::Display, S>(
    shared: &Shared<'env, E, S>,
    ends: &mut Ends<E>,
    members_wait: &mut CancelWait,
    mut running: MutexGuard<'_, Running<'env, E, S>>,
    batch: Poll<()>,
    cx: &mut Context<'_>,
) -> bool {
    if !running.members.has_foreign() {
        members_wait.clear();
        return batch.is_pending();
    }
    if let Poll::Ready(cancelled) = members_wait.poll(cx, "foreign future", None) {
        let reached = running.members.take_foreign();
        let left = !running.members.is_empty();
        // Ended with the set let go of: a member's drop may spawn into this nursery.
        drop(running);
        for member in reached {
            ends.record(&shared.node, member.reached(cancelled.clone()));
        }
        return left;
    }
    batch.is_pending()
}

impl<B, T, E, S> Run<'_, B, T, E, S> {
    /// The nursery dropped, finished or not: members are dropped with it (they run inline),
    /// spawns are refused from now on, and the scope is left.
    fn dropped(&mut self) {
        // The scope is left even if a hook or a member's drop panics on the way (invariant 6 of
        // the scope tree).
        let node = ExitOnDrop(self.shared.node.clone());
        if node.0.phase() == Phase::Entered {
            // Members on worker threads (feature `tokio`) outlive this future: tell them why.
            node.0
                .cancel_explicit(Some("nursery dropped"), self.body_task.spawned_at);
        }
        self.close();
    }

    /// Refuses further spawns, drops the members (running or spawned), and leaves the scope.
    /// Idempotent.
    fn close(&mut self) {
        // Left at the end, or while unwinding if a member's drop panics.
        let _leave = ExitOnDrop(self.shared.node.clone());
        let running = {
            let mut running = sync::lock(&self.shared.running);
            running.open = false;
            std::mem::replace(&mut running.members, MemberSet::new())
        };
        let spawned = {
            let mut spawned = sync::lock(&self.shared.spawned);
            spawned.open = false;
            std::mem::take(&mut spawned.members)
        };
        // Outside the locks: a member's drop may try to spawn (and be refused).
        drop(running);
        drop(spawned);
    }
}
