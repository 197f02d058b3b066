//! Inside tokio (feature `tokio`): nurseries, sleeps and timeouts need no setup beyond the
//! feature, on both runtime flavours, and follow tokio's paused clock.
#![cfg(feature = "tokio")]

use std::time::Duration;

use wherefore::{Cancelled, Cause, Nursery, Scope};

async fn service() -> Result<Vec<&'static str>, wherefore::NurseryError<Cancelled>> {
    let log = std::cell::RefCell::new(Vec::new());
    wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
        let log = &log;
        n.spawn_named("slow", async move {
            wherefore::sleep(Duration::from_millis(20)).await?;
            log.borrow_mut().push("slow");
            Ok(())
        })
        .unwrap();
        n.spawn_named("fast", async move {
            wherefore::sleep(Duration::from_millis(5)).await?;
            log.borrow_mut().push("fast");
            Ok(())
        })
        .unwrap();
        let timed_out = wherefore::move_on_after(Duration::from_millis(10), async {
            wherefore::sleep(Duration::from_secs(3600)).await?;
            Ok::<_, Cancelled>(())
        })
        .await?;
        assert!(timed_out.is_none());
        log.borrow_mut().push("timeout");
        Ok(())
    })
    .await?;
    Ok(log.into_inner())
}

#[tokio::test]
async fn a_nursery_runs_inside_a_current_thread_tokio_test() {
    assert_eq!(service().await.unwrap(), ["fast", "timeout", "slow"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nursery_runs_inside_a_multi_thread_tokio_test() {
    assert_eq!(service().await.unwrap(), ["fast", "timeout", "slow"]);
}

/// With tokio's clock paused, an hour-long timeout takes no real time and the cause reports it.
#[tokio::test(start_paused = true)]
async fn a_timeout_follows_tokios_paused_clock() {
    let real = std::time::Instant::now();
    let start = tokio::time::Instant::now();
    let scope = Scope::named("request").with_timeout(Duration::from_secs(3600));
    let handle = scope.handle();
    let out = scope
        .run(async {
            wherefore::sleep(Duration::from_secs(7200)).await?;
            Ok::<_, Cancelled>(())
        })
        .await;
    assert!(matches!(out, Ok(None)));
    assert_eq!(
        tokio::time::Instant::now() - start,
        Duration::from_secs(3600)
    );
    assert!(matches!(handle.cause(), Some(Cause::Timeout(_))));
    assert!(
        real.elapsed() < Duration::from_secs(5),
        "paused time took real time"
    );
}

#[tokio::test(start_paused = true)]
async fn a_sleep_outside_any_scope_uses_tokios_clock() {
    let start = tokio::time::Instant::now();
    wherefore::sleep(Duration::from_secs(60)).await.unwrap();
    assert_eq!(tokio::time::Instant::now() - start, Duration::from_secs(60));
    assert_eq!(
        wherefore::now().duration_since(start.into_std()),
        Duration::from_secs(60)
    );
}
