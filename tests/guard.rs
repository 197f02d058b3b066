//! Foreign futures become cancellation points through `guard` / `.cancellable()`.
mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::*;
use wherefore::{Cancellable, Cancelled, Cause, LocalNursery, Scope};

struct DropFlag(Rc<Cell<bool>>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// A task blocked on a foreign future that never completes notices its cancellation only
/// through the guard, which drops the foreign future at that moment.
#[test]
fn a_cancelled_task_blocked_on_a_guarded_foreign_future_stops_when_it_is_dropped() {
    block_on(async {
        let dropped = Rc::new(Cell::new(false));
        let scope = Scope::named("reader");
        let handle = scope.handle();
        let flag = dropped.clone();
        let out = wherefore::nursery_local(async |n: LocalNursery<'_, Cancelled>| {
            let mut reader = n
                .spawn(scope.run(async move {
                    let never = async move {
                        let _flag = DropFlag(flag);
                        std::future::pending::<()>().await
                    };
                    never.cancellable().await
                }))
                .unwrap();
            wherefore::sleep(secs(1)).await?;
            assert!(!dropped.get(), "still blocked");
            handle.cancel_with("stop reading");
            assert!(!dropped.get(), "dropped only when the task runs again");
            let exit = reader.join().await?;
            assert!(dropped.get(), "the guard dropped the foreign future");
            assert!(matches!(exit, wherefore::TaskExit::Completed(None)));
            Ok(())
        })
        .await;
        assert!(out.is_ok());
        assert!(matches!(handle.cause(), Some(Cause::Explicit(_))));
    });
}

#[test]
fn a_guarded_future_that_completes_returns_its_output() {
    block_on(async {
        let v = wherefore::guard(async { "value" }).await.unwrap();
        assert_eq!(v, "value");
    });
}

#[test]
fn a_guard_in_an_already_cancelled_scope_fails_without_polling_the_future() {
    block_on(async {
        let polled = Cell::new(false);
        let scope = Scope::new();
        scope.handle().cancel();
        let out = scope
            .run(async {
                wherefore::guard(async { polled.set(true) }).await?;
                Ok::<_, Cancelled>(())
            })
            .await;
        assert!(matches!(out, Ok(None)));
        assert!(!polled.get());
    });
}
