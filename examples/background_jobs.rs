//! Background work in a persistent task group, and a graceful shutdown.
//!
//! A request loop answers requests inside a 30 ms timeout each and hands slow follow-up work
//! (writing results) to a persistent group, so a request that times out does not take its write
//! down with it. One write fails; the failure is reported, the others carry on. Then the service
//! shuts the group down with a 50 ms grace period: writes in flight finish their cleanup in a
//! shield, and one job that hangs on a foreign future is dropped and named in the report.
//!
//! Run it with `cargo run --example background_jobs`.

use std::time::{Duration, Instant};

use wherefore::{BoxError, Cancelled, Nursery, Scope};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn log(start: Instant, what: impl std::fmt::Display) {
    println!("[{:>4} ms] {what}", start.elapsed().as_millis());
}

/// A write that takes `work`; on cancellation it flushes for 10 ms in a shield.
async fn write_result(start: Instant, request: u32, work: Duration) -> Result<(), BoxError> {
    if request == 3 {
        wherefore::sleep(ms(5)).await?;
        return Err("disk full".into());
    }
    if let Err(cancelled) = wherefore::sleep(work).await {
        log(start, format_args!("write {request}: {cancelled}"));
        wherefore::shield(wherefore::sleep(ms(10))).await?;
        log(start, format_args!("write {request}: flushed"));
        return Err(cancelled.into());
    }
    log(start, format_args!("write {request}: stored"));
    Ok(())
}

fn main() {
    let start = Instant::now();
    wherefore::run(async {
        let served = wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let jobs = n.persistent_group_with::<BoxError>("jobs", move |failure| {
                log(start, format_args!("job failed: {failure}"))
            });
            jobs.start_soon_named("cache-warmer", async {
                std::future::pending::<()>().await; // hangs on a foreign future, never checks
                Ok(())
            })
            .unwrap();

            // The request loop: request 2 and 4 are too slow for their 30 ms timeout.
            for (request, handling, write) in [(1, 5, 20), (2, 60, 20), (3, 5, 20), (4, 45, 200)] {
                let scope = Scope::named(format!("request-{request}")).with_timeout(ms(30));
                let handle = scope.handle();
                let jobs = &jobs;
                let answered = scope
                    .run(async move {
                        jobs.start_soon_named(
                            format!("write-{request}"),
                            write_result(start, request, ms(write)),
                        )
                        .unwrap();
                        wherefore::sleep(ms(handling)).await?;
                        Ok::<_, Cancelled>(())
                    })
                    .await?;
                match answered {
                    Some(()) => log(start, format_args!("request {request}: answered")),
                    None => log(
                        start,
                        format_args!("request {request}: {}", handle.cause().unwrap()),
                    ),
                }
            }

            log(start, "shutting down the jobs with a 50 ms grace period");
            let report = jobs.shutdown(ms(50)).await;
            log(start, format_args!("{report}"));
            Ok(())
        })
        .await;
        if let Err(err) = served {
            log(start, format_args!("service failed: {err}"));
        }
    });
}
