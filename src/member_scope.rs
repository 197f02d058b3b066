//! A member's own scope: what [`JoinHandle::cancel`](crate::JoinHandle::cancel) cancels, without
//! touching the member's siblings. Recorded only when something asks for it, as an unrecorded
//! timeout is (`scope_tree/unrecorded.rs`): a member never cancelled on its own, that enters no
//! scope and never asks for its current one, has no record, and is polled in its nursery's scope
//! (its *home*) as a member without a handle is.
//!
//! While it is unrecorded its scope changes nothing for it: it has no own cause and no shield, so
//! the member is cancelled exactly when its home is, for its home's cause. So the member lends
//! this scope as its current one (`context::lend_member`) with the home's flags for the fast path
//! of cancellation points, and waits at cancellation points in its home. It is recorded (a scope
//! record entered under the home, named as the task) the moment something needs it:
//! - from inside the member's poll: a scope or nursery entered inside it (it is their parent), a
//!   cancellation point that fails (the error is raised in it), `CancelHandle::current`;
//! - from outside (any thread): its handle cancels the member, or asks for its scope's handle.
//!
//! # Invariants
//!
//! 1. The record is created at most once, under `control`'s lock, and never replaced; `recorded`
//!    is set (release) under that lock right after it is stored, and never cleared. So a member
//!    that sees `recorded` may clone the record, and the record outlives this struct's owner's
//!    every use of it.
//! 2. No record is created once the member has ended (`ended`, set under the same lock when it
//!    does): a cancel request after the end has no effect (S15). A record that exists when the
//!    member ends is exited then, by [`MemberScope::end`], which every way a member ends goes
//!    through (its exit is finished), so a parent never keeps the address of a scope whose
//!    member is gone (`scope_tree.rs`, invariant 6).
//! 3. A member polled while unrecorded that returns `Pending` is polled again if it was recorded
//!    meanwhile: whoever records it from outside wakes the waker the member kept at its first
//!    `Pending` (under the lock), and a member that finds itself recorded after a poll, or when it
//!    keeps its waker, wakes itself. Its next poll runs in the record: whatever waited in its
//!    home registers again there, where the member's own cancellation reaches it.

use std::fmt;
use std::panic::Location;
use std::task::Waker;

use crate::cause::Cause;
use crate::identity::TaskInfo;
use crate::scope_tree::ScopeNode;
use crate::sync::{self, AtomicBool, Mutex, Ordering};

/// A member's own scope, recorded only when asked for.
pub(crate) struct MemberScope {
    /// The member, whose name the record takes.
    pub(crate) task: TaskInfo,
    /// The scope the member is polled in: its nursery's (or group's). Kept for the member's
    /// life and its handle's, so a record can be entered under it from any thread.
    home: ScopeNode,
    /// Whether the record exists (invariant 1): the member's poll reads this, not the lock.
    recorded: AtomicBool,
    control: Mutex<Control>,
}

struct Control {
    record: Option<ScopeNode>,
    /// The member's waker, kept at its first `Pending` while unrecorded (invariant 3).
    waker: Option<Waker>,
    ended: bool,
}

impl MemberScope {
    /// The scope of the member `task`, polled in `home`: unrecorded.
    pub(crate) fn new(task: TaskInfo, home: ScopeNode) -> Self {
        Self::with_record(task, home, None)
    }

    /// The scope of the member `task`, recorded from the start as `record` (entered under
    /// `home`): for a member that runs elsewhere than inline (a worker), whose scope must exist
    /// before it starts.
    pub(crate) fn recorded(task: TaskInfo, home: ScopeNode, record: ScopeNode) -> Self {
        Self::with_record(task, home, Some(record))
    }

    fn with_record(task: TaskInfo, home: ScopeNode, record: Option<ScopeNode>) -> Self {
        MemberScope {
            task,
            home,
            recorded: AtomicBool::new(record.is_some()),
            control: Mutex::new(Control {
                record,
                waker: None,
                ended: false,
            }),
        }
    }

    /// The scope the member runs in while its own is unrecorded.
    pub(crate) fn home(&self) -> &ScopeNode {
        &self.home
    }

    /// Whether the record exists; once it does, the member runs in it.
    #[inline]
    pub(crate) fn is_recorded(&self) -> bool {
        self.recorded.load(Ordering::Acquire)
    }

    /// The record, if it exists.
    pub(crate) fn record(&self) -> Option<ScopeNode> {
        sync::lock(&self.control).record.clone()
    }

    /// The record, made now if it did not exist, from inside the member's poll (a scope entered
    /// in it, a failing cancellation point): the member is running, so it has not ended.
    pub(crate) fn record_for_member(&self) -> ScopeNode {
        let mut control = sync::lock(&self.control);
        self.get_or_record(&mut control)
    }

    /// The record, made now if the member is still running, from outside its poll (its handle, on
    /// any thread); `None` if the member ended unrecorded. Making it wakes the member, which runs
    /// in it from its next poll (invariant 3).
    pub(crate) fn record_from_outside(&self) -> Option<ScopeNode> {
        let (record, waker) = {
            let mut control = sync::lock(&self.control);
            if control.ended || control.record.is_some() {
                return control.record.clone();
            }
            let record = self.get_or_record(&mut control);
            (record, control.waker.take())
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Some(record)
    }

    fn get_or_record(&self, control: &mut Control) -> ScopeNode {
        if let Some(record) = &control.record {
            return record.clone();
        }
        let record = ScopeNode::for_member(self.task.name.clone());
        record.enter(Some(self.home.clone()), None);
        control.record = Some(record.clone());
        self.recorded.store(true, Ordering::Release);
        record
    }

    /// Keeps the member's waker for whoever records the scope from outside, after its first
    /// `Pending` while unrecorded. Returns whether it was recorded meanwhile (the member must
    /// then poll again: invariant 3).
    pub(crate) fn keep_waker(&self, waker: &Waker) -> bool {
        let mut control = sync::lock(&self.control);
        if control.record.is_some() {
            return true;
        }
        control.waker = Some(waker.clone());
        false
    }

    /// Cancels the member's scope with an explicit cause (recording it first if needed). Returns
    /// whether this made the member effectively cancelled: `false` once it has ended (S15).
    pub(crate) fn cancel<T>(&self, tag: Option<T>, location: &'static Location<'static>) -> bool
    where
        T: fmt::Debug + Send + Sync + 'static,
    {
        match self.record_from_outside() {
            Some(record) => record.cancel_explicit(tag, location),
            None => false,
        }
    }

    /// Why the member is (or was) cancelled, as its scope says: its record's cause, or while it
    /// is unrecorded and running, its home's. `None` for an unrecorded member that has ended (its
    /// exit says how).
    pub(crate) fn cause(&self) -> Option<Cause> {
        let control = sync::lock(&self.control);
        match &control.record {
            Some(record) => record.cause(),
            None if !control.ended => self.home.cause(),
            None => None,
        }
    }

    /// The member has ended: no record is made from now on, and the one that exists leaves the
    /// tree (invariant 2). Idempotent.
    pub(crate) fn end(&self) {
        let record = {
            let mut control = sync::lock(&self.control);
            control.ended = true;
            control.waker = None;
            control.record.clone()
        };
        if let Some(record) = record {
            record.exit();
        }
    }
}

impl fmt::Debug for MemberScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberScope")
            .field("task", &self.task)
            .field("recorded", &self.is_recorded())
            .finish_non_exhaustive()
    }
}
