//! Runs a body in a timeout scope that may stay unrecorded (`scope_tree/unrecorded.rs`): the
//! inside of [`MoveOnAfter`](crate::MoveOnAfter) and [`FailAfter`](crate::FailAfter).

use std::future::Future;
use std::pin::Pin;
use std::task::Context;

use crate::body_poll::BodyPoll;
use crate::context::{self, RuntimeMark};
use crate::reach::Reach;
use crate::scope::named_too_late;
use crate::scope_tree::{Phase, ScopeNode, TimeoutSlot};
use crate::sync::{self, Frozen, Mutex};

pin_project_lite::pin_project! {
    /// Enters its scope on first poll (unrecorded if it may), makes it the current scope during
    /// each poll, and leaves it when the body completes or the future is dropped.
    #[derive(Debug)]
    pub(crate) struct PlannedScope<F> {
        // Behind a lock only for `record`, which a handle calls through a shared reference;
        // polling reaches it through `&mut` and never locks. The thread's context keeps its
        // address while the body is polled (`context::lend_slot`), and may record it there.
        // Pinned: its timer is in the clock, by address, while it runs unrecorded.
        #[pin]
        slot: Mutex<TimeoutSlot>,
        // How far this future took the scope: kept here too, so that polling looks at it once.
        stage: Phase,
        // The runtime it was entered in: every later poll must be in the same one.
        runtime: RuntimeMark,
        // Its watch over a body blocked in a foreign future (S19, `reach.rs`).
        reach: Reach,
        // `None` once dropped by `reach`.
        #[pin]
        body: Option<F>,
    }

    impl<F> PinnedDrop for PlannedScope<F> {
        fn drop(this: Pin<&mut Self>) {
            this.exit();
        }
    }
}

impl<F> PlannedScope<F> {
    pub(crate) fn new(slot: TimeoutSlot, body: F) -> Self {
        PlannedScope {
            slot: Mutex::new(slot),
            stage: Phase::Created,
            runtime: RuntimeMark::default(),
            reach: Reach::default(),
            body: Some(body),
        }
    }

    /// Names the scope (see `TimeoutSlot::name`): before it is polled, so it is not pinned yet.
    /// Panics if it was handed out unnamed (`named_too_late`).
    #[track_caller]
    pub(crate) fn name(&mut self, name: Frozen<str>) {
        if let Err(name) = sync::get_mut(&mut self.slot).name(name) {
            named_too_late(self.record().info(), &name);
        }
    }

    /// The record of the scope, made now if it has none: for a handle.
    pub(crate) fn record(&self) -> ScopeNode {
        sync::lock(&self.slot).record()
    }

    /// The record of the scope after its body completed, if it has one: a scope never recorded
    /// was never cancelled, so it absorbs nothing and did not time out.
    pub(crate) fn recorded(self: Pin<&mut Self>) -> Option<&ScopeNode> {
        slot_mut(self.project().slot).recorded()
    }

    /// The cancellation that ended the body where it was blocked in a foreign future, after
    /// [`begin`](Self::begin)'s poll resolved with `None`.
    pub(crate) fn reach(self: Pin<&mut Self>) -> &mut Reach {
        self.project().reach
    }

    /// Leaves the scope (once).
    pub(crate) fn exit(self: Pin<&mut Self>) {
        let this = self.project();
        if *this.stage != Phase::Exited {
            *this.stage = Phase::Exited;
            slot_mut(this.slot).exit();
        }
    }
}

/// The slot, to change it in place.
fn slot_mut(slot: Pin<&mut Mutex<TimeoutSlot>>) -> &mut TimeoutSlot {
    // SAFETY: nothing here moves the slot out of its place (it is changed in place and dropped
    // there), which is all its pinning asks (`scope_tree/unrecorded.rs`, invariant 4).
    sync::get_mut(unsafe { slot.get_unchecked_mut() })
}

impl<F: Future> PlannedScope<F> {
    /// Begins a poll of the body in the scope (`body_poll.rs`). On completion the scope is still
    /// entered, so the caller can decide absorption; it must then call [`exit`](Self::exit) (drop
    /// does too). A body blocked in a foreign future when the scope is cancelled is dropped, and
    /// the poll resolves with the cancellation instead (S19).
    #[inline]
    pub(crate) fn begin<'a>(self: Pin<&'a mut Self>, cx: &mut Context<'_>) -> BodyPoll<'a, F> {
        let this = self.project();
        let slot = slot_mut(this.slot);
        if *this.stage == Phase::Created {
            *this.stage = Phase::Entered;
            *this.runtime = RuntimeMark::here();
            slot.enter(cx.waker());
        } else {
            this.runtime.check(|| slot.id().to_string());
            if slot.fired(cx.waker()) {
                slot.record();
            }
        }
        let lent = context::lend_slot(slot);
        BodyPoll::begin(this.body, Some(this.reach), Some(lent), (), cx)
    }
}
