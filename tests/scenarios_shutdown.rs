//! Scenario 2 (seeds 001, 002): graceful shutdown. An explicit cancel of the top scope; three
//! workers clean up in shields with a grace period; one cleanup hangs and is cut at its grace
//! deadline with a `Timeout` cause, while the other two finish.
mod common;

use common::*;
use wherefore::{Cancelled, Nursery, NurseryBuilder};

async fn worker(cleanup: u64) -> Result<(), Cancelled> {
    let _ = wherefore::cancelled().await;
    let flushed = wherefore::shield_with_grace(secs(5), wherefore::sleep(secs(cleanup))).await?;
    if flushed.is_none() {
        return Err(wherefore::checkpoint().await.unwrap_err());
    }
    wherefore::checkpoint().await
}

#[test]
fn a_hanging_cleanup_is_cut_at_its_grace_deadline_while_the_others_finish() {
    let report = wherefore::testing::run(async {
        NurseryBuilder::named("service")
            .run(async |n: Nursery<'_, Cancelled>| {
                n.start_soon_named("cache", worker(1)).unwrap();
                n.start_soon_named("audit", worker(60)).unwrap(); // hangs
                n.start_soon_named("metrics", worker(2)).unwrap();
                wherefore::sleep(secs(10)).await?;
                n.cancel_handle().cancel_with("shutdown");
                wherefore::checkpoint().await
            })
            .await
    });
    assert!(
        report.output().unwrap().is_err(),
        "the service was cancelled"
    );
    assert_journal(report.journal(), EXPECTED);
}

const EXPECTED: &str = r#"t=0.000 enter    scope "run"
t=0.000 spawn    task "main" in scope "run"
t=0.000 enter    scope "service" in scope "run"
t=0.000 spawn    task "cache" in scope "service"
t=0.000 spawn    task "audit" in scope "service"
t=0.000 spawn    task "metrics" in scope "service"
t=10.000 clock    t=10.000
t=10.000 cancel   scope "service": explicit ("shutdown") at tests/scenarios_shutdown.rs:27:35 [took effect]
t=10.000 observe  task "main" at checkpoint in scope "service": explicit ("shutdown") at tests/scenarios_shutdown.rs:27:35
t=10.000 observe  task "cache" at cancelled in scope "service": explicit ("shutdown") at tests/scenarios_shutdown.rs:27:35
t=10.000 enter    scope#8 in scope "service" (shielded)
t=10.000 deadline scope#8 at t=15.000 (set at tests/scenarios_shutdown.rs:11:19)
t=10.000 observe  task "audit" at cancelled in scope "service": explicit ("shutdown") at tests/scenarios_shutdown.rs:27:35
t=10.000 enter    scope#9 in scope "service" (shielded)
t=10.000 deadline scope#9 at t=15.000 (set at tests/scenarios_shutdown.rs:11:19)
t=10.000 observe  task "metrics" at cancelled in scope "service": explicit ("shutdown") at tests/scenarios_shutdown.rs:27:35
t=10.000 enter    scope#10 in scope "service" (shielded)
t=10.000 deadline scope#10 at t=15.000 (set at tests/scenarios_shutdown.rs:11:19)
t=11.000 clock    t=11.000
t=11.000 leave    scope#8
t=11.000 observe  task "cache" at checkpoint in scope "service": explicit ("shutdown") at tests/scenarios_shutdown.rs:27:35
t=11.000 exit     task "cache": cancelled: explicit ("shutdown") at tests/scenarios_shutdown.rs:27:35
t=12.000 clock    t=12.000
t=12.000 leave    scope#10
t=12.000 observe  task "metrics" at checkpoint in scope "service": explicit ("shutdown") at tests/scenarios_shutdown.rs:27:35
t=12.000 exit     task "metrics": cancelled: explicit ("shutdown") at tests/scenarios_shutdown.rs:27:35
t=15.000 clock    t=15.000
t=15.000 cancel   scope#9: scope#9 timed out after 5s (deadline set at tests/scenarios_shutdown.rs:11:19) [took effect]
t=15.000 observe  task "audit" at sleep in scope#9: scope#9 timed out after 5s (deadline set at tests/scenarios_shutdown.rs:11:19)
t=15.000 leave    scope#9
t=15.000 observe  task "audit" at checkpoint in scope "service": explicit ("shutdown") at tests/scenarios_shutdown.rs:27:35
t=15.000 exit     task "audit": cancelled: explicit ("shutdown") at tests/scenarios_shutdown.rs:27:35
t=15.000 leave    scope "service"
t=15.000 leave    scope "run"
"#;
