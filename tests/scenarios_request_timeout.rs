//! Scenario 1 (seed 003): a request timeout silently kills the background write it started; the
//! fix gives the write a home that lives longer than the request.
mod common;

use common::*;
use wherefore::{Cancelled, Nursery, Scope, TaskExit};

#[test]
fn a_request_timeout_cancels_the_write_it_started() {
    let report = wherefore::testing::run(async {
        Scope::named("request")
            .with_timeout(secs(5))
            .run(wherefore::NurseryBuilder::named("handler").run(
                async |n: Nursery<'_, Cancelled>| {
                    n.start_soon_named("store-result", wherefore::sleep(secs(8)))
                        .unwrap();
                    wherefore::sleep(secs(1)).await?; // answer the client
                    Ok(())
                },
            ))
            .await
    });
    // The timeout cut the write and reached the nursery, which hands it to the request (S18).
    assert!(matches!(report.output(), Some(Ok(None))));
    let causes = report.journal().observed_by("store-result");
    assert_eq!(causes.len(), 1);
    assert_eq!(
        causes[0].chain().map(|c| c.kind()).collect::<Vec<_>>(),
        ["parent", "timeout"],
        "the Timeout reached the writer through a Parent link"
    );
    assert_journal(
        report.journal(),
        r#"t=0.000 enter    scope "run"
t=0.000 spawn    task "main" in scope "run"
t=0.000 enter    scope "request" in scope "run"
t=0.000 deadline scope "request" at t=5.000 (set at tests/scenarios_request_timeout.rs:12:14)
t=0.000 enter    scope "handler" in scope "request"
t=0.000 spawn    task "store-result" in scope "handler"
t=1.000 clock    t=1.000
t=5.000 clock    t=5.000
t=5.000 cancel   scope "request": scope "request" timed out after 5s (deadline set at tests/scenarios_request_timeout.rs:12:14) [took effect]
t=5.000 observe  task "store-result" at sleep in scope "handler": parent scope "request" was cancelled: scope "request" timed out after 5s (deadline set at tests/scenarios_request_timeout.rs:12:14)
t=5.000 exit     task "store-result": cancelled: parent scope "request" was cancelled: scope "request" timed out after 5s (deadline set at tests/scenarios_request_timeout.rs:12:14)
t=5.000 leave    scope "handler"
t=5.000 leave    scope "request"
t=5.000 leave    scope "run"
"#,
    );
}

#[test]
fn a_write_spawned_into_a_longer_lived_nursery_survives_the_request_timeout() {
    let report = wherefore::testing::run(async {
        wherefore::NurseryBuilder::named("service")
            .run(async |jobs: Nursery<'_, Cancelled>| {
                let mut write = Scope::named("request")
                    .with_timeout(secs(5))
                    .run(async {
                        let write = jobs.spawn_named("store-result", wherefore::sleep(secs(8)));
                        wherefore::sleep(secs(1)).await?; // answer the client
                        Ok::<_, Cancelled>(write.unwrap())
                    })
                    .await?
                    .expect("answered in time");
                write.join().await
            })
            .await
    });
    assert!(matches!(report.output(), Some(Ok(TaskExit::Completed(())))));
    assert!(report.journal().observed_by("store-result").is_empty());
    assert_journal(
        report.journal(),
        r#"t=0.000 enter    scope "run"
t=0.000 spawn    task "main" in scope "run"
t=0.000 enter    scope "service" in scope "run"
t=0.000 enter    scope "request" in scope "service"
t=0.000 deadline scope "request" at t=5.000 (set at tests/scenarios_request_timeout.rs:58:22)
t=0.000 spawn    task "store-result" in scope "service"
t=1.000 clock    t=1.000
t=1.000 leave    scope "request"
t=8.000 clock    t=8.000
t=8.000 exit     task "store-result": completed
t=8.000 leave    scope "service"
t=8.000 leave    scope "run"
"#,
    );
}
