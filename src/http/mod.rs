//! HTTPS ports: the accept loop, per-connection classification, TLS and the first bytes of the
//! first request under one deadline (`https.handshake_timeout_secs`), HTTP/1.1 + HTTP/2 by ALPN
//! closed when idle, TURN over TLS and over
//! plain TCP and ICE-TCP to the SFU on the same port ([`demux`]), and the drain on shutdown. Routing lives in
//! [`router`].

pub mod assets;
pub mod demux;
pub mod headers;
pub mod redirect;
pub mod router;
pub mod upgrade;
pub mod well_known;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Config;
use crate::limit::{Gate, Pass};
use crate::signal::Hub;
use crate::turn::{FiveTuple, Proto, Turn};
use demux::{Decrypted, Plain, Prefixed};

/// An HTTP connection with no request in flight for this long is closed (nginx's keepalive).
const IDLE: Duration = Duration::from_secs(75);

/// TURN's side of the HTTPS port: the server, its stop token and its task tracker, so that
/// TURN connections made here end with TURN (last at shutdown), not with HTTP.
#[derive(Clone)]
pub struct TurnPort {
    pub turn: Arc<Turn>,
    pub stop: CancellationToken,
    pub tasks: TaskTracker,
}

/// The HTTPS ports' counters, read at scrape time by [`crate::metrics`].
#[derive(Debug, Default)]
pub struct Stats {
    /// TLS handshakes completed (HTTPS, WebSocket and TURN over TLS alike).
    pub tls_handshakes: AtomicU64,
    /// TLS handshakes that failed or did not finish within the handshake deadline.
    pub tls_failures: AtomicU64,
}

/// Counts one handshake as failed unless [`Handshake::done`] is called: a handshake cut
/// short by the deadline drops this with the connection's future.
struct Handshake<'a>(&'a Stats, bool);

impl Handshake<'_> {
    fn done(mut self) {
        self.1 = true;
        self.0.tls_handshakes.fetch_add(1, Relaxed);
    }
}

impl Drop for Handshake<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.tls_failures.fetch_add(1, Relaxed);
        }
    }
}

/// What a request handler needs: config, the signalling hub, where WebSocket sessions are tracked.
pub struct App {
    pub config: Arc<Config>,
    pub hub: Arc<Hub>,
    pub sessions: TaskTracker,
    /// Cancelled when the server shuts down; sessions close with 1001 then.
    pub shutdown: CancellationToken,
    pub headers: headers::SecurityHeaders,
    /// TURN over TLS/TCP on this port, when `https.turn` is on.
    pub turn: Option<TurnPort>,
    /// Connections per client address (IPv6: per /64) on every HTTPS port together, from
    /// accept to close, while they are HTTP (a TURN connection moves to TURN's own gate).
    pub gate: Arc<Gate>,
    pub stats: Arc<Stats>,
    /// HTTP-01 answers, for plain HTTP sent to this port.
    pub tokens: Arc<crate::acme::Http01Tokens>,
    /// ICE-TCP to the SFU on this port, when `[sfu]` is on.
    pub sfu_tcp: Option<crate::sfu::tcp::Port>,
}

impl App {
    pub fn new(
        config: Arc<Config>,
        hub: Arc<Hub>,
        sessions: TaskTracker,
        shutdown: CancellationToken,
        turn: Option<TurnPort>,
        tokens: Arc<crate::acme::Http01Tokens>,
    ) -> App {
        let headers = headers::SecurityHeaders::new(&config);
        let rooms = &config.rooms;
        // Every WebSocket is an HTTP/1.1 connection too; page loads need a few more.
        let per_address = rooms
            .max_connections_per_ip
            .saturating_mul(2)
            .saturating_add(32);
        let total = rooms.max_connections.saturating_add(4096);
        let gate = Gate::new(total, per_address, rooms.ipv6_prefix);
        App {
            config,
            hub,
            sessions,
            shutdown,
            headers,
            turn,
            gate,
            stats: Arc::default(),
            tokens,
            sfu_tcp: None,
        }
    }

    /// Hands ICE-TCP connections (framed STUN first) to the SFU through `port`.
    pub fn with_sfu_tcp(mut self, port: Option<crate::sfu::tcp::Port>) -> App {
        self.sfu_tcp = port;
        self
    }
}

/// Accepts connections on `listener` until `stop` is cancelled, then drains them.
pub async fn run_https(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Arc<App>,
    stop: CancellationToken,
) {
    let conns = TaskTracker::new();
    let refused = AtomicU64::new(0);
    loop {
        let Some((tcp, peer)) = crate::net::accept(&listener, &stop).await else {
            break;
        };
        let Some(pass) = app.gate.enter(peer.ip()) else {
            // Counted, logged once per 1000: a flood must not fill the log either.
            if refused.fetch_add(1, Relaxed) % 1000 == 0 {
                tracing::info!(%peer, "too many connections from this address; refusing");
            }
            continue;
        };
        let _ = tcp.set_nodelay(true);
        conns.spawn(connection(
            tcp,
            peer,
            acceptor.clone(),
            app.clone(),
            pass,
            stop.clone(),
        ));
    }
    drop(listener);
    conns.close();
    conns.wait().await;
}

type Tls = tokio_rustls::server::TlsStream<Prefixed<TcpStream>>;

/// What a connection turned out to be, with the bytes read to decide put back.
enum Conn {
    Https(Prefixed<Tls>),
    TurnTls(Tls, Vec<u8>),
    TurnTcp(TcpStream, Vec<u8>),
    PlainHttp(Prefixed<TcpStream>),
    IceTcp(Prefixed<TcpStream>),
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    app: Arc<App>,
    pass: Pass,
    stop: CancellationToken,
) {
    let server = tcp.local_addr();
    let on = On {
        turn: app.turn.is_some(),
        ice_tcp: app.sfu_tcp.is_some(),
    };
    let handshake = app.config.https.handshake_timeout;
    let conn = tokio::select! {
        _ = stop.cancelled() => return,
        r = tokio::time::timeout(handshake, classify(tcp, &acceptor, on, &app.stats)) => match r {
            Ok(Ok(Some(c))) => c,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "connection closed before it was classified");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "no tls handshake and first request in time");
                return;
            }
        },
    };
    match conn {
        Conn::Https(io) => serve(io, peer, app, pass, stop).await,
        Conn::PlainHttp(io) => {
            let conn = redirect::connection(io, app.config.clone(), app.tokens.clone());
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "plain http on the https port");
                },
                _ = stop.cancelled() => {}
            }
        }
        Conn::TurnTls(io, first) => turn_stream(&app, io, peer, server, Proto::Tls, first, pass),
        Conn::TurnTcp(io, first) => turn_stream(&app, io, peer, server, Proto::Tcp, first, pass),
        Conn::IceTcp(io) => {
            // It keeps its place in the per-address gate while it lasts.
            let _pass = pass;
            if let Some(port) = app.sfu_tcp.clone() {
                crate::sfu::tcp::serve(port, io, peer, stop).await;
            }
        }
    }
}

/// What besides HTTP the port serves.
#[derive(Clone, Copy)]
struct On {
    turn: bool,
    ice_tcp: bool,
}

/// Reads what is needed to route the connection, and for TLS does the handshake (and, without
/// ALPN, reads the first decrypted bytes). None: closed quietly (junk, or TURN while off).
async fn classify(
    mut tcp: TcpStream,
    acceptor: &TlsAcceptor,
    on: On,
    stats: &Stats,
) -> std::io::Result<Option<Conn>> {
    let turn_on = on.turn;
    let mut first = Vec::new();
    let Some(kind) = demux::read_until(&mut tcp, &mut first, demux::plain).await? else {
        return Ok(None);
    };
    match kind {
        Plain::Tls => {}
        Plain::Turn if turn_on => return Ok(Some(Conn::TurnTcp(tcp, first))),
        Plain::Http => return Ok(Some(Conn::PlainHttp(Prefixed::new(first, tcp)))),
        Plain::IceTcp if on.ice_tcp => return Ok(Some(Conn::IceTcp(Prefixed::new(first, tcp)))),
        Plain::Turn | Plain::IceTcp | Plain::Other => return Ok(None),
    }
    let counted = Handshake(stats, false);
    let mut tls = acceptor.accept(Prefixed::new(first, tcp)).await?;
    counted.done();
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    if alpn.as_deref() == Some(crate::tls::ALPN_ACME) {
        // A CA validating TLS-ALPN-01: the handshake was the answer (RFC 8737 §3).
        tracing::info!("acme: tls-alpn-01 challenge answered");
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
        return Ok(None);
    }
    let turn_alpn = alpn.as_deref() == Some(crate::tls::ALPN_TURN);
    let mut first = Vec::new();
    // The first request (or STUN message) comes under the same deadline as the handshake: a
    // connection that only did the handshake holds a descriptor and memory for nothing.
    let decided = demux::read_until(&mut tls, &mut first, demux::decrypted).await?;
    Ok(match decided {
        None => None,
        Some(Decrypted::Turn) if turn_on && (turn_alpn || alpn.is_none()) => {
            Some(Conn::TurnTls(tls, first))
        }
        // `stun.turn` promised STUN: anything else is junk.
        Some(_) if turn_alpn => None,
        Some(_) => Some(Conn::Https(Prefixed::new(first, tls))),
    })
}

/// Hands a TURN connection to TURN: it leaves the HTTP gate for TURN's own, and its task is
/// TURN's (it outlives the HTTP drain at shutdown).
fn turn_stream<S>(
    app: &App,
    io: S,
    peer: SocketAddr,
    server: std::io::Result<SocketAddr>,
    proto: Proto,
    first: Vec<u8>,
    http_pass: Pass,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    drop(http_pass);
    let (Some(port), Ok(server)) = (app.turn.clone(), server) else {
        return;
    };
    let Some(pass) = port.turn.streams.enter(peer.ip()) else {
        if port.turn.may_log() {
            tracing::debug!(%peer, "too many turn stream connections; refusing");
        }
        return;
    };
    let five = FiveTuple {
        client: peer,
        server,
        proto,
    };
    port.tasks.spawn(async move {
        crate::turn::tcp::serve(&port.turn, io, five, first, pass, port.stop.clone()).await;
    });
}

/// Counts the requests of one connection in flight and when the last one ended, so the
/// connection can be closed once idle.
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
    /// Milliseconds since `start` at the last request's start or end.
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self, start: Instant) {
        self.last_ms
            .store(start.elapsed().as_millis() as u64, Relaxed);
    }

    /// When the connection becomes idle-closable, or None while a request is in flight.
    fn idle_at(&self, start: Instant) -> Option<Instant> {
        (self.in_flight.load(Relaxed) == 0)
            .then(|| start + Duration::from_millis(self.last_ms.load(Relaxed)) + IDLE)
    }
}

/// Decrements `in_flight` when the request's handling ends, however it ends.
struct InFlight<'a>(&'a Activity, Instant);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
        self.0.touch(self.1);
    }
}

async fn serve<I>(io: I, peer: SocketAddr, app: Arc<App>, _pass: Pass, stop: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let start = Instant::now();
    let activity = Arc::new(Activity::default());
    let service = {
        let activity = activity.clone();
        service_fn(move |req| {
            let (app, activity) = (app.clone(), activity.clone());
            async move {
                activity.in_flight.fetch_add(1, Relaxed);
                activity.touch(start);
                let _guard = InFlight(&activity, start);
                Ok::<_, std::convert::Infallible>(router::handle(req, peer, app).await)
            }
        })
    };
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
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    tokio::pin!(conn);
    let mut closing = false;
    let result = loop {
        let idle_at = activity
            .idle_at(start)
            .unwrap_or_else(|| Instant::now() + IDLE);
        tokio::select! {
            r = conn.as_mut() => break r,
            _ = stop.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = tokio::time::sleep_until(idle_at), if !closing => {
                if activity.idle_at(start).is_some_and(|t| t <= Instant::now()) {
                    tracing::debug!(%peer, "idle http connection closed");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "http connection ended with an error");
    }
}
