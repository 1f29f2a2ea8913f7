//! peerbox: a self-hosted WebRTC room appliance in one binary.
//!
//! Module map:
//! - [`config`]: the admin's `config.toml`, parsed once and validated into typed values.
//! - [`tls`]: certificates from the ssl dir (or a generated self-signed one), hot reload,
//!   TLS-ALPN-01 challenge certificates.
//! - [`acme`]: certificates from an ACME CA (Let's Encrypt by default): one task that orders,
//!   renews and installs them into the ssl dir, with peerbox answering the challenges.
//! - [`http`]: the HTTPS accept loop (TLS, ALPN h2/http1.1, TURN over TLS/TCP told apart by
//!   the first bytes), the router, the embedded web app, security headers, the WebSocket
//!   upgrade, and the port-80 redirect.
//! - [`signal`]: the room signalling protocol: message parsing, room state (plain data), and
//!   the per-connection session that talks to it through bounded queues.
//! - [`limit`]: what signalling, HTTP and TURN limit clients by: the address key (IPv6 per
//!   prefix), one token bucket, the per-address connection gate, the poison-tolerant lock.
//! - [`turn`]: the STUN/TURN server (UDP, TCP, and TLS through the HTTPS port) and the
//!   credentials handed out in `joined`.
//! - [`metrics`]: the monitoring listener: `/metrics` (read from the parts' own counters at
//!   scrape time), `/healthz`, `/readyz`.
//! - [`health`]: which listeners are served, and whether the server is stopping.
//! - [`cluster`]: several nodes behind one name (off by default): the room directory in Redis
//!   (each room has one home node) and the node-to-node relay of members on other nodes.
//! - [`sfu`]: the selective forwarding unit for big rooms (off by default): one task owning
//!   the media UDP socket and a str0m `Rtc` per participant, fed by the hub's bounded queue.
//! - [`net`]: the accept loop every TCP listener shares; [`hex`]: lower-case hex.
//! - [`watchdog`]: `WATCHDOG=1` pings for systemd's `WatchdogSec=`.
//! - [`shutdown`]: OS signals to one cancellation token.
//!
//! Every long-running part is `run(listener, deps, shutdown)`; only `main` (or a test) binds
//! ports, so tests bind port 0 and pass their own shutdown token.

pub mod acme;
pub mod cluster;
pub mod config;
pub mod health;
pub mod hex;
pub mod http;
pub mod limit;
pub mod metrics;
pub mod net;
pub mod sfu;
pub mod shutdown;
pub mod signal;
pub mod tls;
pub mod turn;
pub mod watchdog;

use std::sync::Arc;
use std::time::Duration;

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
    /// `turn.listen`'s UDP sockets and `turn.udp_listen`'s.
    pub turn_udp: Vec<UdpSocket>,
    pub turn_tcp: Vec<TcpListener>,
    /// `metrics.listen`: `/metrics`, `/healthz`, `/readyz`.
    pub metrics: Vec<TcpListener>,
    /// `sfu.listen`, when `[sfu] enabled`.
    pub sfu_udp: Option<UdpSocket>,
}

impl Listeners {
    /// Every bound address: TURN counts them all as its own (no peer may be one).
    fn addresses(&self) -> Vec<std::net::SocketAddr> {
        let tcp = self.https.iter().chain(&self.http).chain(&self.turn_tcp);
        let tcp = tcp.chain(&self.metrics);
        let mut out: Vec<_> = tcp.filter_map(|l| l.local_addr().ok()).collect();
        out.extend(self.turn_udp.iter().filter_map(|s| s.local_addr().ok()));
        out.extend(self.sfu_udp.iter().filter_map(|s| s.local_addr().ok()));
        out
    }

    fn count(&self) -> usize {
        self.https.len()
            + self.http.len()
            + self.turn_udp.len()
            + self.turn_tcp.len()
            + self.metrics.len()
            + usize::from(self.sfu_udp.is_some())
    }
}

/// What the running server hands back to its owner: a way to reload certificates, and what
/// ACME did (all zero while it is off).
#[derive(Clone)]
pub struct Handle {
    pub certs: tls::CertStore,
    pub acme: Arc<acme::Stats>,
}

/// Loads certificates and builds the shared state; the step that can fail at startup.
pub struct Server {
    config: Arc<Config>,
    certs: tls::CertStore,
    credentials: Arc<turn::Credentials>,
    acme_stats: Arc<acme::Stats>,
    watchdog: Option<watchdog::Watchdog>,
}

impl Server {
    pub fn new(config: Config) -> anyhow::Result<Server> {
        acme::check(&config).map_err(anyhow::Error::msg)?;
        let certs = tls::CertStore::load_or_generate(&config.tls.dir, &config.hostname)
            .with_context(|| format!("TLS certificates in {}", config.tls.dir.display()))?;
        let credentials = turn::Credentials::new(&config);
        Ok(Server {
            config: Arc::new(config),
            certs,
            credentials,
            acme_stats: Arc::default(),
            watchdog: None,
        })
    }

    /// Pings systemd's watchdog while serving (see [`watchdog::Watchdog::from_env`]).
    pub fn with_watchdog(mut self, dog: Option<watchdog::Watchdog>) -> Server {
        self.watchdog = dog;
        self
    }

    pub fn handle(&self) -> Handle {
        Handle {
            certs: self.certs.clone(),
            acme: self.acme_stats.clone(),
        }
    }

    /// Serves until `shutdown` is cancelled, then drains within `shutdown_timeout`.
    pub async fn run(
        self,
        mut listeners: Listeners,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let Server {
            config,
            certs,
            credentials,
            acme_stats,
            watchdog,
        } = self;
        let health = Arc::new(health::Health::default());
        // A media socket is served (and counted, and reserved from TURN) only with the SFU on.
        if !config.sfu.enabled {
            listeners.sfu_udp = None;
        }
        health.expect(listeners.count());
        let tokens = Arc::new(acme::Http01Tokens::default());
        // Clients may relay to the SFU's media socket as offered, and to no other own port.
        let media: Vec<std::net::SocketAddr> = listeners
            .sfu_udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .flat_map(|local| [local, sfu::candidate_addr(&config.sfu, local)])
            .collect();
        let turn =
            turn::Turn::with_media(config.clone(), credentials, &listeners.addresses(), &media);
        let resume = match &config.cluster {
            Some(c) => signal::resume::ResumeKey::shared(c.secret.expose()),
            None => signal::resume::ResumeKey::load_or_create(&config.tls.dir),
        };
        match &resume.origin {
            signal::resume::Origin::Loaded(_) | signal::resume::Origin::Cluster => {}
            signal::resume::Origin::Created(path) => {
                tracing::info!(path = %path.display(), "created the key that signs resume tokens")
            }
            signal::resume::Origin::Ephemeral(why) => tracing::warn!(
                why = %why,
                "resume tokens will not survive a restart (calls renegotiate after one)"
            ),
        }
        let cluster = match &config.cluster {
            Some(c) => Some(cluster::Cluster::new(c, certs.clone())?),
            None => None,
        };
        // ICE-TCP on the first HTTPS listener's port, beside the SFU's UDP.
        let https_addr = listeners.https.first().and_then(|l| l.local_addr().ok());
        let mut sfu_tcp = None;
        let sfu = listeners.sfu_udp.map(|socket| {
            let (handle, commands) = sfu::channel(&config.sfu);
            let tcp = https_addr.map(|https| {
                let (port, events) =
                    sfu::tcp::port(sfu::max_tcp(&config.sfu), handle.stats.clone());
                sfu_tcp = Some(port);
                (sfu::tcp_candidate_addr(&config.sfu, https), events)
            });
            let deps = sfu::Deps {
                config: config.sfu.clone(),
                commands,
                stats: handle.stats.clone(),
                tcp,
            };
            (handle, socket, deps)
        });
        let sfu_stop = CancellationToken::new();
        let (sfu_handle, sfu_task) = match sfu {
            Some((handle, socket, deps)) => {
                let serving = health.serving();
                let stop = sfu_stop.clone();
                let task = tokio::spawn(async move {
                    let _serving = serving;
                    sfu::run(socket, deps, stop).await;
                });
                (Some(handle), Some(task))
            }
            None => (None, None),
        };
        let hub = signal::Hub::new(
            &config.rooms,
            turn.clone(),
            resume,
            cluster.clone(),
            sfu_handle,
        );
        let sessions = TaskTracker::new();
        let tasks = TaskTracker::new();
        let http_stop = CancellationToken::new();
        let turn_stop = CancellationToken::new();
        let turn_streams = TaskTracker::new();
        let turn_port = config.https.turn.then(|| http::TurnPort {
            turn: turn.clone(),
            stop: turn_stop.clone(),
            tasks: turn_streams.clone(),
        });

        let app = Arc::new(
            http::App::new(
                config.clone(),
                hub.clone(),
                sessions.clone(),
                shutdown.clone(),
                turn_port,
                tokens.clone(),
            )
            .with_sfu_tcp(sfu_tcp),
        );
        let monitor = metrics::Monitor::new(
            metrics::Sources {
                hub: hub.clone(),
                turn: turn.stats.clone(),
                http: app.stats.clone(),
                certs: certs.clone(),
                acme: acme_stats.clone(),
                cluster: cluster.as_ref().map(|c| c.stats.clone()),
                started: tls::now(),
            },
            health.clone(),
            config.metrics.ready_certificate_days,
        );
        // Each listener's task holds its `Serving` guard for as long as it runs.
        let serve = |task: &TaskTracker,
                     fut: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>| {
            let serving = health.serving();
            task.spawn(async move {
                let _serving = serving;
                fut.await;
            });
        };
        let acceptor = certs.acceptor(config.https.turn, acme::wants_tls_alpn(&config));
        for listener in listeners.https {
            let fut = http::run_https(listener, acceptor.clone(), app.clone(), http_stop.clone());
            serve(&tasks, Box::pin(fut));
        }
        for listener in listeners.http {
            let fut =
                http::redirect::run(listener, config.clone(), tokens.clone(), http_stop.clone());
            serve(&tasks, Box::pin(fut));
        }
        // Monitoring and the watchdog last until the very end: `/readyz` says "shutting
        // down" while the rest drains.
        let late = TaskTracker::new();
        let late_stop = CancellationToken::new();
        for listener in listeners.metrics {
            let fut = metrics::run(listener, monitor.clone(), late_stop.clone());
            serve(&late, Box::pin(fut));
        }
        if let Some(dog) = watchdog {
            let (hub, turn) = (hub.clone(), turn.clone());
            let probe = Arc::new(move || {
                let _ = (hub.gauges(), turn.allocation_count());
            });
            late.spawn(watchdog::run(dog, probe, late_stop.clone()));
        }
        tasks.spawn(tls::watch(
            certs.clone(),
            config.tls.dir.clone(),
            config.tls.watch_interval,
            http_stop.clone(),
        ));
        if config.sfu.enabled {
            tasks.spawn(hub.clone().settle_every_second(http_stop.clone()));
        }
        if let Some(cluster) = cluster {
            tasks.spawn(cluster.run(hub.clone(), http_stop.clone()));
        }
        if config.acme.enabled {
            let acme = acme::Acme {
                config: config.clone(),
                certs: certs.clone(),
                tokens: tokens.clone(),
                stats: acme_stats,
            };
            tasks.spawn(acme::run(acme, http_stop.clone()));
        }
        // Always running, for the sweeper, even when TURN lives only on the HTTPS port.
        let turn_task = tokio::spawn(turn::run(
            turn,
            listeners.turn_udp,
            listeners.turn_tcp,
            health.clone(),
            turn_stop.clone(),
        ));
        tracing::info!("peerbox is serving");

        shutdown.cancelled().await;
        health.stopping();
        tracing::info!(timeout = ?config.shutdown_timeout, "shutting down");
        // Sessions watch `shutdown` themselves and close with 1001; HTTP stops accepting and
        // drains its connections; TURN goes last so relayed calls live as long as possible.
        http_stop.cancel();
        tasks.close();
        sessions.close();
        let drain = async {
            sessions.wait().await;
            tasks.wait().await;
        };
        if tokio::time::timeout(config.shutdown_timeout, drain)
            .await
            .is_err()
        {
            tracing::warn!("graceful shutdown timed out; closing the remaining connections");
        }
        // The SFU's calls end with the sessions that held them.
        sfu_stop.cancel();
        if let Some(task) = sfu_task {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        // TURN goes last, whether or not the rest drained in time.
        turn_stop.cancel();
        turn_streams.close();
        let turn_drain = async {
            let _ = turn_task.await;
            turn_streams.wait().await;
        };
        if tokio::time::timeout(Duration::from_secs(2), turn_drain)
            .await
            .is_err()
        {
            tracing::warn!("turn did not stop in time");
        }
        late_stop.cancel();
        late.close();
        let _ = tokio::time::timeout(Duration::from_secs(3), late.wait()).await;
        tracing::info!("stopped");
        Ok(())
    }
}
