//! Scenario 7 (seed 001): cleanup that itself hits a timeout inside a shield. The inner timeout
//! fires, the outer cancellation is still pending after the shield ends, and the cause chain
//! shows both.
mod common;

use common::*;
use wherefore::{Cancelled, Scope};

#[test]
fn a_timeout_inside_a_cleanup_shield_leaves_the_outer_cancellation_pending() {
    let report = wherefore::testing::run(async {
        let job = Scope::named("job");
        let handle = job.handle();
        job.run(async {
            handle.cancel_with("shutdown");
            let cleanup = Scope::named("cleanup").shielded().run(async {
                let flush = wherefore::move_on_after(secs(2), async {
                    wherefore::sleep(secs(30)).await?; // the flush hangs
                    Ok::<_, Cancelled>("flushed")
                });
                flush.await
            });
            let flushed = cleanup.await?.unwrap();
            assert_eq!(flushed, None, "the flush timed out");
            let pending = wherefore::checkpoint().await.unwrap_err();
            Err::<(), _>(pending)
        })
        .await
    });
    assert!(matches!(report.output(), Some(Ok(None))));
    let causes = report.journal().observed_by("main");
    let rendered: Vec<String> = causes.iter().map(ToString::to_string).collect();
    assert_eq!(rendered.len(), 2, "{rendered:#?}");
    assert!(
        rendered[0].contains("timed out after 2s"),
        "{}",
        rendered[0]
    );
    assert!(
        rendered[1].starts_with("explicit (\"shutdown\")"),
        "{}",
        rendered[1]
    );
    assert_journal(report.journal(), EXPECTED);
}

const EXPECTED: &str = r#"t=0.000 enter    scope "run"
t=0.000 spawn    task "main" in scope "run"
t=0.000 enter    scope "job" in scope "run"
t=0.000 cancel   scope "job": explicit ("shutdown") at tests/scenarios_cleanup_timeout.rs:15:20 [took effect]
t=0.000 enter    scope "cleanup" in scope "job" (shielded)
t=0.000 enter    scope#5 in scope "cleanup"
t=0.000 deadline scope#5 at t=2.000 (set at tests/scenarios_cleanup_timeout.rs:17:29)
t=2.000 clock    t=2.000
t=2.000 cancel   scope#5: scope#5 timed out after 2s (deadline set at tests/scenarios_cleanup_timeout.rs:17:29) [took effect]
t=2.000 observe  task "main" at sleep in scope#5: scope#5 timed out after 2s (deadline set at tests/scenarios_cleanup_timeout.rs:17:29)
t=2.000 leave    scope#5
t=2.000 leave    scope "cleanup"
t=2.000 observe  task "main" at checkpoint in scope "job": explicit ("shutdown") at tests/scenarios_cleanup_timeout.rs:15:20
t=2.000 leave    scope "job"
t=2.000 leave    scope "run"
"#;
