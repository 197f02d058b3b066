//! The embedded executor: runs one future to completion on the current thread, with a clock.
//!
//! Nurseries poll their members inline, so the executor only ever drives one future (the root);
//! all it adds is the environment (clock, hook, numbering), a root scope and a `main` task, and
//! waiting: it parks the thread until a waker fires or the next timer is due (real clock), or
//! jumps the virtual clock to the next timer.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::pin;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use crate::clock::Clock;
use crate::context;
use crate::env::Env;
use crate::event::{Event, Hook};
use crate::identity::{TaskId, TaskInfo};
use crate::scope_tree::ScopeNode;
use crate::snapshot::TreeSnapshot;
use crate::sync::{Arc, AtomicBool, Frozen, Ordering};

/// Runs `future` to completion on the current thread with the real clock, and returns its output.
///
/// The same as `Runtime::new().block_on(future)`; see [`Runtime`].
///
/// ```
/// let answer = wherefore::run(async {
///     wherefore::sleep(std::time::Duration::from_millis(1)).await?;
///     Ok::<_, wherefore::Cancelled>(42)
/// });
/// assert_eq!(answer.unwrap(), 42);
/// ```
#[track_caller]
pub fn run<F: Future>(future: F) -> F::Output {
    Runtime::new().block_on(future)
}

/// The embedded executor, with options: a current-thread runtime on the real clock.
///
/// The root of everything inside is a scope named `"run"` and a task named `"main"`, so `sleep`,
/// deadlines and timeouts work and nurseries nest under it. Scopes and tasks are numbered from 1
/// in creation order within the runtime. Enough for examples, small tools and services that need
/// no other runtime.
///
/// ```
/// let v = wherefore::Runtime::new().block_on(async { 7 });
/// assert_eq!(v, 7);
/// ```
#[derive(Default)]
pub struct Runtime {
    hook: Option<Frozen<dyn Hook>>,
}

impl Runtime {
    /// A runtime with no hook.
    ///
    /// ```
    /// let runtime = wherefore::Runtime::new();
    /// let slept = runtime.block_on(wherefore::sleep(std::time::Duration::from_millis(1)));
    /// assert!(slept.is_ok()); // a real millisecond
    /// ```
    pub fn new() -> Self {
        Runtime::default()
    }

    /// Reports every [`Event`] of this runtime to `hook`: spawns, exits, cancel requests with
    /// their cause and outcome, cancellations observed at cancellation points, shields and
    /// deadlines. See [`Hook`] for more.
    ///
    /// ```
    /// # use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
    /// # use wherefore::event::{Event, Hook};
    /// # #[derive(Default)]
    /// # struct CountSpawns(AtomicUsize);
    /// # impl Hook for CountSpawns {
    /// #     fn on_event(&self, _at: std::time::Duration, event: &Event) {
    /// #         if let Event::TaskSpawned { .. } = event {
    /// #             self.0.fetch_add(1, Ordering::Relaxed);
    /// #         }
    /// #     }
    /// # }
    /// // `CountSpawns` counts the `Event::TaskSpawned` it is given.
    /// let hook = Arc::new(CountSpawns::default());
    /// wherefore::Runtime::new().with_hook(hook.clone()).block_on(async {});
    /// assert_eq!(hook.0.load(Ordering::Relaxed), 1); // the runtime's `main` task
    /// ```
    pub fn with_hook(mut self, hook: std::sync::Arc<dyn Hook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Runs `future` to completion on the current thread and returns its output.
    ///
    /// ```
    /// use std::time::Duration;
    /// let out = wherefore::Runtime::new().block_on(wherefore::move_on_after(
    ///     Duration::from_millis(10),
    ///     wherefore::sleep(Duration::from_secs(3600)),
    /// ));
    /// assert!(matches!(out, Ok(None))); // the timeout fired 10 ms in, on the real clock
    /// ```
    #[track_caller]
    pub fn block_on<F: Future>(self, future: F) -> F::Output {
        let env = Env::new(Clock::real(), self.hook, false);
        let (root, main) = root_of(&env, Location::caller());
        match drive(&env, &root, main, future) {
            Ok(output) => output,
            Err(Stalled(_)) => unreachable!("the real clock never stalls: it parks until woken"),
        }
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

/// Every task is blocked and no timer is pending: on the virtual clock, nothing can ever happen.
/// Carries the picture of the live tree at that moment.
#[derive(Debug)]
pub(crate) struct Stalled(pub(crate) TreeSnapshot);

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

/// Makes a runtime's root scope (`"run"`) and main task, numbered 1 and 2.
pub(crate) fn root_of(
    env: &Arc<Env>,
    started_at: &'static Location<'static>,
) -> (ScopeNode, TaskInfo) {
    let _env = context::enter_env(env);
    let root = ScopeNode::new(Some(Frozen::from("run")));
    let main = TaskInfo {
        id: TaskId(env.next_id()),
        name: Some(Frozen::from("main")),
        spawned_at: started_at,
    };
    (root, main)
}

/// Drives `future` to completion as task `main` in scope `root`, with `env`.
pub(crate) fn drive<F: Future>(
    env: &Arc<Env>,
    root: &ScopeNode,
    main: TaskInfo,
    future: F,
) -> Result<F::Output, Stalled> {
    let _env = context::enter_env(env);
    root.enter(None, Some(env.clone()));
    env.task_started(&main, root.info());
    env.emit_detail(|| Event::TaskSpawned {
        task: main.clone(),
        scope: root.info().clone(),
    });
    let signal = Arc::new(Signal {
        woken: AtomicBool::new(true),
        thread: thread::current(),
    });
    let waker = Waker::from(signal.clone());
    let clock = env.clock().clone();
    clock.set_runtime_waker(Some(waker.clone()));
    let _detach = Detach {
        clock: clock.clone(),
        root: root.clone(),
    };
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if !clock.is_virtual() {
            // Real time passes while tasks run: fire what is due before every poll, so a stream
            // of wake-ups (say, spawns from another thread) cannot starve the timers.
            clock.fire_due();
        }
        if signal.woken.swap(false, Ordering::AcqRel) {
            let _scope = context::lend(root);
            let _task = context::enter_task(main.id);
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                env.task_ended(main.id);
                return Ok(output);
            }
            continue;
        }
        // Nothing to poll: every task is blocked. A task waiting for that
        // (`testing::wait_all_tasks_blocked`) is let go before time moves on, as Trio's is
        // before its autojump clock jumps, and before the run is reported stuck.
        if env.release_idle() {
            continue;
        }
        if clock.is_virtual() {
            if !clock.advance_to_next_timer() {
                return Err(Stalled(TreeSnapshot::take(root, &env.live_tasks())));
            }
            env.emit_detail(|| Event::ClockAdvanced { to: env.elapsed() });
            clock.fire_due();
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
