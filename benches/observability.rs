//! What observing costs: a nursery of 10,000 members, each passing two checkpoints, run
//! - on `wherefore::run` with no hook (the production default),
//! - on `wherefore::run` with a hook that does nothing (the price of emitting events),
//! - on `testing::block_on` (virtual clock and the register of live tasks for hang reports),
//! - on `testing::run` (all of that plus the journal);
//! - with the feature `tracing` (issue 28), on `wherefore::run` under a subscriber that filters
//!   wherefore out (the application logs at INFO, wherefore is off), and under one that takes
//!   wherefore's events from DEBUG up and writes them nowhere (the price of formatting them).
//!
//! `cargo bench --bench observability`, then `cargo bench --features tracing --bench
//! observability` (the feature off vs on, with no subscriber: the same row, `run/no hook`, of
//! the two builds); the ratios are written up in BENCHMARKS.md.

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
            drop(
                n.spawn(async {
                    wherefore::checkpoint().await?;
                    wherefore::checkpoint().await
                })
                .unwrap(),
            );
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
    #[cfg(feature = "tracing")]
    tracing_rows(&mut group);
    group.finish();
}

/// `run/no hook` under two subscribers: one whose filter rejects everything of wherefore's, one
/// that formats wherefore's events from DEBUG up into a sink.
#[cfg(feature = "tracing")]
fn tracing_rows(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::{Layer, SubscriberExt};
    let under = |filter: Targets| {
        tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::sink)
                .with_filter(filter),
        )
    };
    let filtered_out = under(
        Targets::new()
            .with_default(LevelFilter::INFO)
            .with_target("wherefore", LevelFilter::OFF),
    );
    tracing::subscriber::with_default(filtered_out, || {
        group.bench_function(BenchmarkId::new("tracing", "wherefore filtered out"), |b| {
            b.iter(|| wherefore::run(service()))
        });
    });
    let formatted = under(Targets::new().with_target("wherefore", LevelFilter::DEBUG));
    tracing::subscriber::with_default(formatted, || {
        group.bench_function(
            BenchmarkId::new("tracing", "wherefore at DEBUG, to a sink"),
            |b| b.iter(|| wherefore::run(service())),
        );
    });
}

criterion_group!(benches, observability);
criterion_main!(benches);
