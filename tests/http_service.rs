//! The HTTP service of `examples/http_service.rs` under load, on loopback, driven by hyper's
//! client: 50 clients send 500 requests that mix fast, slow, hanging and failing backends, and
//! every response is the expected line (the answer, the timeout of the request's scope, the
//! backend that failed and where it was spawned), while the server's log names why each
//! cancelled backend was cancelled. Then requests are left in flight and the server is shut down
//! programmatically: each gets its answer or the shutdown's cause chain, the server drains within
//! its grace period, the audit group accounts for every record, the listener is closed, and no
//! task is left on the server's runtime.
#![cfg(feature = "tokio")]

#[path = "../examples/http_service.rs"]
#[allow(dead_code, unreachable_pub)]
mod http_service;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use wherefore::{Cancelled, Scope};

use http_service::{Config, RequestCounts};

const CLIENTS: usize = 50;
const REQUESTS_PER_CLIENT: usize = 10;
/// Requests still in flight when the server is shut down, each on its own connection.
const IN_FLIGHT: usize = 20;
/// How long the server may take to drain before the shutdown is forced (the test then fails).
const GRACE: Duration = Duration::from_secs(10);

fn config() -> Config {
    Config {
        deadline: Duration::from_secs(10),
        slow_backend: Duration::from_millis(20),
        audit_write: Duration::from_millis(10),
        audit_grace: Duration::from_secs(5),
        drain_grace: Duration::from_secs(5),
    }
}

/// What a request asks of the backends. Every outcome is certain: a hanging backend never
/// answers, so only the deadline, a failing sibling or the shutdown can end its request; the
/// deadlines of the others are generous.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Both answer at once.
    Fast,
    /// backend-a answers after 20 ms.
    Slow,
    /// backend-b hangs; the request's 50 ms deadline ends it.
    TimesOut,
    /// backend-b fails; backend-a, which hangs, is cancelled by it (no deadline is near).
    Fails,
    /// The query names an unknown behaviour.
    Malformed,
    /// backend-b hangs, under a deadline of a minute: only the shutdown can end it.
    Hangs,
}

impl Kind {
    fn of_request(i: usize) -> Kind {
        [
            Kind::Fast,
            Kind::Slow,
            Kind::TimesOut,
            Kind::Fails,
            Kind::Malformed,
        ][i % 5]
    }

    fn query(self) -> &'static str {
        match self {
            Kind::Fast => "a=fast&b=fast&deadline_ms=10000",
            Kind::Slow => "a=slow&b=fast&deadline_ms=10000",
            Kind::TimesOut => "a=fast&b=hang&deadline_ms=50",
            Kind::Fails => "a=hang&b=fail&deadline_ms=10000",
            Kind::Malformed => "a=fast&b=sometimes",
            Kind::Hangs => "a=fast&b=hang&deadline_ms=60000",
        }
    }

    /// The status and the line (after [`masked`]) that request number `id` must get, unless the
    /// server is shut down while it runs.
    fn expected(self, id: u64) -> (u16, String) {
        match self {
            Kind::Fast => (
                200,
                "backend-a answered at once, backend-b answered at once".to_owned(),
            ),
            Kind::Slow => (
                200,
                "backend-a answered after 20ms, backend-b answered at once".to_owned(),
            ),
            Kind::TimesOut => (504, timed_out(id)),
            Kind::Fails => (
                502,
                "a nursery member failed: task \"backend-b\" \
                 (spawned at examples/http_service.rs:L:C) failed: backend-b refused the request"
                    .to_owned(),
            ),
            Kind::Malformed => (
                400,
                "unknown behaviour \"sometimes\" for backend-b: expected fast, slow, hang or fail"
                    .to_owned(),
            ),
            Kind::Hangs => unreachable!("a hanging request ends only with the shutdown"),
        }
    }

    /// The line the server logs, before it answers request number `id`, for the backend that
    /// was cancelled (unless the server is shut down while it runs): the hanging one, by the
    /// deadline or by its failed sibling.
    fn cancelled_backend(self, id: u64) -> Option<String> {
        match self {
            Kind::TimesOut => Some(format!(
                "request-{id} backend-b cancelled: parent scope \"request-{id}\" was cancelled: {}",
                timed_out(id)
            )),
            Kind::Fails => Some(format!(
                "request-{id} backend-a cancelled: sibling task \"backend-b\" \
                 (spawned at examples/http_service.rs:L:C) failed: backend-b refused the request"
            )),
            Kind::Hangs => Some(format!(
                "request-{id} backend-b cancelled: {}",
                shutdown_chain(id)
            )),
            Kind::Fast | Kind::Slow | Kind::Malformed => None,
        }
    }
}

/// Why request number `id` and its backends were cancelled by the shutdown: the chain from the
/// request through its connection to the server, and the test's shutdown.
fn shutdown_chain(id: u64) -> String {
    format!(
        "parent scope \"request-{id}\" was cancelled: parent scope \"conn-N\" was cancelled: \
         parent scope \"connections\" was cancelled: parent scope \"server\" was cancelled: \
         explicit (\"test shutdown\") at tests/http_service.rs:L:C"
    )
}

/// The status and line request number `id` gets when the shutdown cancels it.
fn shut_down(id: u64) -> (u16, String) {
    (503, format!("cancelled: {}", shutdown_chain(id)))
}

/// The timeout of request number `id`'s scope.
fn timed_out(id: u64) -> String {
    format!(
        "scope \"request-{id}\" timed out after 50ms \
         (deadline set at examples/http_service.rs:L:C)"
    )
}

/// The masked lines the server has logged since the last call.
fn logged(lines: &mut mpsc::UnboundedReceiver<String>) -> HashSet<String> {
    std::iter::from_fn(|| lines.try_recv().ok())
        .map(|line| masked(&line))
        .collect()
}

/// A response as the client saw it.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// The server's number for the request (`x-request-id`).
    id: u64,
    /// The body, which must be one line.
    line: String,
}

impl Answer {
    /// The status and the line with what varies from build to build and run to run made fixed.
    fn masked(&self) -> (u16, String) {
        (self.status, masked(&self.line))
    }
}

/// `line` with the line and column of each source location replaced by `L:C` (and the example's
/// path as the test's `#[path]` include makes rustc see it, `tests/../examples/`, shortened), and
/// a connection's number by `N`.
fn masked(line: &str) -> String {
    fn after_digits(s: &str) -> &str {
        s.trim_start_matches(|c: char| c.is_ascii_digit())
    }
    let line = line.replace("tests/../examples/", "examples/");
    let mut out = String::with_capacity(line.len());
    let mut rest = line.as_str();
    while let Some(c) = rest.chars().next() {
        if let Some(tail) = rest.strip_prefix(".rs:") {
            let tail = after_digits(tail);
            rest = after_digits(tail.strip_prefix(':').unwrap_or(tail));
            out.push_str(".rs:L:C");
        } else if let Some(tail) = rest.strip_prefix("\"conn-") {
            rest = after_digits(tail);
            out.push_str("\"conn-N");
        } else {
            rest = &rest[c.len_utf8()..];
            out.push(c);
        }
    }
    out
}

/// One keep-alive HTTP/1 connection to the service.
struct Client {
    send: http1::SendRequest<Empty<Bytes>>,
    driver: tokio::task::JoinHandle<hyper::Result<()>>,
}

impl Client {
    async fn connect(address: SocketAddr) -> Client {
        let stream = TcpStream::connect(address).await.unwrap();
        let (send, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        Client {
            send,
            driver: tokio::spawn(connection),
        }
    }

    async fn get(&mut self, query: &str) -> Answer {
        self.send.ready().await.unwrap();
        let request = hyper::Request::get(format!("/fanout?{query}"))
            .header(hyper::header::HOST, "127.0.0.1")
            .body(Empty::new())
            .unwrap();
        let response = self.send.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        let line = body
            .strip_suffix('\n')
            .filter(|line| !line.contains('\n'))
            .unwrap_or_else(|| panic!("not one line: {body:?}"))
            .to_owned();
        Answer { status, id, line }
    }

    /// Closes the connection and waits until its driver is done.
    async fn close(self) {
        drop(self.send);
        self.driver.await.unwrap().unwrap();
    }
}

#[test]
fn five_hundred_requests_get_their_cause_and_a_shutdown_drains_those_in_flight() {
    // The server has a runtime of its own, so that at the end its live tasks can be counted
    // without the clients'.
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let clients_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let listener = server_runtime
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap();
    let (log, mut lines) = mpsc::unbounded_channel::<String>();
    let (signal, signals) = mpsc::unbounded_channel::<&'static str>();
    let server = server_runtime.spawn(async move {
        let server = Scope::named("server");
        let mut signals = signals;
        let signals = futures::stream::poll_fn(move |cx| signals.poll_recv(cx));
        let forced = wherefore::tokio::shutdown_on(server.handle(), GRACE, signals);
        let log = move |line| drop(log.send(line));
        let serving = server
            .run(async { Ok::<_, Cancelled>(http_service::serve(listener, config(), log).await) });
        tokio::select! {
            served = serving => Ok(served.unwrap().expect("the server ran to its end")),
            forced = forced => Err(forced),
        }
    });

    let (seen, shutdown_started) = clients_runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), async {
            let mut seen = RequestCounts::default();
            let mut count = |status| match status {
                200 => seen.ok += 1,
                504 => seen.timed_out += 1,
                502 => seen.backend_failed += 1,
                503 => seen.shut_down += 1,
                400 => seen.bad_request += 1,
                other => panic!("unexpected status {other}"),
            };

            // 500 requests from 50 clients, each on its keep-alive connection.
            let clients: Vec<_> = (0..CLIENTS)
                .map(|c| {
                    tokio::spawn(async move {
                        let mut client = Client::connect(address).await;
                        let mut answers = Vec::new();
                        for r in 0..REQUESTS_PER_CLIENT {
                            let kind = Kind::of_request(c * REQUESTS_PER_CLIENT + r);
                            answers.push((kind, client.get(kind.query()).await));
                        }
                        client.close().await;
                        answers
                    })
                })
                .collect();
            let mut answers = Vec::new();
            for client in clients {
                answers.extend(client.await.unwrap());
            }
            // Each request logged its lines before it answered.
            let log = logged(&mut lines);
            for (kind, answer) in answers {
                assert_eq!(answer.masked(), kind.expected(answer.id), "{kind:?}");
                if let Some(line) = kind.cancelled_backend(answer.id) {
                    assert!(log.contains(&line), "not logged: {line}");
                }
                count(answer.status);
            }

            // Requests in flight at the shutdown, each on a connection of its own: half hang
            // until it, half have a slow backend and may answer just before it.
            let in_flight: Vec<_> = (0..IN_FLIGHT)
                .map(|i| {
                    let kind = [Kind::Hangs, Kind::Slow][i % 2];
                    tokio::spawn(async move {
                        let mut client = Client::connect(address).await;
                        let answer = client.get(kind.query()).await;
                        client.close().await; // the server closes it after the shutdown
                        (kind, answer)
                    })
                })
                .collect();
            let mut started = 0;
            while started < IN_FLIGHT {
                let line = lines.recv().await.expect("the server is running");
                if line.starts_with("request-") && line.contains(" started: ") {
                    started += 1;
                }
            }
            signal.send("test shutdown").unwrap();
            let shutdown_started = Instant::now();
            let mut answers = Vec::new();
            for request in in_flight {
                answers.push(request.await.unwrap());
            }
            let log = logged(&mut lines);
            for (kind, answer) in answers {
                let got = answer.masked();
                match kind {
                    Kind::Hangs => {
                        assert_eq!(got, shut_down(answer.id));
                        let line = kind.cancelled_backend(answer.id).unwrap();
                        assert!(log.contains(&line), "not logged: {line}");
                    }
                    _ => assert!(
                        got == kind.expected(answer.id) || got == shut_down(answer.id),
                        "{kind:?} in flight at the shutdown got neither its answer nor the \
                         shutdown's cause: {got:?}"
                    ),
                }
                count(answer.status);
            }
            (seen, shutdown_started)
        })
        .await
        .expect("the clients were answered within 20 s")
    });

    let report = server_runtime
        .block_on(server)
        .unwrap()
        .unwrap_or_else(|forced| panic!("the server did not drain: {forced}"));
    let drained_in = shutdown_started.elapsed();
    assert!(drained_in < GRACE, "drained in {drained_in:?}");

    // The server counted what the clients saw.
    let total = CLIENTS * REQUESTS_PER_CLIENT + IN_FLIGHT;
    assert_eq!(report.requests, seen);
    assert_eq!(seen.total(), total);
    assert_eq!(
        (seen.timed_out, seen.backend_failed, seen.bad_request),
        (100, 100, 100)
    );
    assert_eq!(seen.ok + seen.shut_down, 200 + IN_FLIGHT);
    assert!(seen.shut_down >= IN_FLIGHT / 2, "{seen:?}");
    assert_eq!(
        (
            report.connections,
            report.connections_failed,
            report.connections_cut
        ),
        (CLIENTS + IN_FLIGHT, 0, 0)
    );

    // Every request left an audit record, written in full (even during the shutdown), or
    // refused once the group was closing: surely for the requests the shutdown cancelled.
    let Some(audit) = report.audit.as_ref() else {
        let failed: Vec<_> = std::iter::from_fn(|| lines.try_recv().ok())
            .filter(|line| line.starts_with("server: "))
            .collect();
        panic!("the server failed before it shut the audit group down: {failed:#?}");
    };
    assert_eq!(audit.finished() + report.audits_refused, total, "{audit}");
    assert_eq!(
        (audit.failed(), audit.cancelled(), audit.dropped().len()),
        (0, 0, 0),
        "{audit}"
    );
    assert!(report.audits_refused >= seen.shut_down, "{report}");
    assert_eq!(
        masked(&audit.cause().expect("shut down with a cause").to_string()),
        "parent scope \"server\" was cancelled: \
         explicit (\"test shutdown\") at tests/http_service.rs:L:C"
    );

    // The listener is closed, and nothing stays running on the server's runtime: its
    // connections ended with the nursery, and the timer task of tokio's clock is aborted once
    // its last scope is gone. (An abort takes effect when a worker thread next handles that task:
    // wait for it, up to a second.)
    let refused = clients_runtime.block_on(TcpStream::connect(address));
    assert!(
        refused.is_err(),
        "a connection was accepted after the shutdown"
    );
    let metrics = server_runtime.metrics();
    for _ in 0..1_000 {
        if metrics.num_alive_tasks() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(metrics.num_alive_tasks(), 0);
}
