//! What the code being polled right now runs in: its scope, its task, and its runtime.
//!
//! Scopes nest by dynamic extent, as in Trio: a scope future lends its node (or, for a timeout,
//! its slot) here for the length of each of its polls, by address, and a scope first polled while
//! another is lent becomes its child. Cancellation points read it to learn whether they must fail;
//! asking for the current scope records an unrecorded timeout in its slot
//! (`scope_tree/unrecorded.rs`). Nursery members install their
//! task id, and the runtime its environment, the same way. Everything here is per thread and set
//! only for the duration of a poll, so a future moved to another thread between polls finds the
//! right values there too.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::task::Waker;

use crate::env::Env;
use crate::identity::TaskId;
use crate::member_scope::MemberScope;
use crate::scope_tree::{self, ScopeNode, TimeoutSlot};
use crate::sync::{self, Arc, AtomicU64, thread_local};

// `SCOPE` and `SCOPE_FLAGS` are only ever set by `lend` (invariant there). Neither has a
// destructor: a look at them is one load, with no check of whether they were set up.
#[cfg(not(wherefore_loom))]
thread_local! {
    static SCOPE: Cell<Lent> = const { Cell::new(Lent::Nothing) };
    static SCOPE_FLAGS: Cell<*const AtomicU64> = const { Cell::new(std::ptr::null()) };
    static TASK: Cell<Option<TaskId>> = const { Cell::new(None) };
    static ENV: RefCell<Option<Arc<Env>>> = const { RefCell::new(None) };
    static PARKED: Cell<u8> = const { Cell::new(0) };
    static MEMBER_WAKER: Cell<WakerId> = const { Cell::new(WakerId::NONE) };
}

// loom's `thread_local!` has no `const` initialiser form.
#[cfg(wherefore_loom)]
thread_local! {
    static SCOPE: Cell<Lent> = Cell::new(Lent::Nothing);
    static SCOPE_FLAGS: Cell<*const AtomicU64> = Cell::new(std::ptr::null());
    static TASK: Cell<Option<TaskId>> = Cell::new(None);
    static ENV: RefCell<Option<Arc<Env>>> = RefCell::new(None);
    static PARKED: Cell<u8> = Cell::new(0);
    static MEMBER_WAKER: Cell<WakerId> = Cell::new(WakerId::NONE);
}

/// Where the thread's current scope is: the address of what a guard lent (see [`lend`]).
#[derive(Clone, Copy)]
enum Lent {
    Nothing,
    /// A recorded scope's node, lent by shared reference.
    Node(*const ScopeNode),
    /// A timeout scope's slot, lent by `&mut`: it may be recorded in place.
    Slot(*mut TimeoutSlot),
    /// A nursery member's own scope, lent by shared reference: recorded on demand, under its own
    /// lock (`member_scope.rs`), from this thread or its handle's.
    Member(*const MemberScope),
}

/// Makes `node` the current scope until the guard is dropped (also on unwind), without cloning
/// it: the thread keeps its address.
///
/// # Invariant
///
/// `SCOPE` names nothing or what a guard alive on this thread lent: a node borrowed for as long
/// as the guard lives, or a slot borrowed mutably that long and touched only through this module
/// meanwhile. Guards are only ever bound to a local for the length of the poll they cover
/// (never leaked or moved off the stack), so they end in the reverse order they began, each
/// restoring what it replaced. `SCOPE_FLAGS` is null when `SCOPE` names nothing, and otherwise
/// the flags word of what it names ([`TimeoutSlot::flags`] for a slot; for a member's own scope,
/// its home's until it is recorded here), whose reference there keeps that record alive;
/// recording a slot or a member's scope here ([`record_current`]) sets it again. A member's
/// scope recorded by its handle on another thread keeps its home's flags until the member's next
/// poll (`member_scope.rs`, invariant 3).
pub(crate) fn lend(node: &ScopeNode) -> LendGuard<'_> {
    install(Lent::Node(node), node.flags())
}

/// Makes the scope in `slot` the current scope until the guard is dropped, as [`lend`] does a
/// node; asking for the current scope meanwhile may record an unrecorded one in the slot.
pub(crate) fn lend_slot(slot: &mut TimeoutSlot) -> LendGuard<'_> {
    let flags = slot.flags();
    install(Lent::Slot(slot), flags)
}

/// Makes the member's own scope, unrecorded, the current scope until the guard is dropped, as
/// [`lend`] does a node. Its cancellation is its home's while it is unrecorded, so cancellation
/// points read its home's flags (the mirror already names them: the member is polled in its
/// home, which its nursery lent) and wait there; asking for the current scope records it.
///
/// Half the work of [`lend`], on the path of every poll of a member with a handle: the mirror is
/// left as it is, and put back to the home's flags when the guard ends, in case the scope was
/// recorded meanwhile ([`record_current`]).
///
/// `waker` is the member's own: a yield that wakes it ([`yielded`]) is what [`woke_itself`]
/// reports.
pub(crate) fn lend_member<'a>(scope: &'a MemberScope, waker: &Waker) -> MemberLendGuard<'a> {
    let home_flags = scope.home().flags();
    debug_assert_eq!(
        SCOPE_FLAGS.with(Cell::get),
        home_flags,
        "a member is polled in its home"
    );
    MemberLendGuard {
        previous: SCOPE.with(|c| c.replace(Lent::Member(scope))),
        previous_waker: MEMBER_WAKER.with(|c| c.replace(WakerId::of(waker))),
        home_flags,
        _lent: PhantomData,
    }
}

/// Restores the previously current scope, the member's home, when dropped.
pub(crate) struct MemberLendGuard<'a> {
    previous: Lent,
    previous_waker: WakerId,
    home_flags: *const AtomicU64,
    _lent: PhantomData<&'a MemberScope>,
}

impl Drop for MemberLendGuard<'_> {
    fn drop(&mut self) {
        SCOPE.with(|c| c.set(self.previous));
        SCOPE_FLAGS.with(|c| c.set(self.home_flags));
        MEMBER_WAKER.with(|c| c.set(self.previous_waker));
    }
}

/// Which waker a waker is (its data and vtable addresses, compared, never followed): the one
/// [`yielded`] compares with the member's.
#[derive(Clone, Copy, PartialEq, Eq)]
struct WakerId(usize, usize);

impl WakerId {
    const NONE: WakerId = WakerId(0, 0);

    fn of(waker: &Waker) -> Self {
        WakerId(waker.data() as usize, waker.vtable() as *const _ as usize)
    }
}

fn install<'a>(lent: Lent, flags: *const AtomicU64) -> LendGuard<'a> {
    LendGuard {
        previous: SCOPE.with(|c| c.replace(lent)),
        previous_flags: SCOPE_FLAGS.with(|c| c.replace(flags)),
        _lent: PhantomData,
    }
}

/// Restores the previously current scope when dropped.
pub(crate) struct LendGuard<'a> {
    previous: Lent,
    previous_flags: *const AtomicU64,
    /// What was lent stays borrowed for as long as the guard lives.
    _lent: PhantomData<&'a mut ()>,
}

impl Drop for LendGuard<'_> {
    fn drop(&mut self) {
        SCOPE.with(|c| c.set(self.previous));
        SCOPE_FLAGS.with(|c| c.set(self.previous_flags));
    }
}

/// Runs `f` with the thread's current scope, if there is one: whether it is unrecorded, and its
/// record if it has one.
///
/// Readers only share what was lent: several may be alive at once (`f` may call back here).
/// Only [`record_current`] writes a slot, through its address, and only while it is unrecorded,
/// when no reader keeps a reference into it past its own call.
fn with_scope<R>(f: impl FnOnce(bool, Option<&ScopeNode>) -> R) -> R {
    match SCOPE.with(Cell::get) {
        Lent::Nothing => f(false, None),
        // SAFETY: by `lend`'s invariant the node is borrowed for longer than this call.
        Lent::Node(node) => f(false, Some(unsafe { &*node })),
        // SAFETY: by `lend`'s invariant the slot is lent to this thread for longer than this
        // call, reached only through this module meanwhile, where it is only shared or written
        // as said above.
        Lent::Slot(slot) => {
            let slot = unsafe { &*slot };
            f(slot.is_unrecorded(), slot.recorded())
        }
        // SAFETY: by `lend`'s invariant the member's scope is borrowed for longer than this call.
        Lent::Member(scope) => match unsafe { &*scope }.record() {
            Some(record) => f(false, Some(&record)),
            None => f(true, None),
        },
    }
}

/// The scope being polled on this thread, if any. An unrecorded one is recorded first.
pub(crate) fn current() -> Option<ScopeNode> {
    match with_scope(|unrecorded, node| (!unrecorded).then(|| node.cloned())) {
        Some(node) => node,
        None => Some(record_current()),
    }
}

/// The scope a cancellation point that fails now raises its `Cancelled` in: the current scope
/// (recorded first, if it was not), except a member's own scope that is unrecorded, whose
/// cancellation is its home's: raised there, it needs no record (`member_scope.rs`).
pub(crate) fn raising() -> Option<ScopeNode> {
    if let Lent::Member(scope) = SCOPE.with(Cell::get) {
        // SAFETY: as in `with_scope`.
        let scope = unsafe { &*scope };
        if !scope.is_recorded() {
            return Some(scope.home().clone());
        }
    }
    current()
}

/// Records the unrecorded scope being polled, in its slot. The thread has no current scope
/// while it does (recording takes locks and may wake tasks): nothing can reach the slot
/// meanwhile but this call.
#[cold]
fn record_current() -> ScopeNode {
    let lent = SCOPE.with(|c| c.replace(Lent::Nothing));
    let flags = SCOPE_FLAGS.with(|c| c.replace(std::ptr::null()));
    let node = match lent {
        Lent::Slot(slot) => {
            // SAFETY: the slot is lent to this thread (`lend`'s invariant) and unrecorded, so no
            // reader holds a reference into it (`with_scope`), and none can take one until it is
            // put back.
            let slot = unsafe { &mut *slot };
            slot.record()
        }
        // SAFETY: by `lend`'s invariant the member's scope is borrowed for longer than this call;
        // it is only shared, and records under its own lock.
        Lent::Member(scope) => unsafe { &*scope }.record_for_member(),
        Lent::Nothing | Lent::Node(_) => {
            unreachable!("called only while an unrecorded scope is current")
        }
    };
    // The record's flags, which its reference in the slot or the member's scope keeps alive
    // (neither lets go of it while lent).
    debug_assert_ne!(node.flags(), flags, "the record has flags of its own");
    SCOPE_FLAGS.with(|c| c.set(node.flags()));
    SCOPE.with(|c| c.set(lent));
    node
}

/// Called when `scope`'s record was made outside [`record_current`] (by its handle): if that
/// member is being polled on this thread (it cancels itself through its own handle), the flags
/// mirror names the record from now on, as `record_current` would have it. The record is kept
/// by `scope` for as long as it lives, and the member's guard puts the home's flags back.
pub(crate) fn member_recorded(scope: &MemberScope, record: &ScopeNode) {
    if let Lent::Member(lent) = SCOPE.with(Cell::get)
        && std::ptr::eq(lent, scope)
    {
        SCOPE_FLAGS.with(|c| c.set(record.flags()));
    }
}

/// The scope a task that waits in the current scope registers with, and whether it is the
/// parent of an unrecorded current scope (whose cancellation is the same while it stays
/// unrecorded: `scope_tree/unrecorded.rs`). Records nothing.
pub(crate) fn waiting_scope() -> Option<(ScopeNode, bool)> {
    match SCOPE.with(Cell::get) {
        Lent::Slot(slot) => {
            // SAFETY: as in `with_scope`; the parent is cloned before this returns.
            let slot = unsafe { &*slot };
            slot.waiting_node()
                .map(|node| (node.clone(), slot.is_unrecorded()))
        }
        Lent::Member(scope) => {
            // SAFETY: as in `with_scope`.
            let scope = unsafe { &*scope };
            Some(match scope.record() {
                Some(record) => (record, false),
                None => (scope.home().clone(), true),
            })
        }
        _ => with_scope(|_, node| node.map(|node| (node.clone(), false))),
    }
}

/// The scope being polled on this thread, if it is a recorded one: a parent an unrecorded scope
/// may enter under.
pub(crate) fn recorded_current() -> Option<ScopeNode> {
    with_scope(|unrecorded, node| node.filter(|_| !unrecorded).cloned())
}

/// Runs `f` with the scope being polled on this thread (recorded first if it was not), without
/// cloning it.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&ScopeNode>) -> R) -> R {
    if with_scope(|unrecorded, _| unrecorded) {
        record_current();
    }
    with_scope(|_, node| f(node))
}

/// Runs `f` with the scope being polled on this thread if it is recorded and `which` accepts
/// it; `None` if not, or if there is none.
pub(crate) fn with_current_if<R>(
    which: impl FnOnce(&ScopeNode) -> bool,
    f: impl FnOnce(&ScopeNode) -> R,
) -> Option<R> {
    with_scope(|_, node| node.filter(|now| which(now)).map(f))
}

/// The fast path of every cancellation point: is the current scope effectively cancelled?
///
/// One look at a thread-local address and one atomic load: no look at the slot itself. On the
/// AMD machine of BENCHMARKS.md that took the check from 3.1 to 1.7 ns. A `true` is confirmed by
/// the slow path, which reads the slot.
#[inline]
pub(crate) fn current_is_cancelled() -> bool {
    let flags = SCOPE_FLAGS.with(Cell::get);
    // SAFETY: by `lend`'s invariant a non-null address is that of the flags of what `SCOPE`
    // names, alive as long as the lent node or slot holds it; neither can change during this
    // one load (no code runs between reading the address and the load).
    !flags.is_null() && scope_tree::flags_say_cancelled(unsafe { &*flags })
}

/// Says that what is being polled returns `Pending` where a cancellation will reach it: parked
/// at a cancellation point (registered with its scope), yielding (it asked to be polled again),
/// inside a shield (out of reach on purpose), or below a scope that watches it ([`watch`]). A
/// scope around code that returns `Pending` without saying so is blocked in a foreign future,
/// and drops it when the scope is cancelled (S19, `reach.rs`).
#[inline]
pub(crate) fn park_reachable() {
    PARKED.with(|c| c.set(c.get() | REACHABLE));
}

/// What was polled returns `Pending` reachable (a yield), having woken `waker`. If that is the
/// waker of the member being polled, the member is polled again at once, and its own scope needs
/// no waker kept for this `Pending` (`member_scope.rs`, invariant 3); a yield that woke another
/// waker (a future polled by hand, `now_or_never`) says nothing of the member.
#[inline]
pub(crate) fn yielded(waker: &Waker) {
    let woke_member = MEMBER_WAKER.with(Cell::get) == WakerId::of(waker);
    let bits = if woke_member {
        REACHABLE | WOKE_ITSELF
    } else {
        REACHABLE
    };
    PARKED.with(|c| c.set(c.get() | bits));
}

/// Whether what was polled since the innermost [`Watch`] began woke its own task
/// ([`yielded`]): read by a member right after its poll, inside its member set's watch.
#[inline]
pub(crate) fn woke_itself() -> bool {
    PARKED.with(Cell::get) & WOKE_ITSELF != 0
}

/// Bits of `PARKED`: reachable ([`park_reachable`]), and woke its own task ([`yielded`]).
const REACHABLE: u8 = 1;
const WOKE_ITSELF: u8 = 2;

/// Watches a poll: begun before it (the bit cleared), ended after it (the bit read, and the
/// caller's restored), telling whether a `Pending` it returned is reachable
/// ([`park_reachable`]); what it parks is not counted for the caller's own poll. A guard rather
/// than a closure around the poll: nested scope futures recurse through their polls, and every
/// frame counts in a debug build (issue 24, item 7). Dropped without `end` (a panic in the
/// poll), it restores the caller's bit too.
pub(crate) struct Watch {
    outer: u8,
}

impl Watch {
    #[inline]
    pub(crate) fn begin() -> Watch {
        Watch {
            outer: PARKED.with(|c| c.replace(0)),
        }
    }

    /// Whether what was polled since [`begin`](Self::begin) parked where it is reachable.
    #[inline]
    pub(crate) fn end(self) -> bool {
        self.end_bits() & REACHABLE != 0
    }

    #[inline]
    fn end_bits(self) -> u8 {
        let parked = PARKED.with(|c| c.replace(self.outer));
        std::mem::forget(self);
        parked
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        PARKED.with(|c| c.set(self.outer));
    }
}

/// The task being polled on this thread, if any.
pub(crate) fn task() -> Option<TaskId> {
    TASK.with(Cell::get)
}

/// The environment of the runtime polling on this thread, if any.
pub(crate) fn env() -> Option<Arc<Env>> {
    ENV.with(|c| c.borrow().clone())
}

/// Runs `f` with the environment of the runtime polling on this thread, if any, without cloning
/// it.
pub(crate) fn with_env<R>(f: impl FnOnce(&Arc<Env>) -> R) -> Option<R> {
    ENV.with(|c| c.borrow().as_ref().map(f))
}

/// The address of the environment of the runtime polling on this thread (null outside one):
/// to tell whether an environment is that one (`Arc::as_ptr(env) == env_address()`) with one
/// look at the thread's locals for several environments. Never dereferenced.
pub(crate) fn env_address() -> *const Env {
    ENV.with(|c| c.borrow().as_ref().map_or(std::ptr::null(), Arc::as_ptr))
}

/// The runtime a scope future was entered in (the address of its environment, as
/// [`env_address`]; 0 outside one), kept to tell that every later poll happens in the same one:
/// a scope's deadline and wake-ups live in that runtime's clock, which another runtime does not
/// drive, so a scope finished in another would wait forever.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RuntimeMark(usize);

impl RuntimeMark {
    /// The runtime polling on this thread now, if a `wherefore` executor drives its clock
    /// (`run`, `testing`): a tokio-clock environment is driven by tokio's timer wherever it is
    /// polled, so two of them (two nurseries' on bare tokio) are not two runtimes.
    #[inline]
    pub(crate) fn here() -> Self {
        RuntimeMark(
            with_env(|env| (!env.clock().is_tokio()).then_some(Arc::as_ptr(env) as usize))
                .flatten()
                .unwrap_or(0),
        )
    }

    /// Panics, with a message that names the problem (as tokio's does), if this thread is in a
    /// runtime other than the one marked; `scope` names the scope.
    #[inline]
    pub(crate) fn check(self, scope: impl FnOnce() -> String) {
        if self.0 == 0 {
            return;
        }
        let here = env_address() as usize;
        if here != 0 && here != self.0 && Self::here().0 != 0 {
            polled_in_another_runtime(&scope());
        }
    }
}

#[cold]
#[track_caller]
fn polled_in_another_runtime(scope: &str) -> ! {
    panic!(
        "wherefore: {scope} was entered in one runtime and is now polled in another: its deadline \
         and wake-ups live in the first runtime's clock, which this one does not drive, so it \
         would never finish. Finish a scope (a timeout, a nursery) in the runtime that started it"
    )
}

/// A fresh identifier: numbered by the current runtime, or process-wide outside one.
pub(crate) fn next_id() -> u64 {
    ENV.with(|c| match &*c.borrow() {
        Some(env) => env.next_id(),
        None => sync::next_id(),
    })
}

/// A fresh identifier (as [`next_id`]) and the current runtime's environment, with one look at
/// the thread's locals: what a new scope takes.
pub(crate) fn next_id_and_env() -> (u64, Option<Arc<Env>>) {
    ENV.with(|c| match &*c.borrow() {
        Some(env) => (env.next_id(), Some(env.clone())),
        None => (sync::next_id(), None),
    })
}

/// Installs `task` as the current task until the guard is dropped.
pub(crate) fn enter_task(task: TaskId) -> TaskGuard {
    TaskGuard {
        previous: TASK.with(|c| c.replace(Some(task))),
    }
}

/// Restores the previously current task when dropped.
pub(crate) struct TaskGuard {
    previous: Option<TaskId>,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        TASK.with(|c| c.set(self.previous));
    }
}

/// Installs `env` as the current runtime environment until the guard is dropped.
pub(crate) fn enter_env(env: &Arc<Env>) -> EnvGuard {
    EnvGuard {
        previous: ENV.with(|c| c.replace(Some(env.clone()))),
    }
}

/// Restores the previous runtime environment when dropped.
pub(crate) struct EnvGuard {
    previous: Option<Arc<Env>>,
}

impl Drop for EnvGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        ENV.with(|c| *c.borrow_mut() = previous);
    }
}
