//! What observing costs: a nursery of 10,000 members, each passing two checkpoints, run
//! - on `wherefore::run` with no hook (the production default),
//! - on `wherefore::run` with a hook that does nothing (the price of emitting events),
//! - on `testing::block_on` (virtual clock and the register of live tasks for hang reports),
//! - on `testing::run` (all of that plus the journal).
//!
//! `cargo bench --bench observability`; the ratios are written up in BENCHMARKS.md.

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use wherefore::event::{Event, Hook};
use wherefore::{Cancelled, Nursery};

const MEMBERS: usize = 10_000;

async fn service() {
    wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
        for _ in 0..MEMBERS {
            n.spawn(async {
                wherefore::checkpoint().await?;
                wherefore::checkpoint().await
            })
            .unwrap();
        }
        Ok(())
    })
    .await
    .unwrap();
}

struct Ignore;

impl Hook for Ignore {
    fn on_event(&self, _: Duration, _: &Event) {}
}

fn observability(c: &mut Criterion) {
    let mut group = c.benchmark_group("10k members");
    group.sample_size(20);
    group.bench_function(BenchmarkId::new("run", "no hook"), |b| {
        b.iter(|| wherefore::run(service()))
    });
    group.bench_function(BenchmarkId::new("run", "no-op hook"), |b| {
        b.iter(|| {
            wherefore::Runtime::new()
                .with_hook(Arc::new(Ignore))
                .block_on(service())
        })
    });
    group.bench_function(BenchmarkId::new("testing", "block_on"), |b| {
        b.iter(|| wherefore::testing::block_on(service()))
    });
    group.bench_function(BenchmarkId::new("testing", "run with journal"), |b| {
        b.iter(|| wherefore::testing::run(service()))
    });
    group.finish();
}

criterion_group!(benches, observability);
criterion_main!(benches);
