//! Every piece of synchronisation the crate uses, in one place.
//!
//! Under `--cfg wherefore_loom` these are `loom`'s types, so the loom models in `loom-tests/` check
//! the real scope tree rather than a copy of it. The cfg name is crate-specific (as crossbeam does):
//! a plain `--cfg loom` would also flip `concurrent-queue` and `event-listener`, whose loom builds
//! do not compile against ours. No other file names `std::sync`.

#[cfg(not(wherefore_loom))]
pub(crate) use std::sync::{
    Arc, Mutex, MutexGuard, TryLockError,
    atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering},
};
#[cfg(not(wherefore_loom))]
pub(crate) use std::thread_local;

#[cfg(wherefore_loom)]
pub(crate) use loom::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering},
};
#[cfg(wherefore_loom)]
pub(crate) use loom::thread_local;
#[cfg(wherefore_loom)]
pub(crate) use std::sync::TryLockError;

/// A cell whose data is reached through a raw pointer, only where a lock (or another argument
/// written at the call) rules out a second access at the same time: the links of a timer that
/// lives in its owner's future (`timer_queue/linked.rs`).
///
/// Under loom it is loom's, which checks that no two accesses race.
#[cfg(not(wherefore_loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(wherefore_loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a pointer to the data (the same signature as loom's).
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(wherefore_loom)]
pub(crate) use loom::cell::UnsafeCell;

/// An `Arc` for data that is immutable once shared (cause payloads, names).
///
/// Always std's: such data needs no model, and loom's `Arc` cannot hold an unsized value such as
/// `dyn Debug`.
pub(crate) type Frozen<T> = std::sync::Arc<T>;

/// An `Arc` for a nursery member's cell, which is shared as a `dyn` (by its member set and its
/// handle).
///
/// Always std's, as [`Frozen`] is: loom's `Arc` cannot hold an unsized value. What the cell
/// shares mutably (its exit) is behind a [`Mutex`], which loom does model.
pub(crate) type DynArc<T> = std::sync::Arc<T>;

/// Locks `mutex`, ignoring poisoning.
///
/// Every critical section in the crate leaves its state consistent before it can panic (user code
/// never runs under one of our locks), so a poisoned lock still guards valid data.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Tries to lock `mutex` without blocking, ignoring poisoning: `None` if it is held (by another
/// thread, or by this one further up the stack).
pub(crate) fn try_lock<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// A counter handing out 1, 2, 3, ...: numbers scopes and tasks within one runtime.
///
/// Not modelled by loom, for the same reason as [`next_id`].
#[derive(Debug)]
pub(crate) struct IdCounter(std::sync::atomic::AtomicU64);

impl IdCounter {
    pub(crate) const fn new() -> Self {
        IdCounter(std::sync::atomic::AtomicU64::new(1))
    }

    pub(crate) fn next(&self) -> u64 {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// Hands out process-wide unique, increasing identifiers for scopes and tasks created outside
/// any runtime.
///
/// Not modelled by loom on purpose: identifiers only name things, no decision depends on their
/// order across threads, and loom atomics cannot live in a `static`.
pub(crate) fn next_id() -> u64 {
    static IDS: IdCounter = IdCounter::new();
    IDS.next()
}

/// A fresh number for a runtime environment, process-wide, from 1 (not modelled by loom, as
/// [`next_id`]).
pub(crate) fn next_env_serial() -> u64 {
    static SERIALS: IdCounter = IdCounter::new();
    SERIALS.next()
}

/// Mutable access to a mutex's data through a unique reference, ignoring poisoning.
pub(crate) fn get_mut<T>(mutex: &mut Mutex<T>) -> &mut T {
    match mutex.get_mut() {
        Ok(data) => data,
        Err(poisoned) => poisoned.into_inner(),
    }
}
