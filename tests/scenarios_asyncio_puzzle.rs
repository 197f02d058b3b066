//! Scenario 6 (seed 004): the asyncio puzzle. A task awaiting a child that gets cancelled,
//! versus a task that is itself cancelled while awaiting a child: the two journals differ
//! exactly where they should.
mod common;

use std::{cell::RefCell, sync::Mutex};

use common::*;
use wherefore::{Cancelled, Nursery, NurseryBuilder, Scope, TaskExit};

/// `main` joins `child`, which lives in nursery "children" inside scope "children-scope"; at
/// t=1 either the child's scope or main's own scope "waiter" is cancelled.
fn scenario(cancel_the_child: bool) -> wherefore::testing::Report<String> {
    wherefore::testing::run(async {
        let children_scope = Scope::named("children-scope");
        let children = children_scope.handle();
        let waiter = Scope::named("waiter");
        let me = waiter.handle();
        let handle = Mutex::new(None);
        let outcome = RefCell::new(String::new());
        let _ = NurseryBuilder::named("top")
            .run(async |n: Nursery<'_, wherefore::NurseryError<Cancelled>>| {
                let handle = &handle;
                n.spawn_named(
                    "children",
                    children_scope.run(NurseryBuilder::named("children").run(
                        async move |c: Nursery<'_, Cancelled>| {
                            *handle.lock().unwrap() =
                                Some(c.spawn_named("child", wherefore::sleep(secs(10))).unwrap());
                            Ok(())
                        },
                    )),
                )
                .unwrap();
                n.spawn_named("canceller", async {
                    wherefore::sleep(secs(1)).await?;
                    if cancel_the_child {
                        children.cancel_with("child no longer needed");
                    } else {
                        me.cancel_with("caller gave up");
                    }
                    Ok(())
                })
                .unwrap();
                wherefore::checkpoint().await?;
                let mut child = handle.lock().unwrap().take().unwrap();
                let joined = waiter
                    .run(async { Ok::<_, Cancelled>(child.join().await) })
                    .await?;
                *outcome.borrow_mut() = match joined {
                    Some(Ok(TaskExit::Cancelled(cause))) => {
                        format!("the child was cancelled: {cause}")
                    }
                    Some(Ok(exit)) => format!("the child ended: {exit}"),
                    Some(Err(mine)) => format!("I was cancelled: {}", mine.cause()),
                    None => "my scope absorbed my cancellation".to_owned(),
                };
                Ok(())
            })
            .await;
        outcome.into_inner()
    })
}

#[test]
fn the_task_i_awaited_was_cancelled() {
    let report = scenario(true);
    assert!(
        report
            .output()
            .unwrap()
            .starts_with("the child was cancelled: parent scope \"children-scope\" was cancelled")
    );
    assert_eq!(
        report.journal().observed_by("child").len(),
        1,
        "the child saw its cancellation"
    );
    assert!(
        report.journal().observed_by("main").is_empty(),
        "I was never cancelled"
    );
    assert_journal(report.journal(), EXPECTED_CHILD_CANCELLED);
}

#[test]
fn i_am_cancelled_while_awaiting() {
    let report = scenario(false);
    assert!(
        report
            .output()
            .unwrap()
            .starts_with("I was cancelled: explicit (\"caller gave up\")")
    );
    assert_eq!(
        report.journal().observed_by("main").len(),
        1,
        "I saw my cancellation at join"
    );
    assert!(
        report.journal().observed_by("child").is_empty(),
        "the child was never cancelled"
    );
    assert_journal(report.journal(), EXPECTED_I_AM_CANCELLED);
}

const EXPECTED_CHILD_CANCELLED: &str = r#"t=0.000 enter    scope "run"
t=0.000 spawn    task "main" in scope "run"
t=0.000 enter    scope "top" in scope "run"
t=0.000 spawn    task "children" in scope "top"
t=0.000 spawn    task "canceller" in scope "top"
t=0.000 enter    scope "children" in scope "top"
t=0.000 enter    scope "children-scope" in scope "children"
t=0.000 enter    scope "children" in scope "children-scope"
t=0.000 spawn    task "child" in scope "children"
t=0.000 enter    scope "waiter" in scope "top"
t=1.000 clock    t=1.000
t=1.000 cancel   scope "children-scope": explicit ("child no longer needed") at tests/scenarios_asyncio_puzzle.rs:38:34 [took effect]
t=1.000 exit     task "canceller": completed
t=1.000 observe  task "child" at sleep in scope "children": parent scope "children-scope" was cancelled: explicit ("child no longer needed") at tests/scenarios_asyncio_puzzle.rs:38:34
t=1.000 exit     task "child": cancelled: parent scope "children-scope" was cancelled: explicit ("child no longer needed") at tests/scenarios_asyncio_puzzle.rs:38:34
t=1.000 leave    scope "children"
t=1.000 leave    scope "children-scope"
t=1.000 leave    scope "children"
t=1.000 exit     task "children": completed
t=1.000 leave    scope "waiter"
t=1.000 leave    scope "top"
t=1.000 leave    scope "run"
"#;

const EXPECTED_I_AM_CANCELLED: &str = r#"t=0.000 enter    scope "run"
t=0.000 spawn    task "main" in scope "run"
t=0.000 enter    scope "top" in scope "run"
t=0.000 spawn    task "children" in scope "top"
t=0.000 spawn    task "canceller" in scope "top"
t=0.000 enter    scope "children" in scope "top"
t=0.000 enter    scope "children-scope" in scope "children"
t=0.000 enter    scope "children" in scope "children-scope"
t=0.000 spawn    task "child" in scope "children"
t=0.000 enter    scope "waiter" in scope "top"
t=1.000 clock    t=1.000
t=1.000 cancel   scope "waiter": explicit ("caller gave up") at tests/scenarios_asyncio_puzzle.rs:40:28 [took effect]
t=1.000 exit     task "canceller": completed
t=1.000 observe  task "main" at join in scope "waiter": explicit ("caller gave up") at tests/scenarios_asyncio_puzzle.rs:40:28
t=1.000 leave    scope "waiter"
t=10.000 clock    t=10.000
t=10.000 exit     task "child": completed
t=10.000 leave    scope "children"
t=10.000 leave    scope "children-scope"
t=10.000 leave    scope "children"
t=10.000 exit     task "children": completed
t=10.000 leave    scope "top"
t=10.000 leave    scope "run"
"#;
