//! Scenario 3 (seed 000): a sibling panics while another is inside a shielded cleanup. The
//! cleanup finishes first; then the nursery reports the panic.
mod common;

use common::*;
use wherefore::{Cancelled, FailureKind, Nursery, NurseryBuilder};

#[test]
fn shielded_cleanup_finishes_before_the_nursery_reports_a_sibling_panic() {
    let report = wherefore::testing::run(async {
        NurseryBuilder::named("pool")
            .collect_panics()
            .run(async |n: Nursery<'_, Cancelled>| {
                n.start_soon_named("writer", async {
                    wherefore::sleep(secs(1)).await?;
                    // Cleanup that must finish, whatever happens meanwhile.
                    wherefore::shield(wherefore::sleep(secs(3))).await?;
                    wherefore::checkpoint().await
                })
                .unwrap();
                n.start_soon_named("parser", async {
                    wherefore::sleep(secs(2)).await?;
                    if true {
                        panic!("unexpected token");
                    }
                    Ok(())
                })
                .unwrap();
                Ok(())
            })
            .await
    });
    let failures = report.output().unwrap().as_ref().unwrap_err().failures();
    assert_eq!(failures.len(), 1);
    assert!(matches!(failures[0].kind(), FailureKind::Panic(m) if m == "unexpected token"));
    assert_journal(report.journal(), EXPECTED);
}

const EXPECTED: &str = r#"t=0.000 enter    scope "run"
t=0.000 spawn    task "main" in scope "run"
t=0.000 enter    scope "pool" in scope "run"
t=0.000 spawn    task "writer" in scope "pool"
t=0.000 spawn    task "parser" in scope "pool"
t=1.000 clock    t=1.000
t=1.000 enter    scope#7 in scope "pool" (shielded)
t=2.000 clock    t=2.000
t=2.000 exit     task "parser": panicked: unexpected token
t=2.000 cancel   scope "pool": sibling task "parser" (spawned at tests/scenarios_sibling_panic.rs:21:19) panicked: unexpected token [took effect]
t=4.000 clock    t=4.000
t=4.000 leave    scope#7
t=4.000 observe  task "writer" at checkpoint in scope "pool": sibling task "parser" (spawned at tests/scenarios_sibling_panic.rs:21:19) panicked: unexpected token
t=4.000 exit     task "writer": cancelled: sibling task "parser" (spawned at tests/scenarios_sibling_panic.rs:21:19) panicked: unexpected token
t=4.000 leave    scope "pool"
t=4.000 leave    scope "run"
"#;
