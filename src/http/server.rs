//! The HTTP/1.1 server loop. axum's `serve` has no header-read timeout, so this drives hyper
//! directly: slow or stalled request heads (slowloris) are cut off, every request carries the
//! peer address for rate limiting, and shutdown is graceful but bounded by a grace period.

use std::future::Future;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// hyper's read buffer: request heads larger than this are refused by hyper itself (431);
/// between `MAX_HEADER_BYTES` and this, the application answers 431 in the envelope.
const MAX_READ_BUFFER: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    /// A request head must arrive within this time, or the connection is closed.
    pub header_read_timeout: Duration,
    /// After the shutdown signal, in-flight requests get this long before the process exits.
    pub shutdown_grace: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `app` until `shutdown` completes; then stops accepting, lets in-flight requests
/// finish (idle keep-alive connections close at once), and returns within the grace period.
pub async fn run(
    listener: TcpListener,
    app: Router,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    app.clone().oneshot(request)
                });
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(options.header_read_timeout)
                    .max_buf_size(MAX_READ_BUFFER)
                    .serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(super::repoll::Repoll::new(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                }));
            }
            () = &mut shutdown => break,
        }
    }
    // New connections are refused from here on.
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(options.shutdown_grace) => {
            tracing::warn!(grace_secs = options.shutdown_grace.as_secs(),
                "grace period over; closing the remaining connections");
        }
    }
}
