//! Observing what happens: the [`Event`]s a runtime reports to a [`Hook`].
//!
//! The journal of [`testing`](crate::testing) is one consumer; a service can install its own hook
//! on [`Runtime`](crate::Runtime) to log "who cancelled whom" in production. With no hook
//! installed nothing is built: each emission point is one branch on an `Option`.

use std::fmt;
use std::panic::Location;
use std::time::Duration;

use crate::cause::Cause;
use crate::identity::{ScopeInfo, TaskId, TaskInfo};
use crate::task::TaskExit;

/// Something that happened in a runtime, as a hook sees it. Cheap to clone.
///
/// `Display` renders one line in the journal's format (without the time):
///
/// ```
/// # use wherefore::event::Event;
/// # let scope = wherefore::Scope::named("request").handle().scope();
/// let event = Event::ScopeExited { scope };
/// assert_eq!(event.to_string(), "leave    scope \"request\"");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// A scope was entered (first polled), as a child of `parent`.
    ScopeEntered {
        /// The scope.
        scope: ScopeInfo,
        /// Its parent, unless it is a root.
        parent: Option<ScopeInfo>,
        /// Whether it was shielded on entry.
        shielded: bool,
    },
    /// A scope finished or was dropped.
    ScopeExited {
        /// The scope.
        scope: ScopeInfo,
    },
    /// A member was spawned into a nursery.
    TaskSpawned {
        /// The member.
        task: TaskInfo,
        /// The nursery's scope.
        scope: ScopeInfo,
    },
    /// A member ended.
    TaskExited {
        /// The member.
        task: TaskInfo,
        /// How it ended (the value itself stays with its handle).
        exit: TaskExit<()>,
    },
    /// A cancel request reached a scope: explicit, a deadline, or a nursery's failure.
    CancelRequested {
        /// The scope asked to cancel.
        scope: ScopeInfo,
        /// The cause the request carried.
        cause: Cause,
        /// Whether it took effect, and if not, why.
        outcome: RequestOutcome,
    },
    /// A task reached a cancellation point while its scope was cancelled, and it failed there.
    CancellationObserved {
        /// The task, if the point was reached inside one.
        task: Option<TaskId>,
        /// The innermost cancelled scope around the point.
        scope: ScopeInfo,
        /// The cause the point failed with.
        cause: Cause,
        /// Which kind of point: `checkpoint`, `check_cancelled`, `cancelled`, `sleep`, `guard`,
        /// `join`.
        point: &'static str,
    },
    /// A scope's shield was raised or lowered while it existed.
    ShieldChanged {
        /// The scope.
        scope: ScopeInfo,
        /// The new state.
        shielded: bool,
    },
    /// A scope's deadline was set, moved or cleared.
    DeadlineChanged {
        /// The scope.
        scope: ScopeInfo,
        /// The new deadline as time since the runtime started, `None` if cleared (or not yet
        /// known: a relative timeout before the scope was entered).
        deadline: Option<Duration>,
        /// Where it was set.
        set_at: &'static Location<'static>,
    },
    /// The virtual clock jumped forward because every task was blocked.
    ClockAdvanced {
        /// The new time since the runtime started.
        to: Duration,
    },
    /// A persistent group's failure handler panicked on a member's failure; the panic was
    /// caught, and the group goes on.
    HandlerPanicked {
        /// The group.
        group: ScopeInfo,
        /// The member whose failure the handler was given.
        task: TaskInfo,
        /// That failure, as text (it names the member).
        failure: String,
        /// The handler's panic message.
        panic: String,
    },
    /// A persistent group closed to spawns because the last of its handles was dropped: nobody
    /// could spawn into it or shut it down any more, so it drains (its members run to their
    /// end).
    GroupAbandoned {
        /// The group.
        group: ScopeInfo,
    },
    /// A persistent group is done: what its shutdown report says (see
    /// [`ShutdownReport`](crate::ShutdownReport)).
    GroupFinished {
        /// The group.
        group: ScopeInfo,
        /// Its shutdown's cause, if it was shut down (not drained).
        cause: Option<Cause>,
        /// Members that completed, over the group's life.
        finished: usize,
        /// Members that failed (an error or a panic).
        failed: usize,
        /// Members that ended because they were cancelled.
        cancelled: usize,
        /// Members still running at the end of the grace period, dropped there.
        dropped: Vec<TaskInfo>,
    },
}

/// What became of a cancel request.
///
/// ```
/// let outcome = wherefore::event::RequestOutcome::TookEffect;
/// assert_eq!(outcome.to_string(), "took effect");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum RequestOutcome {
    /// It made the scope effectively cancelled.
    TookEffect,
    /// The scope was already effectively cancelled, by this cause (first cause wins).
    LostTo(Cause),
    /// The scope had exited; the request had no effect.
    ScopeExited,
}

impl fmt::Display for RequestOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestOutcome::TookEffect => f.write_str("took effect"),
            RequestOutcome::LostTo(cause) => write!(f, "lost to: {cause}"),
            RequestOutcome::ScopeExited => f.write_str("no effect: the scope had exited"),
        }
    }
}

/// Formats a time since the start of a runtime as `t=S.mmm`.
pub(crate) struct At(pub(crate) Duration);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t={}.{:03}", self.0.as_secs(), self.0.subsec_millis())
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::ScopeEntered {
                scope,
                parent,
                shielded,
            } => {
                write!(f, "enter    {scope}")?;
                if let Some(parent) = parent {
                    write!(f, " in {parent}")?;
                }
                if *shielded {
                    f.write_str(" (shielded)")?;
                }
                Ok(())
            }
            Event::ScopeExited { scope } => write!(f, "leave    {scope}"),
            Event::TaskSpawned { task, scope } => write!(f, "spawn    {task} in {scope}"),
            Event::TaskExited { task, exit } => write!(f, "exit     {task}: {exit}"),
            Event::CancelRequested {
                scope,
                cause,
                outcome,
            } => write!(f, "cancel   {scope}: {cause} [{outcome}]"),
            Event::CancellationObserved {
                task,
                scope,
                cause,
                point,
            } => {
                match task {
                    Some(task) => write!(f, "observe  {task}")?,
                    None => f.write_str("observe  (no task)")?,
                }
                write!(f, " at {point} in {scope}: {cause}")
            }
            Event::ShieldChanged { scope, shielded } => {
                let what = if *shielded { "raised" } else { "lowered" };
                write!(f, "shield   {scope} {what}")
            }
            Event::DeadlineChanged {
                scope,
                deadline,
                set_at,
            } => match deadline {
                Some(at) => write!(f, "deadline {scope} at {} (set at {set_at})", At(*at)),
                None => write!(f, "deadline {scope} cleared (at {set_at})"),
            },
            Event::ClockAdvanced { to } => write!(f, "clock    {}", At(*to)),
            Event::HandlerPanicked {
                group,
                failure,
                panic,
                ..
            } => write!(
                f,
                "handler  {group}: the failure handler panicked ({panic}) on: {failure}"
            ),
            Event::GroupAbandoned { group } => {
                write!(f, "drain    {group}: its last handle was dropped")
            }
            Event::GroupFinished {
                group,
                cause,
                finished,
                failed,
                cancelled,
                dropped,
            } => {
                write!(f, "done     {group}")?;
                if let Some(cause) = cause {
                    write!(f, " (shut down: {cause})")?;
                }
                write!(
                    f,
                    ": {finished} finished, {failed} failed, {cancelled} cancelled, {} dropped",
                    dropped.len()
                )?;
                for (i, task) in dropped.iter().enumerate() {
                    f.write_str(if i == 0 { " (" } else { ", " })?;
                    write!(f, "{task}")?;
                }
                if !dropped.is_empty() {
                    f.write_str(")")?;
                }
                Ok(())
            }
        }
    }
}

/// Receives every [`Event`] of the runtime it is installed on, with the time since that runtime
/// started (virtual time under [`testing`](crate::testing)).
///
/// Called synchronously where the event happens, possibly from another thread (a cancel through
/// a [`CancelHandle`](crate::CancelHandle)); keep it short and never block in it. It must not
/// call back into `wherefore` (for example cancel a scope), which could re-enter a scope's lock.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use wherefore::event::{Event, Hook};
///
/// #[derive(Default)]
/// struct CountCancels(Mutex<u32>);
/// impl Hook for CountCancels {
///     fn on_event(&self, _at: Duration, event: &Event) {
///         if let Event::CancelRequested { .. } = event {
///             *self.0.lock().unwrap() += 1;
///         }
///     }
/// }
///
/// let hook = Arc::new(CountCancels::default());
/// wherefore::Runtime::new().with_hook(hook.clone()).block_on(async {
///     let scope = wherefore::Scope::new();
///     scope.handle().cancel();
///     let _ = scope.run(wherefore::checkpoint()).await;
/// });
/// assert_eq!(*hook.0.lock().unwrap(), 1);
/// ```
pub trait Hook: Send + Sync + 'static {
    /// Called for each event, in the order they happen on each thread.
    fn on_event(&self, at: Duration, event: &Event);
}
