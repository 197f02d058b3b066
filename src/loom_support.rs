//! What the loom models need to drive time by hand. Built only under `--cfg wherefore_loom`.

use std::time::Duration;

use crate::clock::Clock;
use crate::context;
use crate::env::Env;
use crate::sync::Arc;

/// A virtual clock that a model advances by hand, from any thread.
#[derive(Clone, Debug)]
pub struct VirtualTime {
    env: Arc<Env>,
}

impl VirtualTime {
    /// A fresh virtual clock at zero.
    pub fn new() -> Self {
        VirtualTime {
            env: Env::new(Clock::virtual_time(None), None, false),
        }
    }

    /// Runs `f` with this clock as the current runtime's, so that scopes created inside take it
    /// (and their deadlines can be armed).
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        let _env = context::enter_env(&self.env);
        f()
    }

    /// Moves time forward by `by`, firing every deadline and wake-up due.
    pub fn advance(&self, by: Duration) {
        self.env.clock().advance_by(by);
    }
}

impl Default for VirtualTime {
    fn default() -> Self {
        VirtualTime::new()
    }
}
