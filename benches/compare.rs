//! wherefore side by side with the tools people use today, in one process, one after the other.
//!
//! `cargo bench --bench compare` (full) or `cargo bench --bench compare -- --quick` (fewer
//! repetitions, under two minutes on two cores); add `--features tokio` for the timeouts on
//! tokio's clock; `-- --glibc-defaults` to leave glibc's allocator as it is (see
//! `set_up_allocator`). Prints one table: per workload, the median time
//! per item for wherefore and the peer, their ratio, bytes allocated per item for each, and the
//! target; the last line names the worst ratio against its target. BENCHMARKS.md has a run.

// A bench binary: its helpers need no docs.
#![allow(missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wherefore::{Cancelled, Nursery, Scope};

// ----- counting allocator ---------------------------------------------------------------------

struct Counting;

static BYTES: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// On only inside [`allocated`]: the timed runs pay no counting (two atomic additions per
/// allocation, which no real allocator makes), the counted run counts every thread.
static COUNTING: AtomicBool = AtomicBool::new(false);

fn count(bytes: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        BYTES.fetch_add(bytes, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocated bytes and allocations during `f` (on any thread).
fn allocated(f: impl FnOnce()) -> (usize, usize) {
    let (b, a) = (
        BYTES.load(Ordering::Relaxed),
        ALLOCATIONS.load(Ordering::Relaxed),
    );
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    (
        BYTES.load(Ordering::Relaxed) - b,
        ALLOCATIONS.load(Ordering::Relaxed) - a,
    )
}

/// How the system allocator is set up for the run: by default (glibc) it keeps the memory
/// freed (no trimming of the heap's top, no fresh mapping for large blocks), so that no run pays
/// page faults for memory the run before gave back. glibc's own defaults make that depend on
/// history: it raises its thresholds each time a large mapped block is freed, so a side's faults
/// depended on whether some side had freed such a block earlier in the process (measured in
/// the ninth session: 2,500 faults per run of 100,000 timeouts, or none, for the same code).
/// `--glibc-defaults` leaves glibc as it is. Returns what the table's header says about it.
fn set_up_allocator(glibc_defaults: bool) -> &'static str {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if glibc_defaults {
            return "glibc, its defaults (--glibc-defaults)";
        }
        // SAFETY: plain calls setting two parameters of glibc's allocator, before any thread
        // but this one exists.
        let set = unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
                && libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1
        };
        if set {
            "glibc, freed memory kept (M_TRIM_THRESHOLD 2 GiB, M_MMAP_THRESHOLD 32 MiB)"
        } else {
            "glibc, its defaults (mallopt refused)"
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = glibc_defaults;
        "the system's, as it is"
    }
}

// ----- measuring ------------------------------------------------------------------------------

/// The median of `times`.
fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[derive(Clone, Copy)]
struct Side {
    ns_per_item: f64,
    bytes_per_item: f64,
}

/// Measures the sides of one workload (ours and the peers'), `items` each, at least `runs` times
/// each, in rounds: every round runs each side in turn, [`SETTLE`] times untimed and then [`BLOCK`]
/// times timed; the median per side. Then the bytes of one more run each.
///
/// Why rounds of blocks: how long a run takes depends on the allocator's state that the run
/// before it left (measured here: 100,000 `FuturesUnordered` children take 120-150 ns each right
/// after one of our runs, 360-380 ns right after one of their own), and a side is measured as a
/// program that does its workload again and again would run it, so every timed run follows a run
/// of its own side. And the rounds spread every side over the whole measurement, so that what
/// this kind of virtual machine does meanwhile (it speeds up and slows down by a fifth over
/// seconds) falls on all sides alike. The order of the sides turns by one each round, over a
/// whole number of turns, so that every side follows every other as often: a side's time also
/// depends on which side ran before its block, however many runs of its own it settles with
/// (measured in the ninth session: our timeouts on tokio's clock took up to 14 % longer right
/// after tokio's timeouts than right after ours on the embedded runtime, with 2 or 6 runs to
/// settle, and tokio's up to 10 % longer after ours than after the tokio-clock side).
fn sides<const N: usize>(runs: usize, items: usize, mut fs: [&mut dyn FnMut(); N]) -> [Side; N] {
    let rounds = runs.div_ceil(BLOCK).div_ceil(N) * N;
    let mut times: [Vec<Duration>; N] = std::array::from_fn(|_| Vec::with_capacity(rounds * BLOCK));
    for round in 0..rounds {
        for turn in 0..N {
            let side = (round + turn) % N;
            for _ in 0..SETTLE {
                fs[side]();
            }
            for _ in 0..BLOCK {
                let start = Instant::now();
                fs[side]();
                times[side].push(start.elapsed());
            }
        }
    }
    let mut times = times.into_iter();
    std::array::from_fn(|i| {
        let time = median(times.next().expect("one list per side"));
        let (bytes, _) = allocated(&mut fs[i]);
        Side {
            ns_per_item: time.as_nanos() as f64 / items as f64,
            bytes_per_item: bytes as f64 / items as f64,
        }
    })
}

/// Untimed runs of a side before its timed ones in a round, and timed runs in a row (see
/// [`sides`]).
const SETTLE: usize = 2;
const BLOCK: usize = 4;

/// A target on the ratio wherefore / peer (time, or bytes).
struct Row {
    workload: String,
    peer: String,
    ours: Side,
    theirs: Option<Side>,
    /// What is compared to the target, and the target.
    check: Option<(String, f64, f64)>,
}

fn compare(workload: &str, peer: &str, ours: Side, theirs: Side, time_target: Option<f64>) -> Row {
    let ratio = ours.ns_per_item / theirs.ns_per_item;
    Row {
        workload: workload.to_owned(),
        peer: peer.to_owned(),
        check: time_target.map(|t| ("time".to_owned(), ratio, t)),
        ours,
        theirs: Some(theirs),
    }
}

/// A row with no peer: a figure of ours (`ns`, `bytes` per item) and `check`, what is compared
/// to an absolute target.
fn alone(workload: String, peer: &str, ns: f64, bytes: f64, check: (&str, f64, f64)) -> Row {
    let (what, value, target) = check;
    Row {
        workload,
        peer: peer.to_owned(),
        ours: Side {
            ns_per_item: ns,
            bytes_per_item: bytes,
        },
        theirs: None,
        check: Some((what.to_owned(), value, target)),
    }
}

// ----- futures used by the peers --------------------------------------------------------------

/// Yields once, like `wherefore::checkpoint()` and `tokio::task::yield_now()`.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

// ----- workloads ------------------------------------------------------------------------------

/// Runs a nursery of `n` members that yield once, each started by `start`, until all have ended.
fn members_yielding_once(n: usize, start: impl Fn(&Nursery<'_, Cancelled>)) {
    wherefore::run(wherefore::nursery(async |s: Nursery<'_, Cancelled>| {
        for _ in 0..n {
            start(&s);
        }
        Ok(())
    }))
    .unwrap();
}

/// [`members_yielding_once`] in a nursery for `!Send` members (`nursery_local`).
fn local_members_yielding_once(n: usize) {
    wherefore::run(wherefore::nursery_local(
        async |s: wherefore::LocalNursery<'_, Cancelled>| {
            for _ in 0..n {
                s.start_soon(wherefore::checkpoint()).unwrap();
            }
            Ok(())
        },
    ))
    .unwrap();
}

/// A nursery of `n` members that yield once, each started by `start`, inside `tokio::spawn` on
/// `rt` (a request handler's place): the nursery future moves to a worker thread.
fn spawned_nursery(
    rt: &tokio::runtime::Runtime,
    n: usize,
    start: impl Fn(&Nursery<'static, Cancelled>) + Send + Sync + Copy + 'static,
) {
    rt.block_on(async move {
        tokio::spawn(wherefore::nursery(
            async move |s: Nursery<'_, Cancelled>| {
                for _ in 0..n {
                    start(&s);
                }
                Ok(())
            },
        ))
        .await
        .unwrap()
        .unwrap()
    })
}

/// Workload 1. Against `FuturesUnordered::push`, which hands back no handle, our members are
/// started with `start_soon`, which does not either; `spawn`, whose `JoinHandle` holds the
/// member's exit, is measured too, against the same peer (reported) and against `JoinSet`.
fn spawn_join(runs: usize, n: usize, rows: &mut Vec<Row>) {
    let rt = current_thread();
    let [ours, with_handles, fu, joinset] = sides(
        runs,
        n,
        [
            &mut || {
                members_yielding_once(n, |s| drop(s.start_soon(wherefore::checkpoint()).unwrap()))
            },
            &mut || members_yielding_once(n, |s| drop(s.spawn(wherefore::checkpoint()).unwrap())),
            &mut || {
                futures::executor::block_on(async {
                    let mut set = FuturesUnordered::new();
                    for _ in 0..n {
                        set.push(YieldOnce(false));
                    }
                    while set.next().await.is_some() {}
                })
            },
            &mut || {
                rt.block_on(async {
                    let mut set = JoinSet::new();
                    for _ in 0..n {
                        set.spawn(tokio::task::yield_now());
                    }
                    while set.join_next().await.is_some() {}
                })
            },
        ],
    );
    let bytes_ratio = ours.bytes_per_item / fu.bytes_per_item;
    let workload = format!("1. spawn+join {n} children yielding once (start_soon)");
    rows.push(Row {
        workload: workload.clone(),
        peer: "FuturesUnordered (bytes)".to_owned(),
        ours,
        theirs: Some(fu),
        check: Some(("bytes".to_owned(), bytes_ratio, 1.25)),
    });
    rows.push(compare(&workload, "FuturesUnordered", ours, fu, Some(1.2)));
    let workload = format!("1. spawn+join {n} children yielding once (spawn, JoinHandle)");
    rows.push(compare(
        &workload,
        "FuturesUnordered",
        with_handles,
        fu,
        None,
    ));
    rows.push(compare(
        &workload,
        "tokio JoinSet",
        with_handles,
        joinset,
        Some(0.5),
    ));
}

/// Workload 1 where services run it: inside `tokio::spawn` on a multi-thread runtime (two
/// workers), against a `FuturesUnordered` and a `JoinSet` in the same place, and, reported, a
/// local nursery on the embedded runtime against the sendable one of `spawn_join` (the same
/// members, to show what sharing between threads costs).
fn spawn_join_in_a_task(runs: usize, n: usize, rows: &mut Vec<Row>) {
    let rt = multi_thread();
    let [ours, with_handles, fu, joinset, sendable, local] = sides(
        runs,
        n,
        [
            &mut || spawned_nursery(&rt, n, |s| drop(s.start_soon(wherefore::checkpoint()))),
            &mut || spawned_nursery(&rt, n, |s| drop(s.spawn(wherefore::checkpoint()))),
            &mut || {
                rt.block_on(async {
                    tokio::spawn(async move {
                        let mut set = FuturesUnordered::new();
                        for _ in 0..n {
                            set.push(YieldOnce(false));
                        }
                        while set.next().await.is_some() {}
                    })
                    .await
                    .unwrap()
                })
            },
            &mut || {
                rt.block_on(async {
                    tokio::spawn(async move {
                        let mut set = JoinSet::new();
                        for _ in 0..n {
                            set.spawn(tokio::task::yield_now());
                        }
                        while set.join_next().await.is_some() {}
                    })
                    .await
                    .unwrap()
                })
            },
            &mut || {
                members_yielding_once(n, |s| drop(s.start_soon(wherefore::checkpoint()).unwrap()))
            },
            &mut || local_members_yielding_once(n),
        ],
    );
    let workload = format!("1. in tokio::spawn, 2 workers: {n} children (start_soon)");
    rows.push(compare(
        &workload,
        "FuturesUnordered in tokio::spawn",
        ours,
        fu,
        Some(1.2),
    ));
    let workload = format!("1. in tokio::spawn, 2 workers: {n} children (spawn)");
    rows.push(compare(
        &workload,
        "tokio JoinSet in tokio::spawn",
        with_handles,
        joinset,
        Some(0.5),
    ));
    rows.push(compare(
        &format!("1. {n} children (start_soon), nursery_local"),
        "the same, sendable nursery",
        local,
        sendable,
        None,
    ));
}

fn cancel_fanout(runs: usize, n: usize, rows: &mut Vec<Row>) {
    let [ours, token] = sides(
        runs,
        n,
        [
            &mut || {
                let out = wherefore::run(wherefore::nursery(async |s: Nursery<'_, Cancelled>| {
                    for _ in 0..n {
                        s.start_soon(async {
                            let _cause = wherefore::cancelled().await;
                            Ok(())
                        })
                        .unwrap();
                    }
                    wherefore::checkpoint().await?; // every child is now waiting
                    s.cancel_handle().cancel();
                    Ok(())
                }));
                assert!(out.is_ok());
            },
            &mut || {
                futures::executor::block_on(async {
                    let parent = CancellationToken::new();
                    let mut set = FuturesUnordered::new();
                    for _ in 0..n {
                        let child = parent.child_token();
                        set.push(async move { child.cancelled().await });
                    }
                    assert!(futures::poll!(set.next()).is_pending()); // every child is now waiting
                    parent.cancel();
                    while set.next().await.is_some() {}
                })
            },
        ],
    );
    rows.push(compare(
        &format!("2. cancel {n} waiting children, all observe"),
        "CancellationToken + child tokens",
        ours,
        token,
        Some(1.0),
    ));
}

fn checks(runs: usize, m: usize, rows: &mut Vec<Row>) {
    let token = CancellationToken::new();
    let [ours, peer] = sides(
        runs,
        m,
        [
            &mut || {
                wherefore::run(async {
                    let scope = Scope::new();
                    let _ = scope
                        .run(async {
                            for _ in 0..m {
                                black_box(wherefore::check_cancelled().is_ok());
                            }
                            Ok::<_, Cancelled>(())
                        })
                        .await;
                })
            },
            &mut || {
                for _ in 0..m {
                    black_box(black_box(&token).is_cancelled());
                }
            },
        ],
    );
    let ns = ours.ns_per_item;
    rows.push(compare(
        "3. check_cancelled, scope not cancelled",
        "CancellationToken::is_cancelled",
        ours,
        peer,
        Some(0.5),
    ));
    rows.push(alone(
        "3. check_cancelled, absolute".to_owned(),
        "(target 2 ns)",
        ns,
        0.0,
        ("ns", ns, 2.0),
    ));
    let yields = m / 10;
    let rt = current_thread();
    let [ours, peer] = sides(
        runs,
        yields,
        [
            &mut || {
                wherefore::run(async {
                    for _ in 0..yields {
                        let _ = wherefore::checkpoint().await;
                    }
                })
            },
            &mut || {
                rt.block_on(async {
                    for _ in 0..yields {
                        tokio::task::yield_now().await;
                    }
                })
            },
        ],
    );
    rows.push(compare(
        "3. checkpoint() (yields)",
        "tokio::task::yield_now",
        ours,
        peer,
        None,
    ));
}

/// How long every timeout of workload 4 waits: long enough never to fire.
const NEVER: Duration = Duration::from_secs(3600);

/// One timeout of workload 4 on our side: `move_on_after` around a yielding future.
fn our_timeout() -> wherefore::MoveOnAfter<wherefore::Checkpoint> {
    wherefore::move_on_after(NEVER, wherefore::checkpoint())
}

/// `n` nursery members, each running `move_on_after(1 h)` around a yielding future; started
/// without a handle, as the peer's futures are pushed into its `FuturesUnordered`.
async fn timeouts_in_a_nursery(n: usize) {
    wherefore::nursery(async |s: Nursery<'_, Cancelled>| {
        for _ in 0..n {
            s.start_soon(async {
                our_timeout().await?;
                Ok(())
            })
            .unwrap();
        }
        Ok(())
    })
    .await
    .unwrap();
}

fn timeouts(runs: usize, n: usize, rows: &mut Vec<Row>) {
    let rt = current_thread();
    let mut ours = || wherefore::run(timeouts_in_a_nursery(n));
    let mut peer = || {
        rt.block_on(async {
            let mut set = FuturesUnordered::new();
            for _ in 0..n {
                set.push(tokio::time::timeout(NEVER, YieldOnce(false)));
            }
            while set.next().await.is_some() {}
        })
    };
    // Reported, no target: both sides in one `FuturesUnordered`, so that the ratio is the
    // timeout's own cost, without the nursery member that carries ours.
    let mut alone = || {
        wherefore::run(async {
            let mut set = FuturesUnordered::new();
            for _ in 0..n {
                set.push(our_timeout());
            }
            while set.next().await.is_some() {}
        })
    };
    // The same inside tokio, on tokio's clock (feature `tokio`): the nursery runs in the tokio
    // runtime's `block_on`, its timers fired by a tokio task.
    #[cfg(feature = "tokio")]
    let [ours, peer, alone, on_tokio] = sides(
        runs,
        n,
        [&mut ours, &mut peer, &mut alone, &mut || {
            rt.block_on(timeouts_in_a_nursery(n))
        }],
    );
    #[cfg(not(feature = "tokio"))]
    let [ours, peer, alone] = sides(runs, n, [&mut ours, &mut peer, &mut alone]);
    rows.push(compare(
        &format!("4. {n} timeouts that do not fire (embedded runtime)"),
        "tokio::time::timeout",
        ours,
        peer,
        Some(1.0),
    ));
    #[cfg(feature = "tokio")]
    rows.push(compare(
        &format!("4. {n} timeouts that do not fire (tokio clock)"),
        "tokio::time::timeout",
        on_tokio,
        peer,
        Some(1.0),
    ));
    rows.push(compare(
        &format!("4. {n} timeouts in a FuturesUnordered, no nursery"),
        "tokio::time::timeout",
        alone,
        peer,
        None,
    ));
    // Reported, no target: one timeout at a time, so each reuses the memory of the one before:
    // the cost of a timeout without the memory of 100,000 live ones.
    let [one_by_one, peer_one_by_one] = sides(
        runs,
        n,
        [
            &mut || {
                wherefore::run(async {
                    for _ in 0..n {
                        let _ = our_timeout().await;
                    }
                })
            },
            &mut || {
                rt.block_on(async {
                    for _ in 0..n {
                        let _ = tokio::time::timeout(NEVER, YieldOnce(false)).await;
                    }
                })
            },
        ],
    );
    rows.push(compare(
        &format!("4. {n} timeouts one after another"),
        "tokio::time::timeout",
        one_by_one,
        peer_one_by_one,
        None,
    ));
}

/// Cancels the root of `width` scopes side by side (a tree of depth 2); returns the time of the
/// `cancel` call and the allocations it made.
fn cancel_tree(width: usize) -> (Duration, usize, usize) {
    wherefore::run(async {
        let mut measured = (Duration::ZERO, 0, 0);
        let outer = Scope::named("root");
        let root = outer.handle();
        let _ = outer
            .run(wherefore::nursery(async |s: Nursery<'_, Cancelled>| {
                for _ in 0..width {
                    drop(
                        s.spawn(Scope::new().run(async {
                            let _ = wherefore::cancelled().await;
                            Ok::<_, Cancelled>(())
                        }))
                        .unwrap(),
                    );
                }
                wherefore::checkpoint().await?;
                let start = Instant::now();
                let (bytes, allocations) = allocated(|| {
                    root.cancel();
                });
                measured = (start.elapsed(), bytes, allocations);
                Ok(())
            }))
            .await;
        measured
    })
}

/// Cancels the root of a chain of `depth` nested scopes; returns the time of the `cancel` call.
fn cancel_chain(depth: usize) -> Duration {
    std::thread::Builder::new()
        .stack_size(1 << 31)
        .spawn(move || {
            wherefore::run(async move {
                let root = Scope::named("root");
                let handle = root.handle();
                let mut leaf: Pin<Box<dyn Future<Output = Result<Duration, Cancelled>>>> =
                    Box::pin(async move {
                        let start = Instant::now();
                        handle.cancel();
                        Ok(start.elapsed())
                    });
                for _ in 0..depth {
                    let inner = leaf;
                    leaf = Box::pin(async move { Ok(Scope::new().run(inner).await?.unwrap()) });
                }
                root.run(leaf).await.unwrap().unwrap()
            })
        })
        .unwrap()
        .join()
        .unwrap()
}

fn propagation(quick: bool, rows: &mut Vec<Row>) {
    let tree_sizes: &[usize] = if quick {
        &[1_000, 10_000, 100_000]
    } else {
        &[1_000, 10_000, 100_000, 1_000_000]
    };
    linear_rows(
        tree_sizes,
        |size| format!("5. cancel a tree of {size} scopes"),
        |size| cancel_tree(size).0,
        rows,
    );
    let chain_sizes: &[usize] = if quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    linear_rows(
        chain_sizes,
        |depth| format!("5. cancel a chain of {depth} nested scopes"),
        cancel_chain,
        rows,
    );
}

/// One row per size: the fastest time per scope of a few cancels, and its growth over the first
/// size. The fastest, because what is checked is the algorithm (linear, no recursion): on this
/// kind of machine, cancels of the same large chain spread between runs by where the allocator
/// put the records (see BENCHMARKS.md), and that noise only ever adds.
fn linear_rows(
    sizes: &[usize],
    name: impl Fn(usize) -> String,
    mut cancel: impl FnMut(usize) -> Duration,
    rows: &mut Vec<Row>,
) {
    // In rounds over all sizes, as `sides` does, so that the machine's drift falls on every size
    // alike, each timed cancel after an untimed one of its own size (the allocator's state that
    // the run before leaves matters, see `sides`); 1M-scope trees take part in the first few
    // rounds only (each takes a while).
    let repeats = |size: usize| if size >= 1_000_000 { 3 } else { 7 };
    let mut fastest = vec![Duration::MAX; sizes.len()];
    for round in 0..7 {
        for (&size, fastest) in sizes.iter().zip(fastest.iter_mut()) {
            if round < repeats(size) {
                cancel(size);
                *fastest = (*fastest).min(cancel(size));
            }
        }
    }
    let mut first = None;
    for (&size, fastest) in sizes.iter().zip(fastest) {
        let per = fastest.as_nanos() as f64 / size as f64;
        let base = *first.get_or_insert(per);
        rows.push(alone(
            name(size),
            "(linear: ns/scope vs 1k)",
            per,
            0.0,
            ("growth", per / base, 2.0),
        ));
    }
}

fn cause_costs(rows: &mut Vec<Row>) {
    let (fast_bytes, fast_allocations) = wherefore::run(async {
        Scope::new()
            .run(async {
                Ok::<_, Cancelled>(allocated(|| {
                    for _ in 0..1_000_000 {
                        black_box(wherefore::check_cancelled().is_ok());
                    }
                }))
            })
            .await
            .unwrap()
            .unwrap()
    });
    rows.push(alone(
        "6. fast path: 1M check_cancelled".to_owned(),
        "(allocations per check)",
        0.0,
        fast_bytes as f64 / 1e6,
        ("allocs", fast_allocations as f64 / 1e6, 0.0),
    ));
    let width = 100_000;
    let (_, bytes, allocations) = cancel_tree(width);
    rows.push(alone(
        format!("6. one cancel of a tree of {width} waiting scopes"),
        "(allocations per descendant)",
        0.0,
        bytes as f64 / width as f64,
        ("allocs", allocations as f64 / width as f64, 0.01),
    ));
    rows.push(alone(
        format!("6. one cancel of a tree of {width} waiting scopes"),
        "(allocations per request)",
        0.0,
        bytes as f64,
        ("allocs", allocations as f64, 1.0),
    ));
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let allocator = set_up_allocator(std::env::args().any(|a| a == "--glibc-defaults"));
    let runs = if quick { 5 } else { 21 };
    let started = Instant::now();
    let mut rows = Vec::new();
    spawn_join(runs, 100_000, &mut rows);
    spawn_join_in_a_task(runs, 100_000, &mut rows);
    cancel_fanout(runs, 100_000, &mut rows);
    checks(runs, 10_000_000, &mut rows);
    timeouts(runs, 100_000, &mut rows);
    propagation(quick, &mut rows);
    cause_costs(&mut rows);

    println!("allocator: {allocator}");
    println!(
        "{:<48} {:<34} {:>10} {:>10} {:>8} {:>9} {:>9}  target",
        "workload", "peer", "ours ns", "peer ns", "ratio", "ours B", "peer B"
    );
    let mut worst: Option<(f64, String)> = None;
    for row in &rows {
        let (peer_ns, peer_b) = match &row.theirs {
            Some(t) => (
                format!("{:.1}", t.ns_per_item),
                format!("{:.1}", t.bytes_per_item),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let ratio = row.theirs.as_ref().map_or("-".to_owned(), |t| {
            format!("{:.2}", row.ours.ns_per_item / t.ns_per_item)
        });
        let target = match &row.check {
            Some((what, value, target)) => {
                let met = if *target == 0.0 {
                    *value == 0.0
                } else {
                    value <= target
                };
                let score = if *target == 0.0 {
                    if *value == 0.0 { 0.0 } else { f64::INFINITY }
                } else {
                    value / target
                };
                if worst.as_ref().is_none_or(|(s, _)| score > *s) {
                    worst = Some((
                        score,
                        format!(
                            "{} vs {}: {what} {value:.2}, target {target}",
                            row.workload, row.peer
                        ),
                    ));
                }
                format!(
                    "{what} {value:.2} <= {target}: {}",
                    if met { "met" } else { "MISSED" }
                )
            }
            None => "(reported)".to_owned(),
        };
        println!(
            "{:<48} {:<34} {:>10.1} {:>10} {:>8} {:>9.1} {:>9}  {}",
            row.workload,
            row.peer,
            row.ours.ns_per_item,
            peer_ns,
            ratio,
            row.ours.bytes_per_item,
            peer_b,
            target
        );
    }
    if let Some((score, what)) = worst {
        println!("worst against its target: {what} ({score:.2}x the target)");
    }
    eprintln!(
        "(took {:.1?}, {} mode)",
        started.elapsed(),
        if quick { "quick" } else { "full" }
    );
}
