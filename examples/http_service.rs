//! An HTTP service (axum 0.8 on hyper 1, tokio's multi-thread runtime) whose every request fans
//! out to two backends in a nursery of its own, under a deadline, and answers with one line that
//! says what happened: the value, or the cause chain of what stopped it.
//!
//! The server is a nursery, `connections`, that accepts connections itself and serves each one,
//! in a scope `conn-N`, as a worker member (`Nursery::spawn_worker_named`): connections run in
//! parallel on tokio's worker threads and still see the server's cancellation. A request runs in
//! a scope `request-N` with its deadline, around a nursery `backends` with two members,
//! `backend-a` and `backend-b`; each does what the query asks (`fast`, `slow`, `hang` or `fail`).
//! So the response names
//!
//! - a timeout of the request's scope, with where its deadline was set (504),
//! - the backend that failed and where it was spawned (502; its sibling was cancelled), or
//! - the shutdown, as a chain from the request through its connection up to the signal (503),
//!
//! and the log says, for each backend that was cancelled, which of these it was.
//!
//! Each request leaves an audit record to a persistent task group, `audit`, owned by the server:
//! the write outlives the request (a request's timeout does not reach it) but not the server,
//! whose shutdown gives it a grace period and reports what became of every record.
//!
//! The first Ctrl+C or SIGTERM cancels the server: it stops accepting, connections finish the
//! request in flight (whose backends see the shutdown as their cause) and close; a second signal,
//! or a 10 s grace period, forces it. At the end the server prints its report.
//!
//! Run it with `cargo run --example http_service --features tokio` and try the `curl` lines it
//! prints. The integration test `tests/http_service.rs` runs the same `serve` under load.

use std::fmt;
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use wherefore::{
    BoxError, Cancelled, Cause, Nursery, NurseryBuilder, NurseryError, PersistentGroup, Scope,
    ShutdownReport, TaskExit,
};

/// How the service behaves; the defaults suit a person trying it with `curl`.
#[derive(Clone, Debug)]
pub struct Config {
    /// A request's deadline when its query names none (`deadline_ms`).
    pub deadline: Duration,
    /// How long a `slow` backend takes to answer.
    pub slow_backend: Duration,
    /// How long writing an audit record takes.
    pub audit_write: Duration,
    /// How long the audit records still being written may take once the server is cancelled.
    pub audit_grace: Duration,
    /// How long a connection may take to finish its request in flight once the server is
    /// cancelled; then it is cut.
    pub drain_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            deadline: Duration::from_secs(1),
            slow_backend: Duration::from_millis(200),
            audit_write: Duration::from_millis(50),
            audit_grace: Duration::from_secs(5),
            drain_grace: Duration::from_secs(5),
        }
    }
}

/// How the requests ended, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// Both backends answered: 200.
    pub ok: usize,
    /// The request's deadline passed first: 504.
    pub timed_out: usize,
    /// A backend failed (and its sibling was cancelled): 502.
    pub backend_failed: usize,
    /// The server's shutdown cancelled the request: 503.
    pub shut_down: usize,
    /// The query made no sense: 400.
    pub bad_request: usize,
}

impl RequestCounts {
    /// Every request counted.
    pub fn total(&self) -> usize {
        self.ok + self.timed_out + self.backend_failed + self.shut_down + self.bad_request
    }
}

/// What became of the server's requests, connections and audit records.
#[derive(Clone, Debug)]
pub struct ServiceReport {
    /// The requests, by outcome.
    pub requests: RequestCounts,
    /// Connections accepted.
    pub connections: usize,
    /// Connections that ended with an HTTP or I/O error.
    pub connections_failed: usize,
    /// Connections still busy at the end of the drain grace period, and closed unfinished.
    pub connections_cut: usize,
    /// Audit records not written because the audit group was already closing.
    pub audits_refused: usize,
    /// The audit group's shutdown report; `None` if the server failed before it shut the group
    /// down (the failure was logged).
    pub audit: Option<ShutdownReport>,
}

impl fmt::Display for ServiceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.requests;
        write!(
            f,
            "{} requests: {} answered, {} timed out, {} failed in a backend, {} cut short by the \
             shutdown, {} malformed; {} connections: {} failed, {} cut after the drain; audit records refused: {}",
            r.total(),
            r.ok,
            r.timed_out,
            r.backend_failed,
            r.shut_down,
            r.bad_request,
            self.connections,
            self.connections_failed,
            self.connections_cut,
            self.audits_refused
        )?;
        match &self.audit {
            Some(audit) => write!(f, "\n{audit}"),
            None => f.write_str("\nthe audit group was not shut down: the server failed"),
        }
    }
}

/// A line of the log: request outcomes, cut connections, refused audit records.
type Log = Arc<dyn Fn(String) + Send + Sync>;

/// The counters behind [`ServiceReport`], updated from every worker thread.
#[derive(Default)]
struct Counts {
    ok: AtomicUsize,
    timed_out: AtomicUsize,
    backend_failed: AtomicUsize,
    shut_down: AtomicUsize,
    bad_request: AtomicUsize,
    connections: AtomicUsize,
    connections_failed: AtomicUsize,
    connections_cut: AtomicUsize,
    audits_refused: AtomicUsize,
}

impl Counts {
    fn add(counter: &AtomicUsize) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn report(&self, audit: Option<ShutdownReport>) -> ServiceReport {
        let read = |counter: &AtomicUsize| counter.load(Ordering::Relaxed);
        ServiceReport {
            requests: RequestCounts {
                ok: read(&self.ok),
                timed_out: read(&self.timed_out),
                backend_failed: read(&self.backend_failed),
                shut_down: read(&self.shut_down),
                bad_request: read(&self.bad_request),
            },
            connections: read(&self.connections),
            connections_failed: read(&self.connections_failed),
            connections_cut: read(&self.connections_cut),
            audits_refused: read(&self.audits_refused),
            audit,
        }
    }
}

/// What the handlers share: the axum state.
struct Service {
    config: Config,
    /// The server's group for work that outlives a request.
    audit: PersistentGroup<Cancelled>,
    counts: Arc<Counts>,
    log: Log,
    /// The number of the last request started.
    requests: AtomicU64,
}

/// Serves `listener` until the scope this is run in is cancelled; then stops accepting, lets
/// every connection finish its request in flight (within `config.drain_grace`), shuts the audit
/// group down (within `config.audit_grace`) and returns the report. `log` receives a line when a
/// request starts, when one of its backends is cancelled (with the cause) and when it ends, and
/// one for every connection cut or failed and every audit record refused or lost.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    log: impl Fn(String) + Send + Sync + 'static,
) -> ServiceReport {
    let log: Log = Arc::new(log);
    let counts = Arc::new(Counts::default());
    // Left by the nursery's body, which borrows it: a nursery whose enclosing scope was
    // cancelled reports that cancellation, not what its body returned.
    let audit = OnceLock::new();
    let served = NurseryBuilder::named("connections")
        .run(|n| accept(n, listener, &config, &counts, &log, &audit))
        .await;
    match served {
        // How the server ends: the scope it runs in was cancelled.
        Ok(()) | Err(NurseryError::Cancelled(_)) => {}
        Err(failed) => log(format!("server: {failed}")),
    }
    counts.report(audit.into_inner())
}

/// The body of the server's nursery: accepts connections until the server is cancelled, then
/// shuts the audit group down with the server's cause and leaves its report in `audit_report`.
/// The nursery then waits for the connections to drain.
async fn accept(
    n: Nursery<'_, io::Error>,
    listener: TcpListener,
    config: &Config,
    counts: &Arc<Counts>,
    log: &Log,
    audit_report: &OnceLock<ShutdownReport>,
) -> io::Result<()> {
    let audit_log = log.clone();
    let audit = n.persistent_group_with("audit", move |failure| {
        audit_log(format!("audit record lost: {failure}"))
    });
    let service = Arc::new(Service {
        config: config.clone(),
        audit: audit.clone(),
        counts: counts.clone(),
        log: log.clone(),
        requests: AtomicU64::new(0),
    });
    let router = Router::new()
        .route("/fanout", get(fanout))
        .with_state(service.clone());
    let stopped = loop {
        let (stream, _peer) = match wherefore::guard(listener.accept()).await {
            Ok(accepted) => accepted?,
            Err(cancelled) => break cancelled,
        };
        let id = counts.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let conn = connection(stream, id, router.clone(), service.clone());
        // A worker: it runs on tokio's threads, in parallel with the other connections, and stays
        // a member of this nursery, in its scope. It reports its own end; no one joins it.
        let handle = n
            .spawn_worker_named(format!("conn-{id}"), conn)
            .expect("the nursery is open while its body runs");
        drop(handle);
    };
    drop(listener); // connecting clients are refused from now on, not left waiting
    let report = audit
        .shutdown_with_cause(config.audit_grace, stopped.cause().clone())
        .await;
    audit_report.set(report).expect("the body runs once");
    Ok(())
}

/// Serves one connection in its own scope, `conn-N`, until the client closes it or the server is
/// cancelled; then lets it finish the request in flight, for `drain_grace` at most. Counts and
/// logs how it ended, and always returns `Ok`: a connection's trouble is its own, and a member
/// that failed would cancel the whole server.
async fn connection(
    stream: TcpStream,
    id: usize,
    router: Router,
    service: Arc<Service>,
) -> io::Result<()> {
    let (grace, counts, log) = (service.config.drain_grace, &service.counts, &service.log);
    // The handlers run inside this future, so a request's scope is a child of `conn-N`.
    let http = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    let conn = Scope::named(format!("conn-{id}")).run(async {
        let mut http = pin!(http);
        let served = tokio::select! {
            served = http.as_mut() => served,
            cause = wherefore::cancelled() => {
                // No new request from here on; the one in flight, if any, sees the cancellation
                // at its next cancellation point and answers (its scope was entered under
                // `conn-N`, whose cancellation it shares). The connection is a foreign future,
                // which this cancelled scope would drop (S19): it drains in a shield, bounded by
                // tokio's timer.
                http.as_mut().graceful_shutdown();
                match wherefore::shield(tokio::time::timeout(grace, http)).await {
                    Ok(served) => served,
                    Err(_elapsed) => {
                        // Dropped with the request in flight, which so has no outcome.
                        Counts::add(&counts.connections_cut);
                        log(format!("conn-{id} cut after {grace:?} of drain: {cause}"));
                        return Ok(());
                    }
                }
            }
        };
        if let Err(error) = served {
            Counts::add(&counts.connections_failed);
            log(format!("conn-{id} failed: {error}"));
        }
        Ok::<_, Cancelled>(())
    });
    // The body has reported how the connection ended; the scope adds nothing (nothing cancels
    // it but the server, whose cancellation is the server's to report).
    let _ = conn.await;
    Ok(())
}

/// What a backend does when asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    /// Answers at once.
    Fast,
    /// Answers after `Config::slow_backend`.
    Slow,
    /// Never answers: waits until the request is cancelled.
    Hang,
    /// Fails at once.
    Fail,
}

impl Behaviour {
    fn parse(backend: &str, value: &str) -> Result<Behaviour, String> {
        match value {
            "fast" => Ok(Behaviour::Fast),
            "slow" => Ok(Behaviour::Slow),
            "hang" => Ok(Behaviour::Hang),
            "fail" => Ok(Behaviour::Fail),
            other => Err(format!(
                "unknown behaviour {other:?} for {backend}: expected fast, slow, hang or fail"
            )),
        }
    }
}

/// What a request asks for: `/fanout?a=fast&b=hang&deadline_ms=50`.
#[derive(Clone, Copy, Debug)]
struct Plan {
    a: Behaviour,
    b: Behaviour,
    deadline: Duration,
}

impl Plan {
    fn parse(query: Option<&str>, config: &Config) -> Result<Plan, String> {
        let mut plan = Plan {
            a: Behaviour::Fast,
            b: Behaviour::Fast,
            deadline: config.deadline,
        };
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "a" => plan.a = Behaviour::parse("backend-a", value)?,
                "b" => plan.b = Behaviour::parse("backend-b", value)?,
                "deadline_ms" => {
                    let ms = value.parse().map_err(|_| {
                        format!("deadline_ms must be a number of milliseconds, not {value:?}")
                    })?;
                    plan.deadline = Duration::from_millis(ms);
                }
                other => {
                    return Err(format!(
                        "unknown parameter {other:?}: expected a, b or deadline_ms"
                    ));
                }
            }
        }
        Ok(plan)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |b: Behaviour| format!("{b:?}").to_lowercase();
        write!(
            f,
            "backend-a {}, backend-b {}, deadline {:?}",
            name(self.a),
            name(self.b),
            self.deadline
        )
    }
}

/// How a request's fan-out ended.
enum Outcome {
    Answered(String),
    TimedOut(Cause),
    BackendFailed(NurseryError<BoxError>),
    ShutDown(Cancelled),
}

/// `GET /fanout`: one line, the answer or why there is none, and an `x-request-id` header.
async fn fanout(State(service): State<Arc<Service>>, RawQuery(query): RawQuery) -> Response {
    let id = service.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let counts = &service.counts;
    let (status, line) = match Plan::parse(query.as_deref(), &service.config) {
        Err(problem) => {
            Counts::add(&counts.bad_request);
            (StatusCode::BAD_REQUEST, problem)
        }
        Ok(plan) => {
            (service.log)(format!("request-{id} started: {plan}"));
            match fan_out(id, plan, &service).await {
                Outcome::Answered(answer) => {
                    Counts::add(&counts.ok);
                    (StatusCode::OK, answer)
                }
                Outcome::TimedOut(cause) => {
                    Counts::add(&counts.timed_out);
                    (StatusCode::GATEWAY_TIMEOUT, cause.to_string())
                }
                Outcome::BackendFailed(failed) => {
                    Counts::add(&counts.backend_failed);
                    (StatusCode::BAD_GATEWAY, failed.to_string())
                }
                Outcome::ShutDown(cancelled) => {
                    Counts::add(&counts.shut_down);
                    (StatusCode::SERVICE_UNAVAILABLE, cancelled.to_string())
                }
            }
        }
    };
    (service.log)(format!("request-{id} {}: {line}", status.as_u16()));
    service.write_audit(id);
    (status, [("x-request-id", id.to_string())], line + "\n").into_response()
}

/// Asks both backends, in a nursery inside the request's scope `request-N`, which carries the
/// deadline.
async fn fan_out(id: u64, plan: Plan, service: &Service) -> Outcome {
    let request = Scope::named(format!("request-{id}")).with_timeout(plan.deadline);
    let handle = request.handle();
    let asked = request
        .run(
            NurseryBuilder::named("backends").run(async |n: Nursery<'_, BoxError>| {
                // The members borrow from this stack (`service`): they run inside this future.
                let open = "the nursery is open while its body runs";
                let a = n.spawn_named("backend-a", backend(id, "backend-a", plan.a, service));
                let b = n.spawn_named("backend-b", backend(id, "backend-b", plan.b, service));
                let (mut a, mut b) = (a.expect(open), b.expect(open));
                // `?`: this body's own cancellation (the deadline, a failed sibling, the shutdown).
                match (a.join().await?, b.join().await?) {
                    (TaskExit::Completed(a), TaskExit::Completed(b)) => Ok(format!("{a}, {b}")),
                    // Whichever did not complete has cancelled this body: the joins above failed.
                    (a, b) => Err(format!("backend-a {a}, backend-b {b}").into()),
                }
            }),
        )
        .await;
    match asked {
        Ok(Some(answer)) => Outcome::Answered(answer),
        // The request's scope absorbs only its own cancellation: its deadline.
        Ok(None) => Outcome::TimedOut(handle.cause().expect("the scope was cancelled")),
        Err(NurseryError::Cancelled(cancelled)) => Outcome::ShutDown(cancelled),
        Err(failed) => Outcome::BackendFailed(failed),
    }
}

/// A simulated backend of request `id`; logs why it was cancelled, if it was. Its waits are
/// cancellation points (a tokio timer inside `wherefore::guard`; `wherefore::sleep` would do
/// too), so the request's deadline, a failed sibling and the shutdown all stop it at once: a
/// bare `tokio::time::sleep` would not notice them.
async fn backend(
    id: u64,
    name: &str,
    behaviour: Behaviour,
    service: &Service,
) -> Result<String, BoxError> {
    let slow = service.config.slow_backend;
    let waited = match behaviour {
        Behaviour::Fast => return Ok(format!("{name} answered at once")),
        Behaviour::Fail => return Err(format!("{name} refused the request").into()),
        Behaviour::Slow => wherefore::guard(tokio::time::sleep(slow))
            .await
            .map(|()| format!("{name} answered after {slow:?}")),
        Behaviour::Hang => wherefore::guard(std::future::pending()).await,
    };
    waited.map_err(|cancelled| {
        (service.log)(format!("request-{id} {name} {cancelled}"));
        cancelled.into()
    })
}

impl Service {
    /// Leaves the audit record of request `id` to the server's group: it is written while the
    /// response goes out and after, whatever the request's deadline, and even during the
    /// shutdown (within the group's grace).
    fn write_audit(&self, id: u64) {
        let write = self.config.audit_write;
        let record = async move {
            // Shielded: a record that was started is finished, shutdown or not.
            wherefore::shield(wherefore::sleep(write)).await
        };
        if let Err(refused) = self.audit.spawn_named(format!("audit-{id}"), record) {
            Counts::add(&self.counts.audits_refused);
            (self.log)(format!("request-{id}: no audit record: {refused}"));
        }
    }
}

#[allow(dead_code)] // also compiled into the integration test, which has its own main
#[tokio::main]
async fn main() -> io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let listener = TcpListener::bind(&address).await?;
    let url = format!("http://{}/fanout", listener.local_addr()?);
    println!("HTTP service on {url} (Ctrl+C to stop). Try:");
    let tries = [
        ("", "200: both backends answer"),
        ("?b=slow", "200, after 200ms"),
        ("?b=hang&deadline_ms=300", "504: the request's deadline"),
        (
            "?a=hang&b=fail",
            "502: backend-b failed, backend-a was cancelled",
        ),
        (
            "?a=hang&deadline_ms=60000",
            "then Ctrl+C here: 503, the signal",
        ),
    ]
    .map(|(query, what)| (format!("curl -i '{url}{query}'"), what));
    let width = tries.iter().map(|(curl, _)| curl.len()).max().unwrap_or(0);
    for (curl, what) in tries {
        println!("  {curl:<width$}  # {what}");
    }
    let server = Scope::named("server");
    let forced = wherefore::tokio::shutdown_on_signals(server.handle(), Duration::from_secs(10));
    let log = |line: String| println!("{line}");
    let serving =
        server.run(async { Ok::<_, Cancelled>(serve(listener, Config::default(), log).await) });
    tokio::select! {
        served = serving => {
            if let Ok(Some(report)) = served {
                println!("{report}");
            }
        }
        why = forced => println!("shutdown forced: {why}"),
    }
    Ok(())
}
