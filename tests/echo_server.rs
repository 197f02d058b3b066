//! The echo server of `examples/echo_server.rs` under load, on loopback: 200 clients exchange
//! messages; some close, some idle out (their cause is a `Timeout` naming the connection), the
//! rest are closed cleanly by a programmatic shutdown while they are still talking. The server's
//! report counts every connection, and no task is left running.
#![cfg(feature = "tokio")]

#[path = "../examples/echo_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod echo_server;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wherefore::Scope;

const CLIENTS: usize = 200;
/// Long against the talkers' pings (every `IDLE / 10`), so a loaded machine cannot idle them out.
const IDLE: Duration = Duration::from_millis(1000);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Exchanges three messages, then closes.
    Closer,
    /// Exchanges three messages, then goes quiet until the server closes it.
    Idler,
    /// Keeps talking until the server's shutdown closes it.
    Talker,
}

fn role(i: usize) -> Role {
    match i % 4 {
        0 | 1 => Role::Closer, // 100
        2 => Role::Idler,      // 50
        _ => Role::Talker,     // 50
    }
}

/// What came back for a message.
#[derive(PartialEq, Eq)]
enum Echo {
    Same,
    /// The server closed the connection cleanly (EOF) before echoing: it is shutting down.
    Closed,
    Wrong,
}

async fn echo(stream: &mut TcpStream, message: &[u8]) -> Echo {
    if stream.write_all(message).await.is_err() {
        return Echo::Wrong;
    }
    let mut back = vec![0; message.len()];
    match stream.read_exact(&mut back).await {
        Ok(_) if back == message => Echo::Same,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Echo::Closed,
        _ => Echo::Wrong,
    }
}

/// Runs one client; returns whether every echo it saw was right and every close it saw was
/// clean (EOF, no reset).
async fn client(
    address: std::net::SocketAddr,
    i: usize,
    shutdown_started: Arc<tokio::sync::Notify>,
) -> bool {
    let mut stream = TcpStream::connect(address).await.unwrap();
    for round in 0..3 {
        if echo(
            &mut stream,
            format!("client {i} round {round}\n").as_bytes(),
        )
        .await
            != Echo::Same
        {
            return false;
        }
    }
    match role(i) {
        Role::Closer => stream.shutdown().await.is_ok(),
        Role::Idler => {
            let mut buf = [0u8; 16];
            matches!(stream.read(&mut buf).await, Ok(0)) // EOF after the idle timeout
        }
        Role::Talker => {
            let notified = shutdown_started.notified();
            tokio::pin!(notified);
            loop {
                tokio::select! {
                    _ = &mut notified => break,
                    _ = tokio::time::sleep(IDLE / 10) => match echo(&mut stream, b"ping\n").await {
                        Echo::Same => {}
                        Echo::Closed => return stream.shutdown().await.is_ok(),
                        Echo::Wrong => return false,
                    },
                }
            }
            // The shutdown began: the server closes cleanly; read to EOF (an echo in flight may
            // still arrive first), then close our side.
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).await.is_ok() && stream.shutdown().await.is_ok()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_close_idle_out_and_are_shut_down_cleanly() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let log = {
        let lines = lines.clone();
        move |line: String| lines.lock().unwrap().push(line)
    };
    let server = Scope::named("server");
    let stop = server.handle();
    let shutdown_started = Arc::new(tokio::sync::Notify::new());

    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(client(address, i, shutdown_started.clone())))
        .collect();
    let serving = server.run(async {
        Ok::<_, wherefore::Cancelled>(echo_server::serve(listener, IDLE, log).await)
    });
    let driver = async {
        // Wait until the closers and idlers are done, then shut down while the talkers talk.
        let lines_now = || lines.lock().unwrap().len();
        let mut waited = Duration::ZERO;
        while lines_now() < CLIENTS / 4 && waited < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            waited += Duration::from_millis(20);
        }
        stop.cancel_with("test shutdown");
        shutdown_started.notify_waiters();
    };
    let (served, ()) = tokio::join!(serving, driver);
    let report = served.unwrap().unwrap();
    for (i, client) in clients.into_iter().enumerate() {
        assert!(
            client.await.unwrap(),
            "client {i} ({:?}) saw a wrong echo or an unclean close",
            role(i)
        );
    }

    assert_eq!(
        report,
        echo_server::ServerReport {
            connections: 200,
            closed_by_client: 100,
            idled_out: 50,
            shut_down: 50,
            failed: 0,
        }
    );
    let lines = lines.lock().unwrap().clone();
    let idled: Vec<_> = lines
        .iter()
        .filter(|l| l.contains(&format!("timed out after {IDLE:?}")))
        .collect();
    assert_eq!(idled.len(), 50);
    for line in &idled {
        let (conn, cause) = line.split_once(" closed: ").unwrap();
        assert!(
            cause.starts_with(&format!("scope \"{conn}\" timed out")),
            "{line}"
        );
    }
    let shut: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("explicit (\"test shutdown\")"))
        .collect();
    assert_eq!(shut.len(), 50);
    assert!(
        shut.iter()
            .all(|l| l.contains("was cancelled: parent scope \"server\" was cancelled")),
        "{shut:?}"
    );

    // Nothing stays running: the clients were joined, the server's members ended with it, and
    // the timer task of tokio's clock is aborted once its last scope is gone.
    // (An abort takes effect when the worker thread next handles that task: wait for it, up to a
    // second.)
    let metrics = tokio::runtime::Handle::current().metrics();
    for _ in 0..1_000 {
        if metrics.num_alive_tasks() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(metrics.num_alive_tasks(), 0);
}
