//! The HTTP/1 accept loop, with the connection limits `axum::serve` leaves off: a header-read
//! timeout that also closes idle keep-alive connections (hyper only enforces it with a timer,
//! which `axum::serve` does not install), and a write-stall timeout so a client that stops
//! reading its response cannot hold a connection (and the response's memory) for ever.
//! Shutdown is graceful: the listener closes, in-flight requests finish.

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_io_timeout::TimeoutStream;

/// Per-connection limits.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// A request's headers must arrive within this, counted from the connection's first byte
    /// wait — also the longest a keep-alive connection may sit idle between requests.
    pub header_read: Duration,
    /// A response write that makes no progress for this long closes the connection.
    pub write_stall: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            header_read: Duration::from_secs(10),
            write_stall: Duration::from_secs(60),
        }
    }
}

/// Serves `app` on `listener` until `stop` fires, then drains in-flight requests.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    stop: oneshot::Receiver<()>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .keep_alive(true);
    tokio::pin!(stop);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        // Small request/response exchanges: Nagle + delayed ACK would add ~40 ms each.
        let _ = tcp.set_nodelay(true);
        let mut io = TimeoutStream::new(tcp);
        io.set_write_timeout(Some(limits.write_stall));
        let service = TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection(TokioIo::new(Box::pin(io)), service);
        let conn = graceful.watch(conn);
        // Held by this task: aborting it (a crash) aborts every connection.
        conns.spawn(async move {
            let _ = conn.await;
        });
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    graceful.shutdown().await;
}
