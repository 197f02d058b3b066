//! Shields block cancellation from above, and nothing else.
mod common;

use common::*;
use wherefore::{Cancelled, Cause, Scope};

/// outer (cancelled) > shielded middle with its own 2 s deadline > inner: the inner task is not
/// cancelled by the outer scope, but is by the shield's own deadline, with the shield's cause.
#[test]
fn a_shielded_scope_mid_tree_keeps_its_own_deadline() {
    block_on(async {
        let outer = Scope::named("outer");
        let outer_handle = outer.handle();
        let shield = Scope::named("cleanup").shielded().with_timeout(secs(2));
        let shield_handle = shield.handle();
        let start = wherefore::now();
        let out = outer
            .run(async {
                outer_handle.cancel_with("shutdown");
                let inner = shield.run(Scope::named("flush").run(async {
                    wherefore::sleep(secs(1)).await?; // not cancelled: behind the shield
                    let at_one = wherefore::now();
                    let err = wherefore::sleep(secs(60)).await.unwrap_err();
                    Ok::<_, Cancelled>((at_one, err))
                }));
                let (at_one, err) = inner.await?.unwrap().unwrap();
                assert_eq!(at_one - start, secs(1));
                assert_eq!(wherefore::now() - start, secs(2));
                assert_eq!(
                    err.cause().to_string(),
                    format!(
                        "parent scope \"cleanup\" was cancelled: {}",
                        shield_handle.cause().unwrap()
                    )
                );
                assert!(matches!(shield_handle.cause(), Some(Cause::Timeout(_))));
                wherefore::checkpoint().await // the outer cancellation is still pending
            })
            .await;
        assert!(matches!(out, Ok(None)));
    });
}

#[test]
fn lowering_a_shield_lets_a_pending_outer_cancellation_in() {
    block_on(async {
        let outer = Scope::named("outer");
        let outer_handle = outer.handle();
        let shield = Scope::named("shield").shielded();
        let shield_handle = shield.handle();
        let out = outer
            .run(shield.run(async {
                outer_handle.cancel_with("stop");
                wherefore::checkpoint().await?; // passes: shielded
                assert!(!shield_handle.is_cancelled());
                shield_handle.set_shielded(false);
                assert!(shield_handle.is_cancelled());
                let err = wherefore::checkpoint().await.unwrap_err();
                assert_eq!(err.cause().kind(), "parent");
                Err::<(), _>(err)
            }))
            .await;
        // The shield scope is not the outermost cancelled scope: the outer one absorbs.
        assert!(matches!(out, Ok(None)));
    });
}

#[test]
fn raising_a_shield_stops_a_cancellation_that_came_from_above() {
    block_on(async {
        let outer = Scope::named("outer");
        let outer_handle = outer.handle();
        let inner = Scope::named("inner");
        let inner_handle = inner.handle();
        let _ = outer
            .run(inner.run(async {
                outer_handle.cancel();
                assert!(wherefore::check_cancelled().is_err());
                inner_handle.set_shielded(true);
                assert!(wherefore::check_cancelled().is_ok());
                assert!(!inner_handle.is_cancelled());
                Ok::<_, Cancelled>(())
            }))
            .await;
    });
}

#[test]
fn a_task_blocked_in_a_shield_is_woken_when_the_shield_is_lowered() {
    block_on(async {
        let outer = Scope::named("outer");
        let outer_handle = outer.handle();
        let shield = Scope::named("shield").shielded();
        let shield_handle = shield.handle();
        let start = wherefore::now();
        let out = wherefore::nursery(async |n: wherefore::Nursery<'_, Cancelled>| {
            let mut blocked = n
                .spawn(outer.run(shield.run(async {
                    outer_handle.cancel();
                    let err = wherefore::sleep(secs(3600)).await.unwrap_err();
                    Err::<(), _>(err)
                })))
                .unwrap();
            wherefore::sleep(secs(1)).await?;
            shield_handle.set_shielded(false);
            let exit = blocked.join().await?;
            assert_eq!(
                wherefore::now() - start,
                secs(1),
                "woken when the shield was lowered"
            );
            assert!(
                matches!(exit, wherefore::TaskExit::Completed(None)),
                "absorbed by outer"
            );
            Ok(())
        })
        .await;
        assert!(out.is_ok());
    });
}

#[test]
fn shield_with_grace_cuts_hanging_cleanup_with_its_own_timeout() {
    block_on(async {
        let outer = Scope::named("outer");
        outer.handle().cancel_with("shutdown");
        let out = outer
            .run(async {
                let cleanup = wherefore::shield_with_grace(secs(5), async {
                    let err = wherefore::sleep(secs(3600)).await.unwrap_err();
                    Err::<(), _>(err)
                });
                let grace = cleanup.handle();
                assert_eq!(cleanup.await?, None);
                let Some(Cause::Timeout(timeout)) = grace.cause() else {
                    panic!("not a timeout")
                };
                assert_eq!(timeout.after(), Some(secs(5)));
                assert_eq!(timeout.scope(), &grace.scope());
                wherefore::checkpoint().await
            })
            .await;
        assert!(matches!(out, Ok(None)));
    });
}
