//! What a level of nesting costs on the stack (issue 24, item 7): the bytes between two levels'
//! frames while the innermost body is polled, for each kind of scope, measured as the distance
//! from the outermost poll to the innermost at two depths (so that what is not per level cancels
//! out). Polling nested futures recurses by nature; what a scope adds is its poll's frame.
//!
//! Two shapes of level:
//! - **as written**: a boxed `async` block that awaits the scope around the next level, as a
//!   recursive `async fn` would be (the block's own frame, and its box's poll, are in the
//!   figure; a level of bare blocks, `async { inner.await }`, is the yardstick);
//! - **bare type**: a recursive type whose poll only polls the scope around the next level, so
//!   that the figure is the scope's poll and one `match` (a level of that type without a scope
//!   is the yardstick).
//!
//! `cargo bench --bench stack_depth` measures the optimised build, and `cargo bench --bench
//! stack_depth --profile dev` the debug build, where frames are larger and deep nesting runs out
//! of stack first. The figures are written up in BENCHMARKS.md and DESIGN.md ("Stack"). They do
//! not depend on the CPU, only on the compiler and the code.

#![allow(missing_docs)]

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use wherefore::{
    CancelError, Cancelled, FailAfter, LocalNursery, MoveOnAfter, Scope, ScopeFuture, Shielded,
};

thread_local! {
    /// The address of a local of the innermost poll, the last time it ran.
    static INNERMOST: Cell<usize> = const { Cell::new(0) };
}

/// The address of a local of the calling frame, near the top of the stack.
#[inline(never)]
fn stack_top() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

/// The innermost body: notes where the stack is, and ends.
struct Innermost;

impl Future for Innermost {
    type Output = Result<(), Cancelled>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        INNERMOST.with(|at| at.set(stack_top()));
        Poll::Ready(Ok(()))
    }
}

type Boxed = Pin<Box<dyn Future<Output = Result<(), Cancelled>>>>;

/// Builds a nesting of a given depth.
type Nest = fn(usize) -> Boxed;

/// `depth` levels of `level` around the innermost body, as written.
fn as_written(depth: usize, level: fn(Boxed) -> Boxed) -> Boxed {
    let mut nest: Boxed = Box::pin(Innermost);
    for _ in 0..depth {
        nest = level(nest);
    }
    nest
}

// The yardstick: a block that does nothing but await the next level.
#[allow(clippy::redundant_async_block)]
fn bare_block(inner: Boxed) -> Boxed {
    Box::pin(async move { inner.await })
}

fn scope_run(inner: Boxed) -> Boxed {
    Box::pin(async move { Scope::new().run(inner).await.map(drop) })
}

fn move_on_after(inner: Boxed) -> Boxed {
    Box::pin(async move {
        wherefore::move_on_after(Duration::from_secs(60), inner)
            .await
            .map(drop)
    })
}

fn fail_after(inner: Boxed) -> Boxed {
    Box::pin(async move {
        wherefore::fail_after(Duration::from_secs(60), inner)
            .await
            .unwrap()
    })
}

fn shield(inner: Boxed) -> Boxed {
    Box::pin(async move { wherefore::shield(inner).await })
}

fn nursery_body(inner: Boxed) -> Boxed {
    Box::pin(async move {
        wherefore::nursery_local(async move |_: LocalNursery<'_, Cancelled>| inner.await)
            .await
            .map_err(|e| e.as_cancelled().unwrap().clone())
    })
}

fn nursery_member(inner: Boxed) -> Boxed {
    Box::pin(async move {
        wherefore::nursery_local(async move |n: LocalNursery<'_, Cancelled>| {
            n.start_soon(inner).unwrap();
            Ok(())
        })
        .await
        .map_err(|e| e.as_cancelled().unwrap().clone())
    })
}

/// A level of a bare type: the future of a scope around the next level, or the innermost body.
macro_rules! bare_type {
    ($name:ident, $future:ty, $make:expr, $resolved:expr) => {
        enum $name {
            Level(Pin<Box<$future>>),
            Innermost(Innermost),
        }

        impl Future for $name {
            type Output = Result<(), Cancelled>;

            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                match self.get_mut() {
                    $name::Level(level) => level.as_mut().poll(cx).map($resolved),
                    $name::Innermost(innermost) => Pin::new(innermost).poll(cx),
                }
            }
        }

        impl $name {
            fn nest(depth: usize) -> Boxed {
                let mut nest = $name::Innermost(Innermost);
                for _ in 0..depth {
                    nest = $name::Level(Box::pin($make(nest)));
                }
                Box::pin(nest)
            }
        }
    };
}

/// A future that only polls the next level: the yardstick of the bare types.
struct Plain<F>(F);

impl<F: Future + Unpin> Future for Plain<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

bare_type!(PlainLevel, Plain<PlainLevel>, Plain, |out| out);
bare_type!(
    ScopeLevel,
    ScopeFuture<ScopeLevel>,
    |inner| Scope::new().run(inner),
    |out: Result<Option<()>, Cancelled>| out.map(drop)
);
bare_type!(
    MoveOnLevel,
    MoveOnAfter<MoveOnLevel>,
    |inner| wherefore::move_on_after(Duration::from_secs(60), inner),
    |out: Result<Option<()>, Cancelled>| out.map(drop)
);
bare_type!(
    FailAfterLevel,
    FailAfter<FailAfterLevel>,
    |inner| wherefore::fail_after(Duration::from_secs(60), inner),
    |out: Result<Result<(), Cancelled>, wherefore::TimedOut>| out.unwrap()
);
bare_type!(
    ShieldLevel,
    Shielded<ShieldLevel>,
    wherefore::shield,
    |out| out
);

/// The stack bytes from the outermost poll of `nest(depth)` to its innermost body.
fn stack_used(nest: Nest, depth: usize) -> usize {
    let thread = std::thread::Builder::new().stack_size(1 << 30);
    thread
        .spawn(move || {
            let mut nested = nest(depth);
            let top = Cell::new(0);
            wherefore::testing::block_on(std::future::poll_fn(|cx| {
                top.set(stack_top());
                nested.as_mut().poll(cx)
            }))
            .unwrap();
            top.get() - INNERMOST.with(Cell::get)
        })
        .unwrap()
        .join()
        .unwrap()
}

/// Bytes a level of `nest` takes.
fn per_level(nest: Nest) -> usize {
    const DEPTH: usize = 200;
    (stack_used(nest, DEPTH) - stack_used(nest, 0)) / DEPTH
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument names a filter we do not take.
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "optimised"
    };
    println!("stack bytes a level of nesting takes, {profile} build");
    let bare_block = per_level(|depth| as_written(depth, bare_block));
    println!(
        "as written (a boxed async block a level): {bare_block} B for `async {{ inner.await }}`"
    );
    let written: [(&str, Nest); 6] = [
        ("Scope::run", |depth| as_written(depth, scope_run)),
        ("move_on_after", |depth| as_written(depth, move_on_after)),
        ("fail_after", |depth| as_written(depth, fail_after)),
        ("shield", |depth| as_written(depth, shield)),
        ("nursery, in its body", |depth| {
            as_written(depth, nursery_body)
        }),
        ("nursery, in a member", |depth| {
            as_written(depth, nursery_member)
        }),
    ];
    for (kind, nest) in written {
        let bytes = per_level(nest);
        let ratio = bytes as f64 / bare_block as f64;
        println!("  {kind:<22} {bytes:>5} B  {ratio:.2}x the bare block");
    }
    let plain = per_level(PlainLevel::nest);
    println!(
        "bare type (a recursive type a level): {plain} B for a level that only polls the next"
    );
    let typed: [(&str, Nest); 4] = [
        ("Scope::run", ScopeLevel::nest),
        ("move_on_after", MoveOnLevel::nest),
        ("fail_after", FailAfterLevel::nest),
        ("shield", ShieldLevel::nest),
    ];
    for (kind, nest) in typed {
        let bytes = per_level(nest);
        let levels = 2 * 1024 * 1024 / bytes;
        println!("  {kind:<22} {bytes:>5} B  (about {levels} levels on a 2 MiB thread)");
    }
}
