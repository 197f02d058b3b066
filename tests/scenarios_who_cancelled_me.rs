//! Scenario 4 (seed 000): "who cancelled me". The same worker is cancelled in four runs, each
//! time by a different cause; it logs the cause it observed.
mod common;

use std::cell::RefCell;

use common::*;
use wherefore::{LocalNursery, NurseryBuilder, Scope};

/// The worker under test: waits for work forever, and logs why it stopped.
async fn worker(log: &RefCell<Vec<String>>) -> Result<(), BoxError> {
    if let Err(cancelled) = wherefore::sleep(secs(3600)).await {
        log.borrow_mut()
            .push(format!("worker stopped: {}", cancelled.cause()));
        return Err(cancelled.into());
    }
    Ok(())
}

/// Runs the worker in a scope "worker" inside a nursery "group" inside a scope "service";
/// `trigger` cancels something at t=1.
fn observe(trigger: &str) -> String {
    let log = RefCell::new(Vec::new());
    let report = wherefore::testing::run(async {
        let service = Scope::named("service");
        let service_handle = service.handle();
        let worker_scope = Scope::named("worker");
        let worker_handle = worker_scope.handle();
        if trigger == "timeout" {
            worker_handle.set_timeout(secs(1));
        }
        let log = &log;
        let _ = service
            .run(NurseryBuilder::named("group").local().run(
                async |n: LocalNursery<'_, BoxError>| {
                    drop(
                        n.spawn_named("worker", worker_scope.run(worker(log)))
                            .unwrap(),
                    );
                    n.start_soon_named("sibling", async {
                        wherefore::sleep(secs(1)).await?;
                        if trigger == "sibling" {
                            return Err("database unreachable".into());
                        }
                        Ok(())
                    })
                    .unwrap();
                    wherefore::sleep(secs(1)).await?;
                    match trigger {
                        "explicit" => drop(worker_handle.cancel_with("operator request")),
                        "parent" => drop(service_handle.cancel_with("SIGTERM")),
                        _ => {}
                    }
                    Ok(())
                },
            ))
            .await;
    });
    assert!(report.output().is_some());
    let lines = log.into_inner();
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines[0].clone()
}

#[test]
fn the_worker_names_each_of_the_four_causes() {
    let observed: Vec<String> = ["explicit", "timeout", "sibling", "parent"]
        .map(observe)
        .into();
    let here = file!();
    let expected = [
        format!(r#"worker stopped: explicit ("operator request") at {here}:50:58"#),
        format!(
            r#"worker stopped: scope "worker" timed out after 1s (deadline set at {here}:30:27)"#
        ),
        format!(
            r#"worker stopped: parent scope "group" was cancelled: sibling task "sibling" (spawned at {here}:40:23) failed: database unreachable"#
        ),
        format!(
            r#"worker stopped: parent scope "group" was cancelled: parent scope "service" was cancelled: explicit ("SIGTERM") at {here}:51:57"#
        ),
    ];
    assert_eq!(observed, expected);
}
