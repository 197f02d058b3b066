//! How nursery members end: [`TaskExit`], the [`JoinHandle`] through which a member's exit is
//! read, and the classification of a member's end shared by nurseries and persistent groups.
//! The member itself (its future and its exit in one allocation) is in `member.rs`.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::cancelled::{CancelError, Cancelled};
use crate::cause::Cause;
use crate::checkpoint::{CancelWait, parked};
use crate::context;
use crate::env::Env;
use crate::event::Event;
use crate::identity::{ScopeInfo, TaskId, TaskInfo};
use crate::member_scope::MemberScope;
use crate::scope::CancelHandle;
use crate::scope_tree::ScopeNode;
use crate::sync::{self, DynArc, Mutex};

/// How a nursery member ended, as its [`JoinHandle`] reports it.
///
/// A failure's error value stays with the nursery, which reports it (joining never consumes a
/// failure, S8); the handle gets its message.
///
/// ```
/// # wherefore::testing::block_on(async {
/// use wherefore::{Nursery, TaskExit};
/// wherefore::nursery(async |n: Nursery<'_, wherefore::Cancelled>| {
///     let mut child = n.spawn(async { Ok(6 * 7) }).unwrap();
///     let exit = child.join().await?; // `?`: *my* cancellation
///     assert!(matches!(exit, TaskExit::Completed(42))); // the child's exit
///     Ok(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskExit<T> {
    /// It returned a value.
    Completed(T),
    /// It returned an error (not a cancellation); the error itself is in the nursery's result.
    Failed {
        /// The error's `Display`.
        message: String,
    },
    /// It ended because its scope was cancelled, for this reason.
    Cancelled(Cause),
    /// It panicked with this message.
    Panicked {
        /// The panic payload as text.
        message: String,
    },
    /// It never finished: its nursery's future was dropped before it did, and dropped it.
    Dropped,
    /// It ended, and an earlier [`join`](JoinHandle::join) or
    /// [`try_join`](JoinHandle::try_join) on its handle took this exit (and its value);
    /// [`JoinHandle::exit`] still tells how it ended.
    Joined,
}

impl<T> TaskExit<T> {
    /// The value, if the task completed.
    ///
    /// ```
    /// assert_eq!(wherefore::TaskExit::Completed(3).completed(), Some(3));
    /// ```
    pub fn completed(self) -> Option<T> {
        match self {
            TaskExit::Completed(v) => Some(v),
            _ => None,
        }
    }
}

impl<T> TaskExit<T> {
    /// The same exit without the value, for events.
    pub(crate) fn summary(&self) -> TaskExit<()> {
        match self {
            TaskExit::Completed(_) => TaskExit::Completed(()),
            TaskExit::Failed { message } => TaskExit::Failed {
                message: message.clone(),
            },
            TaskExit::Cancelled(cause) => TaskExit::Cancelled(cause.clone()),
            TaskExit::Panicked { message } => TaskExit::Panicked {
                message: message.clone(),
            },
            TaskExit::Dropped => TaskExit::Dropped,
            TaskExit::Joined => TaskExit::Joined,
        }
    }
}

impl<T> fmt::Display for TaskExit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskExit::Completed(_) => f.write_str("completed"),
            TaskExit::Failed { message } => write!(f, "failed: {message}"),
            TaskExit::Cancelled(cause) => write!(f, "cancelled: {cause}"),
            TaskExit::Panicked { message } => write!(f, "panicked: {message}"),
            TaskExit::Dropped => f.write_str("dropped with its nursery before it finished"),
            TaskExit::Joined => f.write_str("ended; its exit was taken by an earlier join"),
        }
    }
}

/// Where a member's exit is left for its handle, and the member's own scope: the part of a
/// member its handle reads and controls.
pub(crate) struct Exit<T> {
    /// Who the member is, and the scope its handle cancels (`member_scope.rs`).
    pub(crate) scope: MemberScope,
    /// Locked by the member's nursery when it ends and by the handle, on whichever threads they
    /// are.
    state: Mutex<ExitState<T>>,
}

/// One enum, as small as the exit itself: it keeps a member's allocation small.
enum ExitState<T> {
    /// Still running; the waker of a task joining it.
    Running(Option<Waker>),
    Ended(TaskExit<T>),
    /// Ended, and the handle took the exit: how it ended, without the value.
    Taken(TaskExit<()>),
}

impl<T> Exit<T> {
    /// The exit of the member that runs in `scope`.
    pub(crate) fn new(scope: MemberScope) -> Self {
        Exit {
            scope,
            state: Mutex::new(ExitState::Running(None)),
        }
    }

    pub(crate) fn task(&self) -> &TaskInfo {
        &self.scope.task
    }

    pub(crate) fn is_finished(&self) -> bool {
        !matches!(*sync::lock(&self.state), ExitState::Running(_))
    }

    /// Leaves the exit for the handle, and reports it to the runtime. The member's own scope
    /// ends first: a cancel request from now on has no effect (S15).
    pub(crate) fn finish(&self, exit: TaskExit<T>) {
        self.scope.end();
        report_exit(self.task(), &exit);
        // The deliberately broken build wakes the joiner before it stores the exit, in two critical
        // sections (wake-before-store): a joiner that registers again in between is never woken.
        #[cfg(wherefore_loom_broken_exit)]
        let before = {
            if let ExitState::Running(joiner) = &mut *sync::lock(&self.state) {
                if let Some(joiner) = joiner.take() {
                    joiner.wake();
                }
            }
            *sync::lock(&self.state) = ExitState::Ended(exit); // drops a waker kept meanwhile
            ExitState::<T>::Taken(TaskExit::Joined)
        };
        #[cfg(not(wherefore_loom_broken_exit))]
        let before = std::mem::replace(&mut *sync::lock(&self.state), ExitState::Ended(exit));
        if let ExitState::Running(Some(joiner)) = before {
            joiner.wake();
        }
    }

    /// The exit, if the member has ended ([`TaskExit::Joined`] if it was taken already).
    fn take(&self) -> Option<TaskExit<T>> {
        self.take_or_wait(None)
    }

    /// The exit, if the member has ended ([`TaskExit::Joined`] if it was taken already);
    /// otherwise keeps `joiner` (if any) to be woken when it ends. Under one lock, so that an end
    /// in between is not missed.
    fn take_or_wait(&self, joiner: Option<&Waker>) -> Option<TaskExit<T>> {
        let mut st = sync::lock(&self.state);
        match &mut *st {
            ExitState::Running(kept) => {
                if let Some(joiner) = joiner {
                    crate::member_set::remember(kept, joiner);
                }
                None
            }
            ExitState::Taken(_) => Some(TaskExit::Joined),
            ExitState::Ended(exit) => {
                let taken = ExitState::Taken(exit.summary());
                let ExitState::Ended(exit) = std::mem::replace(&mut *st, taken) else {
                    unreachable!("matched as ended under the same lock")
                };
                Some(exit)
            }
        }
    }

    /// How the member ended, without its value; `None` while it runs.
    fn summary(&self) -> Option<TaskExit<()>> {
        match &*sync::lock(&self.state) {
            ExitState::Running(_) => None,
            ExitState::Ended(exit) => Some(exit.summary()),
            ExitState::Taken(summary) => Some(summary.summary()),
        }
    }
}

/// Something that holds a member's [`Exit`]: what a handle points at, without the member's
/// future in its type.
pub(crate) trait HasExit<T> {
    fn exit(&self) -> &Exit<T>;
}

/// A shared pointer to a member, as its handle sees it: without the member's future in its type,
/// nor the lifetime of what that future borrows (see `member.rs` for why that is sound).
pub(crate) struct ExitRef<T>(Pin<DynArc<dyn HasExit<T>>>);

impl<T> ExitRef<T> {
    /// Called by `member.rs` only, on the cell it has just built (its invariants 3 and 4).
    pub(crate) fn new(cell: Pin<DynArc<dyn HasExit<T>>>) -> Self {
        ExitRef(cell)
    }

    fn exit(&self) -> &Exit<T> {
        self.0.exit()
    }
}

// SAFETY: through an `ExitRef` a member's cell is reached in two ways only (`member.rs`,
// invariants 3 and 4): `exit()`, whose task identity is `Send + Sync` and whose state is behind a
// mutex, so `T: Send` lets any thread lock it and move the exit out; and the drop of the last
// reference, which finds the member's future already dropped, so the cell's drop (on whichever
// thread) drops an exit and an identity, nothing of the future's type. The cell's own type is
// erased (`dyn HasExit<T>`), which is why the compiler cannot see this.
unsafe impl<T: Send> Send for ExitRef<T> {}
// SAFETY: as for `Send`: shared, it gives `&Exit<T>`, whose state is behind a mutex.
unsafe impl<T: Send> Sync for ExitRef<T> {}

/// The handle of a nursery member: read how it ended.
///
/// Dropping it does not cancel or detach the task: the nursery still runs and awaits it. It may
/// outlive its nursery (and whatever its task borrowed): it then still tells how the task ended,
/// [`TaskExit::Dropped`] if the nursery's future was dropped first.
///
/// ```
/// # wherefore::testing::block_on(async {
/// wherefore::nursery(async |n: wherefore::Nursery<'_, wherefore::Cancelled>| {
///     let mut child = n.spawn_named("worker", async { Ok("done") }).unwrap();
///     assert_eq!(child.task().name(), Some("worker"));
///     assert_eq!(child.join().await?.completed(), Some("done"));
///     Ok(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
#[must_use = "dropping the handle neither cancels nor detaches the task, which its nursery still \
              runs and awaits; start a task you will not join or cancel with `start_soon`"]
pub struct JoinHandle<T> {
    member: ExitRef<T>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(member: ExitRef<T>) -> Self {
        JoinHandle { member }
    }

    /// Who the task is.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # wherefore::nursery(async |n: wherefore::Nursery<'_, wherefore::Cancelled>| {
    /// let child = n.spawn_named("resize", async { Ok(()) }).unwrap();
    /// assert_eq!(child.task().name(), Some("resize"));
    /// assert_eq!(child.task().spawned_at().file(), file!()); // the `spawn_named` call
    /// # Ok(())
    /// # }).await.unwrap();
    /// # });
    /// ```
    pub fn task(&self) -> &TaskInfo {
        self.member.exit().task()
    }

    /// Whether the task has ended.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// wherefore::nursery(async |n: wherefore::Nursery<'_, wherefore::Cancelled>| {
    ///     let child = n.spawn(async { Ok(()) }).unwrap();
    ///     assert!(!child.is_finished()); // not polled yet
    ///     wherefore::checkpoint().await?; // let it run
    ///     assert!(child.is_finished());
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.member.exit().is_finished()
    }

    /// The exit if the task has ended, without waiting (and without being a cancellation point);
    /// `None` while it runs.
    ///
    /// Taking the exit moves its value out: a later `try_join` or [`join`](Self::join) gives
    /// [`TaskExit::Joined`], and [`exit`](Self::exit) still tells how the task ended.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use wherefore::TaskExit;
    /// wherefore::nursery(async |n: wherefore::Nursery<'_, wherefore::Cancelled>| {
    ///     let mut child = n.spawn(async { Ok(1) }).unwrap();
    ///     assert!(child.try_join().is_none()); // still running
    ///     wherefore::checkpoint().await?;
    ///     assert!(matches!(child.try_join(), Some(TaskExit::Completed(1))));
    ///     assert!(matches!(child.try_join(), Some(TaskExit::Joined))); // taken already
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn try_join(&mut self) -> Option<TaskExit<T>> {
        self.member.exit().take()
    }

    /// Waits for the task to end and takes its exit; a cancellation point.
    ///
    /// The two kinds of cancellation are apart in the type: the outer `Result` is the *caller's*
    /// own cancellation (S8: it wins even if the child has already finished; `?` propagates it),
    /// the inner [`TaskExit`] is how the *child* ended, [`TaskExit::Cancelled`] included. The
    /// handle is borrowed, not consumed: after the caller's own cancellation the child's exit
    /// can still be read ([`try_join`](Self::try_join), [`exit`](Self::exit), or `join` again in
    /// a shield).
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// # use std::time::Duration;
    /// # use wherefore::{Nursery, TaskExit};
    /// # wherefore::nursery(async |n: Nursery<'_, wherefore::Cancelled>| {
    /// let mut quick = n.spawn(async { Ok("done") }).unwrap();
    /// assert!(matches!(quick.join().await?, TaskExit::Completed("done")));
    ///
    /// let mut slow = n.spawn(wherefore::sleep(Duration::from_secs(60))).unwrap();
    /// let waited = wherefore::move_on_after(Duration::from_secs(1), slow.join()).await;
    /// assert!(matches!(waited, Ok(None))); // *my* timeout ended the wait; the child runs on
    /// assert!(slow.cancel()); // and now it is cancelled, on its own
    /// assert!(matches!(slow.join().await?, TaskExit::Cancelled(_)));
    /// # Ok(())
    /// # }).await.unwrap();
    /// # });
    /// ```
    pub fn join(&mut self) -> Join<'_, T> {
        Join {
            member: &self.member,
            wait: CancelWait::default(),
        }
    }

    /// How the task ended, without its value, as often as asked (also after its exit was taken);
    /// `None` while it runs.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use wherefore::TaskExit;
    /// wherefore::nursery(async |n: wherefore::Nursery<'_, wherefore::Cancelled>| {
    ///     let mut child = n.spawn(async { Ok(String::from("report")) }).unwrap();
    ///     assert!(child.exit().is_none()); // running
    ///     let report = child.join().await?.completed();
    ///     assert_eq!(report.as_deref(), Some("report"));
    ///     assert!(matches!(child.exit(), Some(TaskExit::Completed(()))));
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn exit(&self) -> Option<TaskExit<()>> {
        self.member.exit().summary()
    }

    /// Cancels this task alone, with an [`Explicit`](crate::Explicit) cause and no tag: its own
    /// scope (a child of its nursery's) is cancelled, so the task fails at its next cancellation
    /// point (or, blocked in a foreign future, is dropped there, S19) and ends
    /// [`TaskExit::Cancelled`], which is not a failure: its siblings and its nursery carry on.
    ///
    /// Returns whether this call made the task effectively cancelled: `false` if it already was
    /// (cancelled through its handle before, or its nursery is cancelled) or if it has ended
    /// (S15: no effect). As [`CancelHandle::cancel`], and it is one, on the task's scope.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use std::time::Duration;
    /// use wherefore::{Nursery, TaskExit};
    /// wherefore::nursery(async |n: Nursery<'_, wherefore::Cancelled>| {
    ///     let mut stuck = n.spawn(wherefore::sleep(Duration::from_secs(3600))).unwrap();
    ///     let mut sibling = n.spawn(wherefore::sleep(Duration::from_secs(1))).unwrap();
    ///     assert!(stuck.cancel());
    ///     assert!(!stuck.cancel()); // the first request won
    ///     let exit = stuck.join().await?;
    ///     assert!(matches!(&exit, TaskExit::Cancelled(cause) if cause.kind() == "explicit"));
    ///     assert!(matches!(sibling.join().await?, TaskExit::Completed(()))); // untouched
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap(); // a task cancelled alone is not a failure of the nursery
    /// # });
    /// ```
    #[track_caller]
    pub fn cancel(&self) -> bool {
        self.member
            .exit()
            .scope
            .cancel(None::<()>, Location::caller())
    }

    /// Cancels this task alone with an [`Explicit`](crate::Explicit) cause carrying `tag`; see
    /// [`cancel`](Self::cancel).
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use std::time::Duration;
    /// use wherefore::{Nursery, TaskExit};
    /// wherefore::nursery(async |n: Nursery<'_, wherefore::Cancelled>| {
    ///     let mut upload = n.spawn_named("upload", wherefore::sleep(Duration::from_secs(60))).unwrap();
    ///     upload.cancel_with("user pressed stop");
    ///     let exit = upload.join().await?;
    ///     assert!(exit.to_string().starts_with("cancelled: explicit (\"user pressed stop\")"));
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn cancel_with<Tag>(&self, tag: Tag) -> bool
    where
        Tag: fmt::Debug + Send + Sync + 'static,
    {
        self.member
            .exit()
            .scope
            .cancel(Some(tag), Location::caller())
    }

    /// Why the task is, or was, cancelled: the cause of its own scope (its own cancel request,
    /// or its nursery's cancellation reaching it), or, once it ended cancelled, the cause it
    /// ended with. `None` if it never was.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// wherefore::nursery(async |n: wherefore::Nursery<'_, wherefore::Cancelled>| {
    ///     let child = n.spawn(wherefore::sleep(std::time::Duration::from_secs(60))).unwrap();
    ///     assert!(child.cause().is_none());
    ///     child.cancel_with("enough");
    ///     assert!(child.cause().unwrap().to_string().starts_with("explicit (\"enough\") at "));
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn cause(&self) -> Option<Cause> {
        let exit = self.member.exit();
        exit.scope.cause().or_else(|| match exit.summary() {
            Some(TaskExit::Cancelled(cause)) => Some(cause),
            _ => None,
        })
    }

    /// A handle to the task's own scope, a child of its nursery's: cancel the task from
    /// anywhere (it is `Send + Sync + Clone` and `'static`), give it a deadline, read its cause.
    ///
    /// Asking for it records the task's scope if it was not yet (see DESIGN.md, "Members and
    /// their handles"). For a task that has ended without ever needing its scope, the handle is
    /// that of a scope that has exited uncancelled: requests through it have no effect (S15),
    /// and [`cause`](Self::cause) tells how the task ended.
    ///
    /// ```
    /// # wherefore::testing::block_on(async {
    /// use std::time::Duration;
    /// use wherefore::{Nursery, TaskExit};
    /// wherefore::nursery(async |n: Nursery<'_, wherefore::Cancelled>| {
    ///     let mut poll = n.spawn_named("poll", wherefore::sleep(Duration::from_secs(60))).unwrap();
    ///     let scope = poll.cancel_handle();
    ///     assert_eq!(scope.scope().name(), Some("poll")); // named as the task
    ///     scope.set_timeout(Duration::from_secs(5));
    ///     let exit = poll.join().await?;
    ///     assert!(matches!(exit, TaskExit::Cancelled(cause) if cause.kind() == "timeout"));
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # });
    /// ```
    pub fn cancel_handle(&self) -> CancelHandle {
        let scope = &self.member.exit().scope;
        let node = scope.record_from_outside().unwrap_or_else(|| {
            let node = ScopeNode::for_member(scope.task.name.clone(), scope.home());
            node.exit();
            node
        });
        CancelHandle::from_node(node)
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("task", self.member.exit().task())
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<T> fmt::Display for JoinHandle<T> {
    /// The task and whether it has finished: `task "fetch" (running)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.is_finished() {
            "finished"
        } else {
            "running"
        };
        write!(f, "{} ({state})", self.member.exit().task())
    }
}

/// Future returned by [`JoinHandle::join`].
///
/// ```
/// # wherefore::testing::block_on(async {
/// wherefore::nursery(async |n: wherefore::Nursery<'_, wherefore::Cancelled>| {
///     let mut child = n.spawn(async { Ok(1) }).unwrap();
///     let join: wherefore::Join<'_, u8> = child.join();
///     assert!(join.await?.completed().is_some());
///     Ok(())
/// })
/// .await
/// .unwrap();
/// # });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Join<'a, T> {
    member: &'a ExitRef<T>,
    wait: CancelWait,
}

impl<T> fmt::Debug for Join<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Join")
            .field("task", self.member.exit().task())
            .finish_non_exhaustive()
    }
}

impl<T> Future for Join<'_, T> {
    type Output = Result<TaskExit<T>, Cancelled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(own) = self.wait.poll(cx, "join", None) {
            return Poll::Ready(Err(own));
        }
        match self.member.exit().take_or_wait(Some(cx.waker())) {
            Some(taken) => Poll::Ready(Ok(taken)),
            None => parked(Poll::Pending),
        }
    }
}

/// How a member ended, as the nursery needs to know it.
pub(crate) enum End<E> {
    Completed,
    Cancelled,
    Failed(E),
    Panicked(Box<dyn Any + Send>),
}

/// What a member's wrapper yields to the nursery when it ends.
pub(crate) struct Ended<E> {
    pub(crate) task: TaskInfo,
    pub(crate) end: End<E>,
}

/// Polls a member's future once as the task `task` (catching a panic), and on completion
/// classifies how it ended: the exit for its handle and the end for its nursery or group.
///
/// The member's home scope is the scope being polled: nurseries and groups poll their members
/// inside their own scope.
pub(crate) fn poll_member<F, T, E>(
    task: TaskId,
    future: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<(TaskExit<T>, End<E>)>
where
    F: Future<Output = Result<T, E>> + ?Sized,
    E: CancelError + fmt::Display,
{
    let _task = context::enter_task(task);
    // What the poll returns is written here rather than returned through `catch_unwind`, whose
    // frames in a debug build would each keep a copy: nested nurseries recurse through them.
    let mut polled = Poll::Pending;
    let caught = catch_unwind(AssertUnwindSafe(|| polled = future.poll(cx)));
    member_polled(polled, caught)
}

/// How a member's poll ended: still running, ended with its result, or panicked (`caught`).
#[cfg_attr(debug_assertions, inline(never))] // out of the frame nested nurseries recurse through
#[cfg_attr(not(debug_assertions), inline)]
fn member_polled<T, E>(
    polled: Poll<Result<T, E>>,
    caught: Result<(), Box<dyn Any + Send>>,
) -> Poll<(TaskExit<T>, End<E>)>
where
    E: CancelError + fmt::Display,
{
    Poll::Ready(match caught {
        Ok(()) => match polled {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => ended_with(result),
        },
        Err(payload) => panicked(payload),
    })
}

/// How a member ended that panicked with `payload`.
pub(crate) fn panicked<T, E>(payload: Box<dyn Any + Send>) -> (TaskExit<T>, End<E>) {
    let message = panic_message(payload.as_ref());
    (TaskExit::Panicked { message }, End::Panicked(payload))
}

/// How a member ended with `result`, classified against the scope being polled (its home).
pub(crate) fn ended_with<T, E>(result: Result<T, E>) -> (TaskExit<T>, End<E>)
where
    E: CancelError + fmt::Display,
{
    match result {
        Ok(value) => (TaskExit::Completed(value), End::Completed),
        Err(e) => context::with_current(|home| ended_in(home, Err(e))),
    }
}

/// How a member ended with `result`, classified against the scopes it ran in, innermost first:
/// a cancellation of any of them is the member's (none: nothing to be cancelled by). A member
/// with its own scope ran in it once recorded, and in its home before (`member_scope.rs`).
pub(crate) fn ended_in<'a, T, E>(
    scopes: impl IntoIterator<Item = &'a ScopeNode>,
    result: Result<T, E>,
) -> (TaskExit<T>, End<E>)
where
    E: CancelError + fmt::Display,
{
    let mut classified = match result {
        Ok(value) => return (TaskExit::Completed(value), End::Completed),
        Err(e) => Err(e),
    };
    for scope in scopes {
        classified = match classified {
            Err(e) => classify(scope, e),
            cancelled => cancelled,
        };
    }
    match classified {
        Ok(cancelled) => (TaskExit::Cancelled(cancelled.cause), End::Cancelled),
        Err(e) => (
            TaskExit::Failed {
                message: e.to_string(),
            },
            End::Failed(e),
        ),
    }
}

/// How a member blocked in a foreign future ends when its nursery's cancellation reaches it
/// (S19): its future dropped by `drop_future`, as if its cancellation point had failed with
/// `cancelled`; or, if that drop panicked, as that panic (caught: the nursery goes on).
pub(crate) fn ended_reached<T, E>(
    drop_future: impl FnOnce(),
    cancelled: Cancelled,
) -> (TaskExit<T>, End<E>)
where
    E: CancelError + fmt::Display,
{
    match catch_unwind(AssertUnwindSafe(drop_future)) {
        Ok(()) => ended_with(Err(E::from(cancelled))),
        Err(payload) => panicked(payload),
    }
}

/// Reports a new member to a runtime: its register of live tasks and its hook.
pub(crate) fn report_spawn(env: &Env, task: &TaskInfo, home: &ScopeInfo) {
    env.task_started(task, home);
    env.emit_detail(|| Event::TaskSpawned {
        task: task.clone(),
        scope: home.clone(),
    });
}

/// Reports a member's end to the runtime: its register of live tasks and its hook.
pub(crate) fn report_exit<T>(task: &TaskInfo, exit: &TaskExit<T>) {
    context::with_env(|env| {
        env.task_ended(task.id);
        let event = || Event::TaskExited {
            task: task.clone(),
            exit: exit.summary(),
        };
        // At the level `tracing` reports it: a completed member is plumbing, a cancelled one a
        // cancellation, the others (failed, panicked, dropped) always.
        match exit {
            TaskExit::Completed(_) => env.emit_detail(event),
            TaskExit::Cancelled(_) => env.emit_cancellation(event),
            _ => env.emit(event),
        }
    });
}

/// Splits a member's error into "it ended because the nursery's scope is cancelled" (S3: not a
/// failure) and a failure. A cancellation that does not come from inside the nursery, or arrives
/// while the nursery is not cancelled, escaped from elsewhere and is a failure (S16).
///
/// "While the nursery is cancelled" is read when the cancellation was raised, not when the
/// member ends: a cancellation whose root cause the nursery or a scope around it holds was
/// raised while the nursery was cancelled (only a cancelled scope hands its cause down), and
/// stays the nursery's even if a shield raised above lifted it before the member ended (Trio
/// agrees; found by the differential tests, `tests/differential_trio.rs`).
pub(crate) fn classify<E: CancelError>(nursery: &ScopeNode, e: E) -> Result<Cancelled, E> {
    match e.as_cancelled() {
        Some(c)
            if c.raised_in.is_within(nursery)
                && (nursery.is_cancelled() || nursery.is_within(&root_holder(c))) =>
        {
            Ok(c.clone())
        }
        _ => Err(e),
    }
}

/// The scope whose own cause is the root of `cancelled`'s chain: where it was raised, or the
/// scope its `Parent` links lead to (a member's own scope that only passed its nursery's cause
/// on names the scope above it). A loop: one lock at a time.
fn root_holder(cancelled: &Cancelled) -> ScopeNode {
    let mut holder = cancelled.raised_in.visible();
    let mut cause = cancelled.cause.clone();
    while let Cause::Parent(link) = cause {
        holder = link.node.visible();
        cause = link.node.cause_for_children();
    }
    holder
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
