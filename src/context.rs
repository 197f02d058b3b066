//! What the code being polled right now runs in: its scope, its task, and its runtime.
//!
//! Scopes nest by dynamic extent, as in Trio: a scope future installs its node here for the length
//! of each of its polls, and a scope first polled while another is installed becomes its child.
//! Cancellation points read it to learn whether they must fail. Nursery members install their
//! task id, and the runtime its environment, the same way. Everything here is per thread and set
//! only for the duration of a poll, so a future moved to another thread between polls finds the
//! right values there too.

use std::cell::{Cell, RefCell};

use crate::env::Env;
use crate::identity::TaskId;
use crate::scope_tree::{self, ScopeNode};
use crate::sync::{self, Arc, AtomicU64, thread_local};

// `SCOPE_FLAGS` mirrors `SCOPE` for the fast path of cancellation points (invariant below).
#[cfg(not(wherefore_loom))]
thread_local! {
    static SCOPE: CurrentScope = const { CurrentScope(RefCell::new(None)) };
    static SCOPE_FLAGS: Cell<*const AtomicU64> = const { Cell::new(std::ptr::null()) };
    static TASK: Cell<Option<TaskId>> = const { Cell::new(None) };
    static ENV: RefCell<Option<Arc<Env>>> = const { RefCell::new(None) };
}

// loom's `thread_local!` has no `const` initialiser form.
#[cfg(wherefore_loom)]
thread_local! {
    static SCOPE: CurrentScope = CurrentScope(RefCell::new(None));
    static SCOPE_FLAGS: Cell<*const AtomicU64> = Cell::new(std::ptr::null());
    static TASK: Cell<Option<TaskId>> = Cell::new(None);
    static ENV: RefCell<Option<Arc<Env>>> = RefCell::new(None);
}

/// The scope being polled on this thread. Its drop (when the thread's locals are torn down)
/// clears the mirror, so that the mirror cannot outlive the reference it mirrors.
struct CurrentScope(RefCell<Option<ScopeNode>>);

impl std::ops::Deref for CurrentScope {
    type Target = RefCell<Option<ScopeNode>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Drop for CurrentScope {
    fn drop(&mut self) {
        let _ = SCOPE_FLAGS.try_with(|c| c.set(std::ptr::null()));
    }
}

/// Makes `node` the current scope and returns the one it replaces: the only writer of `SCOPE`
/// and (with `CurrentScope`'s drop) of `SCOPE_FLAGS`, which keeps their invariant.
///
/// # Invariant
///
/// `SCOPE_FLAGS` is null when `SCOPE` is empty or gone, and otherwise the address of the flags
/// word in the record of the node `SCOPE` holds, whose reference keeps that record alive. Both
/// are set here, together, before the replaced node is handed back (and maybe dropped): between
/// the two writes the mirror still names the replaced node, which is held here until then, and
/// no other code runs. `CurrentScope`'s drop nulls the mirror before the node it holds goes.
fn install(node: Option<ScopeNode>) -> Option<ScopeNode> {
    let flags = node.as_ref().map_or(std::ptr::null(), ScopeNode::flags);
    let previous = SCOPE.with(|c| c.replace(node));
    SCOPE_FLAGS.with(|c| c.set(flags));
    previous
}

/// The scope being polled on this thread, if any.
pub(crate) fn current() -> Option<ScopeNode> {
    SCOPE.with(|c| c.borrow().clone())
}

/// Runs `f` with the scope being polled on this thread, without cloning it.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&ScopeNode>) -> R) -> R {
    SCOPE.with(|c| f(c.borrow().as_ref()))
}

/// Runs `f` with the scope being polled on this thread if `which` accepts it; `None` if it does
/// not, if there is none, or while the thread's locals are being torn down (so that leaving a
/// scope from a destructor then cannot panic).
pub(crate) fn with_current_if<R>(
    which: impl FnOnce(&ScopeNode) -> bool,
    f: impl FnOnce(&ScopeNode) -> R,
) -> Option<R> {
    SCOPE
        .try_with(|c| c.borrow().as_ref().filter(|now| which(now)).map(f))
        .ok()
        .flatten()
}

/// The fast path of every cancellation point: is the current scope effectively cancelled?
///
/// One look at a thread-local address and one atomic load: no borrow of `SCOPE` (whose count
/// would be stored to twice per check) and no look at whether a thread-local with a destructor
/// was set up. On the AMD machine of BENCHMARKS.md that took the check from 3.1 to 1.7 ns. A
/// `true` is confirmed by the slow path, which reads `SCOPE` itself.
#[inline]
pub(crate) fn current_is_cancelled() -> bool {
    let flags = SCOPE_FLAGS.with(Cell::get);
    // SAFETY: by `install`'s invariant a non-null address is that of the flags of the node that
    // `SCOPE` holds on this thread, alive as long as `SCOPE` holds it; `SCOPE` cannot change
    // during this one load (no code runs between reading the address and the load).
    !flags.is_null() && scope_tree::flags_say_cancelled(unsafe { &*flags })
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

/// Installs `node` as the current scope until the guard is dropped (also on unwind).
pub(crate) fn enter(node: &ScopeNode) -> EnterGuard {
    EnterGuard {
        previous: install(Some(node.clone())),
    }
}

/// Restores the previously current scope when dropped.
pub(crate) struct EnterGuard {
    previous: Option<ScopeNode>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        install(self.previous.take());
    }
}

/// Installs the node in `slot` as the current scope by moving it there, until the guard moves
/// it back (also on unwind): no reference count changes hands, unlike [`enter`]. The slot is
/// empty meanwhile.
pub(crate) fn lend(slot: &mut Option<ScopeNode>) -> LendGuard<'_> {
    let previous = install(slot.take());
    LendGuard { slot, previous }
}

/// Moves a lent node back to its slot, and the previously current scope back in place.
pub(crate) struct LendGuard<'a> {
    slot: &'a mut Option<ScopeNode>,
    previous: Option<ScopeNode>,
}

impl Drop for LendGuard<'_> {
    fn drop(&mut self) {
        *self.slot = install(self.previous.take());
    }
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
