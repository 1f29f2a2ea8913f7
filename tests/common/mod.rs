//! The one way tests start peerbox: the real server, in-process, on port 0, with a temporary
//! ssl dir and config; plus real TLS, HTTP and WebSocket clients to talk to it.
#![allow(dead_code, clippy::unwrap_used)]

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
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

pub type Ws = WebSocketStream<TlsStream<TcpStream>>;

pub struct TestServer {
    pub https: SocketAddr,
    pub http: SocketAddr,
    /// STUN/TURN, UDP and TCP on the same port.
    pub turn: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub handle: Handle,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// Starts peerbox with the default config plus `extra` TOML (top-level keys and/or tables;
/// tables named here replace the ones the helper writes: https, http, tls, turn).
pub async fn spawn(extra: &str) -> TestServer {
    spawn_inner(extra, "", "127.0.0.1:0").await
}

/// Like [`spawn`], with the HTTPS listener bound to `https` (e.g. `"[::]:0"` for IPv6 clients).
pub async fn spawn_at(extra: &str, https: &str) -> TestServer {
    spawn_inner(extra, "", https).await
}

/// Like [`spawn`], with `turn_keys` (TOML lines) appended to the generated `[turn]` table,
/// whose `listen` address is only known once bound.
pub async fn spawn_with_turn(turn_keys: &str) -> TestServer {
    spawn_inner("", turn_keys, "127.0.0.1:0").await
}

async fn spawn_inner(extra: &str, turn_keys: &str, https_bind: &str) -> TestServer {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PEERBOX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("ssl")).expect("ssl dir");
    let https = TcpListener::bind(https_bind).await.expect("bind https");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    let (udp, tcp) = bind_turn_pair().await;
    let (ha, pa, ta) = (
        https.local_addr().unwrap(),
        http.local_addr().unwrap(),
        udp.local_addr().unwrap(),
    );
    let mut toml = String::new();
    if !extra.contains("hostname") {
        toml.push_str("hostname = \"localhost\"\n");
    }
    toml.push_str(&format!(
        "shutdown_timeout_secs = 5\n{}\n",
        top_level(extra)
    ));
    for (table, default) in [
        ("https", format!("[https]\nlisten = [\"{ha}\"]\n")),
        ("http", format!("[http]\nlisten = [\"{pa}\"]\n")),
        (
            "tls",
            "[tls]\ndir = \"ssl\"\nwatch_interval_secs = 0.2\n".to_string(),
        ),
        (
            "turn",
            format!("[turn]\nlisten = [\"{ta}\"]\nrelay_ports = \"40000-40999\"\n{turn_keys}\n"),
        ),
    ] {
        if !extra.contains(&format!("[{table}]")) {
            toml.push_str(&default);
        }
    }
    toml.push_str(&tables(extra));
    let path = dir.path().join("config.toml");
    std::fs::write(&path, &toml).expect("write config");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("test config invalid: {e}\n{toml}"));
    let server = Server::new(config.clone()).expect("server starts");
    let handle = server.handle();
    let shutdown = CancellationToken::new();
    let listeners = Listeners {
        https: vec![https],
        http: vec![http],
        turn_udp: vec![udp],
        turn_tcp: vec![tcp],
    };
    let task = tokio::spawn(server.run(listeners, shutdown.clone()));
    TestServer {
        https: ha,
        http: pa,
        turn: ta,
        dir,
        config,
        handle,
        shutdown,
        task,
    }
}

/// The lines of `extra` before its first table header.
fn top_level(extra: &str) -> String {
    extra
        .lines()
        .take_while(|l| !l.trim_start().starts_with('['))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The lines of `extra` from its first table header on.
fn tables(extra: &str) -> String {
    extra
        .lines()
        .skip_while(|l| !l.trim_start().starts_with('['))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
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
        self.shutdown.cancel();
        tokio::time::timeout(limit, self.task)
            .await
            .expect("server stopped in time")
            .expect("server task")
            .expect("server result");
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

    pub async fn ws(&self) -> Ws {
        self.ws_path("/ws").await
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

pub async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

/// The next text message as JSON (skipping pings), or panic after 5 s.
pub async fn recv_json(ws: &mut Ws) -> Value {
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
