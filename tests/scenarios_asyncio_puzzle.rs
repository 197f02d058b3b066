//! Scenario 6 (seed 004): the asyncio puzzle. A task awaiting a child that gets cancelled,
//! versus a task that is itself cancelled while awaiting a child: the two journals differ
//! exactly where they should. Then the seed's own code, transliterated line by line: start a
//! task, cancel it through its handle, await it, and tell "the task was cancelled" from "I am
//! cancelled"; and the inverse, the awaiting task cancelled while the child runs on.
mod common;

use std::{cell::RefCell, sync::Mutex, time::Duration};

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
                drop(
                    n.spawn_named(
                        "children",
                        children_scope.run(NurseryBuilder::named("children").run(
                            async move |c: Nursery<'_, Cancelled>| {
                                *handle.lock().unwrap() = Some(
                                    c.spawn_named("child", wherefore::sleep(secs(10))).unwrap(),
                                );
                                Ok(())
                            },
                        )),
                    )
                    .unwrap(),
                );
                n.start_soon_named("canceller", async {
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
t=1.000 cancel   scope "children-scope": explicit ("child no longer needed") at tests/scenarios_asyncio_puzzle.rs:43:34 [took effect]
t=1.000 exit     task "canceller": completed
t=1.000 observe  task "child" at sleep in scope "children": parent scope "children-scope" was cancelled: explicit ("child no longer needed") at tests/scenarios_asyncio_puzzle.rs:43:34
t=1.000 exit     task "child": cancelled: parent scope "children-scope" was cancelled: explicit ("child no longer needed") at tests/scenarios_asyncio_puzzle.rs:43:34
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
t=1.000 cancel   scope "waiter": explicit ("caller gave up") at tests/scenarios_asyncio_puzzle.rs:45:28 [took effect]
t=1.000 exit     task "canceller": completed
t=1.000 observe  task "main" at join in scope "waiter": explicit ("caller gave up") at tests/scenarios_asyncio_puzzle.rs:45:28
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

// Seed 004's code, line by line: `task = create_task(cancel_me())`, `task.cancel()`, `await task`,
// and the question at `except CancelledError`: was `task` cancelled, or am I? Here the answer is
// in the type: `join`'s `Err` is *my* cancellation, `TaskExit::Cancelled` is the task's.

/// The seed's log: what was printed, and when (virtual milliseconds since the start).
type Log = Mutex<Vec<(u128, &'static str)>>;

fn print(log: &Log, start: std::time::Instant, line: &'static str) {
    let at = (wherefore::now() - start).as_millis();
    log.lock().unwrap().push((at, line));
}

/// `finally:` — runs however the block it guards ends.
struct Finally<F: FnMut()>(F);

impl<F: FnMut()> Drop for Finally<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// `async def cancel_me()`.
async fn cancel_me(log: &Log, start: std::time::Instant) -> Result<(), Cancelled> {
    print(log, start, "cancel_me");
    let _finally = Finally(|| print(log, start, "cancel_me(): after sleep"));
    wherefore::sleep(secs(3600)).await?; // `except CancelledError: raise` is the `?`
    Ok(())
}

/// `async def parent(task)`: awaits the task and tells the two cancellations apart.
async fn parent(
    mut task: wherefore::JoinHandle<()>,
    log: &Log,
    start: std::time::Instant,
) -> Result<(), Cancelled> {
    wherefore::sleep(std::time::Duration::from_millis(1)).await?;
    match task.join().await {
        Ok(TaskExit::Cancelled(_)) => print(log, start, "parent(): child is cancelled now"),
        Err(me) => {
            print(log, start, "parent(): I am cancelled");
            return Err(me);
        }
        Ok(_) => print(log, start, "parent(): child ended"),
    }
    Ok(())
}

/// `async def main()`, with `sys.argv[1]` as `cancel` ("parent" or "child"). Returns the log,
/// and how `parent` ended.
fn seed_004(cancel: &str) -> (Vec<(u128, &'static str)>, String) {
    let log = Log::default();
    let parent_exit = wherefore::testing::block_on(async {
        let start = wherefore::now();
        let log = &log;
        wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
            let child_task = n.spawn_named("cancel_me", cancel_me(log, start)).unwrap();
            let child_scope = child_task.cancel_handle(); // `child_task` moves into `parent`
            let mut parent_task = n
                .spawn_named("parent", parent(child_task, log, start))
                .unwrap();
            wherefore::sleep(Duration::from_millis(100)).await?; // let the child start
            if cancel == "parent" {
                parent_task.cancel();
            } else {
                child_scope.cancel();
            }
            wherefore::sleep(Duration::from_millis(500)).await?;
            Ok(parent_task.join().await?.to_string())
        })
        .await
        .unwrap()
    });
    (log.into_inner().unwrap(), parent_exit)
}

#[test]
fn seed_004_the_task_i_awaited_was_cancelled() {
    let (log, parent_exit) = seed_004("child");
    assert_eq!(
        log,
        [
            (0, "cancel_me"),
            (100, "cancel_me(): after sleep"),
            (100, "parent(): child is cancelled now"),
        ]
    );
    assert_eq!(parent_exit, "completed");
}

#[test]
fn seed_004_i_am_cancelled_while_the_task_runs_on() {
    let (log, parent_exit) = seed_004("parent");
    assert_eq!(
        log,
        [
            (0, "cancel_me"),
            (100, "parent(): I am cancelled"),
            // Nobody cancelled the child: it sleeps its hour, and the nursery waits for it.
            (3_600_000, "cancel_me(): after sleep"),
        ]
    );
    assert!(
        parent_exit.starts_with("cancelled: explicit cancel at tests/scenarios_asyncio_puzzle.rs:"),
        "{parent_exit}"
    );
}
