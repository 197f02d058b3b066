//! Causes chain through the scope tree and render as one line.
mod common;

use common::*;
use wherefore::{Cancelled, Cause, Scope};

#[test]
fn three_nested_scopes_render_the_whole_chain() {
    block_on(async {
        let cancel_line = std::cell::RefCell::new(0);
        let server = Scope::named("server");
        let shutdown = server.handle();
        let seen = server
            .run(
                Scope::named("conn-7").run(Scope::named("handler").run(async {
                    *cancel_line.borrow_mut() = line!() + 1;
                    shutdown.cancel_with("shutdown");
                    Ok::<_, Cancelled>(wherefore::cancelled().await)
                })),
            )
            .await;
        let cause = seen.unwrap().unwrap().unwrap().unwrap();
        let Cause::Explicit(explicit) = cause.root() else {
            panic!("root is not explicit: {cause}")
        };
        assert_eq!(explicit.location().file(), file!());
        assert_eq!(explicit.location().line(), *cancel_line.borrow());
        assert_eq!(
            cause.to_string(),
            format!(
                "parent scope \"conn-7\" was cancelled: parent scope \"server\" was cancelled: \
                 explicit (\"shutdown\") at {}",
                explicit.location()
            )
        );
        let kinds: Vec<_> = cause.chain().map(|c| c.kind()).collect();
        assert_eq!(kinds, ["parent", "parent", "explicit"]);
    });
}

#[test]
fn unnamed_scopes_show_their_id_in_the_chain() {
    block_on(async {
        let outer = Scope::new();
        let id = outer.handle().scope().id();
        let handle = outer.handle();
        let cause = outer
            .run(Scope::new().run(async {
                handle.cancel();
                Ok::<_, Cancelled>(wherefore::cancelled().await)
            }))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(
            cause
                .to_string()
                .starts_with(&format!("parent {id} was cancelled: explicit cancel at ")),
            "{cause}"
        );
    });
}

#[test]
fn a_thousand_nested_scopes_cancelled_from_the_root_keep_the_full_chain() {
    let rendered = on_large_stack(|| {
        block_on(async {
            let root = Scope::named("root");
            let handle = root.handle();
            let leaf = async move {
                handle.cancel_with("stop");
                Ok(wherefore::cancelled().await)
            };
            let cause = root.run(nested_scopes(1000, leaf)).await.unwrap().unwrap();
            assert_eq!(cause.chain().count(), 1001);
            assert!(matches!(cause.root(), Cause::Explicit(_)));
            cause.to_string()
        })
    });
    // The innermost scope s999 reports its parent's cancellation first.
    assert!(rendered.starts_with("parent scope \"s998\" was cancelled: parent scope \"s997\""));
    assert!(rendered.contains("parent scope \"s0\" was cancelled: parent scope \"root\" was cancelled: explicit (\"stop\")"));
    assert_eq!(rendered.matches("was cancelled").count(), 1000);
}

/// Building 100,000 nested scopes needs deep polling (the nesting of the futures themselves);
/// cancelling them, rendering the chain and tearing the tree down must not: those run on a
/// 64 KiB stack here.
#[test]
fn cancel_and_teardown_of_a_hundred_thousand_nested_scopes_do_not_recurse() {
    const DEPTH: usize = 100_000;
    let cause = on_large_stack(|| {
        block_on(async {
            let root = Scope::named("root");
            let handle = root.handle();
            let leaf = async move {
                // Propagate through the whole chain from a thread with a small stack.
                let took_effect = on_small_stack(move || handle.cancel_with("stop"));
                assert!(took_effect);
                Ok(wherefore::cancelled().await)
            };
            root.run(nested_scopes(DEPTH, leaf)).await.unwrap().unwrap()
        })
    });
    // Every scope has exited; the cause now holds the only references to the whole chain.
    let (links, rendered_len) = on_small_stack(move || {
        let links = cause.chain().count();
        let len = cause.to_string().len();
        drop(cause); // teardown of 100,001 scope records
        (links, len)
    });
    assert_eq!(links, DEPTH + 1);
    assert!(rendered_len > DEPTH * 20);
}

#[test]
fn causes_are_cheap_to_clone_and_send() {
    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    assert_send_sync_clone::<Cause>();
    assert_send_sync_clone::<Cancelled>();
}
