//! The cancel-scope tree: the one place where cancellation state lives and changes.
//!
//! Public handles ([`CancelHandle`](crate::CancelHandle), the scope and nursery futures) hold an
//! `ScopeNode` and call into this module; they keep no state of their own about cancellation.
//!
//! # State of a scope
//!
//! ```text
//!   Created ──enter (first poll)──▶ Entered ──exit / drop──▶ Exited
//! ```
//! Orthogonal to the phase, each node records at most one *own* cause (its explicit cancel, its
//! deadline, its nursery's failure: the first one wins) and whether its parent's cancellation
//! reached it, and which of the two arrived first.
//!
//! # Invariants
//!
//! 1. `own` is written at most once, and only while the phase is not `Exited` (S15: cancelling an
//!    exited scope records nothing).
//! 2. The node is *effectively cancelled* iff `own` is set, or it is not shielded and its parent is
//!    effectively cancelled. The `CANCELLED` bit of `flags` equals that, as of the last
//!    [`update`] that visited the node; every change to an input (own cause, shield, parent's
//!    flag) is followed by an `update` of the node, so the flag is never stale once the changing
//!    call returns.
//! 3. A child is in its parent's `children` from its entry until its exit. Its parent link is set
//!    after it is inserted, in the critical section that ends its entry and then compares its flag
//!    with what its parent's flag asks for: a propagation that found the child before the link
//!    treated it as parentless (no change), and that comparison catches up.
//! 4. Every waker in `waiters` belongs to a task blocked at a cancellation point in this scope;
//!    all of them are woken when the flag turns on, and none is registered while it is on.
//! 5. The effective cause is the own cause if shielded, else whichever of own and inherited
//!    arrived first (S14). `last` keeps which of the two was the most recent effective cause once
//!    there was one (both stay readable: `own` never changes, the parent link is kept after exit),
//!    so a `Parent` link read later still names a cause.
//! 6. A scope's parent keeps it in `children`, and the clock keeps it for its deadline's timer, as
//!    a [`Registered`] address that holds no reference. Each is removed under the lock of the
//!    place it is kept in (the parent's, the clock's) by `exit` at the latest, and every owner
//!    that enters a scope leaves it before it lets go of its reference, on every road out
//!    ([`ExitOnDrop`]). So an address found under that lock names a live record, and a reference
//!    may be taken from it (`registered.rs`). `Inner`'s drop checks the premise.
//! 7. The cause a reader is given (`cause()`) is the one of `last`, which `update` writes in the
//!    same critical section as the flag, before it; and an own cause that takes effect is
//!    recorded in the critical section that turns the flag on (`record_own` visits the node under
//!    the lock it recorded under). So a reader on any thread, and a request that lost, sees
//!    either no cause and no flag, or both, in its program order (as Go's `context` promises: `Err() != nil`
//!    implies `Cause() != nil`), never a cause recorded but not yet in effect. (The loom model
//!    `a_cause_is_never_seen_before_its_flag` fails when `cause()` reads the inputs instead.)
//!
//! # Locks
//!
//! Each node has one mutex, and **no code holds two node locks at once**: propagation locks a
//! parent, copies what it needs, unlocks, then locks each child in turn. The only nesting is node
//! lock → clock timer lock (to register or remove a deadline); the clock never calls back into a
//! node while holding its own lock. Hence no lock-order cycle and no deadlock.
//!
//! Tree walks (propagation, teardown, cause chains) are loops with an explicit stack, so a tree of
//! any depth never grows the call stack.

use std::panic::Location;
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::cancelled::Cancelled;
use crate::cause::{Cause, Explicit, Parent, Timeout};
use crate::clock::{Clock, TimerHandle};
use crate::context;
use crate::env::Env;
use crate::event::{Event, RequestOutcome};
use crate::identity::{ScopeId, ScopeInfo};
use crate::slab::{LazySlab, SlabKey};
use smallvec::SmallVec;

use crate::sync::{self, Arc, AtomicU64, Frozen, Mutex, MutexGuard, Ordering};

mod registered;
mod unrecorded;
pub(crate) use registered::{ExitOnDrop, Registered};
use unrecorded::EnteredIn;
pub(crate) use unrecorded::TimeoutSlot;

/// One cancel scope in the tree: a shared reference to its record. Cloning is cheap.
#[derive(Clone)]
pub(crate) struct ScopeNode {
    inner: Arc<Inner>,
}

struct Inner {
    info: ScopeInfo,
    /// Bit 0 ([`CANCELLED`]): whether the scope is effectively cancelled (invariant 2). The other
    /// bits: how many times `waiters` was drained; a waiter registered under an older count may
    /// have been removed, so it must register again rather than trust its key (see
    /// `CancelWait`). One word for both, a word less in every record. Read without the lock (the
    /// flag on the fast path); written only under `state`'s lock.
    flags: AtomicU64,
    /// While entered, its environment's serial and its depth ([`EnteredIn`]); 0 otherwise.
    /// Written under `state`'s lock on entry and exit; read without it by an unrecorded child
    /// that enters under this scope (`unrecorded.rs`), so that entering takes no lock here.
    entered_in: AtomicU64,
    state: Mutex<NodeState>,
}

/// The effectively-cancelled bit of `Inner::flags`; one drain adds [`DRAIN`].
const CANCELLED: u64 = 1;
const DRAIN: u64 = 2;

/// Whether a record's flags word (see [`ScopeNode::flags`]) says the scope is effectively
/// cancelled.
#[inline]
pub(crate) fn flags_say_cancelled(flags: &AtomicU64) -> bool {
    flags.load(Ordering::Acquire) & CANCELLED != 0
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Built, not yet polled: no parent, no clock; a handle may already cancel it.
    Created,
    /// Running: attached to its parent (if any), its deadline registered with the clock.
    Entered,
    /// Finished or dropped: detached; requests have no effect any more.
    Exited,
}

/// Where a cause comes from: the scope itself, or its parent. Recorded for the one that arrived
/// first (S14) and for the one that was effective last (invariant 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Own,
    Inherited,
}

struct NodeState {
    phase: Phase,
    /// The enclosing scope, set on entry; kept after exit so escaped causes can still be traced.
    parent: Option<ScopeNode>,
    /// Distance from the root; orders same-instant deadlines (ancestors first, S9).
    depth: u32,
    /// The entered children (invariants 3 and 6).
    children: LazySlab<Registered>,
    /// Our key in the parent's `children`, while entered.
    key_in_parent: Option<SlabKey>,
    shielded: bool,
    deadline: Option<Deadline>,
    /// The runtime the scope was created or entered in, if any: its clock and its hook.
    env: Option<Arc<Env>>,
    /// The scope's own first cause (invariant 1).
    own: Option<Cause>,
    /// Whether the parent's cancellation has reached this node at some point.
    inherited: bool,
    /// A nursery member's own scope (`member_scope.rs`): while its cancellation is its parent's,
    /// it gives its parent's cause rather than a `Parent` link to itself, so a member cancelled
    /// with its nursery reads the nursery's cause, as it would without a scope of its own.
    transparent: bool,
    first: Option<Origin>,
    /// Which cause was effective last (invariant 5): the own one, or the parent's (a `Parent` link).
    last: Option<Origin>,
    /// Cancel requests that arrived after the first and had no effect (S17: kept visible).
    ignored_requests: u32,
    /// Whether the scope's future ended by absorbing a cancellation (`None`, `TimedOut`): Trio's
    /// `cancelled_caught`. Set once, by the future, before it leaves the scope.
    caught: bool,
    /// Tasks blocked at a cancellation point in this scope (invariant 4).
    waiters: LazySlab<Waker>,
}

/// A deadline as requested: absolute, or relative to entry when the scope had no clock yet.
#[derive(Clone, Copy, Debug)]
struct Deadline {
    when: When,
    set_at: &'static Location<'static>,
    /// The registered timer, while entered and the deadline lies in the future.
    timer: Option<TimerHandle>,
}

#[derive(Clone, Copy, Debug)]
enum When {
    At {
        at: Instant,
        after: After,
    },
    /// `None` after: a timeout so long that the deadline is past any representable instant.
    AfterEntry(Duration),
}

impl When {
    /// The instant, and how long after it was set, of a deadline entered at `now`; `None` for a
    /// timeout that falls past any representable instant (it never fires).
    fn resolve(self, now: Instant) -> Option<(Instant, After)> {
        match self {
            When::At { at, after } => Some((at, after)),
            When::AfterEntry(timeout) => {
                Some((now.checked_add(timeout)?, After::new(Some(timeout))))
            }
        }
    }
}

impl Deadline {
    /// The cause this deadline gives the scope `info` when it passes, once it is absolute.
    fn timeout(&self, info: &ScopeInfo) -> Option<Timeout> {
        let When::At { at, after } = self.when else {
            return None;
        };
        Some(Timeout::new(info.clone(), at, after.get(), self.set_at))
    }
}

/// Where an entering scope's parent keeps its runtime environment: nowhere, in the runtime
/// polling this thread, or in another one.
enum ParentEnv {
    Absent,
    Current,
    Other(Arc<Env>),
}

/// How long after it was set a deadline falls, when it was given as a timeout or while running
/// (what a `Timeout` cause reports): nanoseconds, saturating past 584 years, half the room of an
/// `Option<Duration>` in every scope record.
#[derive(Clone, Copy, Debug)]
struct After(u64);

impl After {
    const UNKNOWN: After = After(u64::MAX);

    fn new(after: Option<Duration>) -> After {
        after.map_or(After::UNKNOWN, |after| {
            After(u64::try_from(after.as_nanos()).map_or(u64::MAX - 1, |n| n.min(u64::MAX - 1)))
        })
    }

    fn get(self) -> Option<Duration> {
        (self.0 != After::UNKNOWN.0).then(|| Duration::from_nanos(self.0))
    }
}

/// What a cancellation point learns when it asks about its scope.
pub(crate) enum WaitRegistration {
    /// The scope is effectively cancelled: fail with this.
    Cancelled(Cancelled),
    /// Registered under this key; the waker is woken when the scope becomes effectively
    /// cancelled.
    Waiting(WaiterKey),
}

/// Where a waker waits in a scope's `waiters`: its key there, and the scope's drain count when
/// it was registered. A drain removes every waiter, so once the count has moved the key names
/// nothing of ours (it may name a waiter registered since): it is used only while the count is
/// the same, checked under the scope's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WaiterKey {
    key: SlabKey,
    pub(crate) drains: u64,
}

impl ScopeNode {
    pub(crate) fn new(name: Option<Frozen<str>>) -> ScopeNode {
        Self::with_state(name, None)
    }

    /// A new record for a nursery member's own scope: transparent (see `NodeState`).
    ///
    /// Numbered by `home`'s runtime, whichever thread makes it (a handle's may be on none).
    pub(crate) fn for_member(name: Option<Frozen<str>>, home: &ScopeNode) -> ScopeNode {
        let env = home.env();
        let id = match &env {
            Some(env) => env.next_id(),
            None => sync::next_id(),
        };
        let node = Self::with_parts(ScopeId(id), env, name, None);
        sync::lock(&node.inner.state).transparent = true;
        node
    }

    fn with_state(name: Option<Frozen<str>>, deadline: Option<Deadline>) -> ScopeNode {
        let (id, env) = context::next_id_and_env();
        Self::with_parts(ScopeId(id), env, name, deadline)
    }

    /// A new record, not entered, with the given number and runtime.
    fn with_parts(
        id: ScopeId,
        env: Option<Arc<Env>>,
        name: Option<Frozen<str>>,
        deadline: Option<Deadline>,
    ) -> ScopeNode {
        let inner = Arc::new(Inner {
            info: ScopeInfo { id, name },
            flags: AtomicU64::new(0),
            entered_in: AtomicU64::new(0),
            state: Mutex::new(NodeState {
                phase: Phase::Created,
                parent: None,
                depth: 0,
                children: LazySlab::new(),
                key_in_parent: None,
                shielded: false,
                deadline,
                env,
                own: None,
                inherited: false,
                transparent: false,
                first: None,
                last: None,
                ignored_requests: 0,
                caught: false,
                waiters: LazySlab::new(),
            }),
        });
        ScopeNode { inner }
    }

    pub(crate) fn ptr_eq(&self, other: &ScopeNode) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn info(&self) -> &ScopeInfo {
        &self.inner.info
    }

    /// How many times the waiters were drained so far.
    pub(crate) fn drains(&self) -> u64 {
        self.inner.flags.load(Ordering::Acquire) / DRAIN
    }

    /// The fast path: whether the scope is effectively cancelled, without taking the lock.
    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        flags_say_cancelled(&self.inner.flags)
    }

    /// The address of the record's flags word, valid while a reference to the record is held:
    /// what the thread's current-scope mirror keeps (`context::lend`).
    pub(crate) fn flags(&self) -> *const AtomicU64 {
        &self.inner.flags
    }

    pub(crate) fn phase(&self) -> Phase {
        sync::lock(&self.inner.state).phase
    }

    pub(crate) fn parent(&self) -> Option<ScopeNode> {
        sync::lock(&self.inner.state).parent.clone()
    }

    pub(crate) fn env(&self) -> Option<Arc<Env>> {
        sync::lock(&self.inner.state).env.clone()
    }

    pub(crate) fn clock(&self) -> Option<Arc<Clock>> {
        self.env().map(|env| env.clock().clone())
    }

    pub(crate) fn is_shielded(&self) -> bool {
        sync::lock(&self.inner.state).shielded
    }

    pub(crate) fn ignored_requests(&self) -> u32 {
        sync::lock(&self.inner.state).ignored_requests
    }

    /// The effective cause now, or the last one if the scope is no longer effectively cancelled.
    /// A transparent scope whose cause is its parent's gives the parent's.
    pub(crate) fn cause(&self) -> Option<Cause> {
        let parent = {
            let st = sync::lock(&self.inner.state);
            match st.through_transparent() {
                Some(parent) => parent.clone(),
                None => return st.cause(),
            }
        };
        Some(parent.cause_for_children())
    }

    /// The scope's own first cause, regardless of shields.
    pub(crate) fn own_cause(&self) -> Option<Cause> {
        sync::lock(&self.inner.state).own.clone()
    }

    /// Whether the scope has an own cause (Trio's `cancel_called`), without cloning it.
    pub(crate) fn has_own_cause(&self) -> bool {
        sync::lock(&self.inner.state).own.is_some()
    }

    /// Notes that the scope's future ended by absorbing a cancellation (Trio's
    /// `cancelled_caught`).
    pub(crate) fn set_caught(&self) {
        sync::lock(&self.inner.state).caught = true;
    }

    /// Whether the scope's future ended by absorbing a cancellation.
    pub(crate) fn caught(&self) -> bool {
        sync::lock(&self.inner.state).caught
    }

    /// Names the scope, if nothing has seen it yet: this is the only reference to its record (no
    /// handle, not entered) and no cause was recorded in it (a cause keeps the scope's name as it
    /// was). Hands the name back otherwise.
    pub(crate) fn rename(&mut self, name: Frozen<str>) -> Result<(), Frozen<str>> {
        let Some(inner) = Arc::get_mut(&mut self.inner) else {
            return Err(name);
        };
        let st = sync::get_mut(&mut inner.state);
        if st.phase != Phase::Created || st.own.is_some() {
            return Err(name);
        }
        inner.info.name = Some(name);
        Ok(())
    }

    /// The scope a `Parent` link to this one names: this one, or, for a transparent scope whose
    /// cause is its parent's, the scope that parent names.
    pub(crate) fn visible(&self) -> ScopeNode {
        let mut node = self.clone();
        loop {
            let next = sync::lock(&node.inner.state).through_transparent().cloned();
            match next {
                Some(parent) => node = parent,
                None => return node,
            }
        }
    }

    /// What a child sees as this scope's cause through a `Parent` link (for a transparent scope
    /// whose cause is its parent's, the parent's).
    pub(crate) fn cause_for_children(&self) -> Cause {
        let parent = {
            let st = sync::lock(&self.inner.state);
            match st.through_transparent() {
                Some(parent) => parent.clone(),
                None => {
                    return st.cause().or_else(|| st.own.clone()).expect(
                        "a Parent link is only made to a scope that was effectively cancelled",
                    );
                }
            }
        };
        parent.cause_for_children()
    }

    /// The `Cancelled` error a cancellation point in this scope returns, if it is cancelled.
    pub(crate) fn cancelled_error(&self) -> Option<Cancelled> {
        if !self.is_cancelled() {
            return None;
        }
        let cause = self.cause()?;
        Some(Cancelled {
            cause,
            raised_in: self.clone(),
        })
    }

    /// The cancellation that reaches this scope from its parent now, as raised in this scope:
    /// `Some` while the scope is not shielded and its parent is effectively cancelled, whatever
    /// this scope's own cause. It belongs to an ancestor, which absorbs it (S2, S18).
    pub(crate) fn parents_cancellation(&self) -> Option<Cancelled> {
        let parent = {
            let st = sync::lock(&self.inner.state);
            if st.shielded || !st.parent_cancelled() {
                return None;
            }
            st.parent.clone()?
        };
        Some(Cancelled {
            cause: Cause::Parent(Parent { node: parent }),
            raised_in: self.clone(),
        })
    }

    // ----- configuration -------------------------------------------------------------------

    pub(crate) fn set_shielded(&self, shielded: bool) {
        let env = {
            let mut st = sync::lock(&self.inner.state);
            if st.shielded == shielded {
                return;
            }
            st.shielded = shielded;
            // Changes are reported while the scope runs; entering reports the state it starts in.
            st.env.clone().filter(|_| st.phase == Phase::Entered)
        };
        if let Some(env) = env {
            env.emit_detail(|| Event::ShieldChanged {
                scope: self.inner.info.clone(),
                shielded,
            });
        }
        update(self.clone());
    }

    /// Sets (or clears, with `None`) the deadline. Never un-cancels and never changes a recorded
    /// cause (S13): after the deadline fired, the new value is stored and has no effect.
    pub(crate) fn set_deadline(&self, at: Option<Instant>, set_at: &'static Location<'static>) {
        self.replace_deadline(
            |st| {
                at.map(|at| When::At {
                    at,
                    after: After::new(
                        st.env
                            .as_ref()
                            .map(|env| at.saturating_duration_since(env.clock().now())),
                    ),
                })
            },
            set_at,
        );
    }

    /// Sets the deadline `timeout` from now (from entry, if the scope has not been entered yet).
    pub(crate) fn set_timeout(&self, timeout: Duration, set_at: &'static Location<'static>) {
        self.replace_deadline(
            |st| match (st.phase, &st.env) {
                // Beyond any representable instant: no deadline, it would never fire.
                (Phase::Entered, Some(env)) => {
                    env.clock().now().checked_add(timeout).map(|at| When::At {
                        at,
                        after: After::new(Some(timeout)),
                    })
                }
                // Not running yet: the timeout counts from entry.
                _ => Some(When::AfterEntry(timeout)),
            },
            set_at,
        );
    }

    /// Replaces the deadline with what `when` computes from the node's state, under one lock.
    fn replace_deadline(
        &self,
        when: impl FnOnce(&NodeState) -> Option<When>,
        set_at: &'static Location<'static>,
    ) {
        let (fire, env, resolved) = {
            let mut st = sync::lock(&self.inner.state);
            if st.phase == Phase::Exited {
                return;
            }
            let when = when(&st);
            st.remove_timer();
            st.deadline = when.map(|when| Deadline {
                when,
                set_at,
                timer: None,
            });
            let fire = if st.phase == Phase::Entered {
                self.arm_deadline(&mut st)
            } else {
                None
            };
            // Changes are reported while the scope runs; entering reports the one it starts with.
            let env = st.env.clone().filter(|_| st.phase == Phase::Entered);
            (fire, env, st.resolved_deadline())
        };
        if let Some(env) = env {
            self.report_deadline(&env, resolved, set_at);
        }
        if let Some(timeout) = fire {
            self.record_own(Cause::Timeout(timeout));
        }
    }

    fn report_deadline(&self, env: &Env, at: Option<Instant>, set_at: &'static Location<'static>) {
        env.emit_detail(|| Event::DeadlineChanged {
            scope: self.inner.info.clone(),
            deadline: at.map(|at| env.since_start(at)),
            set_at,
        });
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        sync::lock(&self.inner.state).resolved_deadline()
    }

    /// Resolves a relative deadline and registers the timer. Returns the timeout cause to record
    /// at once if the deadline has already passed (S12: a past deadline is valid input).
    fn arm_deadline(&self, st: &mut NodeState) -> Option<Timeout> {
        let clock = st.env.as_ref().map(|env| env.clock());
        let deadline = st.deadline.as_mut()?;
        let Some(clock) = clock else {
            panic!(
                "wherefore: {} has a deadline (set at {}) but no clock: run it inside \
                 `wherefore::run` or `wherefore::testing::block_on`",
                self.inner.info, deadline.set_at
            );
        };
        let now = clock.now();
        let Some((at, after)) = deadline.when.resolve(now) else {
            st.deadline = None;
            return None;
        };
        deadline.when = When::At { at, after };
        // Armed even when the scope has its own cause already: a deadline that passes then is a
        // request that lost (S17), counted and reported like any other.
        if at <= now {
            return deadline.timeout(&self.inner.info);
        }
        deadline.timer = Some(clock.add_deadline(at, st.depth, self.inner.info.id.0, self));
        None
    }

    /// Called by the clock when a registered deadline passes.
    pub(crate) fn deadline_fired(&self, key: TimerHandle) {
        let timeout = {
            let mut st = sync::lock(&self.inner.state);
            let Some(deadline) = st.deadline.as_mut() else {
                return;
            };
            if deadline.timer != Some(key) {
                return; // the deadline was moved; this timer is stale
            }
            deadline.timer = None;
            deadline.timeout(&self.inner.info)
        };
        if let Some(timeout) = timeout {
            self.record_own(Cause::Timeout(timeout));
        }
    }

    // ----- cancellation ---------------------------------------------------------------------

    /// An explicit cancel request. Returns whether it made the scope effectively cancelled.
    pub(crate) fn cancel_explicit<T>(
        &self,
        tag: Option<T>,
        location: &'static Location<'static>,
    ) -> bool
    where
        T: std::fmt::Debug + Send + Sync + 'static,
    {
        self.record_own(Cause::Explicit(Explicit::new(
            self.inner.info.clone(),
            location,
            tag,
        )))
    }

    /// Records `cause` as the scope's own cause if it has none (first cause wins, S17), then
    /// brings the tree up to date. Returns whether the scope went from not effectively cancelled
    /// to effectively cancelled because of this call (S14).
    pub(crate) fn record_own(&self, cause: Cause) -> bool {
        // The deliberately broken build decides "first" before taking the lock (check-then-act),
        // so two racing requests can both take effect; `loom-tests` shows that loom catches it.
        #[cfg(wherefore_loom_broken)]
        let unclaimed = sync::lock(&self.inner.state).own.is_none();
        let (outcome, env, visited) = {
            let mut st = sync::lock(&self.inner.state);
            #[cfg(wherefore_loom_broken)]
            if unclaimed {
                st.own = None;
            }
            let outcome = st.record_own(cause.clone());
            let env = st.env.clone();
            // A cause that took effect turns the flag on in the same critical section that records
            // it (invariant 7): whoever sees the cause, or loses to it, sees the flag too.
            // A request that lost to a parent's cancellation not yet propagated here brings the
            // flag up to date too: its caller must see the scope cancelled, as it was told.
            let took_effect = matches!(outcome, RequestOutcome::TookEffect);
            let stale = matches!(outcome, RequestOutcome::LostTo(_)) && !self.is_cancelled();
            let visited = (took_effect || stale).then(|| visit_locked(self, st));
            (outcome, env, visited)
        };
        let took_effect = matches!(outcome, RequestOutcome::TookEffect);
        if let Some(visited) = visited {
            propagate(self.clone(), visited);
        }
        if let Some(env) = env {
            env.emit_cancellation(|| Event::CancelRequested {
                scope: self.inner.info.clone(),
                cause,
                outcome,
            });
        }
        took_effect
    }

    // ----- entering and leaving -------------------------------------------------------------

    /// Enters the scope under `parent` (the scope being polled when this one was first polled),
    /// taking the runtime environment from the parent, else the one it was created in, else
    /// `env` (for a runtime's root).
    ///
    /// Two critical sections, one lock each: the parent (its environment and depth, and the child
    /// inserted), then the child (its parent link, the rest of its state, and its flag checked
    /// against the parent's: invariant 3). The child has no waiters and no children yet, so its
    /// flag needs a full [`update`] only if it is to be on at once: an own cause from before
    /// entry, or a cancelled parent (a propagation that found the child meanwhile has set it
    /// already, or saw no parent link yet and left it to this check).
    ///
    /// The parent's environment is the runtime's polling this thread (the usual case), which the
    /// scope holds already if it was created there: then it is not cloned again.
    pub(crate) fn enter(&self, parent: Option<ScopeNode>, env: Option<Arc<Env>>) {
        self.enter_linking(parent, env, Link::AfterOwnDeadline);
    }

    /// Enters the record of a scope that was entered unrecorded earlier (`unrecorded.rs`): its
    /// deadline, if past, passed while it was in the tree, after the parent's cancellation if
    /// that came first (the clock decided which, S9), so it is recorded after the link.
    pub(crate) fn enter_late(&self, parent: ScopeNode) {
        self.enter_linking(Some(parent), None, Link::BeforeOwnDeadline);
    }

    fn enter_linking(&self, parent: Option<ScopeNode>, env: Option<Arc<Env>>, link: Link) {
        let mut parent_env = ParentEnv::Absent;
        let mut parent_depth = 0;
        let mut key = None;
        let here = context::env_address();
        if let Some(p) = &parent {
            let mut pst = sync::lock(&p.inner.state);
            parent_env = match &pst.env {
                None => ParentEnv::Absent,
                Some(env) if Arc::as_ptr(env) == here => ParentEnv::Current,
                Some(env) => ParentEnv::Other(env.clone()),
            };
            parent_depth = pst.depth;
            key = Some(pst.children.insert(self.registered()));
        }
        let (hooked, early, stale) = {
            let mut st = sync::lock(&self.inner.state);
            debug_assert_eq!(st.phase, Phase::Created, "a scope is entered once");
            st.depth = parent.as_ref().map_or(0, |_| parent_depth + 1);
            st.env = match parent_env {
                ParentEnv::Other(env) => Some(env),
                ParentEnv::Current => match st.env.take() {
                    Some(created) if Arc::as_ptr(&created) == here => Some(created),
                    _ => context::env(),
                },
                ParentEnv::Absent => st.env.take().or(env).or_else(Env::ambient),
            };
            st.key_in_parent = key;
            st.phase = Phase::Entered;
            let entered_in = EnteredIn::new(st.env.as_deref(), st.depth);
            self.inner.entered_in.store(entered_in.0, Ordering::Release);
            // A deadline that passed before entry is a request from before entry, as a cancel
            // through the handle before entry is: recorded before the parent is linked, so it
            // comes before anything the scope inherits, which it does only from its entry on
            // (S14; found by the differential tests against Trio, issue 27).
            if link == Link::BeforeOwnDeadline {
                st.parent = parent.clone();
            }
            let early = self.arm_deadline(&mut st).map(|timeout| {
                let cause = Cause::Timeout(timeout);
                (st.record_own(cause.clone()), cause)
            });
            if link == Link::AfterOwnDeadline {
                st.parent = parent;
            }
            let stale = st.is_effective(st.parent_cancelled()) != self.is_cancelled();
            // Cloned only to deliver events.
            let hooked = st.env.as_ref().filter(|env| env.is_observed()).map(|env| {
                let entered = Event::ScopeEntered {
                    scope: self.inner.info.clone(),
                    parent: st.parent.as_ref().map(|p| p.info().clone()),
                    shielded: st.shielded,
                };
                let deadline = st.deadline.map(|d| (st.resolved_deadline(), d.set_at));
                (env.clone(), entered, deadline)
            });
            (hooked, early, stale)
        };
        if let Some((env, entered, deadline)) = hooked {
            env.emit(|| entered);
            if let Some((at, set_at)) = deadline {
                self.report_deadline(&env, at, set_at);
            }
            if let Some((outcome, cause)) = early {
                env.emit(|| Event::CancelRequested {
                    scope: self.inner.info.clone(),
                    cause,
                    outcome,
                });
            }
        }
        if stale {
            update(self.clone());
        }
    }

    /// Enters the scope under the scope being polled now, unless it was entered already.
    /// Returns whether this call entered it.
    pub(crate) fn enter_if_new(&self) -> bool {
        if self.phase() != Phase::Created {
            return false;
        }
        self.enter(context::current(), None);
        true
    }

    /// Leaves the scope: detaches it from its parent and the clock. Idempotent.
    ///
    /// The parent is reached without a clone of its link when it is the scope being polled (a
    /// scope future leaves inside its parent's poll, the usual case): a pair of reference-count
    /// changes less. The link never changes once entered, so either way it is the same parent.
    pub(crate) fn exit(&self) {
        let (parent, key, env, was_entered) = {
            let mut st = sync::lock(&self.inner.state);
            if st.phase == Phase::Exited {
                return;
            }
            let was_entered = st.phase == Phase::Entered;
            st.phase = Phase::Exited;
            self.inner.entered_in.store(0, Ordering::Release);
            st.remove_timer();
            st.children = LazySlab::new(); // addresses only: nothing to release
            let key = st.key_in_parent.take();
            let parent = st.parent.as_ref().map(|p| Arc::as_ptr(&p.inner));
            // An exited scope needs no clock or hook any more; letting go of the environment
            // lets a runtime's resources (tokio's timer task) go with the last scope using them.
            (parent, key, st.env.take(), was_entered)
        };
        if let (Some(key), Some(parent)) = (key, parent) {
            let leave = |parent: &ScopeNode| {
                sync::lock(&parent.inner.state).children.remove(key);
            };
            let left =
                context::with_current_if(|now| Arc::as_ptr(&now.inner) == parent, |now| leave(now));
            if left.is_none() {
                // Left from elsewhere than inside its parent: the link, cloned.
                if let Some(parent) = self.parent() {
                    leave(&parent);
                }
            }
        }
        if let (Some(env), true) = (env, was_entered) {
            env.emit_detail(|| Event::ScopeExited {
                scope: self.inner.info.clone(),
            });
        }
    }

    // ----- waiting --------------------------------------------------------------------------

    /// Registers (or refreshes, with `key`) a waker to be woken when the scope becomes
    /// effectively cancelled, unless it already is.
    pub(crate) fn register_waiter(
        &self,
        key: Option<WaiterKey>,
        waker: &Waker,
    ) -> WaitRegistration {
        // The flag must be read under the lock that `update` stores it under (invariant 4). The
        // deliberately broken build reads it first, a check-then-act split that loses wake-ups;
        // `loom-tests` shows that loom catches it.
        #[cfg(wherefore_loom_broken)]
        let cancelled = self.is_cancelled();
        let mut st = sync::lock(&self.inner.state);
        #[cfg(not(wherefore_loom_broken))]
        let cancelled = self.is_cancelled();
        let drains = self.drains(); // only moves under this lock
        let key = key.filter(|k| k.drains == drains).map(|k| k.key);
        if cancelled {
            if let Some(key) = key {
                st.waiters.remove(key);
            }
            drop(st);
            return match self.cancelled_error() {
                Some(c) => WaitRegistration::Cancelled(c),
                None => self.register_waiter(None, waker), // un-cancelled meanwhile (shield)
            };
        }
        let key = match key.and_then(|k| st.waiters.get_mut(k).map(|w| (k, w))) {
            Some((k, slot)) => {
                slot.clone_from(waker); // skips an equivalent waker
                k
            }
            None => st.waiters.insert(waker.clone()),
        };
        WaitRegistration::Waiting(WaiterKey { key, drains })
    }

    /// Takes a waker out of the waiters, unless a drain took it already.
    pub(crate) fn remove_waiter(&self, key: WaiterKey) {
        let mut st = sync::lock(&self.inner.state);
        if self.drains() == key.drains {
            st.waiters.remove(key.key);
        }
    }

    /// The scopes entered directly below this one, in the order they were entered.
    pub(crate) fn children(&self) -> Vec<ScopeNode> {
        let st = sync::lock(&self.inner.state);
        // SAFETY: each child is in `children`, under its lock (invariant 6).
        st.children
            .iter()
            .map(|child| unsafe { child.node() })
            .collect()
    }

    /// Whether this node is `ancestor` or lies below it. Walks parent links in a loop.
    pub(crate) fn is_within(&self, ancestor: &ScopeNode) -> bool {
        let mut node = Some(self.clone());
        while let Some(n) = node {
            if n.ptr_eq(ancestor) {
                return true;
            }
            node = n.parent();
        }
        false
    }

    /// Whether a `Cancelled` raised in `raised_in` stops at this scope: this scope is effectively
    /// cancelled, it is the outermost cancelled scope below the nearest shield (S2), and the
    /// cancellation came from inside it (S16).
    pub(crate) fn absorbs(&self, raised_in: &ScopeNode) -> bool {
        let outermost = {
            let st = sync::lock(&self.inner.state);
            self.is_cancelled() && (st.shielded || !st.parent_cancelled())
        };
        outermost && raised_in.is_within(self)
    }
}

impl std::fmt::Debug for ScopeNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopeNode")
            .field("scope", self.info())
            .finish_non_exhaustive()
    }
}

/// When a scope entering links to its parent: after a deadline of its own that passed before
/// its entry is recorded (a new scope), or before (the record of a scope that was in the tree
/// unrecorded, whose deadline passed there).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    AfterOwnDeadline,
    BeforeOwnDeadline,
}

impl NodeState {
    /// The bookkeeping of [`ScopeNode::record_own`], under the lock.
    fn record_own(&mut self, cause: Cause) -> RequestOutcome {
        if self.phase == Phase::Exited {
            return RequestOutcome::ScopeExited; // S15
        }
        let parent_cancelled = self.parent_cancelled();
        let effective_before = self.effective_cause();
        if self.own.is_some() || (!self.shielded && parent_cancelled) {
            self.ignored_requests = self.ignored_requests.saturating_add(1);
        }
        if let Some(own) = &self.own {
            // Invariant 5: with an own cause there is always an effective one.
            return RequestOutcome::LostTo(effective_before.unwrap_or_else(|| own.clone()));
        }
        if !self.shielded && parent_cancelled && self.first.is_none() {
            self.first = Some(Origin::Inherited);
        }
        self.first.get_or_insert(Origin::Own);
        self.own = Some(cause);
        // The deadline's timer stays: when it passes it is a lost request (S17), counted.
        match effective_before {
            Some(winner) => RequestOutcome::LostTo(winner),
            None => RequestOutcome::TookEffect,
        }
    }

    /// The deadline as an instant, once it is known.
    fn resolved_deadline(&self) -> Option<Instant> {
        match self.deadline?.when {
            When::At { at, .. } => Some(at),
            When::AfterEntry(_) => None,
        }
    }

    fn parent_cancelled(&self) -> bool {
        self.parent.as_ref().is_some_and(|p| p.is_cancelled())
    }

    fn is_effective(&self, parent_cancelled: bool) -> bool {
        self.own.is_some() || (!self.shielded && parent_cancelled)
    }

    /// The effective cause now (invariant 5), or `None` if not effectively cancelled.
    fn effective_cause(&self) -> Option<Cause> {
        self.cause_from(self.effective_origin()?)
    }

    /// Which cause is effective now (invariant 5): the own one, or the parent's.
    fn effective_origin(&self) -> Option<Origin> {
        let inherited = !self.shielded && self.parent_cancelled();
        match (&self.own, inherited) {
            (Some(_), true) if self.first == Some(Origin::Inherited) => Some(Origin::Inherited),
            (Some(_), _) => Some(Origin::Own),
            (None, true) => Some(Origin::Inherited),
            (None, false) => None,
        }
    }

    /// The effective cause as of the last `update` that visited this node, or else the last one
    /// that applied (invariant 5), rebuilt from the record of which one it was.
    ///
    /// Read from `last`, which `update` writes in the critical section that stores the flag, and
    /// not from the inputs (own cause, shield, the parent's flag), which change before the
    /// `update` that follows them: so a reader on any thread never sees the cause before the
    /// flag, nor the flag before the cause (invariant 7).
    fn cause(&self) -> Option<Cause> {
        self.cause_from(self.last?)
    }

    /// The parent whose cause a transparent scope gives as its own: while its last effective
    /// cause was its parent's.
    fn through_transparent(&self) -> Option<&ScopeNode> {
        match (self.transparent, self.last) {
            (true, Some(Origin::Inherited)) => self.parent.as_ref(),
            _ => None,
        }
    }

    /// The own cause, or a `Parent` link to the parent.
    fn cause_from(&self, origin: Origin) -> Option<Cause> {
        match origin {
            Origin::Own => self.own.clone(),
            Origin::Inherited => self
                .parent
                .as_ref()
                .map(|node| Cause::Parent(Parent { node: node.clone() })),
        }
    }

    fn remove_timer(&mut self) {
        if let Some(deadline) = self.deadline.as_mut()
            && let Some(key) = deadline.timer.take()
            && let Some(env) = &self.env
        {
            env.clock().remove(key);
        }
    }
}

/// Recomputes the effective state of `start` and, wherever it changed, of its descendants.
///
/// A loop, no recursion. Each step locks one node only: either a node being visited (which also
/// yields its first child), or a parent whose next child is fetched through a cursor into its
/// `children` (one *frame*). Children are
/// visited after their parent's flag was stored, and read that flag themselves, so the last visit
/// of a child always sees its parent's latest state (invariant 2) even when two updates overlap;
/// a child entered after the store reads the flag on entry (invariant 3), and one that left needs
/// no visit.
///
/// Memory: a frame is kept only while a node has children left to visit, so a chain needs none
/// and a wide tree one per level. The inline room covers eight levels of branching; nothing is
/// allocated per descendant, however wide a node is.
pub(crate) fn update(start: ScopeNode) {
    let visited = visit(&start);
    propagate(start, visited);
}

/// [`update`]'s walk below `start`, whose own visit (`visited`) is done.
fn propagate(start: ScopeNode, visited: Option<(ScopeNode, Option<usize>)>) {
    let mut frames: SmallVec<[(ScopeNode, usize); 8]> = SmallVec::new();
    let Some((first, rest)) = visited else {
        return;
    };
    if let Some(cursor) = rest {
        frames.push((start, cursor));
    }
    let mut next = Some(first);
    loop {
        let node = match next.take() {
            Some(node) => node,
            None => match next_child(&mut frames) {
                Some(child) => child,
                None => return,
            },
        };
        if let Some((first, rest)) = visit(&node) {
            if let Some(cursor) = rest {
                frames.push((node, cursor));
            }
            next = Some(first);
        }
    }
}

/// The next child of the innermost frame, dropping frames whose children are all taken.
fn next_child(frames: &mut SmallVec<[(ScopeNode, usize); 8]>) -> Option<ScopeNode> {
    loop {
        let (parent, cursor) = frames.last_mut()?;
        let taken = take_child(&sync::lock(&parent.inner.state).children, *cursor);
        let Some((child, rest)) = taken else {
            frames.pop();
            continue;
        };
        match rest {
            Some(index) => *cursor = index,
            None => {
                frames.pop();
            }
        }
        return Some(child);
    }
}

/// How many children ahead of the one taken a walk asks for the record of (`take_child`).
const PREFETCH_AHEAD: usize = 4;

/// The child at or after `cursor`, and where the next one is, if there is one.
///
/// The caller holds the lock of the node whose `children` these are.
fn take_child(
    children: &LazySlab<Registered>,
    cursor: usize,
) -> Option<(ScopeNode, Option<usize>)> {
    let (child, after) = children.next_from(cursor)?;
    // The child's three lines are asked for together, before the clone below touches the first:
    // otherwise a walk down a chain (one child each, nothing to fetch ahead) waits for them one
    // after the other (a chain of 100,000: see BENCHMARKS.md, workload 5).
    child.prefetch();
    let rest = children
        .next_from(after)
        .map(|(_, after_next)| after_next - 1);
    // A wide scope's children are far apart in memory: the record a few children on is fetched
    // while this one is visited (a million children: see BENCHMARKS.md, workload 5).
    if let Some((ahead, _)) = children.next_from(after + PREFETCH_AHEAD) {
        ahead.prefetch();
    }
    // SAFETY: the child is in `children`, whose lock the caller holds (invariant 6).
    Some((unsafe { child.node() }, rest))
}

/// Brings one node's flag up to date and wakes its waiters if it turned on. If its descendants
/// need a visit (the flag changed and it has children), returns its first child and where the
/// next one is, taken under the same lock.
fn visit(node: &ScopeNode) -> Option<(ScopeNode, Option<usize>)> {
    visit_locked(node, sync::lock(&node.inner.state))
}

/// [`visit`] with the node's lock held already (`st`), which it releases.
fn visit_locked<'a>(
    node: &'a ScopeNode,
    mut st: MutexGuard<'a, NodeState>,
) -> Option<(ScopeNode, Option<usize>)> {
    let parent_cancelled = st.parent_cancelled();
    if parent_cancelled && !st.shielded && !st.inherited {
        st.inherited = true;
        if st.own.is_some() && st.first == Some(Origin::Own) {
            // The parent's cancellation lost to the scope's own cause (S17: kept visible). Not
            // when the own cause was recorded after the parent's (`record_own` counted it then).
            st.ignored_requests = st.ignored_requests.saturating_add(1);
        }
        st.first.get_or_insert(Origin::Inherited);
    }
    let now = st.is_effective(parent_cancelled);
    if now {
        st.last = st.effective_origin();
    }
    let flags = node.inner.flags.load(Ordering::Relaxed); // only written under this lock
    if now == (flags & CANCELLED != 0) {
        return None;
    }
    let drain = now && st.waiters.len() > 0;
    let drains = (flags & !CANCELLED) + if drain { DRAIN } else { 0 };
    node.inner
        .flags
        .store(drains | if now { CANCELLED } else { 0 }, Ordering::Release);
    // The waiters' storage is moved out whole and woken after the lock is released.
    let woken = drain.then(|| st.waiters.drain());
    let clock = woken
        .is_some()
        .then(|| st.env.as_ref().map(|env| env.clock().clone()))
        .flatten();
    let children = take_child(&st.children, 0);
    drop(st);
    if let Some(woken) = woken {
        match clock.filter(|clock| clock.is_seeded()) {
            // A seeded schedule wakes them in its order.
            Some(clock) => {
                let mut woken: Vec<Waker> = woken.collect();
                clock.shuffle(&mut woken);
                woken.into_iter().for_each(Waker::wake);
            }
            None => woken.for_each(Waker::wake),
        }
    }
    children
}

impl Drop for Inner {
    /// Tears down a chain of ancestors (and the scopes their causes point at) in a loop, so that
    /// dropping the last reference to a deep tree never overflows the stack.
    ///
    /// A record still registered in its parent or with the clock would leave an address behind
    /// that a propagation or a timer could follow (invariant 6). Every owner leaves its scope
    /// before letting go of it, so this is a bug in this crate: the process aborts rather than let
    /// that address be used.
    fn drop(&mut self) {
        let st = sync::get_mut(&mut self.state);
        if st.key_in_parent.is_some() || st.deadline.is_some_and(|d| d.timer.is_some()) {
            eprintln!(
                "wherefore: internal error: {} was freed while registered; aborting",
                self.info
            );
            std::process::abort();
        }
        // Inline room for the usual few links: dropping a scope allocates nothing.
        let mut stack: SmallVec<[ScopeNode; 4]> = SmallVec::new();
        take_links(st, &mut stack);
        while let Some(node) = stack.pop() {
            // Only a last reference has links to take. Any other is released by a plain drop:
            // a `try_unwrap` that fails costs one atomic read-modify-write more (the usual case:
            // a timeout's parent outlives it).
            if Arc::strong_count(&node.inner) != 1 {
                continue;
            }
            if let Ok(mut inner) = Arc::try_unwrap(node.inner) {
                take_links(sync::get_mut(&mut inner.state), &mut stack);
            }
        }
    }
}

/// Moves every `ScopeNode` a node owns onto `stack` (its children are addresses, not owned).
fn take_links(st: &mut NodeState, stack: &mut SmallVec<[ScopeNode; 4]>) {
    if let Some(parent) = st.parent.take() {
        stack.push(parent);
    }
    if let Some(Cause::Parent(link)) = st.own.take() {
        stack.push(link.node);
    }
}
