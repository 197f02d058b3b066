//! The Rust interpreter: a program run on `wherefore::testing`'s virtual time.
//!
//! Each op maps to the API a user would write: a scope is `Scope::named(..)` with its deadline
//! and shield builders (or, when no op names it and it has a deadline and no shield, a
//! `move_on_at(..).named(..)`, which runs unrecorded), a nursery is
//! `NurseryBuilder::named(..).collect_panics()` inside a `Scope` of the same name (the way
//! DESIGN.md says to cancel a group and carry on), members are `spawn_named` with their
//! `JoinHandle` read after the nursery, cleanup is `shield_with_grace` (or `shield`), and the
//! whole program runs inside a scope `horizon` whose deadline (t=10,000 ms) ends what would
//! otherwise wait forever; the Python interpreter does the same.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wherefore::{
    CancelError, CancelHandle, Cancelled, Cause, Failure, FailureKind, JoinHandle, Nursery,
    NurseryBuilder, NurseryError, Scope, TaskExit,
};

use crate::program::{Cleanup, Member, NurseryBlock, Op, Program, ScopeBlock};
use crate::trace::{Event, Outcome, Root, What};

/// The deadline of the scope `horizon` around every program, ms.
pub const HORIZON: u64 = 10_000;

/// The instant a stuck run is reported at (on both sides: Trio's watchdog fires there).
pub const STUCK_AT: u64 = 1_000_000;

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a body can end with.
#[derive(Debug)]
enum ProgErr {
    Cancelled(Cancelled),
    Fail(String),
    /// A `fail_at` scope's own deadline fired: its name.
    TimedOut(String),
    /// A nursery's failures, as a member (or body) that ran the nursery ends with them.
    Nested(Vec<Failure<ProgErr>>),
}

impl From<Cancelled> for ProgErr {
    fn from(c: Cancelled) -> Self {
        ProgErr::Cancelled(c)
    }
}

impl CancelError for ProgErr {
    fn as_cancelled(&self) -> Option<&Cancelled> {
        match self {
            ProgErr::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

/// Lists the failing ops, so that a sibling's cause (`SiblingFailure::message`) names them.
impl fmt::Display for ProgErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProgErr::Cancelled(c) => write!(f, "{c}"),
            ProgErr::Fail(op) => f.write_str(op),
            ProgErr::TimedOut(scope) => write!(f, "t{scope}"),
            ProgErr::Nested(failures) => write!(f, "nested [{}]", leaves(failures).join(",")),
        }
    }
}

/// The failing ops of a nursery's failures, through nested nurseries, sorted.
fn leaves(failures: &[Failure<ProgErr>]) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo: Vec<&[Failure<ProgErr>]> = vec![failures];
    while let Some(list) = todo.pop() {
        for failure in list {
            match failure.kind() {
                FailureKind::Error(ProgErr::Fail(op)) => out.push(op.clone()),
                FailureKind::Error(ProgErr::TimedOut(scope)) => out.push(format!("t{scope}")),
                FailureKind::Error(ProgErr::Nested(inner)) => todo.push(inner),
                FailureKind::Error(ProgErr::Cancelled(c)) => {
                    out.push(format!(
                        "escaped-cancel({})",
                        c.scope().name().unwrap_or("?")
                    ));
                }
                FailureKind::Panic(message) => out.push(message.clone()),
                other => out.push(format!("unknown({other:?})")),
            }
        }
    }
    out.sort();
    out
}

fn shape(result: &Result<(), ProgErr>) -> Outcome {
    match result {
        Ok(()) => Outcome::Ok,
        Err(ProgErr::Cancelled(_)) => Outcome::Cancelled,
        Err(ProgErr::Fail(op)) => Outcome::Failed {
            ops: vec![op.clone()],
            cancelled: false,
        },
        Err(ProgErr::TimedOut(scope)) => Outcome::Failed {
            ops: vec![format!("t{scope}")],
            cancelled: false,
        },
        Err(ProgErr::Nested(failures)) => Outcome::Failed {
            ops: leaves(failures),
            cancelled: false,
        },
    }
}

/// The root cause of a cancellation and the scope that holds it: an explicit request's or a
/// deadline's own scope; for a failure, the nursery of the failing member (`home` maps each
/// member's name to its nursery's), or the nursery whose body failed. (Not the scope the
/// cancellation was raised in: a member that entered a scope has a recorded scope of its own,
/// transparent in causes, in which its cancellation points then fail.)
fn root_of(cancelled: &Cancelled, home: &HashMap<String, String>) -> Root {
    let mut holder = cancelled.scope().name().unwrap_or("?").to_owned();
    let mut root = cancelled.cause().clone();
    for link in cancelled.cause().chain() {
        match &link {
            Cause::Parent(parent) => {
                holder = parent.scope().name().unwrap_or("?").to_owned();
            }
            _ => root = link,
        }
    }
    let ops_of = |message: &str| -> Vec<String> {
        let mut ops: Vec<String> = message
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| {
                (w.starts_with("op") || w.starts_with("ts"))
                    && w[2..].chars().all(|c| c.is_ascii_digit())
            })
            .filter(|w| w.len() > 2)
            .map(str::to_owned)
            .collect();
        ops.sort();
        ops.dedup();
        ops
    };
    let nursery_of = |failure: &wherefore::SiblingFailure, holder: String| {
        let task = failure.task().name().unwrap_or("?");
        match task.strip_prefix("body of ") {
            Some(nursery) => nursery.to_owned(),
            None => task
                .rsplit('/')
                .next()
                .and_then(|member| home.get(member))
                .cloned()
                .unwrap_or(holder),
        }
    };
    match &root {
        Cause::Explicit(e) => Root {
            kind: "explicit".into(),
            scope: e.scope().name().unwrap_or("?").into(),
            ops: Vec::new(),
        },
        Cause::Timeout(t) => Root {
            kind: "deadline".into(),
            scope: t.scope().name().unwrap_or("?").into(),
            ops: Vec::new(),
        },
        Cause::SiblingError(s) => Root {
            kind: "error".into(),
            scope: nursery_of(s, holder),
            ops: ops_of(s.message()),
        },
        Cause::SiblingPanic(s) => Root {
            kind: "panic".into(),
            scope: nursery_of(s, holder),
            ops: ops_of(s.message()),
        },
        other => Root {
            kind: format!("unknown({})", other.kind()),
            scope: holder,
            ops: Vec::new(),
        },
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One run of a program: the trace so far, the scopes not yet entered, their handles.
struct Run<'p> {
    t0: Instant,
    events: &'p Mutex<Vec<Event>>,
    /// Recorded scopes (and nurseries' scopes) waiting to be entered, made at the start so
    /// that an op may cancel, move or shield one before it is entered.
    scopes: Mutex<HashMap<String, Scope>>,
    /// Every scope's handle: made at the start, a `fail_at` scope's at its entry.
    handles: Mutex<HashMap<String, CancelHandle>>,
    /// Each member's name, and its nursery's.
    home: HashMap<String, String>,
    /// Scopes that run as plain timeouts (no op names them; a deadline, no shield).
    unrecorded: HashSet<String>,
    /// Members' handles by name: `CancelTask` cancels one, and each is read when its nursery
    /// has finished.
    members: Mutex<HashMap<String, JoinHandle<i64>>>,
    /// How each member's future ended (by path), as its interpreter saw it.
    ends: Mutex<HashMap<String, Outcome>>,
    /// The op whose panic is unwinding (guards name it in the events they log).
    panicking: Mutex<Option<String>>,
    program: &'p Program,
}

impl<'p> Run<'p> {
    fn new(program: &'p Program, events: &'p Mutex<Vec<Event>>) -> Self {
        let t0 = wherefore::now();
        let targets = program.targets();
        let mut scopes = HashMap::new();
        let mut handles = HashMap::new();
        let mut unrecorded = HashSet::new();
        let mut home = HashMap::new();
        program.visit(|op| match op {
            Op::Scope(s) => {
                if !targets.contains(&s.name) && !s.shield && s.deadline.is_some() {
                    unrecorded.insert(s.name.clone());
                    return;
                }
                if s.fail {
                    return; // its handle comes from its future, at entry
                }
                let mut scope = Scope::named(s.name.clone());
                if let Some(at) = s.deadline {
                    scope = scope.with_deadline(t0 + ms(at));
                }
                if s.shield {
                    scope = scope.shielded();
                }
                handles.insert(s.name.clone(), scope.handle());
                scopes.insert(s.name.clone(), scope);
            }
            Op::Nursery(n) => {
                for m in &n.members {
                    home.insert(m.name.clone(), n.name.clone());
                }
                let scope = Scope::named(n.name.clone());
                handles.insert(n.name.clone(), scope.handle());
                scopes.insert(n.name.clone(), scope);
            }
            _ => {}
        });
        Run {
            t0,
            events,
            scopes: Mutex::new(scopes),
            handles: Mutex::new(handles),
            home,
            unrecorded,
            members: Mutex::new(HashMap::new()),
            ends: Mutex::new(HashMap::new()),
            panicking: Mutex::new(None),
            program,
        }
    }

    fn now(&self) -> u64 {
        (wherefore::now() - self.t0).as_millis() as u64
    }

    fn log(&self, task: &str, what: What) {
        let t = self.now();
        self.events.lock().unwrap().push(Event {
            t,
            task: task.to_owned(),
            what,
        });
    }

    fn observed(&self, task: &str, cancelled: &Cancelled) {
        self.log(
            task,
            What::Observed {
                cause: root_of(cancelled, &self.home),
                trio_own: None,
            },
        );
    }

    fn handle(&self, name: &str) -> Option<CancelHandle> {
        self.handles.lock().unwrap().get(name).cloned()
    }

    fn panicking_op(&self) -> String {
        self.panicking
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| "?".into())
    }

    fn ops<'a>(&'a self, task: &'a str, ops: &'a [Op]) -> BoxFut<'a, Result<(), ProgErr>> {
        Box::pin(async move {
            for op in ops {
                self.op(task, op).await?;
            }
            Ok(())
        })
    }

    fn op<'a>(&'a self, task: &'a str, op: &'a Op) -> BoxFut<'a, Result<(), ProgErr>> {
        Box::pin(async move {
            match op {
                Op::SleepUntil(at) => {
                    if let Err(c) = wherefore::sleep_until(self.t0 + ms(*at)).await {
                        self.observed(task, &c);
                        return Err(c.into());
                    }
                }
                Op::SleepForever => {
                    let Err(c) = wherefore::sleep_forever().await;
                    self.observed(task, &c);
                    return Err(c.into());
                }
                Op::Fail(id) => return Err(ProgErr::Fail(id.clone())),
                Op::Panic(id) => {
                    *self.panicking.lock().unwrap() = Some(id.clone());
                    panic!("{id}");
                }
                Op::Cancel(name) => {
                    if let Some(h) = self.handle(name) {
                        h.cancel();
                    }
                }
                Op::CancelTask(name) => {
                    if let Some(h) = self.members.lock().unwrap().get(name) {
                        h.cancel();
                    }
                }
                Op::SetDeadline { scope, at } => {
                    if let Some(h) = self.handle(scope) {
                        h.set_deadline(self.t0 + ms(*at));
                    }
                }
                Op::SetShield { scope, on } => {
                    if let Some(h) = self.handle(scope) {
                        h.set_shielded(*on);
                    }
                }
                Op::Scope(block) => self.scope(task, block).await?,
                Op::Nursery(block) => self.nursery(task, block).await?,
            }
            Ok(())
        })
    }

    async fn scope(&self, task: &str, block: &ScopeBlock) -> Result<(), ProgErr> {
        let mut guard = ExitGuard {
            run: self,
            task,
            scope: &block.name,
            armed: true,
        };
        let body = self.ops(task, &block.body);
        let (out, caught) = if block.fail {
            let at = self.t0 + ms(block.deadline.expect("a fail_at scope has a deadline"));
            let scope = wherefore::fail_at(at, body).named(block.name.clone());
            let handle = (!self.unrecorded.contains(&block.name)).then(|| {
                let handle = scope.handle();
                handle.set_shielded(block.shield);
                self.handles
                    .lock()
                    .unwrap()
                    .insert(block.name.clone(), handle.clone());
                handle
            });
            let (out, timed_out) = match scope.await {
                Ok(out) => (out.map(Some), false),
                Err(_) => (Err(ProgErr::TimedOut(block.name.clone())), true),
            };
            let caught = handle.map_or(timed_out, |h| h.cancelled_caught());
            (out, caught)
        } else if self.unrecorded.contains(&block.name) {
            let at = self.t0 + ms(block.deadline.expect("a plain timeout has a deadline"));
            let out = wherefore::move_on_at(at, body)
                .named(block.name.clone())
                .await;
            let caught = matches!(out, Ok(None));
            (out, caught)
        } else {
            let scope = self.scopes.lock().unwrap().remove(&block.name);
            let scope = scope.expect("every scope is entered once");
            let out = scope.run(body).await;
            let caught = self
                .handle(&block.name)
                .is_some_and(|h| h.cancelled_caught());
            (out, caught)
        };
        guard.armed = false;
        let out = out.map(|_| ());
        self.log(
            task,
            What::ScopeExit {
                scope: block.name.clone(),
                caught,
                out: shape(&out),
            },
        );
        out
    }

    async fn nursery(&self, task: &str, block: &NurseryBlock) -> Result<(), ProgErr> {
        let wrapper = self.scopes.lock().unwrap().remove(&block.name);
        let wrapper = wrapper.expect("every nursery is entered once");
        let out = wrapper
            .run(async {
                let result = NurseryBuilder::named(block.name.clone())
                    .collect_panics()
                    .run(move |n: Nursery<'_, ProgErr>| async move {
                        for m in &block.members {
                            let path = format!("{task}/{}", m.name);
                            let member = self.member(path.clone(), m);
                            let Ok(handle) = n.spawn_named(path.clone(), member) else {
                                unreachable!("the nursery is open while its body runs")
                            };
                            self.members.lock().unwrap().insert(m.name.clone(), handle);
                        }
                        self.ops(task, &block.body).await
                    })
                    .await;
                let out = match result {
                    Ok(()) => Ok(()),
                    Err(NurseryError::Failed(failures)) => Err(ProgErr::Nested(failures)),
                    Err(NurseryError::Cancelled(c)) => Err(ProgErr::Cancelled(c)),
                };
                self.log(
                    task,
                    What::NurseryExit {
                        nursery: block.name.clone(),
                        out: shape(&out),
                        trio_parent_cancelled: false,
                    },
                );
                self.check_exits(task, &block.members);
                out
            })
            .await;
        out.map(|_| ())
    }

    /// Compares each member's `JoinHandle::exit` with how its future ended.
    fn check_exits(&self, task: &str, members: &[Member]) {
        for m in members {
            let path = format!("{task}/{}", m.name);
            let exit = self
                .members
                .lock()
                .unwrap()
                .get(&m.name)
                .and_then(JoinHandle::exit);
            let ended = self.ends.lock().unwrap().get(&path).cloned();
            let agrees = matches!(
                (&exit, &ended),
                (Some(TaskExit::Completed(())), Some(Outcome::Value { .. }))
                    | (Some(TaskExit::Cancelled(_)), Some(Outcome::Cancelled))
                    | (
                        Some(TaskExit::Failed { .. } | TaskExit::Panicked { .. }),
                        Some(Outcome::Failed { .. })
                    )
            );
            if !agrees {
                self.log(
                    task,
                    What::ExitMismatch {
                        member: path,
                        exit: format!("{exit:?} (its future ended {ended:?})"),
                    },
                );
            }
        }
    }

    async fn member(&self, path: String, m: &Member) -> Result<i64, ProgErr> {
        let mut guard = EndGuard {
            run: self,
            path: &path,
            armed: true,
        };
        self.log(&path, What::Started);
        let out = self.ops(&path, &m.body).await;
        if let (Err(ProgErr::Cancelled(_)), Some(cleanup)) = (&out, &m.cleanup) {
            let now = self.now();
            let until = Cleanup::end(now, cleanup.sleep, cleanup.residue);
            let sleep = async {
                match wherefore::sleep_until(self.t0 + ms(until)).await {
                    Ok(()) => {
                        self.log(&path, What::CleanupDone);
                        Ok(())
                    }
                    Err(c) => {
                        self.observed(&path, &c);
                        Err(ProgErr::from(c))
                    }
                }
            };
            // The cleanup's own end (done, or cut by its grace) is in the events; the
            // member ends with its cancellation either way.
            let _ = match cleanup.grace {
                Some((grace, residue)) => {
                    let grace = Cleanup::end(now, grace, residue) - now;
                    wherefore::shield_with_grace(ms(grace), sleep)
                        .named(format!("{path}.cleanup"))
                        .await
                        .map(|_| ())
                }
                None => wherefore::shield(sleep).await,
            };
        }
        guard.armed = false;
        let shape = match &out {
            Ok(()) => Outcome::Value { v: m.value },
            other => shape(other),
        };
        self.ends
            .lock()
            .unwrap()
            .insert(path.clone(), shape.clone());
        self.log(&path, What::Ended { out: shape });
        out.map(|()| m.value)
    }
}

/// Logs a scope's exit when a panic unwinds through it (Trio logs the exception passing).
struct ExitGuard<'a, 'p> {
    run: &'a Run<'p>,
    task: &'a str,
    scope: &'a str,
    armed: bool,
}

impl Drop for ExitGuard<'_, '_> {
    fn drop(&mut self) {
        if self.armed && std::thread::panicking() {
            let caught = self
                .run
                .handle(self.scope)
                .is_some_and(|h| h.cancelled_caught());
            self.run.log(
                self.task,
                What::ScopeExit {
                    scope: self.scope.to_owned(),
                    caught,
                    out: Outcome::Failed {
                        ops: vec![self.run.panicking_op()],
                        cancelled: false,
                    },
                },
            );
        }
    }
}

/// Logs a member's end when it panics.
struct EndGuard<'a, 'p> {
    run: &'a Run<'p>,
    path: &'a str,
    armed: bool,
}

impl Drop for EndGuard<'_, '_> {
    fn drop(&mut self) {
        if self.armed && std::thread::panicking() {
            let out = Outcome::Failed {
                ops: vec![self.run.panicking_op()],
                cancelled: false,
            };
            self.run
                .ends
                .lock()
                .unwrap()
                .insert(self.path.to_owned(), out.clone());
            self.run.log(self.path, What::Ended { out });
        }
    }
}

/// Runs `program` on wherefore's virtual time, its schedule permuted by `seed`, and returns its
/// trace. Panics of the program's own (`Op::Panic`) are silenced by [`quiet_panics`], which the
/// caller installs once.
pub fn run_rust(program: &Program, seed: u64) -> Vec<Event> {
    let events = Mutex::new(Vec::new());
    let ran = catch_unwind(AssertUnwindSafe(|| {
        wherefore::testing::Runtime::new()
            .with_seed(seed)
            .block_on(async {
                let run = Run::new(program, &events);
                let horizon = Scope::named("horizon").with_deadline(run.t0 + ms(HORIZON));
                let handle = horizon.handle();
                let out = horizon.run(run.ops("main", &run.program.body)).await;
                let out = out.map(|_| ());
                run.log(
                    "main",
                    What::ScopeExit {
                        scope: "horizon".into(),
                        caught: handle.cancelled_caught(),
                        out: shape(&out),
                    },
                );
                run.log("main", What::Ended { out: shape(&out) });
            });
    }));
    let mut events = events.into_inner().unwrap();
    if let Err(payload) = ran {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        let what = if message.contains("stuck") {
            What::Stuck
        } else {
            What::Error {
                message: format!("the run panicked: {message}"),
            }
        };
        events.push(Event {
            t: STUCK_AT,
            task: "main".into(),
            what,
        });
    }
    events
}

/// Silences the panic messages of programs' `Op::Panic` (they are expected, and collected by
/// their nurseries); any other panic still prints.
pub fn quiet_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        let ours = message.starts_with("op") && message[2..].chars().all(|c| c.is_ascii_digit());
        if !ours && !message.contains("stuck") {
            default(info);
        }
    }));
}
