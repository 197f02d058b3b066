//! A scope's record as its parent's `children` and the clock's timers keep it: its address,
//! without a reference count (invariant 6 of the scope tree).
//!
//! A scope with a deadline is registered in two places while it runs. Holding a reference in
//! each cost two atomic read-modify-writes per place (the clone and its drop: about 12 ns
//! together on the machine of BENCHMARKS.md; ~50 ns of a ~450 ns timeout for the two places,
//! measured). The address costs nothing; what makes it safe is where it is kept and when it is
//! removed:
//!
//! - it is put there by the scope itself, while its owner holds a reference;
//! - it is removed under the lock that guards the place (the parent's lock, the clock's), by
//!   `exit` at the latest (or by firing or moving the deadline, for the timer);
//! - every owner that enters a scope leaves it before it lets go of its reference, also when a
//!   panic unwinds through it ([`ExitOnDrop`]); `Inner`'s drop checks that premise. An owner
//!   that is leaked (a forgotten scope future) never lets go, so its address stays valid too.
//!
//! So an address found under the lock of the place it is kept names a live record, and
//! [`Registered::node`] may take a new reference from it.

use super::{Inner, ScopeNode};
use crate::sync::Arc;

/// The address of a registered scope's record (see the module documentation).
pub(crate) struct Registered(*const Inner);

// SAFETY: the address is only read back into a `ScopeNode`, which is `Send + Sync` itself; the
// record it points to is only touched through that node.
unsafe impl Send for Registered {}
// SAFETY: as for `Send`: a shared `Registered` gives access to nothing but the address.
unsafe impl Sync for Registered {}

impl Registered {
    /// A new reference to the registered scope.
    ///
    /// # Safety
    ///
    /// The caller holds the lock of the place this address is kept in, and has found it there:
    /// the scope has not been removed from it, so its owner still holds a reference.
    pub(crate) unsafe fn node(&self) -> ScopeNode {
        let record = self.0;
        // SAFETY: `record` came from `Arc::as_ptr` (in `ScopeNode::registered`), the pointer
        // `Arc::into_raw` returns; the caller guarantees a strong reference is alive, so
        // adding one and wrapping it leaves the count right.
        unsafe {
            Arc::increment_strong_count(record);
            ScopeNode {
                inner: Arc::from_raw(record),
            }
        }
    }

    /// The registered scope's flags word (see [`ScopeNode::flags`]).
    ///
    /// # Safety
    ///
    /// As for [`node`](Registered::node): the record is alive while the caller looks.
    pub(crate) unsafe fn flags(&self) -> &super::AtomicU64 {
        // SAFETY: the caller guarantees the record is alive for as long as it looks.
        unsafe { &(*self.0).flags }
    }

    /// Asks the processor to bring the registered record into the cache, ahead of a walk that
    /// will reach it: a hint, which reads nothing and cannot fault (so any address will do, and
    /// no lock is needed). A no-op where no such hint is available.
    pub(crate) fn prefetch(&self) {
        // The record's reference count (just before it), its state and its flags span the
        // first three cache lines from there: a walk touches all three.
        // (Not under Miri, which has nothing to hint.)
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        for line in 0..3 {
            let at = self.0.cast::<i8>().wrapping_sub(16).wrapping_add(64 * line);
            // SAFETY: `prefetcht0` only hints the cache; it never faults or reads
            // architecturally, whatever the address.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at);
            }
        }
    }
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Registered").field(&self.0).finish()
    }
}

impl ScopeNode {
    /// This scope's address, to be kept where the scope registers (invariant 6).
    pub(crate) fn registered(&self) -> Registered {
        Registered(Arc::as_ptr(&self.inner))
    }
}

/// Leaves a scope when dropped: held by an owner that entered the scope while it runs code that
/// may panic (dropping members, a hook) before its reference goes, so that the scope is
/// unregistered on every road out (invariant 6).
pub(crate) struct ExitOnDrop(pub(crate) ScopeNode);

impl Drop for ExitOnDrop {
    fn drop(&mut self) {
        self.0.exit();
    }
}
