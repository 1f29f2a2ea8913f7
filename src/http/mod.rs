//! HTTPS: the accept loop, per-connection TLS (with a handshake timeout) and HTTP/1.1 + HTTP/2
//! by ALPN, graceful drain on shutdown. Routing lives in [`router`].

pub mod assets;
pub mod headers;
pub mod redirect;
pub mod router;
pub mod upgrade;
pub mod well_known;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Config;
use crate::signal::Hub;

/// What a request handler needs: config, the signalling hub, where WebSocket sessions are tracked.
pub struct App {
    pub config: Arc<Config>,
    pub hub: Arc<Hub>,
    pub sessions: TaskTracker,
    /// Cancelled when the server shuts down; sessions close with 1001 then.
    pub shutdown: CancellationToken,
    pub headers: headers::SecurityHeaders,
}

impl App {
    pub fn new(
        config: Arc<Config>,
        hub: Arc<Hub>,
        sessions: TaskTracker,
        shutdown: CancellationToken,
    ) -> App {
        let headers = headers::SecurityHeaders::new(&config);
        App {
            config,
            hub,
            sessions,
            shutdown,
            headers,
        }
    }
}

/// Accepts TLS connections on `listener` until `stop` is cancelled, then drains them.
pub async fn run_https(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Arc<App>,
    stop: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let handshake_timeout = app.config.https.handshake_timeout;
    loop {
        let Some((tcp, peer)) = accept(&listener, &stop).await else {
            break;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        let stop = stop.clone();
        tokio::spawn(async move {
            let tls = tokio::select! {
                _ = stop.cancelled() => return,
                r = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)) => match r {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "tls handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "tls handshake timed out");
                        return;
                    }
                },
            };
            serve(TokioIo::new(tls), peer, app, watcher).await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The next connection, or `None` once `stop` is cancelled. Accept errors (EMFILE and
/// friends) back off briefly instead of spinning.
pub async fn accept(
    listener: &TcpListener,
    stop: &CancellationToken,
) -> Option<(tokio::net::TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return None,
            r = listener.accept() => match r {
                Ok(pair) => return Some(pair),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn serve<I>(
    io: I,
    peer: SocketAddr,
    app: Arc<App>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, std::convert::Infallible>(router::handle(req, peer, app).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100)
        .keep_alive_interval(Duration::from_secs(30));
    let conn = builder.serve_connection_with_upgrades(io, service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(%peer, error = %e, "http connection ended with an error");
    }
}
