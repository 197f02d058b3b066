//! Running inside tokio (feature `tokio`).
//!
//! Wherever code runs on a tokio runtime with no `wherefore` runtime around it (a
//! `#[tokio::test]`, a `#[tokio::main]`, a task), the first scope entered outside any other (or a
//! `sleep` outside any scope) gets an environment whose clock is tokio's, so sleeps, deadlines
//! and timeouts work, `tokio::time::pause()` included. Its timers are fired by a small tokio task,
//! aborted when the environment is dropped (when the last scope using it has gone).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::clock::Clock;
use crate::context;
use crate::env::Env;
use crate::identity::TaskId;
use crate::scope_tree::ScopeNode;
use crate::sync::{self, Arc};

/// An environment on tokio's clock, if the calling thread is inside a tokio runtime.
pub(crate) fn ambient_env() -> Option<Arc<Env>> {
    let handle = ::tokio::runtime::Handle::try_current().ok()?;
    let env = Env::new(Clock::tokio(), None, false);
    let driver = handle.spawn(TimerDriver {
        env: Arc::downgrade(&env),
        sleep: Box::pin(::tokio::time::sleep(std::time::Duration::ZERO)),
    });
    *sync::lock(&env.timer_driver) = Some(driver.abort_handle());
    Some(env)
}

/// Fires an environment's due timers, then sleeps (on tokio's timer) until the next one, or until
/// the clock reports that an earlier timer was added.
struct TimerDriver {
    env: std::sync::Weak<Env>,
    sleep: Pin<Box<::tokio::time::Sleep>>,
}

impl Future for TimerDriver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let Some(env) = self.env.upgrade() else {
                return Poll::Ready(());
            };
            let clock = env.clock();
            clock.set_runtime_waker(Some(cx.waker().clone()));
            clock.fire_due();
            let Some(next) = clock.next_timer() else {
                return Poll::Pending; // woken by the clock when a timer is added
            };
            drop(env);
            let deadline = ::tokio::time::Instant::from_std(next);
            if self.sleep.deadline() != deadline {
                self.sleep.as_mut().reset(deadline);
            }
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A nursery member running on a tokio worker thread: installs the nursery's scope, the
    /// runtime environment and the member's task id around each poll, as the nursery does for its
    /// inline members.
    pub(crate) struct Worker<F> {
        scope: ScopeNode,
        env: Option<Arc<Env>>,
        task: TaskId,
        #[pin]
        future: F,
    }
}

impl<F> Worker<F> {
    pub(crate) fn new(scope: ScopeNode, env: Option<Arc<Env>>, task: TaskId, future: F) -> Self {
        Worker {
            scope,
            env,
            task,
            future,
        }
    }
}

impl<F: Future> Future for Worker<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _env = this.env.as_ref().map(context::enter_env);
        let _scope = context::enter(this.scope);
        let _task = context::enter_task(*this.task);
        this.future.poll(cx)
    }
}
