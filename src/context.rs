//! The ambient scope: which scope the code being polled right now runs in.
//!
//! Scopes nest by dynamic extent, as in Trio: a scope future installs its node here for the length
//! of each of its polls, and a scope first polled while another is installed becomes its child.
//! Cancellation points read it to learn whether they must fail. It is per thread, and only ever
//! set for the duration of a poll, so a future moved to another thread between polls finds the
//! right scope there too.

use std::cell::RefCell;

use crate::scope_tree::ScopeNode;
use crate::sync::thread_local;

#[cfg(not(wherefore_loom))]
thread_local! {
    static CURRENT: RefCell<Option<ScopeNode>> = const { RefCell::new(None) };
}

// loom's `thread_local!` has no `const` initialiser form.
#[cfg(wherefore_loom)]
thread_local! {
    static CURRENT: RefCell<Option<ScopeNode>> = RefCell::new(None);
}

/// The scope being polled on this thread, if any.
pub(crate) fn current() -> Option<ScopeNode> {
    CURRENT.with(|c| c.borrow().clone())
}

/// The fast path of every cancellation point: is the current scope effectively cancelled?
#[inline]
pub(crate) fn current_is_cancelled() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(|node| node.is_cancelled()))
}

/// Installs `node` as the current scope until the guard is dropped (also on unwind).
pub(crate) fn enter(node: &ScopeNode) -> EnterGuard {
    let previous = CURRENT.with(|c| c.replace(Some(node.clone())));
    EnterGuard { previous }
}

/// Restores the previously current scope when dropped.
pub(crate) struct EnterGuard {
    previous: Option<ScopeNode>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}
