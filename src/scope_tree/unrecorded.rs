//! Timeout scopes that enter the tree only when something needs them there.
//!
//! Most timeouts never fire, and most bodies they guard never ask about their scope: a
//! `move_on_after` around a socket read, or around a body that only passes cancellation points.
//! Until its deadline fires, such a scope changes nothing for its body: it is not shielded, so
//! its body is cancelled exactly when its parent is, for its parent's cause. A record in the tree
//! would cost an allocation, a place in the parent's `children`, and the locks to put it there
//! and take it out (BENCHMARKS.md: about 1,600 instructions, more than all of tokio's timeout).
//!
//! So `move_on_after`, `move_on_at`, `fail_after` and `fail_at` plan their scope without a
//! record ([`TimeoutSlot`]: its number, its runtime, its deadline and its name, if it has one,
//! inline in their future). On
//! first poll, if it can, the scope enters *unrecorded*: its deadline goes to the clock as a
//! timer that knows the parent and the waker of the task polling the scope, stored in the slot
//! itself and linked into the clock's wheel (`timer_queue/linked.rs`: nothing is allocated), and
//! the body runs with the parent's flags as its fast path. The scope is recorded (a record entered under the
//! parent, with the same number and deadline: [`TimeoutSlot::record`]) as soon as anything
//! needs it:
//!
//! - its deadline fired (the next poll sees it, see below);
//! - code in its body asks for the current scope: a cancellation point that must fail (its
//!   `Cancelled` is raised in this scope, with a `Parent` link to the parent's cause, as a
//!   recorded scope's would be), a scope or nursery entered in the body (its parent must be
//!   this scope), a handle to the current scope. A cancellation point that *waits* (a sleep,
//!   `cancelled()`, a join, a guarded future) does not: it registers with the parent, whose
//!   cancellation is this scope's while it is unrecorded, and registers again with the record
//!   once there is one (`CancelWait` compares the scope it registered with at every poll);
//! - someone asks for a handle to it ([`MoveOnAfter::handle`](crate::MoveOnAfter::handle)).
//!
//! A scope that exits unrecorded was never cancelled and had no children: what it returns is
//! what a recorded one would have returned.
//!
//! # When a scope may stay unrecorded
//!
//! Only where nobody watches the tree: its runtime has no hook (hooked runtimes, the journal's
//! among them, record every scope, so that events and journals see every scope entered and
//! left), the current scope is a recorded one entered in that same runtime, and the deadline
//! lies ahead. Otherwise the plan becomes a record at once. A tree snapshot does not draw a scope
//! that is still unrecorded (documented on `CancelHandle::tree`).
//!
//! # The deadline that fires
//!
//! When the clock fires the timer, it looks at the parent's flags then, in key order (the key is
//! the one a recorded scope's deadline would have: the parent's depth plus one, and the scope's
//! number; S9): if the parent was not effectively cancelled, the timeout reached the scope first
//! (S14). It keeps that [`Outcome`] for the scope and wakes the task. The scope's next poll sees
//! that the clock's count of fired unrecorded deadlines moved, takes its outcome, and records
//! itself: with its `Timeout` as its own first cause, recorded before it enters under the
//! parent, when it came first; else entering first, so that the parent's cancellation is the
//! first cause and the timeout is recorded after it. The record then holds what the eager one
//! would have held.
//!
//! # Invariants
//!
//! 1. The timer is in the clock (registered, or fired and not taken back) exactly while the
//!    scope holds its parent (`parent` is set): the timer keeps the parent's address only, and
//!    reads its flags under the clock's lock (as `registered.rs` argues). The parent is let go
//!    only after the timer was taken back (`leave_parent`).
//! 2. `seen_fired` is the clock's count of fired unrecorded deadlines, read before the timer was
//!    added or when the scope last looked: if the count still equals it, the timer has not
//!    fired.
//! 3. `waker` is the identity of the waker in the timer: the timer wakes the task that polled
//!    the scope last.
//! 4. The timer is stored in the slot (`timer_queue/linked.rs`), which stays at its address
//!    while the timer is in the clock (invariant 1): the slot lives in a pinned
//!    `PlannedScope` (`!Unpin` through the timer), and takes its timer back before it is dropped
//!    or its runtime is let go. It is only ever added to the clock of `env`.

use std::panic::Location;
use std::task::Waker;
use std::time::{Duration, Instant};

use super::{After, Deadline, Phase, ScopeNode, When};
use crate::cause::Cause;
use crate::clock::{Clock, Outcome, UnrecordedTimer};
use crate::context;
use crate::env::Env;
use crate::identity::ScopeId;
use crate::sync::{self, Arc, Frozen, Ordering};

/// A timeout scope as its future holds it, from its plan to its exit; every step changes it in
/// place (it is not moved from one shape to another on the way: it is big, and moving it is
/// what a timeout spent most of its glue on).
///
/// Its stages, told by its fields: planned (no record, not entered); entered unrecorded
/// (`parent` set, the timer in the clock); recorded (`record` set, entered or not); left
/// (`left`).
#[derive(Debug)]
pub(crate) struct TimeoutSlot {
    /// The record, once there is one.
    record: Option<ScopeNode>,
    /// While entered unrecorded: the parent, and the timer is in the clock (invariant 1).
    parent: Option<ScopeNode>,
    /// The deadline's timer, in the clock of `env` while `parent` is set (invariants 1 and 4).
    timer: UnrecordedTimer,
    /// The runtime it was created in (until recorded or left), then entered in.
    env: Option<Arc<Env>>,
    id: ScopeId,
    /// The name its record takes, if it was given one (`MoveOnAfter::named`); taken by the
    /// record. Boxed: a thin pointer, so that an unnamed timeout's future grows by one word,
    /// not two.
    name: Option<Box<Frozen<str>>>,
    /// Relative until entered, absolute after.
    when: When,
    set_at: &'static Location<'static>,
    /// Invariant 2.
    seen_fired: u64,
    /// Invariant 3: the waker's data and vtable addresses (as `Waker::will_wake` compares them).
    waker: (usize, usize),
    /// Exited without a record.
    left: bool,
}

fn identity(waker: &Waker) -> (usize, usize) {
    (waker.data() as usize, waker.vtable() as *const _ as usize)
}

impl TimeoutSlot {
    /// A scope whose deadline is `timeout` after its entry.
    #[inline]
    pub(crate) fn after(timeout: Duration, set_at: &'static Location<'static>) -> TimeoutSlot {
        Self::planned(|_| When::AfterEntry(timeout), set_at)
    }

    /// A scope whose deadline is `at`.
    #[inline]
    pub(crate) fn at(at: Instant, set_at: &'static Location<'static>) -> TimeoutSlot {
        Self::planned(
            |env| When::At {
                at,
                after: After::new(env.map(|env| at.saturating_duration_since(env.clock().now()))),
            },
            set_at,
        )
    }

    #[inline]
    fn planned(
        when: impl FnOnce(Option<&Arc<Env>>) -> When,
        set_at: &'static Location<'static>,
    ) -> TimeoutSlot {
        let (id, env) = context::next_id_and_env();
        TimeoutSlot {
            record: None,
            parent: None,
            timer: UnrecordedTimer::default(),
            when: when(env.as_ref()),
            env,
            id: ScopeId(id),
            name: None,
            set_at,
            seen_fired: 0,
            waker: (0, 0),
            left: false,
        }
    }

    /// Names the scope: its record takes the name when it is made, or takes it now if it was
    /// made already and nothing has seen it (`ScopeNode::rename`); else the name comes back.
    pub(crate) fn name(&mut self, name: Frozen<str>) -> Result<(), Frozen<str>> {
        match &mut self.record {
            Some(node) => node.rename(name),
            None => {
                self.name = Some(Box::new(name));
                Ok(())
            }
        }
    }

    /// The record, if it has one.
    pub(crate) fn recorded(&self) -> Option<&ScopeNode> {
        self.record.as_ref()
    }

    /// What a task waiting in this scope registers with: its record, or (unrecorded) its parent.
    pub(crate) fn waiting_node(&self) -> Option<&ScopeNode> {
        self.record.as_ref().or(self.parent.as_ref())
    }

    /// The scope's number (`scope#N`), recorded or not.
    pub(crate) fn id(&self) -> ScopeId {
        self.id
    }

    /// Whether it is entered without a record.
    pub(crate) fn is_unrecorded(&self) -> bool {
        self.parent.is_some()
    }

    /// The flags word whose cancelled bit is the scope's: its record's, or (unrecorded) its
    /// parent's, the same while it is unrecorded. Null before entry and after exit.
    pub(crate) fn flags(&self) -> *const super::AtomicU64 {
        match (&self.record, &self.parent) {
            (Some(node), _) | (None, Some(node)) => node.flags(),
            (None, None) => std::ptr::null(),
        }
    }

    fn clock(&self) -> Option<&Arc<Clock>> {
        self.env.as_ref().map(|env| env.clock())
    }

    /// Enters the scope under the current scope: unrecorded if it may be (module
    /// documentation), the clock to wake `waker` when its deadline passes; else its record.
    pub(crate) fn enter(&mut self, waker: &Waker) {
        if let Some(node) = &self.record {
            node.enter(context::current(), None); // recorded before entry, by a handle
            return;
        }
        // An unrecorded current scope (a timeout's slot, a member's own scope) is recorded
        // first: it is what this one enters under, unrecorded if it may.
        let parent = match context::recorded_current().or_else(context::current) {
            Some(parent) => match self.try_enter_unrecorded(parent, waker) {
                Ok(()) => return,
                Err(parent) => Some(parent),
            },
            None => None,
        };
        let node = self.new_record();
        node.enter(parent, None);
        self.record = Some(node);
    }

    /// Enters unrecorded under `parent` if it may; hands the parent back if not.
    fn try_enter_unrecorded(&mut self, parent: ScopeNode, waker: &Waker) -> Result<(), ScopeNode> {
        let Some((depth, other_env)) = parent.entered_unwatched(self.env.as_ref()) else {
            return Err(parent);
        };
        if let Some(env) = other_env {
            self.env = Some(env);
        }
        let Some(clock) = self.clock() else {
            unreachable!("the parent has a runtime: its own, or the one the scope was created in")
        };
        let now = clock.now();
        let Some((at, after)) = self.when.resolve(now) else {
            return Err(parent);
        };
        if at <= now {
            return Err(parent);
        }
        // Read before the timer is added (invariant 2): a firing after it moves the count.
        let seen_fired = clock.unrecorded_fired();
        // SAFETY: the timer is in no clock (`parent` is not set yet, invariant 1: a slot enters
        // once), and the slot keeps it where it is until it takes it back from this clock
        // (invariant 4).
        unsafe {
            clock.add_unrecorded(
                at,
                depth.saturating_add(1),
                self.id.0,
                &parent,
                waker.clone(),
                &self.timer,
            );
        }
        self.when = When::At { at, after };
        self.seen_fired = seen_fired;
        self.waker = identity(waker);
        self.parent = Some(parent);
        Ok(())
    }

    /// Called before each poll of the body after the first: whether the deadline of an
    /// unrecorded scope fired (then the caller records it); else makes sure the timer wakes
    /// this `waker`.
    pub(crate) fn fired(&mut self, waker: &Waker) -> bool {
        let (Some(_), Some(env)) = (&self.parent, &self.env) else {
            return false;
        };
        let clock = env.clock();
        let count = clock.unrecorded_fired();
        // SAFETY (both calls): the timer was only ever added to this clock (invariant 4).
        if count != self.seen_fired {
            self.seen_fired = count;
            if unsafe { clock.has_fired(&self.timer) } {
                return true;
            }
        }
        if identity(waker) != self.waker {
            unsafe { clock.refresh_unrecorded(&self.timer, waker) };
            self.waker = identity(waker);
        }
        false
    }

    /// The record, made now if there is none: not entered if the scope was not; entered under
    /// its parent if it was unrecorded (and cancelled by its timeout first if that came first:
    /// module documentation); exited if it left.
    pub(crate) fn record(&mut self) -> ScopeNode {
        if let Some(node) = &self.record {
            return node.clone();
        }
        // The timer first: it is in the clock of `env`, which the record takes.
        let unrecorded = self.leave_parent();
        let node = self.new_record();
        if self.left {
            node.exit();
        } else if let Some((parent, outcome)) = unrecorded {
            if outcome == Some(Outcome::Fired { first: true })
                && let Some(timeout) = self.deadline().timeout(node.info())
            {
                node.record_own(Cause::Timeout(timeout));
            }
            node.enter_late(parent);
        }
        self.record = Some(node.clone());
        node
    }

    /// A record with this scope's number, name, runtime and deadline, not entered.
    fn new_record(&mut self) -> ScopeNode {
        let name = self.name.take().map(|name| *name);
        ScopeNode::with_parts(self.id, self.env.take(), name, Some(self.deadline()))
    }

    /// The deadline its record takes (no timer yet: the record arms its own on entry).
    fn deadline(&self) -> Deadline {
        Deadline {
            when: self.when,
            set_at: self.set_at,
            timer: None,
        }
    }

    /// Leaves the scope: its record, or its timer and parent.
    pub(crate) fn exit(&mut self) {
        match &self.record {
            Some(node) => node.exit(),
            None => {
                self.leave_parent();
                self.env = None;
                self.left = true;
            }
        }
    }

    /// If entered unrecorded: takes the timer back from the clock, then hands over the parent
    /// (invariant 1), with what became of the timer.
    fn leave_parent(&mut self) -> Option<(ScopeNode, Option<Outcome>)> {
        let parent = self.parent.take()?;
        let Some(clock) = self.clock() else {
            unreachable!("a slot keeps its runtime while its timer is in the clock (invariant 4)")
        };
        // SAFETY: the timer was only ever added to this clock (invariant 4).
        let outcome = unsafe { clock.take_unrecorded(&self.timer) };
        Some((parent, outcome))
    }
}

impl Drop for TimeoutSlot {
    /// Invariants 1 and 4: the timer goes before the reference to the parent does, and before
    /// the timer's own place in the slot.
    fn drop(&mut self) {
        self.leave_parent();
    }
}

/// What a record keeps of where it entered, in one word (`Inner::entered_in`): its runtime
/// environment's serial in the low 32 bits, its depth in the high 32; 0 while not entered, or
/// when either does not fit (the environment's serial is 0, or the depth is `u32::MAX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct EnteredIn(pub(super) u64);

impl EnteredIn {
    pub(super) fn new(env: Option<&Env>, depth: u32) -> EnteredIn {
        match env.map(Env::serial) {
            Some(serial) if serial != 0 && depth != u32::MAX => {
                EnteredIn(u64::from(depth) << 32 | u64::from(serial))
            }
            _ => EnteredIn(0),
        }
    }

    /// The depth, if the scope is entered in `env`.
    fn depth_in(self, env: &Env) -> Option<u32> {
        let serial = (self.0 & u64::from(u32::MAX)) as u32;
        (serial != 0 && serial == env.serial()).then_some((self.0 >> 32) as u32)
    }
}

impl ScopeNode {
    /// This scope's depth and runtime, if it is entered and its runtime has no hook and keeps
    /// no task list (what an unrecorded child needs of it). The runtime comes back only if it is
    /// not `created_in`, the one the child was created in (the usual case: no clone then).
    fn entered_unwatched(&self, created_in: Option<&Arc<Env>>) -> Option<(u32, Option<Arc<Env>>)> {
        // The usual case, without the lock: entered in the runtime the child was created in.
        if let Some(created) = created_in.filter(|env| !env.has_hook()) {
            let entered_in = EnteredIn(self.inner.entered_in.load(Ordering::Acquire));
            if let Some(depth) = entered_in.depth_in(created) {
                return Some((depth, None));
            }
        }
        let st = sync::lock(&self.inner.state);
        let env = st.env.as_ref()?;
        if st.phase != Phase::Entered || env.has_hook() {
            return None;
        }
        let other = match created_in {
            Some(created) if Arc::ptr_eq(created, env) => None,
            _ => Some(env.clone()),
        };
        Some((st.depth, other))
    }
}
