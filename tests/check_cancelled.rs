//! The non-yielding check follows the scope being polled: it fails exactly while the code runs
//! in an effectively cancelled scope, and stops failing as soon as that scope is left, by the
//! normal road or by a panic unwinding out of its poll.
mod common;

use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use common::*;
use wherefore::{Cancelled, Scope};

#[test]
fn the_check_fails_inside_a_cancelled_scope_and_passes_again_once_it_is_left() {
    block_on(async {
        assert!(wherefore::check_cancelled().is_ok(), "outside any scope");
        Scope::named("outer")
            .run(async {
                let inner = Scope::named("inner");
                inner.handle().cancel();
                let out = inner
                    .run(async {
                        let err = wherefore::check_cancelled().unwrap_err();
                        assert_eq!(err.scope().name(), Some("inner"));
                        Err::<(), _>(err)
                    })
                    .await;
                assert!(matches!(out, Ok(None)), "inner absorbs its own cancel");
                assert!(
                    wherefore::check_cancelled().is_ok(),
                    "back in the outer scope, which was not cancelled"
                );
                Ok::<_, Cancelled>(())
            })
            .await
            .unwrap();
        assert!(
            wherefore::check_cancelled().is_ok(),
            "after the outer scope"
        );
    });
}

#[test]
fn a_panic_out_of_a_cancelled_scope_leaves_the_check_passing() {
    block_on(async {
        let scope = Scope::named("panics");
        scope.handle().cancel();
        let run = scope.run(async {
            assert!(wherefore::check_cancelled().is_err());
            panic!("the body panics while its scope is cancelled");
            #[allow(unreachable_code)]
            Ok::<(), Cancelled>(())
        });
        let polled = AssertUnwindSafe(run).catch_unwind().await;
        assert!(polled.is_err(), "the panic came out of the poll");
        assert!(
            wherefore::check_cancelled().is_ok(),
            "the cancelled scope is no longer the current one"
        );
    });
}
