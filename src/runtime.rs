//! The embedded executor: runs one future to completion on the current thread, with a clock.
//!
//! Nurseries poll their members inline, so the executor only ever drives one future (the root);
//! all it adds is a root scope carrying the clock, and waiting: it parks the thread until a waker
//! fires or the next timer is due (real clock), or jumps the virtual clock to the next timer.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use crate::clock::Clock;
use crate::context;
use crate::scope_tree::ScopeNode;
use crate::sync::{Arc, AtomicBool, Frozen, Ordering};

/// Runs `future` to completion on the current thread with the real clock, and returns its output.
///
/// The root of everything inside is a scope named `"run"`, so `sleep`, deadlines and timeouts
/// work, and nurseries and scopes nest under it. Enough for examples and small tools; it needs
/// no other runtime.
///
/// ```
/// let answer = wherefore::run(async {
///     wherefore::sleep(std::time::Duration::from_millis(1)).await?;
///     Ok::<_, wherefore::Cancelled>(42)
/// });
/// assert_eq!(answer.unwrap(), 42);
/// ```
pub fn run<F: Future>(future: F) -> F::Output {
    match block_on(Clock::real(), future) {
        Ok(output) => output,
        Err(Stalled) => unreachable!("the real clock never stalls: it parks until woken"),
    }
}

/// Every task is blocked and no timer is pending: on the virtual clock, nothing can ever happen.
#[derive(Debug)]
pub(crate) struct Stalled;

/// Wakes the executor: sets the flag and unparks its thread.
struct Signal {
    woken: AtomicBool,
    thread: Thread,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Drives `future` to completion with `clock`.
pub(crate) fn block_on<F: Future>(clock: Arc<Clock>, future: F) -> Result<F::Output, Stalled> {
    let root = ScopeNode::new(Some(Frozen::from("run")));
    root.enter(None, Some(clock.clone()));
    let signal = Arc::new(Signal {
        woken: AtomicBool::new(true),
        thread: thread::current(),
    });
    let waker = Waker::from(signal.clone());
    clock.set_runtime_waker(Some(waker.clone()));
    let _detach = Detach {
        clock: clock.clone(),
        root: root.clone(),
    };
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if signal.woken.swap(false, Ordering::AcqRel) {
            let _current = context::enter(&root);
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return Ok(output);
            }
            continue;
        }
        if clock.is_virtual() {
            if !clock.advance_to_next_timer() {
                return Err(Stalled);
            }
            continue;
        }
        if clock.fire_due() > 0 {
            continue;
        }
        match clock.next_timer() {
            Some(at) => thread::park_timeout(at.saturating_duration_since(clock.now())),
            None => thread::park(),
        }
    }
}

/// Unhooks the runtime from its clock and leaves the root scope, also on unwind.
struct Detach {
    clock: Arc<Clock>,
    root: ScopeNode,
}

impl Drop for Detach {
    fn drop(&mut self) {
        self.clock.set_runtime_waker(None);
        self.root.exit();
    }
}
