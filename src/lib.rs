//! peerbox: a self-hosted WebRTC room appliance in one binary.
//!
//! Module map:
//! - [`config`]: the admin's `config.toml`, parsed once and validated into typed values.
//! - [`tls`]: certificates from the ssl dir (or a generated self-signed one), hot reload.
//! - [`http`]: the HTTPS accept loop (TLS, ALPN h2/http1.1), the router, the embedded web app,
//!   security headers, the WebSocket upgrade, and the port-80 redirect.
//! - [`signal`]: the room signalling protocol: message parsing, room state (plain data), and
//!   the per-connection session that talks to it through bounded queues.
//! - [`limit`]: what signalling and TURN limit clients by: the address key (IPv6 per
//!   prefix), one token bucket, the poison-tolerant lock of the limit tables.
//! - [`turn`]: the STUN/TURN server (UDP and TCP) and the credentials handed out in `joined`.
//! - [`shutdown`]: OS signals to one cancellation token.
//!
//! Every long-running part is `run(listener, deps, shutdown)`; only `main` (or a test) binds
//! ports, so tests bind port 0 and pass their own shutdown token.

pub mod config;
pub mod http;
pub mod limit;
pub mod shutdown;
pub mod signal;
pub mod tls;
pub mod turn;

use std::sync::Arc;

use anyhow::Context;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;

/// Every socket the server listens on, bound by the caller.
#[derive(Default)]
pub struct Listeners {
    pub https: Vec<TcpListener>,
    pub http: Vec<TcpListener>,
    pub turn_udp: Vec<UdpSocket>,
    pub turn_tcp: Vec<TcpListener>,
}

/// What the running server hands back to its owner: a way to reload certificates.
#[derive(Clone)]
pub struct Handle {
    pub certs: tls::CertStore,
}

/// Loads certificates and builds the shared state; the step that can fail at startup.
pub struct Server {
    config: Arc<Config>,
    certs: tls::CertStore,
    credentials: Arc<turn::Credentials>,
}

impl Server {
    pub fn new(config: Config) -> anyhow::Result<Server> {
        let certs = tls::CertStore::load_or_generate(&config.tls.dir, &config.hostname)
            .with_context(|| format!("TLS certificates in {}", config.tls.dir.display()))?;
        let credentials = turn::Credentials::new(&config);
        Ok(Server {
            config: Arc::new(config),
            certs,
            credentials,
        })
    }

    pub fn handle(&self) -> Handle {
        Handle {
            certs: self.certs.clone(),
        }
    }

    /// Serves until `shutdown` is cancelled, then drains within `shutdown_timeout`.
    pub async fn run(
        self,
        listeners: Listeners,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let Server {
            config,
            certs,
            credentials,
        } = self;
        let hub = signal::Hub::new(&config.rooms, credentials.clone());
        let sessions = TaskTracker::new();
        let tasks = TaskTracker::new();
        let http_stop = CancellationToken::new();

        let app = Arc::new(http::App::new(
            config.clone(),
            hub.clone(),
            sessions.clone(),
            shutdown.clone(),
        ));
        for listener in listeners.https {
            let acceptor = certs.acceptor();
            tasks.spawn(http::run_https(
                listener,
                acceptor,
                app.clone(),
                http_stop.clone(),
            ));
        }
        for listener in listeners.http {
            tasks.spawn(http::redirect::run(
                listener,
                config.clone(),
                http_stop.clone(),
            ));
        }
        tasks.spawn(tls::watch(
            certs.clone(),
            config.tls.dir.clone(),
            config.tls.watch_interval,
            http_stop.clone(),
        ));
        let turn_stop = CancellationToken::new();
        let turn_task = if listeners.turn_udp.is_empty() && listeners.turn_tcp.is_empty() {
            None
        } else {
            Some(tokio::spawn(turn::run(
                listeners.turn_udp,
                listeners.turn_tcp,
                config.clone(),
                credentials,
                turn_stop.clone(),
            )))
        };
        tracing::info!("peerbox is serving");

        shutdown.cancelled().await;
        tracing::info!(timeout = ?config.shutdown_timeout, "shutting down");
        // Sessions watch `shutdown` themselves and close with 1001; HTTP stops accepting and
        // drains its connections; TURN goes last so relayed calls live as long as possible.
        http_stop.cancel();
        tasks.close();
        sessions.close();
        let drain = async {
            sessions.wait().await;
            tasks.wait().await;
            turn_stop.cancel();
            if let Some(t) = turn_task {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(config.shutdown_timeout, drain)
            .await
            .is_err()
        {
            tracing::warn!("graceful shutdown timed out; closing the remaining connections");
        }
        tracing::info!("stopped");
        Ok(())
    }
}
