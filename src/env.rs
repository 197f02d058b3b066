//! The environment a runtime gives everything it runs: its clock, its hook, its numbering of
//! scopes and tasks, and (under `testing`) its register of live tasks for hang reports.
//!
//! A runtime installs its `Env` as the current one on its thread for the length of every poll;
//! scopes created or entered then keep a reference to it, so a cancel through a handle on any
//! other thread still reports to the right hook and reads the right clock.

use std::collections::{BTreeMap, VecDeque};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::event::{Event, Hook};
use crate::identity::{ScopeInfo, TaskId, TaskInfo};
use crate::sync::{self, Arc, Frozen, IdCounter, Mutex};
use crate::trace::Detail;

pub(crate) struct Env {
    clock: Arc<Clock>,
    /// `clock.now()` when the runtime started: the zero of every reported time.
    start: Instant,
    hook: Option<Frozen<dyn Hook>>,
    /// Numbers scopes and tasks from 1 in creation order, so that ids are the same on every run
    /// of the same program (and in the journal).
    ids: IdCounter,
    /// This environment's number among all made by the process (from 1; 0 once they no longer
    /// fit): what a scope's record keeps of the environment it entered in, to be compared
    /// without a lock (`scope_tree/unrecorded.rs`).
    serial: u32,
    /// Live tasks and where they are blocked, kept only when hang reports are wanted.
    tasks: Option<Mutex<BTreeMap<TaskId, LiveTask>>>,
    /// Tasks waiting until every other task is blocked (`testing::wait_all_tasks_blocked`).
    idle: Mutex<IdleWaiters>,
    /// The tokio task that fires this environment's timers, aborted when the environment goes.
    #[cfg(all(feature = "tokio", not(wherefore_loom)))]
    pub(crate) timer_driver: Mutex<Option<::tokio::task::AbortHandle>>,
}

/// The tasks waiting until every other task of the runtime is blocked
/// (`testing::wait_all_tasks_blocked`), in the order they began to wait, each under a ticket of
/// its own. The executor's loop lets the first go whenever it finds nothing to poll, before it
/// moves time on or sleeps (`runtime::drive`); a waiter whose ticket is no longer here was let
/// go.
#[derive(Debug, Default)]
struct IdleWaiters {
    next_ticket: u64,
    waiting: VecDeque<(u64, Waker)>,
}

/// What a task waiting for the runtime to be idle learns when it asks again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdleWait {
    /// Waiting under this ticket: its waker is woken when it is let go.
    Waiting(u64),
    /// Let go: every other task was blocked.
    Released,
}

/// What a hang report says about one live task.
#[derive(Clone, Debug)]
pub(crate) struct LiveTask {
    pub(crate) info: TaskInfo,
    /// The nursery scope it was spawned into.
    pub(crate) home: ScopeInfo,
    /// The cancellation point (or guarded foreign future) it last returned `Pending` from, and
    /// the innermost scope it was in there.
    pub(crate) blocked_at: Option<(BlockedAt, ScopeInfo, Shielded)>,
}

/// Whether the innermost scope a task was blocked in was shielded then.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shielded(pub(crate) bool);

/// A cancellation point, with a detail such as the type of a guarded foreign future.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockedAt {
    pub(crate) point: &'static str,
    pub(crate) detail: Option<&'static str>,
}

impl std::fmt::Display for BlockedAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.detail {
            Some(detail) => write!(f, "{}({detail})", self.point),
            None => f.write_str(self.point),
        }
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("clock", &self.clock)
            .field("hook", &self.hook.is_some())
            .finish_non_exhaustive()
    }
}

impl Env {
    pub(crate) fn new(
        clock: Arc<Clock>,
        hook: Option<Frozen<dyn Hook>>,
        track_tasks: bool,
    ) -> Arc<Env> {
        Arc::new(Env {
            start: clock.now(),
            clock,
            hook,
            ids: IdCounter::new(),
            serial: u32::try_from(sync::next_env_serial()).unwrap_or(0),
            tasks: track_tasks.then(|| Mutex::new(BTreeMap::new())),
            idle: Mutex::new(IdleWaiters::default()),
            #[cfg(all(feature = "tokio", not(wherefore_loom)))]
            timer_driver: Mutex::new(None),
        })
    }

    /// The environment for code running outside any `wherefore` runtime: with the `tokio`
    /// feature, on a tokio runtime, a fresh one on tokio's clock; otherwise none.
    pub(crate) fn ambient() -> Option<Arc<Env>> {
        #[cfg(all(feature = "tokio", not(wherefore_loom)))]
        return crate::tokio::ambient_env();
        #[cfg(not(all(feature = "tokio", not(wherefore_loom))))]
        None
    }

    pub(crate) fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    /// See the field: 0 when it has none.
    pub(crate) fn serial(&self) -> u32 {
        self.serial
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.ids.next()
    }

    /// Time since the runtime started.
    pub(crate) fn elapsed(&self) -> Duration {
        self.clock.now().saturating_duration_since(self.start)
    }

    pub(crate) fn since_start(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.start)
    }

    /// Reports the event built by `event` to the hook, if one is installed; builds nothing
    /// otherwise.
    /// With the feature `tracing`, also to `tracing` when a subscriber listens (`trace.rs`).
    #[inline]
    pub(crate) fn emit(&self, event: impl FnOnce() -> Event) {
        #[cfg(feature = "tracing")]
        if crate::trace::listening() {
            let (at, event) = (self.elapsed(), event());
            crate::trace::event(at, &event);
            if let Some(hook) = &self.hook {
                hook.on_event(at, &event);
            }
            return;
        }
        if let Some(hook) = &self.hook {
            hook.on_event(self.elapsed(), &event());
        }
    }

    /// Whether a hook is installed. A hooked runtime records every scope, so that its events
    /// show every scope entered and left (`scope_tree/unrecorded.rs`); `tracing` does not make a
    /// runtime hooked: unrecorded timeouts stay unrecorded under a subscriber.
    pub(crate) fn has_hook(&self) -> bool {
        self.hook.is_some()
    }

    /// Whether an event of wherefore's plumbing (`TRACE` for `tracing`: scopes entered and
    /// left, spawns, shields and deadlines moved, the clock) is delivered anywhere: to a hook,
    /// or to a `tracing` subscriber that takes `TRACE`. Such events are built only then
    /// ([`emit_detail`](Self::emit_detail)).
    #[inline]
    pub(crate) fn is_observed(&self) -> bool {
        self.observed_at(Detail::Trace)
    }

    /// Whether an event as detailed as `detail` reaches anyone: a hook (which takes every
    /// event), or a `tracing` subscriber that takes that level.
    #[inline]
    fn observed_at(&self, detail: Detail) -> bool {
        self.hook.is_some() || crate::trace::wanted(detail)
    }

    /// Whether an error reported as an event (a failure handler's panic) reaches anyone: a hook,
    /// or a `tracing` subscriber that takes wherefore's `ERROR`s. Its reporter writes it to
    /// stderr otherwise.
    pub(crate) fn reports_errors(&self) -> bool {
        #[cfg(feature = "tracing")]
        if crate::trace::errors_listened() {
            return true;
        }
        self.hook.is_some()
    }

    /// [`emit`](Self::emit) for an event of the plumbing: built only if
    /// [`is_observed`](Self::is_observed).
    #[inline]
    pub(crate) fn emit_detail(&self, event: impl FnOnce() -> Event) {
        if self.is_observed() {
            self.emit(event);
        }
    }

    /// [`emit`](Self::emit) for a cancellation (`DEBUG` for `tracing`: requested, observed, a
    /// member that ended cancelled): built only for a hook or a subscriber that takes `DEBUG`.
    #[inline]
    pub(crate) fn emit_cancellation(&self, event: impl FnOnce() -> Event) {
        if self.observed_at(Detail::Debug) {
            self.emit(event);
        }
    }

    pub(crate) fn tracks_tasks(&self) -> bool {
        self.tasks.is_some()
    }

    pub(crate) fn task_started(&self, info: &TaskInfo, home: &ScopeInfo) {
        if let Some(tasks) = &self.tasks {
            let live = LiveTask {
                info: info.clone(),
                home: home.clone(),
                blocked_at: None,
            };
            sync::lock(tasks).insert(info.id, live);
        }
    }

    pub(crate) fn task_ended(&self, id: TaskId) {
        if let Some(tasks) = &self.tasks {
            sync::lock(tasks).remove(&id);
        }
    }

    pub(crate) fn task_blocked(
        &self,
        id: TaskId,
        at: BlockedAt,
        scope: &ScopeInfo,
        shielded: bool,
    ) {
        if let Some(tasks) = &self.tasks
            && let Some(task) = sync::lock(tasks).get_mut(&id)
        {
            task.blocked_at = Some((at, scope.clone(), Shielded(shielded)));
        }
    }

    /// Whether an executor of this crate drives this runtime (`run`, `testing`), and so can
    /// tell when all of its tasks are blocked; tokio's clock is driven by tokio's.
    pub(crate) fn has_executor(&self) -> bool {
        !self.clock.is_tokio()
    }

    /// Waits (or keeps waiting, under `ticket`, with `waker`) until the executor finds every
    /// task blocked and lets this waiter go.
    pub(crate) fn wait_idle(&self, ticket: Option<u64>, waker: &Waker) -> IdleWait {
        let mut idle = sync::lock(&self.idle);
        let Some(ticket) = ticket else {
            let ticket = idle.next_ticket;
            idle.next_ticket += 1;
            idle.waiting.push_back((ticket, waker.clone()));
            return IdleWait::Waiting(ticket);
        };
        match idle.waiting.iter_mut().find(|(t, _)| *t == ticket) {
            Some((_, registered)) => {
                registered.clone_from(waker); // skips an equivalent waker
                IdleWait::Waiting(ticket)
            }
            None => IdleWait::Released,
        }
    }

    /// Stops waiting under `ticket` (a waiter cancelled or dropped before it was let go).
    pub(crate) fn leave_idle(&self, ticket: u64) {
        let mut idle = sync::lock(&self.idle);
        let left = idle.waiting.iter().position(|(t, _)| *t == ticket);
        let removed = left.and_then(|at| idle.waiting.remove(at));
        drop(idle);
        drop(removed); // its waker is dropped outside the lock
    }

    /// Called by the executor when it has nothing to poll: lets the first idle waiter go.
    /// Returns whether there was one.
    pub(crate) fn release_idle(&self) -> bool {
        let released = sync::lock(&self.idle).waiting.pop_front();
        match released {
            Some((_, waker)) => {
                waker.wake();
                true
            }
            None => false,
        }
    }

    pub(crate) fn live_tasks(&self) -> Vec<LiveTask> {
        match &self.tasks {
            Some(tasks) => sync::lock(tasks).values().cloned().collect(),
            None => Vec::new(),
        }
    }
}

#[cfg(all(feature = "tokio", not(wherefore_loom)))]
impl Drop for Env {
    fn drop(&mut self) {
        if let Some(driver) = sync::get_mut(&mut self.timer_driver).take() {
            driver.abort();
        }
    }
}
