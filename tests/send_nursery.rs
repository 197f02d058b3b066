//! A `Send` nursery moving between threads: the same program (a failure with a sibling's
//! shielded cleanup, a timeout, an explicit cancel of a scope around one member, members spawning
//! siblings while the set is polled) gives exactly the same causes and exits on one thread
//! (virtual time), inside tasks of a multi-thread tokio runtime, and when every poll of the
//! nursery future happens on a thread of its own.
#![cfg(feature = "tokio")]

use std::collections::HashSet;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::ThreadId;
use std::time::Duration;

use wherefore::{Cancelled, Nursery, NurseryBuilder, Scope, TaskExit};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Returns `Pending` once, after waking its task: lets the scheduler run something else (and, on
/// a multi-thread runtime, move the task). Not a cancellation point.
fn yield_now() -> impl Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
}

/// The threads a program's members were polled on.
type Threads = Mutex<HashSet<ThreadId>>;

fn seen_on(threads: &Threads) {
    threads.lock().unwrap().insert(std::thread::current().id());
}

/// The program: every line it logs, in order. Everything that varies between runtimes (ids,
/// real durations) is kept out of the lines; names and locations are the same everywhere.
async fn program(threads: &Threads) -> Vec<String> {
    let log = Mutex::new(Vec::new());
    let say = |line: String| log.lock().unwrap().push(line);

    // 1. A member fails; its sibling sees why, finishes a shielded cleanup, and its exit says
    //    it was cancelled; the nursery's error names the failure.
    let failed = NurseryBuilder::named("failure")
        .run(async |n: Nursery<'_, BoxError>| {
            let mut survivor = n
                .spawn_named("survivor", async {
                    seen_on(threads);
                    let cause = wherefore::cancelled().await;
                    say(format!("survivor cancelled: {cause}"));
                    wherefore::shield(async {
                        for _ in 0..5 {
                            yield_now().await;
                            seen_on(threads);
                        }
                    })
                    .await;
                    say("survivor cleaned up".to_owned());
                    wherefore::checkpoint().await?;
                    Ok(())
                })
                .unwrap();
            n.start_soon_named("crasher", async {
                for _ in 0..3 {
                    yield_now().await;
                    seen_on(threads);
                }
                Err::<(), BoxError>("boom".into())
            })
            .unwrap();
            let exit = wherefore::shield(survivor.join()).await;
            say(format!("survivor's exit: {}", exit.unwrap()));
            Ok(())
        })
        .await;
    say(format!("failure nursery: {}", failed.unwrap_err()));

    // 2. A deadline: the members waiting inside are cancelled with a Parent chain to it.
    let timed = Scope::named("deadline")
        .with_timeout(Duration::from_millis(20))
        .run(
            NurseryBuilder::named("timed").run(async |n: Nursery<'_, Cancelled>| {
                let mut waiter = n
                    .spawn_named("waiter", async {
                        seen_on(threads);
                        wherefore::sleep(Duration::from_secs(3600)).await
                    })
                    .unwrap();
                let exit = wherefore::shield(waiter.join()).await.unwrap();
                let TaskExit::Cancelled(cause) = &exit else {
                    panic!("the waiter was not cancelled: {exit}")
                };
                say(format!("waiter cancelled: {cause}"));
                wherefore::checkpoint().await?;
                Ok(())
            }),
        )
        .await;
    say(format!("deadline absorbed: {}", matches!(timed, Ok(None))));

    // 3. An explicit cancel of a scope around one member; members spawning siblings from inside
    //    the polled set; the others run to completion.
    let total = std::sync::atomic::AtomicU32::new(0);
    let out = NurseryBuilder::named("explicit")
        .run(async |n: Nursery<'_, Cancelled>| {
            let inner = Scope::named("inner");
            let stop = inner.handle();
            let mut stopped = n
                .spawn_named(
                    "stopped",
                    inner.run(async {
                        loop {
                            seen_on(threads);
                            if let Err(cancelled) = wherefore::checkpoint().await {
                                say(format!("stopped sees: {}", cancelled.cause()));
                                return Err::<(), _>(cancelled); // absorbed by "inner"
                            }
                        }
                    }),
                )
                .unwrap();
            let spawner = n.clone();
            let total = &total;
            n.start_soon_named("parent", async move {
                for i in 0..20u32 {
                    yield_now().await;
                    seen_on(threads);
                    spawner
                        .start_soon_named(format!("child-{i}"), async move {
                            yield_now().await;
                            total.fetch_add(i, Ordering::Relaxed);
                            Ok(())
                        })
                        .unwrap();
                }
                Ok(())
            })
            .unwrap();
            for _ in 0..3 {
                yield_now().await;
            }
            stop.cancel_with("enough");
            let exit = stopped.join().await?;
            say(format!("stopped's exit: {exit:?}"));
            Ok("explicit done")
        })
        .await;
    say(format!("explicit nursery: {}", out.unwrap()));
    say(format!("children's total: {}", total.into_inner()));
    log.into_inner().unwrap()
}

/// The program on one thread, on virtual time: what every other run must match.
fn on_one_thread() -> Vec<String> {
    let threads = Threads::default();
    let lines = wherefore::testing::block_on(program(&threads));
    assert_eq!(threads.into_inner().unwrap().len(), 1);
    lines
}

#[test]
fn the_program_says_what_it_should_on_one_thread() {
    let lines = on_one_thread();
    let expected_prefixes = [
        "survivor cancelled: sibling task \"crasher\" (spawned at tests/send_nursery.rs:",
        "survivor cleaned up",
        "survivor's exit: cancelled: sibling task \"crasher\" (spawned at tests/send_nursery.rs:",
        "failure nursery: a nursery member failed: task \"crasher\" (spawned at tests/send_nursery.rs:",
        "waiter cancelled: parent scope \"deadline\" was cancelled: scope \"deadline\" timed out after 20ms (deadline set at tests/send_nursery.rs:",
        "deadline absorbed: true",
        "stopped sees: explicit (\"enough\") at tests/send_nursery.rs:",
        "stopped's exit: Completed(None)",
        "explicit nursery: explicit done",
        "children's total: 190",
    ];
    assert_eq!(lines.len(), expected_prefixes.len(), "{lines:#?}");
    for (line, prefix) in lines.iter().zip(expected_prefixes) {
        assert!(
            line.starts_with(prefix),
            "{line:?} does not start with {prefix:?}"
        );
    }
}

/// Many nurseries in tasks of a multi-thread runtime, yielding all the time: each says exactly
/// what the single-threaded run says, and the nursery futures did run on both worker threads.
#[test]
fn nurseries_in_tasks_of_a_multi_thread_runtime_say_the_same() {
    let expected = on_one_thread();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let threads = Arc::new(Threads::default());
    let runs = runtime.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let threads = threads.clone();
                tokio::spawn(async move { program(&threads).await })
            })
            .collect();
        let mut runs = Vec::new();
        for task in tasks {
            runs.push(task.await.unwrap());
        }
        runs
    });
    for run in runs {
        assert_eq!(run, expected);
    }
    assert_eq!(
        threads.lock().unwrap().len(),
        2,
        "the members ran on both worker threads"
    );
}

/// A `Wake` that lets the polling loop sleep until the future asks to be polled again.
#[derive(Default)]
struct Signal {
    woken: Mutex<bool>,
    ready: Condvar,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        *self.woken.lock().unwrap() = true;
        self.ready.notify_one();
    }
}

/// Polls `future` to its end, each poll on a new thread (inside `runtime`, whose clock its
/// deadlines use): a nursery future that moves between threads on every poll.
fn poll_on_a_new_thread_each_time<F>(
    runtime: &tokio::runtime::Runtime,
    future: F,
) -> (F::Output, usize)
where
    F: Future + Send,
    F::Output: Send,
{
    let signal = Arc::new(Signal::default());
    let waker = Waker::from(signal.clone());
    let mut future = pin!(future);
    let mut polls = 0;
    loop {
        polls += 1;
        let polled = std::thread::scope(|s| {
            s.spawn(|| {
                let _tokio = runtime.enter();
                future.as_mut().poll(&mut Context::from_waker(&waker))
            })
            .join()
            .unwrap()
        });
        if let Poll::Ready(out) = polled {
            return (out, polls);
        }
        let mut woken = signal.woken.lock().unwrap();
        while !*woken {
            woken = signal.ready.wait(woken).unwrap();
        }
        *woken = false;
    }
}

#[test]
fn a_nursery_polled_on_a_new_thread_every_time_says_the_same() {
    let expected = on_one_thread();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let threads = Threads::default();
    let (lines, polls) = poll_on_a_new_thread_each_time(&runtime, program(&threads));
    assert_eq!(lines, expected);
    let threads = threads.into_inner().unwrap().len();
    assert!(
        threads > 5,
        "the members ran on {threads} threads over {polls} polls"
    );
}

/// A nursery inside a `spawn_worker` member of another nursery: the tree grows below a worker,
/// and the inner members see the outer nursery's cancellation with the whole chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nursery_grows_below_a_worker_member() {
    let out = NurseryBuilder::named("outer")
        .run(async |n: Nursery<'_, BoxError>| {
            let mut worker = n
                .spawn_worker_named("worker", async {
                    NurseryBuilder::named("inner")
                        .run(async |inner: Nursery<'_, Cancelled>| {
                            let mut leaf = inner
                                .spawn_named("leaf", wherefore::sleep(Duration::from_secs(3600)))
                                .unwrap();
                            Ok(wherefore::shield(leaf.join()).await.unwrap())
                        })
                        .await
                        .map_err(|e| -> BoxError { Box::new(e) }) // still a cancellation
                })
                .unwrap();
            n.start_soon_named("failing", async {
                wherefore::checkpoint().await?;
                Err::<(), BoxError>("upstream gone".into())
            })
            .unwrap();
            Ok(wherefore::shield(worker.join()).await.unwrap())
        })
        .await;
    let failures = out.unwrap_err().into_failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].task().name(), Some("failing"));
}

/// A request handler's future must be `Send`: a nursery inside `tokio::spawn`, with a timeout,
/// answers with the cause in one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nursery_inside_tokio_spawn_reports_its_timeout() {
    let handler = tokio::spawn(async {
        let out = wherefore::fail_after(
            Duration::from_millis(10),
            wherefore::nursery(async |n: Nursery<'_, Cancelled>| {
                let mut backend = n
                    .spawn_named("backend", wherefore::sleep(Duration::from_secs(3600)))
                    .unwrap();
                backend.join().await?;
                Ok(())
            }),
        )
        .await;
        match out {
            Err(timed_out) => timed_out.to_string(),
            Ok(other) => format!("no timeout: {other:?}"),
        }
    });
    let line = handler.await.unwrap();
    assert!(
        line.starts_with("scope#")
            && line.contains(" timed out after 10ms (deadline set at tests/send_nursery.rs:"),
        "{line}"
    );
}

/// `CancelHandle::cancelled` resolves outside any scope, in a task of its own, with the cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scopes_cancellation_is_awaited_from_another_task() {
    let service = Scope::named("service");
    let handle = service.handle();
    let watcher = tokio::spawn(handle.cancelled());
    let ran = service.run(async {
        wherefore::checkpoint().await?;
        handle.cancel_with("SIGTERM");
        wherefore::checkpoint().await?;
        Ok::<_, Cancelled>(())
    });
    assert!(matches!(ran.await, Ok(None)));
    let cause = watcher.await.unwrap();
    assert!(
        cause
            .to_string()
            .starts_with("explicit (\"SIGTERM\") at tests/send_nursery.rs:"),
        "{cause}"
    );
}

/// A scope already cancelled resolves at once; a watcher dropped before leaves nothing behind,
/// and a scope that is never cancelled leaves it pending.
#[test]
fn a_scopes_cancellation_resolves_at_once_or_never() {
    let handle = Scope::named("done").handle();
    handle.cancel();
    let cause = futures::executor::block_on(handle.cancelled());
    assert_eq!(cause.kind(), "explicit");

    let quiet = Scope::named("quiet").handle();
    let mut never = Box::pin(quiet.cancelled());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(never.as_mut().poll(&mut cx).is_pending());
    drop(never); // deregisters
    let woken = Arc::new(AtomicBool::new(false));
    struct Flag(Arc<AtomicBool>);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let waker = Waker::from(Arc::new(Flag(woken.clone())));
    let mut later = Box::pin(quiet.cancelled());
    assert!(
        later
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    quiet.cancel_with("now");
    assert!(woken.load(Ordering::SeqCst), "the cancel woke the watcher");
    let Poll::Ready(cause) = later.as_mut().poll(&mut cx) else {
        panic!("not ready after the cancel")
    };
    assert!(cause.to_string().starts_with("explicit (\"now\")"));
}
