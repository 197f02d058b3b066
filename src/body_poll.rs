//! One poll of a scope future's body, taken apart around the body's own poll: what comes before
//! it ([`BodyPoll::begin`]) and after it ([`BodyPoll::end`]) runs in frames of its own, and the
//! scope future's poll keeps only the body's poll and this struct.
//!
//! Why: nested scopes recurse through their polls (a scope's body awaits the next scope), so
//! whatever a scope future's poll keeps on the stack is paid once per level. A debug build gives
//! every call's result and every temporary of a function its own slot for the whole frame, so a
//! poll that also builds cancellations, checks the runtime and decides absorption costs a
//! kilobyte a level, where the poll of a plain `async` block costs a fifth of that (issue 24,
//! item 7; DESIGN.md, "Stack"). The steps therefore go in this order, each a call that returns
//! before the next, with only the body's poll in the caller's own frame:
//!
//! 1. the scope future arrives (enters its scope, or checks the runtime) and lends its scope to
//!    the thread (`context::lend`), in a function of its own that ends with [`BodyPoll::begin`];
//! 2. `begin` drops a body that was blocked in a foreign future if its scope is now cancelled
//!    (S19, `reach.rs`), and otherwise starts watching where the body parks;
//! 3. the scope future polls [`BodyPoll::body`], if there is one;
//! 4. [`BodyPoll::end`] reads where it parked, drops it if it is blocked in a foreign future of
//!    a cancelled scope, and gives the thread's scope back;
//! 5. the scope future decides what it resolves to, in a function of its own.
//!
//! A panic in the body's poll unwinds through the `BodyPoll`, whose fields give the thread's
//! watch and scope back in that order.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::context::{self, LendGuard, Watch};
use crate::reach::Reach;
use crate::trace::SpanEntered;

/// One poll of a body in its scope, between [`begin`](Self::begin) and [`end`](Self::end).
pub(crate) struct BodyPoll<'a, F: Future, P = ()> {
    /// `None` once dropped, blocked in a foreign future when its scope was cancelled.
    body: Pin<&'a mut Option<F>>,
    /// The body's watch, `None` for a shield's: nothing from outside drops what it protects.
    reach: Option<&'a mut Reach>,
    /// What the body's poll returned, written by the caller (`Pending` if it was not polled).
    pub(crate) polled: Poll<F::Output>,
    /// What `begin` decided. Declared before `lent`: on a panic, the watch ends first.
    plan: Plan,
    /// The scope's span (feature `tracing`), entered until the end.
    span: Option<SpanEntered<'a>>,
    /// The scope, current until the end (`None`: the caller made it current for longer).
    lent: Option<LendGuard<'a>>,
    /// What the caller needs once the poll ended, to resolve (the scope it leaves).
    parts: P,
}

/// Whether the body is polled in this poll, and if not, why.
enum Plan {
    /// Polled; watched where it parks unless it is a shield's.
    Polled(Option<Watch>),
    /// Dropped now, blocked in a foreign future of a cancelled scope: the poll resolves with
    /// the cancellation, which `reach` holds.
    Dropped,
    /// Dropped by an earlier poll, whose error was returned: never polled again.
    Gone,
}

impl<'a, F: Future, P> BodyPoll<'a, F, P> {
    /// Begins a poll of `body` in the scope the caller made current (`lent`, or for longer).
    #[inline]
    pub(crate) fn begin(
        mut body: Pin<&'a mut Option<F>>,
        mut reach: Option<&'a mut Reach>,
        lent: Option<LendGuard<'a>>,
        parts: P,
        cx: &mut Context<'_>,
    ) -> Self {
        let reached = match reach.as_deref_mut() {
            Some(reach) => reach.is_watching() && reach.check_before(cx),
            None => false,
        };
        let plan = if reached {
            body.set(None); // blocked in a foreign future: dropped now (S19)
            Plan::Dropped
        } else if body.as_mut().as_pin_mut().is_none() {
            // Looked at through `&mut`, not `&`: a shared reference to the whole of a
            // self-referential body (an `async` block holding references into itself) would
            // invalidate them under Stacked Borrows (Miri finds it).
            Plan::Gone
        } else {
            Plan::Polled(reach.is_some().then(Watch::begin))
        };
        BodyPoll {
            body,
            reach,
            polled: Poll::Pending,
            plan,
            span: None,
            lent,
            parts,
        }
    }

    /// The poll, with the scope's span entered until it ends (feature `tracing`).
    #[inline]
    pub(crate) fn in_span(mut self, span: Option<SpanEntered<'a>>) -> Self {
        self.span = span;
        self
    }

    /// The body to poll now, if it is polled in this poll.
    #[inline]
    pub(crate) fn body(&mut self) -> Option<Pin<&mut F>> {
        match self.plan {
            Plan::Polled(_) => self.body.as_mut().as_pin_mut(),
            Plan::Dropped | Plan::Gone => None,
        }
    }

    /// Ends the poll with what the body's poll returned ([`polled`](Self::polled)) and gives
    /// the thread's scope back, then resolves with `then`. It is given the body's output, `None`
    /// if the body was dropped (the cancellation that reached it is in the reach), or `Pending`;
    /// the reach; and the caller's parts.
    ///
    /// By reference: a debug build would copy the struct into the call. A scope future whose
    /// parts hold all it needs to resolve (a scope, a shield) resolves in `then`, so that what
    /// ended never sits in its frame; a timeout, whose slot the step borrows, takes it back
    /// (`|ended, _, _| ended`) and resolves after. Out of line in a debug build, where inlining
    /// would not share the caller's slots.
    #[cfg_attr(debug_assertions, inline(never))]
    #[cfg_attr(not(debug_assertions), inline)]
    pub(crate) fn end<R>(
        &mut self,
        cx: &mut Context<'_>,
        then: impl FnOnce(Poll<Option<F::Output>>, Option<&mut Reach>, &mut P) -> R,
    ) -> R {
        self.span = None;
        let ended = self.ended(cx);
        self.lent = None;
        then(ended, self.reach.as_deref_mut(), &mut self.parts)
    }

    fn ended(&mut self, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        let polled = std::mem::replace(&mut self.polled, Poll::Pending);
        let watch = match std::mem::replace(&mut self.plan, Plan::Gone) {
            Plan::Polled(watch) => watch,
            Plan::Dropped => return Poll::Ready(None),
            Plan::Gone => return Poll::Pending,
        };
        let (Some(watch), Some(reach)) = (watch, self.reach.as_deref_mut()) else {
            // A shield's body is out of reach on purpose, which its `Pending` says to the scope
            // futures around it.
            if polled.is_pending() {
                context::park_reachable();
            }
            return polled.map(Some);
        };
        let reachable = watch.end();
        match polled {
            Poll::Ready(output) => Poll::Ready(Some(output)),
            Poll::Pending if reachable && !reach.is_watching() => {
                context::park_reachable();
                Poll::Pending
            }
            Poll::Pending if reach.check_pending(cx, reachable) => {
                self.body.set(None); // blocked in a foreign future of a cancelled scope (S19)
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Polls a body in the steps above: `$step` begins (a [`BodyPoll`]), the body is polled here, in
/// the caller's own frame, and `$then` resolves once the poll ended ([`BodyPoll::end`]). A macro,
/// not a function: a function would be one more frame for every nested scope.
macro_rules! poll_in_steps {
    ($step:expr, $cx:expr, $then:expr) => {{
        let mut step = $step;
        if let Some(body) = step.body() {
            step.polled = std::future::Future::poll(body, $cx);
        }
        step.end($cx, $then)
    }};
}
pub(crate) use poll_in_steps;

/// One whole poll of `body` in the scope the caller made current for longer (a nursery's body,
/// a member, a guarded future), in the steps above.
#[inline(always)] // the body's poll stays in the caller's frame
pub(crate) fn poll_reached<F: Future>(
    body: Pin<&mut Option<F>>,
    cx: &mut Context<'_>,
    reach: Option<&mut Reach>,
) -> Poll<Option<F::Output>> {
    poll_in_steps!(
        BodyPoll::begin(body, reach, None, (), cx),
        cx,
        |ended, _, _| ended
    )
}
