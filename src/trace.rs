//! Feature `tracing`: what a runtime reports ([`Event`](crate::event::Event)), as `tracing`
//! events with the cause as structured fields, and nursery members and named scopes as spans.
//! Without the feature, only [`InSpan`], [`ScopeSpan`] and their constructors remain, and they
//! are the future itself and nothing: nothing is paid.
//!
//! Everything here is behind one cheap question, [`listening`]: whether any subscriber enables
//! any level at all (tracing's global maximum level, one relaxed load). When nobody listens no
//! event is built, no span is made, and a member keeps one empty word for its span.
//!
//! Levels, as a service author reads them: a cancellation (requested, observed, a member that
//! ended cancelled, a deadline firing) is `DEBUG`; a failure (a member's error, a member dropped
//! with its nursery or at the end of a group's grace) `WARN`; a panic (a member's, a failure
//! handler's) `ERROR`; a group's shutdown report `INFO`; the plumbing (scopes entered and left,
//! spawns, shields and deadlines moved, a member that completed, a cancel request that lost to an
//! earlier cause or found its scope exited, the virtual clock) `TRACE`. The target is
//! `wherefore` throughout.

#[cfg(feature = "tracing")]
mod adapter;

#[cfg(feature = "tracing")]
pub(crate) use adapter::{ScopeSpan, Traced as InSpan, errors_listened, event, listening};

/// How detailed an event is: what a `tracing` subscriber must take for it to be built.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Detail {
    /// The plumbing: scopes entered and left, spawns, shields and deadlines moved, the clock.
    Trace,
    /// A cancellation: requested, observed, a member that ended cancelled.
    Debug,
}

/// Whether a `tracing` subscriber takes events as detailed as `detail` (never without the
/// feature).
#[inline]
pub(crate) fn wanted(detail: Detail) -> bool {
    #[cfg(feature = "tracing")]
    {
        use tracing::level_filters::LevelFilter;
        adapter::listening_at(match detail {
            Detail::Trace => LevelFilter::TRACE,
            Detail::Debug => LevelFilter::DEBUG,
        })
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = detail;
        false
    }
}

/// A future in a span: [`adapter::Traced`] with the feature, the future itself without.
#[cfg(not(feature = "tracing"))]
pub(crate) type InSpan<F> = F;

#[cfg(not(feature = "tracing"))]
use crate::identity::ScopeInfo;
use crate::identity::TaskInfo;

/// `future`, in the span of the task `task` (feature `tracing`, while a subscriber listens).
#[inline]
pub(crate) fn in_task_span<F>(task: &TaskInfo, future: F) -> InSpan<F> {
    #[cfg(feature = "tracing")]
    return InSpan::task(task, future);
    #[cfg(not(feature = "tracing"))]
    {
        let _ = task;
        future
    }
}

/// The span of a named scope or nursery (feature `tracing`, while a subscriber listens):
/// nothing without the feature.
#[cfg(not(feature = "tracing"))]
#[derive(Debug)]
pub(crate) struct ScopeSpan;

#[cfg(not(feature = "tracing"))]
impl ScopeSpan {
    #[inline]
    pub(crate) fn new(scope: &ScopeInfo) -> Self {
        let _ = scope;
        ScopeSpan
    }

    /// Enters the span until the guard is dropped.
    #[inline]
    pub(crate) fn enter(&self) -> Option<SpanEntered<'_>> {
        None
    }
}

/// A span entered ([`ScopeSpan::enter`]) until it is dropped.
#[cfg(feature = "tracing")]
pub(crate) type SpanEntered<'a> = tracing::span::Entered<'a>;

/// A span entered ([`ScopeSpan::enter`]) until it is dropped: nothing without the feature.
#[cfg(not(feature = "tracing"))]
pub(crate) type SpanEntered<'a> = std::marker::PhantomData<&'a ()>;
