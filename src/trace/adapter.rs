//! The `tracing` side of `trace.rs`: events, fields, levels and spans.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tracing::Span;
use tracing::level_filters::LevelFilter;

use crate::cause::Cause;
use crate::event::{Event, RequestOutcome};
use crate::identity::{ScopeInfo, TaskInfo};
use crate::task::TaskExit;

/// Whether a subscriber may want anything: nothing is built for `tracing` otherwise.
#[inline]
pub(crate) fn listening() -> bool {
    listening_at(LevelFilter::ERROR)
}

/// Whether a subscriber may want events at `level`.
#[inline]
pub(crate) fn listening_at(level: LevelFilter) -> bool {
    LevelFilter::current() >= level
}

/// Whether a subscriber takes wherefore's `ERROR` events.
pub(crate) fn errors_listened() -> bool {
    tracing::enabled!(target: "wherefore", tracing::Level::ERROR)
}

/// The fields every event about a cause carries.
struct CauseFields {
    /// This link's kind ([`Cause::kind`]): `explicit`, `timeout`, `sibling-error`,
    /// `sibling-panic` or `parent`.
    kind: &'static str,
    /// The root cause's kind: what started the chain.
    root: &'static str,
    /// The one-line chain, as `Display` writes it.
    text: String,
    /// Where the root cause was made: the `cancel` call, the deadline's setting, the failing
    /// task's spawn.
    location: String,
    /// The root's tag (`Debug`), for an explicit request that carried one.
    tag: Option<String>,
}

impl CauseFields {
    fn of(cause: &Cause) -> Self {
        let root = cause.root();
        let location = match &root {
            Cause::Explicit(explicit) => explicit.location().to_string(),
            Cause::Timeout(timeout) => timeout.set_at().to_string(),
            Cause::SiblingError(failure) | Cause::SiblingPanic(failure) => {
                failure.task().spawned_at().to_string()
            }
            Cause::Parent(_) => String::new(), // a root is never a link
        };
        let tag = match &root {
            Cause::Explicit(explicit) => explicit.tag().map(|tag| format!("{tag:?}")),
            _ => None,
        };
        CauseFields {
            kind: cause.kind(),
            root: root.kind(),
            text: cause.to_string(),
            location,
            tag,
        }
    }
}

/// One `tracing` event at `level` (a constant, as tracing wants it) with the fields of `cause`
/// and the extra fields given.
macro_rules! cause_event {
    ($level:expr, $cause:expr, $message:literal, $($field:tt)*) => {{
        // The fields are text made for the event: not made for a filter that rejects it.
        if !tracing::enabled!(target: "wherefore", $level) {
            return;
        }
        let c = CauseFields::of($cause);
        tracing::event!(
            target: "wherefore",
            $level,
            $($field)*
            cause.kind = c.kind,
            cause.root = c.root,
            cause = %c.text,
            cause.location = %c.location,
            tag = c.tag.as_deref(),
            $message
        );
    }};
}

/// Reports `event`, which happened `at` (since its runtime started), to `tracing`.
pub(crate) fn event(at: std::time::Duration, event: &Event) {
    let at = at.as_secs_f64();
    match event {
        Event::ScopeEntered {
            scope,
            parent,
            shielded,
        } => tracing::trace!(
            target: "wherefore",
            at,
            scope = %scope,
            parent = parent.as_ref().map(tracing::field::display),
            shielded,
            "scope entered"
        ),
        Event::ScopeExited { scope } => {
            tracing::trace!(target: "wherefore", at, scope = %scope, "scope exited")
        }
        Event::TaskSpawned { task, scope } => tracing::trace!(
            target: "wherefore",
            at,
            task = %task,
            spawned_at = %task.spawned_at(),
            scope = %scope,
            "task spawned"
        ),
        Event::TaskExited { task, exit } => task_exited(at, task, exit),
        Event::CancelRequested {
            scope,
            cause,
            outcome,
        } => match outcome {
            RequestOutcome::TookEffect if cause.is_timeout() => cause_event!(
                tracing::Level::DEBUG, cause, "deadline fired", at, scope = %scope,
            ),
            RequestOutcome::TookEffect => cause_event!(
                tracing::Level::DEBUG, cause, "cancel requested", at, scope = %scope,
            ),
            lost => cause_event!(
                tracing::Level::TRACE, cause, "cancel request had no effect",
                at, scope = %scope, outcome = %lost,
            ),
        },
        Event::CancellationObserved {
            task,
            scope,
            cause,
            point,
        } => cause_event!(
            tracing::Level::DEBUG, cause, "cancellation observed",
            at, task = task.map(tracing::field::display), scope = %scope, point,
        ),
        Event::ShieldChanged { scope, shielded } => tracing::trace!(
            target: "wherefore", at, scope = %scope, shielded, "shield changed"
        ),
        Event::DeadlineChanged {
            scope,
            deadline,
            set_at,
        } => tracing::trace!(
            target: "wherefore",
            at,
            scope = %scope,
            deadline = deadline.map(|d| d.as_secs_f64()),
            set_at = %set_at,
            "deadline changed"
        ),
        Event::ClockAdvanced { to } => {
            tracing::trace!(target: "wherefore", at, to = to.as_secs_f64(), "clock advanced")
        }
        Event::HandlerPanicked {
            group,
            task,
            failure,
            panic,
        } => tracing::error!(
            target: "wherefore",
            at,
            group = %group,
            task = %task,
            failure = %failure,
            panic = %panic,
            "failure handler panicked"
        ),
        Event::GroupAbandoned { group } => tracing::warn!(
            target: "wherefore",
            at,
            group = %group,
            "group abandoned: its last handle was dropped; it drains"
        ),
        Event::GroupFinished {
            group,
            cause,
            finished,
            failed,
            cancelled,
            dropped,
        } => tracing::info!(
            target: "wherefore",
            at,
            group = %group,
            cause = cause.as_ref().map(tracing::field::display),
            finished,
            failed,
            cancelled,
            dropped = dropped.len(),
            dropped_tasks = %Names(dropped),
            "group finished"
        ),
    }
}

/// A member's exit, at the level its kind deserves.
fn task_exited(at: f64, task: &TaskInfo, exit: &TaskExit<()>) {
    let name = tracing::field::display(task);
    match exit {
        TaskExit::Completed(()) => {
            tracing::trace!(target: "wherefore", at, task = name, exit = "completed", "task exited")
        }
        TaskExit::Cancelled(cause) => cause_event!(
            tracing::Level::DEBUG,
            cause,
            "task exited",
            at,
            task = name,
            exit = "cancelled",
        ),
        TaskExit::Failed { message } => tracing::warn!(
            target: "wherefore", at, task = name, exit = "failed", error = %message, "task exited"
        ),
        TaskExit::Panicked { message } => tracing::error!(
            target: "wherefore", at, task = name, exit = "panicked", panic = %message,
            "task exited"
        ),
        TaskExit::Dropped | TaskExit::Joined => tracing::warn!(
            target: "wherefore", at, task = name, exit = "dropped", "task exited"
        ),
    }
}

/// Tasks by name: `task "upload", task#7`.
struct Names<'a>(&'a [TaskInfo]);

impl fmt::Display for Names<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, task) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{task}")?;
        }
        Ok(())
    }
}

pin_project_lite::pin_project! {
    /// A future in a `tracing` span: a nursery member's, entered around each of its polls. The
    /// span is made when the future is, as a child of the span current there (where it was
    /// spawned), and only if someone listens: otherwise this is one empty word around the
    /// future.
    #[derive(Debug)]
    pub(crate) struct Traced<F> {
        span: Option<Box<Span>>,
        #[pin]
        future: F,
    }
}

impl<F> Traced<F> {
    /// `future` in the span of the task `task`.
    pub(crate) fn task(task: &TaskInfo, future: F) -> Self {
        let span = listening().then(|| {
            tracing::debug_span!(
                target: "wherefore",
                "task",
                task = %task,
                task.id = task.id.0,
                spawned_at = %task.spawned_at(),
            )
        });
        Traced {
            span: enabled(span),
            future,
        }
    }
}

impl<F: Future> Future for Traced<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // `None`: nobody listened when it was made, so no span at all.
        let _entered = this.span.as_deref().map(Span::enter);
        this.future.poll(cx)
    }
}

/// The span of a named scope or nursery, made with it as a child of the span current there, if
/// someone listens. A scope future enters it in the steps of each of its polls (`body_poll.rs`),
/// rather than by a future around the body, which would be one more frame for every nested
/// scope; a nursery, around each of its polls, members and all.
#[derive(Debug)]
pub(crate) struct ScopeSpan(Option<Box<Span>>);

impl ScopeSpan {
    /// The span of `scope`; none for an unnamed one.
    pub(crate) fn new(scope: &ScopeInfo) -> Self {
        let span = (listening() && scope.name().is_some()).then(|| {
            tracing::debug_span!(
                target: "wherefore",
                "scope",
                scope = %scope,
                scope.id = scope.id.0,
            )
        });
        ScopeSpan(enabled(span))
    }

    /// Enters the span until the guard is dropped.
    #[inline]
    pub(crate) fn enter(&self) -> Option<tracing::span::Entered<'_>> {
        self.0.as_deref().map(Span::enter)
    }
}

/// `span`, boxed, unless no subscriber took it.
fn enabled(span: Option<Span>) -> Option<Box<Span>> {
    span.filter(|span| !span.is_disabled()).map(Box::new)
}
