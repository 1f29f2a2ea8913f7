//! The one way tests start peerbox: the real server, in-process, on port 0, with a temporary
//! ssl dir and config; plus real TLS, HTTP and WebSocket clients to talk to it.
#![allow(dead_code, clippy::unwrap_used)]

pub mod metrics;
pub mod sfu_client;
pub mod signal;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use peerbox::{Config, Handle, Listeners, Server};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;
use serde_json::Value as Json;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use toml::Value;

pub type Ws = WebSocketStream<TlsStream<TcpStream>>;

pub struct TestServer {
    pub https: SocketAddr,
    pub http: SocketAddr,
    /// STUN/TURN, UDP and TCP on the same port.
    pub turn: SocketAddr,
    /// `/metrics`, `/healthz`, `/readyz` (plain HTTP).
    pub metrics: SocketAddr,
    /// The SFU's media socket (served only with `[sfu] enabled = true`).
    pub sfu: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub handle: Handle,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
    /// What it was spawned with, for [`TestServer::restart`].
    spec: Spec,
}

/// Starts peerbox with the helper's config merged with `extra` (TOML): a key named there
/// replaces the helper's, and tables merge key by key, so `"[turn]\nuser_quota = 2"` keeps
/// the helper's `[turn] listen`.
pub async fn spawn(extra: &str) -> TestServer {
    spawn_inner(
        Spec::new(extra, "", "127.0.0.1:0", "127.0.0.1:0"),
        None,
        None,
    )
    .await
}

/// Like [`spawn`], pinging `watchdog` as systemd's watchdog would be.
pub async fn spawn_with_watchdog(extra: &str, watchdog: peerbox::watchdog::Watchdog) -> TestServer {
    spawn_inner(
        Spec::new(extra, "", "127.0.0.1:0", "127.0.0.1:0"),
        None,
        Some(watchdog),
    )
    .await
}

/// Like [`spawn`], with the HTTPS listener bound to `https` (e.g. `"[::]:0"` for IPv6 clients).
pub async fn spawn_at(extra: &str, https: &str) -> TestServer {
    spawn_inner(Spec::new(extra, "", https, "127.0.0.1:0"), None, None).await
}

/// Like [`spawn`], with the HTTPS and HTTP listeners bound to `https` and `http` (real ports
/// such as 443 and 80, inside a namespace the test made), in `dir` when given (a restart on
/// the same ssl dir and config directory; see [`TestServer::stop_keeping_dir`]).
pub async fn spawn_on(
    extra: &str,
    https: &str,
    http: &str,
    dir: Option<tempfile::TempDir>,
) -> TestServer {
    spawn_inner(Spec::new(extra, "", https, http), dir, None).await
}

/// Like [`spawn`], as a node of a cluster (`extra` enables `[cluster]`): its
/// `cluster.address` is the HTTPS listener it was given.
pub async fn spawn_node(extra: &str) -> TestServer {
    let mut spec = Spec::new(extra, "", "127.0.0.1:0", "127.0.0.1:0");
    spec.node = true;
    spawn_inner(spec, None, None).await
}

/// Like [`spawn_node`], telling the other nodes to reach it at `address` (a proxy the test
/// runs in front of its HTTPS listener).
pub async fn spawn_node_advertising(extra: &str, address: SocketAddr) -> TestServer {
    let mut spec = Spec::new(extra, "", "127.0.0.1:0", "127.0.0.1:0");
    spec.node = true;
    spec.advertise = Some(address);
    spawn_inner(spec, None, None).await
}

/// Like [`spawn_node`], with the HTTPS listener bound to `https` (an address of the
/// namespace the test made).
pub async fn spawn_node_at(extra: &str, https: &str) -> TestServer {
    let mut spec = Spec::new(extra, "", https, "127.0.0.1:0");
    spec.node = true;
    spawn_inner(spec, None, None).await
}

/// Like [`spawn`], with `turn_keys` (TOML keys) merged into the `[turn]` table, whose
/// `listen` address is only known once bound.
pub async fn spawn_with_turn(turn_keys: &str) -> TestServer {
    spawn_inner(
        Spec::new("", turn_keys, "127.0.0.1:0", "127.0.0.1:0"),
        None,
        None,
    )
    .await
}

/// What a test server is spawned with (kept for [`TestServer::restart`]).
#[derive(Clone)]
struct Spec {
    extra: String,
    turn_keys: String,
    https: String,
    http: String,
    /// Whether `[cluster] address` is set to the HTTPS listener (or to `advertise`).
    node: bool,
    advertise: Option<SocketAddr>,
}

impl Spec {
    fn new(extra: &str, turn_keys: &str, https: &str, http: &str) -> Spec {
        Spec {
            extra: extra.into(),
            turn_keys: turn_keys.into(),
            https: https.into(),
            http: http.into(),
            node: false,
            advertise: None,
        }
    }
}

async fn spawn_inner(
    spec: Spec,
    dir: Option<tempfile::TempDir>,
    watchdog: Option<peerbox::watchdog::Watchdog>,
) -> TestServer {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PEERBOX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
    let dir = dir.unwrap_or_else(|| tempfile::tempdir().expect("tempdir"));
    std::fs::create_dir_all(dir.path().join("ssl")).expect("ssl dir");
    let https = TcpListener::bind(&spec.https).await.expect("bind https");
    let http = TcpListener::bind(&spec.http).await.expect("bind http");
    let metrics = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind metrics");
    let ma = metrics.local_addr().unwrap();
    let (udp, tcp) = bind_turn_pair().await;
    // Served only when the test's config says `[sfu] enabled = true`; on the HTTPS listener's
    // address (a namespace's own address in the tests that make one), as an admin would.
    let sfu_ip = https.local_addr().expect("https addr").ip();
    let sfu = peerbox::sfu::bind_udp((sfu_ip, 0).into()).expect("bind sfu");
    let sa = sfu.local_addr().unwrap();
    let (ha, pa, ta) = (
        https.local_addr().unwrap(),
        http.local_addr().unwrap(),
        udp.local_addr().unwrap(),
    );
    let listen = |a: SocketAddr| Value::Array(vec![Value::String(a.to_string())]);
    let section = |pairs: &[(&str, Value)]| Value::Table(table(pairs));
    let mut config = table(&[
        ("hostname", "localhost".into()),
        ("shutdown_timeout_secs", Value::Integer(5)),
        ("https", section(&[("listen", listen(ha))])),
        ("http", section(&[("listen", listen(pa))])),
        (
            "tls",
            section(&[
                ("dir", "ssl".into()),
                ("watch_interval_secs", Value::Float(0.2)),
            ]),
        ),
        (
            "turn",
            section(&[
                ("listen", listen(ta)),
                ("relay_ports", "40000-40999".into()),
            ]),
        ),
        ("metrics", section(&[("listen", listen(ma))])),
        ("sfu", section(&[("listen", sa.to_string().into())])),
    ]);
    let mut turn = toml::Table::new();
    turn.insert("turn".into(), Value::Table(parse_toml(&spec.turn_keys)));
    merge(&mut config, turn);
    merge(&mut config, parse_toml(&spec.extra));
    if spec.node {
        let mut cluster = toml::Table::new();
        cluster.insert(
            "cluster".into(),
            section(&[("address", spec.advertise.unwrap_or(ha).to_string().into())]),
        );
        merge(&mut config, cluster);
    }
    let text = toml::to_string(&config).expect("config serializes");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, &text).expect("write config");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("test config invalid: {e}\n{text}"));
    let server = Server::new(config.clone())
        .expect("server starts")
        .with_watchdog(watchdog);
    let handle = server.handle();
    let shutdown = CancellationToken::new();
    let listeners = Listeners {
        https: vec![https],
        http: vec![http],
        turn_udp: vec![udp],
        turn_tcp: vec![tcp],
        metrics: vec![metrics],
        sfu_udp: Some(sfu),
    };
    let task = tokio::spawn(server.run(listeners, shutdown.clone()));
    TestServer {
        https: ha,
        http: pa,
        turn: ta,
        metrics: ma,
        sfu: sa,
        dir,
        config,
        handle,
        shutdown,
        task,
        spec,
    }
}

fn table(pairs: &[(&str, Value)]) -> toml::Table {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn parse_toml(text: &str) -> toml::Table {
    text.parse()
        .unwrap_or_else(|e| panic!("test TOML does not parse: {e}\n{text}"))
}

/// Puts `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// A UDP socket and a TCP listener on the same free loopback port.
pub async fn bind_turn_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
            return (udp, tcp);
        }
    }
    panic!("no free port for both UDP and TCP");
}

impl TestServer {
    pub fn ssl_dir(&self) -> PathBuf {
        self.dir.path().join("ssl")
    }

    /// Stops the server and waits for it, failing the test if that takes longer than `limit`.
    pub async fn stop(self, limit: Duration) {
        drop(self.stop_keeping_dir(limit).await);
    }

    /// Stops the server like [`TestServer::stop`] and hands back its directory (ssl dir,
    /// config) for a restart with [`spawn_on`].
    pub async fn stop_keeping_dir(self, limit: Duration) -> tempfile::TempDir {
        self.shutdown.cancel();
        tokio::time::timeout(limit, self.task)
            .await
            .expect("server stopped in time")
            .expect("server task")
            .expect("server result");
        self.dir
    }

    /// Stops the server (as SIGTERM does) and starts a new one with the same config and the
    /// same ssl dir (certificate, resume key), on fresh ports where it had port 0: what
    /// `systemctl restart` does.
    pub async fn restart(self) -> TestServer {
        let spec = self.spec.clone();
        let dir = self.stop_keeping_dir(Duration::from_secs(10)).await;
        spawn_inner(spec, Some(dir), None).await
    }

    /// A TLS client that trusts the certificate currently in the ssl dir.
    pub fn tls(&self) -> TlsConnector {
        tls_trusting(&self.ssl_dir().join("cert.pem"), &[b"http/1.1"])
    }

    /// A TLS connection to the HTTPS port (ALPN http/1.1).
    pub async fn tls_stream(&self) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.https).await.expect("connect");
        self.tls()
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("tls handshake")
    }

    /// A TLS connection to the HTTPS port offering `alpn` (none when empty), as a browser's
    /// `turns:` socket (no ALPN) or coturn's client (`stun.turn` among others) connects.
    pub async fn tls_stream_alpn(&self, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.https).await.expect("connect");
        tls_trusting(&self.ssl_dir().join("cert.pem"), alpn)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("tls handshake")
    }

    pub async fn ws(&self) -> Ws {
        self.ws_path("/ws").await
    }

    /// A WebSocket whose TCP receive buffer is `bytes` (the kernel doubles it): a client that
    /// stops reading stalls the server's writes after kilobytes, not the megabytes loopback's
    /// autotuning would take.
    pub async fn ws_small_window(&self, bytes: u32) -> Ws {
        let socket = match self.https {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .expect("socket");
        socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
        self.ws_over(socket).await
    }

    /// A WebSocket on `/ws` over a TCP socket the caller has set up (bound, buffer sizes).
    pub async fn ws_over(&self, socket: tokio::net::TcpSocket) -> Ws {
        let tcp = socket.connect(self.https).await.expect("connect");
        let tls = self
            .tls()
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("tls handshake");
        let url = format!("wss://localhost:{}/ws", self.https.port());
        let (ws, _) = tokio_tungstenite::client_async(url, tls)
            .await
            .expect("websocket handshake");
        ws
    }

    pub async fn ws_path(&self, path: &str) -> Ws {
        let tls = self.tls_stream().await;
        let url = format!("wss://localhost:{}{path}", self.https.port());
        let (ws, _) = tokio_tungstenite::client_async(url, tls)
            .await
            .expect("websocket handshake");
        ws
    }

    /// An HTTP/1.1 keep-alive connection over TLS, for requests one after another.
    pub async fn keep_alive(
        &self,
    ) -> (
        hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
        JoinHandle<hyper::Result<()>>,
    ) {
        let tls = self.tls_stream().await;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("http handshake");
        (sender, tokio::spawn(conn))
    }

    /// GET (or another method) over HTTP/1.1 + TLS; returns the full response.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> hyper::Response<Bytes> {
        let tls = self.tls_stream().await;
        send(TokioIo::new(tls), method, path, headers, "localhost").await
    }

    pub async fn get(&self, path: &str) -> hyper::Response<Bytes> {
        self.request("GET", path, &[]).await
    }

    /// GET over plain HTTP to the monitoring listener (`/metrics`, `/healthz`, `/readyz`).
    pub async fn get_metrics(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> hyper::Response<Bytes> {
        let tcp = TcpStream::connect(self.metrics).await.expect("connect");
        send(TokioIo::new(tcp), "GET", path, headers, "localhost").await
    }

    /// GET over plain HTTP to the port-80 listener.
    pub async fn get_http(&self, path: &str, host: &str) -> hyper::Response<Bytes> {
        let tcp = TcpStream::connect(self.http).await.expect("connect");
        send(TokioIo::new(tcp), "GET", path, &[], host).await
    }
}

async fn send<I>(
    io: I,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    host: &str,
) -> hyper::Response<Bytes>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("http handshake");
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .expect("response");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    hyper::Response::from_parts(parts, body)
}

/// A rustls client config trusting only the PEM certificate at `cert`.
pub fn tls_trusting(cert: &Path, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).expect("read cert") {
        roots.add(c.expect("pem")).expect("add root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// A GET of `/` for a keep-alive connection.
pub fn get_root() -> Request<Empty<Bytes>> {
    Request::get("/")
        .header("host", "localhost")
        .body(Empty::new())
        .unwrap()
}

pub async fn send_json(ws: &mut Ws, v: Json) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

/// The next text message as JSON (skipping pings), or panic after 5 s.
pub async fn recv_json(ws: &mut Ws) -> Json {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message within 5 s")
            .expect("stream open")
            .expect("no websocket error");
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).expect("server sent JSON"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected message {other:?}"),
        }
    }
}

/// Asserts that nothing but pings arrives within `wait`.
pub async fn expect_silence(ws: &mut Ws, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(other) => panic!("expected silence, got {other:?}"),
        }
    }
}

/// Writes a self-signed certificate for localhost (cert.pem + privkey.pem) into `dir`, valid
/// from `from_days` to `to_days` days from now (negative: in the past).
pub fn write_dated_cert(dir: &Path, from_days: i64, to_days: i64) {
    let at = |days: i64| {
        x509_parser::time::ASN1Time::from_timestamp(peerbox::tls::now() + days * 86_400)
            .unwrap()
            .to_datetime()
    };
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    (params.not_before, params.not_after) = (at(from_days), at(to_days));
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("privkey.pem"), key.serialize_pem()).unwrap();
}
