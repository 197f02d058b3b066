//! A small simulated service (no network) that shows every kind of cause.
//!
//! - requests run in their own scope with a timeout; one is too slow and hits it (`Timeout`);
//! - a worker pool where one worker fails (`SiblingError`) and one panics (`SiblingPanic`, in a
//!   pool that collects panics), while their siblings clean up in shields;
//! - a background refresher that only stops at shutdown, seeing a `Parent` chain up to the
//!   `Explicit` shutdown request, and flushes in a shield with a grace period.
//!
//! Run it with `cargo run --example service`. With `--features tracing` the same lines go
//! through `tracing` (`tracing-subscriber`'s fmt layer), with wherefore's own events at `DEBUG`
//! beside them: each cancellation with its cause as fields (`cause.kind`, `cause`,
//! `cause.location`, `tag`), inside the spans of the task and the named scopes it happened in.

use std::time::{Duration, Instant};

use wherefore::{Cancelled, Nursery, NurseryBuilder, Scope};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn log(start: Instant, what: impl std::fmt::Display) {
    #[cfg(not(feature = "tracing"))]
    println!("[{:>5} ms] {what}", start.elapsed().as_millis());
    #[cfg(feature = "tracing")]
    tracing::info!(target: "service", "[{:>5} ms] {what}", start.elapsed().as_millis());
}

/// With the feature `tracing`: everything to stdout through the fmt layer, this example's lines
/// at `INFO` and wherefore's events from `DEBUG` up.
#[cfg(feature = "tracing")]
fn log_through_tracing() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = Targets::new()
        .with_target("service", LevelFilter::INFO)
        .with_target("wherefore", LevelFilter::DEBUG);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .without_time()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())),
        )
        .with(filter)
        .init();
}

/// One request: a handler that takes `work` inside a 50 ms timeout.
async fn handle_request(start: Instant, id: u32, work: Duration) -> Result<(), Cancelled> {
    let request = Scope::named(format!("request-{id}")).with_timeout(ms(50));
    let handle = request.handle();
    let outcome = request
        .run(async {
            if let Err(cancelled) = wherefore::sleep(work).await {
                log(start, format_args!("request {id}: handler saw {cancelled}"));
                return Err(cancelled);
            }
            Ok(())
        })
        .await?;
    match outcome {
        Some(()) => log(start, format_args!("request {id}: answered")),
        None => log(
            start,
            format_args!("request {id}: gave up: {}", handle.cause().unwrap()),
        ),
    }
    Ok(())
}

/// A worker that runs until cancelled, then cleans up for `cleanup` inside a shield.
async fn worker(start: Instant, name: &str, cleanup: Duration) -> Result<(), BoxError> {
    let cause = wherefore::cancelled().await;
    log(start, format_args!("worker {name}: cancelled: {cause}"));
    wherefore::shield(wherefore::sleep(cleanup)).await?;
    log(start, format_args!("worker {name}: cleanup finished"));
    Err(Box::new(wherefore::checkpoint().await.unwrap_err()))
}

/// A pool of workers where `culprit` fails after 30 ms, by error or by panic.
async fn pool(start: Instant, name: &str, panics: bool) {
    let result = NurseryBuilder::named(name.to_owned())
        .collect_panics()
        .run(async |n: Nursery<'_, BoxError>| {
            n.start_soon_named("steady", worker(start, "steady", ms(10)))
                .unwrap();
            n.start_soon_named("culprit", async move {
                wherefore::sleep(ms(30)).await?;
                if panics {
                    panic!("index out of bounds");
                }
                Err::<(), BoxError>("disk full".into())
            })
            .unwrap();
            Ok(())
        })
        .await;
    if let Err(err) = result {
        log(start, format_args!("pool {name}: {err}"));
    }
}

fn main() {
    // The worker pool reports the panic; keep the default hook's backtrace out of the output.
    std::panic::set_hook(Box::new(|info| eprintln!("(panic hook) {info}")));
    #[cfg(feature = "tracing")]
    log_through_tracing();
    let start = Instant::now();
    wherefore::run(async {
        let server = Scope::named("server");
        let shutdown = server.handle();
        let served = server
            .run(wherefore::nursery(async |n: Nursery<'_, BoxError>| {
                n.start_soon_named("refresher", async {
                    let cause = wherefore::cancelled().await;
                    log(start, format_args!("refresher: cancelled: {cause}"));
                    // Cleanup that can await, but for 20 ms at most: the flush hangs.
                    let flush = Scope::named("flush").shielded().with_timeout(ms(20));
                    let grace = flush.handle();
                    let flushed = flush.run(async {
                        wherefore::sleep(ms(500)).await?;
                        Ok::<_, Cancelled>(())
                    });
                    if flushed.await?.is_none() {
                        log(
                            start,
                            format_args!("refresher: flush cut: {}", grace.cause().unwrap()),
                        );
                    }
                    Err::<(), BoxError>(Box::new(wherefore::checkpoint().await.unwrap_err()))
                })
                .unwrap();

                for (id, work) in [(1, ms(10)), (2, ms(200)), (3, ms(5))] {
                    handle_request(start, id, work).await?;
                }
                pool(start, "pool-a", false).await;
                pool(start, "pool-b", true).await;

                log(start, "main: shutting down");
                shutdown.cancel_with("SIGTERM");
                wherefore::checkpoint().await?; // fails: the server scope absorbs it
                Ok(())
            }))
            .await;
        match served {
            Ok(Some(())) => log(start, "server: finished"),
            Ok(None) => log(
                start,
                format_args!("server: stopped: {}", shutdown.cause().unwrap()),
            ),
            Err(err) => log(start, format_args!("server: failed: {err}")),
        }
    });
}
