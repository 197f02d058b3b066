//! Deterministic testing on virtual time.
//!
//! [`block_on`] runs a future on a virtual clock: time stands still while anything can run, and
//! jumps straight to the next deadline or timer when everything is blocked, so a test of an
//! hour-long timeout takes microseconds and every run gives the same order of events.
//!
//! ```
//! use std::time::Duration;
//! wherefore::testing::block_on(async {
//!     let start = wherefore::now();
//!     let out = wherefore::move_on_after(Duration::from_secs(3600), async {
//!         wherefore::sleep(Duration::from_secs(86_400)).await?;
//!         Ok::<_, wherefore::Cancelled>(())
//!     })
//!     .await;
//!     assert!(matches!(out, Ok(None)));
//!     assert_eq!(wherefore::now() - start, Duration::from_secs(3600));
//! });
//! ```

use std::fmt;
use std::future::Future;

use crate::clock::Clock;
use crate::runtime::{self, Stalled};

/// Runs `future` to completion on a fresh virtual clock and returns its output.
///
/// # Panics
///
/// When every task is blocked and no timer is pending (the run could never finish), with a
/// message saying so; [`try_block_on`] returns that as an error instead.
///
/// ```
/// let v = wherefore::testing::block_on(async { 1 + 1 });
/// assert_eq!(v, 2);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    match try_block_on(future) {
        Ok(output) => output,
        Err(stuck) => panic!("{stuck}"),
    }
}

/// Like [`block_on`], but returns [`Stuck`] instead of panicking when the run can never finish.
///
/// ```
/// let out = wherefore::testing::try_block_on(std::future::pending::<()>());
/// assert!(out.is_err());
/// ```
pub fn try_block_on<F: Future>(future: F) -> Result<F::Output, Stuck> {
    let clock = Clock::virtual_time();
    runtime::block_on(clock.clone(), future).map_err(|Stalled| Stuck {
        at: clock.elapsed(),
    })
}

/// The error of [`try_block_on`]: every task was blocked and no timer was pending.
///
/// ```
/// let stuck = wherefore::testing::try_block_on(std::future::pending::<()>()).unwrap_err();
/// assert_eq!(stuck.to_string(), "stuck at t=0.000s: every task is blocked and no timer is pending");
/// ```
#[derive(Debug, Clone)]
pub struct Stuck {
    at: std::time::Duration,
}

impl Stuck {
    /// The virtual time at which the run got stuck.
    ///
    /// See the type-level example.
    pub fn at(&self) -> std::time::Duration {
        self.at
    }
}

impl fmt::Display for Stuck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stuck at t={:.3}s: every task is blocked and no timer is pending",
            self.at.as_secs_f64()
        )
    }
}

impl std::error::Error for Stuck {}
