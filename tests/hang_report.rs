//! A run that can never finish stops with a hang report instead of hanging: the live scope tree,
//! each task with its scope, whether that scope is cancelled and why, and where the task is
//! blocked.
mod common;

use common::*;
use wherefore::{Cancelled, Nursery, NurseryBuilder, Scope};

#[test]
fn a_stuck_shutdown_is_reported_with_the_tree_and_where_each_task_waits() {
    let stuck = wherefore::testing::try_block_on(async {
        NurseryBuilder::named("service")
            .run(async |n: Nursery<'_, Cancelled>| {
                n.start_soon_named("reader", async {
                    // A foreign future in a shield: deaf to cancellation.
                    wherefore::shield(std::future::pending::<()>()).await;
                    Ok(())
                })
                .unwrap();
                drop(
                    n.spawn_named(
                        "flusher",
                        Scope::named("flush").shielded().run(async {
                            wherefore::guard(std::future::pending::<()>()).await?;
                            Ok::<_, Cancelled>(())
                        }),
                    )
                    .unwrap(),
                );
                wherefore::sleep(secs(5)).await?;
                n.cancel_handle().cancel_with("shutdown");
                wherefore::checkpoint().await
            })
            .await
    })
    .unwrap_err();
    assert_eq!(stuck.at(), secs(5));
    let report = stuck.to_string();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(
        lines[0],
        "stuck at t=5.000: every task is blocked and no timer is pending"
    );
    assert_eq!(lines[1], "scope \"run\" (running)");
    // Its body ended at the cancelled checkpoint; it now waits for the members to end.
    assert_eq!(
        lines[2],
        "  task \"main\" blocked at nursery in scope \"service\""
    );
    assert!(
        lines[3].starts_with(
            "  scope \"service\" (cancelled: explicit (\"shutdown\") at tests/hang_report.rs:"
        ),
        "{report}"
    );
    // The reader never reached a cancellation point, so nothing is known of where it waits.
    assert_eq!(lines[4], "    task \"reader\"");
    assert_eq!(
        lines[5],
        "    task \"flusher\" blocked at guard(core::future::pending::Pending<()>) in scope \"flush\""
    );
    // The reader, started without a handle, has no scope of its own: its shield sits in the
    // nursery's. The flusher, spawned with one, entered a scope, so its own scope (named as the
    // task) is recorded under the nursery's: cancelled with it, for its cause, above its shield.
    assert_eq!(
        lines[6], "    scope#8 (shielded, running)",
        "the reader's shield"
    );
    assert!(
        lines[7].starts_with(
            "    scope \"flusher\" (cancelled: explicit (\"shutdown\") at tests/hang_report.rs:"
        ),
        "{report}"
    );
    assert_eq!(lines[8], "      scope \"flush\" (shielded, running)");
    assert_eq!(lines.len(), 9, "{report}");
}
