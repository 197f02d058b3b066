//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

pub mod counting;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Runs a test scenario on virtual time (see `wherefore::testing::block_on`).
#[track_caller]
pub fn block_on<F: Future>(future: F) -> F::Output {
    wherefore::testing::block_on(future)
}

/// Error type for tests whose members fail with a message.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Runs `f` on a thread with a small stack (64 KiB), to show that it does not recurse.
pub fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(f)
        .expect("spawn a small-stack thread")
        .join()
        .expect("the small-stack thread did not overflow")
}

/// Runs `f` on a thread with a large stack: for building very deep nestings of futures, whose
/// polling recurses by nature (the user's nesting, not ours).
pub fn on_large_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(1 << 30)
        .spawn(f)
        .expect("spawn a large-stack thread")
        .join()
        .expect("the large-stack thread finished")
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Wraps `leaf` in `depth` nested scopes named `s0` (outermost) .. `s{depth-1}` (innermost).
/// Built in a loop; polling it recurses `depth` levels.
pub fn nested_scopes<T: 'static>(
    depth: usize,
    leaf: impl Future<Output = Result<T, wherefore::Cancelled>> + 'static,
) -> BoxFuture<Result<T, wherefore::Cancelled>> {
    let mut fut: BoxFuture<Result<T, wherefore::Cancelled>> = Box::pin(leaf);
    for i in (0..depth).rev() {
        let inner = fut;
        fut = Box::pin(async move {
            let out = wherefore::Scope::named(format!("s{i}")).run(inner).await?;
            Ok(out.expect("a nested scope absorbed a cancellation that was not its own"))
        });
    }
    fut
}

/// Compares a journal with the expected text literally, printing both in full on a mismatch.
#[track_caller]
pub fn assert_journal(journal: &wherefore::testing::Journal, expected: &str) {
    let actual = journal.to_string();
    if actual != expected {
        panic!("journal differs\n--- expected\n{expected}\n--- actual\n{actual}");
    }
}
