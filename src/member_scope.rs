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
//! 1. The record is created at most once, under `control`'s lock, and never replaced; [`RECORDED`]
//!    is set (release) under that lock right after it is stored, and never cleared. So a member
//!    that sees it may clone the record.
//! 2. The record never outlives the member in the tree: when the member ends (every way it ends
//!    goes through [`MemberScope::end`], its exit being finished), [`ENDED`] is set, and whichever
//!    of `end` and the making of the record sets its bit second (one atomic word orders them)
//!    exits the record. A cancel request after the end has no effect (S15), and a parent never
//!    keeps the address of a scope whose member is gone (`scope_tree.rs`, invariant 6).
//! 3. A member polled while unrecorded that returns `Pending` is polled again if it was recorded
//!    meanwhile: it woke itself (a yield: it is polled again anyway); or it finds itself recorded
//!    after the poll, or when it keeps its waker under the lock, and wakes itself; or it kept its
//!    waker before, and whoever records it from outside wakes that (under the same lock). Its
//!    next poll runs in the record: whatever waited in its home registers again there, where the
//!    member's own cancellation reaches it.

use std::fmt;
use std::panic::Location;
use std::task::Waker;

use crate::cause::Cause;
use crate::context;
use crate::identity::TaskInfo;
use crate::scope_tree::ScopeNode;
use crate::sync::{self, AtomicU8, Mutex, Ordering};

/// The record exists (invariant 1).
const RECORDED: u8 = 1;
/// The member has ended (invariant 2).
const ENDED: u8 = 2;
/// The member kept its waker (written by the member's own polls only).
const WAKER_KEPT: u8 = 4;

/// A member's own scope, recorded only when asked for.
pub(crate) struct MemberScope {
    /// The member, whose name the record takes.
    pub(crate) task: TaskInfo,
    /// The scope the member is polled in: its nursery's (or group's). Kept for the member's
    /// life and its handle's, so a record can be entered under it from any thread.
    home: ScopeNode,
    /// [`RECORDED`], [`ENDED`], [`WAKER_KEPT`]: what the member's poll and end read without the
    /// lock.
    state: AtomicU8,
    control: Mutex<Control>,
}

struct Control {
    record: Option<ScopeNode>,
    /// The member's waker, kept at its first `Pending` that did not wake itself, while
    /// unrecorded (invariant 3).
    waker: Option<Waker>,
}

impl MemberScope {
    /// The scope of the member `task`, polled in `home`: unrecorded.
    pub(crate) fn new(task: TaskInfo, home: ScopeNode) -> Self {
        Self::with_record(task, home, None)
    }

    /// The scope of the member `task`, recorded from the start as `record` (entered under
    /// `home`): for a member that runs elsewhere than inline (a worker), whose scope must exist
    /// before it starts.
    #[cfg(all(feature = "tokio", not(wherefore_loom)))]
    pub(crate) fn recorded(task: TaskInfo, home: ScopeNode, record: ScopeNode) -> Self {
        Self::with_record(task, home, Some(record))
    }

    fn with_record(task: TaskInfo, home: ScopeNode, record: Option<ScopeNode>) -> Self {
        MemberScope {
            task,
            home,
            state: AtomicU8::new(if record.is_some() { RECORDED } else { 0 }),
            control: Mutex::new(Control {
                record,
                waker: None,
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
        self.state.load(Ordering::Acquire) & RECORDED != 0
    }

    /// The record, if it exists.
    pub(crate) fn record(&self) -> Option<ScopeNode> {
        sync::lock(&self.control).record.clone()
    }

    /// The record, made now if it did not exist, from inside the member's poll (a scope entered
    /// in it, `CancelHandle::current`): the member is running, so it has not ended.
    pub(crate) fn record_for_member(&self) -> ScopeNode {
        let mut control = sync::lock(&self.control);
        match &control.record {
            Some(record) => record.clone(),
            None => self.make_record(&mut control).0,
        }
    }

    /// The record, made now if the member has not ended, from outside its poll (its handle, on
    /// any thread); `None` if the member ended unrecorded. Making it wakes the member if it kept
    /// its waker, and it runs in the record from its next poll (invariant 3).
    pub(crate) fn record_from_outside(&self) -> Option<ScopeNode> {
        let (record, waker) = {
            let mut control = sync::lock(&self.control);
            if control.record.is_some() || self.state.load(Ordering::Acquire) & ENDED != 0 {
                return control.record.clone();
            }
            let (record, ended) = self.make_record(&mut control);
            if ended {
                // The member ended meanwhile without seeing the record: leaving it is ours.
                drop(control);
                record.exit();
                return Some(record);
            }
            (record, control.waker.take())
        };
        // Made from the member's own poll (it cancels itself through its handle): its
        // cancellation points see the record from now on, not only from its next poll.
        context::member_recorded(self, &record);
        if let Some(waker) = waker {
            waker.wake();
        }
        Some(record)
    }

    /// Makes the record, under `control`'s lock (invariant 1): entered under the home, named as
    /// the task. Returns it, and whether the member had ended before it was marked recorded.
    fn make_record(&self, control: &mut Control) -> (ScopeNode, bool) {
        let record = ScopeNode::for_member(self.task.name.clone(), &self.home);
        record.enter(Some(self.home.clone()), None);
        control.record = Some(record.clone());
        let before = self.state.fetch_or(RECORDED, Ordering::AcqRel);
        (record, before & ENDED != 0)
    }

    /// Keeps the member's waker for whoever records the scope from outside, after a `Pending`
    /// while unrecorded that did not wake itself; once is enough (a member's waker stays the
    /// same for its life). Returns whether it was recorded meanwhile (the member must then poll
    /// again: invariant 3).
    pub(crate) fn keep_waker(&self, waker: &Waker) -> bool {
        if self.state.load(Ordering::Relaxed) & WAKER_KEPT != 0 {
            return false;
        }
        // The deliberately broken build looks for a record before taking the lock
        // (check-then-act): a record made in between finds no waker to wake, and the member,
        // blocked in its home, never learns of it. The loom model
        // `a_member_is_cancelled_from_another_thread_as_it_first_blocks` finds the deadlock.
        #[cfg(wherefore_loom_broken_member_wake)]
        let recorded = self.is_recorded();
        let mut control = sync::lock(&self.control);
        #[cfg(not(wherefore_loom_broken_member_wake))]
        let recorded = control.record.is_some();
        if recorded {
            return true;
        }
        control.waker = Some(waker.clone());
        self.state.fetch_or(WAKER_KEPT, Ordering::Relaxed);
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
            None if self.state.load(Ordering::Acquire) & ENDED == 0 => self.home.cause(),
            None => None,
        }
    }

    /// The member has ended: no record is made from now on, and the one that exists leaves the
    /// tree (invariant 2). One atomic read-modify-write for a member never recorded and that
    /// kept no waker. Idempotent.
    pub(crate) fn end(&self) {
        let before = self.state.fetch_or(ENDED, Ordering::AcqRel);
        if before & (RECORDED | WAKER_KEPT) == 0 {
            return;
        }
        let (record, waker) = {
            let mut control = sync::lock(&self.control);
            (control.record.clone(), control.waker.take())
        };
        drop(waker); // it keeps the member set's wakers alive; the handle may live on
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
