//! A TCP echo server on 127.0.0.1, written as a nursery of connection handlers.
//!
//! Each connection runs in its own scope, `conn-N`, with an idle timeout that restarts on every
//! message; an echo in flight finishes inside a shield even during shutdown. The first Ctrl+C or
//! SIGTERM cancels the server scope (every connection sees a `Parent` chain up to the signal); a
//! second one, or a 5 s grace period, forces the shutdown. Every cancellation is logged in one
//! line with its cause chain, and the server prints a report of its connections at the end.
//!
//! Run it with `cargo run --example echo_server --features tokio` and talk to it with
//! `nc 127.0.0.1 7878`. The integration test `tests/echo_server.rs` runs the same `serve`.

use std::cell::RefCell;
use std::fmt;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wherefore::{LocalNursery, NurseryBuilder, Scope};

/// What became of the server's connections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerReport {
    /// Connections accepted.
    pub connections: usize,
    /// Closed by the client (it sent EOF).
    pub closed_by_client: usize,
    /// Closed by the server after the idle timeout.
    pub idled_out: usize,
    /// Closed cleanly by the server's shutdown.
    pub shut_down: usize,
    /// Ended with an I/O error.
    pub failed: usize,
}

impl fmt::Display for ServerReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} connections: {} closed by the client, {} idled out, {} closed by the shutdown, {} failed",
            self.connections, self.closed_by_client, self.idled_out, self.shut_down, self.failed
        )
    }
}

/// How one connection ended.
enum Ended {
    ByClient,
    IdledOut(wherefore::Cause),
    ShutDown(wherefore::Cause),
}

/// Serves `listener` until the scope this is run in is cancelled; then every connection is
/// closed cleanly and the report returned. `log` receives one line per cancellation.
pub async fn serve(listener: TcpListener, idle: Duration, log: impl Fn(String)) -> ServerReport {
    let report = RefCell::new(ServerReport::default());
    let (report_ref, log) = (&report, &log);
    let served = NurseryBuilder::named("connections")
        .local()
        .run(async |n: LocalNursery<'_, std::io::Error>| {
            for id in 1.. {
                let (stream, _peer) = wherefore::guard(listener.accept()).await??;
                report_ref.borrow_mut().connections += 1;
                // No handle: a connection's outcome goes to the report, not to a joiner.
                n.start_soon_named(format!("conn-{id}"), async move {
                    let ended = connection(stream, id, idle).await;
                    let mut report = report_ref.borrow_mut();
                    match ended {
                        Ok(Ended::ByClient) => report.closed_by_client += 1,
                        Ok(Ended::IdledOut(cause)) => {
                            report.idled_out += 1;
                            log(format!("conn-{id} closed: {cause}"));
                        }
                        Ok(Ended::ShutDown(cause)) => {
                            report.shut_down += 1;
                            log(format!("conn-{id} closed: {cause}"));
                        }
                        Err(error) => {
                            report.failed += 1;
                            log(format!("conn-{id} failed: {error}"));
                        }
                    }
                    Ok(())
                })
                .expect("the nursery is open while its body runs");
            }
            Ok(())
        })
        .await;
    if let Err(wherefore::NurseryError::Failed(failures)) = served {
        for failure in failures {
            log(format!("server: {failure}"));
        }
    }
    report.into_inner()
}

/// Echoes until the client closes, the connection idles out, or the server shuts down; closes
/// the connection cleanly in every case.
async fn connection(mut stream: TcpStream, id: u64, idle: Duration) -> std::io::Result<Ended> {
    let scope = Scope::named(format!("conn-{id}")).with_timeout(idle);
    let handle = scope.handle();
    let echoed = scope
        .run(async {
            let mut buf = [0u8; 1024];
            loop {
                let len = wherefore::guard(stream.read(&mut buf)).await??;
                if len == 0 {
                    return Ok::<_, std::io::Error>(());
                }
                handle.set_timeout(idle); // the idle timer restarts with every message
                // An echo in flight finishes, shutdown or not.
                wherefore::shield(stream.write_all(&buf[..len])).await?;
            }
        })
        .await;
    let ended = match echoed {
        Ok(Some(())) => Ended::ByClient,
        Ok(None) => Ended::IdledOut(
            handle
                .cause()
                .expect("a scope absorbs only its own cancellation"),
        ),
        Err(error) => match wherefore::CancelError::as_cancelled(&error) {
            Some(cancelled) => Ended::ShutDown(cancelled.cause().clone()),
            None => return Err(error),
        },
    };
    // A clean close, even while the server is being cancelled: send FIN, then read what the
    // client still sends until it closes too (closing with unread data would reset the
    // connection), for a second at most.
    let _ = wherefore::shield(stream.shutdown()).await;
    let _ = wherefore::shield_with_grace(Duration::from_secs(1), async {
        let mut buf = [0u8; 1024];
        while wherefore::guard(stream.read(&mut buf)).await?? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
    Ok(ended)
}

#[allow(dead_code)] // also compiled into the integration test, which has its own main
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7878".to_owned());
    let listener = TcpListener::bind(&address).await?;
    println!("echo server on {} (Ctrl+C to stop)", listener.local_addr()?);
    let server = Scope::named("server");
    let forced = wherefore::tokio::shutdown_on_signals(server.handle(), Duration::from_secs(5));
    let log = |line: String| println!("{line}");
    let serving = server.run(async {
        Ok::<_, wherefore::Cancelled>(serve(listener, Duration::from_secs(30), log).await)
    });
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
