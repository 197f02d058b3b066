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
use crate::scope_tree::ScopeNode;
use crate::sync::{self, Arc, thread_local};

#[cfg(not(wherefore_loom))]
thread_local! {
    static SCOPE: RefCell<Option<ScopeNode>> = const { RefCell::new(None) };
    static TASK: Cell<Option<TaskId>> = const { Cell::new(None) };
    static ENV: RefCell<Option<Arc<Env>>> = const { RefCell::new(None) };
}

// loom's `thread_local!` has no `const` initialiser form.
#[cfg(wherefore_loom)]
thread_local! {
    static SCOPE: RefCell<Option<ScopeNode>> = RefCell::new(None);
    static TASK: Cell<Option<TaskId>> = Cell::new(None);
    static ENV: RefCell<Option<Arc<Env>>> = RefCell::new(None);
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
#[inline]
pub(crate) fn current_is_cancelled() -> bool {
    SCOPE.with(|c| c.borrow().as_ref().is_some_and(|node| node.is_cancelled()))
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
    let previous = SCOPE.with(|c| c.replace(Some(node.clone())));
    EnterGuard { previous }
}

/// Restores the previously current scope when dropped.
pub(crate) struct EnterGuard {
    previous: Option<ScopeNode>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        SCOPE.with(|c| *c.borrow_mut() = previous);
    }
}

/// Installs the node in `slot` as the current scope by moving it there, until the guard moves
/// it back (also on unwind): no reference count changes hands, unlike [`enter`]. The slot is
/// empty meanwhile.
pub(crate) fn lend(slot: &mut Option<ScopeNode>) -> LendGuard<'_> {
    let previous = SCOPE.with(|c| c.replace(slot.take()));
    LendGuard { slot, previous }
}

/// Moves a lent node back to its slot, and the previously current scope back in place.
pub(crate) struct LendGuard<'a> {
    slot: &'a mut Option<ScopeNode>,
    previous: Option<ScopeNode>,
}

impl Drop for LendGuard<'_> {
    fn drop(&mut self) {
        let previous = self.previous.take();
        *self.slot = SCOPE.with(|c| c.replace(previous));
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
